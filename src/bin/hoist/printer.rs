//! How the binary shows what happens: step messages (a live line on a terminal), per-machine
//! results, finished text.

use std::io::{IsTerminal, Write};

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::report::Reporter;

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
    pub fn new(debug: bool, info_to_stderr: bool, live: bool) -> Printer {
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

    fn for_machine(&self, name: &str) -> Option<std::sync::Arc<dyn Reporter>> {
        Some(std::sync::Arc::new(Printer::for_machine(self, Some(name))))
    }
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

/// Runs an action for each machine concurrently (bounded); each failure is printed on its own
/// line. With several machines, step messages carry the machine's name.
pub async fn each_machine<F, Fut>(
    ctx: &Context,
    printer: &Printer,
    names: &[String],
    action: F,
) -> Result<u8>
where
    F: Fn(Context, String, std::sync::Arc<dyn Reporter>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let report: std::sync::Arc<dyn Reporter> = std::sync::Arc::new(printer.clone());
    let results = hoist::machine::for_each_reporting(names, &report, |name, report| {
        action(ctx.clone(), name, report)
    })
    .await;
    printer.finish();
    Ok(print_failures(results.into_iter().filter_map(Result::err)))
}

/// Prints each failure on its own line; exit 1 if there was any.
pub fn print_failures(failures: impl IntoIterator<Item = Error>) -> u8 {
    let mut failed = false;
    for e in failures {
        failed = true;
        eprintln!("{e}");
    }
    u8::from(failed)
}
