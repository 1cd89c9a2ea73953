//! hoist's tests beyond the unit tests, in one binary (one link of the crate instead of one per
//! suite, as ripgrep does): each module is a suite, run alone with `cargo test --test hoist SUITE::`.
//!
//! - `cli`, `usability`, `store`, `archive`, `crash`: the built binary against temporary stores,
//!   fake daemons and fake drivers;
//! - `e2e`, `swarm`, `plugins`, `ec2`, `qemu`, `golden`: the lab's real hosts, VMs, plugins and moto
//!   (`HOIST_LAB=1`, see lab/test; ignored otherwise).

mod common;

mod architecture;
mod archive;
mod cli;
mod crash;
mod e2e;
mod ec2;
mod golden;
mod plugins;
mod qemu;
mod store;
mod swarm;
mod usability;
