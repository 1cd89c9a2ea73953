//! `create`: docker-machine's pipeline — certificates, pre-create check, save, create, provision,
//! check — with the lifecycle recorded in the machine's record at every step.

use crate::cert::{self, CertPaths};
use crate::context::Context;
use crate::driver::{self, Driver, FlagValues, State};
use crate::error::{Error, Result};
use crate::store::config::{
    AuthOptions, CONFIG_VERSION, EngineOptions, Host, HostOptions, Lifecycle, SwarmOptions,
};
use crate::store::{layout, validate_name};

use crate::machine::Machine;
use crate::report::Reporter;

/// Engine flags of `create` (`--engine-*`).
#[derive(Debug, Clone, Default)]
pub struct EngineFlags {
    pub install_url: String,
    pub opts: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub labels: Vec<String>,
    pub storage_driver: String,
    pub env: Vec<String>,
}

/// Swarm flags of `create` (`--swarm*`, classic Swarm; recorded for compatibility).
#[derive(Debug, Clone, Default)]
pub struct SwarmFlags {
    pub agent: bool,
    pub master: bool,
    pub image: String,
    pub discovery: String,
    pub strategy: String,
    pub opts: Vec<String>,
    pub join_opts: Vec<String>,
    pub host: String,
    pub addr: String,
    pub experimental: bool,
}

/// Everything `create` needs.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    /// The values of every create flag, the driver's and the shared ones (`SetConfigFromFlags`).
    pub flags: FlagValues,
    pub engine: EngineFlags,
    pub swarm: SwarmFlags,
    pub tls_sans: Vec<String>,
    /// How to install Docker where it is missing.
    pub install_method: crate::provision::InstallMethod,
    /// Keep what a failed create made (for drivers that otherwise remove it: cloud instances).
    pub keep_on_failure: bool,
    /// Write a docker CLI context for the new machine (`--docker-context`).
    pub docker_context: bool,
    /// Put the new machine in a swarm (`--swarm-mode-init`, `--swarm-mode-join`).
    pub swarm_step: Option<SwarmStep>,
}

/// What a new machine does in Swarm mode once it runs.
#[derive(Debug, Clone)]
pub enum SwarmStep {
    /// Begins a swarm.
    Init,
    /// Joins the swarm of `manager` with `role`.
    Join {
        manager: String,
        role: crate::ops::swarm::Role,
    },
}

/// The record of a new machine, as docker-machine's `create` builds it.
pub fn new_host(
    ctx: &Context,
    opts: &CreateOptions,
    driver_name: &str,
    driver_config: serde_json::Map<String, serde_json::Value>,
) -> Result<Host> {
    let certs = ctx.store.certs_dir();
    let machine_dir = ctx.store.machine_dir(&opts.name);
    let path = |p: &std::path::Path| p.to_string_lossy().to_string();
    let pick = |over: &Option<std::path::PathBuf>, default: &str| {
        over.as_ref()
            .map_or_else(|| path(&certs.join(default)), |p| path(p))
    };
    let e = &opts.engine;
    let s = &opts.swarm;
    let mut host = Host {
        config_version: CONFIG_VERSION,
        driver: driver_config,
        driver_name: driver_name.to_string(),
        host_options: HostOptions {
            driver: String::new(),
            memory: 0,
            disk: 0,
            engine_options: EngineOptions {
                arbitrary_flags: Some(e.opts.clone()),
                dns: None,
                graph_dir: String::new(),
                env: Some(e.env.clone()),
                ipv6: false,
                insecure_registry: Some(e.insecure_registries.clone()),
                labels: Some(e.labels.clone()),
                log_level: String::new(),
                storage_driver: e.storage_driver.clone(),
                selinux_enabled: false,
                tls_verify: true,
                registry_mirror: Some(e.registry_mirrors.clone()),
                install_url: e.install_url.clone(),
                extra: Default::default(),
            },
            swarm_options: SwarmOptions {
                is_swarm: s.agent || s.master,
                address: s.addr.clone(),
                discovery: s.discovery.clone(),
                agent: s.agent,
                master: s.master,
                host: s.host.clone(),
                image: s.image.clone(),
                strategy: s.strategy.clone(),
                arbitrary_flags: Some(s.opts.clone()),
                arbitrary_join_flags: Some(s.join_opts.clone()),
                is_experimental: s.experimental,
                ..SwarmOptions::default()
            },
            auth_options: AuthOptions {
                cert_dir: path(&certs),
                ca_cert_path: pick(&ctx.tls.ca_cert, layout::CA_CERT),
                ca_private_key_path: pick(&ctx.tls.ca_key, layout::CA_KEY),
                ca_cert_remote_path: String::new(),
                server_cert_path: path(&machine_dir.join(layout::SERVER_CERT)),
                server_key_path: path(&machine_dir.join(layout::SERVER_KEY)),
                client_key_path: pick(&ctx.tls.client_key, layout::CLIENT_KEY),
                server_cert_remote_path: String::new(),
                server_key_remote_path: String::new(),
                client_cert_path: pick(&ctx.tls.client_cert, layout::CLIENT_CERT),
                server_cert_sans: Some(opts.tls_sans.clone()),
                store_path: path(&machine_dir),
                extra: Default::default(),
            },
            extra: Default::default(),
        },
        name: opts.name.clone(),
        hoist: None,
        extra: Default::default(),
    };
    host.set_lifecycle(Lifecycle::Creating, "");
    Ok(host)
}

/// The first of docker-machine's classic Swarm flags that `s` uses, if any.
fn classic_swarm_flag(s: &SwarmFlags) -> Option<&'static str> {
    let used = [
        ("--swarm", s.agent),
        ("--swarm-master", s.master),
        ("--swarm-discovery", !s.discovery.is_empty()),
        ("--swarm-opt", !s.opts.is_empty()),
        ("--swarm-join-opt", !s.join_opts.is_empty()),
        ("--swarm-addr", !s.addr.is_empty()),
        ("--swarm-experimental", s.experimental),
    ];
    used.iter().find(|(_, used)| *used).map(|(flag, _)| *flag)
}

/// Refuses classic Swarm flags for a driver that provisions its machine: that Swarm is
/// discontinued (its image cannot be pulled any more); Swarm mode replaces it. For a driver that
/// provisions nothing (`none`) they are recorded, as docker-machine 0.16.2 records them, so that
/// `ls --filter swarm=…`, the SWARM column and `env --swarm` work on such machines.
fn refuse_classic_swarm(s: &SwarmFlags, driver: &dyn Driver) -> Result<()> {
    match classic_swarm_flag(s) {
        Some(flag) if driver.provisions() => Err(Error::Usage(format!(
            "Error: {flag} is classic Swarm, which is discontinued (its image can no longer be pulled); use Swarm mode: '{p} create --swarm-mode-init' or '--swarm-mode-join MANAGER', or '{p} swarm init|join'",
            p = crate::context::program_name()
        ))),
        // docker-machine's check of a discovery URL: `[^:]*://.*`.
        _ if !s.discovery.is_empty() && !valid_discovery(&s.discovery) => {
            Err(Error::Usage(format!(
                "Error parsing swarm discovery: Swarm Discovery URL was in the wrong format: {}",
                s.discovery
            )))
        }
        _ => Ok(()),
    }
}

/// Whether a classic Swarm discovery URL has docker-machine's form, `[^:]*://.*`.
fn valid_discovery(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(':'))
}

/// The note for classic Swarm flags that are recorded, not provisioned.
const CLASSIC_SWARM_RECORDED: &str = "Note: classic Swarm is not provisioned (there is nothing to provision on this driver's machine): its --swarm settings are recorded, for ls and env";

/// Creates a machine with `driver` (opened on any config; it gets the new machine's). The
/// record exists from the pre-create check on; a failure after that leaves it listed as failed,
/// with its error, for `provision` or `rm`.
pub async fn create(
    ctx: &Context,
    opts: &CreateOptions,
    mut driver: Box<dyn Driver>,
    report: &dyn Reporter,
) -> Result<Host> {
    let result = prepare(ctx, opts, driver.as_mut()).await;
    let host = match result {
        Ok(host) => host,
        Err(e) => {
            driver.close().await;
            return Err(e);
        }
    };
    if classic_swarm_flag(&opts.swarm).is_some() {
        report.info(CLASSIC_SWARM_RECORDED);
    }
    let mut machine = Machine { host, driver };
    let result = create_machine(ctx, opts, &mut machine, report).await;
    machine.close().await;
    let host = result?;
    follow_up(ctx, opts, report).await?;
    Ok(host)
}

/// What follows a create that worked: how to reach the machine, its docker context, its swarm.
/// A swarm step that fails leaves the machine as it is, with the command that retries the step.
async fn follow_up(ctx: &Context, opts: &CreateOptions, report: &dyn Reporter) -> Result<()> {
    let (p, name) = (crate::context::program_name(), &opts.name);
    report.info(&format!(
        "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: {p} env {name}"
    ));
    if opts.docker_context {
        let written = crate::ops::docker_context::write(ctx, name, None).await?;
        report.info(&format!(
            "Docker context \"{written}\" reaches machine \"{name}\": docker --context {written} info"
        ));
    }
    let (swarm, retry) = match &opts.swarm_step {
        None => return Ok(()),
        Some(SwarmStep::Init) => (
            crate::ops::swarm::init(ctx, name, &Default::default()).await,
            format!("init {name}"),
        ),
        Some(SwarmStep::Join { manager, role }) => {
            let joined =
                crate::ops::swarm::join(ctx, manager, std::slice::from_ref(name), *role).await;
            (
                joined.and_then(|mut results| results.remove(0)),
                format!("join {manager} {name}"),
            )
        }
    };
    match swarm {
        Ok(message) => {
            report.info(&message);
            Ok(())
        }
        Err(e) => Err(Error::Other(format!(
            "machine \"{name}\" was created, but not added to a swarm: {e}; retry with '{p} swarm {retry}'"
        ))),
    }
}

/// The new machine's record from the driver's flags.
async fn prepare(ctx: &Context, opts: &CreateOptions, driver: &mut dyn Driver) -> Result<Host> {
    validate_name(&opts.name).map_err(|e| Error::Other(format!("Error creating machine: {e}")))?;
    refuse_classic_swarm(&opts.swarm, driver)?;
    let root = ctx.store.root().to_string_lossy().to_string();
    let flags_error = |e: driver::DriverError| {
        Error::Other(format!(
            "Error setting machine configuration from flags provided: {e}"
        ))
    };
    driver
        .set_config(driver::new_config(&opts.name, &root))
        .await
        .map_err(flags_error)?;
    driver
        .set_config_from_flags(&opts.flags)
        .await
        .map_err(flags_error)?;
    // The driver's config joins the record after the pre-create check, as libmachine saves it.
    new_host(ctx, opts, driver.name(), serde_json::Map::new())
}

async fn create_machine(
    ctx: &Context,
    opts: &CreateOptions,
    machine: &mut Machine,
    report: &dyn Reporter,
) -> Result<Host> {
    let _lock = crate::machine::lock_machine(ctx, &opts.name).await?;
    ctx.store.sweep();
    if ctx.store.exists(&opts.name) {
        let exists = crate::store::StoreError::AlreadyExists(opts.name.clone());
        return Err(match ctx.store.load(&opts.name).map(|h| h.lifecycle()) {
            Ok(Lifecycle::Failed | Lifecycle::Creating | Lifecycle::Provisioning) => {
                Error::Other(format!(
                    "{exists} (its create did not finish: run '{p} provision {n}' to finish it, or '{p} rm {n}' to start over)",
                    p = crate::context::program_name(),
                    n = opts.name
                ))
            }
            _ => exists.into(),
        });
    }
    let paths = crate::machine::cert_paths(&machine.host);
    if paths == CertPaths::in_dir(&ctx.store.certs_dir()) {
        let bootstrap = cert::bootstrap(&ctx.store, &paths, &Context::username())
            .map_err(|e| Error::Other(format!("Error generating certificates: {e}")))?;
        for message in &bootstrap.messages {
            report.info(message);
        }
    }
    report.info("Running pre-create checks...");
    machine
        .driver
        .pre_create_check()
        .await
        .map_err(|e| Error::PreCreate(e.to_string()))?;
    machine.take_driver_config().await?;
    crate::provision::set_install_method(&mut machine.host, opts.install_method);
    ctx.store.create(&machine.host)?;
    machine
        .driver
        .set_record_writer(crate::machine::record_writer(&ctx.store, &opts.name));
    report.info("Creating machine...");
    let result = make_and_provision(ctx, machine, report).await;
    // Whatever happened, the record keeps what the driver made (an instance to remove later).
    let config = machine.driver.config().await;
    let host = &mut machine.host;
    if let Ok(config) = config {
        host.driver = config;
    }
    match result {
        Ok(()) => {
            host.set_lifecycle(Lifecycle::Running, "");
            ctx.store.save(host)?;
            Ok(host.clone())
        }
        Err(e) if machine.driver.removes_failed_create() && !opts.keep_on_failure => {
            report.info("Removing what the failed create made (--keep-on-failure keeps it)...");
            let removed = machine.driver.remove().await;
            let outcome = match removed {
                Ok(()) => {
                    ctx.store.remove(&opts.name)?;
                    "everything it made was removed".to_string()
                }
                Err(undo) => {
                    host.set_lifecycle(Lifecycle::Failed, &e.to_string());
                    ctx.store.save(host)?;
                    format!(
                        "removing what it made failed too ({undo}); '{p} rm {n}' tries again",
                        p = crate::context::program_name(),
                        n = opts.name
                    )
                }
            };
            Err(Error::Other(format!(
                "Error creating machine: {e}; {outcome}"
            )))
        }
        Err(e) => {
            host.set_lifecycle(Lifecycle::Failed, &e.to_string());
            ctx.store.save(host)?;
            Err(Error::Other(format!("Error creating machine: {e}")))
        }
    }
}

/// docker-machine's `performCreate`: the driver's create, the wait for Running, provisioning.
async fn make_and_provision(
    ctx: &Context,
    machine: &mut Machine,
    report: &dyn Reporter,
) -> Result<()> {
    machine
        .driver
        .create()
        .await
        .map_err(|e| Error::Other(format!("Error in driver during machine creation: {e}")))?;
    machine.take_driver_config().await?;
    ctx.store.save(&machine.host)?;
    if !machine.driver.provisions() {
        // Nothing to provision, but the docker CLI finds its certificates where `env` says.
        return crate::provision::copy_client_certs(ctx, &machine.host);
    }
    report.info("Waiting for machine to be running, this may take a few minutes...");
    let wait = machine.driver.running_wait();
    if !wait.is_zero() {
        driver::wait_for_state(machine.driver.as_ref(), State::Running, wait)
            .await
            .map_err(|e| Error::Other(format!("Error waiting for machine to be running: {e}")))?;
    }
    report.info("Detecting operating system of created instance...");
    crate::provision::provision(ctx, machine, report, Default::default()).await
}
