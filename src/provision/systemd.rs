//! The systemd drop-in `/etc/systemd/system/docker.service.d/10-machine.conf` that makes dockerd
//! listen on TCP with mutual TLS. Every value is quoted for systemd, so neither systemd (`$`, `%`)
//! nor a shell expands anything in it.

use crate::store::config::EngineOptions;

/// Where the drop-in goes.
pub const DROPIN_PATH: &str = crate::engine::HOST_DROPIN_PATH;
/// Where the daemon's certificates go.
pub const CA_REMOTE: &str = "/etc/docker/ca.pem";
/// The daemon's certificate.
pub const SERVER_CERT_REMOTE: &str = "/etc/docker/server.pem";
/// The daemon's private key (0600).
pub const SERVER_KEY_REMOTE: &str = "/etc/docker/server-key.pem";
/// The daemon's environment (`--engine-env`, which may hold proxy passwords): 0600, named by
/// the drop-in's `EnvironmentFile=`, not written into the world-readable drop-in.
pub const ENV_FILE_REMOTE: &str = "/etc/docker/10-machine.env";

/// How dockerd gets its local socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalSocket {
    /// The unit is socket-activated (Debian's docker.io, docker-ce): keep `-H fd://`.
    SystemdSocket,
    /// dockerd listens on `unix:///var/run/docker.sock` itself.
    Unix,
}

/// dockerd's command line for a machine.
pub fn daemon_args(
    dockerd: &str,
    port: u16,
    socket: LocalSocket,
    engine: &EngineOptions,
    driver_name: &str,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        dockerd.into(),
        "-H".into(),
        format!("tcp://0.0.0.0:{port}"),
        "-H".into(),
    ];
    args.push(match socket {
        LocalSocket::SystemdSocket => "fd://".into(),
        LocalSocket::Unix => "unix:///var/run/docker.sock".into(),
    });
    if !engine.storage_driver.is_empty() {
        args.extend(["--storage-driver".into(), engine.storage_driver.clone()]);
    }
    for (flag, path) in [
        ("--tlscacert", CA_REMOTE),
        ("--tlscert", SERVER_CERT_REMOTE),
        ("--tlskey", SERVER_KEY_REMOTE),
    ] {
        if flag == "--tlscacert" {
            args.push("--tlsverify".into());
        }
        args.extend([flag.to_string(), path.to_string()]);
    }
    let labels = engine
        .labels
        .iter()
        .flatten()
        .cloned()
        .chain(provider_label(engine, driver_name));
    for label in labels {
        args.extend(["--label".into(), label]);
    }
    for r in engine.insecure_registry.iter().flatten() {
        args.extend(["--insecure-registry".into(), r.clone()]);
    }
    for m in engine.registry_mirror.iter().flatten() {
        args.extend(["--registry-mirror".into(), m.clone()]);
    }
    for opt in engine.arbitrary_flags.iter().flatten() {
        args.push(format!("--{opt}"));
    }
    args
}

/// `provider=<driver>`, docker-machine's label of every machine, unless the engine has one.
pub fn provider_label(engine: &EngineOptions, driver_name: &str) -> Option<String> {
    let has = engine
        .labels
        .iter()
        .flatten()
        .any(|l| l.starts_with("provider="));
    (!has).then(|| format!("provider={driver_name}"))
}

/// Double-quotes a value for systemd with C escapes — every control character escaped (a raw CR
/// makes some systemd versions drop or split the line) —; `%` is doubled (specifiers), and `$`
/// too where systemd would expand variables (`ExecStart=`, not `Environment=`).
fn systemd_quoted(value: &str, double_dollar: bool) -> String {
    crate::format::quote_with(value, |c| match c {
        '%' => Some("%%"),
        '$' if double_dollar => Some("$$"),
        _ => None,
    })
}

/// Quotes one word of an `ExecStart=` line: bare when safe, else quoted (see [`systemd_quoted`]).
fn systemd_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@+".contains(&b));
    if safe {
        word.to_string()
    } else {
        systemd_quoted(word, true)
    }
}

/// The drop-in's text; a NUL anywhere, which systemd cannot carry, is an error naming the value.
/// With an environment, it names [`ENV_FILE_REMOTE`].
pub fn dropin(args: &[String], env: &[String]) -> Result<String, String> {
    if let Some(bad) = args.iter().chain(env).find(|v| v.contains('\0')) {
        return Err(format!(
            "the engine option \"{}\" contains a NUL character, which systemd cannot carry",
            bad.replace('\0', "\\0")
        ));
    }
    let exec = args
        .iter()
        .map(|a| systemd_word(a))
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = format!("[Service]\nExecStart=\nExecStart={exec}\n");
    if !env.is_empty() {
        text.push_str(&format!("EnvironmentFile={ENV_FILE_REMOTE}\n"));
    }
    Ok(text)
}

/// The environment file of `--engine-env` assignments (`KEY=value`), in systemd's format: a
/// value in single quotes (taken literally), or in double quotes with `"`, `\`, `` ` `` and
/// `$` escaped where it has a single quote. A key that is not a variable name is an error.
pub fn environment_file(env: &[String]) -> Result<String, String> {
    let mut text = String::new();
    for assignment in env {
        let (key, value) = assignment.split_once('=').unwrap_or((assignment, ""));
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "--engine-env {assignment:?}: {key:?} is not an environment variable name"
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "--engine-env {key}: the value contains a NUL character, which systemd cannot carry"
            ));
        }
        if value.contains('\'') {
            let mut quoted = String::from("\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\' | '`' | '$') {
                    quoted.push('\\');
                }
                quoted.push(c);
            }
            quoted.push('"');
            text.push_str(&format!("{key}={quoted}\n"));
        } else {
            text.push_str(&format!("{key}='{value}'\n"));
        }
    }
    Ok(text)
}

/// The start of a shell command that runs `systemctl daemon-reload` unless systemd has loaded
/// the drop-in on disk already (a machine made from a snapshot); it ends with `&& `.
/// `NeedDaemonReload` alone does not say so: systemd does not look for drop-in directories made
/// since its last reload (a run cut short after writing the drop-in), so the drop-in must be in
/// the unit's loaded `DropInPaths` too.
pub fn reload_unless_loaded() -> String {
    format!(
        "{{ s=\" $(systemctl show -p NeedDaemonReload -p DropInPaths docker | tr '\\n' ' ') \"; \
         case \"$s\" in *' NeedDaemonReload=no '*) ;; *) s= ;; esac; \
         case \"$s\" in *[=\\ ]{DROPIN_PATH}' '*) ;; *) systemctl daemon-reload ;; esac; }} && "
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EngineOptions {
        EngineOptions {
            labels: Some(vec!["spam=eggs".into(), "note=two words".into()]),
            insecure_registry: Some(vec!["registry.myco.com".into()]),
            registry_mirror: Some(vec!["https://mirror.test".into()]),
            arbitrary_flags: Some(vec![
                "log-driver=none".into(),
                "default-ulimit=nofile=1024:2048".into(),
            ]),
            env: Some(vec![
                "TEST=VALUE".into(),
                "PROXY=http://u:p%41@p:3128 $HOME".into(),
            ]),
            ..EngineOptions::default()
        }
    }

    #[test]
    fn renders_the_machine_dropin() {
        let e = engine();
        let args = daemon_args(
            "/usr/sbin/dockerd",
            2376,
            LocalSocket::SystemdSocket,
            &e,
            "generic",
        );
        let text = dropin(&args, e.env.as_deref().unwrap()).unwrap();
        assert_eq!(
            text,
            "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2376 -H fd:// --tlsverify --tlscacert /etc/docker/ca.pem --tlscert /etc/docker/server.pem --tlskey /etc/docker/server-key.pem --label spam=eggs --label \"note=two words\" --label provider=generic --insecure-registry registry.myco.com --registry-mirror https://mirror.test --log-driver=none --default-ulimit=nofile=1024:2048\nEnvironmentFile=/etc/docker/10-machine.env\n"
        );
    }

    #[test]
    fn storage_driver_only_when_asked_and_unix_socket() {
        let mut e = EngineOptions::default();
        let args = daemon_args("/usr/bin/dockerd", 2377, LocalSocket::Unix, &e, "generic");
        assert!(!args.contains(&"--storage-driver".to_string()));
        assert!(args.contains(&"unix:///var/run/docker.sock".to_string()));
        e.storage_driver = "vfs".into();
        let args = daemon_args("/usr/bin/dockerd", 2377, LocalSocket::Unix, &e, "generic");
        assert_eq!(
            args[5..7],
            ["--storage-driver".to_string(), "vfs".to_string()]
        );
    }

    #[test]
    fn control_characters_are_escaped_and_nul_is_refused() {
        assert_eq!(
            systemd_quoted("a\rb\x07c\x7f", false),
            "\"a\\rb\\x07c\\x7f\""
        );
        assert_eq!(systemd_word("x\ry"), "\"x\\ry\"");
        let err = dropin(&["dockerd".into()], &["A=b\0c".into()]).unwrap_err();
        assert!(err.contains("NUL") && err.contains("A=b\\0c"), "{err}");
        assert!(environment_file(&["A=b\0c".into()]).is_err());
        assert!(dropin(&["dockerd\0".into()], &[]).is_err());
    }

    #[test]
    fn the_environment_goes_to_a_file_of_its_own() {
        let e = engine();
        assert_eq!(
            environment_file(e.env.as_deref().unwrap()).unwrap(),
            "TEST='VALUE'\nPROXY='http://u:p%41@p:3128 $HOME'\n"
        );
        assert_eq!(
            environment_file(&["Q=it's $x \"y\" \\z\r".into()]).unwrap(),
            "Q=\"it's \\$x \\\"y\\\" \\\\z\r\"\n"
        );
        assert!(environment_file(&["1BAD=x".into()]).is_err());
        assert!(environment_file(&["A B=x".into()]).is_err());
        assert!(
            !dropin(&["dockerd".into()], &[])
                .unwrap()
                .contains("EnvironmentFile")
        );
    }

    #[test]
    fn systemd_quoting_escapes_expansions() {
        assert_eq!(systemd_word("a$b"), "\"a$$b\"");
        assert_eq!(systemd_word("100%"), "\"100%%\"");
        assert_eq!(systemd_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(systemd_word(""), "\"\"");
    }

    /// Runs [`reload_unless_loaded`] with a `systemctl` that answers `show` with `shown` and
    /// records a reload; tells whether it reloaded.
    fn reloads_when_systemd_shows(shown: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("reloaded");
        let fake = dir.path().join("systemctl");
        crate::fsutil::write_sh_script(
            &fake,
            &format!(
                "case \"$1\" in show) printf '%s\\n' '{}' | tr '|' '\\n' ;; daemon-reload) touch {} ;; esac",
                shown,
                log.display()
            ),
        );
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}echo done", reload_unless_loaded()))
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "{out:?}");
        log.exists()
    }

    #[test]
    fn systemd_is_reloaded_unless_it_has_loaded_the_dropin() {
        let other = "/etc/systemd/system/docker.service.d/http-proxy.conf";
        // Loaded and unchanged: no reload, wherever the drop-in is in the list.
        assert!(!reloads_when_systemd_shows(&format!(
            "NeedDaemonReload=no|DropInPaths={DROPIN_PATH}"
        )));
        assert!(!reloads_when_systemd_shows(&format!(
            "DropInPaths={other} {DROPIN_PATH}|NeedDaemonReload=no"
        )));
        // Changed on disk since systemd read it.
        assert!(reloads_when_systemd_shows(&format!(
            "NeedDaemonReload=yes|DropInPaths={DROPIN_PATH}"
        )));
        // Written in a directory systemd has not seen: it says no reload is needed, wrongly.
        assert!(reloads_when_systemd_shows(
            "NeedDaemonReload=no|DropInPaths="
        ));
        assert!(reloads_when_systemd_shows(&format!(
            "NeedDaemonReload=no|DropInPaths={other}"
        )));
        assert!(reloads_when_systemd_shows(&format!(
            "NeedDaemonReload=no|DropInPaths={DROPIN_PATH}.bak"
        )));
    }
}
