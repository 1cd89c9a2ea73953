//! docker-machine driver plugins: binaries named `docker-machine-driver-NAME` (or, for
//! libmachine's core drivers, a `docker-machine` binary) that serve libmachine's driver RPC
//! protocol, run exactly as libmachine runs them.
//!
//! The binary is started with no arguments and `MACHINE_PLUGIN_TOKEN=42`,
//! `MACHINE_PLUGIN_DRIVER_NAME=NAME`; its first stdout line is the address it listens on (10 s at
//! most). Calls go to the `RPCServerDriver` service (`RpcServerDriver` for plugins older than
//! 0.5.1) over Go's net/rpc with gob ([`rpc`], [`gob`]); the API version must be 1. A heartbeat
//! every 5 s keeps the plugin alive — it exits by itself 10 s after the last one, so a killed
//! hoist leaves no plugin behind — and `Close` ends it. Later stdout lines are shown as
//! `(MACHINE) line`, stderr lines only with `--debug`.

pub mod gob;
pub mod rpc;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use self::gob::{Type, Value};
use self::rpc::{RpcClient, RpcError};
use super::{
    CORE_DRIVERS, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagKind, FlagValue,
    FlagValues, SshEndpoint, State, builtin_names,
};

/// The plugin API version hoist speaks (libmachine's `version.APIVersion`).
pub const API_VERSION: i64 = 1;
/// How long a plugin may take to print its address.
pub const ADDRESS_WAIT: Duration = Duration::from_secs(10);
/// How often the plugin is told hoist is still there (it exits 10 s after the last heartbeat).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a closed plugin may take to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(3);
/// How many of the plugin's last output lines an error quotes.
const LAST_WORDS: usize = 5;

/// The binary that serves driver `name`: `docker-machine-driver-NAME` on the PATH or beside
/// hoist; for a core driver, a `docker-machine` (or `rancher-machine`) binary that is not hoist.
pub fn find_binary(name: &str) -> Result<PathBuf, DriverError> {
    let own = std::env::current_exe().ok();
    let own_dir = own.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
    let lookup = |program: &str| {
        crate::fsutil::path_dirs()
            .into_iter()
            .chain(own_dir.clone())
            .map(|d| d.join(program))
            .find(|p| crate::fsutil::is_executable(p) && !same_file(p, own.as_deref()))
    };
    if CORE_DRIVERS.contains(&name) {
        return ["docker-machine", "rancher-machine"]
            .into_iter()
            .find_map(lookup)
            .ok_or_else(|| DriverError::CoreNotFound {
                name: name.to_string(),
                builtins: builtin_names(),
            });
    }
    lookup(&format!("docker-machine-driver-{name}")).ok_or_else(|| DriverError::NotFound {
        name: name.to_string(),
        builtins: builtin_names(),
    })
}

fn same_file(a: &Path, b: Option<&Path>) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    b.is_some_and(|b| canon(a).is_some() && canon(a) == canon(b))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The plugin's last output lines, quoted when it fails.
#[derive(Default)]
struct LastWords(Mutex<VecDeque<String>>);

impl LastWords {
    fn push(&self, line: &str) {
        let mut lines = lock(&self.0);
        if lines.len() == LAST_WORDS {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }

    fn text(&self) -> String {
        let lines = lock(&self.0);
        lines.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

/// A running plugin process and the connection to it.
struct Process {
    child: Child,
    binary: String,
    last_words: Arc<LastWords>,
    /// The machine name its output lines are shown with (`(web) …`).
    label: Arc<Mutex<String>>,
}

/// Starts the plugin binary at `path` for driver `name` and reads its address.
async fn launch(
    path: &Path,
    name: &str,
    env: &DriverEnv,
) -> Result<(Process, SocketAddr), DriverError> {
    let binary = path.display().to_string();
    let mut child = Command::new(path)
        .env("MACHINE_PLUGIN_TOKEN", "42")
        .env("MACHINE_PLUGIN_DRIVER_NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DriverError::Plugin(format!("cannot start the plugin {binary}: {e}")))?;
    let last_words = Arc::new(LastWords::default());
    let label = Arc::new(Mutex::new(env.machine.clone()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(DriverError::Plugin(format!("no output pipes for {binary}")));
    };
    {
        let (report, label, words) = (env.report.clone(), label.clone(), last_words.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                words.push(&line);
                report.debug(&format!("({}) DBG | {line}", lock(&label)));
            }
        });
    }
    let mut stdout = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(ADDRESS_WAIT, stdout.next_line()).await;
    let process = Process {
        child,
        binary: binary.clone(),
        last_words,
        label,
    };
    let line = match first {
        Err(_) => {
            return Err(DriverError::Plugin(format!(
                "Failed to dial the plugin server in {}s: {binary} printed no address",
                ADDRESS_WAIT.as_secs()
            )));
        }
        Ok(Ok(Some(line))) => line,
        Ok(_) => {
            let mut process = process;
            let status = tokio::time::timeout(EXIT_WAIT, process.child.wait()).await;
            // Give the stderr reader a moment to take the last lines.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(DriverError::Plugin(format!(
                "the plugin {binary} exited before printing its address{}{}",
                match status {
                    Ok(Ok(s)) => format!(" ({s})"),
                    _ => String::new(),
                },
                quoted(&process.last_words.text())
            )));
        }
    };
    let addr: SocketAddr = line.trim().parse().map_err(|_| {
        DriverError::Plugin(format!(
            "the plugin {binary} printed {line:?} where its address (HOST:PORT) belongs"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(DriverError::Plugin(format!(
            "the plugin {binary} listens on {addr}, which is not a loopback address; refusing to connect"
        )));
    }
    {
        let (report, label, words) = (
            env.report.clone(),
            process.label.clone(),
            process.last_words.clone(),
        );
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                words.push(&line);
                report.info(&format!("({}) {line}", lock(&label)));
            }
        });
    }
    Ok((process, addr))
}

fn quoted(last_words: &str) -> String {
    if last_words.is_empty() {
        String::new()
    } else {
        format!("; its last words: {last_words}")
    }
}

/// A driver served by a plugin process.
pub struct PluginDriver {
    name: String,
    service: &'static str,
    client: Arc<RpcClient>,
    process: Option<Process>,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn empty() -> (Type, Value) {
    (Type::structure("struct {}", &[]), Value::Struct(vec![]))
}

/// Starts the plugin for driver `name` and gives it the machine's config, as libmachine's
/// `NewRPCClientDriver` does: GetVersion, SetConfigRaw, GetMachineName.
pub async fn open(
    name: &str,
    config: &Map<String, Json>,
    env: &DriverEnv,
) -> Result<Box<dyn Driver>, DriverError> {
    open_binary(&find_binary(name)?, name, config, env).await
}

/// [`open`] with the plugin binary at `path`.
async fn open_binary(
    path: &Path,
    name: &str,
    config: &Map<String, Json>,
    env: &DriverEnv,
) -> Result<Box<dyn Driver>, DriverError> {
    let (process, addr) = launch(path, name, env).await?;
    let binary = process.binary.clone();
    let client = tokio::task::spawn_blocking(move || RpcClient::connect(addr, ADDRESS_WAIT))
        .await
        .map_err(|e| DriverError::Plugin(e.to_string()))?
        .map_err(|e| {
            DriverError::Plugin(format!(
                "cannot connect to the plugin {binary} at {addr}: {e}"
            ))
        })?;
    let client = Arc::new(client);
    let mut driver = PluginDriver {
        name: name.to_string(),
        service: "RPCServerDriver",
        client: client.clone(),
        process: Some(process),
        heartbeat: tokio::spawn(async {}),
    };
    let version = match driver.call("GetVersion", empty()).await {
        Err(DriverError::Plugin(e)) if e.contains("can't find service") => {
            driver.service = "RpcServerDriver";
            driver.call("GetVersion", empty()).await?
        }
        other => other?,
    };
    let version = version.as_int().unwrap_or(-1);
    if version != API_VERSION {
        driver.close_now().await;
        return Err(DriverError::Plugin(format!(
            "Driver binary uses an incompatible API version ({version})"
        )));
    }
    let service = driver.service;
    // The plugin's 10 s without a heartbeat began when it printed its address; the first beat
    // goes now, not an interval later, so a plugin slow to answer GetVersion (a loaded machine)
    // is not left to exit in the middle of the calls that follow.
    driver.heartbeat = tokio::spawn(async move {
        let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            beat.tick().await;
            let (ty, arg) = empty();
            if client
                .call(&format!("{service}.Heartbeat"), &ty, &arg)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    driver.set_config_now(config).await?;
    driver.call("GetMachineName", empty()).await?;
    Ok(Box::new(driver))
}

impl PluginDriver {
    async fn call(&self, method: &str, (ty, arg): (Type, Value)) -> Result<Value, DriverError> {
        let full = format!("{}.{method}", self.service);
        match self.client.call(&full, &ty, &arg).await {
            Ok(v) => Ok(v),
            Err(RpcError::Remote(e)) => Err(DriverError::Plugin(e)),
            Err(RpcError::Closed(reason)) => Err(self.gone(method, &reason).await),
        }
    }

    /// The error for a plugin whose connection ended: how its process ended and its last words.
    async fn gone(&self, method: &str, reason: &str) -> DriverError {
        let Some(process) = &self.process else {
            return DriverError::Plugin(format!("the plugin is closed ({method}: {reason})"));
        };
        // Let the output readers take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        DriverError::Plugin(format!(
            "the plugin {} failed during {method}: {reason}{}",
            process.binary,
            quoted(&process.last_words.text())
        ))
    }

    async fn string(&self, method: &str) -> Result<String, DriverError> {
        Ok(self.call(method, empty()).await?.as_str().to_string())
    }

    async fn unit(&self, method: &str) -> Result<(), DriverError> {
        self.call(method, empty()).await.map(|_| ())
    }

    async fn set_config_now(&self, config: &Map<String, Json>) -> Result<(), DriverError> {
        if let (Some(process), Some(Json::String(name))) =
            (&self.process, config.get("MachineName"))
        {
            *lock(&process.label) = name.clone();
        }
        let raw = serde_json::to_vec(config)?;
        self.call("SetConfigRaw", (Type::Bytes, Value::Bytes(raw)))
            .await
            .map(|_| ())
    }

    async fn close_now(&mut self) {
        self.heartbeat.abort();
        if let Some(mut process) = self.process.take() {
            let (ty, arg) = empty();
            let close = format!("{}.Close", self.service);
            let _ = tokio::time::timeout(EXIT_WAIT, self.client.call(&close, &ty, &arg)).await;
            self.client.shutdown();
            if tokio::time::timeout(EXIT_WAIT, process.child.wait())
                .await
                .is_err()
            {
                let _ = process.child.kill().await;
            }
        }
        self.client.shutdown();
    }
}

impl Drop for PluginDriver {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Some(process) = &mut self.process {
            let _ = process.child.start_kill();
        }
    }
}

/// The gob type of `*rpcdriver.RPCFlags`.
fn rpc_flags_type() -> Type {
    Type::structure(
        "RPCFlags",
        &[(
            "Values",
            Type::Map(Box::new(Type::String), Box::new(Type::Interface)),
        )],
    )
}

/// `SetConfigFromFlags`'s argument: a `DriverOptions` interface holding `*rpcdriver.RPCFlags`.
pub fn flags_to_gob(flags: &FlagValues) -> Value {
    let values = flags
        .0
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FlagValue::String(s) => {
                    Value::interface("string", Type::String, Value::String(s.clone()))
                }
                FlagValue::Int(i) => Value::interface("int", Type::Int, Value::Int(*i)),
                FlagValue::Bool(b) => Value::interface("bool", Type::Bool, Value::Bool(*b)),
                FlagValue::StringSlice(items) => Value::interface(
                    "[]string",
                    Type::Slice(Box::new(Type::String)),
                    Value::Slice(items.iter().map(|s| Value::String(s.clone())).collect()),
                ),
            };
            (Value::String(k.clone()), v)
        })
        .collect();
    Value::interface(
        "*rpcdriver.RPCFlags",
        rpc_flags_type(),
        Value::Struct(vec![("Values".into(), Value::Map(values))]),
    )
}

/// Reads `GetCreateFlags`' reply: `[]mcnflag.Flag` of `*mcnflag.{String,StringSlice,Int,Bool}Flag`.
pub fn flags_from_gob(reply: &Value) -> Result<Vec<Flag>, DriverError> {
    let Value::Slice(items) = reply else {
        return Err(DriverError::Plugin(format!(
            "GetCreateFlags answered {reply:?}"
        )));
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Interface(Some(c)) => Some(c),
            _ => None,
        })
        .map(|c| {
            let text = |f: &str| {
                c.value
                    .field(f)
                    .map(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let kind = match c.name.trim_start_matches('*') {
                "mcnflag.StringFlag" => FlagKind::String(text("Value")),
                "mcnflag.IntFlag" => {
                    FlagKind::Int(c.value.field("Value").and_then(Value::as_int).unwrap_or(0))
                }
                "mcnflag.BoolFlag" => FlagKind::Bool,
                "mcnflag.StringSliceFlag" => FlagKind::StringSlice(match c.value.field("Value") {
                    Some(Value::Slice(v)) => v.iter().map(|s| s.as_str().to_string()).collect(),
                    _ => Vec::new(),
                }),
                other => {
                    return Err(DriverError::Plugin(format!(
                        "the plugin declared a flag of unknown type {other:?}"
                    )));
                }
            };
            Ok(Flag {
                name: text("Name"),
                usage: text("Usage"),
                env_var: text("EnvVar"),
                kind,
            })
        })
        .collect()
}

impl Driver for PluginDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn config(&self) -> DriverFuture<'_, Map<String, Json>> {
        Box::pin(async {
            let raw = self.call("GetConfigRaw", empty()).await?;
            let Value::Bytes(bytes) = raw else {
                return Err(DriverError::Plugin(format!(
                    "GetConfigRaw answered {raw:?}"
                )));
            };
            match serde_json::from_slice(&bytes)? {
                Json::Object(map) => Ok(map),
                _ => Err(DriverError::Plugin(
                    "GetConfigRaw answered JSON that is not an object".into(),
                )),
            }
        })
    }
    fn set_config(&mut self, config: Map<String, Json>) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.set_config_now(&config).await })
    }
    fn create_flags(&self) -> DriverFuture<'_, Vec<Flag>> {
        Box::pin(async { flags_from_gob(&self.call("GetCreateFlags", empty()).await?) })
    }
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.call("SetConfigFromFlags", (Type::Interface, flags_to_gob(flags)))
                .await
                .map(|_| ())
        })
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("PreCreateCheck"))
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Create"))
    }
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Remove"))
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Start"))
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Stop"))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Restart"))
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unit("Kill"))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        Box::pin(async {
            let n = self.call("GetState", empty()).await?;
            Ok(State::from_number(n.as_int().unwrap_or(-1)))
        })
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        Box::pin(self.string("GetIP"))
    }
    fn url(&self) -> DriverFuture<'_, String> {
        Box::pin(self.string("GetURL"))
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        Box::pin(async {
            let host = self.string("GetSSHHostname").await?;
            let port = self
                .call("GetSSHPort", empty())
                .await?
                .as_int()
                .unwrap_or(22);
            let user = self.string("GetSSHUsername").await?;
            let key = self.string("GetSSHKeyPath").await?;
            Ok(Some(SshEndpoint {
                host,
                port: u16::try_from(port)
                    .map_err(|_| DriverError::Plugin(format!("the plugin gave SSH port {port}")))?,
                user,
                key: Some(key).filter(|k| !k.is_empty()).map(PathBuf::from),
                key_origin: None,
            }))
        })
    }
    fn close(mut self: Box<Self>) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.close_now().await })
    }
}
