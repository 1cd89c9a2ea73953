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
    /// hoist: keep the host's hostname (`--generic-keep-hostname`).
    #[serde(
        rename = "KeepHostname",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub keep_hostname: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `--generic-*` flags of `create`.
#[derive(Debug, Clone, Default)]
pub struct GenericFlags {
    pub ip_address: String,
    pub ssh_user: String,
    pub ssh_key: String,
    pub ssh_port: u16,
    pub engine_port: u16,
    pub keep_hostname: bool,
}

impl GenericFlags {
    /// The driver config from the flags (docker-machine's `SetConfigFromFlags`).
    pub fn driver(&self, base: BaseDriver) -> Result<GenericDriver, DriverError> {
        if self.ip_address.is_empty() {
            return Err(DriverError::Config(
                "generic driver requires the --generic-ip-address option".into(),
            ));
        }
        let mut base = base;
        base.ip_address = self.ip_address.clone();
        base.ssh_user = self.ssh_user.clone();
        base.ssh_port = self.ssh_port;
        Ok(GenericDriver {
            base,
            engine_port: self.engine_port,
            ssh_key: self.ssh_key.clone(),
            keep_hostname: self.keep_hostname,
            extra: Map::new(),
        })
    }
}

/// docker-machine's pre-create check and key import: a given key must exist and is copied into
/// the machine directory (0600, with its `.pub`); without a key, the agent and default keys are used.
/// Returns the step message to show.
pub fn import_key(
    driver: &mut GenericDriver,
    machine_dir: &std::path::Path,
) -> Result<&'static str, DriverError> {
    if driver.ssh_key.is_empty() {
        driver.base.ssh_key_path = String::new();
        return Ok("No SSH key specified. Assuming an existing key at the default location.");
    }
    let src = std::path::Path::new(&driver.ssh_key);
    if !src.is_file() {
        return Err(DriverError::Config(format!(
            "SSH key does not exist: {:?}",
            driver.ssh_key
        )));
    }
    let data = std::fs::read(src).map_err(|e| {
        DriverError::Config(format!("cannot read SSH key {:?}: {e}", driver.ssh_key))
    })?;
    let name = src
        .file_name()
        .map_or("id_rsa".into(), |n| n.to_string_lossy().to_string());
    crate::fsutil::create_dir_all(machine_dir, 0o700).map_err(|e| {
        DriverError::Config(format!("cannot create {}: {e}", machine_dir.display()))
    })?;
    let dst = machine_dir.join(&name);
    crate::fsutil::write_atomic(&dst, &data, 0o600).map_err(|e| {
        DriverError::Config(format!("cannot copy the SSH key to {}: {e}", dst.display()))
    })?;
    if let Ok(public) = std::fs::read(format!("{}.pub", driver.ssh_key)) {
        let _ =
            crate::fsutil::write_atomic(&machine_dir.join(format!("{name}.pub")), &public, 0o644);
    }
    driver.base.ssh_key_path = dst.to_string_lossy().to_string();
    Ok("Importing SSH key...")
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
