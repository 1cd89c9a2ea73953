//! Usage errors: clap's, in docker-machine's words and exit codes, on one line.

use std::process::ExitCode;

use crate::commands::{cli_command, version::version_line};

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
