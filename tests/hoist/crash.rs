//! Crash safety: hoist killed with SIGKILL at random moments of create and rm, or just before
//! each rename(2) of a CA renewal and of a CA rotation's start, never leaves a record that does
//! not parse, a half-written key or certificate, a certificate with another's key, or a lock that
//! blocks the next command. (The lab tests do the same for provision and regenerate-certs.)

use crate::common;

use std::time::Instant;

use common::{Rng, Sandbox};

/// Four concurrent `create` or `rm` commands of a round, started at once.
fn start_round(sb: &Sandbox, rng: &mut Rng) -> Vec<std::process::Child> {
    (0..4)
        .map(|i| {
            let name = format!("m{}", rng.next(6));
            if rng.next(3) == 0 {
                sb.spawn(&["rm", "-f", &name], false)
            } else {
                let url = format!("tcp://127.0.0.1:{}", 1 + i);
                sb.spawn(&["create", "-d", "none", "--url", &url, &name], false)
            }
        })
        .collect()
}

/// Fails naming any lock of the store that a process still holds.
fn assert_no_lock_held(sb: &Sandbox) {
    let locks = sb.store_path().join(".hoist/locks");
    for entry in std::fs::read_dir(&locks).into_iter().flatten().flatten() {
        let file = std::fs::File::open(entry.path()).unwrap();
        assert!(
            file.try_lock().is_ok(),
            "{} is still held after every hoist was killed",
            entry.path().display()
        );
    }
}

#[test]
fn sigkill_during_create_and_rm_never_corrupts_the_store() {
    let mut rng = Rng::new("crash test");
    // The kills land at random moments of a round's run time as measured here (the slowest of
    // three whole rounds), so that a slow or loaded machine is killed as often mid-create as a
    // fast one.
    let window = (0..3)
        .map(|_| {
            let sb = Sandbox::new();
            let started = Instant::now();
            start_round(&sb, &mut rng)
                .into_iter()
                .for_each(|c| drop(common::finish(c)));
            started.elapsed()
        })
        .max()
        .unwrap();
    eprintln!("a whole round takes {window:?} here");
    let mut sb = Sandbox::new();
    let mut mid_create = 0;
    for round in 0..60 {
        if round % 10 == 0 {
            sb = Sandbox::new(); // a fresh store: kills land in the CA bootstrap too
        }
        let children = start_round(&sb, &mut rng);
        std::thread::sleep(window.mul_f64(rng.next(1000) as f64 / 1000.0));
        children.into_iter().for_each(common::kill9);
        common::check_store(&sb);
        assert_no_lock_held(&sb);
        // Kills that landed in the middle of a create: its record written, the create not
        // finished (certificates being copied into the machine directory, or the final save).
        let store = sb.store();
        mid_create += store
            .list()
            .unwrap()
            .iter()
            .filter(|n| {
                store
                    .load(n)
                    .is_ok_and(|h| h.lifecycle() == hoist::store::config::Lifecycle::Creating)
            })
            .count();
    }
    eprintln!("kills that landed mid-create: {mid_create}");
    assert!(
        mid_create > 0,
        "no kill landed in the middle of a create: the test proved nothing (see the seed above)"
    );
    // The next commands run, and a full create works.
    for name in ["after1", "after2"] {
        sb.ok(&["create", "-d", "none", "--url", "tcp://127.0.0.1:1", name]);
    }
    for name in sb.store().list().unwrap() {
        sb.ok(&["rm", "-f", &name]);
    }
    common::check_store(&sb);
    // The client certificate verifies against the CA: a TLS daemon signed by it accepts it.
    let daemon = common::FakeDaemon::start(&sb, "1.0", common::Behaviour::Answer);
    sb.ok(&["create", "-d", "none", "--url", &daemon.url(), "final"]);
    sb.ok(&["env", "final"]);
}

/// A kill just before each rename of a create that renews an expired CA — the CA's, the client
/// certificate's and the machine directory's pairs are rewritten, the record saved — leaves every
/// certificate with its own key, and the next create works over mutual TLS.
#[test]
fn a_kill_at_each_rename_of_a_ca_renewal_leaves_whole_pairs() {
    let sb = Sandbox::new();
    let template = sb.dir.path().join("template");
    write_expired_ca(&template.join("certs"));
    let args = ["create", "-d", "none", "--url", "tcp://127.0.0.1:1", "new"];
    let killed = sb.kill_at_each_rename(
        &args,
        || restore_store(&sb, &template),
        |n| {
            // Killed between the CA and the client certificate, the client certificate is the
            // previous CA's: the next command remakes it (checked below), so only pairs are checked.
            common::check_pairs(&sb);
            // The next command settles what the kill left and makes what is missing; a daemon
            // with a certificate of the CA it leaves accepts the client certificate.
            sb.create_none("after", "tcp://127.0.0.1:1");
            let daemon = common::FakeDaemon::start(&sb, "27.0.1", common::Behaviour::Answer);
            sb.create_none("tls", &daemon.url());
            assert_eq!(
                sb.ok(&[
                    "ls",
                    "--filter",
                    "name=tls",
                    "--format",
                    "{{.State}} {{.DockerVersion}}"
                ]),
                "Running v27.0.1\n",
                "after a kill before rename {n}"
            );
            common::check_store(&sb);
        },
    );
    eprintln!("killed before each of {killed} renames");
    // CA pair, client pair and the machine directory's pair: two staged files and two renames each.
    assert!(
        killed >= 12,
        "only {killed} renames: the renewal did not run"
    );
    assert!(sb.store().certs_dir().join("ca.pem").exists());
    common::check_store(&sb);
}

/// A CA (and a client certificate it signed) that ended yesterday, written to `dir`.
fn write_expired_ca(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let named = |org: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
    };
    let mut ca = named("tester");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = yesterday - time::Duration::days(365);
    ca.not_after = yesterday;
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut client = named("tester.<bootstrap>");
    client.not_before = ca.not_before;
    client.not_after = yesterday;
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client
        .signed_by(&client_key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("ca-key.pem", ca_key.serialize_pem()),
        ("cert.pem", client_cert.pem()),
        ("key.pem", client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// A kill just before each rename of `regenerate-certs --client-certs` (the start of a CA
/// rotation) leaves whole pairs, and running it again starts the rotation it began: a new CA,
/// with the one before it kept as the previous CA.
#[test]
fn a_kill_at_each_rename_of_a_ca_rotation_start_is_finished_by_the_next_run() {
    let sb = Sandbox::new();
    sb.create_none("m", "tcp://127.0.0.1:1");
    let certs = sb.store().certs_dir();
    let first_ca = std::fs::read(certs.join("ca.pem")).unwrap();
    let template = sb.dir.path().join("template");
    common::copy_dir(&sb.store_path(), &template);
    let args = ["regenerate-certs", "-f", "--client-certs", "m"];
    let killed = sb.kill_at_each_rename(
        &args,
        || restore_store(&sb, &template),
        |n| {
            common::check_pairs(&sb);
            // The machine is not provisioned (none driver): the run ends in an error after the
            // store's part of the rotation.
            let out = sb.run(&args);
            assert!(
                common::stderr(&out).contains("uses the none driver"),
                "{}",
                common::stderr(&out)
            );
            let ca = std::fs::read(certs.join("ca.pem"));
            assert!(
                ca.is_ok_and(|ca| ca != first_ca),
                "after a kill before rename {n}, the next run made no new CA"
            );
            assert_eq!(
                std::fs::read(certs.join("ca-previous.pem")).unwrap(),
                first_ca,
                "after a kill before rename {n}"
            );
            common::check_pairs(&sb);
        },
    );
    eprintln!("killed before each of {killed} renames");
    assert!(
        killed >= 9,
        "only {killed} renames: the rotation did not run"
    );
}

/// Puts the sandbox's store back as `template` holds it.
fn restore_store(sb: &Sandbox, template: &std::path::Path) {
    let _ = std::fs::remove_dir_all(sb.store_path());
    common::copy_dir(template, &sb.store_path());
}
