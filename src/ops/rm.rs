//! `rm`: removes machines from the store (the driver's remote part first, where it has one).

use crate::context::Context;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::store::StoreError;

/// Removes one machine under its lock. With `force`, a record that does not load is still removed.
pub fn remove_one(ctx: &Context, name: &str, force: bool) -> Result<()> {
    let _lock = ctx.store.lock_machine(name)?;
    match ctx.store.load(name) {
        Ok(host) => {
            // Built-in drivers leave the remote host alone (generic) or have none (none).
            if let Err(e) = Driver::for_host(&host)
                && !force
            {
                return Err(e.into());
            }
        }
        Err(StoreError::NotFound(n)) => return Err(StoreError::NotFound(n).into()),
        Err(e) if !force => return Err(e.into()),
        Err(_) => {}
    }
    ctx.store.remove(name)?;
    Ok(())
}

/// Removes each machine; returns one line per outcome and whether all succeeded.
pub async fn remove(ctx: &Context, names: &[String], force: bool) -> (Vec<String>, Vec<String>) {
    let ctx2 = ctx.clone();
    let results = super::for_each_machine(names, move |name| {
        let ctx = ctx2.clone();
        async move {
            tokio::task::spawn_blocking(move || remove_one(&ctx, &name, force))
                .await
                .map_err(|e| Error::Other(e.to_string()))?
        }
    })
    .await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(()) => done.push(format!("Successfully removed {name}")),
            Err(e) => failed.push(format!("Error removing host \"{name}\": {e}")),
        }
    }
    (done, failed)
}
