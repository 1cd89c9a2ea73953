//! The `hoist` binary (also installed as `docker-machine`): parses the command line, builds the
//! context, runs one command, and maps its error to docker-machine's message and exit code.

mod commands;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hoist::context::{self, Context, TlsOverrides};
use hoist::error::Error;
use hoist::report::Reporter;
use hoist::store::Store;

/// Prints step messages: info to stdout (stderr for `env`/`config`, whose stdout is evaluated),
/// debug lines to stderr with `-D`. On a terminal, a live line shows the current step and its
/// elapsed time while finished steps scroll above it.
#[derive(Clone)]
pub struct Printer {
    pub debug: bool,
    pub info_to_stderr: bool,
    prefix: Option<String>,
    live: Option<indicatif::ProgressBar>,
}

impl Printer {
    fn new(debug: bool, info_to_stderr: bool, live: bool) -> Printer {
        let live = (live && !debug && std::io::stdout().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Printer {
            debug,
            info_to_stderr,
            prefix: None,
            live,
        }
    }

    /// The printer for one machine of several: its lines start with `(name) `.
    pub fn for_machine(&self, name: Option<&str>) -> Printer {
        Printer {
            prefix: name.map(|n| format!("({n}) ")),
            live: if name.is_some() {
                None
            } else {
                self.live.clone()
            },
            ..self.clone()
        }
    }

    /// Removes the live line.
    pub fn finish(&self) {
        if let Some(bar) = &self.live {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Printer {
    fn info(&self, message: &str) {
        let line = format!("{}{message}", self.prefix.as_deref().unwrap_or(""));
        if let Some(bar) = &self.live {
            bar.println(&line);
            bar.set_message(line);
        } else if self.info_to_stderr {
            eprintln!("{line}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn debug(&self, message: &str) {
        if self.debug {
            eprintln!("{}{message}", self.prefix.as_deref().unwrap_or(""));
        }
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
    let traits = commands::traits(name.as_deref());
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
            return commands::usage_error(e, &prog);
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
