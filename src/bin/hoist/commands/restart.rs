//! `restart`: reboot machines and wait for their daemons.

use hoist::context::{Context, program_name};
use hoist::error::Result;
use hoist::ops::remote;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    let code = super::each_machine(ctx, printer, &names, |ctx, name, report| async move {
        remote::restart(&ctx, &name, report.as_ref()).await
    })
    .await?;
    println!(
        "Restarted machines may have new IP addresses. You may need to re-run the `{} env` command.",
        program_name()
    );
    Ok(code)
}
