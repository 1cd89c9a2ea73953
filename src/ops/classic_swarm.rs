//! Classic Swarm as docker-machine 0.16.2 records it (`--swarm`, `--swarm-master`,
//! `--swarm-discovery`): the SWARM column of `ls` and the master URL of `env --swarm`.

use std::collections::HashMap;

use crate::store::LoadedHost;
use crate::store::config::Host;

/// Swarm discovery URL → name of its master.
pub fn swarm_masters(loaded: &[LoadedHost]) -> HashMap<String, String> {
    loaded
        .iter()
        .filter_map(|(_, h)| h.as_ref().ok())
        .filter(|h| h.host_options.swarm_options.master)
        .map(|h| {
            (
                h.host_options.swarm_options.discovery.clone(),
                h.name.clone(),
            )
        })
        .collect()
}

/// The SWARM column of a machine: its master's name, `(master)` for the master itself.
pub fn swarm_column(host: &Host, masters: &HashMap<String, String>) -> String {
    let swarm = &host.host_options.swarm_options;
    if swarm.discovery.is_empty() {
        return String::new();
    }
    let master = masters.get(&swarm.discovery).cloned().unwrap_or_default();
    if swarm.master {
        format!("{master} (master)")
    } else {
        master
    }
}

/// The swarm master URL of a machine URL: its port replaced by the swarm host's port.
pub fn swarm_url(url: &str, swarm_host: &str) -> Option<String> {
    let swarm_port = swarm_host.rsplit_once(':')?.1;
    let (base, _) = url.rsplit_once(':')?;
    Some(format!("{base}:{swarm_port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_urls() {
        assert_eq!(
            swarm_url("tcp://1.2.3.4:2376", "tcp://0.0.0.0:3376").unwrap(),
            "tcp://1.2.3.4:3376"
        );
    }
}
