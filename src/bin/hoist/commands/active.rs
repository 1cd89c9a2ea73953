//! `active`: print which machine is active.

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::ls;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timeout in seconds, default to 10s
    #[arg(short = 't', long, default_value_t = 10)]
    timeout: u64,
    #[arg(hide = true)]
    extra: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    if !args.extra.is_empty() {
        return Err(Error::Usage("Error: Too many arguments given".into()));
    }
    let name = ls::active(ctx, std::time::Duration::from_secs(args.timeout)).await?;
    println!("{name}");
    Ok(0)
}
