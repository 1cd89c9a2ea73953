//! `start`, `stop`, `kill`: power actions, for the drivers that have them.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, action: &'static str) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    let ctx2 = ctx.clone();
    let results = ops::for_each_machine(&names, move |name| {
        let ctx = ctx2.clone();
        async move {
            let (_, driver) = ops::load(&ctx, &name)?;
            Err::<String, _>(driver.unsupported(action).into())
        }
    })
    .await;
    super::print_each(results)
}
