//! The small per-machine reads: `url`, `ip`, `status`, `inspect`, `version NAME`.

use std::time::Duration;

use crate::cert;
use crate::context::Context;
use crate::driver::State;
use crate::engine::EngineClient;
use crate::error::Result;
use crate::format::template;
use crate::machine::Machine;
use crate::store::config::to_go_json_pretty;

/// How long a TLS request of `version NAME` may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The machine's Docker URL (`Host is not running` when it is not).
pub async fn url(ctx: &Context, name: &str) -> Result<String> {
    let machine = Machine::load(ctx, name).await?;
    let url = machine.driver.url().await;
    machine.close().await;
    Ok(url?)
}

/// The IP of each machine, in the order given.
pub async fn ips(ctx: &Context, names: &[String]) -> Vec<Result<String>> {
    let ctx = ctx.clone();
    crate::machine::for_each_machine(names, move |name| {
        let ctx = ctx.clone();
        async move {
            let machine = Machine::load(&ctx, &name).await?;
            let ip = machine.driver.ip().await;
            machine.close().await;
            ip.map_err(|e| crate::error::Error::Other(format!("Error getting IP address: {e}")))
        }
    })
    .await
}

/// The machine's state, asked live (a machine whose provisioning failed is as running as its
/// host; `ls` shows the failure).
pub async fn status(ctx: &Context, name: &str) -> Result<State> {
    let machine = Machine::load(ctx, name).await?;
    let state = machine.driver.state().await;
    machine.close().await;
    Ok(state?)
}

/// The state of each machine, in the order given.
pub async fn statuses(ctx: &Context, names: &[String]) -> Vec<Result<String>> {
    let ctx = ctx.clone();
    crate::machine::for_each_machine(names, move |name| {
        let ctx = ctx.clone();
        async move { status(&ctx, &name).await.map(|s| s.to_string()) }
    })
    .await
}

/// `inspect`: the record as 4-space JSON, or through a Go template over its JSON map.
pub fn inspect(ctx: &Context, name: &str, format: Option<&str>) -> Result<String> {
    let host = ctx.store.load(name)?;
    match format.filter(|f| !f.is_empty()) {
        None => {
            let json =
                to_go_json_pretty(&host).map_err(|e| crate::error::Error::Other(e.to_string()))?;
            Ok(format!("{}\n", String::from_utf8_lossy(&json)))
        }
        Some(f) => {
            let tpl = template::parse(f, template::MissingField::NoValue)?;
            let json = serde_json::to_value(&host)
                .map_err(|e| crate::error::Error::Other(e.to_string()))?;
            Ok(format!(
                "{}\n",
                template::render(&tpl, &template::from_json(&json))?
            ))
        }
    }
}

/// The Docker version of a machine's daemon.
pub async fn docker_version(ctx: &Context, name: &str) -> Result<String> {
    let machine = Machine::load(ctx, name).await?;
    let url = machine.driver.url().await;
    let paths = crate::machine::cert_paths(&machine.host);
    machine.close().await;
    let url = url?;
    let client = EngineClient::new(cert::client_config(&paths)?, PROBE_TIMEOUT);
    Ok(client.version(&url).await?)
}
