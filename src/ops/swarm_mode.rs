//! Swarm mode across machines: `swarm init|join|ls|leave|promote|demote`, and the Swarm-mode part
//! of `create`, `rm`, `ls` and `env --swarm`.
//!
//! Everything goes through the machines' Docker APIs over mutual TLS, nothing over SSH. Join
//! tokens are fetched from a manager at the moment of a join and live only in memory: never
//! printed, logged, stored or put on a remote command line. A machine's record keeps only the
//! name of its cluster (the machine the swarm was initialised on); roles and states are the
//! daemons' to say, asked live.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use super::Machine;
use crate::context::{Context, program_name};
use crate::engine::swarm::{InitRequest, JoinRequest, MANAGEMENT_PORT, Node, SwarmInfo};
use crate::engine::{EngineClient, EngineError};
use crate::error::{Error, Result};
use crate::format::{natsort, tabwriter::TabWriter};

/// The ports swarm nodes must reach on each other, as errors and the README name them.
pub const SWARM_PORTS: &str = "2377/tcp (cluster management), 7946/tcp and 7946/udp (node communication), 4789/udp (overlay networks)";

/// How long one swarm call may take (connecting included).
const SWARM_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a join may take: it returns only once the node has joined (or given up).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long asking a machine's swarm state may take when looking for a manager.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a demoted manager may take to become a worker, and a drained node to be left.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

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
        let tls = crate::cert::client_config(&super::cert_paths(&host))?;
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

/// `swarm init` options.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub advertise_addr: Option<String>,
    pub default_addr_pool: Vec<String>,
    pub subnet_size: u32,
}

/// Makes `name` the first manager of a new swarm, named after it in the store.
pub async fn init(ctx: &Context, name: &str, opts: &InitOptions) -> Result<String> {
    let member = Member::load(ctx, name).await?;
    let info = member.info().await?;
    match info.local_node_state.as_str() {
        "inactive" => {}
        "active" if info.control_available => {
            let cluster = member.cluster.clone().unwrap_or_else(|| name.to_string());
            record_cluster(ctx, name, &cluster).await?;
            return Ok(format!(
                "Machine \"{name}\" is already a manager of swarm \"{cluster}\": nothing to do."
            ));
        }
        "active" => {
            return Err(Error::Other(format!(
                "machine \"{name}\" is already a worker of a swarm; take it out with '{} swarm leave {name}' first",
                program_name()
            )));
        }
        state => return Err(not_usable(name, state, &info)),
    }
    let addr = member
        .advertise_addr(opts.advertise_addr.as_deref())
        .await?
        .ok_or_else(|| {
            Error::Other(format!(
                "machine \"{name}\" is reached at {} (a forwarded port), which its swarm peers cannot reach; give the address they can reach with --advertise-addr",
                member.ip
            ))
        })?;
    let request = InitRequest {
        advertise_addr: addr.clone(),
        default_addr_pool: opts.default_addr_pool.clone(),
        subnet_size: opts.subnet_size,
    };
    let node_id = member
        .client
        .swarm_init(&member.url, &request)
        .await
        .map_err(|e| member.failed("could not start a swarm", e))?;
    record_cluster(ctx, name, name).await?;
    Ok(format!(
        "Machine \"{name}\" is the manager of new swarm \"{name}\" (node {node_id}, advertised at {addr}:{MANAGEMENT_PORT}).\nAdd machines with: {} swarm join {name} NAME...",
        program_name()
    ))
}

/// Joins `names` to the swarm that `manager` manages, as `role`: workers in parallel, managers
/// one after another (each changes the managers' quorum). One message or error per machine, in
/// the order of `names`; an error of its own when the manager cannot be used.
pub async fn join(
    ctx: &Context,
    manager: &str,
    names: &[String],
    role: Role,
) -> Result<Vec<Result<String>>> {
    let leader = Member::load(ctx, manager).await?;
    let info = leader.info().await?;
    if !(info.is_active() && info.control_available) {
        return Err(Error::Other(match info.is_active() {
            true => format!(
                "machine \"{manager}\" is a worker; name a manager of its swarm ('{} swarm ls {manager}' lists them)",
                program_name()
            ),
            false => format!(
                "machine \"{manager}\" is not a swarm manager; start a swarm with '{} swarm init {manager}'",
                program_name()
            ),
        }));
    }
    let nodes = leader.nodes().await?;
    let tokens = leader
        .client
        .join_tokens(&leader.url)
        .await
        .map_err(|e| leader.failed("did not give the swarm's join tokens", e))?;
    let token = match role {
        Role::Worker => tokens.worker,
        Role::Manager => tokens.manager,
    };
    // The manager asked first, then the other managers the swarm counts as reachable.
    let mut remote_addrs = vec![format!("{}:{MANAGEMENT_PORT}", info.node_addr)];
    remote_addrs.extend(
        nodes
            .iter()
            .filter(|n| n.reachability == "reachable" && n.id != info.node_id)
            .map(|n| n.manager_addr.clone()),
    );
    let cluster = leader
        .cluster
        .clone()
        .unwrap_or_else(|| manager.to_string());
    record_cluster(ctx, manager, &cluster).await?;
    let job = JoinJob {
        ctx: ctx.clone(),
        cluster,
        role,
        token,
        remote_addrs,
        roles: nodes.into_iter().map(|n| (n.id, n.role)).collect(),
    };
    let job = std::sync::Arc::new(job);
    Ok(match role {
        Role::Worker => {
            super::for_each_machine(names, move |name| {
                let job = job.clone();
                async move { job.join_one(&name).await }
            })
            .await
        }
        Role::Manager => {
            let mut results = Vec::new();
            for name in names {
                results.push(job.join_one(name).await);
            }
            results
        }
    })
}

/// What every join of one `swarm join` shares; holds the join token in memory only.
struct JoinJob {
    ctx: Context,
    cluster: String,
    role: Role,
    token: String,
    remote_addrs: Vec<String>,
    /// The role of each node of the swarm, by node ID.
    roles: HashMap<String, String>,
}

impl JoinJob {
    async fn join_one(&self, name: &str) -> Result<String> {
        let member = Member::load(&self.ctx, name).await?;
        let info = member.info().await?;
        let cluster = &self.cluster;
        match info.local_node_state.as_str() {
            "inactive" => {}
            "active" if self.roles.contains_key(&info.node_id) => {
                record_cluster(&self.ctx, name, cluster).await?;
                return Ok(format!(
                    "Machine \"{name}\" is already a {} of swarm \"{cluster}\": left as it is.",
                    self.roles[&info.node_id]
                ));
            }
            "active" => {
                return Err(Error::Other(format!(
                    "machine \"{name}\" is in another swarm (node {}); take it out with '{} swarm leave {name}' first",
                    info.node_id,
                    program_name()
                )));
            }
            state => return Err(not_usable(name, state, &info)),
        }
        let addr = member.advertise_addr(None).await?.unwrap_or_default();
        let request = JoinRequest {
            advertise_addr: &addr,
            remote_addrs: &self.remote_addrs,
            token: &self.token,
        };
        let joined = member
            .client
            .with_timeout(JOIN_TIMEOUT)
            .swarm_join(&member.url, &request)
            .await;
        if let Err(e) = joined {
            // A join that timed out goes on in the background: cancelled, so that nothing
            // changes behind the user's back.
            let _ = member.client.swarm_leave(&member.url, true).await;
            return Err(Error::Other(format!(
                "machine \"{name}\" could not join swarm \"{cluster}\" at {} (the attempt is cancelled): {e}. Swarm nodes must reach each other on {SWARM_PORTS}",
                self.remote_addrs.join(", ")
            )));
        }
        record_cluster(&self.ctx, name, cluster).await?;
        Ok(format!(
            "Machine \"{name}\" joined swarm \"{cluster}\" as a {}.",
            self.role.as_str()
        ))
    }
}

/// The error for a daemon whose swarm state is neither inactive nor active.
fn not_usable(name: &str, state: &str, info: &SwarmInfo) -> Error {
    let detail = match info.error.is_empty() {
        true => String::new(),
        false => format!(": {}", info.error),
    };
    Error::Other(format!(
        "machine \"{name}\" is in swarm state \"{state}\"{detail}; see 'docker info' on it"
    ))
}

/// Writes (or, with an empty `cluster`, clears) the swarm a machine's record names.
pub async fn record_cluster(ctx: &Context, name: &str, cluster: &str) -> Result<()> {
    let _lock = super::lock_machine(ctx, name).await?;
    let mut host = ctx.store.load(name)?;
    if host.swarm_cluster().unwrap_or_default() != cluster {
        host.record_mut().swarm_cluster = cluster.to_string();
        ctx.store.save(&host)?;
    }
    Ok(())
}

/// The machines of the store whose records name `cluster`.
fn recorded_members(ctx: &Context, cluster: &str) -> Result<Vec<String>> {
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
async fn find_manager(ctx: &Context, candidates: &[String]) -> Result<(Member, Vec<Node>)> {
    let ctx2 = ctx.clone();
    let probed = super::for_each_machine(candidates, move |name| {
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
fn cluster_of(member: &Member) -> Result<String> {
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
fn managers_to_ask(ctx: &Context, member: &Member) -> Result<Vec<String>> {
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
fn first_then(first: &str, members: &[String]) -> Vec<String> {
    std::iter::once(first.to_string())
        .chain(members.iter().filter(|n| *n != first).cloned())
        .collect()
}

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
async fn leave_when_worker(member: &Member) -> Result<()> {
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
async fn update_node(manager: &Member, id: &str, field: &str, value: &str) -> Result<()> {
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
fn is_settling(message: &str) -> bool {
    ["out of sequence", "raft memberlist", "not yet", "try again"]
        .iter()
        .any(|m| message.contains(m))
}

/// Waits until a machine's daemon acts in `role` (a promotion or demotion has taken effect).
async fn wait_for_role(member: &Member, role: Role) -> Result<()> {
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
    let identities = super::for_each_machine(&members, move |name| {
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

#[cfg(test)]
mod tests {
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
