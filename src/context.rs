//! What a command runs with: the store, the name hoist was invoked as, and the global options.
//! Every environment variable hoist reads is listed here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::report::Reporter;
use crate::store::Store;

pub use crate::program::{program_name, set_program_name};

/// `MACHINE_STORAGE_PATH`: the store root (default `~/.docker/machine`).
pub const ENV_STORAGE_PATH: &str = "MACHINE_STORAGE_PATH";
/// `MACHINE_DEBUG`: debug output, parsed like Go's `strconv.ParseBool`.
pub const ENV_DEBUG: &str = "MACHINE_DEBUG";
/// `MACHINE_NATIVE_SSH`: use the built-in SSH client even where `ssh` is installed.
pub const ENV_NATIVE_SSH: &str = "MACHINE_NATIVE_SSH";
/// `MACHINE_DRIVER`: the default driver of `create`.
pub const ENV_DRIVER: &str = "MACHINE_DRIVER";
/// `DOCKER_HOST`: which machine is active.
pub const ENV_DOCKER_HOST: &str = "DOCKER_HOST";
/// `SHELL`: the shell `env` writes for.
pub const ENV_SHELL: &str = "SHELL";
/// `USER`: the Organization of the certificates.
pub const ENV_USER: &str = "USER";
/// `DOCKER_CONFIG`: the docker CLI's configuration directory (default `~/.docker`), where its
/// contexts are (written by `ops::docker_context`).
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// `MACHINE_REMOTE_TIMEOUT`: seconds one remote command may take (an install, an upgrade)
/// before it fails and frees the machine's lock; default 1800.
pub const ENV_REMOTE_TIMEOUT: &str = "MACHINE_REMOTE_TIMEOUT";

/// How long one remote command may take ([`ENV_REMOTE_TIMEOUT`]).
pub fn remote_timeout() -> std::time::Duration {
    let seconds = std::env::var(ENV_REMOTE_TIMEOUT)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1800);
    std::time::Duration::from_secs(seconds)
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The default store root: `$HOME/.docker/machine`.
pub fn default_storage_path() -> PathBuf {
    home_dir().join(".docker").join("machine")
}

/// `$HOME` (`/` when unset).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The docker CLI's configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> PathBuf {
    match std::env::var_os(ENV_DOCKER_CONFIG).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home_dir().join(".docker"),
    }
}

/// User-supplied replacements for the store's CA and client certificate (`--tls-*` globals).
#[derive(Debug, Clone, Default)]
pub struct TlsOverrides {
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Everything a command needs besides its own arguments.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    /// Where messages that come up along the way go (a plugin's output, a driver's steps).
    pub report: Arc<dyn Reporter>,
    /// The full command line as invoked (for the `env` hint).
    pub argv: Vec<String>,
    pub debug: bool,
    pub native_ssh: bool,
    pub tls: TlsOverrides,
}

impl Context {
    /// The user name for certificate organizations (`$USER`, else `unknown`).
    pub fn username() -> String {
        std::env::var(ENV_USER)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }

    /// `$DOCKER_HOST`, or "".
    pub fn docker_host() -> String {
        std::env::var(ENV_DOCKER_HOST).unwrap_or_default()
    }
}
