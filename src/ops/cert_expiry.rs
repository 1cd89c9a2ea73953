//! Certificates that never expire by surprise: `ls` warns about a machine whose server or
//! client certificate, or whose CA, ends within `--cert-warn-days` (an error once it has ended),
//! and `hoist certs` lists every certificate of the store and its machines with its end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::cert;
use crate::context::Context;
use crate::error::Result;
use crate::format::tabwriter::TabWriter;
use crate::store::config::Host;

/// Days before its end from which a certificate is reported (`--cert-warn-days`).
pub const DEFAULT_WARN_DAYS: i64 = 30;

/// One certificate of a machine: what it is and where.
pub struct CertFile {
    pub what: &'static str,
    pub path: PathBuf,
}

/// The certificates a machine depends on: the CA and client certificate its record names, and
/// its server certificate.
pub fn machine_certs(host: &Host) -> Vec<CertFile> {
    let auth = &host.host_options.auth_options;
    vec![
        CertFile {
            what: "CA",
            path: PathBuf::from(&auth.ca_cert_path),
        },
        CertFile {
            what: "client certificate",
            path: PathBuf::from(&auth.client_cert_path),
        },
        CertFile {
            what: "server certificate",
            path: PathBuf::from(&auth.server_cert_path),
        },
    ]
}

/// Certificate ends by path, read once however many machines share a file.
#[derive(Default)]
pub struct Ends(HashMap<PathBuf, Option<OffsetDateTime>>);

impl Ends {
    /// The end of the certificate at `path` (`None` when it is missing or unreadable).
    pub fn of(&mut self, path: &Path) -> Option<OffsetDateTime> {
        *self.0.entry(path.to_path_buf()).or_insert_with(|| {
            let pem = std::fs::read(path).ok()?;
            cert::parse_cert(path, &pem).ok().map(|c| c.not_after)
        })
    }
}

/// Days from `now` to `end`, rounded down (negative once ended).
fn days_left(end: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (end - now).whole_days()
}

/// The warning (or error) for a machine whose certificates end within `warn_days`, with the fix.
pub fn expiry_warning(host: &Host, ends: &mut Ends, warn_days: i64) -> Option<String> {
    let now = OffsetDateTime::now_utc();
    let p = crate::context::program_name();
    let mut notes = Vec::new();
    for file in machine_certs(host) {
        let Some(end) = ends.of(&file.path) else {
            continue;
        };
        let date = end.date();
        let fix = if file.what == "server certificate" {
            format!("'{p} regenerate-certs -f {}'", host.name)
        } else {
            format!("'{p} regenerate-certs -f --client-certs {}'", host.name)
        };
        if end <= now {
            notes.push(format!(
                "the {} expired on {date}: renew it with {fix}",
                file.what
            ));
        } else if days_left(end, now) < warn_days {
            notes.push(format!(
                "the {} expires in {} days ({date}): renew it with {fix}",
                file.what,
                days_left(end, now)
            ));
        }
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// `hoist certs`: every certificate of the store and its machines, with its end and days left.
pub fn list(ctx: &Context) -> Result<String> {
    let now = OffsetDateTime::now_utc();
    let mut ends = Ends::default();
    let mut text = String::from("CERTIFICATE\tFILE\tEXPIRES\tDAYS LEFT\n");
    let mut row = |what: &str, path: &Path, ends: &mut Ends| {
        let (expires, left) = match ends.of(path) {
            Some(end) => (end.date().to_string(), days_left(end, now).to_string()),
            None => ("(missing or unreadable)".to_string(), String::new()),
        };
        text.push_str(&format!("{what}\t{}\t{expires}\t{left}\n", path.display()));
    };
    let store_certs = cert::CertPaths::in_dir(&ctx.store.certs_dir());
    row("store CA", &store_certs.ca_cert, &mut ends);
    row(
        "store client certificate",
        &store_certs.client_cert,
        &mut ends,
    );
    for (name, host) in ctx.store.load_all()? {
        let Ok(host) = host else {
            continue;
        };
        for file in machine_certs(&host) {
            let shared = file.path == store_certs.ca_cert || file.path == store_certs.client_cert;
            if !shared {
                row(&format!("{name}: {}", file.what), &file.path, &mut ends);
            }
        }
    }
    Ok(TabWriter::LS.format(&text))
}
