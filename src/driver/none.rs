//! The `none` driver: a Docker host that already exists and is reached at `--url`; nothing is
//! provisioned, and it cannot be started, stopped or removed remotely.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BaseDriver, DriverError};

/// `none`'s part of the record: the base fields and `URL`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoneDriver {
    #[serde(flatten)]
    pub base: BaseDriver,
    #[serde(rename = "URL", default)]
    pub url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NoneDriver {
    /// A `none` machine at `url` (any non-empty URL is accepted, as docker-machine does: GitLab's
    /// well-known warm-up is `create -d none --url localhost`).
    pub fn new(name: &str, store_path: &str, url: &str) -> Result<NoneDriver, DriverError> {
        if url.is_empty() {
            return Err(DriverError::Config(
                "--url option is required when no driver is selected".into(),
            ));
        }
        Ok(NoneDriver {
            base: BaseDriver::new(name, store_path),
            url: url.to_string(),
            extra: Map::new(),
        })
    }

    /// The URL's `host:port` (Go's `url.Host`), as docker-machine reports a `none` machine's IP;
    /// empty for a URL without `scheme://`.
    pub fn ip(&self) -> Result<String, DriverError> {
        Ok(self
            .url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .map(|host| host.rsplit_once('@').map_or(host, |(_, h)| h))
            .unwrap_or("")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_required_and_checked() {
        assert!(
            NoneDriver::new("a", "/s", "")
                .unwrap_err()
                .to_string()
                .contains("--url option is required")
        );
        let d = NoneDriver::new("a", "/s", "tcp://192.0.2.1:2376").unwrap();
        assert_eq!(d.ip().unwrap(), "192.0.2.1:2376");
        assert_eq!(
            NoneDriver::new("a", "/s", "localhost")
                .unwrap()
                .ip()
                .unwrap(),
            ""
        );
        assert_eq!(
            NoneDriver::new("a", "/s", "tcp://u@h:1/x")
                .unwrap()
                .ip()
                .unwrap(),
            "h:1"
        );
    }

    #[test]
    fn json_has_base_fields_then_url() {
        let d = NoneDriver::new("a", "/s", "tcp://192.0.2.1:2376").unwrap();
        let keys: Vec<String> = serde_json::to_value(&d)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "IPAddress",
                "MachineName",
                "SSHUser",
                "SSHPort",
                "SSHKeyPath",
                "StorePath",
                "SwarmMaster",
                "SwarmHost",
                "SwarmDiscovery",
                "URL"
            ]
        );
    }
}
