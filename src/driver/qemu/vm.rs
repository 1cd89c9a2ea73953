//! A VM's files and processes: the copy-on-write disk, the cloud-init seed, the SSH key, free
//! ports, the acceleration probe, and QEMU started detached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::DriverError;

/// The machine directory's files of a VM.
pub const DISK: &str = "disk.qcow2";
pub const SEED: &str = "seed.img";
pub const PIDFILE: &str = "qemu.pid";
pub const QMP_SOCKET: &str = "qmp.sock";
pub const CONSOLE: &str = "console.log";
/// Present while the VM is off because hoist stopped or killed it (not a crash).
pub const STOPPED_MARK: &str = "qemu.stopped";
/// The SSH key hoist makes for the VM.
pub const SSH_KEY: &str = "id_ed25519";

/// A driver error that says what failed and why.
pub(super) fn fail(what: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::Config(format!("{what}: {e}"))
}

/// Runs a helper program to its end; its stdout, or an error naming the Debian package that has
/// it when it is missing.
async fn run(program: &str, args: &[&str], package: &str) -> Result<String, DriverError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DriverError::Config(format!(
                "{program} is not installed (on Debian/Ubuntu: apt-get install {package})"
            )),
            _ => fail(program, e),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(DriverError::Config(format!(
            "{program} failed: {}",
            stderr.trim().lines().last().unwrap_or("no message")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The format (`qcow2`, `raw`) and virtual size in bytes of a disk image.
pub async fn image_info(path: &Path) -> Result<(String, u64), DriverError> {
    let path_text = path.to_string_lossy();
    let json = run(
        "qemu-img",
        &["info", "--output=json", "-U", &path_text],
        "qemu-utils",
    )
    .await?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| fail("qemu-img info", e))?;
    let format = info["format"].as_str().unwrap_or("raw").to_string();
    let size = info["virtual-size"].as_u64().unwrap_or(0);
    Ok((format, size))
}

/// Makes the VM's disk: a qcow2 overlay of `size_gb` GB over the base, which is never written.
pub async fn make_disk(
    base: &Path,
    base_format: &str,
    dir: &Path,
    size_gb: u64,
) -> Result<(), DriverError> {
    let disk = dir.join(DISK);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            base_format,
            "-b",
            &base.to_string_lossy(),
            &disk.to_string_lossy(),
            &format!("{size_gb}G"),
        ],
        "qemu-utils",
    )
    .await
    .map(|_| ())
}

/// Makes the cloud-init NoCloud seed (a FAT volume labelled CIDATA): hostname, root's SSH key,
/// and a new instance ID unless `instance_id` gives the one to keep.
pub async fn make_seed(
    dir: &Path,
    name: &str,
    public_key: &str,
    instance_id: Option<&str>,
) -> Result<(), DriverError> {
    // Only what hoist needs, so that the first boot is short under emulation: the hostname, root
    // with the key, one (ed25519) host key; the image's config and final modules are left out
    // (hoist provisions Docker over SSH). Until hoist has configured Docker, a Docker that the
    // image starts at boot would only be restarted by provisioning (after its seconds of
    // start-up under emulation, which the restart waits for): on a boot before the drop-in
    // exists it waits for it (a runtime condition, gone at the next boot).
    let dropin = crate::engine::HOST_DROPIN_PATH;
    let wait_for_dropin = format!(
        "test -e {dropin} || {{ mkdir -p /run/systemd/system/docker.service.d && printf '[Unit]\\nConditionPathExists={dropin}\\n' > /run/systemd/system/docker.service.d/hoist-first-boot.conf && systemctl daemon-reload; }}"
    );
    let user_data = format!(
        "#cloud-config\nhostname: {name}\npreserve_hostname: false\ndisable_root: false\nssh_pwauth: false\nssh_genkeytypes: [ed25519]\nusers:\n  - name: root\n    ssh_authorized_keys:\n      - {public_key}\nbootcmd:\n  - [sh, -c, {}]\ncloud_config_modules: []\ncloud_final_modules: []\n",
        serde_json::Value::from(wait_for_dropin)
    );
    let instance_id = match instance_id {
        Some(id) => id.to_string(),
        None => {
            let mut id = [0u8; 8];
            getrandom::fill(&mut id).map_err(|e| fail("random instance ID", e))?;
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            format!("hoist-{name}-{id}")
        }
    };
    let meta_data = format!("instance-id: {instance_id}\nlocal-hostname: {name}\n");
    let staging = dir.join("seed");
    crate::fsutil::create_dir_all(&staging, 0o700).map_err(|e| fail("seed directory", e))?;
    for (file, text) in [("user-data", &user_data), ("meta-data", &meta_data)] {
        crate::fsutil::write_atomic(&staging.join(file), text.as_bytes(), 0o600)
            .map_err(|e| fail("seed file", e))?;
    }
    let seed = dir.join(SEED);
    let _ = std::fs::remove_file(&seed);
    let seed_text = seed.to_string_lossy().to_string();
    run(
        "mkfs.vfat",
        &["-n", "CIDATA", "-C", &seed_text, "2048"],
        "dosfstools",
    )
    .await?;
    for file in ["user-data", "meta-data"] {
        let src = staging.join(file).to_string_lossy().to_string();
        run("mcopy", &["-i", &seed_text, &src, "::/"], "mtools").await?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

/// The instance ID in a VM's seed.
pub async fn seed_instance_id(dir: &Path) -> Result<String, DriverError> {
    let seed = dir.join(SEED).to_string_lossy().to_string();
    let meta_data = run("mcopy", &["-i", &seed, "::/meta-data", "-"], "mtools").await?;
    meta_data
        .lines()
        .find_map(|l| l.strip_prefix("instance-id:"))
        .map(|id| id.trim().to_string())
        .ok_or_else(|| DriverError::Config(format!("{seed} has no instance-id")))
}

/// Two free TCP ports on 127.0.0.1 (for SSH and Docker): bound and released, so QEMU may still
/// lose a race for one to another program (the launch is then retried with others).
pub fn free_ports() -> Result<(u16, u16), DriverError> {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail("no free port", e));
    // Both held at once, so they differ.
    let (first, second) = (bind()?, bind()?);
    let port = |l: &std::net::TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| fail("no free port", e))
    };
    Ok((port(&first)?, port(&second)?))
}

/// The acceleration a VM gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Accel {
    Kvm,
    /// Software emulation, and why KVM is not used (`None`: asked for).
    Tcg(Option<String>),
}

impl Accel {
    /// QEMU's `-accel` value.
    pub fn arg(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg(_) => "tcg,thread=multi",
        }
    }

    /// The name recorded (`kvm`, `tcg`).
    pub fn name(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg(_) => "tcg",
        }
    }
}

/// Why KVM cannot be used here, or `None` when it may: QEMU must open `/dev/kvm` and run a guest
/// with it, with the CPU model VMs get (nested virtualisation can offer a `/dev/kvm` that runs
/// nothing, or refuses the host CPU's MSRs): a one-sector guest that writes to QEMU's debug-exit
/// port, which ends QEMU with a known status. A KVM that passes may still fail to boot Linux (a
/// `/dev/kvm` served by `kvm_pvm` runs real mode only): the boot watchdog of a create decides that.
pub async fn kvm_unusable(binary: &str, dir: &Path) -> Option<String> {
    let probe = dir.join(format!("hoist-kvm-probe-{}.img", std::process::id()));
    // mov al, 0x31; out 0xf4, al; hlt — then the boot signature.
    let mut sector = vec![0u8; 512];
    sector[..5].copy_from_slice(&[0xb0, 0x31, 0xe6, 0xf4, 0xf4]);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    if let Err(e) = std::fs::write(&probe, &sector) {
        return Some(format!("cannot write the KVM probe: {e}"));
    }
    let child = Command::new(binary)
        .args([
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "16",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive",
        ])
        .arg(format!("file={},format=raw,if=ide", probe.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let result = tokio::time::timeout(Duration::from_secs(10), child).await;
    let _ = std::fs::remove_file(&probe);
    match result {
        // (0x31 << 1) | 1: the guest ran.
        Ok(Ok(out)) if out.status.code() == Some(99) => None,
        Ok(Ok(out)) => Some(kvm_refusal(&String::from_utf8_lossy(&out.stderr))),
        Ok(Err(e)) => Some(format!("cannot run {binary}: {e}")),
        Err(_) => Some(
            "KVM does not run guests here (nested virtualisation off?): the probe guest hung"
                .to_string(),
        ),
    }
}

/// Why QEMU refused KVM, from its own words.
fn kvm_refusal(stderr: &str) -> String {
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    let first = first.unwrap_or("the probe guest did not run");
    if first.contains("KVM kernel module") || first.contains("/dev/kvm") {
        if first.contains("No such file") {
            return "there is no /dev/kvm".to_string();
        }
        if first.contains("Permission denied") {
            return "no permission to open /dev/kvm (add the user to group kvm)".to_string();
        }
    }
    format!(
        "KVM does not run guests here (nested virtualisation off?): {}",
        crate::engine::printable(first)
    )
}

/// Everything QEMU is started with.
pub struct Launch<'a> {
    pub binary: &'a str,
    pub name: &'a str,
    pub dir: &'a Path,
    pub accel: &'a str,
    pub cpus: u32,
    pub memory_mb: u64,
    pub kernel: &'a str,
    pub initrd: &'a str,
    pub append: &'a str,
    pub ssh_port: u16,
    pub engine_port: u16,
    /// The versioned machine type a saved state needs (empty: QEMU's default).
    pub machine_type: &'a str,
    /// Wait for a saved state to load (`-incoming defer`) instead of booting.
    pub incoming: bool,
}

/// The kernel command line when a kernel is given without one.
pub const DEFAULT_APPEND: &str = "root=/dev/vda rw console=ttyS0 quiet";

impl Launch<'_> {
    /// QEMU's arguments.
    pub fn args(&self) -> Vec<String> {
        let file = |name: &str| self.dir.join(name).to_string_lossy().to_string();
        let mut args: Vec<String> = vec![
            "-name".into(),
            format!("hoist-{}", self.name),
            "-accel".into(),
            self.accel.into(),
            "-cpu".into(),
            if self.accel == "kvm" { "host" } else { "max" }.into(),
            "-m".into(),
            self.memory_mb.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
        ];
        if !self.machine_type.is_empty() {
            args.extend(["-machine".into(), self.machine_type.into()]);
        }
        if !self.kernel.is_empty() {
            args.extend(["-kernel".into(), self.kernel.into()]);
            if !self.initrd.is_empty() {
                args.extend(["-initrd".into(), self.initrd.into()]);
            }
            let append = if self.append.is_empty() {
                DEFAULT_APPEND
            } else {
                self.append
            };
            args.extend(["-append".into(), append.into()]);
        }
        args.extend([
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", file(DISK)),
            "-drive".into(),
            format!("file={},if=virtio,format=raw,readonly=on", file(SEED)),
            "-netdev".into(),
            format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22,hostfwd=tcp:127.0.0.1:{}-:2376",
                self.ssh_port, self.engine_port
            ),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            "-display".into(),
            "none".into(),
            "-serial".into(),
            format!("file:{}", file(CONSOLE)),
            "-pidfile".into(),
            file(PIDFILE),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", file(QMP_SOCKET)),
            "-daemonize".into(),
        ]);
        if self.incoming {
            args.extend(["-incoming".into(), "defer".into()]);
        }
        args
    }

    /// Starts QEMU detached from hoist (its own session: it outlives hoist and the terminal).
    /// The error is QEMU's own last words.
    pub async fn start(&self) -> Result<(), DriverError> {
        let _ = std::fs::remove_file(self.dir.join(QMP_SOCKET));
        let out = Command::new(self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DriverError::Config(format!(
                    "{} is not installed (on Debian/Ubuntu: apt-get install --no-install-recommends qemu-system-x86)",
                    self.binary
                )),
                _ => fail(self.binary, e),
            })?;
        if out.status.success() {
            return Ok(());
        }
        Err(DriverError::Config(format!(
            "QEMU did not start: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("no message")
        )))
    }
}

/// The QEMU process of a VM, if it runs: the pid in its pidfile, alive and a QEMU.
pub fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join(PIDFILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_ours = String::from_utf8_lossy(&cmdline).contains(&*dir.join(PIDFILE).to_string_lossy());
    is_ours.then_some(pid)
}

/// Waits until the process `pid` has ended, up to `limit`; whether it did.
pub async fn wait_gone(dir: &Path, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    while running_pid(dir).is_some() {
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// The last lines of the VM's serial console, for errors: terminal escape sequences (SeaBIOS
/// draws its screen with them) removed and the text kept, carriage returns ending lines, never
/// empty.
pub fn console_tail(dir: &Path, lines: usize) -> String {
    let text = std::fs::read(dir.join(CONSOLE)).unwrap_or_default();
    let text = strip_escapes(&String::from_utf8_lossy(&text));
    let all: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if all.is_empty() {
        return "nothing (the console is empty: the guest printed no line)".to_string();
    }
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| crate::engine::printable(l))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `text` without ANSI/VT100 escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL/ST`),
/// charset selections (`ESC ( B`) and two-byte ones (`ESC c`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            Some('(' | ')' | '*' | '+' | '#' | '%') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// Waits until SSH answers on `port` with its banner (QEMU's forward accepts a connection before
/// the guest listens, so only the banner proves sshd up).
pub async fn wait_for_ssh(port: u16, limit: Duration, dir: &Path) -> Result<(), DriverError> {
    let every = Duration::from_millis(500);
    wait_while_booting(dir, limit, every, "answer SSH", || {
        crate::ssh::answers("127.0.0.1", port)
    })
    .await
}

/// Waits until a vCPU of the VM runs in user space (its kernel booted to its first program), up
/// to `limit`: the proof that the accelerator boots Linux, long before SSH answers.
pub async fn wait_for_user_space(limit: Duration, dir: &Path) -> Result<(), DriverError> {
    let qmp = dir.join(QMP_SOCKET);
    let every = Duration::from_millis(250);
    wait_while_booting(dir, limit, every, "reach user space", || async {
        super::qmp::in_user_space(&qmp).await == Ok(true)
    })
    .await
}

/// Asks `ready` every `every` until it says yes, QEMU ends, or `limit` passes; the errors say
/// what the VM did not do (`what`) and end with its console's last lines.
async fn wait_while_booting<F, Fut>(
    dir: &Path,
    limit: Duration,
    every: Duration,
    what: &str,
    ready: F,
) -> Result<(), DriverError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if ready().await {
            return Ok(());
        }
        if running_pid(dir).is_none() {
            return Err(DriverError::Config(format!(
                "the VM's QEMU exited while it booted; its console ended with: {}",
                console_tail(dir, 5)
            )));
        }
        if started.elapsed() >= limit {
            return Err(DriverError::Timeout(format!(
                "the VM did not {what} within {}s; its console ended with: {}",
                limit.as_secs(),
                console_tail(dir, 5)
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// The machine's total memory in MB (from /proc/meminfo).
pub fn host_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// An absolute path for a file the user named.
pub fn absolute(path: &str) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a console holds when SeaBIOS drew its screen on the serial port and the kernel's
    /// real-mode setup printed its line with a carriage return, then the guest went silent.
    const SILENT_AFTER_SETUP: &[u8] = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\x1b[1;1H\x1b]0;title\x07Booting from ROM...\r\n\x1b(BProbing EDD (edd=off to disable)... ok\r\x1b[2J";

    #[test]
    fn a_console_excerpt_keeps_the_text_and_drops_the_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONSOLE), SILENT_AFTER_SETUP).unwrap();
        assert_eq!(
            console_tail(dir.path(), 2),
            "Booting from ROM... | Probing EDD (edd=off to disable)... ok"
        );
        assert_eq!(
            console_tail(dir.path(), 5),
            "SeaBIOS (version 1.16.2-debian-1.16.2-1) | Booting from ROM... | Probing EDD (edd=off to disable)... ok"
        );
    }

    #[test]
    fn an_empty_console_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert!(console_tail(dir.path(), 3).starts_with("nothing (the console is empty"));
        std::fs::write(dir.path().join(CONSOLE), b"\x1b[2J\r\n\x1b[0m  \r").unwrap();
        assert!(console_tail(dir.path(), 3).starts_with("nothing (the console is empty"));
    }

    #[test]
    fn qemus_kvm_refusals_are_named() {
        assert_eq!(
            kvm_refusal(
                "Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: failed to initialize kvm: No such file or directory\n"
            ),
            "there is no /dev/kvm"
        );
        assert_eq!(
            kvm_refusal("Could not access KVM kernel module: Permission denied\n"),
            "no permission to open /dev/kvm (add the user to group kvm)"
        );
        assert_eq!(
            kvm_refusal(
                "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.\n"
            ),
            "KVM does not run guests here (nested virtualisation off?): qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
        );
        assert_eq!(
            kvm_refusal(""),
            "KVM does not run guests here (nested virtualisation off?): the probe guest did not run"
        );
    }
}
