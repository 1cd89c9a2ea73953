//! `doctor`: why a machine is unreachable, checked in the order a connection is made, each check
//! one line with its result and, when it fails, the fix. Read-only: nothing is pinned or written.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpStream;
use x509_parser::extensions::GeneralName;

use crate::cert::{self, CertPaths};
use crate::context::Context;
use crate::engine::{self, EngineClient};
use crate::error::Result;
use crate::machine::{Machine, session};
use crate::netaddr::join_host_port;
use crate::program::program_name;
use crate::ssh::{Remote, Session, SshError};

/// How long a TCP connection, the TLS handshake or one API request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew beyond which certificates may look not yet valid or ended on one side.
const MAX_SKEW_SECS: i64 = 60;
/// Where docker-machine and hoist put the daemon's flags.
const DROPIN: &str = "/etc/systemd/system/docker.service.d/10-machine.conf";

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(String),
    Fail {
        problem: String,
        fix: String,
    },
    /// Not run: an earlier check it depends on failed, or the driver has no such access.
    Skipped(String),
}

/// One check of a machine.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// The checks of one machine.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub machine: String,
    pub url: String,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Fail { .. }))
    }

    /// The machine's header line and one line per check.
    pub fn render(&self) -> String {
        let mut text = format!("{} ({})\n", self.machine, self.url);
        for check in &self.checks {
            let line = match &check.outcome {
                Outcome::Ok(detail) => format!("  ok    {:<14} {detail}", check.name),
                Outcome::Fail { problem, fix } => {
                    format!("  FAIL  {:<14} {problem} -- fix: {fix}", check.name)
                }
                Outcome::Skipped(why) => format!("  skip  {:<14} {why}", check.name),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    fn push(&mut self, name: &'static str, outcome: Outcome) -> bool {
        let ok = !matches!(outcome, Outcome::Fail { .. } | Outcome::Skipped(_));
        self.checks.push(Check { name, outcome });
        ok
    }

    fn skip(&mut self, names: &[&'static str], why: &str) {
        for name in names {
            self.push(name, Outcome::Skipped(why.to_string()));
        }
    }
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Diagnoses each machine (all of the store when none is named), at most a few at once.
pub async fn doctor(ctx: &Context, names: &[String]) -> Vec<Result<Diagnosis>> {
    let ctx = ctx.clone();
    crate::machine::for_each_machine(names, move |name| {
        let ctx = ctx.clone();
        async move { diagnose(&ctx, &name).await }
    })
    .await
}

/// What the SSH session learned for the later checks.
struct HostFacts {
    /// Host clock minus ours, in seconds.
    skew: i64,
    /// Whether the host runs systemd (the drop-in is a systemd one; boot2docker has none).
    systemd: bool,
    docker_active: String,
    dropin: Option<String>,
    running_args: Option<Vec<String>>,
}

/// Runs the checks of one machine in order; a check whose prerequisite failed is skipped.
pub async fn diagnose(ctx: &Context, name: &str) -> Result<Diagnosis> {
    let machine = Machine::load(ctx, name).await?;
    let url = machine.docker_url().await;
    let ssh = session::target(&machine, false).await;
    let paths = crate::machine::cert_paths(&machine.host);
    machine.close().await;
    let url = url?;
    let mut d = Diagnosis {
        machine: name.to_string(),
        url: url.clone(),
        checks: Vec::new(),
    };
    let (host, port) = engine::parse_tcp_url(&url)?;
    let fix_ip = format!(
        "check the machine's address (`{} inspect {name}`, Driver.IPAddress) or its DNS name",
        program_name()
    );
    let lookup = tokio::time::timeout(
        PROBE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    );
    let ip = match lookup.await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| a.ip())
            .ok_or(format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("{host}: {e}")),
        Err(_) => Err(format!("{host}: no answer in 5s")),
    };
    let ip = match ip {
        Ok(ip) => ip,
        Err(problem) => {
            d.push("name resolves", fail(problem, fix_ip));
            d.skip(&AFTER_RESOLVE, "the name does not resolve");
            return Ok(d);
        }
    };
    let resolved = if host.parse::<IpAddr>().is_ok() {
        format!("{ip} is an address")
    } else {
        format!("{host} is {ip}")
    };
    d.push("name resolves", Outcome::Ok(resolved));

    let facts = match ssh {
        Ok(target) => ssh_checks(ctx, &mut d, &target).await,
        Err(e) => {
            d.skip(&SSH_CHECKS, &format!("no SSH: {e}"));
            None
        }
    };

    let engine_addr = join_host_port(&ip.to_string(), port);
    let engine_ok = match tcp(&engine_addr).await {
        Ok(()) => d.push(
            "engine port",
            Outcome::Ok(format!("{engine_addr} accepts connections")),
        ),
        Err(reason) => {
            let fix = match &facts {
                Some(f) if f.systemd && f.docker_active != "active" => format!(
                    "the docker service is {}: `{} ssh {name} sudo systemctl start docker` (its log: journalctl -u docker)",
                    f.docker_active,
                    program_name()
                ),
                Some(_) => format!(
                    "dockerd runs but does not listen on {port}: `{} provision {name}` rewrites its flags",
                    program_name()
                ),
                None => format!(
                    "start the host or dockerd, and open TCP {port} in any firewall between here and it"
                ),
            };
            d.push("engine port", fail(format!("{engine_addr}: {reason}"), fix))
        }
    };
    if !engine_ok {
        d.skip(
            &["TLS handshake", "docker API"],
            "the engine port is closed",
        );
        return Ok(d);
    }
    let skew = facts.as_ref().map(|f| f.skew);
    let Some(tls) = tls_check(&mut d, &paths, &host, &engine_addr, skew).await else {
        d.skip(&["docker API"], "no TLS connection");
        return Ok(d);
    };
    let client = EngineClient::new(tls, PROBE_TIMEOUT);
    let api = match client.version(&url).await {
        Ok(version) => Outcome::Ok(format!(
            "Docker {version} answers the client certificate {}",
            paths.client_cert.display()
        )),
        Err(e) => fail(
            e.to_string(),
            format!(
                "the daemon refuses the client certificate: `{} regenerate-certs -f {name}` gives it the store's CA",
                program_name()
            ),
        ),
    };
    d.push("docker API", api);
    Ok(d)
}

const SSH_CHECKS: [&str; 3] = ["SSH port", "SSH login", "engine drop-in"];
const AFTER_RESOLVE: [&str; 6] = [
    "SSH port",
    "SSH login",
    "engine drop-in",
    "engine port",
    "TLS handshake",
    "docker API",
];

async fn tcp(addr: &str) -> std::result::Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(engine::io_reason(&e)),
        Err(_) => Err("no answer in 5s (host down, or a firewall drops the packets)".into()),
    }
}

/// SSH port, login with the pinned host key, and the drop-in against the running dockerd.
async fn ssh_checks(
    ctx: &Context,
    d: &mut Diagnosis,
    target: &crate::ssh::Target,
) -> Option<HostFacts> {
    let name = d.machine.clone();
    let addr = join_host_port(&target.endpoint.host, target.endpoint.port);
    if let Err(reason) = tcp(&addr).await {
        d.push(
            "SSH port",
            fail(
                format!("{addr}: {reason}"),
                "start the host (`status`/`start`), or open the SSH port in its firewall",
            ),
        );
        d.skip(&["SSH login", "engine drop-in"], "the SSH port is closed");
        return None;
    }
    d.push(
        "SSH port",
        Outcome::Ok(format!("{addr} accepts connections")),
    );
    let session = match Session::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            let fix = match &e {
                SshError::HostKeyChanged { .. } => format!(
                    "if the host was reinstalled on purpose: `{} provision --trust-new-host-key {name}`; otherwise someone else answers at {addr}",
                    program_name()
                ),
                SshError::Auth { .. } | SshError::Key { .. } => format!(
                    "give {} the key of the record (`{} inspect {name}`, Driver.SSHKeyPath) in its authorized_keys",
                    target.endpoint.user,
                    program_name()
                ),
                _ => "check that sshd runs on the host (journalctl -u ssh)".into(),
            };
            d.push("SSH login", fail(e.to_string(), fix));
            d.skip(&["engine drop-in"], "no SSH login");
            return None;
        }
    };
    let key = match (
        &target.pinned,
        crate::ssh::parse_host_key(&session.host_key),
    ) {
        (Some(_), Some(k)) => format!("host key as pinned ({})", crate::ssh::fingerprint(&k)),
        _ => "host key not pinned yet (the next provision pins it)".into(),
    };
    d.push(
        "SSH login",
        Outcome::Ok(format!("{}@{addr}, {key}", session.user)),
    );
    let report = ctx.report.clone();
    let facts = match Remote::new(session, &name, report.as_ref()).await {
        Ok(remote) => {
            let facts = host_facts(&remote).await;
            remote.close().await;
            facts
        }
        Err(e) => Err(e.to_string()),
    };
    let facts = match facts {
        Ok(f) => f,
        Err(reason) => {
            d.push(
                "engine drop-in",
                fail(reason, "hoist needs root or passwordless sudo on the host"),
            );
            return None;
        }
    };
    d.push("engine drop-in", dropin_outcome(&name, &facts));
    Some(facts)
}

/// The host's clock, the docker service's state, the drop-in and the running dockerd's arguments.
async fn host_facts(remote: &Remote<'_>) -> std::result::Result<HostFacts, String> {
    let run = |script: &'static str| async move {
        remote.root(script, None).await.map_err(|e| e.to_string())
    };
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let clock = run("date +%s").await?;
    let after = OffsetDateTime::now_utc().unix_timestamp();
    let host_now: i64 = clock
        .stdout_text()
        .trim()
        .parse()
        .map_err(|_| format!("the host's clock: {:?}", clock.stdout_text().trim()))?;
    let skew = host_now - (before + after) / 2;
    let systemd = run("command -v systemctl >/dev/null").await?.status == 0;
    let active = run("systemctl is-active docker").await?;
    let dropin = run("cat /etc/systemd/system/docker.service.d/10-machine.conf").await?;
    let args = run(
        "pid=$(systemctl show -p MainPID --value docker); [ \"${pid:-0}\" != 0 ] && cat /proc/$pid/cmdline",
    )
    .await?;
    Ok(HostFacts {
        skew,
        systemd,
        docker_active: active.stdout_text().trim().to_string(),
        dropin: (dropin.status == 0).then(|| dropin.stdout_text()),
        running_args: (args.status == 0 && !args.stdout.is_empty()).then(|| {
            args.stdout
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect()
        }),
    })
}

fn dropin_outcome(name: &str, facts: &HostFacts) -> Outcome {
    if !facts.systemd {
        return Outcome::Skipped("the host has no systemd (the drop-in is systemd's)".into());
    }
    let provision = format!("`{} provision {name}` writes it again", program_name());
    let Some(text) = &facts.dropin else {
        return fail(format!("{DROPIN} is missing"), provision);
    };
    let Some(wanted) = exec_start(text) else {
        return fail(format!("{DROPIN} has no ExecStart"), provision);
    };
    let Some(running) = &facts.running_args else {
        return fail(
            format!(
                "dockerd is not running (docker service {})",
                facts.docker_active
            ),
            format!(
                "`{} ssh {name} sudo systemctl start docker` (its log: journalctl -u docker)",
                program_name()
            ),
        );
    };
    if wanted.get(1..) == running.get(1..) {
        Outcome::Ok(format!(
            "{DROPIN} present, the running dockerd has its {} flags",
            wanted.len().saturating_sub(1)
        ))
    } else {
        fail(
            "the running dockerd's flags differ from the drop-in (changed since dockerd started?)",
            format!(
                "`{} ssh {name} 'sudo systemctl daemon-reload && sudo systemctl restart docker'`, or `{} provision {name}`",
                program_name(),
                program_name()
            ),
        )
    }
}

/// The words of the last non-empty `ExecStart=` of a unit or drop-in, unquoted as systemd does
/// (double and single quotes, backslash escapes).
pub fn exec_start(unit: &str) -> Option<Vec<String>> {
    let line = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .rfind(|v| !v.trim().is_empty())?;
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(other) => word.push(other),
                    None => {}
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// The TLS handshake with the store's CA and client certificate; on failure, the offered server
/// certificate is read to say why (ended, not yet valid, a SAN without the address, another CA).
/// The configuration that made a verified handshake is returned for the API check.
async fn tls_check(
    d: &mut Diagnosis,
    paths: &CertPaths,
    host: &str,
    addr: &str,
    skew: Option<i64>,
) -> Option<Arc<rustls::ClientConfig>> {
    let name = d.machine.clone();
    let regenerate = format!("`{} regenerate-certs -f {name}`", program_name());
    // A clock off by more than the bound fails before any handshake: it explains the rest.
    if let Some(s) = skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
        d.push(
            "TLS handshake",
            fail(
                format!("the host's clock is {s:+}s off this one's: certificates look not yet valid or ended to one side"),
                "set the clocks right (`timedatectl set-ntp true` on the host)",
            ),
        );
        return None;
    }
    let (config, offered) = match cert::recording_client_config(paths) {
        Ok(c) => c,
        Err(e) => {
            d.push(
                "TLS handshake",
                fail(
                    e.to_string(),
                    format!(
                        "the store's CA or client certificate is unreadable: `{} certs` lists them",
                        program_name()
                    ),
                ),
            );
            return None;
        }
    };
    let handshake = handshake(config.clone(), host, addr).await;
    let facts = offered
        .lock()
        .ok()
        .and_then(|slot| slot.clone())
        .and_then(|der| OfferedCert::parse(&der));
    let skew_text = skew
        .map(|s| format!("; clock skew {s:+}s"))
        .unwrap_or_default();
    let verified = match (handshake, facts) {
        (Ok(()), Some(cert)) => d.push(
            "TLS handshake",
            Outcome::Ok(format!(
                "chain to the store's CA, names {host}, ends {} ({} days){skew_text}",
                cert.not_after.date(),
                (cert.not_after - OffsetDateTime::now_utc()).whole_days()
            )),
        ),
        (Ok(()), None) => d.push(
            "TLS handshake",
            Outcome::Ok(format!("chain to the store's CA, names {host}{skew_text}")),
        ),
        (Err(reason), Some(cert)) => {
            let now = OffsetDateTime::now_utc();
            let problem = if cert.not_after < now {
                format!("the server certificate ended on {}", cert.not_after.date())
            } else if cert.not_before > now {
                format!(
                    "the server certificate is valid only from {}",
                    cert.not_before
                )
            } else if !cert.names(host) {
                format!(
                    "the server certificate names {}, not {host}",
                    cert.sans.join(", ")
                )
            } else {
                format!("the server certificate is not signed by the store's CA ({reason})")
            };
            d.push("TLS handshake", fail(problem, regenerate))
        }
        (Err(reason), None) => d.push(
            "TLS handshake",
            fail(
                reason,
                "something other than dockerd with TLS answers on the engine port (plain HTTP? another service?)",
            ),
        ),
    };
    verified.then_some(config)
}

async fn handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    addr: &str,
) -> std::result::Result<(), String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let connect = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| engine::io_reason(&e))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, connect)
        .await
        .map_err(|_| "the handshake did not finish in 5s".to_string())?
}

/// What `doctor` reads from a server certificate.
struct OfferedCert {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    sans: Vec<String>,
}

impl OfferedCert {
    fn parse(der: &[u8]) -> Option<OfferedCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(s) => Some(s.to_string()),
                        GeneralName::IPAddress(b) => ip_from(b).map(|ip| ip.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(OfferedCert {
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sans,
        })
    }

    fn names(&self, host: &str) -> bool {
        let host_ip = host.parse::<IpAddr>().ok();
        self.sans.iter().any(|san| match host_ip {
            Some(ip) => san.parse::<IpAddr>().ok() == Some(ip),
            None => san.eq_ignore_ascii_case(host),
        })
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_takes_the_last_non_empty_line_and_unquotes_like_systemd() {
        let unit = "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H tcp://0.0.0.0:2376 --label \"a b\" --opt 'x y' c\\\"d\n";
        assert_eq!(
            exec_start(unit).unwrap(),
            [
                "/usr/bin/dockerd",
                "-H",
                "tcp://0.0.0.0:2376",
                "--label",
                "a b",
                "--opt",
                "x y",
                "c\"d"
            ]
        );
        assert_eq!(exec_start("[Service]\nExecStart=\n"), None);
        assert_eq!(exec_start("ExecStart=a \"\" b").unwrap(), ["a", "", "b"]);
    }

    #[test]
    fn the_drop_in_matches_only_the_same_flags() {
        let facts = |dropin: Option<&str>, args: Option<&[&str]>| HostFacts {
            skew: 0,
            systemd: true,
            docker_active: "active".into(),
            dropin: dropin.map(String::from),
            running_args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
        };
        let unit =
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H tcp://0.0.0.0:2376 --tlsverify\n";
        let same = facts(
            Some(unit),
            Some(&["dockerd", "-H", "tcp://0.0.0.0:2376", "--tlsverify"]),
        );
        assert!(matches!(dropin_outcome("m", &same), Outcome::Ok(_)));
        let other = facts(Some(unit), Some(&["dockerd", "-H", "fd://"]));
        assert!(matches!(dropin_outcome("m", &other), Outcome::Fail { .. }));
        let missing = facts(None, Some(&["dockerd"]));
        let Outcome::Fail { problem, fix } = dropin_outcome("m", &missing) else {
            panic!("a missing drop-in must fail")
        };
        assert!(
            problem.contains("missing") && fix.contains("provision m"),
            "{problem} / {fix}"
        );
        let stopped = facts(Some(unit), None);
        let Outcome::Fail { problem, .. } = dropin_outcome("m", &stopped) else {
            panic!("a stopped dockerd must fail")
        };
        assert!(problem.contains("not running"), "{problem}");
        let without_systemd = HostFacts {
            systemd: false,
            ..facts(None, None)
        };
        assert!(matches!(
            dropin_outcome("m", &without_systemd),
            Outcome::Skipped(_)
        ));
    }

    #[test]
    fn a_certificate_names_an_address_by_value_and_a_host_without_case() {
        let cert = OfferedCert {
            not_before: OffsetDateTime::now_utc(),
            not_after: OffsetDateTime::now_utc(),
            sans: vec!["10.0.0.5".into(), "Web.Example".into(), "::1".into()],
        };
        assert!(cert.names("10.0.0.5"));
        assert!(cert.names("web.example"));
        assert!(cert.names("0:0::1"));
        assert!(!cert.names("10.0.0.6"));
        assert!(!cert.names("example"));
    }
}
