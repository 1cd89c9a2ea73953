//! The Docker Engine API over mutual TLS, as much as hoist needs: a TLS handshake (certificate
//! check), `GET /_ping` and `GET /version` — unversioned paths, which every daemon answers.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cert::CertPaths;

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

struct DaemonConnections {
    slots: Arc<Semaphore>,
    idle: Vec<TlsStream<TcpStream>>,
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

    fn take(&mut self, addr: &str) -> Option<TlsStream<TcpStream>> {
        let stream = self.by_addr.get_mut(addr)?.idle.pop()?;
        self.idle_count -= 1;
        Some(stream)
    }

    /// Keeps `stream` for reuse, or closes it (by dropping it) when the pool is full.
    fn put(&mut self, addr: &str, stream: TlsStream<TcpStream>) {
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

    /// Connects to `addr` (TCP, then a TLS handshake in an exchange slot, which the caller holds
    /// for the request that follows). A `GET get_path` request is queued before the handshake so
    /// that it leaves with the client's Finished message: one write and one read less for the
    /// client and the daemon.
    async fn connect(
        &self,
        host: &str,
        addr: &str,
        get_path: Option<&str>,
    ) -> Result<(TlsStream<TcpStream>, OwnedSemaphorePermit), EngineError> {
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
        let queue_request = |conn: &mut rustls::ClientConnection| {
            if let Some(path) = get_path {
                // Plaintext written before the handshake is buffered in memory: cannot fail.
                let _ = conn.writer().write_all(get_request(path, addr).as_bytes());
            }
        };
        let handshake = self.connector.connect_with(name, tcp, queue_request);
        let tls = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| self.timed_out(addr))?
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        Ok((tls, permit))
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
        let (host, addr) = host_and_addr(url)?;
        let slots = self.pool().slots(&addr);
        let _connection_slot = slots
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        let idle = self.pool().take(&addr);
        if let Some(mut stream) = idle {
            let _permit = self.exchange_slot().await?;
            let request = get_request(path, &addr);
            // An error here means the daemon closed the idle connection: a new one below.
            if let Ok(response) = self.round_trip(&mut stream, &addr, &request).await? {
                return self.answer(&addr, stream, response);
            }
        }
        let (mut stream, _permit) = self.connect(&host, &addr, Some(path)).await?;
        let response = self
            .round_trip(&mut stream, &addr, "")
            .await?
            .map_err(|e| tls_or_io(&addr, e))?;
        self.answer(&addr, stream, response)
    }

    /// Sends `request` (empty when it was queued with the handshake) and reads the answer, within
    /// the client's timeout.
    async fn round_trip(
        &self,
        stream: &mut TlsStream<TcpStream>,
        addr: &str,
        request: &str,
    ) -> Result<std::io::Result<(Vec<u8>, bool)>, EngineError> {
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            stream.flush().await?;
            read_response(stream).await
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out(addr))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, ConnectionPool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parses a complete answer, keeping the connection for reuse when the daemon allows it.
    fn answer(
        &self,
        addr: &str,
        stream: TlsStream<TcpStream>,
        (raw, reusable): (Vec<u8>, bool),
    ) -> Result<HttpResponse, EngineError> {
        if reusable {
            self.pool().put(addr, stream);
        }
        parse_http_response(&raw).map_err(|detail| EngineError::Protocol {
            addr: addr.to_string(),
            detail,
        })
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

/// An HTTP/1.1 `GET path` request to the daemon at `addr`.
fn get_request(path: &str, addr: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: hoist/{}\r\nAccept: application/json\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The most an answer's head may take (a daemon's is under 1 KiB).
const MAX_HEAD: usize = 16 << 10;
/// The most an answer's body may take (`/version` and `/_ping` answer a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// Reads one HTTP answer: until its framing says it is complete, or until the daemon closes the
/// connection. Returns the bytes and whether the connection can carry another request. An
/// answer over [`MAX_HEAD`] + [`MAX_BODY`] is an error, whatever the daemon claims.
async fn read_response(stream: &mut TlsStream<TcpStream>) -> std::io::Result<(Vec<u8>, bool)> {
    let mut raw = Vec::with_capacity(2048);
    let mut buf = [0u8; 4096];
    loop {
        let framing =
            response_framing(&raw).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
        if let Framing::Complete { len, reusable } = framing {
            let exact = raw.len() == len;
            return Ok((raw, reusable && exact));
        }
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // Daemons may close without a TLS close_notify.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return match framing {
                Framing::UntilClose => Ok((raw, false)),
                _ => Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the daemon closed the connection before a complete answer",
                )),
            };
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_HEAD + MAX_BODY {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "the daemon's answer is larger than any Docker API answer hoist reads",
            ));
        }
    }
}

/// Where an HTTP/1.1 answer ends, as far as `raw` shows.
#[derive(Debug, PartialEq)]
enum Framing {
    /// Not all of it yet.
    Incomplete,
    /// No length given: the answer ends when the connection does.
    UntilClose,
    /// The first `len` bytes; `reusable` when the connection stays open for another request.
    Complete { len: usize, reusable: bool },
}

fn response_framing(raw: &[u8]) -> Result<Framing, String> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        if raw.len() > MAX_HEAD {
            return Err(format!("an answer head over {MAX_HEAD} bytes"));
        }
        return Ok(Framing::Incomplete);
    };
    let head = parse_head(&raw[..head_end])?;
    let body_start = head_end + 4;
    let reusable = head.version == "HTTP/1.1"
        && !head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let complete = |len| Ok(Framing::Complete { len, reusable });
    if head.status / 100 == 1 || head.status == 204 || head.status == 304 {
        return complete(body_start);
    }
    if head.chunked() {
        return Ok(match dechunk(&raw[body_start..])? {
            Some((_, len)) => Framing::Complete {
                len: body_start + len,
                reusable,
            },
            None => Framing::Incomplete,
        });
    }
    match head.header("content-length") {
        Some(text) => {
            let len: usize = text
                .parse()
                .map_err(|_| format!("bad Content-Length {:?}", printable(text)))?;
            if len > MAX_BODY {
                return Err(format!("a body of {len} bytes (Content-Length)"));
            }
            if raw.len() >= body_start + len {
                complete(body_start + len)
            } else {
                Ok(Framing::Incomplete)
            }
        }
        None => Ok(Framing::UntilClose),
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

/// The status line and headers of an HTTP answer.
struct Head {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// Parses the head (everything before the empty line) of an HTTP answer.
fn parse_head(head: &[u8]) -> Result<Head, String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or("").to_string();
    let status = words
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/"))
        .ok_or_else(|| format!("bad status line {:?}", printable(status_line)))?;
    Ok(Head {
        version,
        status,
        headers,
    })
}

/// Splits an HTTP/1.1 response; returns a 200 answer, or an error with the status and body.
pub fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let head = parse_head(&raw[..head_end])?;
    let body = &raw[head_end + 4..];
    let body = if head.chunked() {
        dechunk(body)?.ok_or("truncated chunked body")?.0
    } else {
        body.to_vec()
    };
    if head.status != 200 {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("HTTP {}: {}", head.status, printable(text.trim())));
    }
    Ok(HttpResponse {
        headers: head.headers,
        body,
    })
}

/// Decodes a chunked body: its data and its length on the wire (trailers included), or `None`
/// while the body is incomplete.
fn dechunk(body: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let line = |from: usize| {
        body[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = line(at) else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .ok()
            .filter(|s| *s <= MAX_BODY)
            .ok_or_else(|| format!("bad chunk size {:?}", printable(&size_text)))?;
        at = line_end + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let Some(end) = line(at) else {
                    return Ok(None);
                };
                if end == at {
                    return Ok(Some((data, at + 2)));
                }
                at = end + 2;
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        if data.len() + size > MAX_BODY {
            return Err(format!("a chunked body over {MAX_BODY} bytes"));
        }
        data.extend_from_slice(&body[at..at + size]);
        at += size + 2;
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

    /// What a hostile daemon can send: absurd chunk sizes and lengths, escape sequences.
    #[test]
    fn hostile_answers_are_errors_without_panics_or_huge_buffers() {
        let huge_chunk =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\nab\r\n";
        assert!(response_framing(huge_chunk).is_err());
        assert!(parse_http_response(huge_chunk).is_err());
        let huge_length = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nx";
        assert!(
            response_framing(huge_length)
                .unwrap_err()
                .contains("100000000000")
        );
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.resize(MAX_HEAD + 10, b'a');
        assert!(response_framing(&long_head).is_err());
        let escapes =
            b"HTTP/1.1 500 Oops\r\nContent-Length: 24\r\n\r\n\x1b]0;pwned\x07\x1b[31mred\x1b[0m!";
        let err = parse_http_response(escapes).unwrap_err();
        assert!(!err.chars().any(|c| c.is_control()), "{err:?}");
        assert_eq!(err, "HTTP 500: ]0;pwned[31mred[0m!");
    }

    /// A bounded fuzz run over the response parser (it runs with the tests, in CI): mutations
    /// of real answers and random bytes never panic, and what parses stays within the caps.
    #[test]
    fn fuzz_the_response_parser() {
        let seeds: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nServer: Docker/24.0.7 (linux)\r\n\r\n{\"Version\":\"1\"}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0;x=y\r\nT: v\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\nno such thing",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let started = std::time::Instant::now();
        let mut runs = 0u64;
        while runs < 300_000 && started.elapsed() < Duration::from_secs(5) {
            let mut input = seeds[(next() % 4) as usize].to_vec();
            for _ in 0..=(next() % 6) {
                let at = (next() as usize) % (input.len() + 1);
                match next() % 6 {
                    0 => input.insert(at, next() as u8),
                    1 if at < input.len() => input[at] = next() as u8,
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    3 => input
                        .splice(at..at, b"ffffffffffffffff".iter().copied())
                        .for_each(drop),
                    4 => input.splice(at..at, b"\r\n".iter().copied()).for_each(drop),
                    _ => input.truncate(at),
                }
            }
            if let Ok(Framing::Complete { len, .. }) = response_framing(&input) {
                assert!(len <= input.len());
            }
            if let Ok(answer) = parse_http_response(&input) {
                assert!(answer.body.len() <= input.len());
            }
            let _ = dechunk(&input);
            runs += 1;
        }
        eprintln!(
            "fuzzed the response parser: {runs} runs in {:?}",
            started.elapsed()
        );
        assert!(runs >= 10_000, "only {runs} runs");
    }

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

    #[test]
    fn http_framing() {
        let complete = |len, reusable| Ok(Framing::Complete { len, reusable });
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(response_framing(ok), complete(ok.len(), true));
        assert_eq!(
            response_framing(&ok[..ok.len() - 1]),
            Ok(Framing::Incomplete)
        );
        assert_eq!(response_framing(&ok[..10]), Ok(Framing::Incomplete));
        assert_eq!(response_framing(b""), Ok(Framing::Incomplete));
        let close = b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(response_framing(close), complete(close.len(), false));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(response_framing(old), complete(old.len(), false));
        let no_length = b"HTTP/1.1 200 OK\r\n\r\nsome";
        assert_eq!(response_framing(no_length), Ok(Framing::UntilClose));
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            response_framing(no_content),
            complete(no_content.len(), true)
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(response_framing(chunked), complete(chunked.len(), true));
        for cut in 1..30 {
            let part = &chunked[..chunked.len() - cut];
            assert_eq!(response_framing(part), Ok(Framing::Incomplete), "{cut}");
        }
        let trailers =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(response_framing(trailers), complete(trailers.len(), true));
        // Bytes after the answer: its length, so the caller sees them and does not reuse.
        let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKjunk";
        assert_eq!(response_framing(extra), complete(extra.len() - 4, true));
        assert!(response_framing(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(response_framing(b"garbage\r\n\r\n").is_err());
        // A malformed chunk size is an error at once, not a wait for more bytes.
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            response_framing(bad_chunk),
            Err("bad chunk size \"zz\"".to_string())
        );
    }
}
