//! The base image of VMs: a local file used in place, or a download cached once per store under
//! `cache/`, verified against its checksum before use (given, or the `SHA512SUMS`/`SHA256SUMS`
//! published beside it), resumed after an interruption, with a progress bar on a terminal.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::DriverError;
use crate::report::Reporter;

/// The store's directory of downloaded images.
pub const CACHE_DIR: &str = "cache";
/// How long connecting, or waiting for the next piece of a download, may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(60);
/// How many redirects a download follows.
const MAX_REDIRECTS: usize = 5;

fn fail(e: impl std::fmt::Display) -> DriverError {
    DriverError::Config(e.to_string())
}

/// A checksum an image must have (`sha256:HEX` or `sha512:HEX`).
#[derive(Debug, Clone, PartialEq)]
pub struct Checksum {
    pub algorithm: &'static ring::digest::Algorithm,
    pub name: &'static str,
    pub hex: String,
}

impl Checksum {
    /// Parses `sha256:…` / `sha512:…`.
    pub fn parse(text: &str) -> Result<Checksum, DriverError> {
        let bad = || {
            DriverError::Config(format!(
                "--qemu-image-checksum {text:?} is not sha256:HEX or sha512:HEX"
            ))
        };
        let (name, hex) = text.split_once(':').ok_or_else(bad)?;
        let (algorithm, name, len) = match name.to_ascii_lowercase().as_str() {
            "sha256" => (&ring::digest::SHA256, "sha256", 64),
            "sha512" => (&ring::digest::SHA512, "sha512", 128),
            _ => return Err(bad()),
        };
        let hex = hex.to_ascii_lowercase();
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Checksum {
            algorithm,
            name,
            hex,
        })
    }

    /// The text form, `sha256:HEX`.
    pub fn text(&self) -> String {
        format!("{}:{}", self.name, self.hex)
    }

    /// The checksum of a file, of the same algorithm.
    fn of_file(&self, path: &Path) -> Result<String, DriverError> {
        let mut file = std::fs::File::open(path).map_err(fail)?;
        let mut context = ring::digest::Context::new(self.algorithm);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).map_err(fail)?;
            if n == 0 {
                break;
            }
            context.update(&buffer[..n]);
        }
        Ok(context
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// Whether an image source is a URL (else a local path).
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The base image file for `source`: a local file as it is, or the verified cached download.
pub async fn resolve(
    source: &str,
    checksum: Option<&Checksum>,
    store: &Path,
    report: &dyn Reporter,
) -> Result<PathBuf, DriverError> {
    if !is_url(source) {
        let path = super::vm::absolute(source);
        if !path.is_file() {
            return Err(DriverError::Config(format!(
                "the image {source:?} does not exist (give a qcow2 or raw image file, or an http(s) URL)"
            )));
        }
        if let Some(sum) = checksum {
            verify(&path, sum, source)?;
        }
        return Ok(path);
    }
    use crate::store::layout::{HOIST_DIR, LOCKS_DIR};
    let cache = store.join(CACHE_DIR);
    let locks = store.join(HOIST_DIR).join(LOCKS_DIR);
    for dir in [&cache, &locks] {
        crate::fsutil::create_dir_all(dir, 0o700).map_err(fail)?;
    }
    let name = cache_name(source);
    let file = cache.join(&name);
    // One download per image at a time; the others wait for it and use it.
    let lock_path = locks.join(format!("image-{name}.lock"));
    let _lock = super::blocking(move || crate::fsutil::FileLock::acquire(&lock_path)).await?;
    let checksum = match checksum {
        Some(sum) => sum.clone(),
        None => published_checksum(source).await?,
    };
    let verified = file.with_extension("verified");
    if file.is_file()
        && std::fs::read_to_string(&verified).ok().as_deref() == Some(&checksum.text())
    {
        return Ok(file);
    }
    let part = file.with_extension("part");
    download(source, &part, report).await?;
    if let Err(e) = verify(&part, &checksum, source) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, &file).map_err(fail)?;
    crate::fsutil::write_atomic(&verified, checksum.text().as_bytes(), 0o644).map_err(fail)?;
    Ok(file)
}

/// The cache's name for a URL's image: a hash of the URL, then its file name.
fn cache_name(url: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
    let id: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base: String = url
        .rsplit('/')
        .next()
        .unwrap_or("image")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    format!("{id}-{base}")
}

fn verify(path: &Path, sum: &Checksum, source: &str) -> Result<(), DriverError> {
    let actual = sum.of_file(path)?;
    if actual == sum.hex {
        return Ok(());
    }
    Err(DriverError::Config(format!(
        "the image {source} does not match its checksum ({} expected {}, got {actual}); a download is discarded",
        sum.name, sum.hex
    )))
}

/// The checksum published beside an image (`SHA512SUMS`, else `SHA256SUMS`, as Debian and
/// Ubuntu publish them).
async fn published_checksum(url: &str) -> Result<Checksum, DriverError> {
    let (dir, name) = url.rsplit_once('/').unwrap_or((url, ""));
    for (list, algorithm) in [("SHA512SUMS", "sha512"), ("SHA256SUMS", "sha256")] {
        let Ok(text) = fetch_small(&format!("{dir}/{list}")).await else {
            continue;
        };
        let found = text.lines().find_map(|line| {
            let (hex, file) = line.split_once(char::is_whitespace)?;
            (file.trim().trim_start_matches('*') == name).then(|| hex.to_string())
        });
        if let Some(hex) = found {
            return Checksum::parse(&format!("{algorithm}:{hex}"));
        }
    }
    Err(DriverError::Config(format!(
        "no checksum for {url} (none given, and no SHA512SUMS or SHA256SUMS beside it names it): give --qemu-image-checksum sha256:HEX"
    )))
}

/// A small text file over HTTP(S) (a checksum list).
async fn fetch_small(url: &str) -> Result<String, DriverError> {
    let response = get(url, 0).await?;
    if response.status() != 200 {
        return Err(fail(format!("{url}: HTTP {}", response.status())));
    }
    let body = http_body_util::Limited::new(response.into_body(), 4 << 20)
        .collect()
        .await
        .map_err(fail)?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).to_string())
}

/// Downloads `url` into `part`, continuing a partial file with a range request.
async fn download(url: &str, part: &Path, report: &dyn Reporter) -> Result<(), DriverError> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let response = get(url, have).await?;
    let (mut file, start) = match response.status().as_u16() {
        206 => (
            std::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .map_err(fail)?,
            have,
        ),
        200 => (std::fs::File::create(part).map_err(fail)?, 0),
        // The partial file is whole already.
        416 if have > 0 => return Ok(()),
        status => {
            return Err(DriverError::Config(format!(
                "cannot download the image {url}: HTTP {status}"
            )));
        }
    };
    let total = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(|len| len + start);
    report.info(&format!(
        "Downloading {url}{}...",
        if start > 0 {
            format!(" (resuming at {} MB)", start >> 20)
        } else {
            String::new()
        }
    ));
    let bar = progress_bar(total, start);
    let mut body = response.into_body();
    loop {
        let frame = tokio::time::timeout(NETWORK_TIMEOUT, body.frame())
            .await
            .map_err(|_| {
                fail(format!(
                    "the download of {url} stalled for 60s; run the create again to resume it"
                ))
            })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            fail(format!(
                "the download of {url} broke off ({e}); run the create again to resume it"
            ))
        })?;
        if let Some(data) = frame.data_ref() {
            file.write_all(data).map_err(fail)?;
            if let Some(bar) = &bar {
                bar.inc(data.len() as u64);
            }
        }
    }
    file.sync_all().map_err(fail)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let got = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if total.is_some_and(|t| got < t) {
        return Err(fail(format!(
            "the download of {url} ended early ({got} of {} bytes); run the create again to resume it",
            total.unwrap_or(0)
        )));
    }
    Ok(())
}

/// A progress bar on a terminal (stderr), none otherwise.
fn progress_bar(total: Option<u64>, done: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::no_length(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_position(done);
    Some(bar)
}

/// `GET url` (from byte `from` on), following redirects; the response with its body unread.
async fn get(url: &str, from: u64) -> Result<hyper::Response<Incoming>, DriverError> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let response = get_once(&url, from).await?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| fail(format!("{url}: a redirect without a location")))?;
        url = if is_url(location) {
            location.to_string()
        } else {
            let (scheme, rest) = url.split_once("://").unwrap_or(("http", &url));
            let authority = rest.split('/').next().unwrap_or("");
            format!(
                "{scheme}://{authority}/{}",
                location.trim_start_matches('/')
            )
        };
    }
    Err(fail(format!("{url}: more than {MAX_REDIRECTS} redirects")))
}

async fn get_once(url: &str, from: u64) -> Result<hyper::Response<Incoming>, DriverError> {
    let target =
        crate::web::WebUrl::parse(url).map_err(|e| fail(format!("cannot fetch {url}: {e}")))?;
    let mut request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::USER_AGENT, crate::web::USER_AGENT);
    if from > 0 {
        request = request.header(hyper::header::RANGE, format!("bytes={from}-"));
    }
    let request = request
        .body(Full::<Bytes>::default())
        .map_err(|e| fail(format!("cannot fetch {url}: {e}")))?;
    crate::web::send(&target, request, NETWORK_TIMEOUT)
        .await
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_parse_and_refuse() {
        let sum = Checksum::parse(&format!("SHA256:{}", "AB".repeat(32))).unwrap();
        assert_eq!(sum.text(), format!("sha256:{}", "ab".repeat(32)));
        assert!(Checksum::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in ["", "md5:00", "sha256:xyz", "sha256:00", "0123"] {
            assert!(Checksum::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_names_keep_the_file_name_and_tell_urls_apart() {
        let a = cache_name("http://127.0.0.1:1/a/debian.qcow2");
        let b = cache_name("http://127.0.0.1:1/b/debian.qcow2");
        assert!(a.ends_with("-debian.qcow2") && b.ends_with("-debian.qcow2"));
        assert_ne!(a, b);
        assert!(!cache_name("http://x/../../etc/passwd").contains('/'));
    }
}
