//! The Docker Engine API over mutual TLS, as much as hoist needs: `GET /_ping` and
//! `GET /version` — unversioned paths, which every daemon answers — and, in [`swarm`], the
//! swarm, node and info endpoints.
//!
//! HTTP/1.1 is hyper's (`client::conn::http1`, a maintained and fuzzed implementation) over the
//! TLS streams hoist opens itself; hoist keeps its own pool of kept-alive connections per daemon,
//! and caps what it reads of an answer (8 KiB of head, 1 MiB of body): a compromised machine
//! holds a valid certificate, and its daemon's answers are not trusted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use crate::cert::CertPaths;

/// Where hoist's systemd drop-in for dockerd goes on a host (written by provisioning; the qemu
/// driver's first boot keeps Docker waiting for it). Here, below both, so that drivers may name it.
pub const HOST_DROPIN_PATH: &str = "/etc/systemd/system/docker.service.d/10-machine.conf";

pub mod swarm;

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
    /// The daemon answered with an error status; `message` is its own words.
    #[error("{addr}: unexpected answer from the Docker daemon: HTTP {status}: {message}")]
    Refused {
        addr: String,
        status: u16,
        message: String,
    },
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

/// A client for the daemons of a store; its TLS configuration is built once and shared, and
/// so are its idle connections: a later request to the same daemon reuses one (HTTP keep-alive)
/// instead of making a new TLS handshake.
#[derive(Clone)]
pub struct EngineClient {
    connector: TlsConnector,
    timeout: Duration,
    exchanges: Arc<Semaphore>,
    pool: Arc<Mutex<ConnectionPool>>,
}

/// How many TLS exchanges (handshake and request, the CPU-bound part) run at once by default;
/// waiting for a TCP connection takes no slot.
pub const CONCURRENT_EXCHANGES: usize = 16;

/// The most an answer's head may take (a daemon's is under 1 KiB): hyper's smallest buffer.
const MAX_HEAD: usize = 8 << 10;
/// The most an answer's body may take (`/version` and `/_ping` answer a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// How many connections a client opens to one daemon at once (records sharing a URL are served
/// one after another over them).
const CONNECTIONS_PER_DAEMON: usize = 4;

/// How many idle connections a client keeps open for reuse, over all daemons.
const MAX_IDLE_CONNECTIONS: usize = 2 * CONCURRENT_EXCHANGES;

/// Connections by daemon address: a bound on how many are open at once, and the idle ones.
#[derive(Default)]
struct ConnectionPool {
    by_addr: HashMap<String, DaemonConnections>,
    idle_count: usize,
}

/// A kept-alive HTTP/1.1 connection to a daemon.
type Connection = SendRequest<Full<Bytes>>;

struct DaemonConnections {
    slots: Arc<Semaphore>,
    idle: Vec<Connection>,
}

impl ConnectionPool {
    /// The slots for connections to `addr`.
    fn slots(&mut self, addr: &str) -> Arc<Semaphore> {
        let daemon = self
            .by_addr
            .entry(addr.to_string())
            .or_insert_with(|| DaemonConnections {
                slots: Arc::new(Semaphore::new(CONNECTIONS_PER_DAEMON)),
                idle: Vec::new(),
            });
        daemon.slots.clone()
    }

    fn take(&mut self, addr: &str) -> Option<Connection> {
        let stream = self.by_addr.get_mut(addr)?.idle.pop()?;
        self.idle_count -= 1;
        Some(stream)
    }

    /// Keeps `stream` for reuse, or closes it (by dropping it) when the pool is full.
    fn put(&mut self, addr: &str, stream: Connection) {
        if let Some(daemon) = self.by_addr.get_mut(addr)
            && self.idle_count < MAX_IDLE_CONNECTIONS
        {
            daemon.idle.push(stream);
            self.idle_count += 1;
        }
    }
}

impl EngineClient {
    /// A client presenting the store's client certificate and trusting only its CA.
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> EngineClient {
        EngineClient {
            connector: TlsConnector::from(tls),
            timeout,
            exchanges: Arc::new(Semaphore::new(CONCURRENT_EXCHANGES)),
            pool: Default::default(),
        }
    }

    /// The same client (its TLS configuration and connections) with another timeout.
    pub fn with_timeout(&self, timeout: Duration) -> EngineClient {
        EngineClient {
            timeout,
            ..self.clone()
        }
    }

    /// The same client sharing `exchanges` with others (one bound for a whole `ls`).
    pub fn with_exchange_limit(mut self, exchanges: Arc<Semaphore>) -> EngineClient {
        self.exchanges = exchanges;
        self
    }

    fn timed_out(&self, addr: &str) -> EngineError {
        EngineError::Timeout {
            addr: addr.to_string(),
            secs: self.timeout.as_secs_f64(),
        }
    }

    async fn exchange_slot(&self) -> Result<OwnedSemaphorePermit, EngineError> {
        self.exchanges
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Tls(e.to_string()))
    }

    /// Connects to `addr`: TCP, then the TLS handshake in an exchange slot (which the caller
    /// holds for the request that follows), then HTTP/1.1 over it, its connection driven by a
    /// task of its own until the daemon or hoist closes it.
    async fn connect(
        &self,
        host: &str,
        addr: &str,
    ) -> Result<(Connection, OwnedSemaphorePermit), EngineError> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| self.timed_out(addr))?
            .map_err(|source| EngineError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| EngineError::Tls(format!("{host}: {e}")))?;
        let permit = self.exchange_slot().await?;
        let connecting = async {
            let tls = self
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| EngineError::Tls(e.to_string()))?;
            let (sender, connection) = hyper::client::conn::http1::Builder::new()
                .max_buf_size(MAX_HEAD)
                .handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| http_error(addr, e))?;
            tokio::spawn(connection);
            Ok(sender)
        };
        let sender = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| self.timed_out(addr))??;
        Ok((sender, permit))
    }

    /// One TLS handshake with client authentication and a `GET /_ping` over it: proves the
    /// daemon's certificate is signed by the CA and valid for the host, and that the daemon
    /// accepts the client certificate (under TLS 1.3 the client's side of the handshake ends
    /// before the server has judged its certificate: only an answer proves it). What `env` and
    /// `config` check.
    pub async fn check_tls(&self, url: &str) -> Result<(), EngineError> {
        self.get(url, "/_ping").await.map(|_| ())
    }

    /// `GET path`: the headers and body of a 200 answer. Reuses an idle connection to the same
    /// daemon when there is one (a new one if the daemon has closed it meanwhile).
    pub async fn get(&self, url: &str, path: &str) -> Result<HttpResponse, EngineError> {
        self.request(Method::GET, url, path, None).await
    }

    /// `POST path` with a JSON body (or none): the answer of a 2xx status.
    pub async fn post(
        &self,
        url: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, EngineError> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.request(Method::POST, url, path, body).await
    }

    /// `DELETE path`: the answer of a 2xx status.
    pub async fn delete(&self, url: &str, path: &str) -> Result<HttpResponse, EngineError> {
        self.request(Method::DELETE, url, path, None).await
    }

    /// One request and its 2xx answer. A `GET` may go over an idle connection (retried on a new
    /// one when the daemon had closed it); any other method, which must not be sent twice, always
    /// opens a new connection.
    async fn request(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, EngineError> {
        let (host, addr) = host_and_addr(url)?;
        let slots = self.pool().slots(&addr);
        let _connection_slot = slots
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        if method == Method::GET {
            let idle = self.pool().take(&addr);
            if let Some(mut sender) = idle.filter(|s| !s.is_closed()) {
                let _permit = self.exchange_slot().await?;
                // An error here means the daemon closed the idle connection: a new one below.
                if sender.ready().await.is_ok()
                    && let Ok(answer) = self
                        .round_trip(&mut sender, &addr, Method::GET, path, None)
                        .await
                {
                    return self.answer(&addr, sender, answer);
                }
            }
        }
        let (mut sender, _permit) = self.connect(&host, &addr).await?;
        let answer = self
            .round_trip(&mut sender, &addr, method, path, body)
            .await?;
        self.answer(&addr, sender, answer)
    }

    /// Sends the request and reads the whole answer (its body up to [`MAX_BODY`]), within the
    /// client's timeout.
    async fn round_trip(
        &self,
        sender: &mut Connection,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), EngineError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr)
            .header(
                hyper::header::USER_AGENT,
                concat!("hoist/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| EngineError::Protocol {
                addr: addr.to_string(),
                detail: e.to_string(),
            })?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| http_error(addr, e))?;
            let status = response.status().as_u16();
            let claimed = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if claimed.is_some_and(|len| len > MAX_BODY as u64) {
                return Err(EngineError::Protocol {
                    addr: addr.to_string(),
                    detail: format!(
                        "an answer of {} bytes (Content-Length), more than any Docker API answer hoist reads",
                        claimed.unwrap_or_default()
                    ),
                });
            }
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        printable(&String::from_utf8_lossy(v.as_bytes())),
                    )
                })
                .collect();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| EngineError::Protocol {
                    addr: addr.to_string(),
                    detail: match e.downcast_ref::<http_body_util::LengthLimitError>() {
                        Some(_) => format!(
                            "an answer body of more than {} KiB, more than any Docker API answer hoist reads",
                            MAX_BODY >> 10
                        ),
                        None => format!("reading the answer: {e}"),
                    },
                })?
                .to_bytes()
                .to_vec();
            Ok((status, headers, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out(addr))?
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, ConnectionPool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A 2xx answer, keeping the connection for reuse; any other status is an error with the
    /// daemon's words (the `message` of its JSON error), fit for a terminal.
    fn answer(
        &self,
        addr: &str,
        sender: Connection,
        (status, headers, body): (u16, Vec<(String, String)>, Vec<u8>),
    ) -> Result<HttpResponse, EngineError> {
        self.pool().put(addr, sender);
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).to_string());
            return Err(EngineError::Refused {
                addr: addr.to_string(),
                status,
                message: printable(message.trim()),
            });
        }
        Ok(HttpResponse { headers, body })
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

/// The host of a `tcp://host:port` URL and the `host:port` address to connect to (`[v6]:port`).
fn host_and_addr(url: &str) -> Result<(String, String), EngineError> {
    let (host, port) = parse_tcp_url(url)?;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((host, addr))
}

/// hyper's error as hoist says it: a TLS failure (a certificate the daemon refused) by its own
/// words, anything else as an answer that makes no sense.
fn http_error(addr: &str, e: hyper::Error) -> EngineError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(inner) = source {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return EngineError::Tls(tls.to_string());
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return EngineError::Tls(tls.to_string());
        }
        source = inner.source();
    }
    let detail = match e.is_parse() && e.to_string().contains("too large") {
        true => format!(
            "an answer head (status line and headers) of more than {} KiB, more than any Docker API answer has",
            MAX_HEAD >> 10
        ),
        false => printable(&e.to_string()),
    };
    EngineError::Protocol {
        addr: addr.to_string(),
        detail,
    }
}

/// A 200 answer: its headers (names lower-cased) and its body.
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

/// What a daemon said, fit for a terminal: control characters (escape sequences) dropped, at
/// most 300 characters.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.chars().filter(|c| !c.is_control()).count() > 300 {
        out.push('…');
    }
    out
}

/// A client for one set of certificate paths, or why it could not be built.
pub type ClientOrError = std::result::Result<EngineClient, String>;

/// Clients, one per distinct set of certificate paths (normally one for the whole store),
/// sharing one bound on concurrent TLS exchanges.
pub struct ClientCache {
    by_paths: std::sync::Mutex<HashMap<(PathBuf, PathBuf, PathBuf), ClientOrError>>,
    exchanges: Arc<Semaphore>,
}

impl Default for ClientCache {
    fn default() -> Self {
        ClientCache {
            by_paths: Default::default(),
            exchanges: Arc::new(Semaphore::new(CONCURRENT_EXCHANGES)),
        }
    }
}

impl ClientCache {
    /// The client for a machine's certificate paths (built on first use).
    pub fn for_paths(&self, paths: &CertPaths) -> ClientOrError {
        let key = (
            paths.ca_cert.clone(),
            paths.client_cert.clone(),
            paths.client_key.clone(),
        );
        let mut map = self.by_paths.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                crate::cert::client_config(paths)
                    .map(|tls| {
                        EngineClient::new(tls, Duration::from_secs(30))
                            .with_exchange_limit(self.exchanges.clone())
                    })
                    .map_err(|e| e.to_string())
            })
            .clone()
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
}
