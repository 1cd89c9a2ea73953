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
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, program_name(), &mut std::io::stdout());
    Ok(0)
}
