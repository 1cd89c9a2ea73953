//! `rm`: removes machines: the driver's remote part first (a plugin's instance; built-in drivers
//! leave the host alone), then the record.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::store::StoreError;

/// `rm` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RmOptions {
    /// Remove the record even when the machine cannot be removed (or taken out of its swarm);
    /// also lets the last manager of a swarm go.
    pub force: bool,
    /// Leave a Swarm-mode node in its swarm.
    pub keep_swarm_node: bool,
}

/// Removes one machine under its lock: a Swarm-mode node is first taken out of its swarm
/// (drained, left, removed from the node list). With `force`, a record that does not load or a
/// driver that fails to remove is still removed from the store; what failed is returned as
/// warnings.
pub async fn remove_one(ctx: &Context, name: &str, opts: RmOptions) -> Result<Vec<String>> {
    let force = opts.force;
    let _lock = crate::machine::lock_machine(ctx, name).await?;
    let mut warnings = Vec::new();
    let mut context = None;
    match ctx.store.load(name) {
        Ok(host) => {
            if host.swarm_cluster().is_some() && !opts.keep_swarm_node {
                match super::swarm::take_out(ctx, name, force).await {
                    Ok(_) => {}
                    Err(e) if !force => {
                        return Err(Error::Other(format!(
                            "{e} (or keep it in the swarm with --keep-swarm-node)"
                        )));
                    }
                    Err(e) => warnings.push(format!("Error removing host \"{name}\": {e}")),
                }
            }
            context = Some(host.clone());
            let removed = async {
                let mut machine = Machine::open(ctx, host).await?;
                let result = machine.driver.remove().await;
                machine.close().await;
                result.map_err(Error::from)
            }
            .await;
            match removed {
                Err(e) if !force => return Err(e),
                Err(e) => warnings.push(format!("Error removing host \"{name}\": {e}")),
                Ok(()) => {}
            }
        }
        Err(StoreError::NotFound(n)) => return Err(StoreError::NotFound(n).into()),
        Err(e) if !force => return Err(e.into()),
        Err(_) => {}
    }
    ctx.store.remove(name)?;
    // The docker context hoist wrote for it goes with it.
    if let Some(host) = context {
        super::docker_context::remove(&host);
    }
    Ok(warnings)
}

/// Removes each machine; returns the lines for stdout (successes) and for stderr (failures).
pub async fn remove(
    ctx: &Context,
    names: &[String],
    opts: RmOptions,
) -> (Vec<String>, Vec<String>) {
    let ctx2 = ctx.clone();
    let results = crate::machine::for_each_machine(names, move |name| {
        let ctx = ctx2.clone();
        async move { remove_one(&ctx, &name, opts).await }
    })
    .await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(warnings) => {
                failed.extend(warnings);
                done.push(format!("Successfully removed {name}"));
            }
            Err(e) => failed.push(format!("Error removing host \"{name}\": {e}")),
        }
    }
    (done, failed)
}
