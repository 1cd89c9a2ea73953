//! The qemu driver with real QEMU: VMs booted from the lab's Debian 12 cloud-style image (built
//! from Debian's packages, cloud-init inside) with `--qemu-kernel`/`--qemu-initrd`, under
//! software emulation here. One VM is shared by the lifecycle test; the parallel test boots two.

use crate::common;
use common::Bounded;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::lab::{self, vm_image};
use common::{Sandbox, shell_ok, stderr, stdout};

/// `hoist create -d qemu` arguments for the lab image, plus `extra`, for machine `name`.
pub(crate) fn qemu_args(name: &str, extra: &[&str]) -> Vec<String> {
    let image = vm_image();
    let mut args: Vec<String> = [
        "create",
        "-d",
        "qemu",
        "--qemu-kernel",
        &image.kernel,
        "--qemu-initrd",
        &image.initrd,
    ]
    .map(String::from)
    .to_vec();
    if !extra.contains(&"--qemu-image") {
        args.extend(["--qemu-image".to_string(), image.disk.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(name.into());
    args
}

/// Ends every QEMU of a sandbox's store when dropped, also when a test fails: QEMU runs
/// detached, and a VM left running would slow every later test.
pub(crate) struct KillVmsAtEnd(pub(crate) std::path::PathBuf);

impl Drop for KillVmsAtEnd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-9", "-f", &format!("qemu-system.*{}", self.0.display())])
            .status();
    }
}

/// Whether this host's KVM boots a Linux kernel, found out apart from hoist: the lab VM's kernel
/// under KVM with an early serial console prints its banner within 20 s (it then panics: no
/// root). Some nested `/dev/kvm`s run real mode only, and the kernel stays silent after its setup.
fn kvm_boots_linux() -> bool {
    static BOOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BOOTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let console = dir.path().join("console.log");
        let mut qemu = std::process::Command::new("qemu-system-x86_64")
            .args(["-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults"])
            .args([
                "-display",
                "none",
                "-no-reboot",
                "-kernel",
                &vm_image().kernel,
            ])
            .args(["-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let banner = loop {
            let text = fs::read_to_string(&console).unwrap_or_default();
            if text.contains("Linux version") {
                break true;
            }
            if started.elapsed().as_secs() >= 20 || qemu.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let _ = qemu.kill();
        let _ = qemu.wait();
        banner
    })
}

/// The stand-in QEMU that decides what KVM does (tests/fixtures/fake-qemu), set up in `sb` with
/// `FAKE_QEMU_KVM=mode`; the file it logs its calls to.
fn fake_qemu(sb: &mut Sandbox, mode: &str) -> (String, std::path::PathBuf) {
    let log = sb.dir.path().join("fake-qemu.log");
    sb.set("FAKE_QEMU_KVM", mode);
    sb.set("FAKE_QEMU_LOG", log.to_str().unwrap());
    let fake = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-qemu");
    (fake.to_string_lossy().to_string(), log)
}

/// The calls the fake QEMU logged: (seconds since the epoch, accel, probe|vm).
fn fake_calls(log: &std::path::Path) -> Vec<(f64, String, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn kvm_asked_for_fails_at_the_kvm_verdict_when_it_cannot_boot_the_vm() {
    lab::require();
    let mut sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    let (fake, log) = fake_qemu(&mut sb, "silent");
    let began = std::time::Instant::now();
    let out = run(
        &sb,
        &qemu_args("vm", &["--qemu-binary", &fake, "--qemu-accel", "kvm"]),
    );
    let took = began.elapsed().as_secs();
    assert!(!out.status.success());
    // The 25 s verdict, not the 300 s boot wait; the rest is margin for a loaded machine.
    assert!(took < 120, "took {took}s");
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--qemu-accel kvm cannot work here: under KVM it did not boot: the VM did not reach user space within 25s")
            && err.contains("use --qemu-accel tcg (software emulation) or auto"),
        "{err}"
    );
    // No second boot, and nothing left running.
    let kinds: Vec<String> = fake_calls(&log)
        .into_iter()
        .map(|(_, a, k)| format!("{a} {k}"))
        .collect();
    assert_eq!(kinds, ["kvm probe", "kvm vm"]);
    assert_eq!(qemu_processes(&sb.store().machine_dir("vm")), 0);
    sb.ok(&["rm", "-y", "vm"]);
    assert!(!sb.store().machine_dir("vm").exists());
}

/// The tests that boot VMs take turns: software emulation on 2 cores boots one VM at a time well.
pub(crate) static BOOTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn run(sb: &Sandbox, args: &[String]) -> std::process::Output {
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The QEMU processes whose command line names `dir`.
pub(crate) fn qemu_processes(dir: &std::path::Path) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("qemu-system.*{}", dir.display())])
        .output_bounded();
    stdout(&out).lines().count()
}

/// The forwarded ports of a machine's record (SSH, Docker).
fn ports(sb: &Sandbox, name: &str) -> (u16, u16) {
    let text = sb.ok(&[
        "inspect",
        name,
        "-f",
        "{{.Driver.SSHPort}} {{.Driver.EnginePort}}",
    ]);
    let mut it = text.split_whitespace().map(|p| p.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// The host ports a VM's QEMU forwards, from its command line.
fn forwarded_ports(dir: &std::path::Path) -> Vec<u16> {
    let pid = fs::read_to_string(dir.join("qemu.pid")).unwrap();
    let cmdline = fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    String::from_utf8_lossy(&cmdline)
        .split("hostfwd=tcp:127.0.0.1:")
        .skip(1)
        .map(|rest| rest.split('-').next().unwrap().parse().unwrap())
        .collect()
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn a_vm_runs_containers_keeps_its_volumes_across_power_cycles_and_goes_away_whole() {
    lab::require();
    let _turn = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    let base = fs::metadata(&vm_image().disk).unwrap();
    // A kernel command line of the user's (--qemu-append replaces the default one).
    let append = "root=/dev/vda rw console=ttyS0 quiet hoist.lab=appended";
    let out = run(&sb, &qemu_args("vm", &["--qemu-append", append]));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    // KVM where it boots Linux here, else software emulation with one warning that says why.
    let accel = sb.ok(&["inspect", "vm", "-f", "{{.Driver.AccelUsed}}"]);
    let warnings = said.matches("Warning: KVM cannot be used (").count();
    if kvm_boots_linux() {
        assert_eq!((accel.as_str(), warnings), ("kvm\n", 0), "{said}");
    } else {
        assert_eq!((accel.as_str(), warnings), ("tcg\n", 1), "{said}");
        assert!(said.contains("software emulation"), "{said}");
    }
    let dir = sb.store().machine_dir("vm");
    assert_eq!(sb.ok(&["ip", "vm"]), "127.0.0.1\n");
    let (ssh_port, engine_port) = ports(&sb, "vm");
    assert_eq!(
        sb.ok(&["url", "vm"]),
        format!("tcp://127.0.0.1:{engine_port}\n")
    );
    assert_eq!(sb.ok(&["status", "vm"]), "Running\n");
    assert_ne!(ssh_port, engine_port);

    // The real docker CLI through env (TLS with the SAN 127.0.0.1), an imported image, a volume.
    let tar = lab::busybox_tarball(sb.dir.path());
    let docker = |script: &str| shell_ok(&sb, &format!("eval $(hoist env vm) && {script}"));
    docker(&format!("docker import {} bb:1 >/dev/null", tar.display()));
    assert_eq!(
        docker("docker run --rm -v keep:/data bb:1 sh -c 'echo kept > /data/f && cat /data/f'"),
        "kept\n"
    );
    // ssh and scp into the VM, with the key hoist made for it; the hostname cloud-init set.
    assert_eq!(sb.ok(&["ssh", "vm", "hostname"]), "vm\n");
    assert_eq!(
        sb.ok(&["ssh", "vm", "cat", "/proc/cmdline"]),
        format!("{append}\n")
    );
    let local = sb.dir.path().join("note.txt");
    fs::write(&local, "to the vm\n").unwrap();
    sb.ok(&["scp", local.to_str().unwrap(), "vm:/root/note.txt"]);
    assert_eq!(
        sb.ok(&["ssh", "vm", "cat", "/root/note.txt"]),
        "to the vm\n"
    );

    // stop: a clean ACPI shutdown; a stopped VM has no URL or IP, as docker-machine says.
    sb.ok(&["stop", "vm"]);
    assert_eq!(sb.ok(&["status", "vm"]), "Stopped\n");
    assert_eq!(qemu_processes(&dir), 0);
    assert!(sb.fails(&["url", "vm"]).contains("Host is not running"));
    assert!(sb.fails(&["ip", "vm"]).contains("Host is not running"));
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}}"]);
    assert_eq!(ls, "vm Stopped\n");
    // start: the same disk (the volume is there), maybe other ports: the record and url follow.
    sb.ok(&["start", "vm"]);
    let (_, engine_port) = ports(&sb, "vm");
    assert_eq!(
        sb.ok(&["url", "vm"]),
        format!("tcp://127.0.0.1:{engine_port}\n")
    );
    assert_eq!(
        docker("docker run --rm -v keep:/data bb:1 busybox cat /data/f"),
        "kept\n"
    );
    sb.ok(&["restart", "vm"]);
    assert_eq!(
        docker("docker run --rm -v keep:/data bb:1 busybox cat /data/f"),
        "kept\n"
    );
    assert_eq!(
        sb.ok(&["ssh", "vm", "cat", "/root/note.txt"]),
        "to the vm\n"
    );

    // kill: at once; rm: no process, no disk, no port in use; the base image untouched.
    sb.ok(&["kill", "vm"]);
    assert_eq!(sb.ok(&["status", "vm"]), "Stopped\n");
    assert_eq!(qemu_processes(&dir), 0);
    sb.ok(&["start", "vm"]);
    let (ssh_port, engine_port) = ports(&sb, "vm");
    sb.ok(&["rm", "-y", "vm"]);
    assert_eq!(qemu_processes(&dir), 0);
    assert!(!dir.exists());
    assert!(port_closed(ssh_port) && port_closed(engine_port));
    let after = fs::metadata(&vm_image().disk).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (base.len(), base.modified().unwrap())
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn two_vms_at_once_get_their_own_ports_and_a_killed_create_is_removed_whole() {
    lab::require();
    let _turn = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
    let mut sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    // a's QEMU stands in for a KVM that boots the VM: auto then keeps KVM, without a warning.
    let (fake, log) = fake_qemu(&mut sb, "works");
    let a = qemu_args("a", &["--qemu-binary", &fake]);
    let b = qemu_args("b", &[]);
    let first = sb.spawn(&a.iter().map(String::as_str).collect::<Vec<_>>(), true);
    let mut second = sb.spawn(&b.iter().map(String::as_str).collect::<Vec<_>>(), true);
    // Both QEMUs run (each forwards its own two ports); then hoist is killed mid-create of b:
    // the record names it, and rm removes it all.
    let (a_dir, b_dir) = (sb.store().machine_dir("a"), sb.store().machine_dir("b"));
    common::eventually(
        std::time::Duration::from_secs(120),
        "both QEMUs started",
        || {
            (a_dir.join("qemu.pid").exists() && b_dir.join("qemu.pid").exists())
                .then_some(())
                .ok_or_else(|| "a qemu.pid is missing".into())
        },
    );
    let mut all = [forwarded_ports(&a_dir), forwarded_ports(&b_dir)].concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "ports shared: {all:?}");
    second.kill().unwrap();
    second.wait().unwrap();
    let out = common::finish(first);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("Warning: KVM"), "{}", stdout(&out));
    assert_eq!(
        sb.ok(&["inspect", "a", "-f", "{{.Driver.AccelUsed}}"]),
        "kvm\n"
    );
    let kinds: Vec<String> = fake_calls(&log)
        .into_iter()
        .map(|(_, a, k)| format!("{a} {k}"))
        .collect();
    assert_eq!(kinds, ["kvm probe", "kvm vm"]);
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.Error}}"]);
    assert!(ls.starts_with("a Running"), "{ls}");
    assert!(ls.contains("b Error create was interrupted"), "{ls}");
    assert_eq!(qemu_processes(&b_dir), 1);
    sb.ok(&["rm", "-y", "b"]);
    assert_eq!(qemu_processes(&b_dir), 0);
    assert!(!b_dir.exists());
    assert_eq!(sb.ok(&["status", "a"]), "Running\n");
    sb.ok(&["rm", "-y", "a"]);
    assert_eq!(qemu_processes(&sb.store().machine_dir("a")), 0);
}

/// An HTTP server of a few files on 127.0.0.1 with range requests; counts the bytes it sent of
/// the first file.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let from: usize = request
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("range")
                        .then(|| value.trim().strip_prefix("bytes="))
                        .flatten()
                })
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let Some(index) = files
                .iter()
                .position(|(name, _)| path == format!("/{name}"))
            else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let body = &files[index].1;
            let status = if from > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let part = &body[from.min(body.len())..];
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                part.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(part);
            if index == 0 {
                counter.fetch_add(part.len() as u64, Ordering::SeqCst);
            }
        }
    });
    (port, sent)
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn bad_inputs_and_downloads_fail_in_one_line_and_leave_nothing_behind() {
    lab::require();
    let sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    sb.create_none("bystander", "tcp://127.0.0.1:1");
    // A small qcow2 to download (its virtual size is 1 GB).
    let small = sb.dir.path().join("small.qcow2");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", small.to_str().unwrap(), "1G"])
        .status_bounded();
    assert!(st.success());
    let body = fs::read(&small).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let sums = format!("{hex}  small.qcow2\n").into_bytes();
    let (port, sent) = serve(vec![("small.qcow2", body.clone()), ("SHA256SUMS", sums)]);
    let url = format!("http://127.0.0.1:{port}/small.qcow2");
    let closed = common::closed_port();
    let unreachable = format!("http://127.0.0.1:{closed}/x.qcow2");
    let right = format!("sha256:{hex}");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--qemu-binary", "qemu-system-nowhere"],
            "qemu-system-nowhere is not installed (on Debian/Ubuntu: apt-get install --no-install-recommends qemu-system-x86 qemu-utils)".into(),
        ),
        (
            vec!["--qemu-image", "/nonexistent/disk.qcow2"],
            "the image \"/nonexistent/disk.qcow2\" does not exist".into(),
        ),
        (
            vec!["--qemu-image", &unreachable, "--qemu-image-checksum", &right],
            format!("cannot fetch http://127.0.0.1:{closed}/x.qcow2: Connection refused"),
        ),
        (
            vec!["--qemu-image", &url, "--qemu-image-checksum", &wrong],
            format!("the image {url} does not match its checksum (sha256 expected {}, got {hex}); a download is discarded", "0".repeat(64)),
        ),
        (
            vec!["--qemu-disk-size", "1"],
            "--qemu-disk-size 1 GB is smaller than the image (3.0 GB)".into(),
        ),
        (
            vec!["--qemu-memory", "99999999"],
            "--qemu-memory 99999999 MB is more than this machine has".into(),
        ),
        (
            vec!["--qemu-accel", "fast"],
            "--qemu-accel \"fast\" is not auto, kvm or tcg".into(),
        ),
        (
            vec!["--qemu-image-checksum", "md5:abc"],
            "--qemu-image-checksum \"md5:abc\" is not sha256:HEX or sha512:HEX".into(),
        ),
    ];
    // The cache directory exists already: what a failed create must not leave is in it.
    let cache = sb.store_path().join("cache");
    fs::create_dir_all(&cache).unwrap();
    for (flags, expected) in cases {
        let before = sb.snapshot();
        let out = run(&sb, &qemu_args("bad", &flags));
        // Pre-create errors are Go-quoted, as docker-machine prints them.
        let err = stderr(&out).replace("\\\"", "\"");
        assert!(!out.status.success(), "{flags:?} succeeded");
        assert!(err.contains(&expected), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flags:?}: {err}");
        assert_eq!(sb.snapshot(), before, "{flags:?} left something behind");
    }
    // The mismatching download was discarded.
    let leftovers: Vec<_> = fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".part")
                || n.to_string_lossy().ends_with("qcow2")),
        "{leftovers:?}"
    );

    // A download checked against the SHA256SUMS beside it, resumed from a partial file: only the
    // rest is fetched. (QEMU is replaced by `false`: nothing boots; the create fails after.)
    let half = body.len() / 2;
    sent.store(0, Ordering::SeqCst);
    let part_name = {
        let out = run(
            &sb,
            &qemu_args("dl", &["--qemu-image", &url, "--qemu-binary", "false"]),
        );
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("QEMU did not start"),
            "{}",
            stderr(&out)
        );
        sb.ok(&["rm", "-y", "dl"]);
        let cached: Vec<String> = fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with("small.qcow2"))
            .collect();
        assert_eq!(cached.len(), 1, "{cached:?}");
        assert_eq!(fs::read(cache.join(&cached[0])).unwrap(), body);
        cached[0].clone()
    };
    assert_eq!(sent.load(Ordering::SeqCst), body.len() as u64);
    // Again from half a file left by an interrupted download.
    fs::remove_file(cache.join(&part_name)).unwrap();
    let part = cache.join(part_name.replace(".qcow2", ".part"));
    fs::write(&part, &body[..half]).unwrap();
    sent.store(0, Ordering::SeqCst);
    let out = run(
        &sb,
        &qemu_args("dl", &["--qemu-image", &url, "--qemu-binary", "false"]),
    );
    assert!(
        stderr(&out).contains("QEMU did not start"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sent.load(Ordering::SeqCst), (body.len() - half) as u64);
    assert_eq!(fs::read(cache.join(&part_name)).unwrap(), body);
    sb.ok(&["rm", "-y", "dl"]);
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn an_image_with_its_own_bootloader_boots_from_qemu_image_alone_and_auto_falls_back_to_tcg() {
    lab::require();
    let _turn = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
    let mut sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    // As a user's cloud image: no kernel, no initrd, the disk's own MBR and syslinux boot it.
    // Its QEMU stands in for a KVM that passes the probe but cannot boot Linux (kvm_pvm): auto
    // starts it under KVM, finds within 30 s that it does not boot, and restarts it under TCG.
    let (fake, log) = fake_qemu(&mut sb, "silent");
    let bootable = &vm_image().bootable;
    let began = now();
    let said = sb.ok(&[
        "create",
        "-d",
        "qemu",
        "--qemu-image",
        bootable,
        "--qemu-binary",
        &fake,
        "cloud",
    ]);
    let warnings: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("Warning: KVM cannot be used ("))
        .collect();
    assert_eq!(warnings.len(), 1, "{said}");
    assert!(
        warnings[0]
            .contains("under KVM it did not boot: the VM did not reach user space within 25s")
            && warnings[0].contains("its console ended with: nothing (the console is empty")
            && warnings[0].ends_with(
                "restarted it under software emulation (TCG), several times slower to boot and run"
            ),
        "{}",
        warnings[0]
    );
    // The probe passed, the VM was started under KVM, and under TCG within 30 s of the create.
    let calls = fake_calls(&log);
    let kinds: Vec<(&str, &str)> = calls
        .iter()
        .map(|(_, a, k)| (a.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("kvm", "probe"), ("kvm", "vm"), ("tcg", "vm")],
        "{calls:?}"
    );
    assert!(
        calls[2].0 - began < 30.0,
        "TCG started {:.1}s after the create",
        calls[2].0 - began
    );
    assert_eq!(
        sb.ok(&["inspect", "cloud", "-f", "{{.Driver.AccelUsed}}"]),
        "tcg\n"
    );
    assert_eq!(qemu_processes(&sb.store().machine_dir("cloud")), 1);
    assert_eq!(sb.ok(&["ssh", "cloud", "hostname"]), "cloud\n");
    let tar = lab::busybox_tarball(sb.dir.path());
    assert_eq!(
        shell_ok(
            &sb,
            &format!(
                "eval $(hoist env cloud) && docker import {} bb:1 >/dev/null && docker run --rm bb:1 busybox echo booted-by-syslinux",
                tar.display()
            )
        ),
        "booted-by-syslinux\n"
    );
    sb.ok(&["rm", "-y", "cloud"]);
    assert_eq!(qemu_processes(&sb.store().machine_dir("cloud")), 0);
}
