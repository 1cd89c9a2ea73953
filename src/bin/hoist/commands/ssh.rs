//! `ssh`: log into or run a command on a machine.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::{info, ssh_tools};

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
    if info::status(ctx, &name).await? != hoist::driver::State::Running {
        return Err(Error::Other(format!(
            "Error: Cannot run SSH command: Host \"{name}\" is not running"
        )));
    }
    let m = ssh_tools::machine(ctx, &name).await?;
    if ctx.native_ssh || ssh_tools::which("ssh").is_none() {
        let status = ssh_tools::native_ssh(ctx, &m, &rest).await?;
        return Ok(u8::try_from(status).unwrap_or(255));
    }
    let cmd = ssh_tools::ssh_command(&m, &rest);
    // 255 is ssh's own failure; any other status is the remote command's.
    crate::tools::run_ssh_tool(ctx, &cmd, &[name], |code| code == 255).await
}
