//! `version`: hoist's version, or the Docker version of a machine.

use hoist::context::{Context, program_name};
use hoist::error::{Error, Result};
use hoist::ops::info;

/// hoist's version line, as docker-machine's `--version`: `<version>, build <commit>`.
pub const FULL_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    ", build ",
    env!("HOIST_GIT_COMMIT")
);

/// The docker-machine release hoist is compatible with.
pub const DOCKER_MACHINE_VERSION: &str = "0.16.2";

/// What `--version` and `version` print: hoist's version, or, invoked as `docker-machine`, the
/// docker-machine version hoist stands in for (scripts check it) with hoist's as the build.
pub fn version_line(prog: &str) -> String {
    if prog == "docker-machine" {
        format!(
            "{prog} version {DOCKER_MACHINE_VERSION}, build hoist-{}-{}",
            env!("CARGO_PKG_VERSION"),
            env!("HOIST_GIT_COMMIT")
        )
    } else {
        format!("{prog} version {FULL_VERSION}")
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    match args.names.as_slice() {
        [] => println!("{}", version_line(program_name())),
        [name] => println!("{}", info::docker_version(ctx, name).await?),
        _ => {
            return Err(Error::Usage(
                "Error: Expected one machine name as an argument".into(),
            ));
        }
    }
    Ok(0)
}
