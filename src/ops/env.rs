//! `env` and `config`: how the docker CLI reaches a machine, after checking with one TLS handshake
//! that the machine's certificates are valid.

use std::time::Duration;

use crate::cert;
use crate::context::Context;
use crate::engine::{EngineClient, EngineError};
use crate::error::{Error, Result};
use crate::format::go_quote;
use crate::machine::Machine;
use crate::shell::{Shell, command_line};
use crate::store::layout;

/// How long the TLS check of `env` and `config` may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `env` options.
#[derive(Debug, Clone, Default)]
pub struct EnvOptions {
    pub shell: Option<String>,
    pub unset: bool,
    pub no_proxy: bool,
    pub swarm: bool,
    /// Skip the TLS check (for shell start-up files): print from the record alone.
    pub no_check: bool,
}

/// The machine's Docker URL (or its swarm master URL with `swarm`), after a TLS handshake proves
/// the daemon's certificate valid — with the certificates in `cert_dir`, the machine directory
/// that `DOCKER_CERT_PATH` (or `config`'s flags) give the docker CLI: what docker will use is
/// what is checked. The check is one TLS handshake to the recorded URL.
pub async fn checked_url(
    machine: &Machine,
    cert_dir: &std::path::Path,
    swarm: bool,
    check: bool,
) -> Result<String> {
    let host = &machine.host;
    if let Some(error) = host.failure() {
        return Err(Error::Other(format!(
            "machine \"{n}\" is not ready: {error}; retry with '{p} provision {n}' or remove it with '{p} rm {n}'",
            n = host.name,
            p = crate::context::program_name()
        )));
    }
    let url = machine.docker_url().await?;
    let url = if swarm {
        let opts = &host.host_options.swarm_options;
        if !opts.master {
            return Err(Error::Other(format!(
                "\"{}\" is not a swarm master. The --swarm flag is intended for use with swarm masters",
                host.name
            )));
        }
        super::classic_swarm::swarm_url(&url, &opts.host).ok_or_else(|| {
            Error::Other(format!(
                "invalid swarm host {:?} of machine \"{}\"",
                opts.host, host.name
            ))
        })?
    } else {
        url
    };
    if !check {
        return Ok(url);
    }
    let tls = cert::client_config(&cert::CertPaths::in_dir(cert_dir))?;
    let client = EngineClient::new(tls, CHECK_TIMEOUT);
    match client.check_tls(&url).await {
        Ok(()) => Ok(url),
        Err(EngineError::Tls(reason)) => {
            let (h, p) = crate::engine::parse_tcp_url(&url)?;
            Err(Error::Other(format!(
                "Error checking and/or regenerating the certs: There was an error validating certificates for host \"{}\": {reason}\nYou can attempt to regenerate them using '{} regenerate-certs {}'.\nBe advised that this will trigger a Docker daemon restart which might stop running containers.",
                crate::netaddr::join_host_port(&h, p),
                crate::context::program_name(),
                host.name
            )))
        }
        Err(e) => Err(Error::Other(format!(
            "{e}: the Docker daemon of machine \"{n}\" does not answer; see its log with '{p} ssh {n} journalctl -u docker -n 20', or set it up and start it again with '{p} provision {n}'",
            n = host.name,
            p = crate::context::program_name(),
        ))),
    }
}

/// Renders `env` for a machine (or the unset lines when `name` is `None` and `unset` is set).
pub async fn env(ctx: &Context, name: Option<&str>, opts: &EnvOptions) -> Result<String> {
    let shell = Shell::detect(
        opts.shell.as_deref(),
        std::env::var(crate::context::ENV_SHELL).ok().as_deref(),
    );
    let no_proxy_var = || {
        if std::env::var("no_proxy").is_ok_and(|v| !v.is_empty()) {
            "no_proxy"
        } else {
            "NO_PROXY"
        }
    };
    let mut out = String::new();
    if opts.unset {
        if name.is_some() {
            return Err(Error::Usage(
                "Error: Expected no machine name when the -u flag is present".into(),
            ));
        }
        for var in [
            "DOCKER_TLS_VERIFY",
            "DOCKER_HOST",
            "DOCKER_CERT_PATH",
            "DOCKER_MACHINE_NAME",
        ] {
            out.push_str(&shell.unset(var));
        }
        if opts.no_proxy {
            out.push_str(&shell.unset(no_proxy_var()));
        }
    } else {
        let name = name.ok_or_else(|| {
            Error::Usage("Error: Expected one machine name as an argument".into())
        })?;
        let (name, swarm) = &swarm_target(ctx, name, opts.swarm).await?;
        let machine = Machine::load(ctx, name).await?;
        let cert_path = ctx.store.machine_dir(name);
        let url = checked_url(&machine, &cert_path, *swarm, !opts.no_check)
            .await
            .map_err(|e| Error::Other(format!("Error checking TLS connection: {e}")));
        let ip = if opts.no_proxy {
            machine.driver.ip().await.map_err(Error::from)
        } else {
            Ok(String::new())
        };
        machine.close().await;
        let url = url?;
        // Every character but a line break is kept by each shell's eval of its line.
        let set = |var: &str, value: &str| match value.contains(['\n', '\r']) {
            false => Ok(shell.set(var, value)),
            true => Err(Error::Other(format!(
                "Error: the value of {var} for machine \"{name}\" ({value:?}) contains a line break, which a shell's eval cannot keep; {}",
                match var {
                    "DOCKER_CERT_PATH" =>
                        "use a storage path without one (--storage-path, MACHINE_STORAGE_PATH)",
                    _ => "remove it from the environment variable",
                }
            ))),
        };
        out.push_str(&set("DOCKER_TLS_VERIFY", "1")?);
        out.push_str(&set("DOCKER_HOST", &url)?);
        out.push_str(&set("DOCKER_CERT_PATH", &cert_path.to_string_lossy())?);
        out.push_str(&set("DOCKER_MACHINE_NAME", name)?);
        if opts.no_proxy {
            let var = no_proxy_var();
            let ip = ip?;
            let current = std::env::var(var).unwrap_or_default();
            let value = if current.is_empty() {
                ip
            } else if current.contains(&ip) {
                current
            } else {
                format!("{current},{ip}")
            };
            out.push_str(&set(var, &value)?);
        }
    }
    out.push_str(&shell.usage_hint(&command_line(&ctx.argv)));
    Ok(out)
}

/// The machine whose daemon `--swarm` means, and whether that is a classic swarm master's:
/// for a Swarm-mode node, a manager of its swarm that answers (the node itself if it is one).
async fn swarm_target(ctx: &Context, name: &str, swarm: bool) -> Result<(String, bool)> {
    if swarm && let Some(manager) = super::swarm::reachable_manager(ctx, name).await? {
        return Ok((manager, false));
    }
    Ok((name.to_string(), swarm))
}

/// Renders `config`: the docker CLI flags that reach the machine.
pub async fn config(ctx: &Context, name: &str, swarm: bool) -> Result<String> {
    let (name, swarm) = &swarm_target(ctx, name, swarm).await?;
    let machine = Machine::load(ctx, name).await?;
    let dir = ctx.store.machine_dir(name);
    let url = checked_url(&machine, &dir, *swarm, true).await;
    machine.close().await;
    let url =
        url.map_err(|e| Error::Other(format!("Error running connection boilerplate: {e}")))?;
    let path = |f: &str| go_quote(&dir.join(f).to_string_lossy());
    Ok(format!(
        "--tlsverify\n--tlscacert={}\n--tlscert={}\n--tlskey={}\n-H={url}\n",
        path(layout::CA_CERT),
        path(layout::CLIENT_CERT),
        path(layout::CLIENT_KEY)
    ))
}
