//! `swarm ls` (the nodes, matched to machines) and the SWARM column of `ls`.

use std::collections::{BTreeSet, HashMap};

use crate::context::{Context, program_name};
use crate::engine::EngineClient;
use crate::engine::swarm::Node;
use crate::error::{Error, Result};
use crate::format::{natsort, tabwriter::TabWriter};

use super::*;

/// `swarm ls` as it prints: [`list`] rendered as a table.
pub async fn ls(ctx: &Context, manager: Option<&str>) -> Result<String> {
    Ok(render(&list(ctx, manager).await?))
}

/// One row of `swarm ls`: a node, the machine it is, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub machine: Option<String>,
    pub node: Option<Node>,
}

/// `swarm ls`: the nodes of the swarm `manager` (or the one swarm the store's records name)
/// belongs to, matched to machines — by the node ID each machine's daemon reports, else (for a
/// machine that does not answer) by address — plus the recorded machines that are not nodes.
pub async fn list(ctx: &Context, manager: Option<&str>) -> Result<Vec<NodeRow>> {
    let (members, candidates) = match manager {
        Some(name) => {
            let host = ctx.store.load(name)?;
            let members = recorded_members(ctx, host.swarm_cluster().unwrap_or(name))?;
            let candidates = first_then(name, &members);
            (members, candidates)
        }
        None => {
            let clusters: BTreeSet<String> = ctx
                .store
                .load_all()?
                .into_iter()
                .filter_map(|(_, h)| h.ok()?.swarm_cluster().map(str::to_string))
                .collect();
            let cluster = match clusters.len() {
                1 => clusters.into_iter().next().unwrap_or_default(),
                0 => {
                    return Err(Error::Usage(format!(
                        "Error: no machine is in a swarm hoist knows of; name a manager: {} swarm ls MANAGER",
                        program_name()
                    )));
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "Error: the machines are in several swarms ({}); name a manager of one: {} swarm ls MANAGER",
                        clusters.into_iter().collect::<Vec<_>>().join(", "),
                        program_name()
                    )));
                }
            };
            let members = recorded_members(ctx, &cluster)?;
            (members.clone(), members)
        }
    };
    let (_, nodes) = find_manager(ctx, &candidates).await?;
    // Which node each recorded machine is.
    let ctx2 = ctx.clone();
    let identities = crate::machine::for_each_machine(&members, move |name| {
        let ctx = ctx2.clone();
        async move {
            let member = Member::load(&ctx, &name).await?;
            let node_id = member.probe().await.ok().map(|i| i.node_id);
            Ok((member.ip, node_id))
        }
    })
    .await;
    let mut by_id: HashMap<String, String> = HashMap::new();
    let mut by_ip: HashMap<String, Vec<String>> = HashMap::new();
    let mut unmatched: Vec<String> = Vec::new();
    for (name, identity) in members.iter().zip(identities) {
        match identity {
            Ok((_, Some(id))) if !id.is_empty() => {
                by_id.insert(id, name.clone());
            }
            Ok((ip, _)) => by_ip.entry(ip).or_default().push(name.clone()),
            Err(_) => unmatched.push(name.clone()),
        }
    }
    let mut rows: Vec<NodeRow> = Vec::new();
    let mut matched: BTreeSet<String> = BTreeSet::new();
    for node in nodes {
        let machine = by_id.get(&node.id).cloned().or_else(|| {
            match by_ip.get(node.ip()).map(Vec::as_slice) {
                Some([only]) => Some(only.clone()),
                _ => None,
            }
        });
        if let Some(m) = &machine {
            matched.insert(m.clone());
        }
        rows.push(NodeRow {
            machine,
            node: Some(node),
        });
    }
    for name in members.into_iter().chain(unmatched) {
        if !matched.contains(&name) && !rows.iter().any(|r| r.machine.as_deref() == Some(&name)) {
            rows.push(NodeRow {
                machine: Some(name),
                node: None,
            });
        }
    }
    // Machines by name, then the nodes that are not machines.
    rows.sort_by(|a, b| match (&a.machine, &b.machine) {
        (Some(x), Some(y)) => natsort::compare(x, y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a
            .node
            .as_ref()
            .map(|n| &n.id)
            .cmp(&b.node.as_ref().map(|n| &n.id)),
    });
    Ok(rows)
}

/// The table of `swarm ls`.
pub fn render(rows: &[NodeRow]) -> String {
    let mut text = String::from("MACHINE\tNODE ID\tROLE\tLEADER\tAVAILABILITY\tSTATE\tENGINE\n");
    for row in rows {
        let machine = row.machine.as_deref().unwrap_or("(not a machine)");
        let cells = match &row.node {
            Some(n) => [
                machine,
                &n.id,
                &n.role,
                if n.leader { "*" } else { "" },
                &n.availability,
                &n.state,
                &n.engine_version,
            ],
            None => [machine, "(not a node)", "-", "", "-", "-", "-"],
        };
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    TabWriter::LS.format(&text)
}

/// The Swarm-mode part of a machine's SWARM column in `ls`: `CLUSTER (manager)`,
/// `CLUSTER (worker)`, `CLUSTER (pending)`, or nothing for a machine that left.
pub async fn ls_column(client: &EngineClient, url: &str, cluster: &str) -> String {
    match client.swarm_info(url).await {
        Ok(info) if info.is_active() && info.control_available => format!("{cluster} (manager)"),
        Ok(info) if info.is_active() => format!("{cluster} (worker)"),
        Ok(info) if info.local_node_state == "inactive" => String::new(),
        Ok(info) => format!("{cluster} ({})", info.local_node_state),
        Err(_) => format!("{cluster} (unknown)"),
    }
}
