//! Provisioning's decisions that need no host: what the first round trip's answer means, which
//! family a host is and what one that is not known is told, the install method a record keeps,
//! and the install script, run by a real shell against stand-in programs.

use std::path::Path;

use super::*;

const DEBIAN_12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
const INFO: &str = r#"{"LiveRestoreEnabled": false, "Swarm": {"LocalNodeState": "inactive"}, "ContainersRunning": 2}"#;

/// The probe's output with these sections.
fn probe_output(os: &str, dockerd: &str, socket: &str, info: &str, dropin: &str) -> String {
    format!("{os}@@hoist@@\n{dockerd}\n@@hoist@@\n{socket}\n@@hoist@@\n{info}\n@@hoist@@\n{dropin}")
}

#[test]
fn the_probe_reads_each_section() {
    let probe = Probe::parse(&probe_output(
        DEBIAN_12,
        "/usr/sbin/dockerd",
        "enabled",
        INFO,
        "[Service]\nExecStart=\n",
    ));
    assert_eq!(
        (probe.os.id.as_str(), probe.os.version_id.as_str()),
        ("debian", "12")
    );
    assert_eq!(probe.dockerd, "/usr/sbin/dockerd");
    assert_eq!(probe.socket, LocalSocket::SystemdSocket);
    let daemon = probe.daemon.unwrap();
    assert_eq!(
        (
            daemon.live_restore,
            daemon.swarm.as_str(),
            daemon.containers_running
        ),
        (false, "inactive", 2)
    );
    assert_eq!(probe.dropin, "[Service]\nExecStart=\n");
}

#[test]
fn docker_socket_activation_is_read_from_systemd_words() {
    for (said, socket) in [
        ("enabled", LocalSocket::SystemdSocket),
        ("static", LocalSocket::SystemdSocket),
        ("indirect", LocalSocket::SystemdSocket),
        ("enabled-runtime", LocalSocket::SystemdSocket),
        ("disabled", LocalSocket::Unix),
        ("masked", LocalSocket::Unix),
        ("", LocalSocket::Unix),
    ] {
        let probe = Probe::parse(&probe_output(DEBIAN_12, "/usr/bin/dockerd", said, INFO, ""));
        assert_eq!(probe.socket, socket, "{said:?}");
    }
}

#[test]
fn a_host_without_docker_or_cut_short_reads_as_nothing_found() {
    // No dockerd, no daemon (its /info did not answer: no JSON), no drop-in.
    let probe = Probe::parse(&probe_output(
        DEBIAN_12,
        "",
        "",
        "curl: (7) Failed to connect",
        "",
    ));
    assert_eq!(probe.dockerd, "");
    assert!(probe.daemon.is_none());
    assert_eq!(probe.dropin, "");
    // The shell ended after os-release: every other section is missing.
    let probe = Probe::parse(DEBIAN_12);
    assert_eq!(probe.os.id, "debian");
    assert_eq!(
        (probe.dockerd.as_str(), probe.socket),
        ("", LocalSocket::Unix)
    );
    assert!(probe.daemon.is_none());
}

/// A machine record as docker-machine 0.16.2 wrote it (generic driver), named `name`.
fn host(name: &str) -> Host {
    let mut host: Host = serde_json::from_str(include_str!(
        "../../tests/fixtures/dm-store/machines/dev/config.json"
    ))
    .unwrap();
    host.name = name.to_string();
    host
}

#[test]
fn an_unknown_system_is_named_with_the_families_hoist_knows() {
    let plan9 = os::parse_os_release("ID=plan9\nPRETTY_NAME=\"Plan 9\"\n");
    assert_eq!(
        family(&host("old"), &plan9).err().unwrap().to_string(),
        "machine \"old\": unsupported operating system ID \"plan9\" (Plan 9); hoist provisions Debian, Ubuntu, Fedora, RHEL-likes, SUSE and Arch"
    );
    let nothing = os::parse_os_release("");
    assert_eq!(
        family(&host("old"), &nothing).err().unwrap().to_string(),
        "machine \"old\": unsupported operating system ID \"(no /etc/os-release)\"; hoist provisions Debian, Ubuntu, Fedora, RHEL-likes, SUSE and Arch"
    );
    // ID_LIKE decides when ID is not known (an Ubuntu-like is provisioned as Debian is).
    let mint = os::parse_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
    assert_eq!(family(&host("m"), &mint).unwrap().name, "debian");
}

#[test]
fn the_install_method_is_kept_in_the_record() {
    let mut h = host("m");
    assert_eq!(install_method(&h), InstallMethod::Auto);
    for method in [
        InstallMethod::Distro,
        InstallMethod::None,
        InstallMethod::Script,
    ] {
        set_install_method(&mut h, method);
        let reloaded: Host = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(install_method(&reloaded), method);
    }
    assert_eq!(
        InstallMethod::parse("snap").unwrap_err().to_string(),
        "invalid --engine-install-method \"snap\": expected auto, script, distro or none"
    );
}

/// Runs `script` with `sh` in `dir`, with stand-ins for `curl`, `systemctl` and the package
/// tools that write their arguments to `dir/log` (curl also writes an install script that
/// logs that it ran); returns the log.
fn run_with_stand_ins(dir: &Path, script: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("log");
    let stand_in = |name: &str, extra: &str| {
        crate::fsutil::write_sh_script(
            &bin.join(name),
            &format!(
                "for a in \"$@\"; do printf '%s|' \"$a\" >> {log}; done; echo >> {log}\n{extra}",
                log = log.display()
            ),
        );
    };
    stand_in(
        "curl",
        &format!(
            "while [ $# -gt 1 ]; do [ \"$1\" = -o ] && echo 'echo install.sh-ran >> {}' > \"$2\"; shift; done",
            log.display()
        ),
    );
    for name in ["systemctl", "apt-get", "dnf", "zypper", "pacman"] {
        stand_in(name, "");
    }
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn the_install_script_fetches_the_url_as_given_and_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let debian = os::family_of(&os::parse_os_release(DEBIAN_12)).unwrap();
    // A URL a shell would expand, split or run, were it not quoted.
    let url = "http://127.0.0.1:1/get docker.sh?a=1&b='$(touch pwned)'`id`";
    let (what, script) = install_script(debian, InstallMethod::Auto, url).unwrap();
    assert_eq!(what, format!("installing Docker with the script at {url}"));
    let log = run_with_stand_ins(dir.path(), &script);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].starts_with(&format!("-fsSL|--connect-timeout|20|--url|{url}|-o|")),
        "{log}"
    );
    assert_eq!(lines[1..], ["install.sh-ran", "enable|--now|docker|"]);
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn the_distribution_package_and_no_install_are_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let debian = os::family_of(&os::parse_os_release(DEBIAN_12)).unwrap();
    let (what, script) = install_script(debian, InstallMethod::Distro, "unused").unwrap();
    assert_eq!(what, "installing docker.io from the distribution");
    let log = run_with_stand_ins(dir.path(), &script);
    assert!(log.contains("install|-y|docker.io|"), "{log}");
    assert!(log.ends_with("enable|--now|docker|\n"), "{log}");
    assert!(!log.contains("--url"), "{log}");
    assert!(install_script(debian, InstallMethod::None, "unused").is_none());
}
