//! `provision`: provision existing machines again (also retries a failed create).

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::remote;
use hoist::provision::ProvisionOptions;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accept a changed SSH host key (after a reinstall) and pin the new one
    #[arg(long)]
    trust_new_host_key: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    let opts = ProvisionOptions {
        trust_new_host_key: args.trust_new_host_key,
    };
    super::each_machine(ctx, printer, &names, move |ctx, name, report| async move {
        remote::provision(&ctx, &name, report.as_ref(), opts).await
    })
    .await
}
