//! Swarm mode through the Engine API: `GET /info` (the daemon's own swarm state), `/swarm`
//! (init, join, leave, join tokens) and `/nodes` (list, update, remove), as the docker CLI uses
//! them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{EngineClient, EngineError};

/// The port swarm managers listen on for cluster management (and joins).
pub const MANAGEMENT_PORT: u16 = 2377;

/// A daemon's view of its own swarm membership (the `Swarm` part of `GET /info`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub node_addr: String,
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    #[serde(default)]
    pub local_node_state: String,
    /// A manager: it can answer the cluster's API.
    #[serde(default)]
    pub control_available: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub remote_managers: Option<Vec<RemoteManager>>,
    #[serde(default)]
    pub cluster: Option<ClusterInfo>,
}

impl SwarmInfo {
    /// In a swarm (joined and working).
    pub fn is_active(&self) -> bool {
        self.local_node_state == "active"
    }

    /// The addresses (`ip:port`) of the managers this node knows.
    pub fn manager_addrs(&self) -> Vec<String> {
        self.remote_managers
            .iter()
            .flatten()
            .map(|m| m.addr.clone())
            .collect()
    }
}

/// A manager as a node knows it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteManager {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub addr: String,
}

/// The cluster a manager belongs to.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterInfo {
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// The tokens that let a node join as a worker or as a manager. Secrets: no `Debug`, never
/// printed, logged or stored by hoist.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

/// A node of the swarm as a manager lists it, with its spec kept whole for updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// The object version an update must name.
    pub version: u64,
    pub spec: Value,
    pub hostname: String,
    pub engine_version: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
    /// The address the node's daemon connects from (an IP).
    pub addr: String,
    pub leader: bool,
    /// The manager's own address (`ip:2377`); empty for a worker.
    pub manager_addr: String,
    /// `reachable`, `unreachable` or `unknown`; empty for a worker.
    pub reachability: String,
}

impl Node {
    fn from_json(v: &Value) -> Node {
        let s = |path: &[&str]| {
            path.iter()
                .try_fold(v, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Node {
            id: s(&["ID"]),
            version: v
                .pointer("/Version/Index")
                .and_then(Value::as_u64)
                .unwrap_or_default(),
            spec: v.get("Spec").cloned().unwrap_or_else(|| json!({})),
            hostname: s(&["Description", "Hostname"]),
            engine_version: s(&["Description", "Engine", "EngineVersion"]),
            role: s(&["Spec", "Role"]),
            availability: s(&["Spec", "Availability"]),
            state: s(&["Status", "State"]),
            addr: s(&["Status", "Addr"]),
            leader: v
                .pointer("/ManagerStatus/Leader")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            manager_addr: s(&["ManagerStatus", "Addr"]),
            reachability: s(&["ManagerStatus", "Reachability"]),
        }
    }

    /// The IP the node is known by: its manager address's host, else its connection's address.
    pub fn ip(&self) -> &str {
        match self.manager_addr.rsplit_once(':') {
            Some((host, _)) if !host.is_empty() => host.trim_matches(['[', ']']),
            _ => &self.addr,
        }
    }
}

/// How `POST /swarm/init` is asked.
#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    pub advertise_addr: String,
    /// Address pools for global-scope (overlay) networks, in CIDR form; empty: Docker's default.
    pub default_addr_pool: Vec<String>,
    /// The prefix length of the networks taken from those pools; 0: Docker's default (24).
    pub subnet_size: u32,
}

/// How `POST /swarm/join` is asked; the token is a secret.
pub struct JoinRequest<'a> {
    pub advertise_addr: &'a str,
    pub remote_addrs: &'a [String],
    pub token: &'a str,
}

impl EngineClient {
    /// The daemon's own swarm state (`GET /info`), and its engine version.
    pub async fn swarm_info(&self, url: &str) -> Result<SwarmInfo, EngineError> {
        let info = self.get_json(url, "/info").await?;
        let swarm = info.get("Swarm").cloned().unwrap_or(Value::Null);
        serde_json::from_value(swarm).map_err(|e| EngineError::Protocol {
            addr: url.to_string(),
            detail: format!("invalid Swarm part in /info: {e}"),
        })
    }

    /// Makes the daemon the first manager of a new swarm; its node ID.
    pub async fn swarm_init(&self, url: &str, req: &InitRequest) -> Result<String, EngineError> {
        let mut body = json!({
            "ListenAddr": format!("0.0.0.0:{MANAGEMENT_PORT}"),
            "AdvertiseAddr": req.advertise_addr,
        });
        if !req.default_addr_pool.is_empty() {
            body["DefaultAddrPool"] = json!(req.default_addr_pool);
        }
        if req.subnet_size > 0 {
            body["SubnetSize"] = json!(req.subnet_size);
        }
        let answer = self.post(url, "/swarm/init", Some(&body)).await?;
        let id: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok(id.as_str().unwrap_or_default().to_string())
    }

    /// Joins the daemon to a swarm; returns when it has joined.
    pub async fn swarm_join(&self, url: &str, req: &JoinRequest<'_>) -> Result<(), EngineError> {
        let body = json!({
            "ListenAddr": format!("0.0.0.0:{MANAGEMENT_PORT}"),
            "AdvertiseAddr": req.advertise_addr,
            "RemoteAddrs": req.remote_addrs,
            "JoinToken": req.token,
        });
        self.post(url, "/swarm/join", Some(&body)).await.map(|_| ())
    }

    /// Makes the daemon leave its swarm (`force`: even as a manager).
    pub async fn swarm_leave(&self, url: &str, force: bool) -> Result<(), EngineError> {
        self.post(url, &format!("/swarm/leave?force={force}"), None)
            .await
            .map(|_| ())
    }

    /// The swarm's join tokens (a manager answers).
    pub async fn join_tokens(&self, url: &str) -> Result<JoinTokens, EngineError> {
        let swarm = self.get_json(url, "/swarm").await?;
        serde_json::from_value(swarm.get("JoinTokens").cloned().unwrap_or(Value::Null)).map_err(
            |e| EngineError::Protocol {
                addr: url.to_string(),
                detail: format!("no join tokens in /swarm: {e}"),
            },
        )
    }

    /// The swarm's nodes (a manager with a leader answers).
    pub async fn nodes(&self, url: &str) -> Result<Vec<Node>, EngineError> {
        let nodes = self.get_json(url, "/nodes").await?;
        Ok(nodes
            .as_array()
            .map(|a| a.iter().map(Node::from_json).collect())
            .unwrap_or_default())
    }

    /// Sets one field of a node's spec (`Role`, `Availability`) through a manager.
    pub async fn update_node(
        &self,
        url: &str,
        node: &Node,
        field: &str,
        value: &str,
    ) -> Result<(), EngineError> {
        let mut spec = node.spec.clone();
        spec[field] = json!(value);
        let path = format!("/nodes/{}/update?version={}", node.id, node.version);
        self.post(url, &path, Some(&spec)).await.map(|_| ())
    }

    /// Removes a node from the swarm's list through a manager (`force`: even if it is not down).
    pub async fn remove_node(&self, url: &str, id: &str, force: bool) -> Result<(), EngineError> {
        self.delete(url, &format!("/nodes/{id}?force={force}"))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_swarm_info_read_from_the_daemons_json() {
        let node = Node::from_json(&json!({
            "ID": "n1", "Version": {"Index": 42},
            "Spec": {"Role": "manager", "Availability": "active", "Labels": {}},
            "Description": {"Hostname": "m1", "Engine": {"EngineVersion": "20.10.24"}},
            "Status": {"State": "ready", "Addr": "0.0.0.0"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "172.18.0.2:2377"}
        }));
        assert_eq!(
            (
                node.id.as_str(),
                node.version,
                node.role.as_str(),
                node.leader
            ),
            ("n1", 42, "manager", true)
        );
        assert_eq!(node.ip(), "172.18.0.2");
        assert_eq!(node.engine_version, "20.10.24");
        let worker = Node::from_json(&json!({
            "ID": "n2", "Spec": {"Role": "worker"}, "Status": {"State": "down", "Addr": "172.18.0.3"}
        }));
        assert_eq!((worker.ip(), worker.leader), ("172.18.0.3", false));
        let info: SwarmInfo = serde_json::from_value(json!({
            "NodeID": "n2", "LocalNodeState": "active", "ControlAvailable": false,
            "RemoteManagers": [{"NodeID": "n1", "Addr": "172.18.0.2:2377"}]
        }))
        .unwrap();
        assert!(info.is_active() && !info.control_available);
        assert_eq!(info.manager_addrs(), ["172.18.0.2:2377"]);
        let inactive: SwarmInfo =
            serde_json::from_value(json!({"LocalNodeState": "inactive", "RemoteManagers": null}))
                .unwrap();
        assert!(!inactive.is_active() && inactive.manager_addrs().is_empty());
    }
}
