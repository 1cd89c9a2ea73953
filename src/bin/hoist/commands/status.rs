//! `status`: print the state of machines, one line each in the order given.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::{self, machine};

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    let ctx2 = ctx.clone();
    let results = ops::for_each_machine(&names, move |name| {
        let ctx = ctx2.clone();
        async move { machine::status(&ctx, &name).await.map(|s| s.to_string()) }
    })
    .await;
    super::print_each(results)
}
