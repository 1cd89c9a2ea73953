//! The qemu driver's decisions, without QEMU, KVM or root: the state it reports from a pidfile, a
//! stop mark and QMP's answer (a stand-in QMP server); the acceleration it chooses from what a
//! stand-in QEMU binary does with KVM (both branches, whatever this host's KVM does); the flags
//! and host checks it refuses before anything is made.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::driver::FlagValue;
use crate::report::Recorder;

/// A qemu driver for machine `vm` in a store under `dir`, with `config` over the defaults.
fn driver(dir: &Path, config: impl FnOnce(&mut QemuDriver)) -> (Qemu, Arc<Recorder>) {
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("machines/vm")).unwrap();
    let mut c = QemuDriver {
        base: BaseDriver::new("vm", &store.to_string_lossy()),
        accel: "auto".into(),
        binary: "qemu-system-x86_64".into(),
        ..QemuDriver::default()
    };
    config(&mut c);
    let report = Arc::new(Recorder::default());
    let qemu = Qemu {
        config: c,
        env: DriverEnv::new("vm", report.clone()),
        from_golden: None,
    };
    (qemu, report)
}

/// An executable shell script at `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    crate::fsutil::write_sh_script(&path, body);
    path
}

/// A process that stands for the VM's QEMU: alive, its command line naming the pidfile (as
/// QEMU's `-pidfile` does), its pid in the pidfile. Killed when dropped.
struct FakeVm(std::process::Child);

impl FakeVm {
    fn start(machine_dir: &Path) -> FakeVm {
        let pidfile = machine_dir.join(vm::PIDFILE);
        let child = std::process::Command::new("sleep")
            .arg0(format!("qemu -pidfile {}", pidfile.display()))
            .arg("60")
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, child.id().to_string()).unwrap();
        // Until its exec, the child's command line is the test's.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        crate::fsutil::wait_until("the stand-in VM runs", || {
            std::fs::read(&cmdline)
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*pidfile.to_string_lossy()))
        });
        FakeVm(child)
    }
}

impl Drop for FakeVm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QMP server on the machine's socket that answers one connection: its greeting, then
/// `{"return": {}}` to the capabilities and `answer` to the command.
fn fake_qmp(machine_dir: &Path, answer: &'static str) -> std::thread::JoinHandle<Vec<String>> {
    let listener = UnixListener::bind(machine_dir.join(vm::QMP_SOCKET)).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut asked = Vec::new();
        writeln!(
            writer,
            r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#
        )
        .unwrap();
        let mut lines = BufReader::new(stream).lines();
        for reply in [r#"{"return": {}}"#, answer] {
            asked.push(lines.next().unwrap().unwrap());
            writeln!(writer, "{reply}").unwrap();
        }
        asked
    })
}

#[tokio::test]
async fn the_state_is_qemus_own_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, _) = driver(dir.path(), |_| {});
    let machine = qemu.dir();
    let _vm = FakeVm::start(&machine);
    // Alive, QMP not answering yet: starting.
    assert_eq!(qemu.state().await.unwrap(), State::Starting);
    for (status, state) in [
        ("running", State::Running),
        ("paused", State::Paused),
        ("shutdown", State::Stopping),
        ("inmigrate", State::Starting),
        ("internal-error", State::Error),
    ] {
        let _ = std::fs::remove_file(machine.join(vm::QMP_SOCKET));
        let answer =
            Box::leak(format!(r#"{{"return": {{"status": "{status}"}}}}"#).into_boxed_str());
        let server = fake_qmp(&machine, answer);
        assert_eq!(qemu.state().await.unwrap(), state, "{status}");
        let asked = server.join().unwrap();
        assert!(asked[0].contains("qmp_capabilities"), "{asked:?}");
        assert!(asked[1].contains("query-status"), "{asked:?}");
    }
}

#[tokio::test]
async fn a_qemu_that_is_gone_is_stopped_only_when_hoist_stopped_it() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, _) = driver(dir.path(), |_| {});
    let machine = qemu.dir();
    // No disk yet (a create that has not made it): stopped.
    assert_eq!(qemu.state().await.unwrap(), State::Stopped);
    std::fs::write(machine.join(vm::DISK), "").unwrap();
    std::fs::write(
        machine.join(vm::CONSOLE),
        "[ ok ] booted\nKernel panic - not syncing\n",
    )
    .unwrap();
    // A pidfile of a process that is not this VM's QEMU (a reused pid) counts as none.
    std::fs::write(machine.join(vm::PIDFILE), std::process::id().to_string()).unwrap();
    let err = qemu.state().await.unwrap_err().to_string();
    assert!(
        err.starts_with("QEMU is not running and hoist did not stop it")
            && err.contains("Kernel panic - not syncing"),
        "{err}"
    );
    std::fs::write(machine.join(vm::STOPPED_MARK), "").unwrap();
    assert_eq!(qemu.state().await.unwrap(), State::Stopped);
}

/// A stand-in QEMU that records that it ran, then does `then`.
fn probe_binary(dir: &Path, then: &str) -> (String, PathBuf) {
    let ran = dir.join("ran");
    let path = script(
        dir,
        "qemu",
        &format!("echo \"$@\" >> {}\n{then}", ran.display()),
    );
    (path.to_string_lossy().into_owned(), ran)
}

#[tokio::test]
async fn kvm_that_runs_the_probe_guest_is_used_and_tcg_asked_for_probes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The probe guest's exit through isa-debug-exit: (0x31 << 1) | 1.
    let (binary, ran) = probe_binary(dir.path(), "exit 99");
    let (qemu, _) = driver(dir.path(), |c| c.binary = binary.clone());
    assert_eq!(qemu.choose_accel(dir.path()).await.unwrap(), Accel::Kvm);
    let args = std::fs::read_to_string(&ran).unwrap();
    assert!(
        args.contains("-accel kvm") && args.contains("isa-debug-exit"),
        "{args}"
    );
    std::fs::remove_file(&ran).unwrap();
    let (qemu, _) = driver(dir.path(), |c| {
        c.binary = binary.clone();
        c.accel = "tcg".into();
    });
    assert_eq!(
        qemu.choose_accel(dir.path()).await.unwrap(),
        Accel::Tcg(None)
    );
    assert!(
        !ran.exists(),
        "the KVM probe ran although tcg was asked for"
    );
}

#[tokio::test]
async fn kvm_refused_falls_back_with_auto_and_fails_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    for (stderr, why) in [
        (
            "Could not access KVM kernel module: No such file or directory",
            "there is no /dev/kvm",
        ),
        (
            "Could not access KVM kernel module: Permission denied",
            "no permission to open /dev/kvm (add the user to group kvm)",
        ),
        (
            "qemu: KVM_RUN failed: \x1b[31mInvalid argument",
            "KVM does not run guests here (nested virtualisation off?): qemu: KVM_RUN failed: [31mInvalid argument",
        ),
    ] {
        let (binary, _) = probe_binary(
            dir.path(),
            &format!("printf '%s\\n' '{stderr}' >&2; exit 1"),
        );
        let (auto, report) = driver(dir.path(), |c| c.binary = binary.clone());
        assert_eq!(
            auto.choose_accel(dir.path()).await.unwrap(),
            Accel::Tcg(Some(why.to_string()))
        );
        let (mut auto, _) = (auto, ());
        auto.settle_accel().await.unwrap();
        assert_eq!(auto.config.accel_used, "tcg");
        assert_eq!(
            report.lines(),
            [format!(
                "Warning: KVM cannot be used ({why}): the VM runs under software emulation (TCG), several times slower to boot and run"
            )]
        );
        let (kvm, _) = driver(dir.path(), |c| {
            c.binary = binary.clone();
            c.accel = "kvm".into();
        });
        assert_eq!(
            kvm.choose_accel(dir.path()).await.unwrap_err().to_string(),
            format!(
                "--qemu-accel kvm cannot work here: {why}; use --qemu-accel tcg (software emulation) or auto"
            )
        );
    }
    // No probe file is left in the scratch directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hoist-kvm-probe")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The flags of a create with `set` over the defaults of the driver's flag table.
fn flags(set: &[(&str, FlagValue)]) -> FlagValues {
    let mut values = FlagValues::default();
    for flag in super::flags() {
        values.set(&flag.name, flag.default_value());
    }
    for (name, value) in set {
        values.set(name, value.clone());
    }
    values
}

#[test]
fn bad_flags_are_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = script(dir.path(), "vmlinuz", "");
    let kernel = kernel.to_string_lossy().into_owned();
    let s = |v: &str| FlagValue::String(v.into());
    let cases: Vec<(Vec<(&str, FlagValue)>, String)> = vec![
        (
            vec![("qemu-cpu-count", FlagValue::Int(0))],
            "--qemu-cpu-count 0 must be a positive number".into(),
        ),
        (
            vec![("qemu-memory", FlagValue::Int(-5))],
            "--qemu-memory -5 must be a positive number".into(),
        ),
        (
            vec![("qemu-accel", s("hvf"))],
            "--qemu-accel \"hvf\" is not auto, kvm or tcg".into(),
        ),
        (
            vec![("qemu-kernel", s("/nonexistent/vmlinuz"))],
            "--qemu-kernel \"/nonexistent/vmlinuz\" does not exist".into(),
        ),
        (
            vec![("qemu-initrd", s(&kernel))],
            "--qemu-initrd needs --qemu-kernel".into(),
        ),
        (
            vec![("qemu-snapshot", s("gold")), ("qemu-kernel", s(&kernel))],
            "--qemu-snapshot takes the disk, image and kernel from the snapshot: drop --qemu-kernel"
                .into(),
        ),
        (
            vec![("qemu-snapshot", s("gold")), ("qemu-disk-size", FlagValue::Int(40))],
            "--qemu-snapshot takes the disk, image and kernel from the snapshot: drop --qemu-disk-size"
                .into(),
        ),
    ];
    for (set, expected) in cases {
        let (mut qemu, _) = driver(dir.path(), |_| {});
        let err = qemu.check_flags(&flags(&set)).unwrap_err().to_string();
        assert_eq!(err, expected, "{set:?}");
    }
    // The defaults pass, and a relative kernel path is made absolute.
    let (mut qemu, _) = driver(dir.path(), |_| {});
    qemu.check_flags(&flags(&[])).unwrap();
    assert_eq!((qemu.config.cpus, qemu.config.memory), (2, 2048));
    assert_eq!(qemu.config.base.ip_address, "127.0.0.1");
}

#[test]
fn the_host_is_checked_for_qemu_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, _) = driver(dir.path(), |c| {
        c.binary = "/nonexistent/qemu-system-x86_64".into();
        c.memory = 1;
    });
    assert_eq!(
        qemu.check_host().unwrap_err().to_string(),
        "/nonexistent/qemu-system-x86_64 is not installed (on Debian/Ubuntu: apt-get install --no-install-recommends qemu-system-x86 qemu-utils)"
    );
    let (qemu, _) = driver(dir.path(), |c| {
        c.binary = script(dir.path(), "qemu", "")
            .to_string_lossy()
            .into_owned();
        c.memory = u64::MAX >> 20;
    });
    let err = qemu.check_host().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "--qemu-memory {} MB is more than this machine has (",
            u64::MAX >> 20
        )),
        "{err}"
    );
}
