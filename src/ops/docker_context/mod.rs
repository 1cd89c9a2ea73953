//! `context`, `use`, `create --docker-context`: a machine's docker CLI context, kept in step
//! with its certificates (`provision`, `regenerate-certs`) and removed with it (`rm`) — only the
//! one hoist wrote.

pub mod store;

use crate::cert::CertPaths;
use crate::context::Context;
use crate::context::docker_config_dir;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::store::config::Host;

/// The key of the machine's context name in hoist's record.
const RECORD_KEY: &str = "DockerContext";

/// The context name hoist wrote for a machine, if any.
pub fn recorded(host: &Host) -> Option<String> {
    host.hoist
        .as_ref()
        .and_then(|h| h.extra.get(RECORD_KEY))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Writes the context of an open machine (its Docker URL, the machine directory's
/// certificates) and records its name.
async fn write_open(ctx: &Context, machine: &mut Machine, name: &str) -> Result<()> {
    let url = machine.docker_url().await?;
    let certs = CertPaths::in_dir(&ctx.store.machine_dir(&machine.host.name));
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::Other(format!("cannot read {}: {e}", p.display())))
    };
    store::write(
        &docker_config_dir(),
        &store::MachineContext {
            name,
            machine: &machine.host.name,
            host: &url,
            ca: &read(&certs.ca_cert)?,
            cert: &read(&certs.client_cert)?,
            key: &read(&certs.client_key)?,
        },
    )
    .map_err(|e| Error::Other(format!("machine \"{}\": {e}", machine.host.name)))?;
    if recorded(&machine.host).as_deref() != Some(name) {
        machine
            .host
            .record_mut()
            .extra
            .insert(RECORD_KEY.into(), serde_json::Value::from(name));
        ctx.store.save(&machine.host)?;
    }
    Ok(())
}

/// `hoist context NAME [--context-name CONTEXT]`: writes the machine's context (named after the
/// machine unless told); returns the context's name.
pub async fn write(ctx: &Context, machine: &str, context_name: Option<&str>) -> Result<String> {
    let name = context_name.unwrap_or(machine).to_string();
    store::validate_name(&name).map_err(|e| Error::Usage(format!("machine \"{machine}\": {e}")))?;
    let _lock = crate::machine::lock_machine(ctx, machine).await?;
    let mut open = Machine::load(ctx, machine).await?;
    let result = write_open(ctx, &mut open, &name).await;
    open.close().await;
    result.map(|_| name)
}

/// `hoist context NAME…`: writes each machine's context (at most one `context_name`, for one
/// machine); a line for each, in the order given, saying how to use it.
pub async fn write_each(
    ctx: &Context,
    names: &[String],
    context_name: Option<&str>,
) -> Vec<Result<String>> {
    let ctx = ctx.clone();
    let context_name = context_name.map(str::to_string);
    crate::machine::for_each_machine(names, move |name| {
        let (ctx, context_name) = (ctx.clone(), context_name.clone());
        async move {
            let written = write(&ctx, &name, context_name.as_deref()).await?;
            Ok(format!(
                "Docker context \"{written}\" reaches machine \"{name}\": docker --context {written} info"
            ))
        }
    })
    .await
}

/// Rewrites a machine's context after its certificates changed (provision, regenerate-certs),
/// when hoist wrote one. The caller holds the machine's lock.
pub async fn refresh(ctx: &Context, machine: &mut Machine) -> Result<()> {
    match recorded(&machine.host) {
        Some(name) => write_open(ctx, machine, &name).await,
        None => Ok(()),
    }
}

/// Removes the context hoist wrote for a machine (never another).
pub fn remove(host: &Host) {
    if let Some(name) = recorded(host) {
        store::remove(&docker_config_dir(), &name, &host.name);
    }
}

/// `hoist use NAME`: the machine's context (written now if it has none) becomes the docker CLI's
/// current one; `hoist use --unset` goes back to `default`.
pub async fn use_machine(ctx: &Context, machine: Option<&str>) -> Result<Option<String>> {
    let name = match machine {
        Some(machine) => {
            let host = ctx.store.load(machine)?;
            let name = match recorded(&host) {
                Some(name) => name,
                None => write(ctx, machine, None).await?,
            };
            Some(name)
        }
        None => None,
    };
    store::use_context(&docker_config_dir(), name.as_deref())
        .map_err(|e| Error::Other(e.to_string()))?;
    Ok(name)
}
