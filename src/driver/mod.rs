//! Drivers: how a machine comes to exist, how it is powered, and how its state, address and SSH
//! endpoint are found — libmachine's `drivers.Driver`, as one interface.
//!
//! Built-in drivers run in-process and are listed in [`BUILTIN_DRIVERS`]; adding one is a module
//! and a line there. Any other name is a docker-machine plugin binary spoken to over its RPC
//! protocol ([`plugin`]). Commands and `ops` only ever see `Box<dyn Driver>` from [`open`].
//! Each driver owns its part of `config.json` (the `Driver` object), kept as it is.

/// The four [`Driver`] methods that a built-in driver keeping its part of the record in a typed
/// `config` field, with its flags from a `flags()` function, writes the same way.
macro_rules! typed_config_methods {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }
        fn config(&self) -> DriverFuture<'_, Map<String, Value>> {
            ready(untyped_config(&self.config))
        }
        fn set_config(&mut self, config: Map<String, Value>) -> DriverFuture<'_, ()> {
            ready(typed_config(&config).map(|c| self.config = c))
        }
        fn create_flags(&self) -> DriverFuture<'_, Vec<Flag>> {
            ready(Ok(flags()))
        }
    };
}

pub mod amazonec2;
#[cfg(test)]
pub mod fake;
pub mod flag;
pub mod generic;
pub mod none;
pub mod plugin;
pub mod qemu;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub use crate::ssh::SshEndpoint;
pub use flag::{Flag, FlagKind, FlagValue, FlagValues};

use crate::report::Reporter;

/// A machine's state, with docker-machine's names and numbers (`state.State`).
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

impl State {
    /// The state of libmachine's integer (out of range: `None`, as Go's `String()` gives "").
    pub fn from_number(n: i64) -> State {
        match n {
            1 => State::Running,
            2 => State::Paused,
            3 => State::Saved,
            4 => State::Stopped,
            5 => State::Stopping,
            6 => State::Starting,
            7 => State::Error,
            8 => State::Timeout,
            _ => State::None,
        }
    }
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
    /// A power action the driver cannot do, in the driver's own words.
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "Driver \"{name}\" not found. Do you have the plugin binary \"docker-machine-driver-{name}\" accessible in your PATH? hoist builds in {builtins} (choose one with -d); other drivers are docker-machine plugin binaries (docker-machine-driver-NAME on the PATH or beside hoist)"
    )]
    NotFound { name: String, builtins: String },
    #[error(
        "Driver \"{name}\" is one of docker-machine's core drivers, which hoist does not build in: it builds in {builtins} (choose one with -d). For \"{name}\", install docker-machine (or rancher-machine) on the PATH: hoist runs it as that driver's plugin"
    )]
    CoreNotFound { name: String, builtins: String },
    #[error("{0}")]
    Config(String),
    /// A wait for a state ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// A plugin failed: its process, the protocol, or the driver's own error.
    #[error("{0}")]
    Plugin(String),
    #[error("machine record has an invalid Driver section: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// What a driver's operation returns.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// One machine's driver, for the whole lifecycle (libmachine's `drivers.Driver`).
pub trait Driver: Send + Sync {
    /// The driver's name (`DriverName`), as stored in the record's `DriverName`.
    fn name(&self) -> &str;
    /// The driver's part of the record (`GetConfigRaw`).
    fn config(&self) -> DriverFuture<'_, Map<String, Value>>;
    /// Replaces the driver's part of the record (`SetConfigRaw`).
    fn set_config(&mut self, config: Map<String, Value>) -> DriverFuture<'_, ()>;
    /// The driver's create flags (`GetCreateFlags`).
    fn create_flags(&self) -> DriverFuture<'_, Vec<Flag>>;
    /// Takes the values of `create`'s flags (`SetConfigFromFlags`).
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()>;
    /// Checks before anything is made (`PreCreateCheck`); a failure exits 3.
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()>;
    /// Makes the machine (`Create`).
    fn create(&mut self) -> DriverFuture<'_, ()>;
    /// Removes what the driver made (`Remove`).
    fn remove(&mut self) -> DriverFuture<'_, ()>;
    /// Powers the machine on (`Start`).
    fn start(&mut self) -> DriverFuture<'_, ()>;
    /// Shuts the machine down cleanly (`Stop`).
    fn stop(&mut self) -> DriverFuture<'_, ()>;
    /// Restarts the machine (`Restart`); returns once the restart is under way.
    fn restart(&mut self) -> DriverFuture<'_, ()>;
    /// Powers the machine off at once (`Kill`).
    fn kill(&mut self) -> DriverFuture<'_, ()>;
    /// The machine's state, asked live (`GetState`).
    fn state(&self) -> DriverFuture<'_, State>;
    /// The machine's address (`GetIP`).
    fn ip(&self) -> DriverFuture<'_, String>;
    /// The Docker URL, when the machine runs (`GetURL`).
    fn url(&self) -> DriverFuture<'_, String>;
    /// How to reach the machine over SSH (`GetSSHHostname`, `GetSSHPort`, `GetSSHUsername`,
    /// `GetSSHKeyPath`); `None` for a driver without SSH.
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>>;

    /// The Docker URL as the record has it, without asking anything: built-ins know it, so `ls`
    /// and `env` go straight to the daemon. `None` means: ask [`Driver::url`].
    fn known_url(&self) -> Option<String> {
        None
    }
    /// The port dockerd listens on inside the machine, when it is not the URL's (the URL's port
    /// is forwarded to it, as for a local VM).
    fn engine_port_inside(&self) -> Option<u16> {
        None
    }
    /// Whether hoist provisions the machine over SSH after `create` (not for `none`).
    fn provisions(&self) -> bool {
        true
    }
    /// How long a new machine may take to reach Running after `create` (libmachine: 3 min).
    /// Zero: do not wait, the host exists already (provisioning's SSH wait says why it cannot
    /// be reached, if it cannot).
    fn running_wait(&self) -> Duration {
        STATE_WAIT
    }
    /// Whether a create that fails once the driver began making the machine removes what it made
    /// (cloud instances cost money) unless `create --keep-on-failure`; else the record stays,
    /// listed as failed, for `provision` or `rm`.
    fn removes_failed_create(&self) -> bool {
        false
    }
    /// Whether provisioning keeps the host's hostname (generic's `--generic-keep-hostname`).
    fn keeps_hostname(&self) -> bool {
        false
    }
    /// The driver's config when opening it taught it something its record should keep (an
    /// instance's new address, from what `ls` prefetched); `ls` writes it back.
    fn changed_config(&self) -> Option<Map<String, Value>> {
        None
    }
    /// Saves a golden snapshot of the running machine into `dir` (new and empty): what machines
    /// made from it start from. Returns what the driver needs to make them (the snapshot's
    /// `Driver` section). A machine made from a snapshot names it in its record's `Driver`
    /// section under [`crate::store::snapshot::SOURCE_KEY`].
    fn save_snapshot<'a>(&'a mut self, _dir: &'a Path) -> DriverFuture<'a, Map<String, Value>> {
        let name = self.name().to_string();
        Box::pin(async move {
            Err(DriverError::Unsupported(format!(
                "the {name} driver cannot take snapshots of its machines"
            )))
        })
    }
    /// Gives the driver a way to write its config into the machine's record at once, so that
    /// what it has made is recorded even if hoist is killed before the operation ends.
    fn set_record_writer(&mut self, _writer: RecordWriter) {}
    /// Ends the driver's session: a plugin is told to close and its process reaped.
    fn close(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}

/// What a driver is opened with besides its config.
#[derive(Clone)]
pub struct DriverEnv {
    /// Where the driver's messages (a plugin's output) go.
    pub report: Arc<dyn Reporter>,
    /// The machine's pinned SSH host key, for drivers that act over SSH (generic's restart).
    pub ssh_host_key: Option<String>,
    /// The machine's name (for messages).
    pub machine: String,
    /// What the driver's [`Builtin::prefetch`] learnt of this machine (in `ls`).
    pub prefetched: Option<Value>,
}

/// Replaces the driver part of a machine's record (see [`Driver::set_record_writer`]).
pub type RecordWriter = Arc<dyn Fn(Map<String, Value>) -> Result<(), String> + Send + Sync>;

impl DriverEnv {
    /// An environment for `machine` whose messages go to `report`.
    pub fn new(machine: &str, report: Arc<dyn Reporter>) -> DriverEnv {
        DriverEnv {
            report,
            ssh_host_key: None,
            machine: machine.to_string(),
            prefetched: None,
        }
    }
}

/// How a built-in driver is opened on a record's driver config.
pub type OpenFn = fn(&Map<String, Value>, &DriverEnv) -> Result<Box<dyn Driver>, DriverError>;

/// A machine's name and its driver config.
pub type NamedConfig = (String, Map<String, Value>);

/// How a built-in driver learns about many machines at once (`ls`): given each machine's name
/// and driver config, what it found per name, handed to each driver in
/// [`DriverEnv::prefetched`].
pub type PrefetchFn =
    fn(Vec<NamedConfig>) -> Pin<Box<dyn Future<Output = HashMap<String, Value>> + Send>>;

/// A built-in driver: its name, its flags and how to open it on a record's config.
pub struct Builtin {
    pub name: &'static str,
    pub flags: fn() -> Vec<Flag>,
    pub open: OpenFn,
    /// For drivers whose state comes from an API that answers for many machines in one call.
    pub prefetch: Option<PrefetchFn>,
    /// Whether its machines run on this computer (a local VM whose disk and process belong to
    /// the machine directory), so that they cannot move to another store.
    pub runs_here: bool,
}

/// The drivers hoist builds in. A new built-in driver is one module and one line here.
pub static BUILTIN_DRIVERS: &[Builtin] = &[
    none::BUILTIN,
    generic::BUILTIN,
    qemu::BUILTIN,
    amazonec2::BUILTIN,
];

/// Whether the machines of the driver `name` run on this computer (see [`Builtin::runs_here`]).
pub fn runs_here(name: &str) -> bool {
    builtin(name).is_some_and(|b| b.runs_here)
}

/// Whether the driver `name` asks about many machines at once (see [`prefetch`]).
pub fn prefetches(name: &str) -> bool {
    builtin(name).is_some_and(|b| b.prefetch.is_some())
}

/// Asks each built-in driver that can about all of its machines at once; what each found, by
/// machine name. `machines`: (name, driver name, driver config).
pub async fn prefetch(
    machines: Vec<(String, String, Map<String, Value>)>,
) -> HashMap<String, Value> {
    let mut by_driver: HashMap<String, Vec<NamedConfig>> = HashMap::new();
    for (name, driver, config) in machines {
        if prefetches(&driver) {
            by_driver.entry(driver).or_default().push((name, config));
        }
    }
    let mut found = HashMap::new();
    for (driver, members) in by_driver {
        if let Some(prefetch) = builtin(&driver).and_then(|b| b.prefetch) {
            found.extend(prefetch(members).await);
        }
    }
    found
}

/// libmachine's core drivers: served by a `docker-machine` binary when not built in.
pub const CORE_DRIVERS: &[&str] = &[
    "amazonec2",
    "azure",
    "digitalocean",
    "exoscale",
    "generic",
    "google",
    "hyperv",
    "none",
    "openstack",
    "rackspace",
    "softlayer",
    "virtualbox",
    "vmwarefusion",
    "vmwarevcloudair",
    "vmwarevsphere",
];

/// The names of the built-in drivers, for messages.
pub fn builtin_names() -> String {
    let names: Vec<&str> = BUILTIN_DRIVERS.iter().map(|b| b.name).collect();
    names.join(", ")
}

fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTIN_DRIVERS.iter().find(|b| b.name == name)
}

/// Whether hoist builds in the driver `name` (else it is a plugin).
pub fn is_builtin(name: &str) -> bool {
    builtin(name).is_some()
}

/// Opens the driver `name` on a record's driver config: in-process for a built-in, else by
/// starting its plugin binary.
pub async fn open(
    name: &str,
    config: &Map<String, Value>,
    env: &DriverEnv,
) -> Result<Box<dyn Driver>, DriverError> {
    match builtin(name) {
        Some(b) => (b.open)(config, env),
        None => plugin::open(name, config, env).await,
    }
}

/// The driver config of a machine that does not exist yet (docker-machine's raw driver JSON:
/// a `BaseDriver` with the name and the store path).
pub fn new_config(machine: &str, store_path: &str) -> Map<String, Value> {
    match serde_json::to_value(BaseDriver::new(machine, store_path)) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Reads a built-in driver's typed config from a record.
pub fn typed_config<T: serde::de::DeserializeOwned>(
    config: &Map<String, Value>,
) -> Result<T, DriverError> {
    Ok(serde_json::from_value(Value::Object(config.clone()))?)
}

/// A built-in driver's typed config as the record's JSON object.
pub fn untyped_config<T: serde::Serialize>(config: &T) -> Result<Map<String, Value>, DriverError> {
    match serde_json::to_value(config)? {
        Value::Object(map) => Ok(map),
        _ => Err(DriverError::Config("driver config is not an object".into())),
    }
}

/// A driver future that is ready at once.
pub fn ready<'a, T: Send + 'a>(result: Result<T, DriverError>) -> DriverFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

/// How long to wait for a machine to reach a state after a power action (libmachine: 60 × 3 s).
pub const STATE_WAIT: Duration = Duration::from_secs(180);

/// Waits until the driver reports `wanted`, polling; an error names the last state seen.
pub async fn wait_for_state(
    driver: &dyn Driver,
    wanted: State,
    limit: Duration,
) -> Result<(), DriverError> {
    let started = std::time::Instant::now();
    loop {
        let state = driver.state().await?;
        if state == wanted {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(DriverError::Timeout(format!(
                "waited {}s for the machine to be {wanted}; it is {}",
                limit.as_secs(),
                if state == State::None {
                    "in no known state".to_string()
                } else {
                    state.to_string()
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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

    /// Reads the classic Swarm flags every driver takes (`SetSwarmConfigFromFlags`).
    pub fn set_swarm_config_from_flags(&mut self, flags: &FlagValues) {
        self.swarm_master = flags.bool("swarm-master");
        self.swarm_host = flags.string("swarm-host");
        self.swarm_discovery = flags.string("swarm-discovery");
    }

    /// The machine's directory in the store (`<StorePath>/machines/<MachineName>`).
    pub fn machine_dir(&self) -> PathBuf {
        PathBuf::from(&self.store_path)
            .join("machines")
            .join(&self.machine_name)
    }
}

#[cfg(test)]
mod tests;
