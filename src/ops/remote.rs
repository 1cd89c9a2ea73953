//! The commands that act on a machine over SSH: `provision`, `regenerate-certs`, `restart`,
//! `upgrade`. Each holds the machine's lock and records the outcome in the machine's record.

use std::time::Duration;

use crate::cert;
use crate::context::Context;
use crate::driver::{Driver, State};
use crate::error::{Error, Result};
use crate::provision::{self, ProvisionOptions, Remote};
use crate::store::config::{Host, Lifecycle};

use super::Reporter;

/// How long a rebooting host may take to come back.
pub const REBOOT_WAIT: Duration = Duration::from_secs(180);

/// What a locked run does to the machine.
enum Action {
    Provision(ProvisionOptions),
    Restart,
    Upgrade,
}

/// Runs an action under the machine's lock and records its outcome (running, or failed with the
/// error) in the machine's record.
async fn locked(ctx: &Context, name: &str, report: &dyn Reporter, action: Action) -> Result<()> {
    let _lock = ctx.store.lock_machine(name)?;
    let mut host = ctx.store.load(name)?;
    let result = match action {
        Action::Provision(opts) => provision::provision(ctx, &mut host, report, opts).await,
        Action::Restart => restart_host(ctx, &mut host, report).await,
        Action::Upgrade => upgrade_host(ctx, &mut host, report).await,
    };
    match &result {
        Ok(()) => host.set_lifecycle(Lifecycle::Running, ""),
        Err(e) => host.set_lifecycle(Lifecycle::Failed, &e.to_string()),
    }
    ctx.store.save(&host)?;
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

fn prefixed(name: &str, e: Error) -> Error {
    let text = e.to_string();
    if text.contains(&format!("\"{name}\"")) {
        e
    } else {
        Error::Other(format!("machine \"{name}\": {text}"))
    }
}

/// The driver of a machine that `action` reaches over SSH (generic); others refuse the action.
fn ssh_driver(host: &Host, action: &'static str) -> Result<Driver> {
    let driver = Driver::for_host(host)?;
    match driver {
        Driver::Generic(_) => Ok(driver),
        _ => Err(driver.unsupported(action).into()),
    }
}

/// `restart`: reboots a generic host over SSH and waits for its daemon to answer again.
pub async fn restart(ctx: &Context, name: &str, report: &dyn Reporter) -> Result<()> {
    locked(ctx, name, report, Action::Restart).await
}

async fn restart_host(ctx: &Context, host: &mut Host, report: &dyn Reporter) -> Result<()> {
    let driver = ssh_driver(host, "restart")?;
    report.info(&format!("Restarting \"{}\"...", host.name));
    {
        let session =
            provision::connect(ctx, host, &driver, Duration::from_secs(30), false).await?;
        let remote = Remote::new(session, &host.name, report).await?;
        // The connection drops as the host goes down; the command's own result does not matter.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            remote.root(
                "(sleep 1; systemctl reboot || shutdown -r now) >/dev/null 2>&1 &",
                None,
            ),
        )
        .await;
        remote.close().await;
    }
    let started = std::time::Instant::now();
    // Wait for SSH to go away (or for the reboot to have passed), then for it to return.
    while started.elapsed() < Duration::from_secs(30)
        && driver.state(Duration::from_secs(1)).await == State::Running
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let session = provision::connect(ctx, host, &driver, REBOOT_WAIT, false).await?;
    session.close().await;
    let url = driver.recorded_url()?;
    provision::wait_for_docker(None, host, &url).await?;
    Ok(())
}

/// `upgrade`: upgrades the distribution's Docker package and restarts the daemon.
pub async fn upgrade(ctx: &Context, name: &str, report: &dyn Reporter) -> Result<()> {
    locked(ctx, name, report, Action::Upgrade).await
}

async fn upgrade_host(ctx: &Context, host: &mut Host, report: &dyn Reporter) -> Result<()> {
    let driver = ssh_driver(host, "upgrade")?;
    let session = provision::connect(ctx, host, &driver, Duration::from_secs(30), false).await?;
    let remote = Remote::new(session, &host.name, report).await?;
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
        provision::wait_for_docker(Some(&remote), host, &driver.recorded_url()?)
            .await
            .map(|_| ())
    }
    .await;
    remote.close().await;
    result
}
