//! hoist: Docker Machine (0.16.2), rebuilt in Rust and drop-in compatible with it.
//!
//! Module map (the binary in `src/bin/hoist` only parses arguments and calls into these; the
//! layers and what each may use are in `docs/architecture.md`):
//! - [`context`]: the store root, the global options, every env var read.
//! - [`program`]: the invoked name (`hoist` or `docker-machine`).
//! - [`report`]: how operations report their steps ([`report::Reporter`]).
//! - [`store`]: `~/.docker/machine` in docker-machine's layout — records (`config.json` v3), migration
//!   of v0–v2, atomic writes, per-machine and certificate locks. The on-disk layout is in [`store::layout`].
//! - [`cert`]: the CA, client and server certificates; the TLS client configuration.
//! - [`driver`]: the driver interface, the table of built-in drivers (`none`, `generic`) and
//!   docker-machine plugin binaries spoken to over libmachine's RPC protocol (`driver::plugin`).
//! - [`ssh`]: the native SSH client (russh), host-key pinning, the root command runner
//!   ([`ssh::Remote`]), interactive terminals, remote command quoting.
//! - [`provision`]: OS detection, Docker install, the systemd drop-in, certificates on the host.
//! - [`engine`]: the Docker Engine API over mutual TLS (handshake check, `/version`).
//! - [`format`]: Go templates, Go's tabwriter, natural sort — the output formats of `ls` and `inspect`.
//! - [`shell`]: how `env` writes for each shell.
//! - [`machine`]: a stored machine ([`machine::Machine`]: a record with its driver open), its
//!   lock, record writer, certificate paths and SSH sessions; which machines a command is about.
//! - [`ops`]: the operations behind the commands (create, ls, env, rm, power, info, reprovision,
//!   ssh_tools, doctor, archive, docker contexts, Swarm mode, …).
//! - [`fsutil`]: atomic writes and file locks; [`netaddr`]: host:port as Go joins them;
//!   [`web`]: one HTTP(S) request to a web server (downloads, cloud APIs).
//! - [`error`]: typed errors and exit codes.

pub mod cert;
pub mod context;
pub mod driver;
pub mod engine;
pub mod error;
pub mod format;
pub mod fsutil;
pub mod machine;
pub mod netaddr;
pub mod ops;
pub mod program;
pub mod provision;
pub mod report;
pub mod shell;
pub mod ssh;
pub mod store;
pub mod web;
