//! `inspect`: print a machine's record as JSON, or through a Go template.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::info;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Format the output using the given go template.
    #[arg(short = 'f', long)]
    format: Option<String>,
    names: Vec<String>,
}

pub fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let name = hoist::machine::target_one(ctx, args.names)?;
    crate::printer::print_text(&info::inspect(ctx, &name, args.format.as_deref())?)
}
