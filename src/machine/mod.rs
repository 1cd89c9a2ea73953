//! A stored machine: its record with its driver open ([`Machine`]), its lock, the writer of its
//! record that drivers get, its certificate paths, SSH sessions to it ([`session`]), the rule
//! that picks the machines a command is about, and the bounded fan-out over many machines.
//! This layer sits under `provision` and `ops`, and uses neither.

pub mod session;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cert::CertPaths;
use crate::context::Context;
use crate::driver::{self, Driver, DriverEnv};
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::store::config::Host;

/// How many machines a multi-machine command works on at once.
pub const MAX_CONCURRENT_MACHINES: usize = 32;

/// A stored machine with its driver open. Close it when done: a plugin driver's process ends
/// then (dropped without closing, the process is killed).
pub struct Machine {
    pub host: Host,
    pub driver: Box<dyn Driver>,
}

impl Machine {
    /// Opens the driver of a loaded record.
    pub async fn open(ctx: &Context, host: Host) -> Result<Machine> {
        let env = driver_env(&host, ctx.report.clone());
        let driver = driver::open(&host.driver_name, &host.driver, &env).await?;
        Ok(Machine { host, driver })
    }

    /// Loads a machine and opens its driver.
    pub async fn load(ctx: &Context, name: &str) -> Result<Machine> {
        Machine::open(ctx, ctx.store.load(name)?).await
    }

    /// Takes the driver's current config into the record (after the driver changed it).
    pub async fn take_driver_config(&mut self) -> Result<()> {
        self.host.driver = self.driver.config().await?;
        Ok(())
    }

    /// The Docker URL: the one the record has, else the driver's answer (`GetURL`).
    pub async fn docker_url(&self) -> Result<String> {
        match self.driver.known_url() {
            Some(url) => Ok(url),
            None => Ok(self.driver.url().await?),
        }
    }

    /// Ends the driver's session.
    pub async fn close(self) {
        self.driver.close().await;
    }
}

/// Takes a machine's lock without blocking the async workers (two tasks of one command may wait
/// for the same machine, as in `provision web web`).
pub async fn lock_machine(ctx: &Context, name: &str) -> Result<crate::fsutil::FileLock> {
    let store = ctx.store.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || store.lock_machine(&name))
        .await
        .map_err(|e| Error::Other(format!("lock task failed: {e}")))?
        .map_err(Error::from)
}

/// What a machine's driver is opened with: where its messages go and the pinned SSH host key.
pub fn driver_env(host: &Host, report: Arc<dyn Reporter>) -> DriverEnv {
    let mut env = DriverEnv::new(&host.name, report);
    env.ssh_host_key = session::pinned_key(host);
    env
}

/// Writes the driver part of machine `name`'s record (a removed machine is not brought back).
pub fn record_writer(store: &crate::store::Store, name: &str) -> driver::RecordWriter {
    let store = store.clone();
    let name = name.to_string();
    Arc::new(move |config| {
        let mut host = store.load(&name).map_err(|e| e.to_string())?;
        host.driver = config;
        store.save(&host).map_err(|e| e.to_string())
    })
}

/// The CA and client certificate a machine's record points at.
pub fn cert_paths(host: &Host) -> CertPaths {
    let auth = &host.host_options.auth_options;
    CertPaths {
        ca_cert: auth.ca_cert_path.clone().into(),
        ca_key: auth.ca_private_key_path.clone().into(),
        client_cert: auth.client_cert_path.clone().into(),
        client_key: auth.client_key_path.clone().into(),
    }
}

/// Runs `action` for each name, at most [`MAX_CONCURRENT_MACHINES`] at once; results keep the
/// order of `names`.
pub async fn for_each_machine<T, F, Fut>(names: &[String], action: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_MACHINES));
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let fut = action(name.clone());
            let limit = limit.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| Err(Error::Other(format!("task failed: {e}")))),
        );
    }
    results
}

/// Runs `action` for each machine, at most [`MAX_CONCURRENT_MACHINES`] at once, each with its
/// own reporter when there are several ([`Reporter::for_machine`]); results keep the order.
pub async fn for_each_reporting<F, Fut>(
    names: &[String],
    report: &Arc<dyn Reporter>,
    action: F,
) -> Vec<Result<()>>
where
    F: Fn(String, Arc<dyn Reporter>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let several = names.len() > 1;
    for_each_machine(names, |name| {
        let own = several.then(|| report.for_machine(&name)).flatten();
        action(name, own.unwrap_or_else(|| report.clone()))
    })
    .await
}

/// docker-machine's target rule for commands about machines: the names given, else `default`
/// when it exists.
pub fn target_names(ctx: &Context, names: Vec<String>) -> Result<Vec<String>> {
    if !names.is_empty() {
        return Ok(names);
    }
    if ctx.store.exists("default") {
        return Ok(vec!["default".into()]);
    }
    Err(Error::Usage(
        "Error: No machine name(s) specified and no \"default\" machine exists".into(),
    ))
}

/// The one machine a command is about (`default` when none is named).
pub fn target_one(ctx: &Context, names: Vec<String>) -> Result<String> {
    if names.len() > 1 {
        return Err(Error::Usage(
            "Error: Expected one machine name as an argument".into(),
        ));
    }
    Ok(target_names(ctx, names)?.remove(0))
}
