//! `certs`: every certificate of the store and its machines, with when it ends.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::cert_expiry;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_: Args, ctx: &Context) -> Result<u8> {
    crate::printer::print_text(&cert_expiry::list(ctx)?)
}
