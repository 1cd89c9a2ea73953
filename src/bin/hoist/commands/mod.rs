//! The command line: global options, one module per command, and the dispatch.

mod active;
mod certs;
mod completion;
mod config;
mod context;
pub mod create;
mod doctor;
mod env;
mod export;
mod import;
mod inspect;
mod ip;
mod ls;
mod mount;
mod power;
mod provision;
mod regenerate_certs;
mod rm;
mod scp;
mod ssh;
mod status;
mod swarm;
mod upgrade;
mod url;
mod use_context;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::power::Power;

use crate::Printer;

/// hoist's version line, as docker-machine's `--version`: `<version>, build <commit>`.
pub const FULL_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    ", build ",
    env!("HOIST_GIT_COMMIT")
);

/// The docker-machine release hoist is compatible with.
pub const DOCKER_MACHINE_VERSION: &str = "0.16.2";

/// What `--version` and `version` print: hoist's version, or, invoked as `docker-machine`, the
/// docker-machine version hoist stands in for (scripts check it) with hoist's as the build.
pub fn version_line(prog: &str) -> String {
    if prog == "docker-machine" {
        format!(
            "{prog} version {DOCKER_MACHINE_VERSION}, build hoist-{}-{}",
            env!("CARGO_PKG_VERSION"),
            env!("HOIST_GIT_COMMIT")
        )
    } else {
        format!("{prog} version {FULL_VERSION}")
    }
}

/// The command line as clap sees it, with what the derive cannot say: the store's default path
/// (from `$HOME`), global options under their own heading after each command's own, and
/// environment variables named without their values (an unset one is not shown as empty).
pub fn cli_command() -> clap::Command {
    fn polish(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            let a = if a.get_env().is_some() {
                a.hide_env_values(true)
            } else {
                a
            };
            if a.is_global_set() {
                a.help_heading("Global options")
            } else {
                a
            }
        })
        .mut_subcommands(polish)
    }
    polish(Cli::command().mut_arg("storage_path", |a| {
        a.default_value(hoist::context::default_storage_path().into_os_string())
    }))
}

/// Parses a command line with [`cli_command`].
pub fn parse(args: &[String]) -> std::result::Result<Cli, clap::Error> {
    Cli::from_arg_matches(&cli_command().try_get_matches_from(args)?)
}

#[derive(Debug, Parser)]
#[command(
    name = "hoist",
    about = "Create and manage machines running Docker.",
    version = FULL_VERSION,
    disable_version_flag = true,
    disable_help_subcommand = false,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Enable debug mode
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Configures storage path
    #[arg(
        short = 's',
        long,
        env = "MACHINE_STORAGE_PATH",
        global = true,
        value_name = "PATH"
    )]
    pub storage_path: Option<PathBuf>,
    /// CA to verify remotes against
    #[arg(long, env = "MACHINE_TLS_CA_CERT", global = true, value_name = "PATH")]
    pub tls_ca_cert: Option<PathBuf>,
    /// Private key to generate certificates
    #[arg(long, env = "MACHINE_TLS_CA_KEY", global = true, value_name = "PATH")]
    pub tls_ca_key: Option<PathBuf>,
    /// Client cert to use for TLS
    #[arg(
        long,
        env = "MACHINE_TLS_CLIENT_CERT",
        global = true,
        value_name = "PATH"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// Private key used in client TLS auth
    #[arg(
        long,
        env = "MACHINE_TLS_CLIENT_KEY",
        global = true,
        value_name = "PATH"
    )]
    pub tls_client_key: Option<PathBuf>,
    /// Token to use for requests to the Github API (accepted for compatibility; unused)
    #[arg(
        long,
        env = "MACHINE_GITHUB_API_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub github_api_token: Option<String>,
    /// Use the native (Rust) SSH implementation.
    #[arg(
        long,
        env = "MACHINE_NATIVE_SSH",
        global = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub native_ssh: bool,
    /// BugSnag API token for crash reporting (accepted for compatibility; hoist reports nothing)
    #[arg(
        long,
        env = "MACHINE_BUGSNAG_API_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub bugsnag_api_token: Option<String>,
    /// Print the version
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    pub version: (),
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print which machine is active
    Active(active::Args),
    /// Print the connection config for machine
    Config(config::Args),
    /// Create a machine
    Create(Box<create::Args>),
    /// Display the commands to set up the environment for the Docker client
    Env(env::Args),
    /// Inspect information about a machine
    Inspect(inspect::Args),
    /// Get the IP address of a machine
    Ip(ip::Args),
    /// Kill a machine
    Kill(power::Args),
    /// List machines
    Ls(ls::Args),
    /// Mount or unmount a directory from a machine with SSHFS.
    Mount(mount::Args),
    /// Re-provision existing machines
    Provision(provision::Args),
    /// Regenerate TLS Certificates for a machine
    RegenerateCerts(regenerate_certs::Args),
    /// Restart a machine (for generic: reboots the whole server over SSH)
    Restart(power::Args),
    /// Start a machine
    Start(power::Args),
    /// Stop a machine
    Stop(power::Args),
    /// Remove a machine
    Rm(rm::Args),
    /// Log into or run a command on a machine with SSH.
    Ssh(ssh::Args),
    /// Copy files between machines
    Scp(scp::Args),
    /// Get the status of a machine
    Status(status::Args),
    /// Upgrade a machine to the latest version of Docker
    Upgrade(upgrade::Args),
    /// Get the URL of a machine
    Url(url::Args),
    /// Show the hoist version or a machine's Docker version
    Version(version::Args),
    /// List the certificates of the store and its machines, with when they end
    Certs(certs::Args),
    /// Check why machines are (un)reachable: one line per check, with the fix
    Doctor(doctor::Args),
    /// Swarm-mode clusters of machines: init, join, ls, leave, promote, demote
    Swarm(swarm::Args),
    /// Write a machine (record, certificates, SSH key) as one archive for another store
    Export(export::Args),
    /// Recreate a machine from an export archive
    Import(import::Args),
    /// Write docker CLI contexts for machines (docker --context NAME)
    Context(context::Args),
    /// Make a machine's docker context the current one (--unset: back to default)
    Use(use_context::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completion(completion::Args),
}

impl Command {
    /// The machine a `create` makes (to name it when the create is interrupted).
    pub fn machine_to_create(&self) -> Option<&str> {
        match self {
            Command::Create(a) => a.machine_name(),
            _ => None,
        }
    }
}

/// How a command runs, decided before its arguments are parsed (a `create`'s parse may start a
/// plugin): the one table of the commands' traits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traits {
    /// Talks to many hosts or provisions: a thread per core for the TLS and SSH work (one-machine
    /// commands are I/O-bound, and a single-threaded runtime starts fastest).
    pub multi_thread: bool,
    /// Shows a live step line on a terminal.
    pub live: bool,
    /// Step messages go to stderr: the command's stdout is evaluated by a shell.
    pub info_to_stderr: bool,
}

/// The traits of the command named `name`.
pub fn traits(name: Option<&str>) -> Traits {
    let (multi_thread, live, info_to_stderr) = match name.unwrap_or("") {
        "create" | "provision" | "regenerate-certs" => (true, true, false),
        "restart" | "start" | "stop" | "kill" | "upgrade" => (false, true, false),
        "ls" | "active" | "doctor" | "swarm" => (true, false, false),
        "env" | "config" => (false, false, true),
        _ => (false, false, false),
    };
    Traits {
        multi_thread,
        live,
        info_to_stderr,
    }
}

/// The subcommand of a command line: the first word that is neither a global option nor the
/// value of one.
pub fn subcommand_name(args: &[String]) -> Option<String> {
    let cli = cli_command();
    let takes_value = |word: &str| {
        cli.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (a.get_long().is_some_and(|l| word == format!("--{l}"))
                    || a.get_short().is_some_and(|s| word == format!("-{s}")))
        })
    };
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        if !word.starts_with('-') {
            return Some(word.clone());
        }
        if takes_value(word) {
            words.next();
        }
    }
    None
}

/// Runs a command; the exit code on success.
pub async fn run(command: Command, ctx: &Context, printer: &Printer) -> Result<u8> {
    match command {
        Command::Active(a) => active::exec(a, ctx).await,
        Command::Config(a) => config::exec(a, ctx).await,
        Command::Create(a) => create::exec(*a, ctx, printer).await,
        Command::Env(a) => env::exec(a, ctx).await,
        Command::Inspect(a) => inspect::exec(a, ctx),
        Command::Ip(a) => ip::exec(a, ctx).await,
        Command::Kill(a) => power::exec(a, ctx, printer, Power::Kill).await,
        Command::Start(a) => power::exec(a, ctx, printer, Power::Start).await,
        Command::Stop(a) => power::exec(a, ctx, printer, Power::Stop).await,
        Command::Restart(a) => power::exec(a, ctx, printer, Power::Restart).await,
        Command::Ls(a) => ls::exec(a, ctx).await,
        Command::Mount(a) => mount::exec(a, ctx).await,
        Command::Provision(a) => provision::exec(a, ctx, printer).await,
        Command::RegenerateCerts(a) => regenerate_certs::exec(a, ctx, printer).await,
        Command::Ssh(a) => ssh::exec(a, ctx).await,
        Command::Scp(a) => scp::exec(a, ctx).await,
        Command::Upgrade(a) => upgrade::exec(a, ctx, printer).await,
        Command::Rm(a) => rm::exec(a, ctx).await,
        Command::Status(a) => status::exec(a, ctx).await,
        Command::Url(a) => url::exec(a, ctx).await,
        Command::Version(a) => version::exec(a, ctx).await,
        Command::Certs(a) => certs::exec(a, ctx),
        Command::Doctor(a) => doctor::exec(a, ctx).await,
        Command::Swarm(a) => swarm::exec(a, ctx).await,
        Command::Export(a) => export::exec(a, ctx).await,
        Command::Import(a) => import::exec(a, ctx),
        Command::Context(a) => context::exec(a, ctx).await,
        Command::Use(a) => use_context::exec(a, ctx).await,
        Command::Completion(a) => completion::exec(a),
    }
}

/// Prints a parse error; an unknown command gets docker-machine's wording. Usage errors exit 1
/// (docker-machine 0.16.2 exits 0 there; hoist does not copy that) on one line, with clap's
/// "did you mean" tip when it has one.
pub fn usage_error(e: clap::Error, prog: &str) -> ExitCode {
    use clap::error::{ContextKind, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayVersion => {
            println!("{}", version_line(prog));
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelp => {
            print!(
                "{}",
                e.to_string()
                    .replacen("Usage: hoist", &format!("Usage: {prog}"), 1)
            );
            ExitCode::SUCCESS
        }
        ErrorKind::InvalidSubcommand => {
            let cmd = e
                .get(ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("{prog}: '{cmd}' is not a {prog} command. See '{prog} --help'.");
            ExitCode::from(1)
        }
        // No arguments at all: the help, as docker-machine prints it, and success (also when
        // an environment variable such as MACHINE_STORAGE_PATH gives an option a value).
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
            if std::env::args().len() <= 1 =>
        {
            let help = cli_command().render_help().to_string();
            print!(
                "{}",
                help.replacen("Usage: hoist", &format!("Usage: {prog}"), 1)
            );
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!(
                "{}",
                e.to_string()
                    .replacen("Usage: hoist", &format!("Usage: {prog}"), 1)
            );
            ExitCode::from(1)
        }
        _ => {
            let see = match subcommand_of(&e).as_str() {
                "" => format!("{prog} --help"),
                sub => format!("{prog} {sub} --help"),
            };
            eprintln!("Incorrect Usage: {}. See '{see}'.", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// clap's message on one line: the error with the lines that complete it (a missing argument's
/// name) and its tip, without the usage and help lines.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let parts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| match l.strip_prefix("tip: ") {
            Some(tip) => format!("({tip})"),
            None => l.trim_start_matches("error: ").to_string(),
        })
        .collect();
    parts.join(" ")
}

/// The subcommand a clap error is about, from its usage line ("" at the top level).
fn subcommand_of(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Usage: hoist "))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|w| !w.starts_with('[') && !w.starts_with('<'))
        .unwrap_or("")
        .to_string()
}

/// Prints per-machine results: values on stdout, errors on stderr, exit 1 if any failed.
pub fn print_each(results: Vec<Result<String>>) -> Result<u8> {
    let mut failed = false;
    for r in results {
        match r {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    Ok(u8::from(failed))
}

/// Exit code 0 printer for output that is already complete text.
pub fn print_text(text: &str) -> Result<u8> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Other(format!("cannot write output: {e}")))?;
    Ok(0)
}

/// The passphrase of an archive: `$HOIST_PASSPHRASE`, else asked on the terminal without echo
/// (twice, to confirm, for a new one).
pub fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(secret) = std::env::var(ENV_PASSPHRASE) {
        return match secret.is_empty() {
            true => Err(Error::Other(format!("{ENV_PASSPHRASE} is empty"))),
            false => Ok(secret),
        };
    }
    let first = ask_secret("Passphrase: ")?;
    if first.is_empty() {
        return Err(Error::Other("an empty passphrase encrypts nothing".into()));
    }
    if confirm && ask_secret("Passphrase again: ")? != first {
        return Err(Error::Other("the passphrases differ".into()));
    }
    Ok(first)
}

/// Where scripts give an archive's passphrase.
const ENV_PASSPHRASE: &str = "HOIST_PASSPHRASE";

/// One line read from the terminal with its echo off.
fn ask_secret(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let no_tty = |e: std::io::Error| {
        Error::Other(format!(
            "cannot ask for the passphrase ({e}): set {ENV_PASSPHRASE}"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios of an open terminal, put back as it was before returning.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(no_tty(std::io::Error::last_os_error()));
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut line = String::new();
    let read = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|_| std::io::BufReader::new(&tty).read_line(&mut line));
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = (&tty).write_all(b"\n");
    read.map_err(no_tty)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks a yes/no question on the terminal; an empty answer or end of input is an error.
pub fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    print!("{question} (y/n): ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer).unwrap_or(0);
    if read == 0 || answer.trim().is_empty() {
        println!();
        return Err(Error::Usage(
            "Error: no answer given; pass -y (rm) or -f (regenerate-certs) to skip the question"
                .into(),
        ));
    }
    Ok(answer.trim_start().starts_with(['y', 'Y']))
}

/// Runs system ssh, scp, rsync or sshfs for `machines` and returns its exit code. When it could
/// not connect (exit 255, or any failure of a copy or mount), the native client tells why in
/// hoist's words, under the tool's own error. With `--debug`, the command line is shown first.
pub async fn run_ssh_tool(
    ctx: &Context,
    cmd: &[String],
    machines: &[String],
    failed: impl Fn(u8) -> bool,
) -> Result<u8> {
    if ctx.debug {
        eprintln!("{}", hoist::ssh::quote::join(cmd));
    }
    let code = run_tool(cmd)?;
    if failed(code) {
        for name in machines {
            if let Some(why) = hoist::ops::ssh_tools::diagnose(ctx, name).await {
                eprintln!("{why}");
            }
        }
    }
    Ok(code)
}

/// Runs an external tool (ssh, scp, rsync, sshfs) and returns its exit code.
pub fn run_tool(cmd: &[String]) -> Result<u8> {
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .map_err(|e| Error::Other(format!("cannot run {}: {e} (is it installed?)", cmd[0])))?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// Runs an action for each machine concurrently (bounded); each failure is printed on its own
/// line. With several machines, step messages carry the machine's name.
pub async fn each_machine<F, Fut>(
    ctx: &Context,
    printer: &Printer,
    names: &[String],
    action: F,
) -> Result<u8>
where
    F: Fn(Context, String, std::sync::Arc<dyn hoist::report::Reporter>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let several = names.len() > 1;
    let results = hoist::machine::for_each_machine(names, |name| {
        let report: std::sync::Arc<dyn hoist::report::Reporter> =
            std::sync::Arc::new(printer.for_machine(several.then_some(name.as_str())));
        action(ctx.clone(), name, report)
    })
    .await;
    printer.finish();
    let mut failed = false;
    for result in results {
        if let Err(e) = result {
            failed = true;
            eprintln!("{e}");
        }
    }
    Ok(u8::from(failed))
}
