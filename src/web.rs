//! One HTTP/1.1 request to a web server over plain TCP or TLS (the system's CAs), for the drivers
//! that talk to the web: image downloads (`qemu`) and cloud APIs (`amazonec2`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// Where Debian-family systems keep the CAs that web servers are checked against.
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot fetch {url}: {reason}")]
    Failed { url: String, reason: String },
}

/// The parts of an `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebUrl {
    pub tls: bool,
    /// `host[:port]` as written (the `Host` header).
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
}

impl WebUrl {
    /// Parses an http or https URL.
    pub fn parse(url: &str) -> Result<WebUrl, String> {
        let (tls, rest) = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (true, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err("not an http(s) URL".into()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().map_err(|_| "bad port".to_string())?,
            ),
            _ => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(WebUrl {
            tls,
            authority: authority.to_string(),
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The URL again, normalised (`scheme://authority/path`).
    pub fn text(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }
}

/// Sends `request` (its URI the path, its headers complete but `Host`, which is added) to `url`
/// on a new connection; the response with its body unread. `timeout` bounds connecting and the
/// wait for the response head.
pub async fn send(
    url: &WebUrl,
    mut request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<hyper::Response<Incoming>, WebError> {
    let cannot = |e: &dyn std::fmt::Display| WebError::Failed {
        url: url.text(),
        reason: e.to_string(),
    };
    let host = hyper::header::HeaderValue::from_str(&url.authority).map_err(|e| cannot(&e))?;
    request.headers_mut().insert(hyper::header::HOST, host);
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| cannot(&"timed out connecting"))?
        .map_err(|e| cannot(&crate::engine::io_reason(&e)))?;
    let _ = tcp.set_nodelay(true);
    macro_rules! send {
        ($io:expr) => {{
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new($io))
                    .await
                    .map_err(|e| cannot(&e))?;
            tokio::spawn(connection);
            tokio::time::timeout(timeout, sender.send_request(request))
                .await
                .map_err(|_| cannot(&format!("no answer within {}s", timeout.as_secs())))?
                .map_err(|e| cannot(&e))
        }};
    }
    if !url.tls {
        return send!(tcp);
    }
    let name = ServerName::try_from(url.host.clone()).map_err(|e| cannot(&e))?;
    let stream = tokio_rustls::TlsConnector::from(web_tls().map_err(|e| cannot(&e))?)
        .connect(name, tcp)
        .await
        .map_err(|e| cannot(&e))?;
    send!(stream)
}

/// The `User-Agent` hoist sends.
pub const USER_AGENT: &str = concat!("hoist/", env!("CARGO_PKG_VERSION"));

/// A TLS client trusting the system's CAs, for web servers (read once per process).
fn web_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let pem = std::fs::read(SYSTEM_CAS).map_err(|e| {
                format!("cannot read the system's CAs {SYSTEM_CAS} ({e}): install ca-certificates")
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = WebUrl::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 5000, "/")
        );
        let u = WebUrl::parse("HTTPS://ec2.eu-west-1.amazonaws.com/x?y").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/x?y"));
        let u = WebUrl::parse("http://[::1]:8/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8));
        for bad in ["ftp://x", "x", "http://:80/", "http://h:port/"] {
            assert!(WebUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
