//! End-to-end tests on the lab: real OpenSSH, systemd and dockerd on Debian 12 (and 13) hosts, and the
//! real `docker` CLI on the client side. Run with `HOIST_LAB=1` (see README).

use crate::common;
use common::Bounded;

use std::fs;
use std::process::{Command, Output};

use common::lab::{self, LabHost, Variant, create_generic, created};
use common::{Sandbox, shell, shell_ok, stderr, stdout};

/// The daemon's name as the real docker CLI reports it after `eval $(hoist env NAME)`.
fn docker_info_name(sb: &Sandbox, machine: &str) -> String {
    shell_ok(
        sb,
        &format!("eval $(hoist env {machine}) && docker info --format '{{{{.Name}}}}'"),
    )
}

/// Runs a command on a lab host with the system ssh and the lab key, `stdin` from a file.
fn lab_ssh(host: &LabHost, command: &str, stdin: Option<&std::path::Path>) -> Output {
    let target = format!("root@{}", host.ip);
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-i",
        &host.key_str(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=quiet", &target, command]);
    match stdin {
        Some(path) => cmd.output_bounded_from(fs::File::open(path).unwrap().into()),
        None => cmd.output_bounded(),
    }
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn ssh_into_a_lab_host_and_run_an_imported_image() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let out = lab_ssh(&host, "systemctl is-active ssh docker", None);
    assert_eq!(stdout(&out), "active\nactive\n", "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    let out = lab_ssh(
        &host,
        "docker import - bb:lab >/dev/null && docker run --rm bb:lab /bin/busybox echo hello-from-lab",
        Some(&tar),
    );
    assert_eq!(stdout(&out), "hello-from-lab\n", "{}", stderr(&out));
}

/// A stock Debian host adopted by `create -d generic`: its Docker left as it was, the daemon
/// set up for mutual TLS (and refusing everything else), the docker CLI through env and config.
#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn generic_on_stock_debian_end_to_end() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    // Something that must survive provisioning.
    host.sh("docker volume create keepme >/dev/null");
    // Adopting the host leaves its Docker alone: packages, binaries, images and containers as
    // they were (no reinstall, no upgrade, nothing pruned).
    let before_dir = tempfile::tempdir().unwrap();
    let out = lab_ssh(
        &host,
        "docker import - bb:before >/dev/null && docker create --name before bb:before /bin/busybox true >/dev/null",
        Some(&lab::busybox_tarball(before_dir.path())),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let docker_state = || {
        host.sh(
            "dpkg-query -W -f='${Package} ${Status} ${Version}\n' docker.io containerd runc; \
             stat -c '%n %Y %i %s' /usr/sbin/dockerd /usr/bin/containerd /usr/sbin/runc; \
             docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' bb:before; \
             docker ps -a --filter name=^before$ --format '{{.ID}} {{.Image}} {{.CreatedAt}}'; \
             cat /var/log/apt/history.log 2>/dev/null | wc -l; cat /var/log/dpkg.log 2>/dev/null | wc -l",
        )
    };
    let docker_before = docker_state();
    assert!(
        docker_before.contains("docker.io install ok installed"),
        "{docker_before}"
    );
    let sb = Sandbox::new();
    let out = create_generic(
        &sb,
        &host,
        "web",
        &[
            "--engine-label",
            "env=lab",
            "--engine-insecure-registry",
            "reg.lab.test:5000",
        ],
    );
    common::assert_ok(&out, "hoist");
    let text = stdout(&out);
    for step in [
        "Running pre-create checks...",
        "Creating machine...",
        "Importing SSH key...",
        "Detecting operating system of created instance...",
        "Provisioning with debian...",
        "Copying certs to the remote machine...",
        "Setting Docker configuration on the remote daemon...",
        "Checking connection to Docker...",
        "Docker is up and running!",
        "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: hoist env web",
    ] {
        assert!(text.contains(step), "missing {step:?} in\n{text}");
    }

    assert_eq!(
        docker_state(),
        docker_before,
        "provisioning changed the host's Docker packages, binaries, images or containers"
    );

    // The real docker CLI through `eval $(hoist env web)`.
    let info = shell_ok(
        &sb,
        "eval $(hoist env web) && docker info --format '{{json .Labels}} {{json .RegistryConfig.IndexConfigs}}'",
    );
    assert!(
        info.contains("\"env=lab\"") && info.contains("\"provider=generic\""),
        "{info}"
    );
    assert!(info.contains("reg.lab.test:5000"), "{info}");
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    let run = shell_ok(
        &sb,
        &format!(
            "eval $(hoist env web) && docker import {} bb:e2e >/dev/null && docker run --rm bb:e2e /bin/busybox echo container-ran",
            tar.display()
        ),
    );
    assert_eq!(run, "container-ran\n");
    assert_eq!(
        shell_ok(
            &sb,
            "docker $(hoist config web) volume ls -q --filter name=keepme"
        ),
        "keepme\n"
    );

    // The daemon: the detected /usr/sbin/dockerd, no forced storage driver, key 0600, nothing on 2375.
    let dropin = host.sh("cat /etc/systemd/system/docker.service.d/10-machine.conf");
    assert!(
        dropin.contains("ExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2376"),
        "{dropin}"
    );
    assert!(!dropin.contains("--storage-driver"), "{dropin}");
    assert_eq!(host.sh("stat -c %a /etc/docker/server-key.pem"), "600\n");
    assert_eq!(host.sh("ss -tln | grep -c ':2375 ' || true"), "0\n");
    assert_eq!(host.sh("hostname"), "web\n");

    // Refused: plain HTTP, TLS without a client certificate, a client certificate of another CA.
    let url = format!("https://{}:2376/version", host.ip);
    let plain = Command::new("curl")
        .args(["-s", "-m", "5", &format!("http://{}:2376/version", host.ip)])
        .output_bounded();
    // Go's TLS server answers plain HTTP with its own 400, nothing of the API.
    assert!(
        stdout(&plain).contains("Client sent an HTTP request to an HTTPS server"),
        "{}",
        stdout(&plain)
    );
    let ca = sb.store_path().join("certs/ca.pem");
    let no_cert = Command::new("curl")
        .args(["-sS", "-m", "5", "--cacert", ca.to_str().unwrap(), &url])
        .output_bounded();
    // The daemon itself refuses a client without a certificate (its TLS alert), after the
    // server's certificate checked out against the CA.
    assert!(!no_cert.status.success());
    assert!(
        stderr(&no_cert).contains("alert bad certificate"),
        "{}",
        stderr(&no_cert)
    );
    let other = Sandbox::new();
    other.ok(&["create", "-d", "none", "--url", "tcp://127.0.0.1:1", "x"]);
    let foreign = other.store_path().join("certs");
    let out = Command::new("docker")
        .args([
            "--tlsverify",
            "--tlscacert",
            ca.to_str().unwrap(),
            "--tlscert",
            foreign.join("cert.pem").to_str().unwrap(),
            "--tlskey",
            foreign.join("key.pem").to_str().unwrap(),
            "-H",
            &format!("tcp://{}:2376", host.ip),
            "version",
        ])
        .output_bounded();
    assert!(
        !out.status.success(),
        "a foreign client certificate was accepted"
    );
    // The daemon refused it for the reason that matters (the client may see an alert or a reset).
    let refused = host.sh(
        "journalctl -u docker --no-pager | grep -c 'certificate signed by unknown authority' || true",
    );
    assert_ne!(
        refused.trim(),
        "0",
        "the daemon logged no refusal of the foreign certificate"
    );

    // ls, status, url, ip.
    let ls = sb.ok(&[
        "ls",
        "--format",
        "{{.Name}} {{.DriverName}} {{.State}} {{.URL}} {{.DockerVersion}} {{.Error}}",
    ]);
    assert!(
        ls.starts_with(&format!(
            "web generic Running tcp://{}:2376 {} ",
            host.ip,
            host.docker_version()
        )),
        "{ls}"
    );
    assert_eq!(sb.ok(&["status", "web"]), "Running\n");
    assert_eq!(sb.ok(&["url", "web"]), format!("tcp://{}:2376\n", host.ip));
    assert_eq!(sb.ok(&["ip", "web"]), format!("{}\n", host.ip));
}

/// ssh (system and native), its options, a tunnel, interactive shells, scp both ways, mount.
#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn ssh_scp_and_mount_reach_a_generic_machine() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "web", &[]);
    let dir = tempfile::tempdir().unwrap();
    // ssh (system ssh with the pinned key, and native), scp both ways.
    assert_eq!(sb.ok(&["ssh", "web", "echo", "via-ssh"]), "via-ssh\n");
    assert_eq!(
        sb.ok(&["--native-ssh", "ssh", "web", "echo via-native"]),
        "via-native\n"
    );
    // What follows `ssh NAME` is the user's, for ssh, as with docker-machine's external client:
    // its options (`-C`, `-L`, `-N`), `--`; the native client takes a command after `--` and
    // names the options it cannot honour; a name that starts with `-` is no machine.
    assert_eq!(sb.ok(&["ssh", "web", "-C", "echo", "foo"]), "foo\n");
    assert_eq!(
        sb.ok(&["ssh", "web", "--", "echo", "dashdash"]),
        "dashdash\n"
    );
    assert_eq!(
        sb.ok(&["--native-ssh", "ssh", "web", "--", "echo", "nd"]),
        "nd\n"
    );
    let err = sb.fails(&["--native-ssh", "ssh", "web", "-L", "1:localhost:2"]);
    assert!(
        err.contains("cannot honour the ssh option \"-L\"") && err.contains("--native-ssh"),
        "{err}"
    );
    let err = sb.fails(&["ssh", "-L", "1:localhost:2", "web"]);
    assert!(err.contains("\"-L\" is not a machine name"), "{err}");
    // A port free now (closed_port keeps its port bound, so ssh could not listen there).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let forward = format!("127.0.0.1:{port}:localhost:22");
    let mut tunnel = sb.spawn(&["ssh", "web", "-N", "-L", &forward], true);
    common::eventually(
        std::time::Duration::from_secs(60),
        "the -L forward answers with the host's SSH banner",
        || {
            let mut line = String::new();
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let _ =
                    std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line);
            }
            match line.starts_with("SSH-2.0") {
                true => Ok(()),
                false => Err(format!("{line:?}")),
            }
        },
    );
    assert!(tunnel.try_wait().unwrap().is_none(), "ssh -N -L ended");
    tunnel.kill().unwrap();
    tunnel.wait().unwrap();
    // Interactive shells on a pseudo-terminal (script(1)), native and through system ssh: the
    // remote side has a terminal, runs what is typed, and its exit status is hoist's.
    for native in ["--native-ssh ", ""] {
        let out = shell(
            &sb,
            &format!(
                "printf 'tty -s && echo tty-$((6*7))\\nexit 3\\n' | timeout 60 script -qec 'hoist {native}ssh web' /dev/null"
            ),
        );
        assert_eq!(out.status.code(), Some(3), "{native}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("tty-42"),
            "{native}: {}",
            stdout(&out)
        );
    }
    let local = dir.path().join("payload.txt");
    fs::write(&local, "payload with spaces\n").unwrap();
    sb.ok(&["scp", local.to_str().unwrap(), "web:/tmp/payload.txt"]);
    assert_eq!(host.sh("cat /tmp/payload.txt"), "payload with spaces\n");
    let back = dir.path().join("back.txt");
    sb.ok(&["scp", "web:/etc/hostname", back.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&back).unwrap(), "web\n");
    assert!(sb.store_path().join("machines/web/known_hosts").exists());
    // mount (sshfs, with the pinned host key) and unmount.
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mnt_arg = mnt.to_str().unwrap();
    sb.ok(&["mount", "web:/etc", mnt_arg]);
    let mounted = fs::read_to_string(mnt.join("hostname"));
    sb.ok(&["mount", "-u", "web:/etc", mnt_arg]);
    assert_eq!(mounted.unwrap(), "web\n");
    assert!(!mnt.join("hostname").exists());
}

/// provision, regenerate-certs (a new CA too), a reboot and rm, on a host with a volume and an
/// image of its user's: nothing of theirs is lost, and rm leaves the host alone.
#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn reprovision_reboot_and_rm_keep_the_hosts_own() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    host.sh("docker volume create keepme >/dev/null");
    let sb = Sandbox::new();
    created(&sb, &host, "web", &[]);
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    shell_ok(
        &sb,
        &format!(
            "eval $(hoist env web) && docker import {} bb:e2e >/dev/null",
            tar.display()
        ),
    );
    let ca = sb.store_path().join("certs/ca.pem");
    // provision and regenerate-certs again: each puts a new server certificate on the host and
    // in the machine directory (its serial changes), and nothing is lost.
    let serials = || {
        let on_host = host.sh("openssl x509 -in /etc/docker/server.pem -noout -serial");
        let local = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(sb.store_path().join("machines/web/server.pem"))
            .output_bounded();
        assert!(local.status.success());
        assert_eq!(
            stdout(&local),
            on_host,
            "the host has the machine directory's certificate"
        );
        on_host
    };
    let first = serials();
    sb.ok(&["provision", "web"]);
    let second = serials();
    assert_ne!(first, second, "provision made a new server certificate");
    sb.ok(&["regenerate-certs", "-f", "web"]);
    assert_ne!(
        serials(),
        second,
        "regenerate-certs made a new server certificate"
    );
    let ca_before = fs::read(&ca).unwrap();
    let out = sb.ok(&["regenerate-certs", "-f", "--client-certs", "web"]);
    assert!(out.contains("Regenerating local certificates"), "{out}");
    assert_ne!(
        fs::read(&ca).unwrap(),
        ca_before,
        "--client-certs makes a new CA"
    );
    assert_eq!(
        fs::read(sb.store_path().join("machines/web/ca.pem")).unwrap(),
        fs::read(&ca).unwrap()
    );
    assert_eq!(
        shell_ok(
            &sb,
            "eval $(hoist env web) && docker volume ls -q --filter name=keepme"
        ),
        "keepme\n"
    );
    assert_eq!(
        shell_ok(
            &sb,
            "eval $(hoist env web) && docker images -q bb:e2e | wc -l"
        ),
        "1\n"
    );

    // A reboot (PID 1 starts again: the host container restarts) brings the TLS daemon back.
    let pid1_started = || host.sh("cut -d' ' -f22 /proc/1/stat");
    let booted = pid1_started();
    let out = sb.run(&["restart", "web"]);
    common::assert_ok(&out, "hoist");
    assert_ne!(pid1_started(), booted, "restart did not reboot the host");
    assert!(stdout(&out).contains("Restarted machines may have new IP addresses."));
    assert_eq!(
        shell_ok(
            &sb,
            "eval $(hoist env web) && docker run --rm bb:e2e /bin/busybox echo after-reboot"
        ),
        "after-reboot\n"
    );

    // rm leaves the remote host alone: its daemon, volume, image, drop-in and certificates.
    let host_state = || {
        host.sh(
            "systemctl is-active docker; docker volume ls -q --filter name=keepme; docker images -q bb:e2e; \
             sha256sum /etc/systemd/system/docker.service.d/10-machine.conf /etc/docker/*.pem",
        )
    };
    let before = host_state();
    sb.ok(&["rm", "-y", "web"]);
    assert!(!sb.store_path().join("machines/web").exists());
    assert_eq!(host_state(), before);
    assert!(before.starts_with("active\nkeepme\n"), "{before}");

    // rm -y of a machine whose host is cut off: the record goes, nothing waits for the host.
    created(&sb, &host, "gone", &[]);
    host.cut();
    let started = std::time::Instant::now();
    let out = sb.run(&["rm", "-y", "gone"]);
    host.heal();
    common::assert_ok(&out, "hoist");
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    assert!(!sb.store_path().join("machines/gone").exists());
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn a_changed_host_key_is_refused_until_retrusted() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "pinned", &[]);
    let pinned = sb.ok(&["inspect", "pinned", "-f", "{{.Hoist.SSHHostKey}}"]);
    assert!(pinned.starts_with("ssh-"), "{pinned}");
    host.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh");
    let before = sb.snapshot();
    let err = sb.fails(&["provision", "pinned"]);
    assert!(
        err.contains("SSH host key")
            && err.contains("has changed")
            && err.contains("pinned SHA256:")
            && err.contains("offered SHA256:"),
        "{err}"
    );
    assert!(
        err.contains("provision --trust-new-host-key pinned"),
        "{err}"
    );
    let err = sb.fails(&["ssh", "pinned", "true"]);
    assert!(err.contains("has changed: pinned SHA256:"), "{err}");
    // The failure is recorded; the pinned key is not replaced.
    assert_eq!(
        sb.ok(&["inspect", "pinned", "-f", "{{.Hoist.SSHHostKey}}"]),
        pinned
    );
    assert_ne!(
        sb.snapshot(),
        before,
        "the failure is recorded in the machine's record"
    );
    sb.ok(&["provision", "--trust-new-host-key", "pinned"]);
    assert_ne!(
        sb.ok(&["inspect", "pinned", "-f", "{{.Hoist.SSHHostKey}}"]),
        pinned
    );
    assert_eq!(sb.ok(&["ssh", "pinned", "echo", "ok"]), "ok\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn bare_host_gets_the_distribution_docker() {
    lab::require();
    let host = LabHost::start(Variant::Bare, false);
    assert_eq!(host.sh("command -v dockerd || echo none"), "none\n");
    let sb = Sandbox::new();
    // An install script that fails (served on the host itself); it ran from a private directory
    // made for it, gone afterwards — never from a fixed /tmp path another user could prepare.
    host.sh(
        "mkdir -p /srv && printf '#!/bin/sh\\necho \"$0\" > /root/installer-path\\nexit 7\\n' > /srv/install.sh && (busybox httpd -p 127.0.0.1:8080 -h /srv &)",
    );
    // Told not to install: a clear error, at once.
    let out = create_generic(&sb, &host, "bare0", &["--engine-install-method", "none"]);
    assert!(
        stderr(&out).contains(
            "Docker is not installed on machine \"bare0\" and --engine-install-method is none"
        ),
        "{}",
        stderr(&out)
    );
    sb.ok(&["rm", "-y", "bare0"]);
    let out = create_generic(
        &sb,
        &host,
        "bare1",
        &[
            "--engine-install-method",
            "script",
            "--engine-install-url",
            "http://127.0.0.1:8080/install.sh",
        ],
    );
    assert!(!out.status.success());
    let ran = host.sh("cat /root/installer-path");
    assert!(
        ran.starts_with("/tmp/tmp.") && ran.ends_with("/install.sh\n"),
        "{ran}"
    );
    assert_eq!(
        host.sh(&format!(
            "test -e \"$(dirname {})\" && echo left || echo gone",
            ran.trim()
        )),
        "gone\n"
    );
    let err = stderr(&out);
    assert!(err.contains("(exit status 7)"), "{err}");
    // An installer that hangs: the remote step is bounded, and the machine's lock is freed.
    host.sh("printf '#!/bin/sh\\nsleep 300\\n' > /srv/install.sh");
    let mut slow = Sandbox::new();
    slow.set("MACHINE_REMOTE_TIMEOUT", "3");
    let started = std::time::Instant::now();
    let hung = create_generic(
        &slow,
        &host,
        "hang",
        &["--engine-install-url", "http://127.0.0.1:8080/install.sh"],
    );
    assert!(!hung.status.success());
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let hang_err = stderr(&hung);
    assert!(
        hang_err.contains("did not finish within 3s (set MACHINE_REMOTE_TIMEOUT to allow longer)"),
        "{hang_err}"
    );
    assert!(
        err.contains("run 'hoist provision --engine-install-method distro bare1'"),
        "{err}"
    );
    // The host answers: the machine is Running, its failure and the fix are in ERRORS.
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}}|{{.Error}}"]);
    assert!(
        ls.starts_with("bare1 Running|") && ls.trim_end().ends_with("run 'hoist provision bare1'"),
        "{ls}"
    );
    // The repair the hint names: provision with the distribution's package.
    let out = sb.run(&["provision", "--engine-install-method", "distro", "bare1"]);
    common::assert_ok(&out, "hoist");
    assert!(stdout(&out).contains("Installing Docker..."));
    assert_eq!(docker_info_name(&sb, "bare1"), "bare1\n");
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.Name}} {{.State}}|{{.Error}}"]),
        "bare1 Running|\n"
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn deploy_user_with_sudo_and_engine_options_with_spaces() {
    lab::require();
    let host = LabHost::start(Variant::Docker, true);
    let sb = Sandbox::new();
    created(
        &sb,
        &host,
        "deployed",
        &[
            "--generic-ssh-user",
            "deploy",
            "--engine-label",
            "note=two words here",
            "--engine-label",
            "dollar=$HOME",
            "--engine-env",
            "GREETING=hello world $USER 100%",
            "--engine-env",
            "SECRET=it's a \"secret\"\rwith a CR",
            "--engine-label",
            "cr=a\rb",
            "--engine-opt",
            "default-ulimit=nofile=1024:2048",
        ],
    );
    let labels = shell_ok(
        &sb,
        "eval $(hoist env deployed) && docker info --format '{{json .Labels}}'",
    );
    assert!(labels.contains("\"note=two words here\""), "{labels}");
    assert!(labels.contains("\"dollar=$HOME\""), "{labels}");
    let env = host.sh("tr '\\0' '\\n' < /proc/$(pidof dockerd)/environ | grep ^GREETING=");
    assert_eq!(env, "GREETING=hello world $USER 100%\n");
    // A CR reaches the daemon as it is, in its environment and in a label (escaped for systemd).
    let env = host.sh("tr '\\0' '\\n' < /proc/$(pidof dockerd)/environ | grep -a ^SECRET=");
    assert_eq!(env, "SECRET=it's a \"secret\"\rwith a CR\n");
    assert!(labels.contains("\"cr=a\\rb\""), "{labels}");
    // The environment (proxy passwords) is in a root-only file, not in the drop-in.
    assert_eq!(host.sh("stat -c %a /etc/docker/10-machine.env"), "600\n");
    let dropin = host.sh("cat /etc/systemd/system/docker.service.d/10-machine.conf");
    assert!(
        !dropin.contains("secret") && dropin.contains("EnvironmentFile=/etc/docker/10-machine.env"),
        "{dropin}"
    );
    let show = host.sh("systemctl show docker -p EnvironmentFiles");
    assert!(show.contains("/etc/docker/10-machine.env"), "{show}");
    let cmdline = host.sh("tr '\\0' ' ' < /proc/$(pidof dockerd)/cmdline");
    assert!(
        cmdline.contains("--default-ulimit=nofile=1024:2048"),
        "{cmdline}"
    );
    assert_eq!(sb.ok(&["ssh", "deployed", "whoami"]), "deploy\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn failures_are_clear_recorded_and_leave_the_rest_alone() {
    lab::require();
    let host = LabHost::start(Variant::Docker, true);
    let sb = Sandbox::new();
    sb.ok(&[
        "create",
        "-d",
        "none",
        "--url",
        "tcp://127.0.0.1:1",
        "bystander",
    ]);
    let bystander = fs::read(sb.store_path().join("machines/bystander/config.json")).unwrap();
    let certs_before: Vec<Vec<u8>> = ["ca.pem", "cert.pem", "key.pem", "ca-key.pem"]
        .iter()
        .map(|f| fs::read(sb.store_path().join("certs").join(f)).unwrap())
        .collect();

    // A key the host does not accept.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong_key");
    assert!(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                wrong.to_str().unwrap()
            ])
            .status_bounded()
            .success()
    );
    let out = sb.run(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &host.ip,
        "--generic-ssh-key",
        wrong.to_str().unwrap(),
        "wrongkey",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SSH authentication as root@"),
        "{}",
        stderr(&out)
    );
    // The key named is the one the user gave, not only hoist's copy of it.
    assert!(
        stderr(&out).contains(&format!(
            "the host does not accept the key {}",
            wrong.display()
        )),
        "{}",
        stderr(&out)
    );

    // A key that does not exist: a pre-create error, exit 3, nothing written.
    let out = sb.run(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &host.ip,
        "--generic-ssh-key",
        "/nonexistent/key",
        "nokey",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "Error with pre-create check: \"SSH key does not exist: \\\"/nonexistent/key\\\"\"\n"
    );
    assert!(!sb.store_path().join("machines/nokey").exists());

    // sudo that wants a password.
    let out = create_generic(&sb, &host, "sudopw", &["--generic-ssh-user", "sudopw"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot use sudo without a password"),
        "{}",
        stderr(&out)
    );

    // A host cut off the network.
    host.cut();
    let out = create_generic(&sb, &host, "cutoff", &[]);
    host.heal();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));

    // A daemon that cannot start with the options asked for: the error carries its journal.
    let out = create_generic(
        &sb,
        &host,
        "badopt",
        &["--engine-opt", "no-such-daemon-flag=1"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("did not start with its new configuration"),
        "{err}"
    );
    assert!(
        err.contains("Last lines of its journal:") && err.contains("no-such-daemon-flag"),
        "{err}"
    );
    sb.ok(&["rm", "-y", "badopt"]);

    // An operating system hoist does not know.
    host.sh(
        "rm /etc/os-release && printf 'ID=plan9\\nPRETTY_NAME=\"Plan 9\"\\n' > /etc/os-release",
    );
    let out = create_generic(&sb, &host, "plan9", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unsupported operating system ID \"plan9\" (Plan 9); hoist provisions Debian, Ubuntu, Fedora, RHEL-likes, SUSE and Arch"),
        "{}",
        stderr(&out)
    );
    sb.ok(&["rm", "-y", "plan9"]);

    // Each failed machine is listed with its live state (the host answers again), its error
    // and the fix; nothing else changed.
    let ls = sb.ok(&["ls", "--format", "{{.Name}}|{{.State}}|{{.Error}}"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 4, "{ls}");
    for (line, name, error) in [
        (lines[1], "cutoff", "cannot reach"),
        (lines[2], "sudopw", "sudo"),
        (lines[3], "wrongkey", "authentication"),
    ] {
        assert!(
            line.starts_with(&format!("{name}|Running|"))
                && line.contains(error)
                && line.ends_with(&format!("run 'hoist provision {name}'")),
            "{ls}"
        );
    }
    assert_eq!(
        fs::read(sb.store_path().join("machines/bystander/config.json")).unwrap(),
        bystander
    );
    let certs_after: Vec<Vec<u8>> = ["ca.pem", "cert.pem", "key.pem", "ca-key.pem"]
        .iter()
        .map(|f| fs::read(sb.store_path().join("certs").join(f)).unwrap())
        .collect();
    assert_eq!(certs_before, certs_after);

    // A failed create is retried by provision once its cause is gone (the host is back on the
    // network), and the failure is gone with it; the others are removed by rm.
    host.sh("ln -sf ../usr/lib/os-release /etc/os-release");
    sb.ok(&["provision", "cutoff"]);
    assert_eq!(
        sb.ok(&[
            "ls",
            "--filter",
            "name=cutoff",
            "--format",
            "{{.State}}|{{.Error}}"
        ]),
        "Running|\n"
    );
    assert!(sb.store_path().join("machines/wrongkey").exists());
    sb.ok(&["rm", "-y", "wrongkey", "sudopw", "cutoff"]);
    assert_eq!(sb.ok(&["ls", "-q"]), "bystander\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn eight_parallel_creates_on_eight_hosts() {
    lab::require();
    let hosts = LabHost::start_many(8, Variant::Docker, false);
    let sb = Sandbox::new();
    let children: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let args = lab::generic_args(h, &format!("p{i}"));
            sb.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), true)
        })
        .collect();
    assert_eq!(common::wait_all_creating_one_ca(children), 1);
    let ls = sb.ok(&["ls", "--format", "{{.State}} {{.DockerVersion}}"]);
    let running: Vec<String> = hosts
        .iter()
        .map(|h| format!("Running {}", h.docker_version()))
        .collect();
    assert_eq!(ls.lines().collect::<Vec<_>>(), running, "{ls}");
    // 40 more records on p0's host: answered over a few kept-alive connections to the real
    // dockerd (one machine's record copied under other names, as a fleet's store might hold).
    let store = sb.store();
    let p0 = std::fs::read_to_string(store.machine_dir("p0").join("config.json")).unwrap();
    for i in 0..40 {
        let name = format!("q{i}");
        std::fs::create_dir_all(store.machine_dir(&name)).unwrap();
        let record = p0.replace("\"p0\"", &format!("\"{name}\""));
        std::fs::write(store.machine_dir(&name).join("config.json"), record).unwrap();
    }
    let ls = sb.ok(&[
        "ls",
        "--filter",
        "name=^q",
        "--format",
        "{{.State}} {{.DockerVersion}}",
    ]);
    let version = sb.ok(&[
        "ls",
        "--filter",
        "name=^p0$",
        "--format",
        "{{.DockerVersion}}",
    ]);
    assert_eq!(version, format!("{}\n", hosts[0].docker_version()));
    assert_eq!(ls, format!("Running {version}").repeat(40));
    // Commands over several machines run concurrently and answer for each.
    let names: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let mut args = vec!["ip"];
    args.extend(names.iter().map(String::as_str));
    let ips: Vec<String> = hosts.iter().map(|h| format!("{}\n", h.ip)).collect();
    assert_eq!(sb.ok(&args), ips.concat());
    let mut args = vec!["status"];
    args.extend(names.iter().map(String::as_str));
    assert_eq!(sb.ok(&args), "Running\n".repeat(8));
    let mut args = vec!["status", "p0", "ghost"];
    let out = sb.run(&args);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "Running\n");
    assert!(stderr(&out).starts_with("Docker machine \"ghost\" does not exist."));
    args = vec!["provision", "p1", "p2", "p3"];
    let out = sb.run(&args);
    common::assert_ok(&out, "hoist");
    assert!(
        stdout(&out).contains("(p2) Docker is up and running!"),
        "{}",
        stdout(&out)
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn sigkill_during_provision_and_regenerate_certs() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "k", &[]);
    let mut rng = common::Rng::new("provision/regenerate-certs kill test");
    let mut mid_operation = 0;
    // Killed once it says it began one of its steps, chosen at random: a moment inside the
    // operation whatever this machine's speed. (Each is followed by work on the host; the last
    // check of the daemon, "Checking connection to Docker...", may end at once.)
    let steps = [
        "Waiting for SSH to be available...",
        "Detecting the provisioner...",
        "Copying certs to the remote machine...",
        "Setting Docker configuration on the remote daemon...",
    ];
    for round in 0..6 {
        let step = steps[rng.next(steps.len() as u64) as usize];
        let args: &[&str] = if round % 2 == 0 {
            &["provision", "k"]
        } else {
            &["regenerate-certs", "-f", "k"]
        };
        let mut child = common::Watched::new(sb.spawn(args, true));
        assert!(child.line_with(step), "{args:?} never said {step:?}");
        let running = child.child.try_wait().unwrap().is_none();
        common::kill9(child.child);
        common::check_store(&sb);
        // Landed mid-operation: hoist still ran, and the record says it was provisioning.
        let lifecycle = sb.store().load("k").unwrap().lifecycle();
        if running && lifecycle == hoist::store::config::Lifecycle::Provisioning {
            mid_operation += 1;
        }
    }
    eprintln!("kills that landed mid-operation: {mid_operation} of 6");
    assert_eq!(
        mid_operation, 6,
        "a kill after a step began did not land while provisioning ran (see the seed above)"
    );
    // Killed just before each rename regenerate-certs makes (the record, the machine
    // directory's copies, the new server certificate and key), the store keeps whole pairs.
    let killed = sb.kill_at_each_rename(
        &["regenerate-certs", "-f", "k"],
        || {},
        |_| common::check_store(&sb),
    );
    eprintln!("regenerate-certs killed before each of its {killed} renames");
    assert!(
        killed >= 9,
        "only {killed} renames: regenerate-certs did not run"
    );
    // No lock blocks the next command, and the machine comes back fully.
    let out = sb.run(&["provision", "k"]);
    common::assert_ok(&out, "hoist");
    assert_eq!(docker_info_name(&sb, "k"), "k\n");
    // A run cut short after writing the drop-in into a directory systemd had not seen (on a
    // stock host, the first run): systemd says no reload is needed, and the next run must
    // reload it all the same.
    let dir = "/etc/systemd/system/docker.service.d";
    let cut_short = host.exec(&format!(
        "set -e; cp {dir}/10-machine.conf /root/dropin; rm -r {dir}; systemctl daemon-reload; \
         systemctl restart docker; mkdir {dir}; mv /root/dropin {dir}/10-machine.conf; \
         systemctl show -p NeedDaemonReload --value docker"
    ));
    assert_eq!(
        String::from_utf8_lossy(&cut_short.stdout),
        "no\n",
        "{cut_short:?}"
    );
    sb.ok(&["provision", "k"]);
    assert_eq!(docker_info_name(&sb, "k"), "k\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn rsa_ecdsa_agent_and_default_keys() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let dir = tempfile::tempdir().unwrap();
    let keygen = |name: &str, args: &[&str]| {
        let path = dir.path().join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-C", name, "-f", path.to_str().unwrap()])
            .args(args);
        assert!(cmd.status_bounded().success());
        let public = fs::read_to_string(path.with_extension("pub")).unwrap();
        host.sh(&format!(
            "echo '{}' >> /root/.ssh/authorized_keys",
            public.trim()
        ));
        path
    };
    let rsa = keygen("rsa", &["-t", "rsa", "-b", "2048", "-N", ""]);
    let ecdsa = keygen("ecdsa", &["-t", "ecdsa", "-b", "256", "-N", ""]);
    let encrypted = keygen("enc", &["-t", "ed25519", "-N", "secret-pass"]);
    let mut sb = Sandbox::new();
    for (name, key) in [("rsa", &rsa), ("ecdsa", &ecdsa)] {
        let out = sb.run(&[
            "create",
            "-d",
            "generic",
            "--generic-ip-address",
            &host.ip,
            "--generic-ssh-key",
            key.to_str().unwrap(),
            name,
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(sb.ok(&["ssh", name, "echo", name]), format!("{name}\n"));
    }

    // An encrypted key, through ssh-agent.
    let agent_sock = dir.path().join("agent.sock");
    let agent = Command::new("ssh-agent")
        .args(["-D", "-a", agent_sock.to_str().unwrap()])
        .spawn()
        .unwrap();
    common::eventually(
        std::time::Duration::from_secs(30),
        "ssh-agent's socket",
        || agent_sock.exists().then_some(()).ok_or_else(String::new),
    );
    let askpass = dir.path().join("askpass");
    fs::write(&askpass, "#!/bin/sh\necho secret-pass\n").unwrap();
    fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let added = Command::new("ssh-add")
        .arg(&encrypted)
        .env("SSH_AUTH_SOCK", &agent_sock)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(std::process::Stdio::null())
        .output_bounded();
    assert!(added.status.success(), "ssh-add: {}", stderr(&added));
    sb.set("SSH_AUTH_SOCK", agent_sock.to_str().unwrap());
    let out = sb.run(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &host.ip,
        "--generic-ssh-key",
        encrypted.to_str().unwrap(),
        "enc",
    ]);
    let mut agent = agent;
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        out.status.success(),
        "encrypted key via agent: {}",
        stderr(&out)
    );
    // The agent holding the key is gone: system ssh fails, and says why in hoist's words too.
    let out = sb.run(&["ssh", "enc", "true"]);
    assert_eq!(out.status.code(), Some(255));
    let err = stderr(&out);
    assert!(
        err.contains("SSH authentication as root@") && err.contains("encrypted: needs ssh-agent"),
        "{err}"
    );
    sb.unset("SSH_AUTH_SOCK");

    // No key given, no agent: the default keys in ~/.ssh; the host's hostname is kept.
    let ssh_dir = sb.dir.path().join("home/.ssh");
    fs::create_dir_all(&ssh_dir).unwrap();
    fs::copy(&rsa, ssh_dir.join("id_rsa")).unwrap();
    let hostname = host.sh("hostname");
    let out = sb.run(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &host.ip,
        "--generic-keep-hostname",
        "default",
    ]);
    common::assert_ok(&out, "hoist");
    assert!(
        stdout(&out)
            .contains("No SSH key specified. Assuming an existing key at the default location.")
    );
    assert_eq!(host.sh("hostname"), hostname);
    assert_eq!(sb.ok(&["ssh", "default", "echo", "ok"]), "ok\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn the_first_hour_on_a_stock_host() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "web", &[]);

    // docker-machine's provider label is in the record, where ls's label filter looks.
    assert_eq!(
        sb.ok(&["ls", "-q", "--filter", "label=provider=generic"]),
        "web\n"
    );
    // --debug shows the ssh command line.
    let out = sb.run(&["--debug", "ssh", "web", "true"]);
    common::assert_ok(&out, "hoist");
    assert!(
        stderr(&out).contains("ssh -F /dev/null"),
        "{}",
        stderr(&out)
    );

    // A stopped daemon: env says where to look, not at `status` (which says Running).
    host.sh("systemctl stop docker.socket 2>/dev/null; systemctl stop docker");
    let err = sb.fails(&["env", "web"]);
    assert!(
        err.contains("does not answer")
            && err.contains("'hoist ssh web journalctl -u docker -n 20'")
            && err.contains("'hoist provision web'"),
        "{err}"
    );
    assert_eq!(sb.ok(&["status", "web"]), "Running\n");
    host.sh("systemctl start docker.socket docker");

    // A failed provisioning: the state stays live, the failure and its fix are in ERRORS, ssh
    // works, and creating it again says what to do.
    let out = create_generic(
        &sb,
        &host,
        "bad",
        &["--engine-opt", "no-such-daemon-flag=1"],
    );
    assert!(!out.status.success());
    let ls = sb.ok(&[
        "ls",
        "--filter",
        "name=bad",
        "--format",
        "{{.State}}|{{.Error}}",
    ]);
    assert!(
        ls.starts_with("Running|")
            && ls.contains("did not start")
            && ls.trim_end().ends_with("run 'hoist provision bad'"),
        "{ls}"
    );
    assert_eq!(sb.ok(&["status", "bad"]), "Running\n");
    assert_eq!(sb.ok(&["ssh", "bad", "echo", "in"]), "in\n");
    let err = stderr(&create_generic(&sb, &host, "bad", &[]));
    assert_eq!(
        err,
        "Docker machine \"bad\" already exists (its create did not finish: run 'hoist provision bad' to finish it, or 'hoist rm bad' to start over)\n"
    );
    sb.ok(&["rm", "-y", "bad"]);
    // The host's daemon got bad's drop-in: web's provisioning puts its own back. The CA, server
    // certificate, key and drop-in are written under temporary names and switched by the one
    // command that wrote them all.
    let out = sb.run(&["--debug", "provision", "web"]);
    common::assert_ok(&out, "hoist");
    let log = stderr(&out);
    let writes: Vec<&str> = log.lines().filter(|l| l.contains(".hoist-new")).collect();
    assert_eq!(writes.len(), 1, "{log}");
    assert!(
        writes[0].contains(
            "; mv -f /etc/docker/ca.pem.hoist-new /etc/docker/ca.pem; mv -f /etc/docker/server.pem.hoist-new /etc/docker/server.pem; mv -f /etc/docker/server-key.pem.hoist-new /etc/docker/server-key.pem; mv -f /etc/systemd/system/docker.service.d/10-machine.conf.hoist-new /etc/systemd/system/docker.service.d/10-machine.conf"
        ),
        "{log}"
    );
    assert_eq!(host.sh("ls /etc/docker | grep -c hoist-new || true"), "0\n");
    // The same machine three times in one command (as many as the runtime's workers and more):
    // each waits for the machine's lock off the async workers, so none blocks the others.
    let child = sb.spawn(&["provision", "web", "web", "web"], true);
    let out = common::bounded::finish_within(child, std::time::Duration::from_secs(120));
    common::assert_ok(&out, "hoist");
    // Provisioning reads the store's CA and client certificate under the certificate lock that
    // `regenerate-certs --client-certs` rewrites them under: while another holds it, it waits.
    let certs_lock = sb.store().lock_certs().unwrap();
    let mut child = sb.spawn(&["provision", "web"], true);
    common::wait_until_waiting_for_lock(
        child.id(),
        &sb.store_path().join(".hoist/locks/certs.lock"),
        std::time::Duration::from_secs(60),
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "provision read the certificates while their lock was held"
    );
    drop(certs_lock);
    let out = common::finish(child);
    common::assert_ok(&out, "hoist");

    // An upgrade whose package index cannot be fetched fails, with apt's words.
    host.sh("cp /etc/apt/sources.list /root/sources.list && echo 'deb http://127.0.0.1:9/debian bookworm main' > /etc/apt/sources.list && rm -rf /var/lib/apt/lists/*");
    let out = sb.run(&["upgrade", "web"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        err.contains("upgrading Docker failed on machine \"web\"")
            && err.contains("E: Some index files failed to download"),
        "{err}"
    );
    host.sh("cp /root/sources.list /etc/apt/sources.list");

    // A restart that fails does not talk of new IP addresses.
    host.cut();
    let out = sb.run(&["restart", "web"]);
    host.heal();
    assert!(!out.status.success());
    assert!(
        !stdout(&out).contains("Restarted machines"),
        "{}",
        stdout(&out)
    );

    // Ctrl-C during a create names the machine left unfinished, which provision finishes.
    let args = lab::generic_args(&host, "intr");
    let mut child = sb.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), true);
    common::eventually(
        std::time::Duration::from_secs(120),
        "the create is provisioning",
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the create ended before it was provisioning"
            );
            match sb.store().load("intr").map(|h| h.lifecycle()) {
                Ok(hoist::store::config::Lifecycle::Provisioning) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = common::finish(child);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Interrupted: machine \"intr\" was not finished; run 'hoist provision intr' to finish it or 'hoist rm intr' to remove it"
        ),
        "{}",
        stderr(&out)
    );
    sb.ok(&["provision", "intr"]);
    assert_eq!(docker_info_name(&sb, "intr"), "intr\n");

    // scp between two machines: one known_hosts file for both, beside the first machine, none
    // left in /tmp.
    sb.ok(&["scp", "web:/etc/hostname", "intr:/tmp/copied-hostname"]);
    assert_eq!(host.sh("cat /tmp/copied-hostname"), "intr\n");
    assert!(
        sb.store_path()
            .join("machines/web/known_hosts.pair")
            .exists()
    );
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hoist-known-hosts-")
        })
        .count();
    assert_eq!(leftovers, 0, "known_hosts files left in /tmp");

    // A changed host key: OpenSSH's own refusal and hoist's explanation, for ssh and scp.
    host.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh");
    let out = sb.run(&["ssh", "web", "true"]);
    assert_eq!(out.status.code(), Some(255));
    let err = stderr(&out);
    assert!(
        err.contains("Host key verification failed")
            && err.contains("has changed: pinned SHA256:")
            && err.contains("provision --trust-new-host-key web"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("hostname");
    let out = sb.run(&["scp", "web:/etc/hostname", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has changed: pinned SHA256:"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn a_host_that_gains_a_new_kind_of_key_is_not_a_changed_host() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    // sshd offers only its ECDSA key at first.
    host.sh(
        "echo 'HostKey /etc/ssh/ssh_host_ecdsa_key' > /etc/ssh/sshd_config.d/only-ecdsa.conf && systemctl restart ssh",
    );
    let sb = Sandbox::new();
    let out = create_generic(&sb, &host, "keys", &[]);
    common::assert_ok(&out, "hoist");
    assert!(
        stdout(&out).contains("Pinned the SSH host key of machine \"keys\": SHA256:"),
        "{}",
        stdout(&out)
    );
    let pinned = sb.ok(&["inspect", "keys", "-f", "{{.Hoist.SSHHostKey}}"]);
    assert!(!pinned.starts_with("ssh-ed25519"), "{pinned}");
    // The host gains an ed25519 key, which both clients would prefer: still the same host.
    host.sh("rm /etc/ssh/sshd_config.d/only-ecdsa.conf && systemctl restart ssh");
    assert_eq!(
        sb.ok(&["--native-ssh", "ssh", "keys", "echo", "native"]),
        "native\n"
    );
    assert_eq!(sb.ok(&["ssh", "keys", "echo", "system"]), "system\n");
    sb.ok(&["provision", "keys"]);
    assert_eq!(
        sb.ok(&["inspect", "keys", "-f", "{{.Hoist.SSHHostKey}}"]),
        pinned
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn ssh_waits_for_the_machines_lock_and_never_brings_a_removed_machine_back() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "lk", &[]);
    // A machine whose host key is not pinned yet: ssh pins it, under the machine's lock.
    let config = sb.store_path().join("machines/lk/config.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    record["Hoist"]
        .as_object_mut()
        .unwrap()
        .remove("SSHHostKey");
    fs::write(&config, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    let lock = sb.store().lock_machine("lk").unwrap();
    let child = sb.spawn(&["ssh", "lk", "true"], true);
    common::wait_until_waiting_for_lock(
        child.id(),
        &sb.store_path().join(".hoist/locks/lk.lock"),
        std::time::Duration::from_secs(30),
    );
    // An rm that ran while ssh waited for the lock.
    fs::remove_dir_all(sb.store_path().join("machines/lk")).unwrap();
    drop(lock);
    let out = common::finish(child);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Docker machine \"lk\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        !sb.store_path().join("machines/lk").exists(),
        "ssh brought the removed machine back"
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn gitlab_runners_sequence_through_the_docker_machine_name() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    let key = host.key_str();
    // The runner lists machines by reading machines/: a directory there always has its record.
    let machines = sb.store_path().join("machines");
    let mut child = {
        let bin = sb.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let link = bin.join("docker-machine");
        if !link.exists() {
            std::os::unix::fs::symlink(common::hoist_bin(), &link).unwrap();
        }
        Command::new(&link)
            .args([
                "--bugsnag-api-token=no-report",
                "create",
                "--driver",
                "generic",
                "--generic-ip-address",
                &host.ip,
                "--generic-ssh-key",
                &key,
                "--engine-label",
                "runner=gitlab",
                "runner-1",
            ])
            .env_clear()
            .envs(&sb.env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    common::while_running(&mut child, std::time::Duration::from_millis(5), || {
        if let Ok(entries) = fs::read_dir(&machines) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.starts_with('.') {
                    assert!(
                        e.path().join("config.json").exists(),
                        "machines/{name} is listed without its record"
                    );
                }
            }
        }
    });
    let out = common::finish(child);
    common::assert_ok(&out, "hoist");
    assert!(
        stdout(&out).ends_with("run: docker-machine env runner-1\n"),
        "{}",
        stdout(&out)
    );

    let dm = |args: &[&str]| sb.run_as("docker-machine", args);
    // config's exit code says whether the runner can connect.
    assert!(dm(&["config", "runner-1"]).status.success());
    let url = stdout(&dm(&["url", "runner-1"])).trim().to_string();
    assert_eq!(url, format!("tcp://{}:2376", host.ip));
    let dir = stdout(&dm(&[
        "inspect",
        "runner-1",
        "-f",
        "{{.HostOptions.AuthOptions.StorePath}}",
    ]))
    .trim()
    .to_string();
    assert_eq!(dir, machines.join("runner-1").display().to_string());
    // The runner's own Docker client: the certificates in that directory, verifying the IP SAN.
    let out = Command::new("docker")
        .args([
            "--tlsverify",
            &format!("--tlscacert={dir}/ca.pem"),
            &format!("--tlscert={dir}/cert.pem"),
            &format!("--tlskey={dir}/key.pem"),
            "-H",
            &url,
            "info",
            "--format",
            "{{json .Labels}}",
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output_bounded();
    common::assert_ok(&out, "hoist");
    assert!(stdout(&out).contains("runner=gitlab"), "{}", stdout(&out));
    let record: serde_json::Value =
        serde_json::from_str(&stdout(&dm(&["inspect", "runner-1"]))).unwrap();
    assert_eq!(record["DriverName"], "generic");
    // stop is refused for generic; the runner tolerates that failure.
    let out = dm(&["stop", "runner-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("generic driver does not support stop"),
        "{}",
        stderr(&out)
    );
    let out = dm(&["rm", "-y", "runner-1"]);
    common::assert_ok(&out, "hoist");
    assert!(stdout(&out).contains("Successfully removed runner-1"));
    // The runner's second rm, forced, of a machine already gone: exit 0.
    let out = dm(&["rm", "-f", "runner-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!machines.join("runner-1").exists());
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn sigint_and_sigterm_during_create_leave_a_consistent_record_and_host() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    let key = host.key_str();
    let mut interrupted = 0;
    // Each create gets its signal as soon as it says it began a step: from making the record to
    // the last check of the daemon, whatever this machine's speed.
    for (i, (step, signal)) in [
        ("Creating machine...", libc::SIGINT),
        ("Waiting for SSH to be available...", libc::SIGTERM),
        ("Provisioning with", libc::SIGINT),
        (
            "Setting Docker configuration on the remote daemon...",
            libc::SIGTERM,
        ),
        ("Checking connection to Docker...", libc::SIGINT),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("sig{i}");
        let mut create = common::Watched::new(sb.spawn(
            &[
                "create",
                "-d",
                "generic",
                "--generic-ip-address",
                &host.ip,
                "--generic-ssh-key",
                &key,
                &name,
            ],
            true,
        ));
        assert!(create.line_with(step), "create never said {step:?}");
        create.signal(signal);
        let out = create.finish();
        match out.status.code() {
            Some(0) => {}
            Some(code) => {
                assert_eq!(code, 128 + signal, "{}", stderr(&out));
                interrupted += 1;
                if sb.store_path().join("machines").join(&name).exists() {
                    assert!(
                        stderr(&out)
                            .contains(&format!("Interrupted: machine \"{name}\" was not finished")),
                        "{}",
                        stderr(&out)
                    );
                    let ls = sb.ok(&[
                        "ls",
                        "--filter",
                        &format!("name={name}"),
                        "--format",
                        "{{.Error}}",
                    ]);
                    assert!(ls.contains("create was interrupted"), "{ls}");
                }
            }
            None => panic!(
                "create ended by a signal it should have handled: {:?}",
                out.status
            ),
        }
        // Whatever the moment, the host's live configuration is whole: a certificate with its
        // key, a complete drop-in, no temporary file put in place.
        let check = host.exec(
            "set -e; cd /etc/docker; if [ -e server.pem ]; then \
               [ \"$(openssl x509 -in server.pem -noout -pubkey)\" = \"$(openssl pkey -in server-key.pem -pubout)\" ]; fi; \
             f=/etc/systemd/system/docker.service.d/10-machine.conf; \
             if [ -e $f ]; then grep -q '^ExecStart=/' $f; fi",
        );
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        // And the machine, if recorded, is removable.
        if sb.store_path().join("machines").join(&name).exists() {
            sb.ok(&["rm", "-y", &name]);
        }
    }
    // Only the last may have finished before its signal came.
    assert!(
        interrupted >= 4,
        "only {interrupted} of 5 creates were interrupted"
    );
    // The host still takes a machine.
    created(&sb, &host, "after", &[]);
    assert_eq!(docker_info_name(&sb, "after"), "after\n");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn ports_copies_versions_upgrades_and_a_new_ca_on_two_hosts() {
    lab::require();
    let hosts = LabHost::start_many(2, Variant::Docker, false);
    let (a, b) = (&hosts[0], &hosts[1]);
    let mut sb = Sandbox::new();
    sb.create_none("other", "tcp://127.0.0.1:1");
    // Non-default SSH and engine ports.
    a.sh("printf 'Port 22\\nPort 2222\\n' > /etc/ssh/sshd_config.d/ports.conf && systemctl restart ssh");
    created(
        &sb,
        a,
        "ports",
        &[
            "--generic-ssh-port",
            "2222",
            "--generic-engine-port",
            "2377",
        ],
    );
    assert_eq!(sb.ok(&["url", "ports"]), format!("tcp://{}:2377\n", a.ip));
    let via = sb.ok(&["ssh", "ports", "echo $SSH_CONNECTION"]);
    assert!(via.trim_end().ends_with(" 2222"), "{via}");
    assert_eq!(docker_info_name(&sb, "ports"), "ports\n");
    created(&sb, b, "web2", &[]);

    // version NAME against a real daemon.
    let version = b.sh("docker version --format '{{.Server.Version}}'");
    assert_eq!(sb.ok(&["version", "web2"]), version);

    // MACHINE_NATIVE_SSH: the built-in client, not OpenSSH.
    sb.set("MACHINE_NATIVE_SSH", "1");
    let out = sb.run(&["--debug", "ssh", "web2", "echo", "native"]);
    assert_eq!(stdout(&out), "native\n", "{}", stderr(&out));
    assert!(!stderr(&out).contains("ssh -F"), "{}", stderr(&out));
    sb.unset("MACHINE_NATIVE_SSH");

    // scp -r, -q and -d (rsync, which sends only what changed).
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("a.txt"), "a\n").unwrap();
    fs::write(tree.join("sub/b.txt"), "b\n").unwrap();
    let out = sb.run(&["scp", tree.to_str().unwrap(), "web2:/tmp/tree"]);
    assert!(!out.status.success(), "a directory without -r");
    sb.ok(&["scp", "-r", "-q", tree.to_str().unwrap(), "web2:/tmp/tree"]);
    assert_eq!(b.sh("cat /tmp/tree/a.txt /tmp/tree/sub/b.txt"), "a\nb\n");
    fs::write(tree.join("sub/b.txt"), "changed\n").unwrap();
    fs::remove_file(tree.join("a.txt")).unwrap();
    sb.ok(&[
        "scp",
        "-d",
        &format!("{}/", tree.display()),
        "web2:/tmp/tree/",
    ]);
    assert_eq!(
        b.sh("cat /tmp/tree/sub/b.txt; test -e /tmp/tree/a.txt && echo kept || echo deleted"),
        "changed\ndeleted\n"
    );

    // regenerate-certs --client-certs on two machines: a new CA; the machine not named is told
    // to still trust the old one; both named machines work with the new one. `other` (a none
    // machine, whose daemon hoist does not provision) is not part of the rotation, which ends.
    // web2's docker context follows its certificates.
    sb.ok(&["context", "web2"]);
    let out = sb.ok(&["regenerate-certs", "-f", "--client-certs", "ports", "web2"]);
    assert!(
        out.contains("The CA is new: the daemons of other still trust only the old one; run 'hoist regenerate-certs -f --client-certs --all' to rotate them all")
            && out.contains("Every machine has a certificate of the new CA: dropping the previous CA"),
        "{out}"
    );
    assert_eq!(docker_info_name(&sb, "ports"), "ports\n");
    assert_eq!(docker_info_name(&sb, "web2"), "web2\n");
    assert_eq!(
        shell_ok(&sb, "docker --context web2 info --format '{{.Name}}'"),
        "web2\n"
    );
    // The named machines carry the new CA and certificates; `other` keeps the old copies, as
    // the message said.
    let certs = sb.store_path().join("certs");
    for name in ["ports", "web2"] {
        let dir = sb.store_path().join("machines").join(name);
        common::assert_signed_by(&dir.join("server.pem"), &certs.join("ca.pem"));
        assert_eq!(
            fs::read(dir.join("cert.pem")).unwrap(),
            fs::read(certs.join("cert.pem")).unwrap()
        );
    }
    assert_ne!(
        fs::read(sb.store_path().join("machines/other/ca.pem")).unwrap(),
        fs::read(certs.join("ca.pem")).unwrap()
    );

    // upgrade: the distribution's package upgraded (or already the newest), the daemon back.
    let out = sb.ok(&["upgrade", "web2"]);
    assert!(
        out.contains("Upgrading docker...") && out.contains("Restarting docker..."),
        "{out}"
    );
    assert_eq!(docker_info_name(&sb, "web2"), "web2\n");

    // A host cut off the network: ls says Timeout within its --timeout, the other row is fine.
    b.cut();
    let ls = sb.ok(&["ls", "--timeout", "2", "--format", "{{.Name}} {{.State}}"]);
    b.heal();
    assert_eq!(ls, "other Running\nports Running\nweb2 Timeout\n");
}

/// `hoist doctor NAME`: (exit status, the line of the named check).
/// Asserts that `hoist doctor MACHINE` passes, showing its report when it does not.
fn doctor_passes(sb: &Sandbox, machine: &str) {
    let out = sb.run(&["doctor", machine]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

fn doctor_line(sb: &Sandbox, machine: &str, check: &str) -> (i32, String) {
    let out = sb.run(&["doctor", machine]);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.get(8..8 + check.len()) == Some(check))
        .unwrap_or_else(|| panic!("no {check:?} line in:\n{text}{}", stderr(&out)))
        .to_string();
    (out.status.code().unwrap(), line)
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn doctor_names_each_broken_part_of_a_machine() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &host, "doc", &[]);
    let healthy = sb.run(&["doctor", "doc"]);
    let text = stdout(&healthy);
    assert!(healthy.status.success(), "{text}{}", stderr(&healthy));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  ok    ")).count(),
        7,
        "{text}"
    );
    assert!(text.contains("host key as pinned (SHA256:"), "{text}");
    assert!(text.contains("the running dockerd has its"), "{text}");
    assert!(text.contains(&format!("names {}", host.ip)), "{text}");
    let dropin = "/etc/systemd/system/docker.service.d/10-machine.conf";

    // The drop-in removed (dockerd still runs with its flags).
    host.sh(&format!("mv {dropin} /root/dropin"));
    let (code, line) = doctor_line(&sb, "doc", "engine drop-in");
    assert_eq!(code, 1);
    assert!(
        line.contains("is missing -- fix: `hoist provision doc`"),
        "{line}"
    );
    // Changed but not applied: the running flags differ.
    host.sh(&format!(
        "sed 's/--tlsverify/--tlsverify --debug/' /root/dropin > {dropin}"
    ));
    let (_, line) = doctor_line(&sb, "doc", "engine drop-in");
    assert!(line.contains("flags differ from the drop-in"), "{line}");
    host.sh(&format!("mv /root/dropin {dropin}"));

    // The daemon stopped: named twice, with the service's state.
    host.sh("systemctl stop docker.socket 2>/dev/null; systemctl stop docker");
    let (code, line) = doctor_line(&sb, "doc", "engine port");
    assert_eq!(code, 1);
    assert!(
        line.contains("FAIL") && line.contains("the docker service is inactive"),
        "{line}"
    );
    let (_, line) = doctor_line(&sb, "doc", "engine drop-in");
    assert!(line.contains("dockerd is not running"), "{line}");
    host.sh("systemctl start docker");

    // The host's clock an hour ahead, as its `date` reports it over SSH (a wrapper first on the
    // PATH: `date -s` would move the kernel clock every lab host and this machine share).
    host.sh("printf '#!/bin/sh\\nexec /bin/date -d @$(( $(/bin/date +%%s) + 3600 )) \"$@\"\\n' > /usr/local/bin/date && chmod +x /usr/local/bin/date");
    let (code, line) = doctor_line(&sb, "doc", "TLS handshake");
    assert_eq!(code, 1);
    assert!(
        line.contains("the host's clock is +3") && line.contains("timedatectl set-ntp true"),
        "{line}"
    );
    host.sh("rm /usr/local/bin/date");
    doctor_passes(&sb, "doc");

    // A server certificate without the address, then one that has ended.
    let regenerated_ok = |sb: &Sandbox| {
        sb.ok(&["regenerate-certs", "-f", "doc"]);
        doctor_passes(sb, "doc");
    };
    for (names, start, end, expected) in [
        (
            vec!["10.255.255.1"],
            -1,
            30,
            "the server certificate names 10.255.255.1, not ",
        ),
        (
            vec![host.ip.as_str()],
            -30,
            -1,
            "the server certificate ended on ",
        ),
    ] {
        let (cert, key) = common::cert_valid_between(&sb, &names, start, end);
        host.sh(&format!(
            "printf '%s' '{cert}' > /etc/docker/server.pem && printf '%s' '{key}' > /etc/docker/server-key.pem && systemctl restart docker"
        ));
        let (code, line) = doctor_line(&sb, "doc", "TLS handshake");
        assert_eq!(code, 1);
        assert!(
            line.contains(expected) && line.contains("fix: `hoist regenerate-certs -f doc`"),
            "{line}"
        );
        let (_, api) = doctor_line(&sb, "doc", "docker API");
        assert!(
            api.contains("skip  docker API     no TLS connection"),
            "{api}"
        );
        regenerated_ok(&sb);
    }

    // A changed host key: refused and named, with the re-trust command.
    host.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh");
    let (code, line) = doctor_line(&sb, "doc", "SSH login");
    assert_eq!(code, 1);
    assert!(
        line.contains("has changed") && line.contains("provision --trust-new-host-key doc"),
        "{line}"
    );
    sb.ok(&["provision", "--trust-new-host-key", "doc"]);

    // The host cut off the network: its SSH port does not answer, with the firewall hint.
    host.cut();
    let (code, line) = doctor_line(&sb, "doc", "SSH port");
    host.heal();
    assert_eq!(code, 1);
    assert!(
        line.contains(&format!("FAIL  SSH port       {}:22: ", host.ip))
            && line.contains("firewall"),
        "{line}"
    );

    // A wrong IP in the record: nothing answers there.
    let config = sb.store_path().join("machines/doc/config.json");
    let record = fs::read_to_string(&config).unwrap();
    let port = common::closed_port().to_string();
    fs::write(
        &config,
        record
            .replace(
                &format!("\"IPAddress\": \"{}\"", host.ip),
                "\"IPAddress\": \"127.0.0.1\"",
            )
            .replace("\"SSHPort\": 22", &format!("\"SSHPort\": {port}")),
    )
    .unwrap();
    let (code, line) = doctor_line(&sb, "doc", "SSH port");
    assert_eq!(code, 1);
    assert!(
        line.contains(&format!("127.0.0.1:{port}: Connection refused")),
        "{line}"
    );
    fs::write(&config, record).unwrap();
    doctor_passes(&sb, "doc");
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn regenerate_certs_keeps_the_containers_running_and_the_hosts_daemon_json() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let sb = Sandbox::new();
    // The host's own daemon.json, in its own formatting.
    let original = "{ \"log-level\":\"info\" }\n";
    host.sh(&format!(
        "printf '%s' '{original}' > /etc/docker/daemon.json && systemctl restart docker"
    ));
    created(&sb, &host, "live", &[]);
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    let out = lab_ssh(
        &host,
        "docker import - bb:live >/dev/null && docker run -d --name sleeper bb:live /bin/busybox sleep 3600 >/dev/null",
        Some(&tar),
    );
    common::assert_ok(&out, "hoist");
    let container = || {
        host.sh(
            "docker inspect -f '{{.State.StartedAt}} {{.State.Pid}} {{.State.Running}}' sleeper",
        )
    };
    let before = container();
    let cert_before = host.sh("cat /etc/docker/server.pem");

    let out = sb.ok(&["regenerate-certs", "-f", "live"]);
    assert!(out.contains("Live-restore is on for the restart"), "{out}");
    assert_ne!(
        host.sh("cat /etc/docker/server.pem"),
        cert_before,
        "a new server certificate"
    );
    assert_eq!(
        container(),
        before,
        "the container kept running through the restart"
    );
    assert!(before.ends_with("true\n"), "{before}");
    assert_eq!(
        host.sh("cat /etc/docker/daemon.json"),
        original,
        "daemon.json as it was"
    );
    assert_eq!(
        host.sh("docker info --format '{{.LiveRestoreEnabled}}'"),
        "false\n"
    );
    assert_eq!(
        docker_info_name(&sb, "live"),
        format!("{}\n", host.sh("hostname").trim())
    );
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn an_exported_machine_runs_containers_from_another_store() {
    lab::require();
    let host = LabHost::start(Variant::Docker, false);
    let a = Sandbox::new();
    created(&a, &host, "web", &[]);
    let tar = lab::busybox_tarball(a.dir.path());
    let hello = |sb: &Sandbox, name: &str| {
        shell_ok(
            sb,
            &format!(
                "eval $(hoist env {name}) && docker import {} bb:1 >/dev/null && docker run --rm bb:1 busybox echo hello-from-{name}",
                tar.display()
            ),
        )
    };
    // Into a store with a CA of its own: the machine keeps its CA, SSH key and pinned host key.
    let b = Sandbox::new();
    b.create_none("local", "tcp://127.0.0.1:1");
    let plain = b.dir.path().join("web.tar");
    a.ok(&["export", "web", "-o", plain.to_str().unwrap()]);
    b.ok(&["import", plain.to_str().unwrap(), "--name", "moved"]);
    assert_eq!(hello(&b, "moved"), "hello-from-moved\n");
    assert_eq!(b.ok(&["ssh", "moved", "echo", "ssh-ok"]), "ssh-ok\n");
    let err = b.fails(&["regenerate-certs", "-f", "moved"]);
    assert!(err.contains("imported without --with-ca"), "{err}");

    // Encrypted with the CA, into a fresh store: certificates can be regenerated there.
    let mut a = a;
    a.set("HOIST_PASSPHRASE", "lab secret");
    let sealed = a.dir.path().join("web.tar.age");
    a.ok(&[
        "export",
        "--with-ca",
        "--passphrase",
        "web",
        "-o",
        sealed.to_str().unwrap(),
    ]);
    let mut c = Sandbox::new();
    c.set("HOIST_PASSPHRASE", "lab secret");
    c.ok(&["import", sealed.to_str().unwrap()]);
    c.ok(&["regenerate-certs", "-f", "web"]);
    assert_eq!(hello(&c, "web"), "hello-from-web\n");
    // The original store still reaches it: the CA did not change.
    assert_eq!(docker_info_name(&a, "web"), docker_info_name(&c, "web"));
}

/// How a daemon treats one client certificate at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Accepted,
    Rejected,
    Down,
}

/// One TLS request with a client certificate, the server verified against `roots`.
fn verdict(
    url: &str,
    roots: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Verdict {
    let paths = hoist::cert::CertPaths {
        ca_cert: roots.into(),
        ca_key: Default::default(),
        client_cert: cert.into(),
        client_key: key.into(),
    };
    let Ok(tls) = hoist::cert::client_config(&paths) else {
        return Verdict::Down;
    };
    let client = hoist::engine::EngineClient::new(tls, std::time::Duration::from_secs(2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(client.check_tls(url)) {
        Ok(()) => Verdict::Accepted,
        Err(
            hoist::engine::EngineError::Connect { .. } | hoist::engine::EngineError::Timeout { .. },
        ) => Verdict::Down,
        Err(_) => Verdict::Rejected,
    }
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn a_ca_rotation_never_leaves_a_daemon_refusing_every_client() {
    lab::require();
    let hosts = LabHost::start_many(2, Variant::Docker, false);
    let sb = Sandbox::new();
    created(&sb, &hosts[0], "r1", &[]);
    created(&sb, &hosts[1], "r2", &[]);
    sb.create_none("outside", "tcp://127.0.0.1:1");
    let tar = lab::busybox_tarball(sb.dir.path());
    let running = shell_ok(
        &sb,
        &format!(
            "eval $(hoist env r1) && docker import {} bb:1 >/dev/null && docker run -d bb:1 busybox sleep 600",
            tar.display()
        ),
    );
    let started_at = || {
        shell_ok(
            &sb,
            &format!(
                "eval $(hoist env r1) && docker inspect -f '{{{{.State.StartedAt}}}}' {}",
                running.trim()
            ),
        )
    };
    let before = started_at();
    // The old client, as a teammate or a CI runner may hold it.
    let certs = sb.store_path().join("certs");
    let old = sb.dir.path().join("old");
    fs::create_dir_all(&old).unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        fs::copy(certs.join(f), old.join(f)).unwrap();
    }
    let old_ca = fs::read(old.join("ca.pem")).unwrap();
    let urls: Vec<String> = hosts
        .iter()
        .map(|h| format!("tcp://{}:2376", h.ip))
        .collect();

    let mut rotation = sb.spawn(&["regenerate-certs", "-f", "--client-certs", "--all"], true);
    let roots = sb.dir.path().join("roots.pem");
    // Per machine: (old client, new client) at each probe once the new client exists.
    let mut seen: Vec<Vec<(Verdict, Verdict)>> = vec![Vec::new(); urls.len()];
    common::while_running(&mut rotation, std::time::Duration::from_millis(20), || {
        let Ok(new_ca) = fs::read(certs.join("ca.pem")) else {
            return;
        };
        if new_ca == old_ca || !certs.join("cert.pem").exists() {
            return;
        }
        fs::write(&roots, [old_ca.clone(), new_ca].concat()).unwrap();
        for (i, url) in urls.iter().enumerate() {
            let with_old = verdict(url, &roots, &old.join("cert.pem"), &old.join("key.pem"));
            let with_new = verdict(url, &roots, &certs.join("cert.pem"), &certs.join("key.pem"));
            seen[i].push((with_old, with_new));
        }
    });
    let out = common::finish(rotation);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("Leaving machine \"outside\" out of the CA rotation")
            && said.contains("dropping the previous CA"),
        "{said}"
    );
    for (url, probes) in urls.iter().zip(&seen) {
        assert!(
            !probes.contains(&(Verdict::Rejected, Verdict::Rejected)),
            "{url} refused every client at one moment: {probes:?}"
        );
        assert!(
            probes.contains(&(Verdict::Accepted, Verdict::Accepted)),
            "{url} never trusted both CAs: {probes:?}"
        );
    }
    // Done: the previous CA is gone everywhere, the new client works, the container ran on.
    assert!(!certs.join("ca-previous.pem").exists());
    fs::write(&roots, fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(
            verdict(url, &roots, &old.join("cert.pem"), &old.join("key.pem")),
            Verdict::Rejected
        );
        assert_eq!(
            verdict(url, &roots, &certs.join("cert.pem"), &certs.join("key.pem")),
            Verdict::Accepted
        );
        let name = format!("r{}", i + 1);
        assert_eq!(
            fs::read(sb.store_path().join("machines").join(&name).join("ca.pem")).unwrap(),
            fs::read(certs.join("ca.pem")).unwrap()
        );
        assert_eq!(docker_info_name(&sb, &name), format!("{name}\n"));
    }
    assert_eq!(started_at(), before);
}

/// A machine's whole life on a Debian 13 host, through the real docker CLI: create (with
/// `extra`), `docker run` over TLS, `regenerate-certs` (a new server certificate on the host),
/// `upgrade`, `rm`; and the words of `upgrade` once the host's distribution is one hoist does not
/// know.
fn lifecycle_on_debian_13(host: &LabHost, name: &str, extra: &[&str]) {
    let os = host.sh(". /etc/os-release && echo $ID $VERSION_CODENAME");
    assert_eq!(os, "debian trixie\n");
    let sb = Sandbox::new();
    created(&sb, host, name, extra);
    assert_eq!(docker_info_name(&sb, name), format!("{name}\n"));
    // The daemon is the host's Debian 13 docker.io, whose Engine API is newer than Debian 12's 1.41.
    let api = shell_ok(
        &sb,
        &format!(
            "eval $(hoist env {name}) && docker version --format '{{{{.Server.APIVersion}}}}'"
        ),
    );
    let minor: u32 = api.trim().strip_prefix("1.").unwrap().parse().unwrap();
    assert!(minor > 41, "{api}");
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.DockerVersion}}"]),
        format!("{name} Running {}\n", host.docker_version())
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    let run = shell_ok(
        &sb,
        &format!(
            "eval $(hoist env {name}) && docker import {} bb:13 >/dev/null && docker run --rm bb:13 /bin/busybox echo ran-on-trixie",
            tar.display()
        ),
    );
    assert_eq!(run, "ran-on-trixie\n");

    let server_pem = || host.sh("cat /etc/docker/server.pem");
    let before = server_pem();
    sb.ok(&["regenerate-certs", "-f", name]);
    let after = server_pem();
    assert_ne!(
        before, after,
        "regenerate-certs put a new certificate on the host"
    );
    assert_eq!(
        fs::read_to_string(
            sb.store_path()
                .join("machines")
                .join(name)
                .join("server.pem")
        )
        .unwrap(),
        after
    );
    assert_eq!(docker_info_name(&sb, name), format!("{name}\n"));

    let out = sb.ok(&["upgrade", name]);
    assert!(
        out.contains("Upgrading docker...") && out.contains("Restarting docker..."),
        "{out}"
    );
    assert_eq!(docker_info_name(&sb, name), format!("{name}\n"));

    host.sh("cp /etc/os-release /root/os-release && rm /etc/os-release && printf 'ID=plan9\\nPRETTY_NAME=\"Plan 9\"\\n' > /etc/os-release");
    let out = sb.run(&["upgrade", name]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "machine \"{name}\": unsupported operating system ID \"plan9\" (Plan 9); hoist provisions Debian, Ubuntu, Fedora, RHEL-likes, SUSE and Arch"
        )
    );
    host.sh("cp /root/os-release /etc/os-release");

    sb.ok(&["rm", "-y", name]);
    assert_eq!(sb.ok(&["ls", "-q"]), "");
    assert!(!sb.store_path().join("machines").join(name).exists());
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn debian_13_with_its_own_docker() {
    lab::require();
    let host = LabHost::start(Variant::TrixieDocker, false);
    lifecycle_on_debian_13(&host, "trixie", &[]);
}

#[test]
#[ignore = "needs the lab: HOIST_LAB=1 lab/test"]
fn debian_13_bare_gets_the_distribution_docker() {
    lab::require();
    let host = LabHost::start(Variant::TrixieBare, false);
    assert_eq!(host.sh("command -v dockerd || echo none"), "none\n");
    lifecycle_on_debian_13(&host, "trixie-bare", &["--engine-install-method", "distro"]);
    // Exactly dpkg's word for an installed package ("not-installed" contains "installed").
    assert_eq!(
        host.sh("dpkg-query -W -f '${Status}' docker.io"),
        "install ok installed"
    );
}
