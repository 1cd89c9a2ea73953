//! `scp`: copy files between machines and this host.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::ssh_tools::{self, ScpOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Copy files recursively (required to copy directories)
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Reduce amount of data sent over network by sending only the differences (uses rsync)
    #[arg(short = 'd', long)]
    delta: bool,
    /// Disables the progress meter as well as warning and diagnostic messages from ssh
    #[arg(short = 'q', long)]
    quiet: bool,
    /// [[user@]machine:][path] [[user@]machine:][path]
    paths: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let [src, dst] = args.paths.as_slice() else {
        return Err(Error::Usage("Improper number of arguments.".into()));
    };
    let opts = ScpOptions {
        recursive: args.recursive,
        quiet: args.quiet,
        delta: args.delta,
    };
    let run = ssh_tools::scp_command(ctx, src, dst, &opts).await?;
    crate::tools::run_ssh_tool(ctx, &run).await
}
