//! `start`, `stop`, `kill`, `restart`: power actions through each machine's driver.

use hoist::context::{Context, program_name};
use hoist::error::Result;
use hoist::ops::power::{self, Power};

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer, action: Power) -> Result<u8> {
    let names = hoist::machine::target_names(ctx, args.names)?;
    let code =
        crate::printer::each_machine(ctx, printer, &names, move |ctx, name, report| async move {
            power::power(&ctx, &name, action, report.as_ref()).await
        })
        .await?;
    let verb = match action {
        Power::Start => "Started",
        Power::Restart => "Restarted",
        Power::Stop | Power::Kill => return Ok(code),
    };
    if code == 0 {
        println!(
            "{verb} machines may have new IP addresses. You may need to re-run the `{} env` command.",
            program_name()
        );
    }
    Ok(code)
}
