//! SSH sessions to a stored machine: the endpoint comes from its driver, the host key is checked
//! against the one pinned in its record, and pinned there on first use.

use std::time::Duration;

use super::Machine;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ssh::{Session, SshEndpoint, Target};
use crate::store::config::Host;

/// How long one SSH connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The machine's SSH endpoint, or an error naming its driver when it has none.
pub async fn endpoint(machine: &Machine) -> Result<SshEndpoint> {
    machine.driver.ssh_endpoint().await?.ok_or_else(|| {
        Error::Other(format!(
            "machine \"{}\" uses the {} driver, which has no SSH access",
            machine.host.name,
            machine.driver.name()
        ))
    })
}

/// The host key pinned in a record, if any.
pub fn pinned_key(host: &Host) -> Option<String> {
    host.hoist
        .as_ref()
        .map(|h| h.ssh_host_key.clone())
        .filter(|k| !k.is_empty())
}

/// The SSH target of a machine, pinned to its recorded host key (unless re-trusting).
pub async fn target(machine: &Machine, trust_new_host_key: bool) -> Result<Target> {
    Ok(Target {
        machine: machine.host.name.clone(),
        endpoint: endpoint(machine).await?,
        pinned: pinned_key(&machine.host).filter(|_| !trust_new_host_key),
        connect_timeout: CONNECT_TIMEOUT,
    })
}

/// Connects to a machine over SSH (waiting up to `wait` for it) and pins its host key on first use
/// (or, with `retrust`, whatever key it offers now).
pub async fn connect(
    ctx: &Context,
    machine: &mut Machine,
    wait: Duration,
    retrust: bool,
) -> Result<Session> {
    let target = target(machine, retrust).await?;
    let session = Session::connect_retrying(&target, wait).await?;
    let host = &mut machine.host;
    if pinned_key(host).as_deref() != Some(session.host_key.as_str())
        && !session.host_key.is_empty()
    {
        host.record_mut().ssh_host_key = session.host_key.clone();
        ctx.store.save(host)?;
        if let Some(key) = crate::ssh::parse_host_key(&session.host_key) {
            ctx.report.info(&format!(
                "Pinned the SSH host key of machine \"{}\": {}",
                host.name,
                crate::ssh::fingerprint(&key)
            ));
        }
    }
    Ok(session)
}
