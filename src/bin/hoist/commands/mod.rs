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
mod snapshot;
mod ssh;
mod status;
mod swarm;
mod upgrade;
mod url;
mod use_context;
pub mod version;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::power::Power;

use crate::Printer;

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
    version = version::FULL_VERSION,
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
    /// Golden snapshots of running machines, to make new machines from in seconds: create, ls, rm
    Snapshot(snapshot::Args),
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
        Command::Snapshot(a) => snapshot::exec(a, ctx).await,
        Command::Swarm(a) => swarm::exec(a, ctx).await,
        Command::Export(a) => export::exec(a, ctx).await,
        Command::Import(a) => import::exec(a, ctx),
        Command::Context(a) => context::exec(a, ctx).await,
        Command::Use(a) => use_context::exec(a, ctx).await,
        Command::Completion(a) => completion::exec(a),
    }
}
