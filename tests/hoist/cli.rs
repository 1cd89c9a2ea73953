//! CLI tests: the built binary against temporary stores; every format asserted literally.

use crate::common;
use common::Bounded;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use common::{Behaviour, FakeDaemon, Sandbox, closed_port, stderr, stdout};

fn fixture_store(sb: &Sandbox) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dm-store");
    common::copy_dir(&src, &sb.store_path());
}

/// The fixture stores stand for docker-machine's (RSA keys, its subjects and extensions), but
/// their certificates were issued with a validity of 100 years (to 2126): a fixture that
/// expires would fail the tests that use it on a date, with no change to hoist. This test fails
/// first, years ahead, when someone replaces them with short-lived ones.
#[test]
fn the_fixture_certificates_outlive_the_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for dir in ["dm-store/certs", "rsa-store/certs", "dm-store/machines/dev"] {
        for file in ["ca.pem", "cert.pem"] {
            let pem = fs::read(root.join(dir).join(file)).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            let cert = pem.parse_x509().unwrap();
            let not_after = cert.validity().not_after.to_datetime();
            assert!(
                not_after.year() >= 2100,
                "{dir}/{file} expires {not_after}: re-issue it with a far expiry (same key and subject)"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn create_none_prints_docker_machine_steps_and_writes_record() {
    let sb = Sandbox::new();
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    let out = sb.ok(&["create", "-d", "none", "--url", &url, "web"]);
    let store = sb.store_path();
    assert_eq!(
        out,
        format!(
            "Creating CA: {s}/certs/ca.pem\nCreating client certificate: {s}/certs/cert.pem\nRunning pre-create checks...\nCreating machine...\nTo see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: hoist env web\n",
            s = store.display()
        )
    );
    let dir = store.join("machines/web");
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let cfg = dir.join("config.json");
    assert_eq!(
        fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(json["ConfigVersion"], 3);
    assert_eq!(json["DriverName"], "none");
    assert_eq!(json["Driver"]["URL"], url);
    assert_eq!(
        json["Driver"]["StorePath"],
        store.to_string_lossy().as_ref()
    );
    assert_eq!(
        json["HostOptions"]["EngineOptions"]["Labels"],
        serde_json::json!([])
    );
    assert_eq!(
        json["HostOptions"]["EngineOptions"]["Dns"],
        serde_json::Value::Null
    );
    assert_eq!(
        json["HostOptions"]["AuthOptions"]["StorePath"],
        dir.to_string_lossy().as_ref()
    );
    // Second create: no certificate bootstrap lines.
    let out = sb.ok(&["create", "-d", "none", "--url", &url, "web2"]);
    assert!(out.starts_with("Running pre-create checks...\n"), "{out}");
}

#[test]
/// docker-machine's columns, padding, natural case-insensitive order and trailing spaces; the
/// ERRORS text is hoist's own (docker-machine's names its `/v1.15/version` request).
fn ls_default_table_has_docker_machines_layout() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    let closed = format!("tcp://127.0.0.1:{}", closed_port());
    sb.create_none("web10", &daemon.url());
    sb.create_none("web2", &daemon.url());
    sb.create_none("Db", &closed);
    let out = sb.ok(&["ls"]);
    let url = daemon.url();
    let pad = " ".repeat(url.len().max(closed.len()) + 3);
    let cell = |u: &str| format!("{u}{}", &pad[u.len()..]);
    let expected = format!(
        "NAME    ACTIVE   DRIVER   STATE     {url_h}SWARM   DOCKER    ERRORS\n\
         Db      -        none     Running   {c}        Unknown   Unable to query docker version: cannot connect to 127.0.0.1:{cp}: Connection refused\n\
         web2    -        none     Running   {u}        v24.0.7   \n\
         web10   -        none     Running   {u}        v24.0.7   \n",
        url_h = cell("URL"),
        c = cell(&closed),
        u = cell(&url),
        cp = closed.rsplit(':').next().unwrap(),
    );
    assert_eq!(out, expected);
}

/// `ls` over `records` machines on one fake daemon: checks every row, returns how many
/// connections the daemon accepted.
fn ls_over_one_daemon(behaviour: Behaviour, records: usize) -> usize {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", behaviour);
    for i in 0..records {
        sb.create_none(&format!("m{i}"), &daemon.url());
    }
    let before = daemon.connections.load(Ordering::SeqCst);
    let out = sb.ok(&["ls", "--format", "{{.State}} {{.DockerVersion}} {{.Error}}"]);
    assert_eq!(out, "Running v24.0.7 \n".repeat(records));
    daemon.connections.load(Ordering::SeqCst) - before
}

#[test]
fn ls_reuses_connections_to_a_daemon_shared_by_many_records() {
    // Keep-alive, at most 4 connections to one daemon: not one TLS handshake per record.
    let made = ls_over_one_daemon(Behaviour::Answer, 40);
    assert!((1..=4).contains(&made), "{made} connections");
}

#[test]
fn ls_copes_with_daemons_that_close_after_each_answer() {
    // Two requests per record (no Server header in /_ping: /version follows), each on a new
    // connection once the reused one turns out closed.
    let made = ls_over_one_daemon(Behaviour::AnswerOnce, 10);
    assert!(made >= 20, "{made} connections");
}

#[test]
fn ls_marks_the_active_machine_from_docker_host() {
    let mut sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("a", &daemon.url());
    sb.create_none("b", &format!("tcp://127.0.0.1:{}", closed_port()));
    sb.set("DOCKER_HOST", &daemon.url());
    let out = sb.ok(&["ls", "--format", "{{.Name}} {{.Active}} {{.ActiveHost}}"]);
    assert_eq!(out, "a * true\nb - false\n");
    assert_eq!(sb.ok(&["active"]), "a\n");
    sb.set("DOCKER_HOST", "tcp://127.0.0.1:9");
    let out = sb.run(&["active"]);
    assert_eq!(stderr(&out), "No active host found\n");
    assert_eq!(out.status.code(), Some(1), "docker-machine exits 1 there");
}

#[test]
fn ls_formats_quiet_and_filters() {
    let sb = Sandbox::new();
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    for name in ["b1", "a10", "a9", "c"] {
        sb.create_none(name, &url);
    }
    assert_eq!(sb.ok(&["ls", "-q"]), "a10\na9\nb1\nc\n");
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "name=^a"]), "a10\na9\n");
    assert_eq!(
        sb.ok(&["ls", "-q", "--filter", "name=^a", "--filter", "name=c"]),
        "a10\na9\nc\n"
    );
    assert_eq!(
        sb.ok(&["ls", "-q", "--filter", "driver=NONE", "--filter", "name=1"]),
        "a10\nb1\n"
    );
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "driver=generic"]), "");
    assert_eq!(
        sb.ok(&[
            "ls",
            "-q",
            "--filter",
            "state=running",
            "--filter",
            "name=b"
        ]),
        "b1\n"
    );
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "state=Stopped"]), "");
    assert_eq!(
        sb.ok(&[
            "ls",
            "--format",
            "{{.Name}}:{{.DriverName}}:{{.State}}",
            "--filter",
            "name=a"
        ]),
        "a9:none:Running\na10:none:Running\n"
    );
    assert_eq!(
        sb.ok(&[
            "ls",
            "--format",
            "table {{.Name}}\\t{{.State}}",
            "--filter",
            "name=^a"
        ]),
        "NAME   STATE\na9     Running\na10    Running\n"
    );
    assert_eq!(
        sb.ok(&["ls", "-f", "{{.Name}}\\t{{.URL}}", "--filter", "name=c"]),
        format!("c\t{url}\n")
    );
}

#[test]
fn ls_label_filter_reads_engine_labels() {
    let sb = Sandbox::new();
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    sb.ok(&[
        "create",
        "-d",
        "none",
        "--url",
        &url,
        "--engine-label",
        "env=prod",
        "p",
    ]);
    sb.ok(&[
        "create",
        "-d",
        "none",
        "--url",
        &url,
        "--engine-label",
        "env=dev",
        "d",
    ]);
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "label=env=PROD"]), "p\n");
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "label=env"]), "d\np\n");
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "label=other=x"]), "");
}

/// The longest a whole `ls --timeout 1` may take in these tests: below the 10 s of its default
/// timeout (a `--timeout` ignored) and the 40 s of asking 40 hanging hosts one after another;
/// the rest is margin for a debug build on a loaded machine. Speed is measured in `bench/`.
const LS_TIMEOUT_1_BOUND: std::time::Duration = std::time::Duration::from_secs(9);

#[test]
fn ls_timeout_reports_hanging_hosts() {
    let sb = Sandbox::new();
    let hang = FakeDaemon::start(&sb, "1", Behaviour::Hang);
    sb.create_none("slow", &hang.url());
    let started = std::time::Instant::now();
    let out = sb.ok(&[
        "ls",
        "--timeout",
        "1",
        "--format",
        "{{.Name}} {{.State}} {{.ResponseTime}}",
    ]);
    assert_eq!(out, "slow Timeout 1s\n");
    assert!(
        started.elapsed() < LS_TIMEOUT_1_BOUND,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hoist_asks_only_the_unversioned_paths_every_daemon_serves() {
    // The fake daemon answers as today's dockerd: `/_ping`, `/version`, `/v1.24+/version`; an
    // older API version gets dockerd's 400, as docker-machine 0.16.2's `/v1.15/version` does.
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "28.2.2", Behaviour::Answer);
    sb.create_none("d", &daemon.url());
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.State}} {{.DockerVersion}} {{.Error}}"]),
        "Running v28.2.2 \n"
    );
    sb.ok(&["env", "d"]);
    sb.ok(&["config", "d"]);
    sb.ok(&["version", "d"]);
    let asked = daemon.requests();
    let mut paths: Vec<&str> = asked.iter().map(String::as_str).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["GET /_ping", "GET /version"], "{asked:?}");
    // The fake is strict: an old API version and an unknown path fail as they do on dockerd.
    let url = daemon.url();
    let pem = |f: &str| {
        sb.store_path()
            .join("machines/d")
            .join(f)
            .display()
            .to_string()
    };
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &pem("ca.pem"),
            ])
            .args(["--cert", &pem("cert.pem"), "--key", &pem("key.pem")])
            .arg(format!(
                "https://{}{path}",
                url.trim_start_matches("tcp://")
            ))
            .output_bounded();
        stdout(&out)
    };
    assert_eq!(curl("/v1.15/version"), "400");
    assert_eq!(curl("/v1.47/version"), "200");
    assert_eq!(curl("/containers/json"), "404");
}

#[test]
fn ls_asks_forty_hanging_hosts_at_once() {
    // 40 daemons that accept a connection and never answer: asked one after another, even a
    // 1-second timeout each would take 40 s; asked at once, `ls --timeout 1` ends after about 1 s.
    // Each daemon saw its connection: every host was asked.
    let sb = Sandbox::new();
    let hanging: Vec<FakeDaemon> = (0..40)
        .map(|_| FakeDaemon::start(&sb, "1", Behaviour::Hang))
        .collect();
    for (i, daemon) in hanging.iter().enumerate() {
        sb.create_none(&format!("h{i}"), &daemon.url());
    }
    let started = std::time::Instant::now();
    let out = sb.ok(&[
        "ls",
        "--timeout",
        "1",
        "--format",
        "{{.Name}} {{.State}} {{.ResponseTime}}",
    ]);
    let took = started.elapsed();
    let mut expected: Vec<String> = (0..40).map(|i| format!("h{i} Timeout 1s")).collect();
    expected.sort_by_key(|l| l[1..].split(' ').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    assert!(took < LS_TIMEOUT_1_BOUND, "ls took {took:?}");
    for daemon in &hanging {
        assert_eq!(daemon.connections.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn ls_of_a_thousand_machines_answers_for_each() {
    // 1,000 records of one fake daemon, each asked over mutual TLS. How fast (the README's
    // target: under 1 s, docker-machine 0.16.2: 16.5 s) is measured by `bench/run`, in a release
    // build: this test checks the rows.
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("m0", &daemon.url());
    let seed = fs::read_to_string(sb.store_path().join("machines/m0/config.json")).unwrap();
    for i in 1..1000 {
        let dir = sb.store_path().join(format!("machines/m{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("config.json"),
            seed.replace("\"m0\"", &format!("\"m{i}\"")),
        )
        .unwrap();
    }
    let out = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.DockerVersion}}"]);
    let mut expected: Vec<String> = (0..1000).map(|i| format!("m{i} Running v24.0.7")).collect();
    expected.sort_by_key(|l| l[1..].split(' ').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn ls_bad_filters_and_templates_fail_cleanly() {
    let sb = Sandbox::new();
    sb.create_none("a", "tcp://127.0.0.1:1");
    let before = sb.snapshot();
    assert_eq!(
        sb.fails(&["ls", "--filter", "nokey"]),
        "Unsupported filter syntax.\n"
    );
    assert_eq!(
        sb.fails(&["ls", "--filter", "color=red"]),
        "Unsupported filter key 'color'\n"
    );
    assert!(
        sb.fails(&["ls", "--filter", "name=("])
            .starts_with("invalid name filter \"(\"")
    );
    let err = sb.fails(&["ls", "--format", "{{.Name"]);
    assert!(err.starts_with("template parsing error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Rows are Go structs: a field they do not have is an error, in table mode too.
    for format in ["{{.Nmae}}", "table {{.Nmae}}", "{{.EngineOptions.Nmae}}"] {
        assert_eq!(
            sb.fails(&["ls", "--format", format]),
            "template execution error: can't evaluate field Nmae\n"
        );
    }
    let every_field = "table {{.Name}} {{.Active}} {{.ActiveHost}} {{.ActiveSwarm}} {{.DriverName}} \
        {{.State}} {{.URL}} {{.SwarmOptions}} {{.Swarm}} {{.EngineOptions}} {{.Error}} \
        {{.DockerVersion}} {{.ResponseTime}}";
    let out = sb.ok(&["ls", "--format", every_field]);
    assert!(out.starts_with("NAME ACTIVE ACTIVE_HOST"), "{out}");
    assert!(out.contains("\na - false false none"), "{out}");
    // As in Go, the header row is a map of strings: nested fields work without `table` only.
    let nested = "{{.SwarmOptions.Master}} {{.EngineOptions.Labels}}";
    assert_eq!(sb.ok(&["ls", "--format", nested]), "false []\n");
    assert_eq!(
        sb.fails(&["ls", "--format", &format!("table {nested}")]),
        "template execution error: can't evaluate field Master in type string\n"
    );
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn env_for_every_shell() {
    let mut sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    let url = daemon.url();
    let cert_path = sb.store_path().join("machines/dev");
    let cp = cert_path.display();
    let bin = common::hoist_bin();
    let bin = bin.display();
    let bash = sb.ok(&["env", "dev"]);
    assert_eq!(
        bash,
        format!(
            "export DOCKER_TLS_VERIFY=\"1\"\nexport DOCKER_HOST=\"{url}\"\nexport DOCKER_CERT_PATH=\"{cp}\"\nexport DOCKER_MACHINE_NAME=\"dev\"\n# Run this command to configure your shell: \n# eval $({bin} env dev)\n"
        )
    );
    let cases = [
        (
            "fish",
            format!(
                "set -gx DOCKER_TLS_VERIFY \"1\";\nset -gx DOCKER_HOST \"{url}\";\nset -gx DOCKER_CERT_PATH \"{cp}\";\nset -gx DOCKER_MACHINE_NAME \"dev\";\n# Run this command to configure your shell: \n# eval ({bin} env dev --shell fish)\n"
            ),
        ),
        (
            "powershell",
            format!(
                "$Env:DOCKER_TLS_VERIFY = \"1\"\n$Env:DOCKER_HOST = \"{url}\"\n$Env:DOCKER_CERT_PATH = \"{cp}\"\n$Env:DOCKER_MACHINE_NAME = \"dev\"\n# Run this command to configure your shell: \n# & {bin} env dev --shell powershell | Invoke-Expression\n"
            ),
        ),
        (
            "cmd",
            format!(
                "SET DOCKER_TLS_VERIFY=1\nSET DOCKER_HOST={url}\nSET DOCKER_CERT_PATH={cp}\nSET DOCKER_MACHINE_NAME=dev\nREM Run this command to configure your shell: \nREM \t@FOR /f \"tokens=*\" %i IN ('{bin} env dev --shell cmd') DO @%i\n"
            ),
        ),
        (
            "tcsh",
            format!(
                "setenv DOCKER_TLS_VERIFY \"1\";\nsetenv DOCKER_HOST \"{url}\";\nsetenv DOCKER_CERT_PATH \"{cp}\";\nsetenv DOCKER_MACHINE_NAME \"dev\";\n: Run this command to configure your shell: \n: eval `{bin} env dev --shell tcsh`\n"
            ),
        ),
        (
            "emacs",
            format!(
                "(setenv \"DOCKER_TLS_VERIFY\" \"1\")\n(setenv \"DOCKER_HOST\" \"{url}\")\n(setenv \"DOCKER_CERT_PATH\" \"{cp}\")\n(setenv \"DOCKER_MACHINE_NAME\" \"dev\")\n;; Run this command to configure your shell: \n;; (with-temp-buffer (shell-command \"{bin} env dev --shell emacs\" (current-buffer)) (eval-buffer))\n"
            ),
        ),
    ];
    for (shell, expected) in cases {
        assert_eq!(
            sb.ok(&["env", "dev", "--shell", shell]),
            expected,
            "{shell}"
        );
    }
    // $SHELL decides when --shell is absent; without $SHELL, the sh/bash form.
    sb.set("SHELL", "/usr/bin/fish");
    assert!(
        sb.ok(&["env", "dev"])
            .starts_with("set -gx DOCKER_TLS_VERIFY \"1\";\n")
    );
    sb.unset("SHELL");
    assert!(
        sb.ok(&["env", "dev"])
            .starts_with("export DOCKER_TLS_VERIFY=\"1\"\n")
    );
}

#[test]
fn env_unset_and_no_proxy() {
    let mut sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    let bin = common::hoist_bin();
    let bin = bin.display();
    assert_eq!(
        sb.ok(&["env", "-u"]),
        format!(
            "unset DOCKER_TLS_VERIFY\nunset DOCKER_HOST\nunset DOCKER_CERT_PATH\nunset DOCKER_MACHINE_NAME\n# Run this command to configure your shell: \n# eval $({bin} env -u)\n"
        )
    );
    assert_eq!(
        sb.ok(&["env", "--unset", "--shell", "fish"])
            .lines()
            .next()
            .unwrap(),
        "set -e DOCKER_TLS_VERIFY;"
    );
    assert_eq!(
        sb.ok(&["env", "-u", "--shell", "powershell"])
            .lines()
            .next()
            .unwrap(),
        "Remove-Item Env:\\\\DOCKER_TLS_VERIFY"
    );
    assert_eq!(
        sb.fails(&["env", "-u", "dev"]),
        "Error: Expected no machine name when the -u flag is present\n"
    );
    let ip = format!("127.0.0.1:{}", daemon.port);
    let out = sb.ok(&["env", "dev", "--no-proxy"]);
    assert!(
        out.contains(&format!("export NO_PROXY=\"{ip}\"\n")),
        "{out}"
    );
    sb.set("NO_PROXY", "localhost");
    let out = sb.ok(&["env", "dev", "--no-proxy"]);
    assert!(
        out.contains(&format!("export NO_PROXY=\"localhost,{ip}\"\n")),
        "{out}"
    );
    sb.set("no_proxy", &format!("x,{ip}"));
    let out = sb.ok(&["env", "dev", "--no-proxy"]);
    assert!(
        out.contains(&format!("export no_proxy=\"x,{ip}\"\n")),
        "{out}"
    );
    // Unset with --no-proxy: a plain unset line, not 0.16.2's `unset NO_PROXY<value>`.
    let out = sb.ok(&["env", "-u", "--no-proxy"]);
    assert!(out.contains("unset no_proxy\n"), "{out}");
}

#[test]
fn env_and_config_check_the_connection() {
    let sb = Sandbox::new();
    let _daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    let port = closed_port();
    sb.create_none("down", &format!("tcp://127.0.0.1:{port}"));
    let err = sb.fails(&["env", "down"]);
    assert!(
        err.starts_with(&format!(
            "Error checking TLS connection: cannot connect to 127.0.0.1:{port}: Connection refused"
        )),
        "{err}"
    );
    let err = sb.fails(&["config", "down"]);
    assert!(
        err.starts_with("Error running connection boilerplate: cannot connect"),
        "{err}"
    );
    // --no-check prints from the record alone.
    let out = sb.ok(&["env", "down", "--no-check"]);
    assert!(out.contains(&format!("export DOCKER_HOST=\"tcp://127.0.0.1:{port}\"\n")));
}

#[test]
fn env_reports_a_certificate_mismatch_with_the_regenerate_hint() {
    let sb = Sandbox::new();
    // A daemon whose certificate comes from another store's CA.
    let other = Sandbox::new();
    let daemon = FakeDaemon::start(&other, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    let err = sb.fails(&["env", "dev"]);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "Error checking TLS connection: Error checking and/or regenerating the certs: There was an error validating certificates for host \"127.0.0.1:{}\": ",
            daemon.port
        )),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "You can attempt to regenerate them using 'hoist regenerate-certs dev'."
    );
    assert_eq!(
        lines[2],
        "Be advised that this will trigger a Docker daemon restart which might stop running containers."
    );
}

#[test]
fn config_prints_docker_flags() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    let d = sb.store_path().join("machines/dev");
    assert_eq!(
        sb.ok(&["config", "dev"]),
        format!(
            "--tlsverify\n--tlscacert=\"{d}/ca.pem\"\n--tlscert=\"{d}/cert.pem\"\n--tlskey=\"{d}/key.pem\"\n-H={}\n",
            daemon.url(),
            d = d.display()
        )
    );
}

#[test]
fn url_ip_status_inspect_version() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    sb.create_none("other", "tcp://127.0.0.1:1");
    assert_eq!(sb.ok(&["url", "dev"]), format!("{}\n", daemon.url()));
    assert_eq!(
        sb.ok(&["ip", "dev", "other"]),
        format!("127.0.0.1:{}\n127.0.0.1:1\n", daemon.port)
    );
    assert_eq!(sb.ok(&["status", "dev"]), "Running\n");
    assert_eq!(sb.ok(&["version", "dev"]), "24.0.7\n");
    let v = sb.ok(&["version"]);
    assert!(
        v.starts_with(&format!(
            "hoist version {}, build ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
    assert_eq!(sb.ok(&["-v"]), v);
    assert_eq!(
        sb.ok(&[
            "inspect",
            "dev",
            "-f",
            "{{.HostOptions.AuthOptions.StorePath}}"
        ]),
        format!("{}\n", sb.store_path().join("machines/dev").display())
    );
    assert_eq!(
        sb.ok(&["inspect", "-f", "{{json .DriverName}}", "dev"]),
        "\"none\"\n"
    );
    assert_eq!(
        sb.ok(&[
            "inspect",
            "-f",
            "{{.Driver.SSHPort}} {{.HostOptions.EngineOptions.Labels}}",
            "dev"
        ]),
        "0 []\n"
    );
    let raw = fs::read_to_string(sb.store_path().join("machines/dev/config.json")).unwrap();
    assert_eq!(sb.ok(&["inspect", "dev"]), format!("{raw}\n"));
    let pretty = sb.ok(&["inspect", "dev", "-f", "{{prettyjson .Driver}}"]);
    assert!(
        pretty.starts_with("{\n    \"IPAddress\": \"\",\n"),
        "{pretty}"
    );
}

#[test]
fn default_machine_is_the_implicit_target() {
    let sb = Sandbox::new();
    assert_eq!(
        sb.fails(&["url"]),
        "Error: No machine name(s) specified and no \"default\" machine exists\n"
    );
    sb.create_none("default", "tcp://127.0.0.1:7");
    assert_eq!(sb.ok(&["url"]), "tcp://127.0.0.1:7\n");
    assert_eq!(sb.ok(&["ip"]), "127.0.0.1:7\n");
    assert_eq!(
        sb.fails(&["url", "a", "b"]),
        "Error: Expected one machine name as an argument\n"
    );
}

#[test]
fn bad_input_is_one_line_nonzero_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.create_none("exists", "tcp://127.0.0.1:1");
    let before = sb.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "tcp://127.0.0.1:1",
                "bad_name",
            ],
            "Error creating machine: Invalid hostname specified. Allowed hostname chars are: 0-9a-zA-Z . -",
        ),
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "tcp://127.0.0.1:1",
                "-lead",
            ],
            "",
        ),
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "tcp://127.0.0.1:1",
                ".hidden",
            ],
            "Error creating machine: Invalid hostname specified. Allowed hostname chars are: 0-9a-zA-Z . -",
        ),
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "tcp://127.0.0.1:1",
                "exists",
            ],
            "Docker machine \"exists\" already exists",
        ),
        (
            &["create", "-d", "none", "nourl"],
            "Error setting machine configuration from flags provided: --url option is required when no driver is selected",
        ),
        (
            &["create", "-d", "frobnicate", "x"],
            "Driver \"frobnicate\" not found. Do you have the plugin binary \"docker-machine-driver-frobnicate\" accessible in your PATH? hoist builds in none, generic, qemu, amazonec2 (choose one with -d); other drivers are docker-machine plugin binaries (docker-machine-driver-NAME on the PATH or beside hoist)",
        ),
        (
            &["create", "-d", "none", "--url", "tcp://127.0.0.1:1"],
            "Error: No machine name specified",
        ),
        (
            &["create", "-d", "none", "--url", "x", "a", "b", "c"],
            "Invalid command line. Found extra arguments [b c]",
        ),
        (
            &[
                "create",
                "-d",
                "generic",
                "--generic-ip-address",
                "127.0.0.1",
                "--swarm-discovery",
                "token://c1",
                "sw",
            ],
            "Error: --swarm-discovery is classic Swarm, which is discontinued (its image can no longer be pulled); use Swarm mode: 'hoist create --swarm-mode-init' or '--swarm-mode-join MANAGER', or 'hoist swarm init|join'",
        ),
        (
            &[
                "create",
                "-d",
                "generic",
                "--generic-ip-address",
                "127.0.0.1",
                "--swarm",
                "--swarm-master",
                "sw",
            ],
            "Error: --swarm is classic Swarm, which is discontinued (its image can no longer be pulled); use Swarm mode: 'hoist create --swarm-mode-init' or '--swarm-mode-join MANAGER', or 'hoist swarm init|join'",
        ),
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "x",
                "--swarm",
                "--swarm-discovery",
                "nourl",
                "sw",
            ],
            "Error parsing swarm discovery: Swarm Discovery URL was in the wrong format: nourl",
        ),
        (
            &[
                "create",
                "-d",
                "none",
                "--url",
                "x",
                "--swarm-mode-join",
                "ghost",
                "sw",
            ],
            "Docker machine \"ghost\" does not exist. Use \"hoist ls\" to list machines. Use \"hoist create\" to add a new one.",
        ),
        (
            &["swarm", "ls"],
            "Error: no machine is in a swarm hoist knows of; name a manager: hoist swarm ls MANAGER",
        ),
        (
            &["swarm", "join", "ghost", "a"],
            "Docker machine \"ghost\" does not exist. Use \"hoist ls\" to list machines. Use \"hoist create\" to add a new one.",
        ),
        (
            &["inspect", "ghost"],
            "Docker machine \"ghost\" does not exist. Use \"hoist ls\" to list machines. Use \"hoist create\" to add a new one.",
        ),
        (
            &["url", "../etc"],
            "Docker machine \"../etc\" does not exist. Use \"hoist ls\" to list machines. Use \"hoist create\" to add a new one.",
        ),
        (&["inspect", "exists", "-f", "{{.Nope"], ""),
        (
            &["rm"],
            "Error: Expected to get one or more machine names as arguments",
        ),
        (
            &["frobnicate"],
            "hoist: 'frobnicate' is not a hoist command. See 'hoist --help'.",
        ),
        (&["ls", "--no-such-flag"], ""),
        (
            &["stop", "exists"],
            "machine \"exists\": hosts without a driver cannot be stopped",
        ),
        (&["active", "extra"], "Error: Too many arguments given"),
    ];
    for (args, message) in cases {
        let out = sb.run(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        if !message.is_empty() {
            assert_eq!(err, format!("{message}\n"), "{args:?}");
        }
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
        assert_eq!(sb.snapshot(), before, "{args:?} changed the store");
    }
}

#[test]
fn rm_asks_and_removes() {
    let sb = Sandbox::new();
    for n in ["a", "b", "c", "d"] {
        sb.create_none(n, "tcp://127.0.0.1:1");
    }
    let out = sb.run_with_input(&["rm", "a"], "n\n");
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "About to remove a\nWARNING: This action will delete both local reference and remote instance.\nAre you sure? (y/n): "
    );
    assert!(sb.store_path().join("machines/a").exists());
    let out = sb.run_with_input(&["rm", "a"], "");
    assert!(!out.status.success());
    assert!(sb.store_path().join("machines/a").exists());
    let out = sb.run_with_input(&["rm", "a", "b"], "y\n");
    assert_eq!(
        stdout(&out),
        "About to remove a, b\nWARNING: This action will delete both local reference and remote instance.\nAre you sure? (y/n): Successfully removed a\nSuccessfully removed b\n"
    );
    assert_eq!(
        sb.ok(&["rm", "c", "-y"]),
        "About to remove c\nWARNING: This action will delete both local reference and remote instance.\nSuccessfully removed c\n"
    );
    let out = sb.run(&["rm", "-y", "d", "ghost"]);
    assert!(!out.status.success());
    assert!(stdout(&out).ends_with("Successfully removed d\n"));
    assert!(
        stderr(&out)
            .starts_with("Error removing host \"ghost\": Docker machine \"ghost\" does not exist.")
    );
    // -f: errors are reported, exit 0.
    let out = sb.run(&["rm", "-f", "ghost"]);
    assert!(out.status.success());
    assert_eq!(sb.ok(&["ls", "-q"]), "");
}

#[test]
fn rm_force_removes_a_corrupt_machine() {
    let sb = Sandbox::new();
    sb.create_none("bad", "tcp://127.0.0.1:1");
    fs::write(
        sb.store_path().join("machines/bad/config.json"),
        "{ truncated",
    )
    .unwrap();
    assert!(sb.fails(&["rm", "-y", "bad"]).contains("is corrupt"));
    sb.ok(&["rm", "-f", "bad"]);
    assert!(!sb.store_path().join("machines/bad").exists());
}

#[test]
fn a_corrupt_record_only_affects_its_own_machine() {
    let sb = Sandbox::new();
    sb.create_none("good", "tcp://127.0.0.1:1");
    sb.create_none("broken", "tcp://127.0.0.1:1");
    sb.create_none("future", "tcp://127.0.0.1:1");
    sb.create_none("empty", "tcp://127.0.0.1:1");
    fs::write(
        sb.store_path().join("machines/broken/config.json"),
        "{\"ConfigVersion\": 3, ",
    )
    .unwrap();
    fs::write(sb.store_path().join("machines/empty/config.json"), "").unwrap();
    let future = sb.store_path().join("machines/future/config.json");
    let text = fs::read_to_string(&future)
        .unwrap()
        .replace("\"ConfigVersion\": 3", "\"ConfigVersion\": 4");
    fs::write(&future, text).unwrap();
    let out = sb.ok(&[
        "ls",
        "--format",
        "{{.Name}}|{{.DriverName}}|{{.State}}|{{.Error}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("broken|not found|Error|machine \"broken\": "),
        "{out}"
    );
    assert!(lines[0].contains("is corrupt"), "{out}");
    assert!(lines[1].starts_with("empty|not found|Error|"), "{out}");
    assert_eq!(
        lines[2],
        "future|not found|Error|machine \"future\": config version is from the future -- you should upgrade your Docker Machine client"
    );
    assert_eq!(
        lines[3],
        "good|none|Running|Unable to query docker version: cannot connect to 127.0.0.1:1: Connection refused"
    );
    assert_eq!(sb.ok(&["url", "good"]), "tcp://127.0.0.1:1\n");
    assert_eq!(sb.ok(&["ls", "-q"]), "broken\nempty\nfuture\ngood\n");
    let err = sb.fails(&["url", "broken"]);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn docker_machine_store_is_read_as_is() {
    let sb = Sandbox::new();
    fixture_store(&sb);
    // dev's SSH port is one nothing listens on (held closed for the test run, not port 1).
    let ssh_port = closed_port();
    let dev = sb.store_path().join("machines/dev/config.json");
    let text = fs::read_to_string(&dev)
        .unwrap()
        .replace("\"SSHPort\": 1,", &format!("\"SSHPort\": {ssh_port},"));
    fs::write(&dev, text).unwrap();
    let before = sb.snapshot();
    assert_eq!(sb.ok(&["ls", "-q"]), "dev\nlegacy\nlocal\n");
    let out = sb.ok(&["ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}"]);
    assert_eq!(
        out,
        "dev generic Stopped\nlegacy none Running\nlocal none Running\n"
    );
    // inspect prints the record byte for byte, unknown fields and Go escapes included.
    let raw = fs::read_to_string(sb.store_path().join("machines/local/config.json")).unwrap();
    assert_eq!(sb.ok(&["inspect", "local"]), format!("{raw}\n"));
    let raw = fs::read_to_string(sb.store_path().join("machines/dev/config.json")).unwrap();
    assert_eq!(sb.ok(&["inspect", "dev"]), format!("{raw}\n"));
    assert_eq!(
        sb.ok(&[
            "inspect",
            "dev",
            "-f",
            "{{.HostOptions.AuthOptions.StorePath}}"
        ]),
        "/home/u/.docker/machine/machines/dev\n"
    );
    assert_eq!(
        sb.ok(&[
            "inspect",
            "dev",
            "-f",
            "{{.Driver.IPAddress}} {{.Driver.SSHPort}}"
        ]),
        format!("127.0.0.1 {ssh_port}\n")
    );
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "label=team=A&B"]), "dev\n");
    // Filters on a store where they have something to match.
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "driver=generic"]), "dev\n");
    assert_eq!(sb.ok(&["ls", "-q", "--filter", "state=Stopped"]), "dev\n");
    assert_eq!(
        sb.ok(&[
            "ls",
            "-q",
            "--filter",
            "state=Running",
            "--filter",
            "driver=none"
        ]),
        "legacy\nlocal\n"
    );
    assert_eq!(sb.ok(&["url", "legacy"]), "tcp://127.0.0.1:1\n");
    // The v1 record is migrated in memory.
    assert_eq!(
        sb.ok(&[
            "inspect",
            "legacy",
            "-f",
            "{{.ConfigVersion}} {{.HostOptions.AuthOptions.CaPrivateKeyPath}}"
        ]),
        "3 /home/u/.docker/machine/certs/ca-key.pem\n"
    );
    assert_eq!(sb.fails(&["url", "dev"]), "Host is not running\n");
    // Reads never write.
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn invoked_as_docker_machine_says_docker_machine() {
    let sb = Sandbox::new();
    let out = sb.run_as(
        "docker-machine",
        &["create", "-d", "none", "--url", "tcp://127.0.0.1:1", "dm"],
    );
    assert!(
        stdout(&out).ends_with("run: docker-machine env dm\n"),
        "{}",
        stdout(&out)
    );
    let out = sb.run_as("docker-machine", &["env", "dm", "--no-check"]);
    assert!(
        stdout(&out).ends_with("# eval $(docker-machine env dm --no-check)\n"),
        "{}",
        stdout(&out)
    );
    let out = sb.run_as("docker-machine", &["version"]);
    assert!(stdout(&out).starts_with("docker-machine version "));
    let out = sb.run_as("docker-machine", &["bogus"]);
    assert_eq!(
        stderr(&out),
        "docker-machine: 'bogus' is not a docker-machine command. See 'docker-machine --help'.\n"
    );
    let out = sb.run_as("docker-machine", &["inspect", "nope"]);
    assert_eq!(
        stderr(&out),
        "Docker machine \"nope\" does not exist. Use \"docker-machine ls\" to list machines. Use \"docker-machine create\" to add a new one.\n"
    );
    let out = sb.run_as("docker-machine", &["--help"]);
    assert!(
        stdout(&out).contains("Usage: docker-machine"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn global_flags_and_env_vars() {
    let mut sb = Sandbox::new();
    let other = sb.dir.path().join("other-store");
    let other_s = other.to_string_lossy().to_string();
    sb.ok(&[
        "-s",
        &other_s,
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:1",
        "x",
    ]);
    assert!(other.join("machines/x/config.json").exists());
    assert_eq!(sb.ok(&["--storage-path", &other_s, "ls", "-q"]), "x\n");
    assert_eq!(sb.ok(&["ls", "-q"]), "");
    sb.set("MACHINE_STORAGE_PATH", &other_s);
    assert_eq!(sb.ok(&["ls", "-q"]), "x\n");
    // Accepted for compatibility.
    sb.ok(&[
        "--bugsnag-api-token=no-report",
        "--github-api-token",
        "t",
        "ls",
        "-q",
    ]);
    // -D and MACHINE_DEBUG=1: each machine's query on stderr (driver, state, URL, time, error);
    // without them, nothing on stderr.
    let debug_line = |out: &std::process::Output| {
        let err = stderr(out);
        let line = err
            .lines()
            .find(|l| l.starts_with("(x) none "))
            .map(str::to_string);
        (line, err)
    };
    let with_flag = sb.run(&["-D", "ls"]);
    sb.set("MACHINE_DEBUG", "1");
    let with_env = sb.run(&["ls"]);
    sb.unset("MACHINE_DEBUG");
    for run in [with_flag, with_env] {
        common::assert_ok(&run, "hoist ls with debug output");
        let (line, err) = debug_line(&run);
        let line = line.unwrap_or_else(|| panic!("no debug line for x: {err}"));
        assert!(
            line.starts_with("(x) none Running at tcp://127.0.0.1:1 in ")
                && line
                    .contains(" ms: Unable to query docker version: cannot connect to 127.0.0.1:1"),
            "{line}"
        );
    }
    let plain = sb.run(&["ls"]);
    assert_eq!(
        (debug_line(&plain).0, stderr(&plain)),
        (None, String::new())
    );
    sb.set("MACHINE_DEBUG", "maybe");
    let err = sb.fails(&["ls"]);
    assert!(
        err.starts_with("Error parsing boolean value from MACHINE_DEBUG"),
        "{err}"
    );
    sb.unset("MACHINE_DEBUG");
    sb.set("MACHINE_DRIVER", "none");
    sb.ok(&["create", "--url", "tcp://127.0.0.1:1", "viaenv"]);
    assert_eq!(
        sb.ok(&["inspect", "viaenv", "-f", "{{.DriverName}}"]),
        "none\n"
    );
}

#[test]
fn create_records_engine_swarm_and_tls_flags() {
    let sb = Sandbox::new();
    sb.ok(&[
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:1",
        "--engine-label",
        "a=b",
        "--engine-label",
        "c=d",
        "--engine-opt",
        "log-driver=none",
        "--engine-env",
        "HTTP_PROXY=http://p:3128",
        "--engine-insecure-registry",
        "reg.test",
        "--engine-registry-mirror",
        "https://m.test",
        "--engine-storage-driver",
        "vfs",
        "--tls-san",
        "web.test",
        "--swarm-strategy",
        "binpack",
        "flags",
    ]);
    let f = |t: &str| sb.ok(&["inspect", "flags", "-f", t]);
    assert_eq!(f("{{.HostOptions.EngineOptions.Labels}}"), "[a=b c=d]\n");
    assert_eq!(
        f("{{.HostOptions.EngineOptions.ArbitraryFlags}}"),
        "[log-driver=none]\n"
    );
    assert_eq!(
        f("{{.HostOptions.EngineOptions.Env}}"),
        "[HTTP_PROXY=http://p:3128]\n"
    );
    assert_eq!(
        f("{{.HostOptions.EngineOptions.InsecureRegistry}}"),
        "[reg.test]\n"
    );
    assert_eq!(
        f("{{.HostOptions.EngineOptions.RegistryMirror}}"),
        "[https://m.test]\n"
    );
    assert_eq!(f("{{.HostOptions.EngineOptions.StorageDriver}}"), "vfs\n");
    assert_eq!(
        f("{{.HostOptions.AuthOptions.ServerCertSANs}}"),
        "[web.test]\n"
    );
    assert_eq!(
        f(
            "{{.HostOptions.SwarmOptions.IsSwarm}} {{.HostOptions.SwarmOptions.Agent}} {{.HostOptions.SwarmOptions.Discovery}} {{.HostOptions.SwarmOptions.Strategy}}"
        ),
        "false false  binpack\n"
    );
}

#[test]
fn sixteen_parallel_creates_share_one_ca_in_three_trials() {
    for _trial in 0..3 {
        let sb = Sandbox::new();
        let children: Vec<_> = (0..16)
            .map(|i| {
                let name = format!("m{i}");
                sb.spawn(
                    &["create", "-d", "none", "--url", "tcp://127.0.0.1:1", &name],
                    true,
                )
            })
            .collect();
        assert_eq!(common::wait_all_creating_one_ca(children), 1);
        assert_eq!(sb.ok(&["ls", "-q"]).lines().count(), 16);
        // The client certificate verifies against the CA: a TLS daemon signed by it accepts it.
        let daemon = FakeDaemon::start(&sb, "1.0", Behaviour::Answer);
        sb.ok(&["create", "-d", "none", "--url", &daemon.url(), "check"]);
        sb.ok(&["env", "check"]);
    }
}

#[test]
fn completions_are_generated() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.ok(&["completion", shell]);
        assert!(
            out.contains("regenerate-certs") && out.contains("inspect"),
            "{shell}"
        );
    }
    assert!(!sb.run(&["completion", "tcsh"]).status.success());
}

#[test]
fn a_copied_machine_directory_is_its_own_machine() {
    let sb = Sandbox::new();
    sb.create_none("a", "tcp://127.0.0.1:1");
    let machines = sb.store_path().join("machines");
    common::copy_dir(&machines.join("a"), &machines.join("b"));
    let a_before = std::fs::read(machines.join("a/config.json")).unwrap();
    let out = sb.ok(&[
        "inspect",
        "b",
        "-f",
        "{{.Name}} {{.HostOptions.AuthOptions.StorePath}} {{.HostOptions.AuthOptions.ServerCertPath}}",
    ]);
    let b = machines.join("b");
    assert_eq!(
        out,
        format!("b {} {}\n", b.display(), b.join("server.pem").display())
    );
    sb.ok(&["rm", "-y", "b"]);
    assert!(!b.exists());
    assert_eq!(
        std::fs::read(machines.join("a/config.json")).unwrap(),
        a_before
    );
}

#[test]
fn names_that_cannot_exist_do_not_exist_and_no_arguments_is_help() {
    let sb = Sandbox::new();
    for cmd in ["rm", "inspect", "ip", "url", "status", "stop", "provision"] {
        let out = sb.run(
            &[cmd, "-y", "∞"]
                .iter()
                .copied()
                .filter(|a| cmd == "rm" || *a != "-y")
                .collect::<Vec<_>>(),
        );
        assert!(!out.status.success(), "{cmd}");
        assert!(
            stderr(&out).contains(
                "Docker machine \"∞\" does not exist. Use \"hoist ls\" to list machines."
            ),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    assert!(
        !sb.store_path().join("machines").exists(),
        "nothing was touched"
    );
    // Without arguments: the help, on stdout, and success, as docker-machine.
    let out = sb.run(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Usage: hoist"), "{}", stdout(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn env_checks_the_certificates_the_docker_cli_will_use() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("dev", &daemon.url());
    sb.ok(&["env", "dev"]);
    // The machine directory's client certificate (DOCKER_CERT_PATH) is another store's: docker
    // would fail, so env must too, although the store's own certificates are fine.
    let other = Sandbox::new();
    other.create_none("x", "tcp://127.0.0.1:1");
    let dir = sb.store_path().join("machines/dev");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(other.store_path().join("certs").join(f), dir.join(f)).unwrap();
    }
    // The daemon refused the handshake (a refused connection also starts "Error checking TLS
    // connection", and would not name the certificates).
    let err = sb.fails(&["env", "dev"]);
    assert_eq!(
        err.replace(&daemon.url()["tcp://".len()..], "ADDR"),
        "Error checking TLS connection: Error checking and/or regenerating the certs: There was an error validating certificates for host \"ADDR\": received fatal alert: DecryptError\nYou can attempt to regenerate them using 'hoist regenerate-certs dev'.\nBe advised that this will trigger a Docker daemon restart which might stop running containers.\n"
    );
    let err = sb.fails(&["config", "dev"]);
    assert!(
        err.contains("Error running connection boilerplate"),
        "{err}"
    );
}

#[test]
fn env_output_is_inert_in_a_shell_and_addresses_are_checked() {
    let mut sb = Sandbox::new();
    // A store whose path has what a shell would run or expand.
    let store = sb
        .dir
        .path()
        .join("st $(touch PWNED) `touch PWNED2` \"q\" $HOME");
    sb.set("MACHINE_STORAGE_PATH", &store.display().to_string());
    sb.create_none("web", "tcp://127.0.0.1:1");
    let out = common::shell(
        &sb,
        &format!(
            "cd '{}' && eval \"$(hoist env --no-check web)\" && printf %s \"$DOCKER_CERT_PATH\"",
            sb.dir.path().display()
        ),
    );
    common::assert_ok(&out, "hoist");
    assert_eq!(
        stdout(&out),
        store.join("machines/web").display().to_string()
    );
    assert!(!sb.dir.path().join("PWNED").exists() && !sb.dir.path().join("PWNED2").exists());

    // Addresses that are not addresses are refused at create, and nothing is written.
    let before = sb.snapshot();
    for (args, message) in [
        (
            vec![
                "create",
                "-d",
                "generic",
                "--generic-ip-address",
                "1.2.3.4$(id)",
                "g",
            ],
            "--generic-ip-address \"1.2.3.4$(id)\" is not an IP address or host name",
        ),
        (
            vec![
                "create",
                "-d",
                "generic",
                "--generic-ip-address=-oProxyCommand=x",
                "g",
            ],
            "is not an IP address or host name",
        ),
        (
            vec![
                "create",
                "-d",
                "none",
                "--url",
                "tcp://1.2.3.4:2376`id`",
                "n",
            ],
            "has characters a URL cannot",
        ),
    ] {
        let err = sb.fails(&args);
        assert!(
            err.contains(message) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert_eq!(sb.snapshot(), before, "{args:?}");
    }
    // And at load: a crafted record is refused for that machine only.
    let config = store.join("machines/web/config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tcp://127.0.0.1:1", "tcp://127.0.0.1:1$(id)");
    std::fs::write(&config, text).unwrap();
    let err = sb.fails(&["env", "--no-check", "web"]);
    assert!(err.contains("has characters a URL cannot"), "{err}");
}

#[test]
fn ssh_rsync_and_sshfs_operands_that_start_with_a_dash_never_become_options() {
    // The real ssh, rsync (scp -d) and sshfs, each given operands that would run a command if
    // the tool took them for options; the markers must not appear.
    let sb = Sandbox::new();
    common::generic_record(&sb, "web", common::closed_port());
    let marker = |name: &str| sb.dir.path().join(name);
    let proxy = |name: &str| format!("-oProxyCommand=touch {}", marker(name).display());
    // rsync runs `RSH -l USER HOST rsync --server …`: a shell that ignores the rest.
    let rsh = format!("--rsh=sh -c 'touch {}' sh", marker("rsync").display());
    let local = sb.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let runs: Vec<Vec<String>> = vec![
        // ssh: what follows the machine is the remote command, after the destination.
        vec!["ssh".into(), "web".into(), proxy("ssh1")],
        vec![
            "ssh".into(),
            "web".into(),
            "--".into(),
            proxy("ssh2"),
            "true".into(),
        ],
        // rsync: `scp -d` puts `--` before the operands.
        vec![
            "scp".into(),
            "-d".into(),
            "--".into(),
            rsh.clone(),
            "web:/tmp/x".into(),
        ],
        vec![
            "scp".into(),
            "-d".into(),
            "--".into(),
            "web:/tmp/x".into(),
            rsh,
        ],
        // sshfs has no `--`: a mount point that starts with `-` becomes `./-…`.
        vec![
            "mount".into(),
            "--".into(),
            "web:/tmp".into(),
            proxy("sshfs"),
        ],
    ];
    for args in runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = std::process::Command::new(common::hoist_bin())
            .args(&args)
            .current_dir(&local)
            .env_clear()
            .envs(&sb.env)
            .stdin(std::process::Stdio::null())
            .output_bounded();
        assert!(!out.status.success(), "{args:?} succeeded");
        for name in ["ssh1", "ssh2", "rsync", "sshfs"] {
            assert!(
                !marker(name).exists(),
                "{args:?} ran an operand as an option"
            );
        }
        assert_eq!(
            std::fs::read_dir(&local).unwrap().count(),
            0,
            "{args:?} made a file"
        );
    }
    // sshfs stops at a missing mount point before it runs ssh, so the marker alone cannot tell:
    // the command line it got shows the operand as a path.
    let out = sb.run(&["--debug", "mount", "--", "web:/tmp", &proxy("sshfs")]);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("sshfs "))
        .expect("the sshfs command line");
    assert!(
        line.contains(&format!(" './{}' ", proxy("sshfs"))) && !line.contains(" -oProxyCommand"),
        "{line}"
    );
}

#[test]
fn scp_operands_that_start_with_a_dash_are_paths() {
    let sb = Sandbox::new();
    common::generic_record(&sb, "web", common::closed_port());
    let marker = sb.dir.path().join("PWNED");
    let hostile = format!("-oProxyCommand=touch {}", marker.display());
    let out = sb.run(&["--debug", "scp", "--", &hostile, "web:/tmp/x"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("scp "))
        .expect("the scp command line");
    assert!(line.contains(" -- "), "{line}");
    assert!(
        line.find(" -- ").unwrap() < line.find("-oProxyCommand=touch").unwrap(),
        "{line}"
    );
    assert!(!marker.exists(), "an operand ran as an option");
}

#[test]
fn hostile_daemons_cannot_crash_flood_or_paint_the_terminal() {
    // Each answers with a valid certificate of the store's CA, as a compromised machine can.
    let answers: [&'static [u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\nab\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nxxxx",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 27\r\n\r\n\x1b]0;pwned\x07\x1b[31mred\x1b[0m gone",
        b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    let sb = Sandbox::new();
    let daemons: Vec<FakeDaemon> = answers
        .iter()
        .map(|a| FakeDaemon::start(&sb, "x", Behaviour::Raw(a)))
        .collect();
    for (i, d) in daemons.iter().enumerate() {
        sb.create_none(&format!("h{i}"), &d.url());
    }
    let started = std::time::Instant::now();
    let out = sb.run(&[
        "ls",
        "--timeout",
        "5",
        "--format",
        "{{.Name}}|{{.State}}|{{.Error}}",
    ]);
    common::assert_ok(&out, "hoist");
    // --timeout 5 bounds the whole ls; the margin is for a loaded machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let ls = stdout(&out);
    assert_eq!(ls.lines().count(), 4, "every machine has its row: {ls}");
    assert!(!ls.chars().any(|c| c.is_control() && c != '\n'), "{ls:?}");
    assert!(
        ls.contains("h2|Running|Unable to query docker version")
            && ls.contains("HTTP 500: ]0;pwned[31mred[0m gone"),
        "{ls}"
    );
    // An absurd Content-Length is refused at once, not read.
    assert!(
        ls.contains("h1|Running|") && ls.contains("100000000000"),
        "{ls}"
    );
    let err = sb.fails(&["version", "h2"]);
    assert!(!err.trim_end().chars().any(char::is_control), "{err:?}");
}

#[test]
fn fuzz_the_engine_clients_http_parsing_with_mutated_answers() {
    use hoist::cert::{self, CertPaths};
    use hoist::engine::EngineClient;
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "x", Behaviour::Mutations(0x5eed_1234));
    let tls = cert::client_config(&CertPaths::in_dir(&sb.store().certs_dir())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut parsed, mut timeouts) = (0, 0);
    runtime.block_on(async {
        for _ in 0..300 {
            // A new client each time: a new connection, so every answer is a fresh mutation. The
            // daemon closes the connection after its answer, so a cut answer ends at once; the
            // timeout is there for a client that would wait for more than the answer holds.
            let client = EngineClient::new(tls.clone(), std::time::Duration::from_secs(5));
            match client.get(&daemon.url(), "/_ping").await {
                Err(hoist::engine::EngineError::Timeout { .. }) => timeouts += 1,
                Err(e) => {
                    let text = e.to_string();
                    assert!(!text.chars().any(char::is_control), "{text:?}");
                    parsed += 1;
                }
                Ok(_) => parsed += 1,
            }
        }
    });
    eprintln!("fuzzed the engine client: {parsed} mutated answers read, {timeouts} timeouts");
    // Every mutated answer was read to its end or refused: none left the client waiting.
    assert_eq!((parsed, timeouts), (300, 0));
    assert_eq!(daemon.requests().len(), 300, "every run reached the daemon");
}

#[test]
fn a_docker_machine_store_with_its_rsa_certificates_works() {
    // docker-machine 0.16.2's certificates: an RSA-2048 CA, an RSA PKCS#1 client key with
    // O=<user>.<bootstrap>, and their copies in each machine directory; its records' absolute
    // paths are those of the user's home, here the sandbox's store.
    let sb = Sandbox::new();
    fixture_store(&sb);
    let store = sb.store_path();
    for name in ["dev", "local", "legacy"] {
        let config = store.join("machines").join(name).join("config.json");
        let text = fs::read_to_string(&config)
            .unwrap()
            .replace("/home/u/.docker/machine", &store.display().to_string());
        fs::write(&config, text).unwrap();
    }
    assert!(
        fs::read_to_string(store.join("certs/key.pem"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let daemon = FakeDaemon::start(&sb, "20.10.24", Behaviour::Answer);
    let config = store.join("machines/local/config.json");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("tcp://127.0.0.1:1", &daemon.url());
    fs::write(&config, text).unwrap();
    let out = sb.ok(&[
        "ls",
        "--filter",
        "name=local",
        "--format",
        "{{.State}} {{.DockerVersion}}",
    ]);
    assert_eq!(out, "Running v20.10.24\n");
    let env = sb.ok(&["env", "local"]);
    assert!(
        env.contains(&format!("export DOCKER_HOST=\"{}\"", daemon.url())),
        "{env}"
    );
    let config = sb.ok(&["config", "local"]);
    assert!(config.contains("--tlscert=\""), "{config}");
    // The real docker CLI with docker-machine's RSA client key, through env.
    // (The fake daemon answers every request with its version: the CLI's last line is it.)
    let out = common::shell(
        &sb,
        "eval $(hoist env local) && docker version --format '{{.Server.Version}}'",
    );
    common::assert_ok(&out, "hoist");
    assert_eq!(
        stdout(&out).lines().last(),
        Some("20.10.24"),
        "{}",
        stdout(&out)
    );
    common::check_store(&sb);
}

#[test]
fn classic_swarm_records_env_config_and_the_swarm_filter() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    let master = [
        "--swarm",
        "--swarm-master",
        "--swarm-discovery",
        "token://c1",
    ];
    let agent = ["--swarm", "--swarm-discovery", "token://c1"];
    // `-d none` records the classic Swarm settings, as docker-machine 0.16.2 does (there is
    // nothing to provision), with a note that says so.
    let create = |name: &str, swarm: &[&str]| {
        let url = daemon.url();
        let mut args = vec!["create", "-d", "none", "--url", url.as_str()];
        args.extend_from_slice(swarm);
        args.push(name);
        let said = sb.ok(&args);
        assert_eq!(
            said.contains("Note: classic Swarm is not provisioned"),
            !swarm.is_empty(),
            "{said}"
        );
    };
    create("boss", &master);
    create("node", &agent);
    create("solo", &[]);
    // The records hold what docker-machine writes for these flags: libmachine's swarm.Options
    // with its defaults (the none driver keeps none of them in its own part).
    let record = |name: &str| -> serde_json::Value {
        let path = sb
            .store_path()
            .join("machines")
            .join(name)
            .join("config.json");
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    };
    let boss = record("boss");
    let options = &boss["HostOptions"]["SwarmOptions"];
    assert_eq!(
        (
            &options["IsSwarm"],
            &options["Master"],
            &options["Agent"],
            &options["Discovery"],
            &options["Host"],
            &options["Image"],
            &options["Strategy"]
        ),
        (
            &true.into(),
            &true.into(),
            &true.into(),
            &"token://c1".into(),
            &"tcp://0.0.0.0:3376".into(),
            &"swarm:latest".into(),
            &"spread".into()
        ),
        "{options}"
    );
    let node = record("node");
    assert_eq!(node["HostOptions"]["SwarmOptions"]["Master"], false);
    assert_eq!(node["HostOptions"]["SwarmOptions"]["IsSwarm"], true);
    assert_eq!(
        record("solo")["HostOptions"]["SwarmOptions"]["IsSwarm"],
        false
    );
    let swarm_url = "tcp://127.0.0.1:3376";
    let env = sb.ok(&["env", "--no-check", "--swarm", "boss"]);
    assert!(
        env.contains(&format!("export DOCKER_HOST=\"{swarm_url}\"")),
        "{env}"
    );
    let err = sb.fails(&["env", "--swarm", "node"]);
    assert!(err.contains("\"node\" is not a swarm master"), "{err}");
    let err = sb.fails(&["config", "--swarm", "solo"]);
    assert!(err.contains("\"solo\" is not a swarm master"), "{err}");
    assert_eq!(
        sb.ok(&["ls", "-q", "--filter", "swarm=boss"]),
        "boss\nnode\n"
    );
    let ls = sb.ok(&["ls", "--format", "{{.Name}}|{{.Swarm}}"]);
    assert_eq!(ls, "boss|boss (master)\nnode|boss\nsolo|\n");
}

#[test]
fn state_filters_active_and_its_timeout() {
    let mut sb = Sandbox::new();
    let live = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    let hang = FakeDaemon::start(&sb, "24.0.7", Behaviour::Hang);
    sb.create_none("up", &live.url());
    sb.create_none("hung", &hang.url());
    // Stopped: a generic machine whose SSH port is closed; Error: a record that does not load.
    sb.create_none("down", "tcp://127.0.0.1:1");
    let config = sb.store_path().join("machines/down/config.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    record["DriverName"] = "generic".into();
    record["Driver"]["IPAddress"] = "127.0.0.1".into();
    record["Driver"]["SSHPort"] = closed_port().into();
    record["Driver"]["EnginePort"] = closed_port().into();
    fs::write(&config, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    sb.create_none("broken", "tcp://127.0.0.1:1");
    fs::write(sb.store_path().join("machines/broken/config.json"), "{").unwrap();
    let q = |state: &str| sb.ok(&["ls", "-q", "-t", "2", "--filter", &format!("state={state}")]);
    assert_eq!(q("Running"), "up\n");
    assert_eq!(q("Stopped"), "down\n");
    assert_eq!(q("Timeout"), "hung\n");
    assert_eq!(q("Error"), "broken\n");
    // active: DOCKER_HOST names a machine that is not running → not active; -t bounds the wait.
    sb.set(
        "DOCKER_HOST",
        &format!("tcp://127.0.0.1:{}", record["Driver"]["EnginePort"]),
    );
    let out = sb.run(&["active", "-t", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error getting active host: timeout\n");
    sb.set("DOCKER_HOST", &hang.url());
    let started = std::time::Instant::now();
    let out = sb.run(&["active", "-t", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error getting active host: timeout\n");
    assert!(
        started.elapsed() < LS_TIMEOUT_1_BOUND,
        "{:?}",
        started.elapsed()
    );
    sb.set("DOCKER_HOST", &live.url());
    assert_eq!(sb.ok(&["active", "-t", "1"]), "up\n");
}

#[test]
fn tls_overrides_by_flag_and_by_environment_variable() {
    let mut sb = Sandbox::new();
    let other = Sandbox::new();
    other.create_none("x", "tcp://127.0.0.1:1");
    let certs = other.store_path().join("certs");
    let path = |f: &str| certs.join(f).display().to_string();
    // flag, environment variable, record field, file of the other store.
    let overrides = [
        (
            "--tls-ca-cert",
            "MACHINE_TLS_CA_CERT",
            "CaCertPath",
            "ca.pem",
        ),
        (
            "--tls-ca-key",
            "MACHINE_TLS_CA_KEY",
            "CaPrivateKeyPath",
            "ca-key.pem",
        ),
        (
            "--tls-client-cert",
            "MACHINE_TLS_CLIENT_CERT",
            "ClientCertPath",
            "cert.pem",
        ),
        (
            "--tls-client-key",
            "MACHINE_TLS_CLIENT_KEY",
            "ClientKeyPath",
            "key.pem",
        ),
    ];
    let mut args: Vec<String> = Vec::new();
    for (flag, _, _, file) in overrides {
        args.extend([flag.to_string(), path(file)]);
    }
    args.extend(
        [
            "create",
            "-d",
            "none",
            "--url",
            "tcp://127.0.0.1:1",
            "byflag",
        ]
        .map(String::from),
    );
    sb.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (_, var, _, file) in overrides {
        sb.set(var, &path(file));
    }
    sb.create_none("byenv", "tcp://127.0.0.1:1");
    for name in ["byflag", "byenv"] {
        for (_, _, field, file) in overrides {
            let template = format!("{{{{.HostOptions.AuthOptions.{field}}}}}");
            assert_eq!(
                sb.ok(&["inspect", name, "-f", &template]),
                format!("{}\n", path(file)),
                "{name} {field}"
            );
        }
        // The machine directory got the given certificates, not a new CA of this store's.
        assert_eq!(
            fs::read(sb.store_path().join("machines").join(name).join("cert.pem")).unwrap(),
            fs::read(certs.join("cert.pem")).unwrap()
        );
    }
    assert!(
        !sb.store_path().join("certs/ca.pem").exists(),
        "no CA of its own was made"
    );
}

#[test]
fn regenerate_certs_asks_first() {
    let sb = Sandbox::new();
    sb.create_none("web", "tcp://127.0.0.1:1");
    let before = sb.snapshot();
    let out = sb.run_with_input(&["regenerate-certs", "web"], "n\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out)
            .starts_with("Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): "),
        "{}",
        stdout(&out)
    );
    assert_eq!(sb.snapshot(), before, "a no changes nothing");
    let out = sb.run_with_input(&["regenerate-certs", "web"], "");
    assert_eq!(out.status.code(), Some(1), "no answer is an error");
    assert_eq!(sb.snapshot(), before);
    let out = sb.run_with_input(&["regenerate-certs", "--client-certs", "web"], "y\n");
    assert!(
        stdout(&out).contains("Regenerating TLS certificates"),
        "{}",
        stdout(&out)
    );
    assert_ne!(
        fs::read(sb.store_path().join("certs/ca.pem")).unwrap(),
        before["certs/ca.pem"],
        "yes: a new CA"
    );
}

#[test]
fn docker_contexts_the_real_docker_cli_uses() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    let docker_config = sb.dir.path().join("docker-config");
    fs::create_dir_all(&docker_config).unwrap();
    fs::write(
        docker_config.join("config.json"),
        r#"{"auths": {"reg.test": {}}, "psFormat": "table {{.ID}}"}"#,
    )
    .unwrap();
    sb.set("DOCKER_CONFIG", &docker_config.display().to_string());
    let out = sb.ok(&[
        "create",
        "-d",
        "none",
        "--url",
        &daemon.url(),
        "--docker-context",
        "web",
    ]);
    assert!(
        out.ends_with(
            "Docker context \"web\" reaches machine \"web\": docker --context web info\n"
        ),
        "{out}"
    );
    // The docker CLI's own layout: meta by the SHA-256 of the name, TLS files 0600 in 0700.
    let id = hoist::ops::docker_context::store::context_id("web");
    let meta: serde_json::Value = serde_json::from_slice(
        &fs::read(
            docker_config
                .join("contexts/meta")
                .join(&id)
                .join("meta.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["Name"], "web");
    assert_eq!(meta["Endpoints"]["docker"]["Host"], daemon.url().as_str());
    assert_eq!(meta["Endpoints"]["docker"]["SkipTLSVerify"], false);
    assert_eq!(meta["Metadata"]["Description"], "hoist machine web");
    let tls = docker_config.join("contexts/tls").join(&id).join("docker");
    assert_eq!(
        fs::metadata(&tls).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert_eq!(
            fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
    }
    // The real docker CLI takes it.
    let docker = |args: &str| common::shell(&sb, &format!("docker {args}"));
    let out = docker("context ls --format '{{.Name}}'");
    assert!(
        stdout(&out).lines().any(|l| l == "web"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = docker("--context web version --format '{{.Server.Version}}'");
    common::assert_ok(&out, "hoist");
    assert_eq!(stdout(&out).lines().last(), Some("24.0.7"));
    // The CLI pings with HEAD first, then asks on the same connection (CI once read a HEAD
    // answer's body as the start of the next: the fake daemon now answers HEAD as dockerd does).
    let asked = daemon.requests();
    assert!(
        asked.iter().any(|r| r == "HEAD /_ping") && asked.iter().any(|r| r.ends_with("/version")),
        "{asked:?}"
    );
    // use: the current context, every other key of config.json kept; --unset: back to default.
    assert_eq!(sb.ok(&["use", "web"]), "Current docker context: web\n");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["currentContext"], "web");
    assert_eq!(config["psFormat"], "table {{.ID}}");
    assert!(config["auths"]["reg.test"].is_object());
    let out = docker("version --format '{{.Server.Version}}'");
    assert_eq!(
        stdout(&out).lines().last(),
        Some("24.0.7"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sb.ok(&["use", "--unset"]),
        "Current docker context: default\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert!(config.get("currentContext").is_none() && config["psFormat"] == "table {{.ID}}");
    // Names the docker CLI refuses: a clear error naming --context-name.
    sb.create_none("a", &daemon.url());
    let err = sb.fails(&["context", "a"]);
    assert!(
        err.contains("--context-name") && err.lines().count() == 1,
        "{err}"
    );
    sb.ok(&["context", "--context-name", "machine-a", "a"]);
    // A context hoist did not write is neither overwritten nor removed.
    let out = docker("context create mine --docker host=tcp://127.0.0.1:1");
    common::assert_ok(&out, "hoist");
    sb.create_none("mine", &daemon.url());
    let err = sb.fails(&["context", "mine"]);
    assert!(err.contains("hoist did not write it"), "{err}");
    sb.ok(&["rm", "-y", "mine"]);
    assert!(
        docker_config
            .join("contexts/meta")
            .join(hoist::ops::docker_context::store::context_id("mine"))
            .exists()
    );
    // rm removes the context hoist wrote for the machine.
    sb.ok(&["rm", "-y", "web", "a"]);
    assert!(!docker_config.join("contexts/meta").join(&id).exists());
    assert!(!tls.exists());
    let out = docker("context ls --format '{{.Name}}'");
    let names: Vec<String> = stdout(&out)
        .lines()
        .map(|n| n.trim().trim_end_matches(" *").to_string())
        .collect();
    assert!(
        !names.contains(&"web".to_string()) && !names.contains(&"machine-a".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"mine".to_string()), "{names:?}");
}

#[test]
fn certificates_that_end_soon_or_have_ended_are_in_ls_and_certs() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("web", &daemon.url());
    let dir = sb.store_path().join("machines/web");
    let errors = |extra: &[&str]| {
        let mut args = vec!["ls", "--format", "{{.Name}}|{{.State}}|{{.Error}}"];
        args.extend_from_slice(extra);
        sb.ok(&args)
    };
    assert_eq!(errors(&[]), "web|Running|\n");
    // A server certificate that ends in 10 days: a warning with the fix, unless the window is
    // shorter.
    let (cert, key) = common::cert_valid_between(&sb, &["localhost"], -30, 10);
    fs::write(dir.join("server.pem"), cert).unwrap();
    fs::write(dir.join("server-key.pem"), key).unwrap();
    let end = (time::OffsetDateTime::now_utc() + time::Duration::days(10)).date();
    assert_eq!(
        errors(&[]),
        format!(
            "web|Running|the server certificate expires in 9 days ({end}): renew it with 'hoist regenerate-certs -f web'\n"
        )
    );
    assert_eq!(errors(&["--cert-warn-days", "5"]), "web|Running|\n");
    // Ended: an error, whatever the window.
    let (cert, _) = common::cert_valid_between(&sb, &["localhost"], -30, -1);
    fs::write(dir.join("server.pem"), cert).unwrap();
    let ended = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).date();
    assert!(
        errors(&["--cert-warn-days", "0"])
            .contains(&format!("the server certificate expired on {ended}")),
        "{}",
        errors(&[])
    );
    // The store's client certificate ending soon: the fix is a new client certificate.
    let (cert, key) = common::cert_valid_between(&sb, &["localhost"], -1, 20);
    fs::write(sb.store_path().join("certs/cert.pem"), cert).unwrap();
    fs::write(sb.store_path().join("certs/key.pem"), key).unwrap();
    let out = errors(&[]);
    assert!(
        out.contains("the client certificate expires in 19 days")
            && out.contains("'hoist regenerate-certs -f --client-certs web'"),
        "{out}"
    );
    // hoist certs lists every certificate with its end.
    let list = sb.ok(&["certs"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("CERTIFICATE") && lines[0].contains("DAYS LEFT"),
        "{list}"
    );
    assert!(lines[1].starts_with("store CA "), "{list}");
    assert!(
        lines[2].starts_with("store client certificate ") && lines[2].trim_end().ends_with(" 19"),
        "{list}"
    );
    let server = lines
        .iter()
        .find(|l| l.starts_with("web: server certificate"))
        .expect("the machine's row");
    assert!(
        server.contains(&ended.to_string()) && server.trim_end().ends_with(" -1"),
        "{list}"
    );
}

#[test]
fn doctor_checks_a_none_machine_and_names_a_closed_engine_port() {
    let sb = Sandbox::new();
    let daemon = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("up", &daemon.url());
    let closed = common::closed_url();
    sb.create_none("down", &closed);
    let before = sb.snapshot();
    let out = sb.run(&["doctor", "up"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("up ({})", daemon.url()), "{text}");
    let results: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| (l.split_whitespace().next().unwrap(), &l[8..22]))
        .collect();
    assert_eq!(
        results,
        [
            ("ok", "name resolves "),
            ("skip", "SSH port      "),
            ("skip", "SSH login     "),
            ("skip", "engine drop-in"),
            ("ok", "engine port   "),
            ("ok", "TLS handshake "),
            ("ok", "docker API    "),
        ],
        "{text}"
    );
    assert!(
        text.contains("no SSH: machine \"up\" uses the none driver"),
        "{text}"
    );
    assert!(text.contains("Docker 24.0.7 answers"), "{text}");

    // A closed port: the engine-port check fails with the fix, the TLS checks are skipped, exit 1.
    let out = sb.run(&["doctor"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with(&format!("down ({closed})\n")), "{text}");
    let down = text.split("\nup (").next().unwrap();
    assert!(
        down.contains("  FAIL  engine port    127.0.0.1:")
            && down.contains("Connection refused -- fix: start the host or dockerd"),
        "{text}"
    );
    assert!(
        down.contains("  skip  TLS handshake  the engine port is closed"),
        "{text}"
    );
    assert!(
        text.contains("\nup ("),
        "every machine of the store: {text}"
    );
    let out = sb.run(&["doctor", "nosuch"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("nosuch\n  FAIL  record         ") && text.contains("\"nosuch\""),
        "{text}"
    );
    assert_eq!(sb.snapshot(), before, "doctor writes nothing");
}

#[test]
fn endless_answers_are_cut_at_the_caps_with_little_memory_and_the_other_rows_kept() {
    // A compromised machine holds a valid certificate: its daemon may stream for ever. hoist
    // reads at most 8 KiB of head and 1 MiB of body, whatever the framing.
    let sb = Sandbox::new();
    let good = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("good", &good.url());
    let floods = [
        (
            "chunked",
            common::Flood::ChunkedBody,
            "an answer body of more than 1024 KiB",
        ),
        (
            "unsized",
            common::Flood::UnsizedBody,
            "an answer body of more than 1024 KiB",
        ),
        (
            "headers",
            common::Flood::Headers,
            "an answer head (status line and headers) of more than 8 KiB",
        ),
        (
            "line",
            common::Flood::Line,
            "an answer head (status line and headers) of more than 8 KiB",
        ),
    ];
    let daemons: Vec<FakeDaemon> = floods
        .iter()
        .map(|(name, flood, _)| {
            let daemon = FakeDaemon::start(&sb, "1", Behaviour::Endless(*flood));
            sb.create_none(name, &daemon.url());
            daemon
        })
        .collect();
    let started = std::time::Instant::now();
    let (output, peak_kib) = sb.run_peak_memory(&[
        "ls",
        "--timeout",
        "20",
        "--format",
        "{{.Name}}|{{.State}}|{{.DockerVersion}}|{{.Error}}",
    ]);
    let (out, err) = (common::stdout(&output), common::stderr(&output));
    assert_eq!(err, "");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows.contains(&"good|Running|v24.0.7|"), "{out}");
    for (name, _, says) in floods {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("{name}|")))
            .unwrap();
        assert!(
            row.contains("|Unknown|") && row.contains(says),
            "{name}: {row}"
        );
        assert!(!row.contains("Timeout"), "{name}: {row}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(peak_kib < 100 << 10, "peak memory {peak_kib} KiB");
    eprintln!("ls over 4 endless answers: peak {} MiB", peak_kib >> 10);
    drop(daemons);
}

/// hoist's own quorum detection: a manager whose daemon answers a ping but never its `/info`
/// (its swarm lost the quorum of its managers) is named so, where a daemon that does not answer
/// at all is not. (The lab's swarm test meets the daemon's own words for the same state.)
#[test]
fn a_manager_that_lost_its_quorum_is_named_so() {
    let sb = Sandbox::new();
    let boss = FakeDaemon::start(&sb, "24.0.7", Behaviour::NoQuorum);
    let worker = FakeDaemon::start(&sb, "24.0.7", Behaviour::Answer);
    sb.create_none("boss", &boss.url());
    sb.create_none("w", &worker.url());
    let before = sb.snapshot();
    assert_eq!(
        sb.fails(&["swarm", "join", "boss", "w"]),
        "the Docker daemon of machine \"boss\" answers, but not about its swarm: the swarm has probably lost its quorum (more than half of its managers must reach each other)\n"
    );
    assert!(boss.requests().iter().any(|r| r.starts_with("GET /info")));
    assert!(sb.snapshot() == before, "the store changed");
}
