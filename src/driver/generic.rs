//! The `generic` driver: an existing Linux host reached over SSH at `--generic-ip-address`.
//! Its state is whether its SSH port answers; it cannot be powered on or off, and `rm` leaves the
//! host alone.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpStream;

use super::{BaseDriver, DriverError, SshEndpoint, State};

/// Default Docker engine port.
pub const DEFAULT_ENGINE_PORT: u16 = 2376;

/// `generic`'s part of the record: the base fields, `EnginePort` and `SSHKey` (the user's key path).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenericDriver {
    #[serde(flatten)]
    pub base: BaseDriver,
    #[serde(rename = "EnginePort", default = "default_engine_port")]
    pub engine_port: u16,
    #[serde(rename = "SSHKey", default)]
    pub ssh_key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_engine_port() -> u16 {
    DEFAULT_ENGINE_PORT
}

/// Joins a host and a port as Go's `net.JoinHostPort` (brackets around IPv6).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl GenericDriver {
    /// The Docker URL `tcp://IP:ENGINE_PORT`.
    pub fn url(&self) -> String {
        format!(
            "tcp://{}",
            join_host_port(&self.base.ip_address, self.engine_port)
        )
    }

    /// The host's address.
    pub fn ip(&self) -> Result<String, DriverError> {
        if self.base.ip_address.is_empty() {
            return Err(DriverError::Config("IP address is not set".into()));
        }
        Ok(self.base.ip_address.clone())
    }

    /// Running when the SSH port accepts a connection within `timeout`, else Stopped.
    pub async fn state(&self, timeout: Duration) -> State {
        let addr = join_host_port(&self.base.ip_address, self.base.ssh_port);
        match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => State::Running,
            _ => State::Stopped,
        }
    }

    /// Where SSH reaches the host.
    pub fn ssh_endpoint(&self) -> SshEndpoint {
        SshEndpoint {
            host: self.base.ip_address.clone(),
            port: self.base.ssh_port,
            user: self.base.ssh_user.clone(),
            key: Some(&self.base.ssh_key_path)
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_like_go() {
        assert_eq!(join_host_port("192.0.2.1", 2376), "192.0.2.1:2376");
        assert_eq!(join_host_port("::1", 2376), "[::1]:2376");
    }

    #[test]
    fn docker_machine_record_reads() {
        let json = serde_json::json!({
            "IPAddress": "203.0.113.81", "MachineName": "vm", "SSHUser": "root", "SSHPort": 22,
            "SSHKeyPath": "/home/u/.docker/machine/machines/vm/id_rsa", "StorePath": "/home/u/.docker/machine",
            "SwarmMaster": false, "SwarmHost": "", "SwarmDiscovery": "", "EnginePort": 2376,
            "SSHKey": "/home/u/.ssh/id_rsa"
        });
        let d: GenericDriver = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(d.url(), "tcp://203.0.113.81:2376");
        assert_eq!(serde_json::to_value(&d).unwrap(), json);
    }

    #[tokio::test]
    async fn closed_ssh_port_is_stopped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut d: GenericDriver =
            serde_json::from_value(serde_json::json!({"IPAddress": "127.0.0.1"})).unwrap();
        d.base.ssh_port = port;
        assert_eq!(d.state(Duration::from_secs(2)).await, State::Running);
        drop(listener);
        assert_eq!(d.state(Duration::from_secs(2)).await, State::Stopped);
    }
}
