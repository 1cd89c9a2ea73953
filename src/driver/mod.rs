//! Drivers: how a machine comes to exist and how its state, address and SSH endpoint are found.
//!
//! Built-in drivers run in-process (no plugin process per machine). Each driver owns its part of
//! `config.json` (the `Driver` object): a typed view that keeps unknown fields.

pub mod generic;
pub mod none;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::store::config::Host;

/// A machine's state, with docker-machine's names (`state.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    None,
    Running,
    Paused,
    Saved,
    Stopped,
    Stopping,
    Starting,
    Error,
    Timeout,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::None => "",
            State::Running => "Running",
            State::Paused => "Paused",
            State::Saved => "Saved",
            State::Stopped => "Stopped",
            State::Stopping => "Stopping",
            State::Starting => "Starting",
            State::Error => "Error",
            State::Timeout => "Timeout",
        })
    }
}

/// What a driver can fail at.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// docker-machine's `ErrHostIsNotRunning`.
    #[error("Host is not running")]
    NotRunning,
    #[error("{driver} driver does not support {action}: {hint}")]
    Unsupported {
        driver: &'static str,
        action: &'static str,
        hint: &'static str,
    },
    #[error(
        "Driver \"{0}\" not found. Do you have the plugin binary \"docker-machine-driver-{0}\" accessible in your PATH?"
    )]
    NotFound(String),
    #[error("{0}")]
    Config(String),
    #[error("machine record has an invalid Driver section: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Where and how to reach a machine over SSH.
#[derive(Debug, Clone, PartialEq)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key; `None` means the agent and the default keys in `~/.ssh`.
    pub key: Option<PathBuf>,
}

/// A built-in driver, bound to one machine's config.
#[derive(Debug, Clone)]
pub enum Driver {
    None(none::NoneDriver),
    Generic(generic::GenericDriver),
}

/// Names of the drivers hoist has built in.
pub const BUILTIN: &[&str] = &["generic", "none"];

impl Driver {
    /// The driver of a stored machine.
    pub fn for_host(host: &Host) -> Result<Driver, DriverError> {
        Self::from_config(&host.driver_name, &host.driver)
    }

    /// The driver named `name` reading its part of a record.
    pub fn from_config(name: &str, config: &Map<String, Value>) -> Result<Driver, DriverError> {
        let value = Value::Object(config.clone());
        match name {
            "none" => Ok(Driver::None(serde_json::from_value(value)?)),
            "generic" => Ok(Driver::Generic(serde_json::from_value(value)?)),
            other => Err(DriverError::NotFound(other.to_string())),
        }
    }

    /// The driver's part of the record, for saving.
    pub fn to_config(&self) -> Result<Map<String, Value>, DriverError> {
        let value = match self {
            Driver::None(d) => serde_json::to_value(d)?,
            Driver::Generic(d) => serde_json::to_value(d)?,
        };
        match value {
            Value::Object(map) => Ok(map),
            _ => Err(DriverError::Config("driver config is not an object".into())),
        }
    }

    /// The driver's name (`DriverName`).
    pub fn name(&self) -> &'static str {
        match self {
            Driver::None(_) => "none",
            Driver::Generic(_) => "generic",
        }
    }

    /// The machine's IP address (for `none`, the URL's host:port, as docker-machine).
    pub fn ip(&self) -> Result<String, DriverError> {
        match self {
            Driver::None(d) => d.ip(),
            Driver::Generic(d) => d.ip(),
        }
    }

    /// The Docker URL recorded for the machine, without checking that it answers.
    pub fn recorded_url(&self) -> Result<String, DriverError> {
        match self {
            Driver::None(d) => Ok(d.url.clone()),
            Driver::Generic(d) => Ok(d.url()),
        }
    }

    /// The machine's state, asked live (`timeout` bounds any network probe).
    pub async fn state(&self, timeout: Duration) -> State {
        match self {
            Driver::None(_) => State::Running,
            Driver::Generic(d) => d.state(timeout).await,
        }
    }

    /// The Docker URL, checking that the machine is running first (docker-machine's `GetURL`).
    pub async fn url(&self, timeout: Duration) -> Result<String, DriverError> {
        if self.state(timeout).await != State::Running {
            return Err(DriverError::NotRunning);
        }
        self.recorded_url()
    }

    /// How to reach the machine over SSH, if the driver has SSH.
    pub fn ssh(&self) -> Option<SshEndpoint> {
        match self {
            Driver::None(_) => None,
            Driver::Generic(d) => Some(d.ssh_endpoint()),
        }
    }

    /// Refuses a power action the driver cannot do (`start`, `stop`, `kill`), naming driver and action.
    pub fn unsupported(&self, action: &'static str) -> DriverError {
        let hint = match self {
            Driver::None(_) => {
                "hosts without a driver cannot be started, stopped, killed or restarted"
            }
            Driver::Generic(_) => "it manages an existing host; power it on or off there",
        };
        DriverError::Unsupported {
            driver: self.name(),
            action,
            hint,
        }
    }
}

/// Fields every driver shares (docker-machine's `BaseDriver`), flattened into each driver's JSON.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct BaseDriver {
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    #[serde(default)]
    pub machine_name: String,
    #[serde(rename = "SSHUser", default)]
    pub ssh_user: String,
    #[serde(rename = "SSHPort", default)]
    pub ssh_port: u16,
    #[serde(rename = "SSHKeyPath", default)]
    pub ssh_key_path: String,
    #[serde(default)]
    pub store_path: String,
    #[serde(default)]
    pub swarm_master: bool,
    #[serde(default)]
    pub swarm_host: String,
    #[serde(default)]
    pub swarm_discovery: String,
}

impl BaseDriver {
    /// The base fields of a new machine.
    pub fn new(name: &str, store_path: &str) -> BaseDriver {
        BaseDriver {
            machine_name: name.to_string(),
            store_path: store_path.to_string(),
            ..BaseDriver::default()
        }
    }
}
