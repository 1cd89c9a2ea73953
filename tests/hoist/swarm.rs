//! Swarm mode across lab machines: real dockerd swarms formed by hoist through the Docker API,
//! used with the real docker CLI. Services use `--endpoint-mode dnsrr` and host-mode ports: the
//! lab's kernel has no IPVS (see LAB.md).

use crate::common;

use std::time::{Duration, Instant};

use common::lab::{self, LabHost, Variant};
use common::{Sandbox, eventually, shell, shell_ok, stderr, stdout};

/// Creates one machine per host, in parallel, named `names`.
fn machines(sb: &Sandbox, hosts: &[LabHost], names: &[&str]) {
    let children: Vec<_> = hosts
        .iter()
        .zip(names)
        .map(|(h, name)| {
            let args = lab::generic_args(h, name);
            sb.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), true)
        })
        .collect();
    assert_eq!(common::wait_all_creating_one_ca(children), 1);
}

/// Imports the busybox image as `bb:1` on each machine (there is no registry to pull from).
fn import_busybox(sb: &Sandbox, names: &[&str]) {
    let tar = lab::busybox_tarball(sb.dir.path());
    let script: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "(eval $(hoist env {n}) && docker import {} bb:1 >/dev/null) &",
                tar.display()
            )
        })
        .collect();
    shell_ok(sb, &format!("{} wait", script.join(" ")));
}

/// `swarm ls MANAGER`: its table, or its error line.
fn swarm_ls(sb: &Sandbox, manager: &str) -> Result<String, String> {
    let out = sb.run(&["swarm", "ls", manager]);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(stderr(&out))
    }
}

/// The row of a machine in a `swarm ls` table, split into its columns.
fn row_of(table: &str, machine: &str) -> Option<Vec<String>> {
    table.lines().find_map(|l| {
        let cols: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        (cols.first().map(String::as_str) == Some(machine)).then_some(cols)
    })
}

/// The `swarm ls` row of a machine, split into its columns.
fn node_row(sb: &Sandbox, manager: &str, machine: &str) -> Option<Vec<String>> {
    row_of(&swarm_ls(sb, manager).ok()?, machine)
}

/// Waits until `swarm ls boss` shows machine `w2` in state `state`.
fn w2_shown(sb: &Sandbox, state: &str, limit: Duration) {
    eventually(limit, &format!("w2 shown {state}"), || {
        let table = swarm_ls(sb, "boss")?;
        match row_of(&table, "w2") {
            Some(row) if row.iter().any(|col| col == state) => Ok(()),
            _ => Err(table),
        }
    });
}

/// The docker CLI against a swarm manager reached through `hoist env --swarm NAME`.
fn docker_swarm(sb: &Sandbox, name: &str, command: &str) -> String {
    shell_ok(
        sb,
        &format!("eval $(hoist env --swarm {name}) && {command}"),
    )
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn three_machines_run_a_service_on_every_node_and_an_overlay_network_between_hosts() {
    lab::require();
    let hosts = LabHost::start_many(3, Variant::Docker, false);
    let sb = Sandbox::new();
    let names = ["m1", "m2", "m3"];
    // m1 starts a swarm as it is created, m2 (created beside it) joins by command, m3 joins as
    // it is created.
    let first = std::thread::scope(|s| {
        let m2 = s.spawn(|| lab::create_generic(&sb, &hosts[1], "m2", &[]));
        let m1 = lab::create_generic(&sb, &hosts[0], "m1", &["--swarm-mode-init"]);
        assert!(m2.join().unwrap().status.success());
        m1
    });
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("Machine \"m1\" is the manager of new swarm \"m1\"")
            && stdout(&first).contains(&format!("advertised at {}:2377", hosts[0].ip)),
        "{}",
        stdout(&first)
    );
    assert_eq!(
        sb.ok(&["swarm", "join", "m1", "m2"]),
        "Machine \"m2\" joined swarm \"m1\" as a worker.\n"
    );
    let third = lab::create_generic(&sb, &hosts[2], "m3", &["--swarm-mode-join", "m1"]);
    assert!(
        stdout(&third).ends_with("Machine \"m3\" joined swarm \"m1\" as a worker.\n"),
        "{}{}",
        stdout(&third),
        stderr(&third)
    );
    // Joining again leaves them as they are.
    assert!(
        sb.ok(&["swarm", "join", "m1", "m2"])
            .contains("already a worker")
    );
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.Name}}|{{.Swarm}}"]),
        "m1|m1 (manager)\nm2|m1 (worker)\nm3|m1 (worker)\n"
    );
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "swarm=m1"]), "m1\nm2\nm3\n");
    let ls = sb.ok(&["swarm", "ls"]);
    assert!(ls.starts_with("MACHINE   NODE ID"), "{ls}");
    for name in names {
        let row = node_row(&sb, "m1", name).unwrap_or_else(|| panic!("{name} not in {ls}"));
        let role = if name == "m1" { "manager" } else { "worker" };
        assert_eq!(row[2], role, "{ls}");
        assert!(row.contains(&"ready".to_string()), "{ls}");
    }
    // env --swarm of a worker reaches a manager; the real docker CLI sees the swarm.
    let env = sb.ok(&["env", "--swarm", "m3"]);
    assert!(
        env.contains(&format!("DOCKER_HOST=\"tcp://{}:2376\"", hosts[0].ip)),
        "{env}"
    );
    assert_eq!(
        docker_swarm(&sb, "m3", "docker node ls -q | wc -l").trim(),
        "3"
    );

    import_busybox(&sb, &names);
    docker_swarm(
        &sb,
        "m2",
        "docker service create -q --no-resolve-image --name sleeper --replicas 6 --endpoint-mode dnsrr bb:1 busybox sleep 3600",
    );
    let running = docker_swarm(
        &sb,
        "m2",
        "docker service ps sleeper --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'",
    );
    let mut nodes: Vec<&str> = running
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(nodes.len(), 6, "{running}");
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes, names, "{running}");

    // An overlay network across hosts: a container on m1 reaches a task pinned to m3.
    docker_swarm(
        &sb,
        "m1",
        "docker network create -d overlay --attachable ov1 >/dev/null && docker service create -q --no-resolve-image --name web --network ov1 --endpoint-mode dnsrr --constraint node.hostname==m3 bb:1 sh -c 'mkdir -p /www && echo hello-overlay > /www/index.html && exec busybox httpd -f -p 8080 -h /www'",
    );
    let fetched = shell_ok(
        &sb,
        r#"eval $(hoist env m1) && docker run --rm --network ov1 bb:1 sh -c 'ip=$(busybox nslookup tasks.web 127.0.0.11 | busybox awk "/^Address/ {a=\$NF} END {print a}"); printf "GET / HTTP/1.0\r\n\r\n" | busybox nc $ip 8080'"#,
    );
    assert!(fetched.contains("hello-overlay"), "{fetched}");

    // rm of a worker: drained, out of the swarm, off the manager's node list.
    sb.ok(&["rm", "-y", "m3"]);
    assert!(node_row(&sb, "m1", "m3").is_none());
    assert_eq!(
        docker_swarm(&sb, "m1", "docker node ls -q | wc -l").trim(),
        "2"
    );
    assert_eq!(
        hosts[2]
            .sh("docker info --format '{{.Swarm.LocalNodeState}}'")
            .trim(),
        "inactive"
    );
    // `swarm leave` of the other worker, then the last manager only with --force.
    assert_eq!(
        sb.ok(&["swarm", "leave", "m2"]),
        "Machine \"m2\" was drained and left swarm \"m1\".\n"
    );
    let err = sb.fails(&["rm", "-y", "m1"]);
    assert!(
        err.contains("it is the last manager of swarm \"m1\"") && err.contains("--force"),
        "{err}"
    );
    assert!(sb.store_path().join("machines/m1").exists());
    assert!(
        sb.ok(&["rm", "-f", "m1"])
            .contains("Successfully removed m1")
    );
    assert_eq!(
        hosts[0]
            .sh("docker info --format '{{.Swarm.LocalNodeState}}'")
            .trim(),
        "inactive"
    );
    // Join tokens are never written to the store.
    let grep = shell(&sb, "grep -rl SWMTKN \"$MACHINE_STORAGE_PATH\"");
    assert_eq!(stdout(&grep), "", "a join token in the store");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn eight_machines_join_at_once_and_three_managers_keep_their_quorum() {
    lab::require();
    let hosts = LabHost::start_many(9, Variant::Docker, false);
    let sb = Sandbox::new();
    let names = ["boss", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"];
    machines(&sb, &hosts, &names);
    // The swarm's own address pool for its overlay networks (inside the lab hosts only).
    sb.ok(&[
        "swarm",
        "init",
        "--default-addr-pool",
        "10.123.0.0/16",
        "--default-addr-pool-mask-length",
        "26",
        "boss",
    ]);
    assert_eq!(
        docker_swarm(
            &sb,
            "boss",
            "docker info --format '{{json .Swarm.Cluster.DefaultAddrPool}} {{.Swarm.Cluster.SubnetSize}}'"
        )
        .trim(),
        "[\"10.123.0.0/16\"] 26"
    );
    let started = Instant::now();
    let mut join = vec!["swarm", "join", "boss"];
    join.extend(&names[1..]);
    let joined = sb.ok(&join);
    eprintln!("8 machines joined in {:?}", started.elapsed());
    assert_eq!(
        joined.matches("joined swarm \"boss\" as a worker").count(),
        8
    );
    assert!(!joined.contains("SWMTKN"), "{joined}");
    let ls = sb.ok(&["swarm", "ls", "boss"]);
    assert_eq!(ls.matches(" ready ").count(), 9, "{ls}");

    // A machine in another swarm is refused; so is a join the manager's port 2377 refuses.
    sb.ok(&["swarm", "leave", "w8"]);
    sb.ok(&["swarm", "init", "w8"]);
    let err = sb.fails(&["swarm", "join", "boss", "w8"]);
    assert!(err.contains("machine \"w8\" is in another swarm"), "{err}");
    sb.ok(&["swarm", "leave", "--force", "w8"]);
    hosts[0].sh("iptables -I INPUT -p tcp --dport 2377 -j REJECT");
    let err = sb.fails(&["swarm", "join", "boss", "w8"]);
    assert!(
        err.contains("could not join swarm \"boss\"")
            && err.contains("2377/tcp")
            && err.contains("7946/tcp")
            && err.contains("4789/udp"),
        "{err}"
    );
    hosts[0].sh("iptables -D INPUT -p tcp --dport 2377 -j REJECT");
    assert_eq!(
        hosts[8]
            .sh("docker info --format '{{.Swarm.LocalNodeState}}'")
            .trim(),
        "inactive"
    );

    // Three managers: one cut off, the cluster still schedules and shows it down.
    sb.ok(&["swarm", "promote", "w1", "w2"]);
    assert_eq!(
        node_row(&sb, "boss", "w2").map(|r| r[2].clone()).as_deref(),
        Some("manager")
    );
    import_busybox(&sb, &names[..3]);
    hosts[2].cut();
    docker_swarm(
        &sb,
        "boss",
        "docker service create -q --no-resolve-image --name quorum --replicas 2 --endpoint-mode dnsrr --constraint node.role==manager --constraint node.hostname!=w2 bb:1 busybox sleep 3600",
    );
    let running = docker_swarm(
        &sb,
        "boss",
        "docker service ps quorum --filter desired-state=running --format '{{.CurrentState}}'",
    );
    assert_eq!(running.matches("Running").count(), 2, "{running}");
    w2_shown(&sb, "down", Duration::from_secs(60));
    // Two of three cut off: once the swarm knows it has no leader, a manager join says why.
    hosts[1].cut();
    eventually(Duration::from_secs(60), "boss without a leader", || {
        swarm_ls(&sb, "boss").map_or(Ok(()), Err)
    });
    let err = sb.fails(&["swarm", "join", "--as", "manager", "boss", "w8"]);
    // Without a leader, the manager's /info waits for one (up to its own 20 s), longer than
    // hoist asks (15 s): hoist's quorum detection names the state, not a timeout.
    assert_eq!(
        err,
        "the Docker daemon of machine \"boss\" answers, but not about its swarm: the swarm has probably lost its quorum (more than half of its managers must reach each other)\n"
    );
    assert_eq!(
        hosts[8]
            .sh("docker info --format '{{.Swarm.LocalNodeState}}'")
            .trim(),
        "inactive"
    );
    hosts[1].heal();
    hosts[2].heal();
    // The managers elect a leader again, then w2's agent reports to it. Raft's randomized election
    // rounds (10 to 20 s each, and the healed managers' terms, raised while they were alone, cost
    // rounds) made this take 37 to 41 s on an idle machine, and more than 90 s once in CI.
    w2_shown(&sb, "ready", Duration::from_secs(240));
    // Demoted, w2 is a worker again, as its managers see it.
    sb.ok(&["swarm", "demote", "w2"]);
    assert_eq!(
        docker_swarm(
            &sb,
            "boss",
            "docker node inspect w2 --format '{{.Spec.Role}}'"
        )
        .trim(),
        "worker"
    );
    assert_eq!(
        node_row(&sb, "boss", "w2").map(|r| r[2].clone()).as_deref(),
        Some("worker")
    );
    // A manager hoist cannot reach at all.
    hosts[0].sh("iptables -I INPUT -p tcp --dport 2376 -j REJECT");
    let err = sb.fails(&["swarm", "join", "boss", "w8"]);
    assert!(
        err.starts_with("machine \"boss\" does not answer") && err.contains("refused"),
        "{err}"
    );
}
