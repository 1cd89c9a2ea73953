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
    /// Switches live-restore on in the running daemon when that is possible and needed; `None`
    /// when the restart goes ahead as a plain one.
    pub async fn enable(remote: &Remote<'_>) -> Result<Option<LiveRestore>, SshError> {
        // A daemon still starting (a host just booted) has nothing to keep, and `docker info`
        // would wait for it.
        let state = remote
            .root(
                "(! command -v systemctl >/dev/null || systemctl is-active -q docker.service) && docker info --format '{{.LiveRestoreEnabled}} {{.Swarm.LocalNodeState}} {{.ContainersRunning}}'",
                None,
            )
            .await?;
        let text = state.stdout_text();
        let running = text.trim().strip_prefix("false inactive ");
        if state.status != 0 || running.is_none_or(|n| n == "0") {
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
