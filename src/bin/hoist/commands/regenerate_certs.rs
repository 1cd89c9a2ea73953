//! `regenerate-certs`: new TLS certificates for machines, installed on their daemons.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::reprovision;
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
    let mut names = match args.all {
        true => ctx.store.list()?,
        false => hoist::machine::target_names(ctx, args.names)?,
    };
    if !args.force
        && !crate::prompt::confirm("Regenerate TLS machine certs?  Warning: this is irreversible.")?
    {
        return Ok(0);
    }
    println!("Regenerating TLS certificates");
    if args.client_certs && args.all {
        let (members, others) = reprovision::ca_rotation_members(ctx, &names).await?;
        for (name, why) in others {
            printer.info(&format!(
                "Leaving machine \"{name}\" out of the CA rotation: {why}"
            ));
        }
        names = members;
    }
    if args.client_certs {
        reprovision::regenerate_client_certs(ctx, &names, printer)?;
    }
    let regenerate = |names: Vec<String>| async move {
        crate::printer::each_machine(ctx, printer, &names, |ctx, name, report| async move {
            reprovision::regenerate_certs(&ctx, &name, report.as_ref()).await
        })
        .await
    };
    let failed = regenerate(names.clone()).await?;
    if !(args.client_certs && reprovision::ca_rotation_under_way(ctx)) {
        return Ok(failed);
    }
    // The rotation ends once every machine it concerns has a certificate of the new CA: then
    // their daemons stop trusting the previous one.
    let (members, _) = reprovision::ca_rotation_members(ctx, &ctx.store.list()?).await?;
    let missing: Vec<&String> = members.iter().filter(|m| !names.contains(m)).collect();
    if failed != 0 || !missing.is_empty() {
        let unfinished = format!(
            "the CA rotation is not complete{}: the daemons trust both CAs until it is; run '{} regenerate-certs -f --client-certs --all' to complete it",
            match missing.is_empty() {
                true => String::new(),
                false => format!(
                    " ({} not done yet)",
                    missing
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            hoist::context::program_name()
        );
        // Asked for all, an unfinished rotation is a failure; for some machines, the next step.
        return match args.all {
            true => Err(Error::Other(unfinished)),
            false => {
                printer.info(&format!("Note: {unfinished}"));
                Ok(failed)
            }
        };
    }
    printer.info("Every machine has a certificate of the new CA: dropping the previous CA");
    reprovision::finish_ca_rotation(ctx)?;
    regenerate(members).await
}
