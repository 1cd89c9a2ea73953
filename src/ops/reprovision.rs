//! The commands that act on a machine over SSH: `provision`, `regenerate-certs`, `upgrade`.
//! Each holds the machine's lock and records the outcome in the machine's record.

use std::sync::Arc;
use std::time::Duration;

use crate::cert;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::provision::{self, ProvisionOptions};
use crate::ssh::Remote;
use crate::store::config::Lifecycle;
use crate::store::layout;

use crate::machine::{Machine, session};
use crate::report::Reporter;

use super::power::prefixed;

/// What a locked run does to the machine.
enum Action {
    Provision(ProvisionOptions),
    Upgrade,
}

/// Runs an action under the machine's lock and records its outcome (running, or failed with the
/// error) in the machine's record.
async fn locked(ctx: &Context, name: &str, report: &dyn Reporter, action: Action) -> Result<()> {
    let _lock = crate::machine::lock_machine(ctx, name).await?;
    let mut machine = Machine::load(ctx, name).await?;
    let result = match action {
        Action::Provision(opts) => {
            let provisioned = provision::provision(ctx, &mut machine, report, opts).await;
            // New certificates: the machine's docker context gets them too.
            match provisioned {
                Ok(()) => super::docker_context::refresh(ctx, &mut machine).await,
                Err(e) => Err(e),
            }
        }
        Action::Upgrade => upgrade_host(ctx, &mut machine, report).await,
    };
    let host = &mut machine.host;
    match &result {
        Ok(()) => host.set_lifecycle(Lifecycle::Running, ""),
        Err(e) => host.set_lifecycle(Lifecycle::Failed, &e.to_string()),
    }
    let saved = ctx.store.save(host);
    machine.close().await;
    saved?;
    result.map_err(|e| prefixed(name, e))
}

/// `provision`: provisions a machine again (also retries a failed create).
pub async fn provision(
    ctx: &Context,
    name: &str,
    report: &dyn Reporter,
    opts: ProvisionOptions,
) -> Result<()> {
    locked(ctx, name, report, Action::Provision(opts)).await
}

/// `regenerate-certs --client-certs`: a new CA and client certificate for the store, made once
/// before the machines' server certificates — the start of a CA rotation. The previous CA is kept
/// as `ca-previous.pem` and trusted beside the new one (by the daemons re-provisioned meanwhile
/// and by the clients' copies) until [`finish_ca_rotation`]; a rotation already under way is
/// continued, not restarted. The daemons of machines not named keep trusting only the old CA;
/// the message names them.
fn regenerate_client_certs(ctx: &Context, names: &[String], report: &dyn Reporter) -> Result<()> {
    let certs = ctx.store.certs_dir();
    let paths = cert::CertPaths::in_dir(&certs);
    let previous = certs.join(layout::CA_PREVIOUS);
    {
        let _lock = ctx.store.lock_certs()?;
        cert::settle(&paths)?;
        let current = std::fs::read(&paths.ca_cert).ok();
        // A rotation is under way once the previous CA is kept and the current one differs
        // from it (a command killed between the two steps left the previous CA current).
        if previous.exists() && std::fs::read(&previous).ok() != current {
            report.info(
                "Continuing the CA rotation under way: daemons trust the previous CA until it ends",
            );
        } else {
            report.info("Regenerating local certificates");
            if let Some(old) = current {
                crate::fsutil::write_atomic(&previous, &old, 0o644).map_err(|e| {
                    Error::Other(format!("cannot write {}: {e}", previous.display()))
                })?;
            }
            for file in [&paths.ca_cert, &paths.client_cert] {
                let _ = std::fs::remove_file(file);
            }
        }
    }
    // Makes the CA and client certificate that are missing: the new ones, or those a command
    // killed after removing the old ones did not make.
    cert::bootstrap(&ctx.store, &paths, &Context::username())?;
    let others: Vec<String> = ctx
        .store
        .list()?
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    if !others.is_empty() {
        report.info(&format!(
            "The CA is new: the daemons of {} still trust only the old one; run '{} regenerate-certs -f --client-certs --all' to rotate them all",
            others.join(", "),
            crate::context::program_name()
        ));
    }
    Ok(())
}

/// Whether a CA rotation is under way (the previous CA is still trusted).
fn ca_rotation_under_way(ctx: &Context) -> bool {
    ctx.store.certs_dir().join(layout::CA_PREVIOUS).exists()
}

/// Ends a CA rotation: the previous CA is no longer trusted by what is provisioned from now on.
fn finish_ca_rotation(ctx: &Context) -> Result<()> {
    let _lock = ctx.store.lock_certs()?;
    let previous = ctx.store.certs_dir().join(layout::CA_PREVIOUS);
    match std::fs::remove_file(&previous) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Other(format!(
            "cannot remove {}: {e}",
            previous.display()
        ))),
        _ => Ok(()),
    }
}

/// The machines a rotation of the store's CA concerns: those whose record uses the store's CA
/// and whose driver provisions them. The others, with why, are returned apart.
async fn ca_rotation_members(
    ctx: &Context,
    names: &[String],
) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let store_ca = ctx.store.certs_dir().join(layout::CA_CERT);
    let (mut members, mut others) = (Vec::new(), Vec::new());
    for name in names {
        let host = ctx.store.load(name)?;
        if crate::machine::cert_paths(&host).ca_cert != store_ca {
            others.push((name.clone(), "it has a CA of its own".to_string()));
            continue;
        }
        let machine = Machine::open(ctx, host).await?;
        let provisions = machine.driver.provisions();
        machine.close().await;
        match provisions {
            true => members.push(name.clone()),
            false => others.push((
                name.clone(),
                "hoist does not provision its daemon: give it the new CA yourself".to_string(),
            )),
        }
    }
    Ok((members, others))
}

/// `regenerate-certs` options.
#[derive(Debug, Clone, Default)]
pub struct RegenerateOptions {
    pub names: Vec<String>,
    /// A new CA and client certificate too (a CA rotation).
    pub client_certs: bool,
    /// The names are every machine of the store: with `client_certs`, a complete rotation.
    pub all: bool,
}

/// `regenerate-certs`: new server certificates for the machines, each reporting on its own
/// lines; with `client_certs` first a new CA and client certificate, and once every machine the
/// rotation concerns has a certificate of the new CA, the previous CA is dropped and they are
/// provisioned again. The failures, one per machine (and an unfinished rotation of `all`).
pub async fn regenerate(
    ctx: &Context,
    opts: &RegenerateOptions,
    report: &Arc<dyn Reporter>,
) -> Result<Vec<Error>> {
    let mut names = opts.names.clone();
    if opts.client_certs && opts.all {
        let (members, others) = ca_rotation_members(ctx, &names).await?;
        for (name, why) in others {
            report.info(&format!(
                "Leaving machine \"{name}\" out of the CA rotation: {why}"
            ));
        }
        names = members;
    }
    if opts.client_certs {
        regenerate_client_certs(ctx, &names, report.as_ref())?;
    }
    let each = |names: Vec<String>| async move {
        let results = crate::machine::for_each_reporting(&names, report, |name, report| {
            let ctx = ctx.clone();
            async move { regenerate_certs(&ctx, &name, report.as_ref()).await }
        })
        .await;
        results
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
    };
    let mut failures = each(names.clone()).await;
    if !(opts.client_certs && ca_rotation_under_way(ctx)) {
        return Ok(failures);
    }
    // The rotation ends once every machine it concerns has a certificate of the new CA: then
    // their daemons stop trusting the previous one.
    let (members, _) = ca_rotation_members(ctx, &ctx.store.list()?).await?;
    let missing: Vec<&str> = members
        .iter()
        .filter(|m| !names.contains(m))
        .map(String::as_str)
        .collect();
    if !failures.is_empty() || !missing.is_empty() {
        let unfinished = format!(
            "the CA rotation is not complete{}: the daemons trust both CAs until it is; run '{} regenerate-certs -f --client-certs --all' to complete it",
            match missing.is_empty() {
                true => String::new(),
                false => format!(" ({} not done yet)", missing.join(", ")),
            },
            crate::context::program_name()
        );
        // Asked for all, an unfinished rotation is a failure; for some machines, the next step.
        match opts.all {
            true => failures.push(Error::Other(unfinished)),
            false => report.info(&format!("Note: {unfinished}")),
        }
        return Ok(failures);
    }
    report.info("Every machine has a certificate of the new CA: dropping the previous CA");
    finish_ca_rotation(ctx)?;
    Ok(each(members).await)
}

/// `regenerate-certs`: a new server certificate for the machine's current IP, installed by a
/// provisioning run (as docker-machine, which re-provisions).
async fn regenerate_certs(ctx: &Context, name: &str, report: &dyn Reporter) -> Result<()> {
    provision(ctx, name, report, ProvisionOptions::default()).await
}

/// `upgrade`: upgrades the distribution's Docker package and restarts the daemon.
pub async fn upgrade(ctx: &Context, name: &str, report: &dyn Reporter) -> Result<()> {
    locked(ctx, name, report, Action::Upgrade).await
}

async fn upgrade_host(ctx: &Context, machine: &mut Machine, report: &dyn Reporter) -> Result<()> {
    let session = session::connect(ctx, machine, Duration::from_secs(30), false).await?;
    let remote = Remote::new(session, &machine.host.name, report).await?;
    let url = machine.docker_url().await?;
    let host = &machine.host;
    let result = async {
        let os = remote
            .root_ok("reading /etc/os-release", "cat /etc/os-release", None)
            .await?;
        let os = provision::os::parse_os_release(&os.stdout_text());
        let family = provision::family(host, &os)?;
        report.info("Upgrading docker...");
        remote
            .root_ok("upgrading Docker", family.upgrade_docker, None)
            .await?;
        report.info("Restarting docker...");
        remote
            .root_ok("restarting Docker", "systemctl restart docker", None)
            .await?;
        provision::wait_for_docker(Some(&remote), host, &url)
            .await
            .map(|_| ())
    }
    .await;
    remote.close().await;
    result
}
