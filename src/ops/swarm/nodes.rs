//! Node changes: `swarm leave`, `promote`, `demote`, and taking a machine out of its swarm before
//! `rm`.

use std::time::Duration;

use crate::context::{Context, program_name};
use crate::engine::swarm::SwarmInfo;
use crate::error::{Error, Result};

use super::*;

/// Takes a machine out of its swarm: drained (its tasks move elsewhere), demoted if a manager,
/// left, and removed from the managers' node list. The last manager leaves only with `force`
/// (which ends the swarm); an unreachable machine is only removed from the list, with `force`.
/// The machine's record is not changed (see [`leave`]).
pub async fn take_out(ctx: &Context, name: &str, force: bool) -> Result<String> {
    let member = Member::load(ctx, name).await?;
    let info = member.probe().await;
    if let Ok(info) = &info
        && info.local_node_state == "inactive"
    {
        return Ok(format!("Machine \"{name}\" is not in a swarm."));
    }
    let cluster = cluster_of(&member)?;
    let (manager, nodes) = match find_manager(ctx, &managers_to_ask(ctx, &member)?).await {
        Ok(found) => found,
        Err(e) if force && info.as_ref().is_ok_and(SwarmInfo::is_active) => {
            member.leave(true).await?;
            return Ok(format!(
                "Machine \"{name}\" left swarm \"{cluster}\" on its own ({e})."
            ));
        }
        Err(e) => {
            return Err(Error::Other(format!(
                "{e}; take machine \"{name}\" out of its swarm on its own with --force"
            )));
        }
    };
    let node = match &info {
        Ok(info) => nodes.iter().find(|n| n.id == info.node_id),
        Err(_) => nodes.iter().find(|n| n.ip() == member.ip),
    };
    let Some(node) = node.cloned() else {
        // Not a node of this swarm (any more): only the machine's own state to undo.
        if let Ok(info) = &info
            && info.is_active()
        {
            member.leave(force).await?;
        }
        return Ok(format!(
            "Machine \"{name}\" is not a node of swarm \"{cluster}\"."
        ));
    };
    let managers = nodes.iter().filter(|n| n.role == "manager").count();
    if manager.name == member.name {
        // No other manager answers: this is the last one hoist can reach.
        if !force {
            let why = match managers {
                1 => format!(
                    "it is the last manager of swarm \"{cluster}\" ({} nodes): leaving ends the swarm",
                    nodes.len()
                ),
                n => format!(
                    "the other {} managers of swarm \"{cluster}\" do not answer",
                    n - 1
                ),
            };
            return Err(Error::Other(format!(
                "machine \"{name}\" was not taken out of its swarm: {why}; do it anyway with --force"
            )));
        }
        member.leave(true).await?;
        return Ok(format!(
            "Machine \"{name}\" left swarm \"{cluster}\", which it was the last manager of."
        ));
    }
    if info.is_err() && !force {
        let e = info.err().map(|e| e.to_string()).unwrap_or_default();
        return Err(Error::Other(format!(
            "{e}; remove it from the node list of swarm \"{cluster}\" without its consent with --force"
        )));
    }
    update_node(&manager, &node.id, "Availability", "drain").await?;
    if node.role == "manager" {
        update_node(&manager, &node.id, "Role", Role::Worker.as_str()).await?;
    }
    if info.is_ok() {
        leave_when_worker(&member).await?;
    }
    manager
        .client
        .remove_node(&manager.url, &node.id, true)
        .await
        .map_err(|e| manager.failed(&format!("could not remove node {}", node.id), e))?;
    Ok(format!(
        "Machine \"{name}\" was drained and left swarm \"{cluster}\"."
    ))
}

/// Leaves the swarm once a demotion has taken effect (the daemon refuses a manager's leave).
pub(super) async fn leave_when_worker(member: &Member) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        match member.client.swarm_leave(&member.url, false).await {
            Ok(()) => return Ok(()),
            Err(e)
                if tokio::time::Instant::now() < deadline && e.to_string().contains("manager") =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(member.failed("could not leave its swarm", e)),
        }
    }
}

/// Sets one field of a node's spec through `manager`, on the node's current version; retried
/// while the swarm is still settling (another update came first, or a promotion or demotion is
/// not through raft yet).
pub(super) async fn update_node(
    manager: &Member,
    id: &str,
    field: &str,
    value: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let nodes = manager.nodes().await?;
        let node = nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            Error::Other(format!(
                "node {id} is no longer in the swarm of \"{}\"",
                manager.name
            ))
        })?;
        match manager
            .client
            .update_node(&manager.url, node, field, value)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline && is_settling(&e.to_string()) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(manager.failed(&format!("could not set {field} of node {id}"), e));
            }
        }
    }
}

/// Whether a manager's refusal is one that passes once the swarm has settled.
pub(super) fn is_settling(message: &str) -> bool {
    ["out of sequence", "raft memberlist", "not yet", "try again"]
        .iter()
        .any(|m| message.contains(m))
}

/// Waits until a machine's daemon acts in `role` (a promotion or demotion has taken effect).
pub(super) async fn wait_for_role(member: &Member, role: Role) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let info = member.info().await?;
        if info.control_available == (role == Role::Manager) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Other(format!(
                "machine \"{}\" is still not a {} {}s after the change; see '{} swarm ls'",
                member.name,
                role.as_str(),
                SETTLE_TIMEOUT.as_secs(),
                program_name()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `swarm leave`: takes each machine out of its swarm, one after another (each may change the
/// managers' quorum), and forgets the swarm in its record.
pub async fn leave(ctx: &Context, names: &[String], force: bool) -> Vec<Result<String>> {
    let mut results = Vec::new();
    for name in names {
        let result = async {
            let message = take_out(ctx, name, force).await?;
            record_cluster(ctx, name, "").await?;
            Ok(message)
        }
        .await;
        results.push(result);
    }
    results
}

/// `swarm promote` / `swarm demote`: sets the role of each machine's node.
pub async fn set_role(ctx: &Context, names: &[String], role: Role) -> Vec<Result<String>> {
    let mut results = Vec::new();
    for name in names {
        let result = async {
            let member = Member::load(ctx, name).await?;
            let info = member.info().await?;
            if !info.is_active() {
                return Err(Error::Other(format!(
                    "machine \"{name}\" is not in a swarm"
                )));
            }
            let (manager, _) = find_manager(ctx, &managers_to_ask(ctx, &member)?).await?;
            update_node(&manager, &info.node_id, "Role", role.as_str()).await?;
            wait_for_role(&member, role).await?;
            Ok(format!(
                "Machine \"{name}\" is now a {} of its swarm.",
                role.as_str()
            ))
        }
        .await;
        results.push(result);
    }
    results
}
