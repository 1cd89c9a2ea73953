//! `mount`: mount or unmount a directory of a machine with SSHFS.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::ssh_tools;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Unmount instead of mount
    #[arg(short = 'u', long)]
    unmount: bool,
    /// [machine:][path] [mountpoint]
    paths: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let [src, dst] = args.paths.as_slice() else {
        return Err(Error::Usage("Improper number of arguments.".into()));
    };
    let run = ssh_tools::mount_command(ctx, src, dst, args.unmount).await?;
    crate::tools::run_ssh_tool(ctx, &run).await
}
