//! Crash safety: hoist killed with SIGKILL at random moments of create and rm never leaves a
//! record that does not parse, a half-written key or certificate, or a lock that blocks the next
//! command. (The lab tests do the same for provision and regenerate-certs.)

use crate::common;

use std::time::{Duration, Instant};

use common::{Rng, Sandbox};

#[test]
fn sigkill_during_create_and_rm_never_corrupts_the_store() {
    let mut rng = Rng::new("crash test");
    let mut sb = Sandbox::new();
    let mut mid_create = 0;
    for round in 0..60 {
        if round % 10 == 0 {
            sb = Sandbox::new(); // a fresh store: kills land in the CA bootstrap too
        }
        let mut children = Vec::new();
        for i in 0..4 {
            let name = format!("m{}", rng.next(6));
            let child = if rng.next(3) == 0 {
                sb.spawn(&["rm", "-f", &name], false)
            } else {
                let url = format!("tcp://127.0.0.1:{}", 1 + i);
                sb.spawn(&["create", "-d", "none", "--url", &url, &name], false)
            };
            children.push(child);
        }
        std::thread::sleep(Duration::from_micros(rng.next(25_000)));
        children.into_iter().for_each(common::kill9);
        common::check_store(&sb);
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
    // No lock is left behind: the next commands run at once, and a full create works.
    let started = Instant::now();
    for name in ["after1", "after2"] {
        sb.ok(&["create", "-d", "none", "--url", "tcp://127.0.0.1:1", name]);
    }
    for name in sb.store().list().unwrap() {
        sb.ok(&["rm", "-f", &name]);
    }
    // A lock left behind would make these wait forever; a minute is never reached otherwise.
    assert!(started.elapsed() < Duration::from_secs(60));
    common::check_store(&sb);
    // The client certificate verifies against the CA: a TLS daemon signed by it accepts it.
    let daemon = common::FakeDaemon::start(&sb, "1.0", common::Behaviour::Answer);
    sb.ok(&["create", "-d", "none", "--url", &daemon.url(), "final"]);
    sb.ok(&["env", "final"]);
}
