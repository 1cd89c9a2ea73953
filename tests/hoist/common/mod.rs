//! Helpers of the CLI tests: a sandboxed store, the built binary, and a TLS daemon on loopback
//! that demands the store's client certificate, as dockerd with `--tlsverify` does.

pub mod bounded;
pub mod lab;
pub mod plugin;

pub use bounded::{Bounded, Watched, eventually, finish, while_running};

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use hoist::cert::{self, CertPaths};
use hoist::store::Store;

/// The built `hoist` binary.
pub fn hoist_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoist"))
}

/// A temporary store and a clean environment to run hoist in.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert(
            "HOME".into(),
            dir.path().join("home").to_string_lossy().into(),
        );
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        env.insert("USER".into(), "tester".into());
        env.insert("SHELL".into(), "/bin/bash".into());
        env.insert(
            "MACHINE_STORAGE_PATH".into(),
            dir.path().join("store").to_string_lossy().into(),
        );
        Sandbox { dir, env }
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn store(&self) -> Store {
        Store::new(self.store_path())
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().envs(&self.env);
        cmd
    }

    /// Runs hoist with `args` and no input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(&hoist_bin(), args)
            .stdin(Stdio::null())
            .output_bounded()
    }

    /// Runs hoist invoked under another name (a symlink), as `docker-machine`.
    pub fn run_as(&self, name: &str, args: &[&str]) -> Output {
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let link = bin.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(hoist_bin(), &link).unwrap();
        }
        let mut cmd = self.command(Path::new(name), args);
        cmd.env("PATH", format!("{}:{}", bin.display(), self.env["PATH"]));
        cmd.stdin(Stdio::null()).output_bounded()
    }

    /// Starts hoist in the background; `capture` keeps its output for `wait_with_output`.
    pub fn spawn(&self, args: &[&str], capture: bool) -> std::process::Child {
        let out = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        self.command(&hoist_bin(), args)
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out())
            .spawn()
            .unwrap()
    }

    /// Runs hoist with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(&hoist_bin(), args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        finish(child)
    }

    /// Runs hoist and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ok(&out, &format!("hoist {args:?}"));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs hoist and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "hoist {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Every file of the store with its content, to prove a failed command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let root = self.store_path();
        fn walk(dir: &Path, root: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                if rel.starts_with(".hoist") {
                    continue;
                }
                if p.is_dir() {
                    files.insert(format!("{rel}/"), vec![]);
                    walk(&p, root, files);
                } else {
                    files.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        walk(&root, &root, &mut files);
        files
    }

    /// Runs hoist with `args` and returns its output and peak resident memory in KiB, as GNU
    /// time reports it. (The rusage of a child of the test process would count the test
    /// process's own peak: Linux keeps the high-water mark of the memory a process had before
    /// exec, and a spawned child has the test process's.)
    pub fn run_peak_memory(&self, args: &[&str]) -> (Output, i64) {
        let report = tempfile::NamedTempFile::new().unwrap();
        let mut time_args = vec!["-f", "%M", "-o", report.path().to_str().unwrap()];
        let hoist = hoist_bin();
        time_args.push(hoist.to_str().unwrap());
        time_args.extend(args);
        let out = self
            .command(Path::new("/usr/bin/time"), &time_args)
            .stdin(Stdio::null())
            .output_bounded();
        let kib = fs::read_to_string(report.path()).unwrap();
        let kib = kib
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GNU time said {kib:?}"));
        (out, kib)
    }

    /// Runs hoist with `args`, killed with SIGKILL just before the `n`th rename(2) it makes
    /// (tests/fixtures/kill-at-rename.c, preloaded); false when it made fewer and ended by itself.
    fn run_killed_at_rename(&self, args: &[&str], n: usize) -> bool {
        let out = self
            .command(&hoist_bin(), args)
            .env("LD_PRELOAD", kill_at_rename_shim())
            .env("HOIST_TEST_KILL_AT_RENAME", n.to_string())
            .stdin(Stdio::null())
            .output_bounded();
        use std::os::unix::process::ExitStatusExt;
        out.status.signal() == Some(libc::SIGKILL)
    }

    /// Runs `args` killed before its 1st rename, then its 2nd, and so on until a run makes fewer
    /// renames and ends by itself; `before_each` sets the store up for a run and `after_kill(n)`
    /// checks what the kill before the `n`th left. Returns how many places were killed.
    pub fn kill_at_each_rename(
        &self,
        args: &[&str],
        mut before_each: impl FnMut(),
        mut after_kill: impl FnMut(usize),
    ) -> usize {
        for n in 1..500 {
            before_each();
            if !self.run_killed_at_rename(args, n) {
                return n - 1;
            }
            after_kill(n);
        }
        panic!("{args:?} made 500 renames and went on");
    }

    /// Creates a `none` machine.
    pub fn create_none(&self, name: &str, url: &str) {
        self.ok(&["create", "-d", "none", "--url", url, name]);
    }
}

/// Copies the directory `src` to `dst`, files with their permissions.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// The shim of tests/fixtures/kill-at-rename.c, compiled once per test process.
fn kill_at_rename_shim() -> &'static Path {
    static SHIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kill-at-rename.c");
        let shim = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("kill-at-rename-{}.so", std::process::id()));
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&shim)
            .arg(&src)
            .output_bounded();
        assert!(
            out.status.success(),
            "cc {}: {}",
            src.display(),
            stderr(&out)
        );
        shim
    })
}

/// Turns a new `none` machine into a generic one whose SSH endpoint is `root@127.0.0.1:port`, its
/// host key pinned: on a closed port every tool's connection is refused, but an operand taken for
/// an option (`-oProxyCommand=…`) runs before that.
pub fn generic_record(sb: &Sandbox, name: &str, port: u16) {
    sb.create_none(name, "tcp://127.0.0.1:1");
    let config = sb.store_path().join(format!("machines/{name}/config.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    record["DriverName"] = "generic".into();
    record["Driver"]["IPAddress"] = "127.0.0.1".into();
    record["Driver"]["SSHPort"] = port.into();
    record["Driver"]["SSHUser"] = "root".into();
    record["Hoist"]["SSHHostKey"] =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMcSmA0YcjppB+b6swNc/I0WmYcCKGVxZr4xLF/dcPh".into();
    fs::write(&config, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

/// Runs a bash script as [`shell`] does; panics unless it succeeds; its stdout.
pub fn shell_ok(sb: &Sandbox, script: &str) -> String {
    let out = shell(sb, script);
    assert!(
        out.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a bash script with the sandbox's environment and hoist on the PATH as `hoist`.
pub fn shell(sb: &Sandbox, script: &str) -> Output {
    let bin = sb.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let link = bin.join("hoist");
    if !link.exists() {
        std::os::unix::fs::symlink(hoist_bin(), &link).unwrap();
    }
    Command::new("bash")
        .args(["-c", script])
        .env_clear()
        .envs(&sb.env)
        .env("PATH", format!("{}:{}", bin.display(), sb.env["PATH"]))
        .output_bounded()
}

/// A port on 127.0.0.1 that nothing listens on, and nothing else can take while the tests run:
/// it stays bound (without `listen`, so a connection is refused) for the whole test process. A
/// port bound and dropped could be taken by another test binding port 0 meanwhile.
pub fn closed_port() -> u16 {
    use std::os::fd::{FromRawFd, OwnedFd};
    static HELD: std::sync::Mutex<Vec<OwnedFd>> = std::sync::Mutex::new(Vec::new());
    // SAFETY: plain socket calls on a descriptor owned below.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let owned = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0,
            "bind"
        );
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut bound_len = len;
        assert_eq!(
            libc::getsockname(
                fd,
                &mut bound as *mut _ as *mut libc::sockaddr,
                &mut bound_len
            ),
            0
        );
        HELD.lock().unwrap().push(owned);
        u16::from_be(bound.sin_port)
    }
}

/// A `tcp://` URL on a [`closed_port`].
pub fn closed_url() -> String {
    format!("tcp://127.0.0.1:{}", closed_port())
}

/// How the fake daemon answers.
#[derive(Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// Mutual TLS, then every `GET` answers `{"Version": version}`, many per connection
    /// (keep-alive, like dockerd).
    Answer,
    /// As `Answer`, but closes the connection after each answer without saying so in it.
    AnswerOnce,
    /// Accepts TCP connections and never says anything.
    Hang,
    /// Mutual TLS, then answers every request with these bytes, as a hostile daemon would.
    Raw(&'static [u8]),
    /// Mutual TLS, then answers the first request with a random mutation of a real answer and
    /// closes the connection (a fuzz run of the client's HTTP parsing); the seed makes a run
    /// repeatable.
    Mutations(u64),
    /// Mutual TLS, then an answer that never ends, until the client hangs up.
    Endless(Flood),
    /// As `Answer`, but `GET /info` is never answered: a manager whose swarm lost its quorum.
    NoQuorum,
}

/// How an endless answer goes on.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Flood {
    /// A 200 with `Transfer-Encoding: chunked` and chunks for ever.
    ChunkedBody,
    /// A 200 with no length: the body runs until the connection closes, which it never does.
    UnsizedBody,
    /// Header lines for ever, the head never ends.
    Headers,
    /// One line (the status line) that never ends.
    Line,
}

impl Flood {
    /// What comes first, and what is then sent again and again.
    fn parts(self) -> (&'static [u8], &'static [u8]) {
        const FILL: &[u8] = &[b'a'; 16 << 10];
        match self {
            Flood::ChunkedBody => (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"Version\":\"1aaaaaaaaaaaaaaaaaaa\r\n",
                b"40\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            ),
            Flood::UnsizedBody => (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Version\":\"",
                FILL,
            ),
            Flood::Headers => (b"HTTP/1.1 200 OK\r\n", b"X-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
            Flood::Line => (b"HTTP/1.1 200 ", FILL),
        }
    }
}

/// A mutation of a real daemon answer, from `state` (xorshift).
pub fn mutated_answer(state: &mut u64) -> Vec<u8> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let seeds: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nServer: Docker/24.0.7 (linux)\r\n\r\n{\"Version\":\"1\"}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0;x=y\r\nT: v\r\n\r\n",
        b"HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\nno such thing",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ];
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
    input
}

/// A TLS daemon on 127.0.0.1 with a server certificate signed by the sandbox's CA.
pub struct FakeDaemon {
    pub port: u16,
    /// How many TCP connections it has accepted.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// The request lines it got (`GET /_ping`), in order.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

/// The oldest Engine API version today's dockerd serves.
const MIN_API_VERSION: u32 = 24;

/// What today's dockerd answers to a request line for the paths hoist uses (`/_ping`,
/// `/version`, `/vX.Y/version`): older API versions get dockerd's 400, other paths its 404.
fn daemon_answer(request_line: &str, version_body: &str) -> (u16, String) {
    let mut words = request_line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (api, endpoint) = match path.strip_prefix("/v").and_then(|p| p.split_once('/')) {
        Some((v, rest)) => (Some(v), format!("/{rest}")),
        None => (None, path.to_string()),
    };
    if let Some(v) = api {
        let minor = v.strip_prefix("1.").and_then(|m| m.parse::<u32>().ok());
        match minor {
            Some(m) if m < MIN_API_VERSION => {
                return (
                    400,
                    format!(
                        "{{\"message\":\"client version {v} is too old. Minimum supported API version is 1.{MIN_API_VERSION}, please upgrade your client to a newer version\"}}"
                    ),
                );
            }
            Some(_) => {}
            None => return (404, "{\"message\":\"page not found\"}".into()),
        }
    }
    match (method, endpoint.as_str()) {
        ("GET" | "HEAD", "/_ping") => (200, "OK".into()),
        ("GET", "/version") => (200, version_body.to_string()),
        _ => (404, "{\"message\":\"page not found\"}".into()),
    }
}

impl FakeDaemon {
    pub fn start(sandbox: &Sandbox, version: &str, behaviour: Behaviour) -> FakeDaemon {
        let store = sandbox.store();
        let paths = CertPaths::in_dir(&store.certs_dir());
        // The daemon's certificate is signed by the store's CA as it is: the daemon never makes
        // or repairs one (a test of the store must see it as hoist left it). A store without a
        // CA gets one the way users get it, from hoist.
        if !paths.ca_cert.exists() {
            sandbox.ok(&[
                "create",
                "-d",
                "none",
                "--url",
                "tcp://127.0.0.1:1",
                "ca-seed",
            ]);
            sandbox.ok(&["rm", "-y", "ca-seed"]);
        }
        let dir = sandbox
            .dir
            .path()
            .join(format!("daemon-{version}-{}", rand_suffix()));
        fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server-key.pem"));
        cert::generate_server_cert(
            &paths,
            "tester.fake",
            &cert::server_sans(&[], "127.0.0.1"),
            &cert_path,
            &key_path,
        )
        .unwrap();
        let certs: Vec<_> = rustls_pemfile::certs(&mut fs::read(&cert_path).unwrap().as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut fs::read(&key_path).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut fs::read(&paths.ca_cert).unwrap().as_slice()) {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = format!("{{\"Version\":\"{version}\",\"ApiVersion\":\"1.47\"}}");
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        runtime.spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if behaviour == Behaviour::Hang {
                    held.push(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                let body = body.clone();
                let recorded = recorded.clone();
                let mut state = match behaviour {
                    Behaviour::Mutations(seed) => seed ^ (accepted.load(std::sync::atomic::Ordering::SeqCst) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                    _ => 1,
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    loop {
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        let head = String::from_utf8_lossy(&got[..end]).to_string();
                        got.drain(..end + 4);
                        let request_line = head.lines().next().unwrap_or("");
                        let request_line = request_line.trim_end_matches(" HTTP/1.1").to_string();
                        recorded.lock().unwrap().push(request_line.clone());
                        if behaviour == Behaviour::NoQuorum && request_line.starts_with("GET /info") {
                            // Holds the connection open, as a daemon waiting for its raft.
                            std::future::pending::<()>().await;
                        }
                        if let Behaviour::Endless(flood) = behaviour {
                            let (first, again) = flood.parts();
                            if tls.write_all(first).await.is_err() {
                                return;
                            }
                            while tls.write_all(again).await.is_ok() {}
                            return;
                        }
                        let response = match behaviour {
                            Behaviour::Raw(bytes) => bytes.to_vec(),
                            Behaviour::Mutations(_) => mutated_answer(&mut state),
                            _ => {
                                let (status, mut text) = daemon_answer(&request_line, &body);
                                // As dockerd: a HEAD answer has no body (its "OK" would be read
                                // as the start of the next answer on the connection).
                                if request_line.starts_with("HEAD ") {
                                    text.clear();
                                }
                                let reason = match status {
                                    200 => "OK",
                                    400 => "Bad Request",
                                    _ => "Not Found",
                                };
                                let kind = match text.starts_with('{') {
                                    true => "application/json",
                                    false => "text/plain; charset=utf-8",
                                };
                                format!(
                                    "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.47\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{text}",
                                    text.len()
                                )
                                .into_bytes()
                            }
                        };
                        if tls.write_all(&response).await.is_err() {
                            return;
                        }
                        // A mutated answer is the connection's last word: a client waiting for
                        // the rest of a cut answer meets its end, not its own timeout.
                        if matches!(behaviour, Behaviour::AnswerOnce | Behaviour::Mutations(_)) {
                            let _ = tls.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        FakeDaemon {
            port,
            connections,
            requests,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The request lines it got so far (`GET /version`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// stdout of an output as text.
/// Asserts that a command (`what`) succeeded, showing its stdout and stderr when it did not.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// stderr of an output as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Checks what no kill may break: every record parses and loads, and every certificate (the
/// store's CA and client certificate, each machine directory's copy and server certificate) has
/// its own key — each pair as the next command finds it, once it settled what a killed write left
/// staged (hoist::fsutil::write_pair).
pub fn check_pairs(sb: &Sandbox) {
    let store = sb.store();
    for name in store.list().unwrap() {
        let path = store.machine_dir(&name).join("config.json");
        // A machine directory exists only once its record was written completely.
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        store.load(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut pairs = vec![
        settled(&store.certs_dir(), "ca.pem", "ca-key.pem"),
        settled(&store.certs_dir(), "cert.pem", "key.pem"),
    ];
    for name in store.list().unwrap() {
        let dir = store.machine_dir(&name);
        pairs.push(settled(&dir, "cert.pem", "key.pem"));
        pairs.push(settled(&dir, "server.pem", "server-key.pem"));
    }
    for (cert, key) in pairs {
        if cert.exists() {
            assert!(key.exists(), "{} without its key", cert.display());
            assert_key_matches(&cert, &key);
        }
    }
}

/// The files that hold the certificate `cert` and key `key` of `dir` once settled.
fn settled(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = hoist::fsutil::settled_paths(&dir.join(key), &dir.join(cert));
    (cert, key)
}

/// Checks the whole store: [`check_pairs`], and every certificate is signed by the store's CA,
/// and the machine directories' copies are the store's.
pub fn check_store(sb: &Sandbox) {
    check_pairs(sb);
    let store = sb.store();
    let (ca, _) = settled(&store.certs_dir(), "ca.pem", "ca-key.pem");
    let (client, client_key) = settled(&store.certs_dir(), "cert.pem", "key.pem");
    if !ca.exists() {
        return;
    }
    assert_signed_by(&ca, &ca);
    if client.exists() {
        assert_signed_by(&client, &ca);
    }
    for name in store.list().unwrap() {
        let dir = store.machine_dir(&name);
        let (copy, copy_key) = settled(&dir, "cert.pem", "key.pem");
        for (copy, of) in [
            (dir.join("ca.pem"), &ca),
            (copy, &client),
            (copy_key, &client_key),
        ] {
            if copy.exists() {
                assert!(
                    fs::read(&copy).unwrap() == fs::read(of).unwrap(),
                    "{} is not the store's {}",
                    copy.display(),
                    of.display()
                );
            }
        }
        let (server, _) = settled(&dir, "server.pem", "server-key.pem");
        if server.exists() {
            assert_signed_by(&server, &ca);
        }
    }
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output_bounded();
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `cert` is signed by `ca` (openssl's own verification, not hoist's; validity dates are not
/// checked: a store may keep an expired CA until the next command renews it).
pub fn assert_signed_by(cert: &Path, ca: &Path) {
    let out = Command::new("openssl")
        .args(["verify", "-no_check_time", "-CAfile"])
        .arg(ca)
        .arg(cert)
        .output_bounded();
    assert!(
        out.status.success(),
        "{} is not signed by {}: {}{}",
        cert.display(),
        ca.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// `key` is the private key of `cert`.
pub fn assert_key_matches(cert: &Path, key: &Path) {
    let from_cert = openssl(&["x509", "-noout", "-pubkey", "-in", &cert.to_string_lossy()]);
    let from_key = openssl(&["pkey", "-pubout", "-in", &key.to_string_lossy()]);
    assert_eq!(
        from_cert,
        from_key,
        "{} is not the key of {}",
        key.display(),
        cert.display()
    );
}

/// Waits for commands that must all succeed; returns how many of them created the CA.
pub fn wait_all_creating_one_ca(children: Vec<std::process::Child>) -> usize {
    let mut created = 0;
    for child in children {
        let out = finish(child);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        created += stdout(&out).matches("Creating CA:").count();
    }
    created
}

/// Waits (up to `limit`) until process `pid` is blocked on the lock of the file at `path`: a
/// waiter's line of `/proc/locks` (`N: -> FLOCK ADVISORY WRITE PID DEV:INODE …`) names both. The
/// proof that a command waits for a lock, where a sleep would only hope it does.
pub fn wait_until_waiting_for_lock(pid: u32, path: &Path, limit: std::time::Duration) {
    use std::os::unix::fs::MetadataExt;
    let inode = fs::metadata(path).unwrap().ino().to_string();
    let pid = pid.to_string();
    let what = format!("process {pid} waits for the lock on {}", path.display());
    eventually(limit, &what, || {
        let locks = fs::read_to_string("/proc/locks").expect("/proc/locks cannot be read");
        let waiting = locks.lines().any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.get(1) == Some(&"->")
                && f.get(5) == Some(&pid.as_str())
                && f.get(6).and_then(|d| d.rsplit(':').next()) == Some(inode.as_str())
        });
        waiting
            .then_some(())
            .ok_or_else(|| format!("/proc/locks:\n{locks}"))
    });
}

/// A small random source (xorshift) for tests that kill at random moments: seeded from the clock,
/// or from `HOIST_TEST_SEED` to repeat a run; the seed is printed first.
pub struct Rng(u64);

impl Rng {
    pub fn new(what: &str) -> Rng {
        let seed = std::env::var("HOIST_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("{what} seed: {seed} (HOIST_TEST_SEED={seed} repeats it)");
        Rng(seed)
    }

    /// A number below `bound`.
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill9(mut child: std::process::Child) {
    // SAFETY: sending SIGKILL to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// A certificate (and its new key) for `names` (DNS names or IP addresses), signed by the sandbox
/// store's CA, valid from `start` to `end` days from now.
pub fn cert_valid_between(sb: &Sandbox, names: &[&str], start: i64, end: i64) -> (String, String) {
    let certs = sb.store_path().join("certs");
    let ca_key = hoist::cert::load_key_pair(&certs.join("ca-key.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(start);
    params.not_after = now + time::Duration::days(end);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
