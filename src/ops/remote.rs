//! The commands that act on a machine over SSH: `provision`, `regenerate-certs`, `upgrade`.
//! Each holds the machine's lock and records the outcome in the machine's record.

use std::time::Duration;

use crate::cert;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::provision::{self, ProvisionOptions};
use crate::ssh::Remote;
use crate::store::config::Lifecycle;

use super::power::prefixed;
use super::{Machine, Reporter, session};

/// What a locked run does to the machine.
enum Action {
    Provision(ProvisionOptions),
    Upgrade,
}

/// Runs an action under the machine's lock and records its outcome (running, or failed with the
/// error) in the machine's record.
async fn locked(ctx: &Context, name: &str, report: &dyn Reporter, action: Action) -> Result<()> {
    let _lock = super::lock_machine(ctx, name).await?;
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
/// before the machines' server certificates. The daemons of machines not named keep trusting the
/// old CA; the message names them.
pub fn regenerate_client_certs(
    ctx: &Context,
    names: &[String],
    report: &dyn Reporter,
) -> Result<()> {
    let paths = cert::CertPaths::in_dir(&ctx.store.certs_dir());
    report.info("Regenerating local certificates");
    {
        let _lock = ctx.store.lock_certs()?;
        for file in [&paths.ca_cert, &paths.client_cert] {
            let _ = std::fs::remove_file(file);
        }
    }
    cert::bootstrap(&ctx.store, &paths, &Context::username())?;
    let others: Vec<String> = ctx
        .store
        .list()?
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    if !others.is_empty() {
        report.info(&format!(
            "The CA is new: the daemons of {} still trust the old one; run '{} regenerate-certs -f' for them too",
            others.join(", "),
            crate::context::program_name()
        ));
    }
    Ok(())
}

/// `regenerate-certs`: a new server certificate for the machine's current IP, installed by a
/// provisioning run (as docker-machine, which re-provisions).
pub async fn regenerate_certs(ctx: &Context, name: &str, report: &dyn Reporter) -> Result<()> {
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
        let family = provision::os::family_of(&os)
            .ok_or_else(|| Error::Other(format!("unsupported operating system ID {:?}", os.id)))?;
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
