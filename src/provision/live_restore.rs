//! Restarting dockerd without stopping its containers: dockerd's `live-restore` keeps them running
//! while the daemon is down, and it can be switched on in a running daemon by a reload (SIGHUP)
//! of `/etc/docker/daemon.json`. Around a restart (new certificates, a new drop-in), hoist turns it
//! on for the restart only and then puts the host's `daemon.json` back as it was, byte for byte.
//!
//! Not done where it cannot work or is not needed: a swarm-mode node (dockerd refuses
//! live-restore there), a daemon that already has it, a daemon that is not running, still
//! starting or runs no container (a fresh host: nothing to keep), a `daemon.json` that is not a
//! JSON object.

use serde_json::{Map, Value};

use crate::ssh::{Remote, SshError};

const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// The shell command that prints the running daemon's `GET /info` as JSON, or nothing where
/// dockerd does not run (or is still starting: a host just booted, nothing to keep, and the
/// daemon would make the question wait). curl on the daemon's socket where the host has it (the
/// docker CLI takes seconds to start on a small or emulated host), else the CLI.
pub const DAEMON_INFO: &str = "if { ! command -v systemctl >/dev/null || systemctl is-active -q docker.service; } && command -v dockerd >/dev/null; then curl -sf --max-time 20 --unix-socket /var/run/docker.sock http://docker/info 2>/dev/null || docker info --format '{{json .}}' 2>/dev/null; fi; true";

/// What a restart would do to the running daemon, from its `GET /info`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonState {
    pub live_restore: bool,
    /// `inactive`, `active`, `pending`, …
    pub swarm: String,
    pub containers_running: u64,
}

impl DaemonState {
    /// The state in a daemon's `GET /info` answer (`None`: no answer, not a running daemon).
    pub fn from_info(json: &str) -> Option<DaemonState> {
        let info: Value = serde_json::from_str(json.trim()).ok()?;
        Some(DaemonState {
            live_restore: info["LiveRestoreEnabled"].as_bool()?,
            swarm: info["Swarm"]["LocalNodeState"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            containers_running: info["ContainersRunning"].as_u64().unwrap_or(0),
        })
    }

    /// Whether hoist must switch live-restore on so that a restart keeps containers running: they
    /// run, live-restore is off, and the node is not in a swarm (which refuses it).
    fn needs_live_restore(&self) -> bool {
        !self.live_restore && self.swarm == "inactive" && self.containers_running > 0
    }
}

/// `daemon.json` as it was before hoist switched live-restore on (`None`: there was none).
pub struct LiveRestore {
    original: Option<Vec<u8>>,
    object: Map<String, Value>,
}

/// Waits (up to 5 s) until the running daemon reports `LiveRestoreEnabled` as `want`.
async fn reloaded(remote: &Remote<'_>, want: bool) -> Result<bool, SshError> {
    let script = format!(
        "systemctl reload docker || exit 1; for i in $(seq 50); do [ \"$(docker info --format '{{{{.LiveRestoreEnabled}}}}' 2>/dev/null)\" = {want} ] && exit 0; sleep 0.1; done; exit 1"
    );
    Ok(remote.root(&script, None).await?.status == 0)
}

fn with_live_restore(object: &Map<String, Value>, on: bool) -> Vec<u8> {
    let mut object = object.clone();
    object.insert("live-restore".into(), Value::Bool(on));
    let mut text = serde_json::to_vec_pretty(&Value::Object(object)).unwrap_or_default();
    text.push(b'\n');
    text
}

impl LiveRestore {
    /// Switches live-restore on in the running daemon when that is possible and needed (`daemon`
    /// as the provisioning probe found it); `None` when the restart goes ahead as a plain one.
    pub async fn enable(
        remote: &Remote<'_>,
        daemon: &DaemonState,
    ) -> Result<Option<LiveRestore>, SshError> {
        if !daemon.needs_live_restore() {
            return Ok(None);
        }
        let current = remote.root(&format!("cat {DAEMON_JSON}"), None).await?;
        let original = (current.status == 0).then_some(current.stdout);
        let object = match &original {
            None => Map::new(),
            Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(o)) if !o.contains_key("live-restore") => o,
                _ => return Ok(None),
            },
        };
        let on = LiveRestore { original, object };
        remote
            .upload(DAEMON_JSON, &with_live_restore(&on.object, true), "644")
            .await?;
        if reloaded(remote, true).await? {
            Ok(Some(on))
        } else {
            on.put_back(remote).await?;
            Ok(None)
        }
    }

    /// After the restart: live-restore off again in the running daemon (a reload only changes
    /// what the file sets), then the host's own `daemon.json` back.
    pub async fn disable(self, remote: &Remote<'_>) -> Result<(), SshError> {
        remote
            .upload(DAEMON_JSON, &with_live_restore(&self.object, false), "644")
            .await?;
        reloaded(remote, false).await?;
        self.put_back(remote).await
    }

    async fn put_back(&self, remote: &Remote<'_>) -> Result<(), SshError> {
        match &self.original {
            Some(bytes) => remote.upload(DAEMON_JSON, bytes, "644").await,
            None => remote
                .root_ok(
                    "removing hoist's temporary daemon.json",
                    &format!("rm -f {DAEMON_JSON}"),
                    None,
                )
                .await
                .map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_state_is_read_from_info_as_curl_or_the_cli_prints_it() {
        // curl's GET /info, abridged, and `docker info --format '{{json .}}'` (the server's
        // fields at the top, the client's beside them).
        let api = r#"{"ID":"KZ7M","Containers":3,"ContainersRunning":2,"LiveRestoreEnabled":false,"Swarm":{"NodeID":"","LocalNodeState":"inactive"}}"#;
        let cli = r#"{"ID":"KZ7M","ContainersRunning":0,"LiveRestoreEnabled":true,"Swarm":{"LocalNodeState":"active"},"ClientInfo":{"Debug":false}}"#;
        let running = DaemonState::from_info(api).unwrap();
        assert_eq!(
            running,
            DaemonState {
                live_restore: false,
                swarm: "inactive".into(),
                containers_running: 2
            }
        );
        assert!(running.needs_live_restore());
        let idle = DaemonState::from_info(&format!("{cli}\n")).unwrap();
        assert_eq!((idle.live_restore, idle.swarm.as_str()), (true, "active"));
        assert!(!idle.needs_live_restore());
        let in_swarm = DaemonState {
            swarm: "active".into(),
            ..running.clone()
        };
        assert!(
            !in_swarm.needs_live_restore(),
            "a swarm node refuses live-restore"
        );
        let nothing_runs = DaemonState {
            containers_running: 0,
            ..running
        };
        assert!(!nothing_runs.needs_live_restore());
        for no_daemon in ["", "\n", "Cannot connect to the Docker daemon", "{}"] {
            assert_eq!(DaemonState::from_info(no_daemon), None, "{no_daemon:?}");
        }
    }
}
