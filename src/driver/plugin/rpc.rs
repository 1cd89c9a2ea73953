//! A client of Go's `net/rpc` over HTTP with the gob codec (`rpc.DialHTTP`): `CONNECT /_goRPC_`,
//! then a request header `{ServiceMethod, Seq}` and the argument for each call, and a response
//! header `{ServiceMethod, Seq, Error}` and the reply for each answer. Calls are multiplexed by
//! sequence number, so a heartbeat goes through while a long `Create` is under way.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::gob::{Decoder, Encoder, GobError, Type, Value};

/// What a call can end with besides its reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The server's error string for this call.
    #[error("{0}")]
    Remote(String),
    /// The connection failed or was closed; no answer will come.
    #[error("{0}")]
    Closed(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>>;

/// A connection to a net/rpc server.
pub struct RpcClient {
    stream: TcpStream,
    writer: Mutex<(TcpStream, Encoder)>,
    pending: Pending,
    closed: Arc<Mutex<Option<String>>>,
    seq: AtomicU64,
    shut: AtomicBool,
}

fn request_type() -> Type {
    Type::structure(
        "Request",
        &[("ServiceMethod", Type::String), ("Seq", Type::Uint)],
    )
}

/// The HTTP handshake of `rpc.DialHTTP`: the server answers `HTTP/1.0 200 Connected to Go RPC`.
fn handshake(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"CONNECT /_goRPC_ HTTP/1.0\n\n")
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\n\n") && !head.ends_with(b"\r\n\r\n") {
        if head.len() > 1024 {
            return Err("the plugin's HTTP answer is too long".into());
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err("the plugin closed the connection".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let status = String::from_utf8_lossy(&head);
    let first = status.lines().next().unwrap_or("");
    if first.split_once(' ').map(|(_, s)| s.trim()) != Some("200 Connected to Go RPC") {
        return Err(format!("unexpected HTTP response {first:?}"));
    }
    Ok(())
}

impl RpcClient {
    /// Connects to a net/rpc HTTP server at `addr`, within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<RpcClient, String> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        handshake(&mut stream)?;
        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
        let reader = stream.try_clone().map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let pending: Pending = Arc::default();
        let closed: Arc<Mutex<Option<String>>> = Arc::default();
        let (p, c) = (pending.clone(), closed.clone());
        std::thread::Builder::new()
            .name("plugin-rpc".into())
            .spawn(move || read_responses(reader, p, c))
            .map_err(|e| e.to_string())?;
        Ok(RpcClient {
            stream,
            writer: Mutex::new((writer, Encoder::new())),
            pending,
            closed,
            seq: AtomicU64::new(0),
            shut: AtomicBool::new(false),
        })
    }

    /// Calls `method` (`Service.Method`) with an argument of type `ty`; the reply, or the
    /// server's error.
    pub async fn call(&self, method: &str, ty: &Type, arg: &Value) -> Result<Value, RpcError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(seq, tx);
        if let Some(reason) = lock(&self.closed).clone() {
            lock(&self.pending).remove(&seq);
            return Err(RpcError::Closed(reason));
        }
        let sent = {
            let mut w = lock(&self.writer);
            let (stream, enc) = &mut *w;
            let header = Value::Struct(vec![
                ("ServiceMethod".into(), Value::String(method.into())),
                ("Seq".into(), Value::Uint(seq)),
            ]);
            enc.encode(&request_type(), &header)
                .and_then(|mut bytes| {
                    bytes.extend(enc.encode(ty, arg)?);
                    Ok(bytes)
                })
                .map_err(|e| e.to_string())
                .and_then(|bytes| stream.write_all(&bytes).map_err(|e| e.to_string()))
        };
        if let Err(e) = sent {
            lock(&self.pending).remove(&seq);
            return Err(RpcError::Closed(format!("cannot send {method}: {e}")));
        }
        rx.await
            .unwrap_or_else(|_| Err(RpcError::Closed("the plugin connection closed".into())))
    }

    /// Closes the connection; calls still waiting end with an error.
    pub fn shutdown(&self) {
        if !self.shut.swap(true, Ordering::SeqCst) {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads answers until the connection ends, handing each to the call waiting for it.
fn read_responses(stream: TcpStream, pending: Pending, closed: Arc<Mutex<Option<String>>>) {
    let mut dec = Decoder::new(BufReader::new(stream));
    let reason = loop {
        let header = match dec.decode() {
            Ok(h) => h,
            Err(GobError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "the plugin closed the connection".to_string();
            }
            Err(e) => break format!("reading the plugin's answer: {e}"),
        };
        // The body follows every header: the reply, or an empty struct after an error.
        let body = match dec.decode() {
            Ok(b) => b,
            Err(e) => break format!("reading the plugin's answer: {e}"),
        };
        let Some(seq) = header.field("Seq").and_then(Value::as_int) else {
            // Seq 0 is left out as a zero value.
            deliver(&pending, 0, &header, body);
            continue;
        };
        deliver(&pending, seq as u64, &header, body);
    };
    *lock(&closed) = Some(reason.clone());
    for (_, tx) in lock(&pending).drain() {
        let _ = tx.send(Err(RpcError::Closed(reason.clone())));
    }
}

fn deliver(pending: &Pending, seq: u64, header: &Value, body: Value) {
    let error = header.field("Error").map(Value::as_str).unwrap_or("");
    let result = if error.is_empty() {
        Ok(body)
    } else {
        Err(RpcError::Remote(error.to_string()))
    };
    if let Some(tx) = lock(pending).remove(&seq) {
        let _ = tx.send(result);
    }
}
