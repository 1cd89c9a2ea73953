//! `env`: print the commands that point the docker CLI at a machine.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::env::{self, EnvOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Display the Swarm config instead of the Docker daemon
    #[arg(long)]
    swarm: bool,
    /// Force environment to be configured for a specified shell: [fish, cmd, powershell, tcsh, emacs], default is auto-detect
    #[arg(long)]
    shell: Option<String>,
    /// Unset variables instead of setting them
    #[arg(short = 'u', long)]
    unset: bool,
    /// Add machine IP to NO_PROXY environment variable
    #[arg(long)]
    no_proxy: bool,
    /// Skip the TLS check of the machine (fast, for shell start-up files): print from the record alone
    #[arg(long)]
    no_check: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let opts = EnvOptions {
        shell: args.shell,
        unset: args.unset,
        no_proxy: args.no_proxy,
        swarm: args.swarm,
        no_check: args.no_check,
    };
    let name = if args.unset {
        args.names.first().cloned()
    } else {
        Some(hoist::machine::target_one(ctx, args.names)?)
    };
    crate::printer::print_text(&env::env(ctx, name.as_deref(), &opts).await?)
}
