//! The `generic` driver: an existing Linux host reached over SSH at `--generic-ip-address`.
//! Its state is whether its SSH port answers; it cannot be powered on or off (`restart` reboots
//! it over SSH), and `rm` leaves the host alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpStream;

use super::{
    BaseDriver, Builtin, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagValues,
    SshEndpoint, State, ready, typed_config, untyped_config,
};
use crate::netaddr::{is_host, join_host_port};
use crate::ssh::{Remote, Session, Target};

/// The name of the SSH key's copy in the machine directory (docker-machine's).
pub const KEY_COPY: &str = "id_rsa";
/// Default Docker engine port.
pub const DEFAULT_ENGINE_PORT: u16 = 2376;
/// How long the state probe (a TCP connection to the SSH port) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a rebooting host may take to stop answering SSH.
const GOING_DOWN_WAIT: Duration = Duration::from_secs(30);

/// The `generic` entry of the table of drivers.
pub const BUILTIN: Builtin = Builtin {
    name: "generic",
    flags,
    open,
    prefetch: None,
    runs_here: false,
};

fn flags() -> Vec<Flag> {
    vec![
        Flag::int(
            "generic-engine-port",
            "Docker engine port",
            "GENERIC_ENGINE_PORT",
            i64::from(DEFAULT_ENGINE_PORT),
        ),
        Flag::string(
            "generic-ip-address",
            "IP Address of machine",
            "GENERIC_IP_ADDRESS",
            "",
        ),
        Flag::string(
            "generic-ssh-key",
            "SSH private key path (if not provided, the SSH agent or the default keys in ~/.ssh are used)",
            "GENERIC_SSH_KEY",
            "",
        ),
        Flag::int("generic-ssh-port", "SSH port", "GENERIC_SSH_PORT", 22),
        Flag::string("generic-ssh-user", "SSH user", "GENERIC_SSH_USER", "root"),
        Flag::bool(
            "generic-keep-hostname",
            "Keep the host's hostname instead of setting it to the machine name",
            "GENERIC_KEEP_HOSTNAME",
        ),
    ]
}

fn open(config: &Map<String, Value>, env: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    let config: GenericDriver = typed_config(config)?;
    let ip = &config.base.ip_address;
    if !ip.is_empty() && !is_host(ip) {
        return Err(DriverError::Config(format!(
            "the record's IPAddress {ip:?} is not an IP address or host name; fix it in config.json or remove the machine"
        )));
    }
    Ok(Box::new(Generic {
        config,
        env: env.clone(),
    }))
}

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

/// The generic driver of one machine.
pub struct Generic {
    pub config: GenericDriver,
    env: DriverEnv,
}

fn port(flags: &FlagValues, name: &str) -> Result<u16, DriverError> {
    let value = flags.int(name);
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| DriverError::Config(format!("--{name} {value} is not a TCP port (1-65535)")))
}

/// Copies the user's key into the machine directory as `id_rsa` (0600, with its `.pub`) — a fixed
/// name, so that a key file called `cert.pem` or `ca.pem` is never overwritten by the
/// machine's certificates. Returns the copy's path.
pub(crate) fn import_key(key: &str, machine_dir: &Path) -> Result<PathBuf, DriverError> {
    let src = Path::new(key);
    let data = std::fs::read(src)
        .map_err(|e| DriverError::Config(format!("cannot read SSH key {key:?}: {e}")))?;
    let name = KEY_COPY;
    crate::fsutil::create_dir_all(machine_dir, 0o700).map_err(|e| {
        DriverError::Config(format!("cannot create {}: {e}", machine_dir.display()))
    })?;
    let dst = machine_dir.join(name);
    crate::fsutil::write_atomic(&dst, &data, 0o600).map_err(|e| {
        DriverError::Config(format!("cannot copy the SSH key to {}: {e}", dst.display()))
    })?;
    if let Ok(public) = std::fs::read(format!("{key}.pub")) {
        let _ =
            crate::fsutil::write_atomic(&machine_dir.join(format!("{name}.pub")), &public, 0o644);
    }
    Ok(dst)
}

/// A POSIX user name (`useradd`'s rule): never an ssh option or anything a shell would take.
fn valid_user(user: &str) -> bool {
    let mut bytes = user.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && user.len() <= 32
}

fn default_engine_port() -> u16 {
    DEFAULT_ENGINE_PORT
}

impl GenericDriver {
    /// The Docker URL `tcp://IP:ENGINE_PORT`.
    pub fn url(&self) -> String {
        format!(
            "tcp://{}",
            join_host_port(&self.base.ip_address, self.engine_port)
        )
    }

    /// Running when the SSH port accepts a connection within the probe timeout, else Stopped.
    pub async fn state(&self) -> State {
        let addr = join_host_port(&self.base.ip_address, self.base.ssh_port);
        match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(&addr)).await {
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
            key_origin: Some(&self.ssh_key)
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
        }
    }
}

impl Generic {
    fn unsupported(action: &str) -> DriverError {
        DriverError::Unsupported(format!(
            "generic driver does not support {action}: it manages an existing host; power it on or off there"
        ))
    }

    /// Reboots the host over SSH (with its pinned host key) and waits until SSH goes away.
    async fn reboot(&self) -> Result<(), DriverError> {
        let target = Target {
            machine: self.env.machine.clone(),
            endpoint: self.config.ssh_endpoint(),
            pinned: self.env.ssh_host_key.clone().filter(|k| !k.is_empty()),
            connect_timeout: PROBE_TIMEOUT,
        };
        let fail = |e: crate::ssh::SshError| DriverError::Config(e.to_string());
        let session = Session::connect(&target).await.map_err(fail)?;
        let remote = Remote::new(session, &self.env.machine, self.env.report.as_ref())
            .await
            .map_err(fail)?;
        // The connection drops as the host goes down; the command's own result does not matter.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            remote.root(
                "(sleep 1; systemctl reboot || shutdown -r now) >/dev/null 2>&1 &",
                None,
            ),
        )
        .await;
        remote.close().await;
        let started = std::time::Instant::now();
        while started.elapsed() < GOING_DOWN_WAIT && self.config.state().await == State::Running {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }
}

impl Driver for Generic {
    typed_config_methods!("generic");
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        let result = (|| {
            let c = &mut self.config;
            c.base.ip_address = flags.string("generic-ip-address");
            if c.base.ip_address.is_empty() {
                return Err(DriverError::Config(
                    "generic driver requires the --generic-ip-address option".into(),
                ));
            }
            if !is_host(&c.base.ip_address) {
                return Err(DriverError::Config(format!(
                    "--generic-ip-address {:?} is not an IP address or host name",
                    c.base.ip_address
                )));
            }
            c.base.ssh_user = flags.string("generic-ssh-user");
            if !valid_user(&c.base.ssh_user) {
                return Err(DriverError::Config(format!(
                    "--generic-ssh-user {:?} is not a user name",
                    c.base.ssh_user
                )));
            }
            c.base.ssh_port = port(flags, "generic-ssh-port")?;
            c.engine_port = port(flags, "generic-engine-port")?;
            c.ssh_key = flags.string("generic-ssh-key");
            c.keep_hostname = flags.bool("generic-keep-hostname");
            c.base.set_swarm_config_from_flags(flags);
            Ok(())
        })();
        ready(result)
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        let key = &self.config.ssh_key;
        ready(if !key.is_empty() && !Path::new(key).is_file() {
            Err(DriverError::Config(format!(
                "SSH key does not exist: {key:?}"
            )))
        } else {
            Ok(())
        })
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        let result = if self.config.ssh_key.is_empty() {
            self.env
                .report
                .info("No SSH key specified. Assuming an existing key at the default location.");
            self.config.base.ssh_key_path = String::new();
            Ok(())
        } else {
            self.env.report.info("Importing SSH key...");
            import_key(&self.config.ssh_key, &self.config.base.machine_dir()).map(|copy| {
                self.config.base.ssh_key_path = copy.to_string_lossy().to_string();
            })
        };
        ready(result)
    }
    /// The host is left alone.
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        ready(Ok(()))
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(Generic::unsupported("start")))
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(Generic::unsupported("stop")))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.reboot())
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        ready(Err(Generic::unsupported("kill")))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        Box::pin(async { Ok(self.config.state().await) })
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        ready(if self.config.base.ip_address.is_empty() {
            Err(DriverError::Config("IP address is not set".into()))
        } else {
            Ok(self.config.base.ip_address.clone())
        })
    }
    fn url(&self) -> DriverFuture<'_, String> {
        Box::pin(async {
            if self.config.state().await != State::Running {
                return Err(DriverError::NotRunning);
            }
            Ok(self.config.url())
        })
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        ready(Ok(Some(self.config.ssh_endpoint())))
    }
    fn known_url(&self) -> Option<String> {
        Some(self.config.url())
    }
    fn running_wait(&self) -> Duration {
        Duration::ZERO
    }
    fn keeps_hostname(&self) -> bool {
        self.config.keep_hostname
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_key_is_copied_under_a_name_no_certificate_uses() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cert.pem");
        std::fs::write(&key, "KEY").unwrap();
        std::fs::write(dir.path().join("cert.pem.pub"), "PUB").unwrap();
        let machine = dir.path().join("machine");
        let copy = import_key(key.to_str().unwrap(), &machine).unwrap();
        assert_eq!(copy, machine.join("id_rsa"));
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "KEY");
        assert_eq!(
            std::fs::read_to_string(machine.join("id_rsa.pub")).unwrap(),
            "PUB"
        );
        assert!(!machine.join("cert.pem").exists());
    }

    #[tokio::test]
    async fn closed_ssh_port_is_stopped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut d: GenericDriver =
            serde_json::from_value(serde_json::json!({"IPAddress": "127.0.0.1"})).unwrap();
        d.base.ssh_port = port;
        assert_eq!(d.state().await, State::Running);
        drop(listener);
        assert_eq!(d.state().await, State::Stopped);
    }
}
