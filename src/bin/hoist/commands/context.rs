//! `context`: docker CLI contexts for machines (`docker --context NAME …`).

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::docker_context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The context's name (default: the machine's); for one machine
    #[arg(long)]
    context_name: Option<String>,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let names = hoist::machine::target_names(ctx, args.names)?;
    if args.context_name.is_some() && names.len() > 1 {
        return Err(Error::Usage(
            "Error: --context-name names the context of one machine".into(),
        ));
    }
    let results = docker_context::write_each(ctx, &names, args.context_name.as_deref()).await;
    crate::printer::print_each(results)
}
