//! `snapshot`: golden snapshots of running machines, which `create -d qemu --qemu-snapshot` makes
//! new machines from in seconds.

use clap::Subcommand;
use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::snapshot;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Save a running machine's state and disk as snapshot SNAPSHOT (the machine runs on)
    Create { machine: String, snapshot: String },
    /// List the snapshots and the machines made from them
    Ls,
    /// Remove snapshots that no machine uses
    Rm {
        #[arg(required = true)]
        snapshots: Vec<String>,
    },
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    match args.action {
        Action::Create { machine, snapshot } => {
            let done = snapshot::create(ctx, &machine, &snapshot, ctx.report.as_ref()).await?;
            println!("{done}");
            Ok(0)
        }
        Action::Ls => crate::printer::print_text(&snapshot::ls(ctx)?),
        Action::Rm { snapshots } => crate::printer::print_each(snapshot::rm(ctx, &snapshots)),
    }
}
