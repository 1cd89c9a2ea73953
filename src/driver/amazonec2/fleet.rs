//! `ls` over many EC2 machines: one DescribeInstances per endpoint, region and credentials.

use super::*;

/// `ls`: one DescribeInstances per endpoint, region and credentials for all their machines.
pub(super) fn prefetch_boxed(
    machines: Vec<NamedConfig>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HashMap<String, Value>> + Send>> {
    Box::pin(prefetch(machines))
}

/// The machines (name, instance ID) that one client asks about.
type Group = (Client, Vec<(String, String)>);

/// Asks EC2 about many machines' instances with one call per account and region.
pub async fn prefetch(machines: Vec<NamedConfig>) -> HashMap<String, Value> {
    let mut groups: HashMap<(String, String, credentials::Source), Group> = HashMap::new();
    let mut seen = HashMap::new();
    for (name, config) in machines {
        let Ok(config) = typed_config::<Ec2Config>(&config) else {
            continue;
        };
        if config.instance_id.is_empty() {
            continue;
        }
        match config.client() {
            Ok(client) => {
                let key = (
                    client.url.text(),
                    client.region.clone(),
                    client.credentials.clone(),
                );
                groups
                    .entry(key)
                    .or_insert_with(|| (client, Vec::new()))
                    .1
                    .push((name, config.instance_id));
            }
            Err(e) => {
                seen.insert(name, Described::Failed(e.to_string()));
            }
        }
    }
    let mut asks = tokio::task::JoinSet::new();
    for (client, members) in groups.into_values() {
        asks.spawn(async move {
            let ids: Vec<String> = members.iter().map(|(_, id)| id.clone()).collect();
            (client.describe_instances(&ids).await, members)
        });
    }
    while let Some(Ok((answer, members))) = asks.join_next().await {
        let found = answer.map(|list| {
            list.into_iter()
                .map(|i| (i.id.clone(), i))
                .collect::<HashMap<_, _>>()
        });
        for (name, id) in members {
            let one = match &found {
                Ok(by_id) => by_id
                    .get(&id)
                    .map_or(Described::Gone, |i| Described::Found(i.clone())),
                Err(e) => Described::Failed(api_fail(e.clone()).to_string()),
            };
            seen.insert(name, one);
        }
    }
    seen.into_iter()
        .filter_map(|(name, one)| serde_json::to_value(one).ok().map(|v| (name, v)))
        .collect()
}
