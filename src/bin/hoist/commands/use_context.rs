//! `use`: make a machine's docker context the docker CLI's current one.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::docker_context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go back to the docker CLI's default context
    #[arg(long, conflicts_with = "name")]
    unset: bool,
    /// The machine
    name: Option<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    if !args.unset && args.name.is_none() {
        return Err(Error::Usage(
            "Error: Expected one machine name as an argument (or --unset)".into(),
        ));
    }
    let name = docker_context::use_machine(ctx, args.name.as_deref()).await?;
    println!(
        "Current docker context: {}",
        name.as_deref().unwrap_or("default")
    );
    Ok(0)
}
