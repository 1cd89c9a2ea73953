//! `ssh`, `scp` and `mount`: the system OpenSSH tools with the machine's pinned host key (a
//! `known_hosts` file in the machine directory), or the native client for `ssh`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::machine::{Machine, session};
use crate::ssh::{Session, SshEndpoint};

/// The known_hosts file hoist keeps in each machine directory (the pinned host key).
pub const KNOWN_HOSTS: &str = "known_hosts";
/// The known_hosts of two machines, for `scp` between them (in the first one's directory).
pub const KNOWN_HOSTS_PAIR: &str = "known_hosts.pair";

/// A machine reached over SSH: its endpoint and pinned key, in a known_hosts file.
#[derive(Debug, Clone)]
struct SshMachine {
    pub name: String,
    pub endpoint: SshEndpoint,
    pub known_hosts: PathBuf,
}

/// Loads a machine for SSH use, pinning its host key first if it has none yet (trust on first use).
async fn machine(ctx: &Context, name: &str) -> Result<SshMachine> {
    let mut machine = Machine::load(ctx, name).await?;
    let result = pin_and_describe(ctx, &mut machine).await;
    machine.close().await;
    result
}

async fn pin_and_describe(ctx: &Context, machine: &mut Machine) -> Result<SshMachine> {
    let name = machine.host.name.clone();
    let endpoint = session::endpoint(machine).await?;
    if session::pinned_key(&machine.host).is_none() {
        let _lock = crate::machine::lock_machine(ctx, &name).await?;
        // What was read before the lock may be stale (a provision or an rm ran meanwhile).
        machine.host = ctx.store.load(&name)?;
        if session::pinned_key(&machine.host).is_none() {
            let session = session::connect(ctx, machine, Duration::from_secs(15), false).await?;
            session.close().await;
        }
    }
    let host = &machine.host;
    let name = name.as_str();
    let known_hosts = ctx.store.machine_dir(name).join(KNOWN_HOSTS);
    let entry_host = if endpoint.port == 22 {
        endpoint.host.clone()
    } else {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    };
    let line = format!(
        "{entry_host} {}\n",
        session::pinned_key(host).unwrap_or_default()
    );
    if std::fs::read_to_string(&known_hosts).ok().as_deref() != Some(line.as_str()) {
        crate::fsutil::write_atomic(&known_hosts, line.as_bytes(), 0o600)
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", known_hosts.display())))?;
    }
    Ok(SshMachine {
        name: name.to_string(),
        endpoint,
        known_hosts,
    })
}

/// `HostKeyAlgorithms=` of the pinned key's kind, read from the machine's known_hosts line.
fn host_key_algorithms_option(known_hosts: &Path) -> Option<String> {
    let text = std::fs::read_to_string(known_hosts).ok()?;
    let kind = text.split_whitespace().nth(1)?;
    let algorithms = match kind {
        "ssh-rsa" => "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
        other
            if other
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b)) =>
        {
            other
        }
        _ => return None,
    };
    Some(format!("HostKeyAlgorithms={algorithms}"))
}

/// OpenSSH options shared by ssh, scp and sshfs: strict checking against the pinned key.
fn ssh_options(m: &SshMachine) -> Vec<String> {
    let mut opts = vec![
        "-F".into(),
        "/dev/null".into(),
        "-o".into(),
        "ConnectionAttempts=3".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
        "-o".into(),
        "ControlMaster=no".into(),
        "-o".into(),
        "ControlPath=none".into(),
        "-o".into(),
        // Errors (a changed host key, a refused key) stay visible; notices do not.
        "LogLevel=ERROR".into(),
        "-o".into(),
        "PasswordAuthentication=no".into(),
        "-o".into(),
        "ServerAliveInterval=60".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", m.known_hosts.display()),
        // Only the pinned key counts: not /etc/ssh/ssh_known_hosts, not another kind of key.
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
    ];
    if let Some(algorithms) = host_key_algorithms_option(&m.known_hosts) {
        opts.extend(["-o".into(), algorithms]);
    }
    match &m.endpoint.key {
        Some(key) => opts.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            key.display().to_string(),
        ]),
        // hoist's default keys are those of $HOME (OpenSSH would look in the passwd home).
        None => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            for name in crate::ssh::DEFAULT_KEYS {
                let key = home.join(".ssh").join(name);
                if key.is_file() {
                    opts.extend(["-i".into(), key.display().to_string()]);
                }
            }
        }
    }
    opts
}

/// The `ssh` command line for a machine (system OpenSSH), as docker-machine's external client
/// builds it: hoist's options, the destination, then the user's words after `ssh NAME` — their
/// own options for ssh (`-L`, `-N`, `-C`, `--`) and the command. What hoist puts there never
/// reads as an option: the destination starts with the login name, refused if it starts with `-`.
fn ssh_command(m: &SshMachine, args: &[String]) -> Result<Vec<String>> {
    let user = &m.endpoint.user;
    if user.is_empty() || user.starts_with('-') {
        return Err(Error::Other(format!(
            "machine \"{}\": SSH user {user:?} cannot be given to ssh (empty, or read as an option)",
            m.name
        )));
    }
    let mut cmd = vec!["ssh".to_string()];
    cmd.extend(ssh_options(m));
    cmd.extend(["-p".into(), m.endpoint.port.to_string()]);
    cmd.push(format!("{user}@{}", m.endpoint.host));
    cmd.extend(args.iter().cloned());
    Ok(cmd)
}

/// The command the native client runs for the words after `ssh NAME`: a leading `--` ends
/// hoist's part as with OpenSSH; an ssh option there (`-L`, `-N`, …) cannot be honoured without
/// OpenSSH's ssh, and is refused in one line.
fn native_command(args: &[String], ssh_installed: bool) -> Result<Vec<String>> {
    let args = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    match args.first() {
        Some(option) if option.starts_with('-') => Err(Error::Usage(format!(
            "Error: the native SSH client cannot honour the ssh option {option:?}: {}",
            match ssh_installed {
                true =>
                    "drop --native-ssh (or MACHINE_NATIVE_SSH) to use OpenSSH's ssh, or put the command after --",
                false =>
                    "install OpenSSH's ssh (openssh-client) to use it, or put the command after --",
            }
        ))),
        _ => Ok(args.to_vec()),
    }
}

/// Runs a command (or a shell) with the native client; returns the remote exit status.
async fn native_ssh(ctx: &Context, m: &SshMachine, args: &[String]) -> Result<u32> {
    let machine = Machine::load(ctx, &m.name).await?;
    let target = session::target(&machine, false).await;
    machine.close().await;
    let session = Session::connect(&target?).await?;
    let command = (!args.is_empty()).then(|| args.join(" "));
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let status = if tty || command.is_none() {
        session.interactive(command.as_deref()).await
    } else {
        let out = session.run(command.as_deref().unwrap_or(""), None).await;
        out.map(|o| {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&o.stdout);
            let _ = std::io::stderr().write_all(&o.stderr);
            o.status
        })
    };
    session.close().await;
    status.map_err(|e| Error::Other(e.to_string()))
}

/// Why the system OpenSSH tools could not reach a machine, as the native client tells it: a
/// changed host key (pinned and offered fingerprints, and the fix) or refused authentication.
/// `None` when the native client gets in (the failure was something else).
pub async fn diagnose(ctx: &Context, name: &str) -> Option<String> {
    let machine = Machine::load(ctx, name).await.ok()?;
    let target = session::target(&machine, false).await;
    machine.close().await;
    match Session::connect(&target.ok()?).await {
        Ok(session) => {
            session.close().await;
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// A system tool (ssh, scp, rsync, sshfs) to run for machines: its command line, the machines it
/// reaches (their SSH is diagnosed with the native client when it fails), and which exit codes
/// are its own failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun {
    pub command: Vec<String>,
    pub machines: Vec<String>,
    /// Only 255 is ssh's own failure (any other status is the remote command's); for a copy or a
    /// mount, any status but 0.
    pub fails_only_with_255: bool,
}

impl ToolRun {
    /// Whether exit `code` means the tool itself failed (not a remote command).
    pub fn failed(&self, code: u8) -> bool {
        match self.fails_only_with_255 {
            true => code == 255,
            false => code != 0,
        }
    }
}

/// What `hoist ssh` did or is to do: the native client's run (its remote exit status), or the
/// system ssh to hand over to.
#[derive(Debug)]
pub enum SshRun {
    Native(u8),
    Tool(ToolRun),
}

/// `hoist ssh NAME [ARGS…]`: the machine must run; then the native client runs the command (with
/// `--native-ssh`, or where OpenSSH's ssh is missing), else the system ssh is to be run.
pub async fn ssh(ctx: &Context, name: &str, args: &[String]) -> Result<SshRun> {
    if name.starts_with('-') {
        return Err(Error::Usage(format!(
            "Error: {name:?} is not a machine name: the machine comes first ({} ssh NAME [SSH OPTIONS] [COMMAND])",
            crate::context::program_name()
        )));
    }
    if crate::ops::info::status(ctx, name).await? != crate::driver::State::Running {
        return Err(Error::Other(format!(
            "Error: Cannot run SSH command: Host \"{name}\" is not running"
        )));
    }
    let m = machine(ctx, name).await?;
    let ssh_installed = crate::fsutil::find_in_path("ssh").is_some();
    if ctx.native_ssh || !ssh_installed {
        let command = native_command(args, ssh_installed)?;
        let status = native_ssh(ctx, &m, &command).await?;
        return Ok(SshRun::Native(u8::try_from(status).unwrap_or(255)));
    }
    Ok(SshRun::Tool(ToolRun {
        command: ssh_command(&m, args)?,
        machines: vec![name.to_string()],
        fails_only_with_255: true,
    }))
}

/// The machines an `scp` or `mount` path pair names.
fn machines_named(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| match parse_scp_path(p) {
            ScpPath::Remote { machine, .. } => Some(machine),
            ScpPath::Local(_) => None,
        })
        .collect()
}

/// One side of `scp`: a local path, or `[user@]machine:path`.
#[derive(Debug, Clone, PartialEq)]
enum ScpPath {
    Local(String),
    Remote {
        user: Option<String>,
        machine: String,
        path: String,
    },
}

/// Parses an `scp` argument as docker-machine does (`localhost:` means local).
fn parse_scp_path(arg: &str) -> ScpPath {
    match arg.split_once(':') {
        Some((host, path)) if !host.is_empty() && !host.contains('/') => {
            let (user, machine) = match host.split_once('@') {
                Some((u, m)) => (Some(u.to_string()), m.to_string()),
                None => (None, host.to_string()),
            };
            if machine == "localhost" {
                ScpPath::Local(path.to_string())
            } else {
                ScpPath::Remote {
                    user,
                    machine,
                    path: path.to_string(),
                }
            }
        }
        _ => ScpPath::Local(arg.to_string()),
    }
}

/// Options of `scp`.
#[derive(Debug, Clone, Default)]
pub struct ScpOptions {
    pub recursive: bool,
    pub quiet: bool,
    pub delta: bool,
}

/// Builds the `scp` (or, with `delta`, `rsync`) command line for copying between machines.
pub async fn scp_command(
    ctx: &Context,
    src: &str,
    dst: &str,
    opts: &ScpOptions,
) -> Result<ToolRun> {
    let sides = [parse_scp_path(src), parse_scp_path(dst)];
    let mut machines = Vec::new();
    let mut args = Vec::new();
    for side in &sides {
        match side {
            ScpPath::Local(p) => args.push(p.clone()),
            ScpPath::Remote {
                user,
                machine: name,
                path,
            } => {
                let m = machine(ctx, name).await?;
                let user = user.clone().unwrap_or_else(|| m.endpoint.user.clone());
                args.push(format!("{user}@{}:{path}", m.endpoint.host));
                machines.push(m);
            }
        }
    }
    let Some(first) = machines.first().cloned() else {
        return Err(Error::Usage(
            "scp: neither path names a machine (use MACHINE:PATH)".into(),
        ));
    };
    if machines.len() == 2 && machines[0].endpoint.port != machines[1].endpoint.port {
        return Err(Error::Other(
            "scp between machines needs both to use the same SSH port".into(),
        ));
    }
    // One known_hosts file for both machines, beside the first one's (not in /tmp).
    let known = if machines.len() == 2 {
        let mut text = std::fs::read_to_string(&machines[0].known_hosts).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(&machines[1].known_hosts).unwrap_or_default());
        let path = machines[0].known_hosts.with_file_name(KNOWN_HOSTS_PAIR);
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
        path
    } else {
        first.known_hosts.clone()
    };
    let mut options = ssh_options(&SshMachine {
        known_hosts: known,
        ..first.clone()
    });
    for m in machines.iter().skip(1) {
        if let Some(key) = &m.endpoint.key {
            options.extend(["-i".into(), key.display().to_string()]);
        }
    }
    let port = first.endpoint.port.to_string();
    let mut cmd = if opts.delta {
        let mut ssh = vec!["ssh".to_string()];
        ssh.extend(options);
        ssh.extend(["-p".into(), port]);
        vec![
            "rsync".into(),
            "-a".into(),
            "--delete".into(),
            "-e".into(),
            rsync_command(&ssh),
        ]
    } else {
        let mut cmd = vec!["scp".to_string()];
        cmd.extend(options);
        cmd.extend(["-P".into(), port]);
        if machines.len() == 2 {
            cmd.push("-3".into());
        }
        if opts.recursive {
            cmd.push("-r".into());
        }
        if opts.quiet {
            cmd.push("-q".into());
        }
        cmd
    };
    // `--`: a path that starts with `-` is a path, never an option.
    cmd.push("--".into());
    cmd.extend(args);
    Ok(ToolRun {
        command: cmd,
        machines: machines_named(&[src, dst]),
        fails_only_with_255: false,
    })
}

/// rsync's `-e` command: words split on spaces, a word with a space or a quote in single quotes
/// with its single quotes doubled (rsync's own rules, not a shell's).
fn rsync_command(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && !w.contains([' ', '\'', '"']) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A local path as an operand: one that starts with `-` gets `./` so that no tool takes it
/// for an option (sshfs and fusermount have no `--`).
fn operand(path: &str) -> String {
    if path.starts_with('-') {
        format!("./{path}")
    } else {
        path.to_string()
    }
}

/// Builds the `sshfs` (or `fusermount -u`) command line of `mount`.
pub async fn mount_command(ctx: &Context, src: &str, dst: &str, unmount: bool) -> Result<ToolRun> {
    let ScpPath::Remote {
        user,
        machine: name,
        path,
    } = parse_scp_path(src)
    else {
        return Err(Error::Usage(
            "mount: the first argument must be MACHINE:PATH".into(),
        ));
    };
    if unmount {
        return Ok(ToolRun {
            command: vec!["fusermount".into(), "-u".into(), operand(dst)],
            machines: Vec::new(),
            fails_only_with_255: false,
        });
    }
    let m = machine(ctx, &name).await?;
    let user = user.unwrap_or_else(|| m.endpoint.user.clone());
    let mut cmd = vec![
        "sshfs".to_string(),
        format!("{user}@{}:{path}", m.endpoint.host),
        operand(dst),
    ];
    cmd.extend([
        "-p".into(),
        m.endpoint.port.to_string(),
        "-F".into(),
        "/dev/null".into(),
    ]);
    for o in [
        "StrictHostKeyChecking=yes",
        "PasswordAuthentication=no",
        "ControlMaster=no",
        "ControlPath=none",
        "GlobalKnownHostsFile=/dev/null",
    ] {
        cmd.extend(["-o".into(), o.into()]);
    }
    if let Some(algorithms) = host_key_algorithms_option(&m.known_hosts) {
        cmd.extend(["-o".into(), algorithms]);
    }
    cmd.extend([
        "-o".into(),
        format!("UserKnownHostsFile={}", m.known_hosts.display()),
    ]);
    if let Some(key) = &m.endpoint.key {
        cmd.extend([
            "-o".into(),
            format!("IdentityFile={}", key.display()),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    Ok(ToolRun {
        command: cmd,
        machines: vec![name],
        fails_only_with_255: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_never_read_as_options() {
        assert_eq!(operand("-oProxyCommand=x"), "./-oProxyCommand=x");
        assert_eq!(operand("/mnt/x"), "/mnt/x");
        let words: Vec<String> = ["ssh", "-o", "UserKnownHostsFile=/a b/k", "-i", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            rsync_command(&words),
            "ssh -o 'UserKnownHostsFile=/a b/k' -i 'it''s'"
        );
        let m = SshMachine {
            name: "web".into(),
            endpoint: SshEndpoint {
                host: "192.0.2.1".into(),
                port: 22,
                user: "root".into(),
                key: None,
                key_origin: None,
            },
            known_hosts: "/s/known_hosts".into(),
        };
        // The user's words after `ssh NAME` follow the destination, for ssh to read as the
        // user typed them (`-L …`, `--`); hoist's own words end with the destination.
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let cmd = ssh_command(&m, &words(&["-L", "8080:localhost:80", "--", "ls"])).unwrap();
        let at = cmd.iter().position(|w| w == "root@192.0.2.1").unwrap();
        assert_eq!(cmd[at + 1..], ["-L", "8080:localhost:80", "--", "ls"]);
        assert_eq!(cmd[at - 2..at], ["-p", "22"]);
        let mut odd = m.clone();
        odd.endpoint.user = "-oProxyCommand=x".into();
        assert!(ssh_command(&odd, &[]).is_err());
    }

    #[test]
    fn the_native_client_runs_commands_and_names_the_options_it_cannot_honour() {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            native_command(&words(&["--", "echo", "x"]), true).unwrap(),
            ["echo", "x"]
        );
        assert_eq!(
            native_command(&words(&["ls", "-la"]), true).unwrap(),
            ["ls", "-la"]
        );
        let err = native_command(&words(&["-L", "1:localhost:2"]), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"-L\"") && err.contains("--native-ssh"),
            "{err}"
        );
        let err = native_command(&words(&["-N"]), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("openssh-client"), "{err}");
    }

    #[test]
    fn scp_paths() {
        assert_eq!(parse_scp_path("/tmp/x"), ScpPath::Local("/tmp/x".into()));
        assert_eq!(parse_scp_path("./a:b"), ScpPath::Local("./a:b".into()));
        assert_eq!(
            parse_scp_path("localhost:/tmp/x"),
            ScpPath::Local("/tmp/x".into())
        );
        assert_eq!(
            parse_scp_path("web:/etc/hosts"),
            ScpPath::Remote {
                user: None,
                machine: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(
            parse_scp_path("deploy@web:x"),
            ScpPath::Remote {
                user: Some("deploy".into()),
                machine: "web".into(),
                path: "x".into()
            }
        );
    }
}
