//! The lab from the tests: real Debian 12 and 13 hosts (systemd, sshd, dockerd) started by `lab/lab`.
//!
//! Lab tests are `#[ignore]`d with the reason, so a plain `cargo test` lists them as ignored;
//! `lab/test` runs them (`--include-ignored`, `HOIST_LAB=1`). A lab test run without
//! `HOIST_LAB=1`, or whose lab cannot start, fails — it never passes without having run.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::{Bounded, Sandbox, stderr, stdout};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The lab tool.
pub fn lab_tool() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/lab")
}

/// Requires the lab (HOIST_LAB=1, as lab/test sets it) and its images; fails the test otherwise.
pub fn require() {
    assert_eq!(
        std::env::var("HOIST_LAB").as_deref(),
        Ok("1"),
        "this test needs the lab: run it with HOIST_LAB=1 (lab/test does, as root with Docker or docker.io installable)"
    );
    prepare();
}

fn prepare() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        for variant in Variant::ALL {
            let (name, release) = variant.image();
            let out = lab(&["image", name, release]);
            assert!(
                out.status.success(),
                "lab image {name} {release} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// Runs the lab tool.
pub fn lab(args: &[&str]) -> Output {
    Command::new(lab_tool())
        .args(args)
        .stdin(Stdio::null())
        .output_bounded()
}

/// Host variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// Debian 12 with Debian's docker.io exactly as the package installs it.
    Docker,
    /// Debian 12 without Docker.
    Bare,
    /// Debian 13 (trixie) with its docker.io (a newer Engine and API than Debian 12's).
    TrixieDocker,
    /// Debian 13 without Docker.
    TrixieBare,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Docker,
        Variant::Bare,
        Variant::TrixieDocker,
        Variant::TrixieBare,
    ];

    /// The lab's image variant and Debian release.
    fn image(self) -> (&'static str, &'static str) {
        match self {
            Variant::Docker => ("docker", "12"),
            Variant::Bare => ("bare", "12"),
            Variant::TrixieDocker => ("docker", "13"),
            Variant::TrixieBare => ("bare", "13"),
        }
    }
}

/// A lab host, removed when dropped (also when the test fails).
#[derive(Debug)]
pub struct LabHost {
    pub name: String,
    pub ip: String,
    pub key: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl LabHost {
    /// Starts a host; `users` adds `deploy` (passwordless sudo) and `sudopw` (sudo with a password).
    pub fn start(variant: Variant, users: bool) -> LabHost {
        Self::start_many(1, variant, users).remove(0)
    }

    /// Starts `n` hosts at once.
    pub fn start_many(n: usize, variant: Variant, users: bool) -> Vec<LabHost> {
        let prefix = format!(
            "hoist-t{}-{}-",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let (v, release) = variant.image();
        let count = n.to_string();
        let mut args = vec![
            "up",
            &count,
            "--variant",
            v,
            "--release",
            release,
            "--prefix",
            &prefix,
        ];
        if users {
            args.push("--users");
        }
        let out = lab(&args);
        assert!(
            out.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hosts: Vec<LabHost> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad lab line {line:?}: {e}"));
                LabHost {
                    name: json["name"].as_str().unwrap().into(),
                    ip: json["ip"].as_str().unwrap().into(),
                    key: json["key"].as_str().unwrap().into(),
                }
            })
            .collect();
        assert_eq!(
            hosts.len(),
            n,
            "lab up {args:?} started {} hosts, not {n}: {}{}",
            hosts.len(),
            stdout(&out),
            stderr(&out)
        );
        hosts
    }

    /// Runs a command on the host as root (through the engine, not SSH).
    pub fn exec(&self, script: &str) -> Output {
        lab(&["exec", &self.name, "sh", "-c", script])
    }

    /// Runs a command on the host and returns its stdout; panics when it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The version of the host's own Docker engine, as `ls` shows it (`v20.10.24+dfsg1`), asked
    /// of the daemon on its local socket.
    pub fn docker_version(&self) -> String {
        let version = self.sh("docker version --format '{{.Server.Version}}'");
        format!("v{}", version.trim())
    }

    /// Takes the host off the lab network.
    pub fn cut(&self) {
        assert!(lab(&["cut", &self.name]).status.success());
    }

    /// Puts it back.
    pub fn heal(&self) {
        assert!(lab(&["heal", &self.name]).status.success());
    }

    /// The host container's state: `running`, `exited`, …
    pub fn state(&self) -> String {
        let out = lab(&["state", &self.name]);
        assert!(out.status.success(), "lab state {}", self.name);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn key_str(&self) -> String {
        self.key.display().to_string()
    }
}

impl Drop for LabHost {
    fn drop(&mut self) {
        let _ = lab(&["rm", &self.name]);
    }
}

/// The arguments of `hoist create -d generic` of machine `name` on a lab host.
pub fn generic_args(host: &LabHost, name: &str) -> Vec<String> {
    [
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &host.ip,
        "--generic-ssh-key",
        &host.key_str(),
        name,
    ]
    .map(String::from)
    .to_vec()
}

/// `hoist create -d generic` of a machine on a lab host, with `extra` flags.
pub fn create_generic(sb: &Sandbox, host: &LabHost, name: &str, extra: &[&str]) -> Output {
    let mut args = generic_args(host, name);
    args.splice(
        args.len() - 1..args.len() - 1,
        extra.iter().map(|e| e.to_string()),
    );
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`create_generic`], which must succeed.
pub fn created(sb: &Sandbox, host: &LabHost, name: &str, extra: &[&str]) {
    let out = create_generic(sb, host, name, extra);
    assert!(
        out.status.success(),
        "create failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The lab's VM image for the qemu driver (built once, cached): its disk, kernel and initrd, and
/// the bootable variant.
pub struct VmImage {
    pub disk: String,
    pub kernel: String,
    pub initrd: String,
    /// The same system as a disk with its own bootloader (syslinux), booted from the image alone.
    pub bootable: String,
}

/// The VM image, built by `lab vm-image` on first use.
pub fn vm_image() -> &'static VmImage {
    static IMAGE: OnceLock<VmImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = lab(&["vm-image"]);
        assert!(
            out.status.success(),
            "lab vm-image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("lab vm-image printed no JSON");
        let field = |k: &str| json[k].as_str().unwrap().to_string();
        VmImage {
            disk: field("disk"),
            kernel: field("kernel"),
            initrd: field("initrd"),
            bootable: field("bootable"),
        }
    })
}

/// A tarball with a static busybox as `/bin/busybox` and `/bin/sh`, for `docker import`.
pub fn busybox_tarball(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("busybox-root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let _ = std::os::unix::fs::symlink("busybox", root.join("bin/sh"));
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .args([
            "-C",
            &root.to_string_lossy(),
            "-cf",
            &tar.to_string_lossy(),
            ".",
        ])
        .status_bounded();
    assert!(st.success());
    tar
}
