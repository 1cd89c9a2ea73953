//! The operations behind the commands; each takes an options struct and the [`Context`].

pub mod create;
pub mod env;
pub mod ls;
pub mod machine;
pub mod remote;
pub mod rm;
pub mod ssh;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cert::CertPaths;
use crate::context::Context;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::store::config::Host;

/// How many machines a multi-machine command works on at once.
pub const MAX_CONCURRENT_MACHINES: usize = 32;

/// Receives the step messages of long operations; the binary decides how to show them.
pub trait Reporter: Send + Sync {
    /// A step, as docker-machine logs it (`Creating machine...`).
    fn info(&self, message: &str);
    /// Detail shown only with `--debug` (remote commands, their output and exit status).
    fn debug(&self, message: &str);
}

/// A reporter that shows nothing (for tests and quiet callers).
pub struct Silent;

impl Reporter for Silent {
    fn info(&self, _: &str) {}
    fn debug(&self, _: &str) {}
}

/// A stored machine and its driver.
pub fn load(ctx: &Context, name: &str) -> Result<(Host, Driver)> {
    let host = ctx.store.load(name)?;
    let driver = Driver::for_host(&host)?;
    Ok((host, driver))
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

/// Collects per-machine results: the values, or one error with a line per failed machine.
pub fn collect<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(Error::Many(errors))
    }
}
