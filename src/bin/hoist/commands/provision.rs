//! `provision`: provision existing machines again (also retries a failed create).

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::reprovision;
use hoist::provision::{InstallMethod, ProvisionOptions};

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accept a changed SSH host key (after a reinstall) and pin the new one
    #[arg(long)]
    trust_new_host_key: bool,
    /// How to install Docker where it is missing, from now on: auto, script, distro (the distribution's package) or none
    #[arg(long)]
    engine_install_method: Option<String>,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let names = hoist::machine::target_names(ctx, args.names)?;
    let opts = ProvisionOptions {
        trust_new_host_key: args.trust_new_host_key,
        install_method: args
            .engine_install_method
            .as_deref()
            .map(InstallMethod::parse)
            .transpose()?,
    };
    crate::printer::each_machine(ctx, printer, &names, move |ctx, name, report| async move {
        reprovision::provision(&ctx, &name, report.as_ref(), opts).await
    })
    .await
}
