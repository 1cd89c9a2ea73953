//! `ls`: list machines.

use std::time::Duration;

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::ls::{self, LsOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Enable quiet mode
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Filter output based on conditions provided
    #[arg(long)]
    filter: Vec<String>,
    /// Timeout in seconds, default to 10s
    #[arg(short = 't', long, default_value_t = 10)]
    timeout: u64,
    /// Pretty-print machines using a Go template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Warn in ERRORS about certificates that end within this many days
    #[arg(long, default_value_t = hoist::ops::cert_expiry::DEFAULT_WARN_DAYS)]
    cert_warn_days: i64,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let opts = LsOptions {
        quiet: args.quiet,
        filters: args.filter,
        timeout: Duration::from_secs(args.timeout.max(1)),
        format: args.format,
        cert_warn_days: args.cert_warn_days,
    };
    crate::printer::print_text(&ls::ls(ctx, &opts).await?)
}
