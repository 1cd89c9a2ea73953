//! `regenerate-certs`: new TLS certificates for machines, installed on their daemons.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::remote;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force rebuild and do not prompt
    #[arg(short = 'f', long)]
    force: bool,
    /// Also regenerate client certificates and CA.
    #[arg(long)]
    client_certs: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    if !args.force
        && !super::confirm("Regenerate TLS machine certs?  Warning: this is irreversible.")?
    {
        return Ok(0);
    }
    println!("Regenerating TLS certificates");
    let client_certs = args.client_certs;
    super::each_machine(ctx, printer, &names, move |ctx, name, report| async move {
        remote::regenerate_certs(&ctx, &name, client_certs, report.as_ref()).await
    })
    .await
}
