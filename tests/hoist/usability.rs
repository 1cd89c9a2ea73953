//! The first hour with hoist, without a lab: versions that scripts check, usage errors that say
//! what to type, help that reads well, completions, and output piped into `head`.

use crate::common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{Sandbox, stderr, stdout};

#[test]
fn versions_say_which_docker_machine_hoist_stands_in_for() {
    let sb = Sandbox::new();
    let commit = env!("CARGO_PKG_VERSION");
    for args in [&["--version"][..], &["version"][..], &["-v"][..]] {
        let out = sb.run_as("docker-machine", args);
        let line = stdout(&out);
        assert!(
            line.starts_with(&format!(
                "docker-machine version 0.16.2, build hoist-{commit}-"
            )),
            "{args:?}: {line}"
        );
        let out = sb.run(args);
        assert!(
            stdout(&out).starts_with(&format!("hoist version {commit}, build ")),
            "{args:?}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn usage_errors_are_one_line_with_the_right_hint() {
    let sb = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--nope"],
            "Incorrect Usage: unexpected argument '--nope' found. See 'hoist --help'.\n",
        ),
        (
            &[
                "create",
                "-d",
                "generic",
                "--generic-ip-adress",
                "192.0.2.1",
                "web",
            ],
            "Incorrect Usage: unexpected argument '--generic-ip-adress' found (a similar argument exists: '--generic-ip-address'). See 'hoist create --help'.\n",
        ),
        (
            &["completion"],
            "Incorrect Usage: the following required arguments were not provided: <SHELL>. See 'hoist completion --help'.\n",
        ),
    ];
    for (args, expected) in cases {
        let out = sb.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), *expected, "{args:?}");
    }
    // Without -d, docker-machine's default driver, and what hoist has instead.
    let err = sb.fails(&["create", "web"]);
    assert!(
        err.contains("\"virtualbox\"")
            && err.contains("it builds in none, generic, qemu, amazonec2 (choose one with -d)"),
        "{err}"
    );
}

#[test]
fn help_shows_a_commands_own_flags_then_the_global_ones() {
    let sb = Sandbox::new();
    let help = sb.ok(&["ls", "--help"]);
    let own = help.find("--filter").expect("ls's own flags");
    let global = help.find("Global options:").expect("a heading of its own");
    assert!(own < global, "{help}");
    assert!(help[global..].contains("--storage-path"), "{help}");
    assert!(!help[..global].contains("--storage-path"), "{help}");
    // Environment variables by name; the store's default path from $HOME.
    assert!(
        !help.contains("=]"),
        "an unset variable shown as empty: {help}"
    );
    assert!(help.contains("[env: MACHINE_TLS_CA_CERT]"), "{help}");
    let home = &sb.env["HOME"];
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!("[default: {home}/.docker/machine]")),
        "{help}"
    );
}

/// Runs hoist with its stdout on a pipe whose reading end is already closed.
fn run_into_closed_pipe(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors that are owned below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(common::hoist_bin())
        .args(args)
        .env_clear()
        .envs(&sb.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let mut sb = Sandbox::new();
    sb.create_none("web", "tcp://127.0.0.1:1");
    let daemon = common::FakeDaemon::start(&sb, "24.0.7", common::Behaviour::Answer);
    sb.create_none("live", &daemon.url());
    sb.set("DOCKER_HOST", &daemon.url());
    let commands: &[&[&str]] = &[
        &["config", "live"],
        &["env", "live"],
        &["active"],
        &["version", "live"],
        &["completion", "bash"],
        &["completion", "zsh"],
        &["ls"],
        &["ls", "-q"],
        &["inspect", "web"],
        &["url", "web"],
        &["ip", "web"],
        &["status", "web"],
        &["env", "--no-check", "web"],
        &["version"],
        &["--help"],
        &["ls", "--help"],
        &["create", "-d", "none", "--help"],
    ];
    for args in commands {
        let out = run_into_closed_pipe(&sb, args);
        assert_eq!(stderr(&out), "", "{args:?} wrote to stderr");
        // Its first write meets the closed pipe: the default SIGPIPE ends it, silently.
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} ended with {:?}",
            out.status
        );
    }
}

#[test]
fn completions_offer_machine_names_and_register_docker_machine_too() {
    let mut sb = Sandbox::new();
    sb.create_none("alpha", "tcp://127.0.0.1:1");
    sb.create_none("beta", "tcp://127.0.0.1:1");
    let script = sb.dir.path().join("hoist.bash");
    std::fs::write(&script, sb.ok(&["completion", "bash"])).unwrap();
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(common::hoist_bin(), bin.join("hoist")).unwrap();
    let path = format!("{}:{}", bin.display(), sb.env["PATH"]);
    sb.set("PATH", &path);
    let complete = |words: &str, cword: usize| {
        let out = common::shell(
            &sb,
            &format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _hoist_with_machines \"${{COMP_WORDS[0]}}\" \"${{COMP_WORDS[{cword}]}}\" \"${{COMP_WORDS[{}]}}\"; echo \"${{COMPREPLY[*]}}\"; complete -p hoist docker-machine",
                script.display(),
                cword - 1
            ),
        );
        common::assert_ok(&out, "hoist");
        stdout(&out)
    };
    let out = complete("hoist ip ''", 2);
    assert!(out.starts_with("alpha beta\n"), "{out}");
    let out = complete("hoist rm -y b", 3);
    assert!(out.starts_with("beta\n"), "{out}");
    // Flags: a command's own, and no machine names among them.
    let out = complete("hoist ls --fo", 2);
    assert!(out.starts_with("--format\n"), "{out}");
    let out = complete("hoist ssh --native", 2);
    assert!(!out.lines().next().unwrap().contains("alpha"), "{out}");
    let out = complete("docker-machine st", 1);
    let first = out.lines().next().unwrap();
    assert!(first.contains("status") && first.contains("stop"), "{out}");
    assert!(
        out.contains("_hoist_with_machines")
            && out.contains(" hoist\n")
            && out.contains(" docker-machine\n"),
        "both names registered: {out}"
    );
    // zsh and fish get the same machine names and both names.
    let zsh = sb.ok(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef hoist docker-machine\n"), "{zsh}");
    assert!(zsh.contains("'*::names:_hoist_machines'") && !zsh.contains("'*::names:_default'"));
    let fish = sb.ok(&["completion", "fish"]);
    assert!(
        fish.contains("-a \"(hoist ls -q 2>/dev/null)\"")
            && fish.contains("complete -c docker-machine -w hoist")
    );
}

#[test]
fn boolean_environment_variables_read_as_go_reads_them() {
    // docker-machine parses MACHINE_NATIVE_SSH with Go's ParseBool: 1, t, true, 0, f, false.
    let mut sb = Sandbox::new();
    for value in ["1", "t", "true", "TRUE", "0", "f", "false"] {
        sb.set("MACHINE_NATIVE_SSH", value);
        let out = sb.run(&["ls", "-q"]);
        assert!(
            out.status.success(),
            "MACHINE_NATIVE_SSH={value}: {}",
            stderr(&out)
        );
    }
}
