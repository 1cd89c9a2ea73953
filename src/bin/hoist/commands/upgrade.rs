//! `upgrade`: upgrade Docker on machines.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::reprovision;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = hoist::machine::target_names(ctx, args.names)?;
    crate::printer::each_machine(ctx, printer, &names, |ctx, name, report| async move {
        reprovision::upgrade(&ctx, &name, report.as_ref()).await
    })
    .await
}
