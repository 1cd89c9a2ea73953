//! The `hoist` binary (also installed as `docker-machine`): parses the command line, builds the
//! context, runs one command, and maps its error to docker-machine's message and exit code.

mod commands;
mod printer;
mod prompt;
mod tools;
mod usage;

pub use printer::Printer;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hoist::context::{self, Context, TlsOverrides};
use hoist::error::Error;
use hoist::store::Store;

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
        "snapshot" => (false, true, false),
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

fn program_name(argv0: &str) -> String {
    Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "hoist".into())
}

fn debug_requested(args: &[String]) -> Result<bool, String> {
    let mut debug = args
        .iter()
        .skip(1)
        .any(|a| a == "-D" || a == "--debug" || a == "-debug");
    if let Ok(value) = std::env::var(context::ENV_DEBUG)
        && !value.is_empty()
    {
        debug = context::parse_go_bool(&value).ok_or_else(|| {
            format!("Error parsing boolean value from MACHINE_DEBUG: strconv.ParseBool: parsing {value:?}: invalid syntax")
        })?;
    }
    Ok(debug)
}

/// Raises the soft open-files limit to the hard one: `ls` over a fleet holds hundreds of sockets.
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit on a stack rlimit struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let target = limit.rlim_max.min(65536);
            if target > limit.rlim_cur {
                limit.rlim_cur = target;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

fn main() -> ExitCode {
    // A closed stdout (`hoist ls | head -1`) ends hoist quietly, as it ends other tools, instead
    // of a panic in println!. Sockets are unaffected: Rust writes to them with MSG_NOSIGNAL.
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args: Vec<String> = std::env::args().collect();
    let prog = program_name(args.first().map(String::as_str).unwrap_or("hoist"));
    context::set_program_name(&prog);

    let debug = match debug_requested(&args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };

    let name = commands::subcommand_name(&args);
    let traits = traits(name.as_deref());
    let printer = Printer::new(debug, traits.info_to_stderr, traits.live);
    raise_open_files_limit();
    let mut builder = if traits.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };

    // create's flags depend on its driver, which may be a plugin to start first.
    let parsed = if name.as_deref() == Some("create") {
        runtime.block_on(commands::create::parse(&args, &printer))
    } else {
        commands::parse(&args).map_err(commands::create::ParseError::Usage)
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(commands::create::ParseError::Usage(e)) => {
            printer.finish();
            return usage::usage_error(e, &prog);
        }
        Err(commands::create::ParseError::Driver(e)) => {
            printer.finish();
            report_error(&e);
            return ExitCode::from(e.exit_code() as u8);
        }
    };

    let ctx = Context {
        store: Store::new(
            cli.storage_path
                .clone()
                .unwrap_or_else(context::default_storage_path),
        ),
        report: Arc::new(printer.clone()),
        argv: args.clone(),
        debug,
        native_ssh: cli.native_ssh,
        tls: TlsOverrides {
            ca_cert: cli.tls_ca_cert.clone(),
            ca_key: cli.tls_ca_key.clone(),
            client_cert: cli.tls_client_cert.clone(),
            client_key: cli.tls_client_key.clone(),
        },
    };
    // Ctrl-C or SIGTERM ends the command: its drivers are dropped (plugin processes killed),
    // its locks released; an unfinished create stays recorded as interrupted.
    let creating = cli.command.machine_to_create().map(str::to_string);
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli.command, &ctx, &printer) => result,
            signal = interrupted() => Err(Error::Interrupted {
                signal,
                machine: creating.filter(|name| ctx.store.exists(name)),
            }),
        }
    });
    printer.finish();
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report_error(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Waits for SIGINT or SIGTERM; returns its number.
async fn interrupted() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    }
}

fn report_error(e: &Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{e}");
}
