//! The system tools some commands hand over to (ssh, scp, rsync, sshfs).

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::ssh_tools::ToolRun;

/// Runs system ssh, scp, rsync or sshfs for its machines and returns its exit code. When it could
/// not connect (exit 255, or any failure of a copy or mount), the native client tells why in
/// hoist's words, under the tool's own error. With `--debug`, the command line is shown first.
pub async fn run_ssh_tool(ctx: &Context, run: &ToolRun) -> Result<u8> {
    if ctx.debug {
        eprintln!("{}", hoist::ssh::quote::join(&run.command));
    }
    let code = run_tool(&run.command)?;
    if run.failed(code) {
        for name in &run.machines {
            if let Some(why) = hoist::ops::ssh_tools::diagnose(ctx, name).await {
                eprintln!("{why}");
            }
        }
    }
    Ok(code)
}

/// Runs an external tool (ssh, scp, rsync, sshfs) and returns its exit code.
pub fn run_tool(cmd: &[String]) -> Result<u8> {
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .map_err(|e| Error::Other(format!("cannot run {}: {e} (is it installed?)", cmd[0])))?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}
