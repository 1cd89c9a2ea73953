//! The Go test plugin `docker-machine-driver-labplug` (tests/labplug): built once per test run
//! with Debian's `golang-go` (standard library only, no network), then copied into each
//! sandbox's own bin directory so that a test can count the plugin processes it started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{Bounded, Sandbox};

/// The built plugin binary; panics with the reason when Go cannot build it.
pub fn built() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out_dir = root.join("target/labplug");
            std::fs::create_dir_all(&out_dir).unwrap();
            let out = out_dir.join("docker-machine-driver-labplug");
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(root.join("tests/labplug"))
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .env("GOCACHE", out_dir.join("gocache"))
                .env("CGO_ENABLED", "0")
                .status_bounded();
            assert!(status.success(), "go build of tests/labplug failed");
            out
        })
        .clone()
}

/// The sandbox's bin directory, first on its PATH.
pub fn bin_dir(sb: &mut Sandbox) -> PathBuf {
    let bin = sb.dir.path().join("plugins");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        let path = format!("{}:{}", bin.display(), sb.env["PATH"]);
        sb.set("PATH", &path);
    }
    bin
}

/// Installs the plugin in the sandbox under `name` (`docker-machine-driver-labplug`, or
/// `docker-machine` to stand in for docker-machine's core drivers); returns its path.
pub fn install(sb: &mut Sandbox, name: &str) -> PathBuf {
    let dst = bin_dir(sb).join(name);
    std::fs::copy(built(), &dst).unwrap();
    dst
}

/// The processes running the executable at `path`.
pub fn processes(path: &Path) -> Vec<u32> {
    // An unreadable /proc would make "no plugin left" pass unseen: fail instead.
    let entries = std::fs::read_dir("/proc").expect("cannot read /proc to count plugin processes");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == path)
                && !is_zombie(*pid)
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Waits up to `seconds` for no process to run `path`; returns whether none does.
pub fn none_left(path: &Path, seconds: u64) -> bool {
    let started = std::time::Instant::now();
    loop {
        if processes(path).is_empty() {
            return true;
        }
        if started.elapsed().as_secs() >= seconds {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
