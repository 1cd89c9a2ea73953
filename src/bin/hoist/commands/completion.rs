//! `completion`: print shell completions.

use clap::CommandFactory;
use clap_complete::Shell;
use hoist::context::program_name;
use hoist::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell
    shell: Shell,
}

pub fn exec(args: Args) -> Result<u8> {
    // create completes the flags of every built-in driver (plugins' are known only at run time).
    let mut cmd = hoist::driver::BUILTIN_DRIVERS
        .iter()
        .fold(super::Cli::command(), |cmd, b| {
            super::create::with_driver_flags(cmd, b.name, &(b.flags)())
        });
    clap_complete::generate(args.shell, &mut cmd, program_name(), &mut std::io::stdout());
    Ok(0)
}
