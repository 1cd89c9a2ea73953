//! The Docker Engine API over mutual TLS, as much as hoist needs: a TLS handshake (certificate
//! check), `GET /_ping` and `GET /version` — unversioned paths, which every daemon answers.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What can go wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid Docker URL {0:?}: expected tcp://HOST:PORT")]
    BadUrl(String),
    #[error("cannot connect to {addr}: {}", io_reason(source))]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out after {secs:.0}s connecting to {addr}")]
    Timeout { addr: String, secs: f64 },
    #[error("{0}")]
    Tls(String),
    #[error("{addr}: unexpected answer from the Docker daemon: {detail}")]
    Protocol { addr: String, detail: String },
}

/// Host and port of a `tcp://host:port` URL, e.g. `("192.0.2.1", 2376)`.
pub fn parse_tcp_url(url: &str) -> Result<(String, u16), EngineError> {
    let bad = || EngineError::BadUrl(url.to_string());
    let rest = url.strip_prefix("tcp://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        rest.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// A client for the daemons of a store; its TLS configuration is built once and shared.
#[derive(Clone)]
pub struct EngineClient {
    connector: TlsConnector,
    timeout: Duration,
    exchanges: Arc<Semaphore>,
}

/// How many TLS exchanges (handshake and request, the CPU-bound part) run at once by default;
/// waiting for a TCP connection takes no slot.
pub const CONCURRENT_EXCHANGES: usize = 16;

impl EngineClient {
    /// A client presenting the store's client certificate and trusting only its CA.
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> EngineClient {
        EngineClient {
            connector: TlsConnector::from(tls),
            timeout,
            exchanges: Arc::new(Semaphore::new(CONCURRENT_EXCHANGES)),
        }
    }

    /// The same client sharing `exchanges` with others (one bound for a whole `ls`).
    pub fn with_exchange_limit(mut self, exchanges: Arc<Semaphore>) -> EngineClient {
        self.exchanges = exchanges;
        self
    }

    /// Connects (TCP, then a TLS handshake in an exchange slot); the slot is held by the caller
    /// for the request that follows.
    async fn connect(
        &self,
        url: &str,
    ) -> Result<(TlsStream<TcpStream>, String, OwnedSemaphorePermit), EngineError> {
        let (host, port) = parse_tcp_url(url)?;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let timeout = |addr: &str| EngineError::Timeout {
            addr: addr.to_string(),
            secs: self.timeout.as_secs_f64(),
        };
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| timeout(&addr))?
            .map_err(|source| EngineError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone())
            .map_err(|e| EngineError::Tls(format!("{host}: {e}")))?;
        let permit = self
            .exchanges
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        let tls = tokio::time::timeout(self.timeout, self.connector.connect(name, tcp))
            .await
            .map_err(|_| timeout(&addr))?
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        Ok((tls, addr, permit))
    }

    /// One TLS handshake with client authentication: proves the daemon's certificate is signed by
    /// the CA and valid for the host (what `env` and `config` check).
    pub async fn check_tls(&self, url: &str) -> Result<(), EngineError> {
        let (mut stream, _, _permit) = self.connect(url).await?;
        let _ = stream.shutdown().await;
        Ok(())
    }

    /// `GET path`: the headers and body of a 200 answer.
    pub async fn get(&self, url: &str, path: &str) -> Result<HttpResponse, EngineError> {
        let (mut stream, addr, _permit) = self.connect(url).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: hoist/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::with_capacity(2048);
            match stream.read_to_end(&mut response).await {
                Ok(_) => Ok(response),
                // Daemons may close without a TLS close_notify; the body is complete by then.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
                    Ok(response)
                }
                Err(e) => Err(e),
            }
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| EngineError::Timeout {
                addr: addr.clone(),
                secs: self.timeout.as_secs_f64(),
            })?
            .map_err(|e| tls_or_io(&addr, e))?;
        parse_http_response(&response).map_err(|detail| EngineError::Protocol { addr, detail })
    }

    /// `GET path` and the JSON body of a 200 answer.
    pub async fn get_json(&self, url: &str, path: &str) -> Result<Value, EngineError> {
        let response = self.get(url, path).await?;
        serde_json::from_slice(&response.body).map_err(|e| EngineError::Protocol {
            addr: url.to_string(),
            detail: format!("invalid JSON: {e}"),
        })
    }

    /// The daemon's version, e.g. `28.2.2`: from the `Server: Docker/<version> (<os>)` header of
    /// `GET /_ping` (cheap for the daemon), else from `GET /version`.
    pub async fn version(&self, url: &str) -> Result<String, EngineError> {
        let ping = self.get(url, "/_ping").await?;
        if let Some(version) = ping
            .header("server")
            .and_then(|s| s.strip_prefix("Docker/"))
            .and_then(|s| s.split_whitespace().next())
            .filter(|v| !v.is_empty())
        {
            return Ok(version.to_string());
        }
        let v = self.get_json(url, "/version").await?;
        v.get("Version")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EngineError::Protocol {
                addr: url.to_string(),
                detail: "no Version in /version".into(),
            })
    }
}

/// A 200 answer: its headers (names lower-cased) and its body (de-chunked).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of a header (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An I/O error's message without Rust's "(os error N)" suffix, e.g. "Connection refused".
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn tls_or_io(addr: &str, e: std::io::Error) -> EngineError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => EngineError::Tls(tls.to_string()),
        None => EngineError::Connect {
            addr: addr.to_string(),
            source: e,
        },
    }
}

/// Splits an HTTP/1.1 response; returns a 200 answer, or an error with the status and body.
pub fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let body = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("HTTP {status}: {}", text.trim()));
    }
    Ok(HttpResponse { headers, body })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_urls() {
        assert_eq!(
            parse_tcp_url("tcp://1.2.3.4:2376").unwrap(),
            ("1.2.3.4".into(), 2376)
        );
        assert_eq!(
            parse_tcp_url("tcp://[::1]:2376").unwrap(),
            ("::1".into(), 2376)
        );
        assert_eq!(
            parse_tcp_url("tcp://host.example:1/").unwrap(),
            ("host.example".into(), 1)
        );
        for bad in [
            "",
            "tcp://",
            "http://1.2.3.4:2376",
            "tcp://1.2.3.4",
            "tcp://:2376",
            "tcp://a:b",
        ] {
            assert!(parse_tcp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n\r\n{}";
        let r = parse_http_response(plain).unwrap();
        assert_eq!(r.body, b"{}");
        assert_eq!(r.header("server"), Some("Docker/20.10.24+dfsg1 (linux)"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(chunked).unwrap().body, b"{\"a\":1}");
        let err =
            parse_http_response(b"HTTP/1.1 400 Bad Request\r\n\r\nclient version 1.15 is too old")
                .unwrap_err();
        assert_eq!(err, "HTTP 400: client version 1.15 is too old");
        assert!(parse_http_response(b"garbage").is_err());
    }
}
