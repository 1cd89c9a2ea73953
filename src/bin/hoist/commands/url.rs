//! `url`: print the Docker URL of a machine.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::info;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let name = hoist::machine::target_one(ctx, args.names)?;
    println!("{}", info::url(ctx, &name).await?);
    Ok(0)
}
