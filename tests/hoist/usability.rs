//! The first hour with hoist, without a lab: versions that scripts check, usage errors that say
//! what to type, help that reads well, completions, and output piped into `head`.

use crate::common;
use common::Bounded;

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
        .spawn()
        .map(common::finish)
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
    // docker-machine parses MACHINE_NATIVE_SSH with Go's ParseBool: 1, t, true, 0, f, false. It
    // shows: an SSH server that closes every connection makes OpenSSH's client say
    // `kex_exchange_identification`, hoist's native client does not.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let mut sb = Sandbox::new();
    common::generic_record(&sb, "web", port);
    for (value, native) in [
        ("1", true),
        ("t", true),
        ("true", true),
        ("TRUE", true),
        ("0", false),
        ("f", false),
        ("false", false),
    ] {
        sb.set("MACHINE_NATIVE_SSH", value);
        let out = sb.run(&["ssh", "web", "true"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "MACHINE_NATIVE_SSH={value}");
        assert!(
            err.contains(&format!("cannot reach 127.0.0.1:{port} over SSH")),
            "{value}: {err}"
        );
        assert_eq!(
            !err.contains("kex_exchange_identification"),
            native,
            "MACHINE_NATIVE_SSH={value} chose the wrong client: {err}"
        );
    }
    sb.set("MACHINE_NATIVE_SSH", "maybe");
    let err = sb.fails(&["ls", "-q"]);
    assert!(
        err.contains("invalid value 'maybe' for '--native-ssh'") && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// `NAME=value` pairs of `env -0`'s output.
fn environment_of(dump: &[u8]) -> std::collections::BTreeMap<String, String> {
    dump.split(|b| *b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (name, value) = text.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
#[ignore = "needs dash, zsh, fish and tcsh (lab/lab deps installs them; lab/test runs this)"]
fn env_output_keeps_crafted_values_exactly_in_every_shell_and_runs_nothing() {
    // A storage path (DOCKER_CERT_PATH) and a NO_PROXY full of what shells act on: quotes,
    // command substitutions, backquotes, `;`, `%`, `!`, globs, braces, a tilde, a backslash.
    let mut sb = Sandbox::new();
    let daemon = common::FakeDaemon::start(&sb, "24.0.7", common::Behaviour::Answer);
    sb.create_none("d", &daemon.url());
    let crafted =
        r#"st'o "re" $(touch m1) `touch m2` ${HOME} ; touch m3 & %s %% !x * ? [a] {b,c} ~ \q|"#;
    let store = sb.dir.path().join(crafted);
    std::os::unix::fs::symlink(sb.store_path(), &store).unwrap();
    sb.set("MACHINE_STORAGE_PATH", store.to_str().unwrap());
    let no_proxy = r#"a.lab,b'c"d $(touch m4) `touch m5`;%p !y"#;
    sb.set("NO_PROXY", no_proxy);
    let bin = sb.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(common::hoist_bin(), bin.join("hoist")).unwrap();
    let path = format!("{}:{}", bin.display(), sb.env["PATH"]);
    let expected_cert_path = format!("{}/machines/d", store.display());
    let ip = sb.ok(&["ip", "d"]).trim().to_string();
    // The documented `eval` of each shell and the exact-value one (POSIX shells word-split an
    // unquoted `$(...)`, so exact values need `eval "$(...)"`).
    let runs: [(&str, &str, &[&str], bool); 8] = [
        (
            "dash",
            "sh",
            &[
                "-c",
                r#"eval "$(hoist env --no-proxy --shell sh d)" && exec env -0"#,
            ],
            true,
        ),
        (
            "bash",
            "bash",
            &[
                "-c",
                r#"eval "$(hoist env --no-proxy --shell bash d)" && exec env -0"#,
            ],
            true,
        ),
        (
            "zsh",
            "zsh",
            &[
                "-c",
                r#"eval "$(hoist env --no-proxy --shell zsh d)" && exec env -0"#,
            ],
            true,
        ),
        (
            "fish",
            "fish",
            &[
                "-c",
                "hoist env --no-proxy --shell fish d | source; and exec env -0",
            ],
            true,
        ),
        (
            "tcsh",
            "tcsh",
            &[
                "-c",
                "eval \"`hoist env --no-proxy --shell tcsh d`\"; exec env -0",
            ],
            true,
        ),
        (
            "bash",
            "bash",
            &[
                "-c",
                "eval $(hoist env --no-proxy --shell bash d) && exec env -0",
            ],
            false,
        ),
        (
            "fish",
            "fish",
            &[
                "-c",
                "eval (hoist env --no-proxy --shell fish d); and exec env -0",
            ],
            false,
        ),
        (
            "tcsh",
            "tcsh",
            &[
                "-c",
                "eval `hoist env --no-proxy --shell tcsh d`; exec env -0",
            ],
            false,
        ),
    ];
    for (program, shell, args, exact) in runs {
        let cwd = tempfile::tempdir().unwrap();
        let out = Command::new(program)
            .args(args)
            .current_dir(cwd.path())
            .env_clear()
            .envs(&sb.env)
            .env("PATH", &path)
            .env("SHELL", format!("/bin/{shell}"))
            .output_bounded();
        assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
        let markers: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().flatten().collect();
        assert!(
            markers.is_empty(),
            "{program} {args:?} ran something: {markers:?}"
        );
        let vars = environment_of(&out.stdout);
        assert_eq!(vars["DOCKER_TLS_VERIFY"], "1", "{program}");
        assert_eq!(vars["DOCKER_HOST"], daemon.url(), "{program}");
        assert_eq!(vars["DOCKER_MACHINE_NAME"], "d", "{program}");
        if exact {
            assert_eq!(
                vars["DOCKER_CERT_PATH"], expected_cert_path,
                "{program} {args:?}"
            );
            assert_eq!(
                vars["NO_PROXY"],
                format!("{no_proxy},{ip}"),
                "{program} {args:?}"
            );
        }
    }
    // What no shell's eval can keep is refused in one line, for every shell.
    let broken = sb.dir.path().join("line\nbreak");
    std::os::unix::fs::symlink(sb.store_path(), &broken).unwrap();
    sb.set("MACHINE_STORAGE_PATH", broken.to_str().unwrap());
    for shell in ["sh", "fish", "tcsh", "powershell", "cmd"] {
        let err = sb.fails(&["env", "--shell", shell, "d"]);
        assert!(
            err.contains("contains a line break, which a shell's eval cannot keep")
                && err.trim().lines().count() == 1,
            "{shell}: {err}"
        );
    }
    // PowerShell and cmd are not installed here: their escaping is tested on strings
    // (src/shell.rs, values_are_escaped_for_each_shell).
}

/// Elvish's completion, run by the real elvish (Debian's package). The script registers itself
/// in `edit:completion:arg-completer`, a namespace of the interactive editor only, so the test
/// gives it a stand-in namespace and calls the completer as the editor would.
#[test]
fn elvish_completes_commands_and_a_commands_flags() {
    let sb = Sandbox::new();
    let script = sb.dir.path().join("hoist.elv");
    let stand_in = "var edit: = (ns [&completion:= (ns [&arg-completer= [&]]) &complex-candidate~= {|text &display=''| put $text}])\n";
    let complete = |words: &str| {
        let completer = format!(
            "{stand_in}{}\n$edit:completion:arg-completer[hoist] {words} | each {{|c| echo $c}}\n",
            sb.ok(&["completion", "elvish"])
        );
        std::fs::write(&script, completer).unwrap();
        let out = Command::new("elvish")
            .arg("-norc")
            .arg(&script)
            .output_bounded();
        assert!(out.status.success(), "elvish: {}", stderr(&out));
        stdout(&out)
    };
    let commands = complete("hoist ''");
    assert!(
        commands.lines().any(|l| l == "regenerate-certs") && commands.lines().any(|l| l == "ls"),
        "{commands}"
    );
    let flags = complete("hoist ls ''");
    assert!(
        flags.lines().any(|l| l == "--filter") && !flags.lines().any(|l| l == "regenerate-certs"),
        "{flags}"
    );
}
