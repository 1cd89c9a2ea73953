//! `import`: recreate a machine from an `export` archive.

use std::io::Read;
use std::path::PathBuf;

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::archive::{self, ImportOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The machine's name in this store (default: its name in the archive)
    #[arg(long)]
    name: Option<String>,
    /// The archive (`-` for stdin)
    file: PathBuf,
}

pub fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let mut data = Vec::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut data)
    } else {
        std::fs::File::open(&args.file).and_then(|f| {
            // One byte more than an archive may have tells a too large one.
            f.take(archive::MAX_ARCHIVE + 1).read_to_end(&mut data)
        })
    };
    read.map_err(|e| Error::Other(format!("cannot read {}: {e}", args.file.display())))?;
    let opts = ImportOptions {
        name: args.name,
        passphrase: &|| crate::prompt::passphrase(false),
    };
    println!("{}", archive::import(ctx, &data, &opts)?);
    Ok(0)
}
