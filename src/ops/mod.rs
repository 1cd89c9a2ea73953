//! The operations behind the commands; each takes an options struct and the [`Context`].

pub mod archive;
pub mod cert_expiry;
pub mod classic_swarm;
pub mod create;
pub mod docker_context;
pub mod doctor;
pub mod env;
pub mod info;
pub mod ls;
pub mod power;
pub mod reprovision;
pub mod rm;
pub mod snapshot;
pub mod ssh_tools;
pub mod swarm;

#[cfg(test)]
mod tests;
