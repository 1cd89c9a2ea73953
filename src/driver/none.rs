//! The `none` driver: a Docker host that already exists and is reached at `--url`; nothing is
//! provisioned, and it cannot be started, stopped or removed remotely.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::netaddr::is_url_text;

use super::{
    BaseDriver, Builtin, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagValues,
    SshEndpoint, State, ready, typed_config, untyped_config,
};

/// The `none` entry of the table of drivers.
pub const BUILTIN: Builtin = Builtin {
    name: "none",
    flags,
    open,
    prefetch: None,
    runs_here: false,
};

fn flags() -> Vec<Flag> {
    vec![Flag::string(
        "url",
        "URL of host when no driver is selected",
        "",
        "",
    )]
}

fn open(config: &Map<String, Value>, _: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    let driver: NoneDriver = typed_config(config)?;
    if !driver.url.is_empty() && !is_url_text(&driver.url) {
        return Err(DriverError::Config(format!(
            "the record's URL {:?} has characters a URL cannot; fix it in config.json or remove the machine",
            driver.url
        )));
    }
    Ok(Box::new(driver))
}

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
    /// The URL's `host:port` (Go's `url.Host`), as docker-machine reports a `none` machine's IP;
    /// empty for a URL without `scheme://`.
    pub fn ip(&self) -> String {
        self.url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .map(|host| host.rsplit_once('@').map_or(host, |(_, h)| h))
            .unwrap_or("")
            .to_string()
    }
}

fn cannot(action: &str) -> DriverError {
    DriverError::Unsupported(format!("hosts without a driver cannot be {action}"))
}

impl Driver for NoneDriver {
    fn name(&self) -> &str {
        "none"
    }
    fn config(&self) -> DriverFuture<'_, Map<String, Value>> {
        ready(untyped_config(self))
    }
    fn set_config(&mut self, config: Map<String, Value>) -> DriverFuture<'_, ()> {
        ready(typed_config(&config).map(|d| *self = d))
    }
    fn create_flags(&self) -> DriverFuture<'_, Vec<Flag>> {
        ready(Ok(flags()))
    }
    /// Any non-empty URL is accepted, as docker-machine does: GitLab's well-known warm-up is
    /// `create -d none --url localhost`.
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        self.url = flags.string("url");
        ready(if self.url.is_empty() {
            Err(DriverError::Config(
                "--url option is required when no driver is selected".into(),
            ))
        } else if !is_url_text(&self.url) {
            Err(DriverError::Config(format!(
                "--url {:?} has characters a URL cannot",
                self.url
            )))
        } else {
            Ok(())
        })
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        ready(Ok(()))
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        ready(Ok(()))
    }
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        ready(Ok(()))
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(cannot("started")))
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(cannot("stopped")))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(cannot("restarted")))
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(cannot("killed")))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        ready(Ok(State::Running))
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        ready(Ok(NoneDriver::ip(self)))
    }
    fn url(&self) -> DriverFuture<'_, String> {
        ready(Ok(self.url.clone()))
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        ready(Ok(None))
    }
    fn known_url(&self) -> Option<String> {
        Some(self.url.clone())
    }
    fn provisions(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Result<NoneDriver, DriverError> {
        let mut d: NoneDriver = typed_config(&crate::driver::new_config("a", "/s")).unwrap();
        let mut flags = FlagValues::default();
        flags.set("url", crate::driver::FlagValue::String(url.into()));
        futures_lite_block_on(d.set_config_from_flags(&flags))?;
        Ok(d)
    }

    fn futures_lite_block_on<T>(f: DriverFuture<'_, T>) -> Result<T, DriverError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn url_is_required_and_checked() {
        assert!(
            with_url("")
                .unwrap_err()
                .to_string()
                .contains("--url option is required")
        );
        assert_eq!(
            with_url("tcp://192.0.2.1:2376").unwrap().ip(),
            "192.0.2.1:2376"
        );
        assert_eq!(with_url("localhost").unwrap().ip(), "");
        assert_eq!(with_url("tcp://u@h:1/x").unwrap().ip(), "h:1");
    }

    #[test]
    fn json_has_base_fields_then_url() {
        let d = with_url("tcp://192.0.2.1:2376").unwrap();
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
