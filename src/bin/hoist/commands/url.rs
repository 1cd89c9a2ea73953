//! `url`: print the Docker URL of a machine.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::machine;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let name = super::target_one(ctx, args.names)?;
    println!("{}", machine::url(ctx, &name).await?);
    Ok(0)
}
