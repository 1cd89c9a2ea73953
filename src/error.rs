//! The errors of hoist's operations and the exit codes they map to.

use crate::{cert, driver, engine, format, ssh, store};

/// An operation's failure. Its message is what the user sees, on one line where possible.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Cert(#[from] cert::CertError),
    #[error(transparent)]
    Driver(#[from] driver::DriverError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error(transparent)]
    Template(#[from] format::template::TemplateError),
    /// Wrong arguments: docker-machine's own wording where it has one.
    #[error("{0}")]
    Usage(String),
    /// A pre-create check failed (exit code 3, as docker-machine).
    #[error("Error with pre-create check: {}", format::go_quote(.0))]
    PreCreate(String),
    #[error("{0}")]
    Other(String),
    /// The command was interrupted by a signal (its number), leaving `machine` unfinished.
    #[error("{}", interrupted_message(.machine.as_deref()))]
    Interrupted {
        signal: i32,
        machine: Option<String>,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::PreCreate(_) => 3,
            Error::Interrupted { signal, .. } => 128 + signal,
            _ => 1,
        }
    }
}

/// Result of hoist's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn interrupted_message(machine: Option<&str>) -> String {
    let p = crate::program::program_name();
    match machine {
        Some(n) => format!(
            "Interrupted: machine \"{n}\" was not finished; run '{p} provision {n}' to finish it or '{p} rm {n}' to remove it"
        ),
        None => "Interrupted.".into(),
    }
}
