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
        let out = self.session.run(command, stdin).await?;
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
        let script = format!(
            "set -e; p={}; mkdir -p \"$(dirname \"$p\")\"; umask 077; cat > \"$p.hoist-tmp\"; chmod {} \"$p.hoist-tmp\"; mv \"$p.hoist-tmp\" \"$p\"",
            quote(path),
            quote(mode)
        );
        self.root_ok(&format!("writing {path}"), &script, Some(data))
            .await
            .map(|_| ())
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.session.close().await;
    }
}
