//! `export`: write a machine as one archive, for `import` in another store.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use hoist::context::{Context, program_name};
use hoist::error::{Error, Result};
use hoist::ops::archive::{self, ExportOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The archive to write (never overwritten; `-` for stdout). Default: NAME.tar, or NAME.tar.age when encrypted
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Also export the CA key, so that the importer can regenerate certificates
    #[arg(long)]
    with_ca: bool,
    /// Encrypt the archive (age, scrypt) with a passphrase from $HOIST_PASSPHRASE or asked on the terminal
    #[arg(long)]
    passphrase: bool,
    name: String,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let passphrase = match args.passphrase {
        true => Some(crate::prompt::passphrase(true)?),
        false => None,
    };
    let encrypted = passphrase.is_some();
    let opts = ExportOptions {
        with_ca: args.with_ca,
        passphrase,
    };
    let output = args.output.unwrap_or_else(|| {
        let suffix = if encrypted { "tar.age" } else { "tar" };
        PathBuf::from(format!("{}.{suffix}", args.name))
    });
    // Checked before the work: an archive is never written over anything.
    if output.as_os_str() != "-" && output.symlink_metadata().is_ok() {
        return Err(Error::Other(format!(
            "{} already exists: choose another file with -o",
            output.display()
        )));
    }
    let data = archive::export(ctx, &args.name, &opts).await?;
    let written = if output.as_os_str() == "-" {
        std::io::stdout().lock().write_all(&data)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&output)
            .and_then(|mut f| f.write_all(&data).and_then(|_| f.sync_all()))
    };
    written.map_err(|e| Error::Other(format!("cannot write {}: {e}", output.display())))?;
    if !encrypted {
        eprintln!(
            "The archive holds machine \"{}\"'s private keys{}, unencrypted: keep it safe, or export it with --passphrase.",
            args.name,
            if args.with_ca { " and its CA key" } else { "" }
        );
    }
    if output.as_os_str() != "-" {
        eprintln!(
            "Exported machine \"{}\" to {}; on the other side: {} import {}",
            args.name,
            output.display(),
            program_name(),
            output.display()
        );
    }
    Ok(0)
}
