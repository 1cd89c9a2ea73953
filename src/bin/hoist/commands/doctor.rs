//! `doctor`: checks why machines are (un)reachable, one line per check with the fix.

use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::doctor;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machines to check (default: every machine of the store)
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let names = if args.names.is_empty() {
        ctx.store.list()?
    } else {
        args.names
    };
    let mut failed = false;
    let mut text = String::new();
    for (name, diagnosis) in names.iter().zip(doctor::doctor(ctx, &names).await) {
        match diagnosis {
            Ok(d) => {
                failed |= d.failed();
                text.push_str(&d.render());
            }
            Err(e) => {
                failed = true;
                text.push_str(&format!("{name}\n  FAIL  record         {e}\n"));
            }
        }
    }
    crate::printer::print_text(&text)?;
    Ok(u8::from(failed))
}
