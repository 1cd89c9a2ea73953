//! Golden snapshots of qemu machines (`snapshot create|ls|rm`, `create --qemu-snapshot`): real
//! QEMU on the lab's VM image. One golden is shared by the whole lab test: the clones made from
//! it, their identities, their lifecycle, and what may never change the golden.

use crate::common;
use crate::qemu::{BOOTING, KillVmsAtEnd, qemu_args, qemu_processes, run};
use common::Bounded;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Instant;

use common::lab::{self, vm_image};
use common::{Sandbox, shell_ok, stderr, stdout};

/// The SHA-256 of every file of a directory.
fn checksums(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let data = fs::read(e.path()).unwrap();
            let sum = ring::digest::digest(&ring::digest::SHA256, &data);
            let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            (e.file_name().to_string_lossy().to_string(), hex)
        })
        .collect()
}

/// `hoist create -d qemu --qemu-snapshot SNAPSHOT … NAME`.
fn clone_args(snapshot: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["create", "-d", "qemu", "--qemu-snapshot", snapshot]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(name.into());
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// What tells machines apart, read from each (the first thing read: the kernel's random bytes).
#[derive(Debug, Default)]
struct Identity {
    random: String,
    host_key: String,
    machine_id: String,
    hostname: String,
    engine_id: String,
    server_serial: String,
}

fn identity(sb: &Sandbox, name: &str) -> Identity {
    let ssh = |command: &str| sb.ok(&["ssh", name, command]).trim().to_string();
    let random = ssh("head -c 16 /dev/urandom | od -An -tx1 | tr -d ' '");
    let host_key = ssh("cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub");
    let machine_id = ssh("cat /etc/machine-id");
    let hostname = ssh("hostname");
    let engine_id = shell_ok(
        sb,
        &format!("eval $(hoist env {name}) && docker info --format '{{{{.ID}}}}'"),
    )
    .trim()
    .to_string();
    // The certificate the daemon serves is the one in the machine directory.
    let local = sb.store().machine_dir(name).join("server.pem");
    assert_eq!(
        ssh("cat /etc/docker/server.pem"),
        fs::read_to_string(&local).unwrap().trim()
    );
    let serial = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&local)
        .output_bounded();
    Identity {
        random,
        host_key,
        machine_id,
        hostname,
        engine_id,
        server_serial: stdout(&serial).trim().to_string(),
    }
}

/// The types of the host keys in `cat /etc/ssh/ssh_host_*_key.pub`.
fn key_kinds(keys: &str) -> Vec<&str> {
    keys.lines().filter_map(|l| l.split(' ').next()).collect()
}

/// One part of an [`Identity`].
type Field = fn(&Identity) -> &String;

/// Asserts that each field differs between all machines (and from the golden's own machine).
fn all_distinct(ids: &[(&str, Identity)], source: &Identity) {
    let fields: [(&str, Field); 6] = [
        ("random bytes", |i| &i.random),
        ("SSH host key", |i| &i.host_key),
        ("machine ID", |i| &i.machine_id),
        ("hostname", |i| &i.hostname),
        ("Docker engine ID", |i| &i.engine_id),
        ("server certificate serial", |i| &i.server_serial),
    ];
    for (what, field) in fields {
        let values: BTreeSet<&String> = ids.iter().map(|(_, i)| field(i)).collect();
        assert_eq!(values.len(), ids.len(), "{what} shared by clones: {ids:#?}");
        assert!(
            !values.contains(field(source)) || what == "random bytes",
            "{what} of the golden's machine kept: {ids:#?} {source:#?}"
        );
        assert!(
            values.iter().all(|v| !v.is_empty()),
            "{what} empty: {ids:#?}"
        );
    }
}

fn docker_run(sb: &Sandbox, name: &str, tar: &Path) -> String {
    shell_ok(
        sb,
        &format!(
            "eval $(hoist env {name}) && docker import {} bb:1 >/dev/null && docker run --rm bb:1 busybox echo hi from {name}",
            tar.display()
        ),
    )
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn clones_of_one_golden_are_machines_of_their_own_and_the_golden_never_changes() {
    lab::require();
    let _turn = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new();
    let _vms = KillVmsAtEnd(sb.store_path());
    let tar = lab::busybox_tarball(sb.dir.path());
    // The golden's machine runs on a copy of the lab image, so that the test can change it.
    let base = sb.dir.path().join("base.qcow2");
    fs::copy(&vm_image().disk, &base).unwrap();
    let out = run(
        &sb,
        &qemu_args("src", &["--qemu-image", base.to_str().unwrap()]),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let source = identity(&sb, "src");
    let source_keys = sb.ok(&["ssh", "src", "cat /etc/ssh/ssh_host_*_key.pub"]);

    // Bad inputs before there is a snapshot: one line each, nothing made.
    let snapshots = sb.store_path().join(".hoist/snapshots");
    for (args, says) in [
        (
            vec!["snapshot", "create", "src", "bad_name"],
            "invalid snapshot name \"bad_name\"",
        ),
        (
            vec!["snapshot", "create", "nosuch", "g"],
            "Docker machine \"nosuch\" does not exist",
        ),
        (vec!["snapshot", "rm", "g"], "snapshot \"g\" does not exist"),
    ] {
        let err = sb.fails(&args);
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    assert!(!snapshots.join("g").exists());

    // A snapshot taken as soon as `start` returns: the boot's last jobs (cloud-init's final
    // stage) may still run, and the snapshot waits for them, so that no clone inherits them.
    sb.ok(&["stop", "src"]);
    sb.ok(&["start", "src"]);
    let began = Instant::now();
    let said = sb.ok(&["snapshot", "create", "src", "g"]);
    eprintln!("snapshot create: {:.1}s", began.elapsed().as_secs_f64());
    assert!(
        said.contains("Snapshot \"g\" of machine \"src\" saved"),
        "{said}"
    );
    let boot = sb.ok(&["ssh", "src", "systemctl is-system-running || true"]);
    assert!(
        !["starting", "initializing"].contains(&boot.trim()),
        "the snapshot was taken during the boot: {boot} ({said})"
    );
    eprintln!("src after its snapshot: {}", boot.trim());
    let golden = snapshots.join("g");
    let sums = checksums(&golden);
    assert_eq!(
        sums.keys().map(String::as_str).collect::<Vec<_>>(),
        ["disk.qcow2", "id_ed25519", "snapshot.json", "state"]
    );
    // The machine runs on after its snapshot.
    assert_eq!(sb.ok(&["status", "src"]), "Running\n");
    assert!(
        sb.fails(&["snapshot", "create", "src", "g"])
            .contains("snapshot \"g\" exists already")
    );
    // Snapshots are of running machines: the source stops here (which also frees the CPU).
    sb.ok(&["stop", "src"]);
    let err = sb.fails(&["snapshot", "create", "src", "g2"]);
    assert!(
        err.contains("cannot take snapshot \"g2\" of machine \"src\": it is Stopped; snapshots are taken of running machines"),
        "{err}"
    );
    assert!(!snapshots.join("g2").exists());
    let image = vm_image();
    let err = sb.fails(&strs(&clone_args(
        "g",
        "c0",
        &["--qemu-kernel", &image.kernel],
    )));
    assert!(
        err.contains(
            "--qemu-snapshot takes the disk, image and kernel from the snapshot: drop --qemu-kernel"
        ),
        "{err}"
    );
    assert_eq!(sb.ok(&["ls", "-q"]), "src\n");

    // Three clones at once: each loads the state (no cold boot) and comes up on its own ports.
    let began = Instant::now();
    let children: Vec<_> = ["c1", "c2", "c3"]
        .into_iter()
        .map(|name| {
            let args = clone_args("g", name, &[]);
            sb.spawn(&strs(&args), true)
        })
        .collect();
    for child in children {
        let out = common::finish(child);
        let said = stdout(&out);
        assert!(out.status.success(), "{said}{}", stderr(&out));
        assert!(
            said.contains("Starting the VM from snapshot \"g\""),
            "{said}"
        );
        assert!(!said.contains("cannot be loaded"), "{said}");
    }
    eprintln!(
        "3 parallel creates from a golden: {:.1}s",
        began.elapsed().as_secs_f64()
    );
    let disk = fs::metadata(sb.store().machine_dir("c1").join("disk.qcow2")).unwrap();
    assert!(
        disk.len() < 50 << 20,
        "a clone's disk is {} bytes",
        disk.len()
    );
    let ids: Vec<(&str, Identity)> = ["c1", "c2", "c3"]
        .into_iter()
        .map(|name| (name, identity(&sb, name)))
        .collect();
    all_distinct(&ids, &source);
    for (name, id) in &ids {
        assert_eq!(id.hostname, *name);
        assert_eq!(docker_run(&sb, name, &tar), format!("hi from {name}\n"));
        // Each of the golden's host key types (cloud-init made ed25519 alone) was replaced by
        // one hoist made for this machine (ssh-keygen in the VM would have named the golden's
        // host), and the pinned key is the one the machine serves.
        let keys = sb.ok(&["ssh", name, "cat /etc/ssh/ssh_host_*_key.pub"]);
        assert_eq!(key_kinds(&keys), key_kinds(&source_keys), "{keys}");
        let comment = format!(" root@{name}");
        assert!(keys.lines().all(|l| l.ends_with(&comment)), "{keys}");
        let pinned = fs::read_to_string(sb.store().machine_dir(name).join("config.json")).unwrap();
        assert!(
            keys.lines()
                .any(|l| pinned.contains(l.split(' ').nth(1).unwrap())),
            "{name}'s pinned host key is none of {keys}"
        );
    }
    let ls = sb.ok(&["snapshot", "ls"]);
    assert!(ls.starts_with("NAME "), "{ls}");
    let row = ls.lines().find(|l| l.starts_with("g ")).unwrap();
    assert!(
        row.contains(" src ") && row.contains(" qemu ") && row.ends_with("c1,c2,c3"),
        "{ls}"
    );
    let err = sb.fails(&["snapshot", "rm", "g"]);
    assert!(
        err.contains("snapshot \"g\" is used by machines c1, c2, c3: remove them first"),
        "{err}"
    );
    assert_eq!(checksums(&golden), sums);

    // A create killed once its QEMU runs leaves a record that says so, and rm removes it all.
    let args = clone_args("g", "c4", &[]);
    let mut killed = sb.spawn(&strs(&args), true);
    let c4 = sb.store().machine_dir("c4");
    common::eventually(
        std::time::Duration::from_secs(120),
        "c4's QEMU started",
        || {
            c4.join("qemu.pid")
                .exists()
                .then_some(())
                .ok_or_else(|| "no qemu.pid".into())
        },
    );
    killed.kill().unwrap();
    killed.wait().unwrap();
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.Error}}"]);
    assert!(ls.contains("c4 Error create was interrupted"), "{ls}");
    sb.ok(&["rm", "-y", "c4"]);
    assert!(!c4.exists());
    assert_eq!(qemu_processes(&c4), 0);

    // At the same time: c1 keeps a file across stop and start (a cold boot of its overlay, its
    // identity kept), and a clone with other memory cannot load the state: it says so in one line
    // and boots the golden's disk from cold, as a machine of its own.
    std::thread::scope(|scope| {
        let power_cycle = scope.spawn(|| {
            sb.ok(&["ssh", "c1", "echo kept > /root/kept"]);
            sb.ok(&["stop", "c1"]);
            sb.ok(&["start", "c1"]);
            assert_eq!(sb.ok(&["ssh", "c1", "cat /root/kept"]), "kept\n");
            let after = identity(&sb, "c1");
            assert_eq!(
                (&after.hostname, &after.host_key, &after.machine_id),
                (&ids[0].1.hostname, &ids[0].1.host_key, &ids[0].1.machine_id)
            );
        });
        let out = run(&sb, &clone_args("g", "c5", &["--qemu-memory", "1024"]));
        let said = stdout(&out);
        assert!(out.status.success(), "{said}{}", stderr(&out));
        let warnings: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("cannot be loaded"))
            .collect();
        assert_eq!(
            warnings,
            [
                "Warning: the state of snapshot \"g\" cannot be loaded (it was saved with 2 CPUs and 2048 MB, this machine has 2 CPUs and 1024 MB): the machine boots the snapshot's disk from cold instead, as slowly as from an image"
            ],
            "{said}"
        );
        let c5 = identity(&sb, "c5");
        assert_eq!(c5.hostname, "c5");
        assert!(
            ids.iter()
                .all(|(_, i)| i.machine_id != c5.machine_id && i.host_key != c5.host_key)
        );
        assert_ne!(c5.machine_id, source.machine_id);
        docker_run(&sb, "c5", &tar);
        power_cycle.join().unwrap();
    });

    // A changed base: the snapshot cannot be used, in one line, and nothing is made.
    let machines = sb.ok(&["ls", "-q"]);
    let touched = std::process::Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(&base)
        .status_bounded();
    assert!(touched.success());
    let err = sb.fails(&strs(&clone_args("g", "c6", &[])));
    assert!(
        err.contains(r#"snapshot \"g\" cannot be used: its disk is an overlay of the base image"#)
            && err.contains("take the snapshot again")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(sb.ok(&["ls", "-q"]), machines);
    assert!(!sb.store().machine_dir("c6").exists());

    // Removed, the clones leave the golden as it was; then it can go.
    sb.ok(&["rm", "-y", "c1", "c2", "c3", "c5"]);
    assert_eq!(checksums(&golden), sums);
    let ls = sb.ok(&["snapshot", "ls"]);
    assert!(
        ls.lines().any(|l| l.starts_with("g ") && l.ends_with(" -")),
        "{ls}"
    );
    assert_eq!(
        sb.ok(&["snapshot", "rm", "g"]),
        "Successfully removed snapshot g\n"
    );
    assert!(!golden.exists());
    assert_eq!(sb.ok(&["snapshot", "ls"]).lines().count(), 1);
    sb.ok(&["rm", "-y", "src"]);
    assert_eq!(qemu_processes(&sb.store_path()), 0);
}

#[test]
fn snapshot_commands_refuse_what_they_cannot_do_in_one_line_and_change_nothing() {
    let sb = Sandbox::new();
    let daemon = common::FakeDaemon::start(&sb, "24.0.7", common::Behaviour::Answer);
    sb.create_none("plain", &daemon.url());
    let before = sb.snapshot();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["snapshot", "create", "plain", "g"],
            "cannot take snapshot \"g\" of machine \"plain\": the none driver cannot take snapshots of its machines",
        ),
        (
            vec!["snapshot", "create", "plain", "-g"],
            "unexpected argument '-g'",
        ),
        (
            vec!["snapshot", "create", "plain", "a/b"],
            "invalid snapshot name \"a/b\"",
        ),
        (
            vec!["snapshot", "rm", "nosuch"],
            "snapshot \"nosuch\" does not exist",
        ),
        (
            vec!["snapshot", "rm", "../x"],
            "invalid snapshot name \"../x\"",
        ),
        (
            vec!["create", "-d", "qemu", "--qemu-snapshot", "nosuch", "m"],
            r#"Error with pre-create check: "snapshot \"nosuch\" does not exist"#,
        ),
        (
            vec![
                "create",
                "-d",
                "qemu",
                "--qemu-snapshot",
                "x",
                "--qemu-disk-size",
                "40",
                "m",
            ],
            "--qemu-snapshot takes the disk, image and kernel from the snapshot: drop --qemu-disk-size",
        ),
        (
            vec!["create", "-d", "qemu", "--qemu-snapshot", "..", "m"],
            "invalid snapshot name \"..\"",
        ),
    ];
    for (args, says) in cases {
        let out = sb.run(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(sb.snapshot(), before);
    assert!(!sb.store_path().join(".hoist/snapshots").join("g").exists());
    assert_eq!(
        sb.ok(&["snapshot", "ls"]),
        "NAME   MACHINE   DRIVER   CREATED   SIZE   USED BY\n"
    );
    // A snapshot that is not whole (no description) is not one; a corrupt one says so.
    let dir = sb.store_path().join(".hoist/snapshots/broken");
    fs::create_dir_all(&dir).unwrap();
    assert_eq!(sb.ok(&["snapshot", "ls"]).lines().count(), 1);
    fs::write(dir.join("snapshot.json"), "{").unwrap();
    let err = sb.fails(&["create", "-d", "qemu", "--qemu-snapshot", "broken", "m"]);
    assert!(
        err.contains(r#"snapshot \"broken\": "#) && err.contains("is corrupt"),
        "{err}"
    );
    assert!(!sb.store().exists("m"));
}
