//! `config`: print the docker CLI flags that reach a machine.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::env;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Display the Swarm config instead of the Docker daemon
    #[arg(long)]
    swarm: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let name = hoist::machine::target_one(ctx, args.names)?;
    crate::printer::print_text(&env::config(ctx, &name, args.swarm).await?)
}
