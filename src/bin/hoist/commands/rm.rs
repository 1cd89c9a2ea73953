//! `rm`: remove machines.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::rm;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove local configuration even if machine cannot be removed, also implies an automatic yes (`-y`)
    #[arg(short = 'f', long)]
    force: bool,
    /// Assumes automatic yes to proceed with remove, without prompting further user confirmation
    #[arg(short = 'y')]
    yes: bool,
    /// Leave a Swarm-mode node in its swarm (by default it is drained and taken out first)
    #[arg(long)]
    keep_swarm_node: bool,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    if args.names.is_empty() {
        return Err(Error::Usage(
            "Error: Expected to get one or more machine names as arguments".into(),
        ));
    }
    println!("About to remove {}", args.names.join(", "));
    println!("WARNING: This action will delete both local reference and remote instance.");
    if !(args.force || args.yes || crate::prompt::confirm("Are you sure?")?) {
        return Ok(0);
    }
    let opts = rm::RmOptions {
        force: args.force,
        keep_swarm_node: args.keep_swarm_node,
    };
    let (done, failed) = rm::remove(ctx, &args.names, opts).await;
    for line in &done {
        println!("{line}");
    }
    for line in &failed {
        eprintln!("{line}");
    }
    Ok(u8::from(!failed.is_empty() && !args.force))
}
