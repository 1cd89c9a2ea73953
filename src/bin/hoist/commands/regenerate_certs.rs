//! `regenerate-certs`: new TLS certificates for machines, installed on their daemons.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::reprovision::{self, RegenerateOptions};
use hoist::report::Reporter;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force rebuild and do not prompt
    #[arg(short = 'f', long)]
    force: bool,
    /// Also regenerate client certificates and CA.
    #[arg(long)]
    client_certs: bool,
    /// Every machine of the store; with --client-certs a complete CA rotation (the daemons trust both CAs until every machine has the new one)
    #[arg(long, conflicts_with = "names")]
    all: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = match args.all {
        true => ctx.store.list()?,
        false => hoist::machine::target_names(ctx, args.names)?,
    };
    if !args.force
        && !crate::prompt::confirm("Regenerate TLS machine certs?  Warning: this is irreversible.")?
    {
        return Ok(0);
    }
    println!("Regenerating TLS certificates");
    let opts = RegenerateOptions {
        names,
        client_certs: args.client_certs,
        all: args.all,
    };
    let report: std::sync::Arc<dyn Reporter> = std::sync::Arc::new(printer.clone());
    let failures = reprovision::regenerate(ctx, &opts, &report).await;
    printer.finish();
    Ok(crate::printer::print_failures(failures?))
}
