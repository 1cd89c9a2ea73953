//! `ssh`: log into or run a command on a machine.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::ssh_tools::{self, SshRun};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The machine, then the command to run (everything after the name goes to the machine)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let mut rest = args.args;
    let name = if rest.is_empty() {
        hoist::machine::target_one(ctx, vec![])?
    } else {
        rest.remove(0)
    };
    match ssh_tools::ssh(ctx, &name, &rest).await? {
        SshRun::Native(status) => Ok(status),
        SshRun::Tool(run) => crate::tools::run_ssh_tool(ctx, &run).await,
    }
}
