//! `export` / `import`: archives of machines between stores, and every kind of bad archive
//! refused with one line and nothing written.

use crate::common;

use std::fs;

use common::{Behaviour, FakeDaemon, Sandbox, stdout};

/// A tar member with a raw name and type (the tar crate's builder refuses hostile names).
fn raw_member(name: &[u8], kind: tar::EntryType, data: &[u8], claimed: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(claimed);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// The members of a real export, with `extra` raw members appended and the end of archive.
fn export_plus(export: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut archive = tar::Archive::new(export);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path_bytes().to_vec();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.extend(raw_member(
            &name,
            tar::EntryType::Regular,
            &data,
            data.len() as u64,
        ));
    }
    for member in extra {
        out.extend_from_slice(member);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

#[test]
fn a_machine_moves_to_another_store_with_its_paths_and_certificates() {
    let a = Sandbox::new();
    let daemon = FakeDaemon::start(&a, "24.0.7", Behaviour::Answer);
    a.create_none("web", &daemon.url());
    let out = a.run(&["export", "web", "-o", "-"]);
    assert!(out.status.success());
    let plain = out.stdout;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("private keys, unencrypted"), "{stderr}");
    let names: Vec<String> = tar::Archive::new(plain.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"machine/config.json".into()), "{names:?}");
    assert!(!names.contains(&"auth/ca-key.pem".into()), "{names:?}");

    // Another store with a CA of its own: the machine keeps the CA it was made with.
    let b = Sandbox::new();
    b.create_none("local", "tcp://127.0.0.1:1");
    let archive = b.dir.path().join("web.tar");
    fs::write(&archive, &plain).unwrap();
    let archive = archive.to_str().unwrap();
    let imported = b.ok(&["import", archive, "--name", "w2"]);
    assert!(
        imported.contains("trusting its own CA (without its key"),
        "{imported}"
    );
    let dir = b.store().machine_dir("w2");
    let f = |t: &str| b.ok(&["inspect", "w2", "-f", t]);
    assert_eq!(
        f("{{.Name}} {{.Driver.MachineName}} {{.HostOptions.AuthOptions.StorePath}}"),
        format!("w2 w2 {}\n", dir.display())
    );
    assert_eq!(
        f("{{.HostOptions.AuthOptions.CaCertPath}}"),
        format!("{}\n", dir.join("ca.pem").display())
    );
    assert_eq!(
        fs::read(dir.join("ca.pem")).unwrap(),
        fs::read(a.store_path().join("certs/ca.pem")).unwrap()
    );
    // The daemon (which trusts the exporting store's CA) accepts the imported certificates.
    let env = b.ok(&["env", "w2"]);
    assert!(
        env.contains(&format!("DOCKER_CERT_PATH=\"{}\"", dir.display())),
        "{env}"
    );

    // Nothing of an existing machine is overwritten.
    let before = b.snapshot();
    let err = b.fails(&["import", archive, "--name", "w2"]);
    assert_eq!(
        err,
        "machine \"w2\" already exists in this store; import it under another name with --name\n"
    );
    assert_eq!(b.snapshot(), before);

    // Encrypted, with the CA: a wrong passphrase is refused; the right one imports it, and
    // certificates can be regenerated in the new store.
    let mut a = a;
    a.set("HOIST_PASSPHRASE", "correct horse");
    let sealed = a.dir.path().join("web.tar.age");
    a.ok(&[
        "export",
        "--with-ca",
        "--passphrase",
        "web",
        "-o",
        sealed.to_str().unwrap(),
    ]);
    assert!(
        fs::read(&sealed)
            .unwrap()
            .starts_with(b"age-encryption.org/v1")
    );
    let err = a.fails(&["export", "web", "-o", sealed.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    let mut b = b;
    b.set("HOIST_PASSPHRASE", "wrong");
    let before = b.snapshot();
    let err = b.fails(&["import", sealed.to_str().unwrap()]);
    assert!(err.starts_with("cannot decrypt the archive"), "{err}");
    assert_eq!(b.snapshot(), before);
    b.set("HOIST_PASSPHRASE", "correct horse");
    let imported = b.ok(&["import", sealed.to_str().unwrap()]);
    assert!(imported.contains("with its key"), "{imported}");
    assert!(b.store().machine_dir("web").join("ca-key.pem").exists());

    // Into a store that has the same CA: the machine uses the store's.
    let c = Sandbox::new();
    fs::create_dir_all(c.store_path().join("certs")).unwrap();
    for f in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        fs::copy(
            a.store_path().join("certs").join(f),
            c.store_path().join("certs").join(f),
        )
        .unwrap();
    }
    let imported = c.ok(&["import", archive]);
    assert!(imported.contains("trusting this store's CA"), "{imported}");
    assert_eq!(
        c.ok(&[
            "inspect",
            "web",
            "-f",
            "{{.HostOptions.AuthOptions.CaCertPath}}"
        ]),
        format!("{}\n", c.store_path().join("certs/ca.pem").display())
    );
    common::check_store(&c);
    assert!(stdout(&c.run(&["ls", "-q"])).contains("web"));
}

#[test]
fn hostile_foreign_and_corrupt_archives_are_refused_and_nothing_is_written() {
    let a = Sandbox::new();
    a.create_none("web", "tcp://127.0.0.1:1");
    let export = a.run(&["export", "web", "-o", "-"]).stdout;
    let regular = tar::EntryType::Regular;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a path that escapes",
            export_plus(
                &export,
                &[raw_member(b"machine/../../../tmp/evil", regular, b"x", 1)],
            ),
            "refused archive: member \"machine/../../../tmp/evil\" is not part of a machine export",
        ),
        (
            "an absolute path",
            export_plus(
                &export,
                &[raw_member(b"/etc/cron.d/evil", regular, b"x", 1)],
            ),
            "refused archive: member \"/etc/cron.d/evil\" is not part of a machine export",
        ),
        (
            "a symlink",
            export_plus(
                &export,
                &[raw_member(
                    b"machine/id_rsa",
                    tar::EntryType::Symlink,
                    b"",
                    0,
                )],
            ),
            "refused archive: member \"machine/id_rsa\" is not a plain file (Symlink)",
        ),
        (
            "a huge member",
            export_plus(
                &export,
                &[raw_member(b"machine/big", regular, b"", 100 << 20)],
            ),
            "refused archive: member \"machine/big\" claims 104857600 bytes, more than any file of a machine",
        ),
        (
            "a member twice",
            export_plus(
                &export,
                &[raw_member(b"machine/config.json", regular, b"{}", 2)],
            ),
            "refused archive: member \"machine/config.json\" appears twice",
        ),
        (
            "a foreign tar",
            {
                let mut t = raw_member(b"machine/notes.txt", regular, b"hi", 2);
                t.extend_from_slice(&[0; 1024]);
                t
            },
            "refused archive: not a machine export of hoist (no hoist-export.json)",
        ),
        (
            "not an archive",
            b"PK\x03\x04 this is a zip, or anything".repeat(40),
            "refused archive: not a tar archive",
        ),
    ];
    let b = Sandbox::new();
    b.create_none("bystander", "tcp://127.0.0.1:1");
    for (what, bytes, expected) in cases {
        let path = b.dir.path().join("archive.tar");
        fs::write(&path, &bytes).unwrap();
        let before = b.snapshot();
        let err = b.fails(&["import", path.to_str().unwrap(), "--name", "x"]);
        assert!(err.starts_with(expected), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert_eq!(b.snapshot(), before, "{what} changed the store");
        assert!(!std::path::Path::new("/tmp/evil").exists());
    }
    // A file larger than any archive is not even read whole.
    let big = b.dir.path().join("big.tar");
    fs::File::create(&big).unwrap().set_len(17 << 20).unwrap();
    let err = b.fails(&["import", big.to_str().unwrap()]);
    assert_eq!(err, "refused archive: larger than any machine archive\n");
    // A bad name for the imported machine, and a machine that does not exist.
    let good = b.dir.path().join("good.tar");
    fs::write(&good, &export).unwrap();
    let err = b.fails(&["import", good.to_str().unwrap(), "--name", "../x"]);
    assert!(err.contains("Invalid hostname"), "{err}");
    let err = a.fails(&["export", "ghost", "-o", "-"]);
    assert!(
        err.starts_with("Docker machine \"ghost\" does not exist."),
        "{err}"
    );
}

#[test]
fn a_local_vm_is_not_exported() {
    // A qemu machine's directory holds its disk (here 64 MiB, sparse; gigabytes in use): export
    // refuses at once, before reading any of it, and writes no archive.
    let sb = Sandbox::new();
    sb.create_none("vm", "tcp://127.0.0.1:1");
    let dir = sb.store_path().join("machines/vm");
    let config = dir.join("config.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    record["DriverName"] = "qemu".into();
    fs::write(&config, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    fs::File::create(dir.join("disk.qcow2"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let before = sb.snapshot();
    let out_file = sb.dir.path().join("vm.tar");
    let err = sb.fails(&["export", "vm", "-o", out_file.to_str().unwrap()]);
    assert_eq!(
        err,
        "cannot export machine \"vm\": it is a qemu VM on this computer, whose disk and process stay here; export moves machines that run elsewhere (generic, amazonec2, plugin drivers)\n"
    );
    assert!(!out_file.exists());
    assert_eq!(sb.snapshot(), before);
}
