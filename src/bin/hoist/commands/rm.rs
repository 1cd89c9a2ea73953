//! `rm`: remove machines.

use std::io::BufRead;

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
    names: Vec<String>,
}

fn confirm() -> Result<bool> {
    use std::io::Write;
    print!("Are you sure? (y/n): ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer).unwrap_or(0);
    if read == 0 || answer.trim().is_empty() {
        println!();
        return Err(Error::Usage(
            "Error: no answer given; use -y to remove without asking".into(),
        ));
    }
    Ok(answer.trim_start().starts_with(['y', 'Y']))
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    if args.names.is_empty() {
        return Err(Error::Usage(
            "Error: Expected to get one or more machine names as arguments".into(),
        ));
    }
    println!("About to remove {}", args.names.join(", "));
    println!("WARNING: This action will delete both local reference and remote instance.");
    if !(args.force || args.yes || confirm()?) {
        return Ok(0);
    }
    let (done, failed) = rm::remove(ctx, &args.names, args.force).await;
    for line in &done {
        println!("{line}");
    }
    for line in &failed {
        eprintln!("{line}");
    }
    Ok(u8::from(!failed.is_empty() && !args.force))
}
