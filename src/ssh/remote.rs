//! Commands on a host over one SSH session, as root: `sudo -n` for a non-root user, every step
//! logged for `--debug`, failures named by what was being done.

use super::{Output, Session, SshError, quote};
use crate::report::Reporter;

/// Commands on one host over one connection, with `sudo -n` for a non-root user.
pub struct Remote<'a> {
    session: Session,
    sudo: bool,
    /// The machine's name, for messages.
    pub machine: String,
    report: &'a dyn Reporter,
}

impl<'a> Remote<'a> {
    /// Wraps a session; checks that a non-root user has passwordless sudo.
    pub async fn new(
        session: Session,
        machine: &str,
        report: &'a dyn Reporter,
    ) -> Result<Remote<'a>, SshError> {
        let sudo = session.user != "root";
        let remote = Remote {
            session,
            sudo,
            machine: machine.to_string(),
            report,
        };
        if sudo {
            let out = remote.exec("sudo -n true", None).await?;
            if out.status != 0 {
                return Err(SshError::Sudo {
                    user: remote.session.user.clone(),
                    machine: machine.to_string(),
                    reason: out.last_error_line(),
                });
            }
        }
        Ok(remote)
    }

    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        self.report
            .debug(&format!("(ssh {}) {command}", self.session.addr()));
        let limit = crate::context::remote_timeout();
        let out = tokio::time::timeout(limit, self.session.run(command, stdin))
            .await
            .map_err(|_| SshError::Command {
                what: format!("a remote command ({})", first_words(command)),
                machine: self.machine.clone(),
                status: 124,
                reason: format!(
                    "it did not finish within {}s (set {} to allow longer)",
                    limit.as_secs(),
                    crate::context::ENV_REMOTE_TIMEOUT
                ),
            })??;
        self.report.debug(&format!(
            "exit status {}\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout_text().trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
        Ok(out)
    }

    /// Runs a shell script as root; its output whatever the exit status.
    pub async fn root(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let command = if self.sudo {
            format!("sudo -n sh -c {}", quote(script))
        } else {
            format!("sh -c {}", quote(script))
        };
        self.exec(&command, stdin).await
    }

    /// Runs a shell script as root and fails, naming `what`, when it exits non-zero.
    pub async fn root_ok(
        &self,
        what: &str,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, SshError> {
        let out = self.root(script, stdin).await?;
        if out.status != 0 {
            return Err(SshError::Command {
                what: what.to_string(),
                machine: self.machine.clone(),
                status: out.status,
                reason: out.last_error_line(),
            });
        }
        Ok(out)
    }

    /// Writes a file as root from `data` (sent on stdin), atomically, with `mode`.
    pub async fn upload(&self, path: &str, data: &[u8], mode: &str) -> Result<(), SshError> {
        self.upload_set(&[(path, data, mode)]).await
    }

    /// Writes a set of files that belong together (a certificate and its key), in one command:
    /// each is written under a temporary name, then all are moved into place, so that an
    /// interruption leaves the old set or the new one, never a certificate with another key.
    pub async fn upload_set(&self, files: &[(&str, &[u8], &str)]) -> Result<(), SshError> {
        let names = files
            .iter()
            .map(|(p, _, _)| *p)
            .collect::<Vec<_>>()
            .join(", ");
        let mut stdin: Vec<u8> = files
            .iter()
            .flat_map(|(_, data, _)| data.iter())
            .copied()
            .collect();
        stdin.extend_from_slice(UPLOAD_END.as_bytes());
        self.root_ok(
            &format!("writing {names}"),
            &upload_script(files),
            Some(&stdin),
        )
        .await
        .map(|_| ())
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// What follows the files on the upload's input: read back, it shows that every file had its
/// length.
const UPLOAD_END: &str = "hoist-end\n";

/// The one command of [`Remote::upload_set`]: the files arrive one after the other on its
/// standard input, then [`UPLOAD_END`]; each is read by its exact length (`head -c` reads no
/// further) into `NAME.hoist-new` beside its place, and only when all are written, with their
/// modes, are they moved into place. Few programs run: each start costs a tenth of a second on a
/// small or emulated host.
fn upload_script(files: &[(&str, &[u8], &str)]) -> String {
    let new = |path: &str| quote(&format!("{path}.hoist-new"));
    let mut script = String::from("set -e");
    let mut dirs: Vec<&str> = Vec::new();
    for (path, _, _) in files {
        let dir = std::path::Path::new(path)
            .parent()
            .and_then(|d| d.to_str())
            .unwrap_or("");
        if !dir.is_empty() && !dirs.contains(&dir) {
            script.push_str(&format!("; [ -d {d} ] || mkdir -p {d}", d = quote(dir)));
            dirs.push(dir);
        }
    }
    script.push_str("; umask 077");
    for (path, data, _) in files {
        script.push_str(&format!("; head -c {} > {}", data.len(), new(path)));
    }
    script.push_str(&format!(
        "; if ! read -r end || [ \"$end\" != {} ]; then echo 'the input ended before all files were written' >&2; exit 1; fi",
        UPLOAD_END.trim_end()
    ));
    let mut modes: Vec<&str> = files.iter().map(|(_, _, mode)| *mode).collect();
    modes.sort_unstable();
    modes.dedup();
    for mode in modes {
        let of_mode: Vec<String> = files
            .iter()
            .filter(|(_, _, m)| *m == mode)
            .map(|(path, _, _)| new(path))
            .collect();
        script.push_str(&format!("; chmod {} {}", quote(mode), of_mode.join(" ")));
    }
    for (path, _, _) in files {
        script.push_str(&format!("; mv -f {} {}", new(path), quote(path)));
    }
    script
}

/// The start of a command, to name it in a message.
fn first_words(command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().take(6).collect();
    let text = words.join(" ");
    if command.split_whitespace().count() > 6 {
        format!("{text} …")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upload script, run by the local shell on the files' bytes.
    fn run_upload(files: &[(&str, &[u8], &str)], stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", &upload_script(files)])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn one_command_writes_every_file_of_a_set_whole_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n).to_string_lossy().to_string();
        let (a, b, c) = (path("a.pem"), path("sub/dir/b key"), path("c"));
        std::fs::write(&a, b"old").unwrap();
        let files: [(&str, &[u8], &str); 3] = [
            (&a, b"first\nno newline at the end", "644"),
            (&b, b"", "600"),
            (&c, b"\x00binary\xff\n", "600"),
        ];
        let mut stdin: Vec<u8> = files.iter().flat_map(|f| f.1.iter()).copied().collect();
        stdin.extend_from_slice(UPLOAD_END.as_bytes());
        let out = run_upload(&files, &stdin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (p, data, mode) in files {
            assert_eq!(std::fs::read(p).unwrap(), data, "{p}");
            let m = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(format!("{m:o}"), mode, "{p}");
            assert!(!std::path::Path::new(&format!("{p}.hoist-new")).exists());
        }
    }

    #[test]
    fn an_input_of_other_lengths_fails_and_moves_nothing_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("a").to_string_lossy().to_string(),
            dir.path().join("b").to_string_lossy().to_string(),
        );
        std::fs::write(&a, b"old a").unwrap();
        let files: [(&str, &[u8], &str); 2] = [(&a, b"new a", "644"), (&b, b"new b", "600")];
        // Short, and longer than announced: neither is put in place.
        for stdin in [&b"new anew"[..], b"new anew bb\nhoist-end\n"] {
            let out = run_upload(&files, stdin);
            assert!(!out.status.success());
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).trim(),
                "the input ended before all files were written"
            );
            assert_eq!(std::fs::read(&a).unwrap(), b"old a");
            assert!(!std::path::Path::new(&b).exists());
        }
    }
}
