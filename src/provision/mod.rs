//! Provisioning a host over SSH: detect the OS, set the hostname, install Docker only when it is
//! missing, put the certificates and the systemd drop-in in place, restart the daemon, and wait
//! until a real TLS request with the client certificate succeeds.
//!
//! It never reinstalls Docker, never removes images or containers, and never forces a storage
//! driver. All commands of one run travel over one SSH connection.

pub mod live_restore;
pub mod os;
pub mod systemd;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::cert;
use crate::context::Context;
use crate::engine::EngineClient;
use crate::error::{Error, Result};
use crate::machine::{Machine, session};
use crate::report::Reporter;
use crate::ssh::{Remote, quote};
use crate::store::config::{Host, Lifecycle};
use crate::store::layout;

use live_restore::{DaemonState, LiveRestore};
use os::Family;
use systemd::LocalSocket;

/// How long an existing host may take to answer SSH (it should be up already; 3 connect timeouts).
pub const SSH_WAIT: Duration = Duration::from_secs(30);
/// How long the daemon may take to answer over TLS after a restart.
pub const DOCKER_WAIT: Duration = Duration::from_secs(60);

/// How Docker gets installed on a host that has none (`--engine-install-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstallMethod {
    /// The install script at `--engine-install-url`.
    #[default]
    Auto,
    /// Same as auto: the script.
    Script,
    /// The distribution's own package (docker.io, moby-engine, …).
    Distro,
    /// Never install; fail when Docker is missing.
    None,
}

impl InstallMethod {
    /// Parses `auto|script|distro|none`.
    pub fn parse(s: &str) -> Result<InstallMethod> {
        match s {
            "" | "auto" => Ok(InstallMethod::Auto),
            "script" => Ok(InstallMethod::Script),
            "distro" => Ok(InstallMethod::Distro),
            "none" => Ok(InstallMethod::None),
            other => Err(Error::Usage(format!(
                "invalid --engine-install-method {other:?}: expected auto, script, distro or none"
            ))),
        }
    }

    /// The name stored in the machine record.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallMethod::Auto => "auto",
            InstallMethod::Script => "script",
            InstallMethod::Distro => "distro",
            InstallMethod::None => "none",
        }
    }
}

/// Key of the install method in hoist's record.
const INSTALL_METHOD_KEY: &str = "EngineInstallMethod";

/// The install method recorded for a machine.
pub fn install_method(host: &Host) -> InstallMethod {
    host.hoist
        .as_ref()
        .and_then(|h| h.extra.get(INSTALL_METHOD_KEY))
        .and_then(|v| v.as_str())
        .and_then(|s| InstallMethod::parse(s).ok())
        .unwrap_or_default()
}

/// Records the install method for later `provision` runs.
pub fn set_install_method(host: &mut Host, method: InstallMethod) {
    host.record_mut().extra.insert(
        INSTALL_METHOD_KEY.into(),
        serde_json::Value::from(method.as_str()),
    );
}

/// What the first round trip learns about the host.
#[derive(Debug)]
struct Probe {
    os: os::OsRelease,
    dockerd: String,
    socket: LocalSocket,
    /// The running daemon's state (`None`: no daemon runs).
    daemon: Option<DaemonState>,
    /// hoist's systemd drop-in as the host has it (empty: none).
    dropin: String,
}

async fn probe(remote: &Remote<'_>) -> Result<Probe> {
    let out = remote
        .root(
            &format!(
                "cat /etc/os-release 2>/dev/null; echo '@@hoist@@'; command -v dockerd || true; echo '@@hoist@@'; systemctl is-enabled docker.socket 2>/dev/null || true; echo '@@hoist@@'; {}; echo; echo '@@hoist@@'; cat {} 2>/dev/null || true",
                live_restore::DAEMON_INFO,
                systemd::DROPIN_PATH
            ),
            None,
        )
        .await?;
    Ok(Probe::parse(&out.stdout_text()))
}

impl Probe {
    /// Reads the probe's output: its sections, separated by `@@hoist@@` lines. A section that is
    /// missing (the host's shell ended early) reads as nothing found.
    fn parse(text: &str) -> Probe {
        let mut parts = text.split("@@hoist@@\n");
        let os = os::parse_os_release(parts.next().unwrap_or(""));
        let dockerd = parts.next().unwrap_or("").trim().to_string();
        let socket = match parts.next().unwrap_or("").trim() {
            "enabled" | "static" | "indirect" | "enabled-runtime" => LocalSocket::SystemdSocket,
            _ => LocalSocket::Unix,
        };
        let daemon = DaemonState::from_info(parts.next().unwrap_or(""));
        let dropin = parts.next().unwrap_or("").to_string();
        Probe {
            os,
            dockerd,
            socket,
            daemon,
            dropin,
        }
    }
}

/// The provisioner family of a host's `/etc/os-release`, or an error naming the ones hoist knows.
pub fn family(host: &Host, os: &os::OsRelease) -> Result<&'static Family> {
    os::family_of(os).ok_or_else(|| {
        let id = if os.id.is_empty() { "(no /etc/os-release)" } else { &os.id };
        Error::Other(format!(
            "machine \"{}\": unsupported operating system ID {id:?}{}; hoist provisions Debian, Ubuntu, Fedora, RHEL-likes, SUSE and Arch",
            host.name,
            if os.pretty_name.is_empty() { String::new() } else { format!(" ({})", os.pretty_name) }
        ))
    })
}

async fn set_hostname(remote: &Remote<'_>, name: &str) -> Result<()> {
    // The name is a validated machine name ([a-zA-Z0-9.-]); /etc/hosts is rewritten in place
    // (no rename), which also works where it is a bind mount.
    let n = quote(name);
    let script = format!(
        "hostname {n} && echo {n} > /etc/hostname && \
         if ! grep -xq \".*[[:space:]]{name}\" /etc/hosts; then \
           if grep -q '^127.0.1.1[[:space:]]' /etc/hosts; then \
             t=$(sed 's/^127.0.1.1[[:space:]].*/127.0.1.1 {name}/' /etc/hosts) && printf '%s\\n' \"$t\" > /etc/hosts; \
           else echo '127.0.1.1 {name}' >> /etc/hosts; fi; \
         fi"
    );
    remote
        .root_ok("setting the hostname", &script, None)
        .await?;
    Ok(())
}

/// The shell text that installs Docker on a host of `family` with `method` (`url`: the install
/// script's), and what it is called in messages; `None` for `--engine-install-method none`.
fn install_script(family: &Family, method: InstallMethod, url: &str) -> Option<(String, String)> {
    match method {
        InstallMethod::None => None,
        InstallMethod::Distro => Some((
            format!("installing {} from the distribution", family.docker_package),
            format!(
                "{} && systemctl enable --now docker",
                family.install_command(&[family.docker_package])
            ),
        )),
        InstallMethod::Auto | InstallMethod::Script => Some((
            format!("installing Docker with the script at {url}"),
            format!(
                "command -v curl >/dev/null || {{ {}; }} && d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && curl -fsSL --connect-timeout 20 --url {} -o \"$d/install.sh\" && sh \"$d/install.sh\" && systemctl enable --now docker",
                family.install_command(&["curl", "ca-certificates"]),
                quote(url)
            ),
        )),
    }
}

async fn install_docker(
    remote: &Remote<'_>,
    family: &Family,
    method: InstallMethod,
    url: &str,
) -> Result<()> {
    let Some((what, script)) = install_script(family, method, url) else {
        return Err(Error::Other(format!(
            "Docker is not installed on machine \"{}\" and --engine-install-method is none",
            remote.machine
        )));
    };
    let installed = remote.root_ok(&what, &script, None).await.map(|_| ());
    match method {
        InstallMethod::Distro => Ok(installed?),
        _ => installed.map_err(|e| {
            Error::Other(format!(
                "{e}; to install the distribution's package instead, run '{} provision --engine-install-method distro {}'",
                crate::context::program_name(),
                remote.machine
            ))
        }),
    }
}

/// Copies the CA and the client certificate and key into the machine directory, where
/// `DOCKER_CERT_PATH` points the docker CLI (`env`) and `config`'s flags name them. They are read
/// under the store's certificate lock: `regenerate-certs --client-certs` rewrites them under it,
/// so a copy is never half old, half new.
pub fn copy_client_certs(ctx: &Context, host: &Host) -> Result<()> {
    let _certs = ctx.store.lock_certs()?;
    copy_client_certs_locked(ctx, host)
}

fn copy_client_certs_locked(ctx: &Context, host: &Host) -> Result<()> {
    let paths = crate::machine::cert_paths(host);
    cert::settle(&paths)?;
    let dir = ctx.store.machine_dir(&host.name);
    // The CA copy is what the docker CLI trusts: both CAs during a rotation.
    let ca = dir.join(layout::CA_CERT);
    crate::fsutil::write_atomic(&ca, &cert::trust_bundle(&paths)?, 0o644)
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", ca.display())))?;
    let (key, cert) = (dir.join(layout::CLIENT_KEY), dir.join(layout::CLIENT_CERT));
    crate::fsutil::write_pair(
        (&key, &read_local(&paths.client_key)?, 0o600),
        (&cert, &read_local(&paths.client_cert)?, 0o644),
    )
    .map_err(|e| Error::Other(format!("cannot write {}: {e}", cert.display())))
}

/// Generates the machine's server certificate (SANs: `--tls-san`, IP, localhost) and copies the
/// CA and client certificate into the machine directory. Returns (CAs to trust, server cert,
/// server key) PEMs.
pub fn machine_certs(
    ctx: &Context,
    host: &Host,
    ip: &str,
    report: &dyn Reporter,
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let paths = crate::machine::cert_paths(host);
    report.info("Copying certs to the local machine directory...");
    let _certs = ctx.store.lock_certs()?;
    copy_client_certs_locked(ctx, host)?;
    let auth = &host.host_options.auth_options;
    let sans = cert::server_sans(auth.server_cert_sans.as_deref().unwrap_or(&[]), ip);
    let org = format!("{}.{}", Context::username(), host.name);
    report.debug(&format!(
        "generating server cert: {} org={org} san={sans:?}",
        auth.server_cert_path
    ));
    cert::generate_server_cert(
        &paths,
        &org,
        &sans,
        auth.server_cert_path.as_ref(),
        auth.server_key_path.as_ref(),
    )?;
    Ok((
        cert::trust_bundle(&paths)?,
        read_local(auth.server_cert_path.as_ref())?,
        read_local(auth.server_key_path.as_ref())?,
    ))
}

/// Reads a file of the store (a certificate or key), saying which one could not be read.
fn read_local(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))
}

/// The last lines of the Docker daemon's journal on the host.
async fn journal_tail(remote: &Remote<'_>) -> String {
    remote
        .root(
            "journalctl -u docker --no-pager -n 15 -o cat 2>&1 || true",
            None,
        )
        .await
        .map(|o| o.stdout_text().trim_end().to_string())
        .unwrap_or_default()
}

/// Waits until the daemon answers `GET /version` over mutual TLS; on failure the error carries
/// the last lines of its journal.
pub async fn wait_for_docker(
    remote: Option<&Remote<'_>>,
    host: &Host,
    url: &str,
) -> Result<String> {
    let client = EngineClient::new(
        cert::client_config(&crate::machine::cert_paths(host))?,
        Duration::from_secs(5),
    );
    let started = Instant::now();
    loop {
        match client.version(url).await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() >= DOCKER_WAIT => {
                let journal = match remote {
                    Some(r) => journal_tail(r).await,
                    None => String::new(),
                };
                return Err(Error::Other(format!(
                    "the Docker daemon of machine \"{n}\" did not answer over TLS at {url} within {}s: {e}; once the host is fine, set it up again with '{p} provision {n}'\nLast lines of its journal:\n{journal}",
                    DOCKER_WAIT.as_secs(),
                    n = host.name,
                    p = crate::context::program_name(),
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Options of a provisioning run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProvisionOptions {
    /// Accept a changed SSH host key and pin the new one.
    pub trust_new_host_key: bool,
    /// Change how Docker is installed where it is missing (recorded for later runs).
    pub install_method: Option<InstallMethod>,
}

/// Provisions (or re-provisions) a machine; safe to run again. The caller holds the machine's lock.
pub async fn provision(
    ctx: &Context,
    machine: &mut Machine,
    report: &dyn Reporter,
    opts: ProvisionOptions,
) -> Result<()> {
    if !machine.driver.provisions() {
        return Err(Error::Other(format!(
            "machine \"{}\" uses the {} driver, which hoist does not provision",
            machine.host.name,
            machine.driver.name()
        )));
    }
    // docker-machine records the provider label in the machine's engine options, where
    // `ls --filter label=provider=NAME` finds it.
    let engine = &mut machine.host.host_options.engine_options;
    if let Some(label) = systemd::provider_label(engine, machine.driver.name()) {
        engine.labels.get_or_insert_with(Vec::new).push(label);
    }
    if let Some(method) = opts.install_method {
        set_install_method(&mut machine.host, method);
    }
    machine.host.set_lifecycle(Lifecycle::Provisioning, "");
    ctx.store.save(&machine.host)?;
    report.info("Waiting for SSH to be available...");
    let session = session::connect(ctx, machine, SSH_WAIT, opts.trust_new_host_key).await?;
    let remote = Remote::new(session, &machine.host.name, report).await?;
    let result = provision_with(ctx, machine, &remote, report).await;
    remote.close().await;
    result
}

async fn provision_with(
    ctx: &Context,
    machine: &Machine,
    remote: &Remote<'_>,
    report: &dyn Reporter,
) -> Result<()> {
    let host = &machine.host;
    report.info("Detecting the provisioner...");
    let probe = probe(remote).await?;
    let family = family(host, &probe.os)?;
    report.info(&format!("Provisioning with {}...", family.name));
    if !machine.driver.keeps_hostname() {
        set_hostname(remote, &host.name).await?;
    }
    let mut dockerd = probe.dockerd.clone();
    let mut socket = probe.socket;
    if dockerd.is_empty() {
        report.info("Installing Docker...");
        let engine = &host.host_options.engine_options;
        install_docker(remote, family, install_method(host), &engine.install_url).await?;
        let again = self::probe(remote).await?;
        if again.dockerd.is_empty() {
            return Err(Error::Other(format!(
                "Docker was installed on machine \"{}\" but dockerd is not on the PATH",
                host.name
            )));
        }
        dockerd = again.dockerd;
        socket = again.socket;
    }
    let ip = machine.driver.ip().await?;
    let (ca, server_cert, server_key) = machine_certs(ctx, host, &ip, report)?;
    let url = machine.docker_url().await?;
    let (_, url_port) = crate::engine::parse_tcp_url(&url)?;
    let port = machine.driver.engine_port_inside().unwrap_or(url_port);
    let engine = &host.host_options.engine_options;
    let args = systemd::daemon_args(&dockerd, port, socket, engine, machine.driver.name());
    let env = engine.env.as_deref().unwrap_or(&[]);
    let setup = |e: String| Error::Other(format!("machine \"{}\": {e}", host.name));
    let dropin = systemd::dropin(&args, env).map_err(setup)?;
    let env_file = match env.is_empty() {
        true => None,
        false => Some(systemd::environment_file(env).map_err(setup)?),
    };
    // A daemon that runs already is restarted with live-restore: its containers keep running.
    let live_restore = match (&probe.daemon, probe.dockerd.is_empty()) {
        (Some(daemon), false) => LiveRestore::enable(remote, daemon).await?,
        _ => None,
    };
    if live_restore.is_some() {
        report.info("Live-restore is on for the restart: the containers keep running...");
    }
    report.info("Copying certs to the remote machine...");
    report.info("Setting Docker configuration on the remote daemon...");
    // One command writes the certificates, the environment file and the drop-in (each round
    // trip costs a fraction of a second on a small VM). The drop-in is written, and systemd
    // reloaded, only when it changed (a machine made from a snapshot has it already) or systemd
    // has not read it; `enable` only where it is needed (on Debian it runs the SysV script's
    // update-rc.d too): each costs seconds on a small VM.
    let mut files: Vec<(&str, &[u8], &str)> = vec![
        (systemd::CA_REMOTE, &ca, "644"),
        (systemd::SERVER_CERT_REMOTE, &server_cert, "644"),
        (systemd::SERVER_KEY_REMOTE, &server_key, "600"),
    ];
    if let Some(file) = &env_file {
        files.push((systemd::ENV_FILE_REMOTE, file.as_bytes(), "600"));
    }
    let reload = match probe.dropin == dropin {
        true => systemd::reload_unless_loaded(),
        false => {
            files.push((systemd::DROPIN_PATH, dropin.as_bytes(), "644"));
            "systemctl daemon-reload && ".to_string()
        }
    };
    remote.upload_set(&files).await?;
    let old_env = match env_file {
        None => format!("rm -f {} && ", systemd::ENV_FILE_REMOTE),
        Some(_) => String::new(),
    };
    // A restart is deliberate: systemd's start rate limit (which a reload used to reset) is reset.
    let restart = remote
        .root(
            &format!(
                "{old_env}{reload}{{ systemctl is-enabled -q docker || systemctl enable docker >/dev/null 2>&1; }}; systemctl reset-failed docker 2>/dev/null; systemctl restart docker"
            ),
            None,
        )
        .await?;
    let started = if restart.status != 0 {
        Err(Error::Other(format!(
            "the Docker daemon of machine \"{}\" did not start with its new configuration\nLast lines of its journal:\n{}",
            host.name,
            journal_tail(remote).await
        )))
    } else {
        report.info("Checking connection to Docker...");
        wait_for_docker(Some(remote), host, &url).await
    };
    if let Some(live_restore) = live_restore {
        live_restore.disable(remote).await?;
    }
    started?;
    report.info("Docker is up and running!");
    Ok(())
}
