//! Swarm mode across machines: `swarm init|join|ls|leave|promote|demote`, and the Swarm-mode part
//! of `create`, `rm`, `ls` and `env --swarm`.
//!
//! Everything goes through the machines' Docker APIs over mutual TLS, nothing over SSH. Join
//! tokens are fetched from a manager at the moment of a join and live only in memory: never
//! printed, logged, stored or put on a remote command line. A machine's record keeps only the
//! name of its cluster (the machine the swarm was initialised on); roles and states are the
//! daemons' to say, asked live.
//!
//! Split by verb: [`join`] (init, join), [`nodes`] (leave, promote, demote, and `rm`'s take-out),
//! [`list`] (`swarm ls`, the SWARM column); the members and managers they share are here.
mod join;
mod list;
mod nodes;

pub use join::{InitOptions, init, join, record_cluster};
pub use list::{NodeRow, list, ls, ls_column, render};
pub use nodes::{leave, set_role, take_out};

use std::net::IpAddr;
use std::time::Duration;

use crate::context::{Context, program_name};
use crate::engine::swarm::{Node, SwarmInfo};
use crate::engine::{EngineClient, EngineError};
use crate::error::{Error, Result};
use crate::machine::Machine;

/// The ports swarm nodes must reach on each other, as errors and the README name them.
pub const SWARM_PORTS: &str = "2377/tcp (cluster management), 7946/tcp and 7946/udp (node communication), 4789/udp (overlay networks)";

/// How long one swarm call may take (connecting included).
pub(super) const SWARM_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a join may take: it returns only once the node has joined (or given up).
pub(super) const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long asking a machine's swarm state may take when looking for a manager.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a demoted manager may take to become a worker, and a drained node to be left.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A role in a swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Manager,
}

impl Role {
    /// `worker` or `manager`, as the Docker API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        }
    }
}

/// A machine as swarm operations use it: where its daemon answers over TLS, the address its
/// peers reach it at, and the cluster hoist recorded for it.
pub struct Member {
    pub name: String,
    pub url: String,
    pub ip: String,
    pub cluster: Option<String>,
    client: EngineClient,
}

impl Member {
    /// Loads a machine of the store; fails for a machine whose create did not finish.
    pub async fn load(ctx: &Context, name: &str) -> Result<Member> {
        let machine = Machine::load(ctx, name).await?;
        let located = async {
            if let Some(error) = machine.host.failure() {
                return Err(Error::Other(format!(
                    "machine \"{name}\" is not ready: {error}; finish it with '{} provision {name}'",
                    program_name()
                )));
            }
            let url = machine.docker_url().await?;
            let ip = machine.driver.ip().await?;
            Ok((url, ip))
        }
        .await;
        let host = machine.host.clone();
        machine.close().await;
        let (url, ip) = located?;
        let tls = crate::cert::client_config(&crate::machine::cert_paths(&host))?;
        Ok(Member {
            name: name.to_string(),
            url,
            ip,
            cluster: host.swarm_cluster().map(str::to_string),
            client: EngineClient::new(tls, SWARM_CALL_TIMEOUT),
        })
    }

    /// The daemon's own swarm state. A manager whose swarm lost its quorum answers a ping but
    /// not this: said so.
    async fn info(&self) -> Result<SwarmInfo> {
        match self.client.swarm_info(&self.url).await {
            Ok(info) => Ok(info),
            Err(e @ EngineError::Timeout { .. }) => {
                match self
                    .client
                    .with_timeout(PROBE_TIMEOUT)
                    .check_tls(&self.url)
                    .await
                {
                    Ok(()) => Err(Error::Other(format!(
                        "the Docker daemon of machine \"{}\" answers, but not about its swarm: the swarm has probably lost its quorum (more than half of its managers must reach each other)",
                        self.name
                    ))),
                    Err(_) => Err(self.failed("does not answer", e)),
                }
            }
            Err(e) => Err(self.failed("does not answer", e)),
        }
    }

    /// The daemon's swarm state within [`PROBE_TIMEOUT`].
    async fn probe(&self) -> Result<SwarmInfo> {
        tokio::time::timeout(PROBE_TIMEOUT, self.info())
            .await
            .unwrap_or_else(|_| {
                Err(Error::Other(format!(
                    "machine \"{}\" does not answer within {}s",
                    self.name,
                    PROBE_TIMEOUT.as_secs()
                )))
            })
    }

    /// The swarm's nodes, through this machine as a manager.
    async fn nodes(&self) -> Result<Vec<Node>> {
        self.client
            .nodes(&self.url)
            .await
            .map_err(|e| self.failed("cannot list the swarm's nodes", e))
    }

    /// Leaves the swarm on the machine's own (`force`: even as a manager).
    async fn leave(&self, force: bool) -> Result<()> {
        self.client
            .swarm_leave(&self.url, force)
            .await
            .map_err(|e| self.failed("could not leave its swarm", e))
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Other(format!("machine \"{}\" {what}: {e}", self.name))
    }

    /// The address to advertise to the swarm: `given`, else the machine's IP (a host name is
    /// resolved). `None` when the machine is reached through a loopback address (a forwarded
    /// port): its peers cannot reach it there.
    async fn advertise_addr(&self, given: Option<&str>) -> Result<Option<String>> {
        if let Some(addr) = given.filter(|a| !a.is_empty()) {
            return Ok(Some(addr.to_string()));
        }
        let ip = match self.ip.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => tokio::net::lookup_host((self.ip.as_str(), 0))
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .map(|a| a.ip())
                .ok_or_else(|| {
                    Error::Other(format!(
                        "machine \"{}\": cannot resolve its address {:?} to advertise to the swarm; give one with --advertise-addr",
                        self.name, self.ip
                    ))
                })?,
        };
        Ok((!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string()))
    }
}

/// The machines of the store whose records name `cluster`.
pub(super) fn recorded_members(ctx: &Context, cluster: &str) -> Result<Vec<String>> {
    Ok(ctx
        .store
        .load_all()?
        .into_iter()
        .filter_map(|(name, host)| {
            host.ok()
                .filter(|h| h.swarm_cluster() == Some(cluster))
                .map(|_| name)
        })
        .collect())
}

/// A manager of a swarm that answers, with the swarm's nodes: the first of `candidates` (asked
/// in parallel) that is a manager and can list the nodes (which needs a leader).
pub(super) async fn find_manager(
    ctx: &Context,
    candidates: &[String],
) -> Result<(Member, Vec<Node>)> {
    let ctx2 = ctx.clone();
    let probed = crate::machine::for_each_machine(candidates, move |name| {
        let ctx = ctx2.clone();
        async move {
            let member = Member::load(&ctx, &name).await?;
            let info = member.probe().await?;
            Ok((member, info))
        }
    })
    .await;
    let mut reasons = Vec::new();
    for (name, probe) in candidates.iter().zip(probed) {
        match probe {
            Ok((member, info)) if info.is_active() && info.control_available => {
                match tokio::time::timeout(PROBE_TIMEOUT, member.nodes()).await {
                    Ok(Ok(nodes)) => return Ok((member, nodes)),
                    Ok(Err(e)) => reasons.push(e.to_string()),
                    Err(_) => reasons.push(format!("machine \"{name}\" did not list the nodes")),
                }
            }
            Ok(_) => {}
            Err(e) => reasons.push(e.to_string()),
        }
    }
    let why = match reasons.is_empty() {
        true => "none of them is a manager".to_string(),
        false => reasons.join("; "),
    };
    Err(Error::Other(format!(
        "no manager of the swarm answers (asked {}): {why}",
        candidates.join(", ")
    )))
}

/// The swarm a machine is recorded in, or the error that says how to record it.
pub(super) fn cluster_of(member: &Member) -> Result<String> {
    member.cluster.clone().ok_or_else(|| {
        Error::Other(format!(
            "machine \"{n}\" is not in a swarm hoist joined it to; if it is in one, record it with '{p} swarm join MANAGER {n}'",
            n = member.name,
            p = program_name()
        ))
    })
}

/// The other machines of a member's cluster, then the member itself: where to look for a
/// manager that acts on it.
pub(super) fn managers_to_ask(ctx: &Context, member: &Member) -> Result<Vec<String>> {
    let cluster = cluster_of(member)?;
    let mut names: Vec<String> = recorded_members(ctx, &cluster)?
        .into_iter()
        .filter(|n| *n != member.name)
        .collect();
    names.push(member.name.clone());
    Ok(names)
}

/// The name of a machine that manages `name`'s swarm and answers: `name` itself when it is a
/// manager. `None` for a machine hoist has not joined to a swarm (`env --swarm` then treats it as
/// docker-machine's classic Swarm).
pub async fn reachable_manager(ctx: &Context, name: &str) -> Result<Option<String>> {
    let host = ctx.store.load(name)?;
    let Some(cluster) = host.swarm_cluster() else {
        return Ok(None);
    };
    let candidates = first_then(name, &recorded_members(ctx, cluster)?);
    let (manager, _) = find_manager(ctx, &candidates).await?;
    Ok(Some(manager.name))
}

/// `first`, then the other `members`: the order to ask for a manager, `first` preferred.
pub(super) fn first_then(first: &str, members: &[String]) -> Vec<String> {
    std::iter::once(first.to_string())
        .chain(members.iter().filter(|n| *n != first).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::nodes::is_settling;
    use super::*;

    fn node(id: &str, role: &str, leader: bool, state: &str) -> Node {
        Node {
            id: id.into(),
            version: 1,
            spec: serde_json::json!({}),
            hostname: id.into(),
            engine_version: "20.10.24".into(),
            role: role.into(),
            availability: "active".into(),
            state: state.into(),
            addr: "172.18.0.2".into(),
            leader,
            manager_addr: String::new(),
            reachability: String::new(),
        }
    }

    #[test]
    fn swarm_ls_shows_nodes_that_are_not_machines_and_machines_that_are_not_nodes() {
        let rows = [
            NodeRow {
                machine: Some("m1".into()),
                node: Some(node("n1", "manager", true, "ready")),
            },
            NodeRow {
                machine: Some("m2".into()),
                node: None,
            },
            NodeRow {
                machine: None,
                node: Some(node("n3", "worker", false, "down")),
            },
        ];
        assert_eq!(
            render(&rows),
            "MACHINE           NODE ID        ROLE      LEADER   AVAILABILITY   STATE   ENGINE\n\
             m1                n1             manager   *        active         ready   20.10.24\n\
             m2                (not a node)   -                  -              -       -\n\
             (not a machine)   n3             worker             active         down    20.10.24\n"
        );
    }

    #[test]
    fn settling_refusals_are_told_apart_from_final_ones() {
        assert!(is_settling(
            "rpc error: code = NotFound desc = can't find manager in raft memberlist"
        ));
        assert!(is_settling("update out of sequence"));
        assert!(!is_settling(
            "rpc error: attempting to demote the last manager of the swarm"
        ));
    }
}
