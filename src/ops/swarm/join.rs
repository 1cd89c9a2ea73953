//! `swarm init`, `swarm join` and the swarm steps of `create`: a swarm begun on a machine, machines
//! joined to it with a token fetched from a manager at that moment.

use std::collections::HashMap;

use crate::context::{Context, program_name};
use crate::engine::swarm::{InitRequest, JoinRequest, MANAGEMENT_PORT, SwarmInfo};
use crate::error::{Error, Result};

use super::*;

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
            crate::machine::for_each_machine(names, move |name| {
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
pub(super) struct JoinJob {
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
pub(super) fn not_usable(name: &str, state: &str, info: &SwarmInfo) -> Error {
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
    let _lock = crate::machine::lock_machine(ctx, name).await?;
    let mut host = ctx.store.load(name)?;
    if host.swarm_cluster().unwrap_or_default() != cluster {
        host.record_mut().swarm_cluster = cluster.to_string();
        ctx.store.save(&host)?;
    }
    Ok(())
}
