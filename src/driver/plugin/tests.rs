//! The plugin client's decisions, without Go: plugin binaries are shell scripts that print what
//! a plugin prints, and the net/rpc server they name is a stand-in in this process that speaks
//! gob with hoist's own codec (the Go plugin of tests/labplug checks the codec against Go's).

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::gob::{Decoder, Encoder, Type, Value};
use super::*;
use crate::report::Recorder;

/// What the stand-in server answers to a call: a reply of a type, or an error string.
type Answer = Result<(Type, Value), String>;

/// A net/rpc server over HTTP on 127.0.0.1 that answers calls with `answer(method)` and keeps
/// the methods it was called with; `Err("close")` ends the connection instead of answering.
fn serve(
    answer: impl Fn(&str) -> Answer + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\n\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"CONNECT /_goRPC_ HTTP/1.0"), "{head:?}");
        stream
            .write_all(b"HTTP/1.0 200 Connected to Go RPC\n\n")
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut decoder = Decoder::new(BufReader::new(stream));
        let mut encoder = Encoder::new();
        let response = Type::structure(
            "Response",
            &[
                ("ServiceMethod", Type::String),
                ("Seq", Type::Uint),
                ("Error", Type::String),
            ],
        );
        while let (Ok(header), Ok(_)) = (decoder.decode(), decoder.decode()) {
            let method = header
                .field("ServiceMethod")
                .map(Value::as_str)
                .unwrap_or("")
                .to_string();
            let seq = header.field("Seq").and_then(Value::as_int).unwrap_or(0) as u64;
            seen.lock().unwrap().push(method.clone());
            let (error, (ty, reply)) = match answer(&method) {
                Ok(reply) => (String::new(), reply),
                Err(e) if e == "close" => return,
                Err(e) => (
                    e,
                    (Type::structure("struct {}", &[]), Value::Struct(vec![])),
                ),
            };
            let header = Value::Struct(vec![
                ("ServiceMethod".into(), Value::String(method)),
                ("Seq".into(), Value::Uint(seq)),
                ("Error".into(), Value::String(error)),
            ]);
            let mut bytes = encoder.encode(&response, &header).unwrap();
            bytes.extend(encoder.encode(&ty, &reply).unwrap());
            if writer.write_all(&bytes).is_err() {
                return;
            }
        }
    });
    (addr, calls)
}

/// A plugin binary: a shell script with `body`, in `dir`.
fn plugin(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("docker-machine-driver-stand-in");
    crate::fsutil::write_sh_script(&path, body);
    path
}

/// A plugin that prints `addr` and stays until it is ended.
fn plugin_at(dir: &Path, addr: SocketAddr) -> PathBuf {
    plugin(dir, &format!("echo {addr}\nexec sleep 60"))
}

fn int(i: i64) -> (Type, Value) {
    (Type::Int, Value::Int(i))
}

fn string(s: &str) -> (Type, Value) {
    (Type::String, Value::String(s.into()))
}

/// Answers as a plugin of `service` at API `version` whose machine is stopped.
fn stopped_plugin(service: &'static str, version: i64) -> impl Fn(&str) -> Answer {
    move |method| {
        let (asked, call) = method.split_once('.').unwrap();
        if asked != service {
            return Err(format!("rpc: can't find service {method}"));
        }
        match call {
            "GetVersion" => Ok(int(version)),
            "GetMachineName" => Ok(string("m")),
            "GetURL" => Ok(string("")),
            "GetState" => Ok(int(4)),
            _ => Ok(empty()),
        }
    }
}

async fn open_at(path: &Path) -> Result<Box<dyn Driver>, DriverError> {
    let env = DriverEnv::new("m", Arc::new(Recorder::default()));
    let config: Map<String, Json> = serde_json::from_str(r#"{"MachineName": "m"}"#).unwrap();
    open_binary(path, "stand-in", &config, &env).await
}

/// The calls but the heartbeats, and whether a heartbeat came.
fn calls_and_heartbeat(calls: &Mutex<Vec<String>>) -> (Vec<String>, bool) {
    let calls = calls.lock().unwrap().clone();
    let beat = calls.iter().any(|c| c.ends_with(".Heartbeat"));
    (
        calls
            .into_iter()
            .filter(|c| !c.ends_with(".Heartbeat"))
            .collect(),
        beat,
    )
}

#[tokio::test]
async fn a_plugin_is_opened_as_libmachine_opens_it_and_kept_alive_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, calls) = serve(stopped_plugin("RPCServerDriver", 1));
    let driver = open_at(&plugin_at(dir.path(), addr)).await.unwrap();
    assert_eq!(driver.state().await.unwrap(), State::Stopped);
    // The first heartbeat within 3 s, not after the 5 s interval: the plugin's 10 s began when
    // it printed its address.
    let opened = tokio::time::Instant::now();
    while !calls_and_heartbeat(&calls).1 && opened.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (calls, beat) = calls_and_heartbeat(&calls);
    assert!(beat, "no heartbeat right after GetVersion: {calls:?}");
    assert_eq!(
        calls,
        [
            "RPCServerDriver.GetVersion",
            "RPCServerDriver.SetConfigRaw",
            "RPCServerDriver.GetMachineName",
            "RPCServerDriver.GetState"
        ]
    );
}

#[tokio::test]
async fn a_plugin_older_than_0_5_1_is_spoken_to_as_rpcserverdriver() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, calls) = serve(stopped_plugin("RpcServerDriver", 1));
    let driver = open_at(&plugin_at(dir.path(), addr)).await.unwrap();
    assert_eq!(driver.state().await.unwrap(), State::Stopped);
    let (calls, _) = calls_and_heartbeat(&calls);
    assert_eq!(
        calls[..2],
        ["RPCServerDriver.GetVersion", "RpcServerDriver.GetVersion"]
    );
    assert!(
        calls[2..].iter().all(|c| c.starts_with("RpcServerDriver.")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn another_api_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = serve(stopped_plugin("RPCServerDriver", 2));
    let err = open_at(&plugin_at(dir.path(), addr)).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        "Driver binary uses an incompatible API version (2)"
    );
}

#[tokio::test]
async fn what_a_plugin_prints_instead_of_a_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin(dir.path(), "echo 192.0.2.1:4444\nexec sleep 60");
    let err = open_at(&path).await.err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "the plugin {} listens on 192.0.2.1:4444, which is not a loopback address; refusing to connect",
            path.display()
        )
    );
    let path = plugin(dir.path(), "echo 'ready!'\nexec sleep 60");
    let err = open_at(&path).await.err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "the plugin {} printed \"ready!\" where its address (HOST:PORT) belongs",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_plugin_that_exits_first_is_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin(dir.path(), "echo 'no credentials found' >&2\nexit 3");
    let err = open_at(&path).await.err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "the plugin {} exited before printing its address (exit status: 3); its last words: no credentials found",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_plugin_that_ends_mid_call_says_which_call_and_its_last_words() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = serve(|method| match method {
        "RPCServerDriver.GetState" => Err("close".into()),
        other => stopped_plugin("RPCServerDriver", 1)(other),
    });
    let path = plugin(
        dir.path(),
        &format!("echo {addr}\necho 'out of cheese' >&2\nexec sleep 60"),
    );
    let driver = open_at(&path).await.unwrap();
    let err = driver.state().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "the plugin {} failed during GetState: the plugin closed the connection; its last words: out of cheese",
            path.display()
        )
    );
}
