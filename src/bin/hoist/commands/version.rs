//! `version`: hoist's version, or the Docker version of a machine.

use hoist::context::{Context, program_name};
use hoist::error::{Error, Result};
use hoist::ops::info;

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    match args.names.as_slice() {
        [] => println!("{}", super::version_line(program_name())),
        [name] => println!("{}", info::docker_version(ctx, name).await?),
        _ => {
            return Err(Error::Usage(
                "Error: Expected one machine name as an argument".into(),
            ));
        }
    }
    Ok(0)
}
