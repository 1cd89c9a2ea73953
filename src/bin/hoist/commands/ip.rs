//! `ip`: print the IP address of machines.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::info;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let names = hoist::machine::target_names(ctx, args.names)?;
    crate::printer::print_each(info::ips(ctx, &names).await)
}
