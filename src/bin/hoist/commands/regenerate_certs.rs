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
    if args.client_certs {
        remote::regenerate_client_certs(ctx, &names, printer)?;
    }
    super::each_machine(ctx, printer, &names, |ctx, name, report| async move {
        remote::regenerate_certs(&ctx, &name, report.as_ref()).await
    })
    .await
}
