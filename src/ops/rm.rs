//! `rm`: removes machines: the driver's remote part first (a plugin's instance; built-in drivers
//! leave the host alone), then the record.

use super::Machine;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::store::StoreError;

/// Removes one machine under its lock. With `force`, a record that does not load or a driver
/// that fails to remove is still removed from the store; what failed is returned as warnings.
pub async fn remove_one(ctx: &Context, name: &str, force: bool) -> Result<Vec<String>> {
    let _lock = super::lock_machine(ctx, name).await?;
    let mut warnings = Vec::new();
    let mut context = None;
    match ctx.store.load(name) {
        Ok(host) => {
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
pub async fn remove(ctx: &Context, names: &[String], force: bool) -> (Vec<String>, Vec<String>) {
    let ctx2 = ctx.clone();
    let results = super::for_each_machine(names, move |name| {
        let ctx = ctx2.clone();
        async move { remove_one(&ctx, &name, force).await }
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
