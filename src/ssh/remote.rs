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

    /// Writes a set of files that belong together (a certificate and its key): each is sent
    /// under a temporary name, then one command moves them all into place, so that an
    /// interruption leaves the old set or the new one, never a certificate with another key.
    pub async fn upload_set(&self, files: &[(&str, &[u8], &str)]) -> Result<(), SshError> {
        for (path, data, mode) in files {
            let script = format!(
                "set -e; p={}; mkdir -p \"$(dirname \"$p\")\"; umask 077; cat > \"$p.hoist-new\"; chmod {} \"$p.hoist-new\"",
                quote(path),
                quote(mode)
            );
            self.root_ok(&format!("writing {path}"), &script, Some(data))
                .await?;
        }
        let switch = files
            .iter()
            .map(|(path, _, _)| format!("mv -f {p}.hoist-new {p}", p = quote(path)))
            .collect::<Vec<_>>()
            .join(" && ");
        let names = files
            .iter()
            .map(|(p, _, _)| *p)
            .collect::<Vec<_>>()
            .join(", ");
        self.root_ok(&format!("putting {names} in place"), &switch, None)
            .await
            .map(|_| ())
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.session.close().await;
    }
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
