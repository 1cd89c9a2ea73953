//! SSH: the native client (russh) that provisioning uses, host-key pinning (trust on first use),
//! and the quoting of remote commands.
//!
//! One [`Session`] per operation carries all of its commands; file contents travel on a command's
//! stdin, never inside a quoted string.

pub mod keys;
pub mod quote;
pub mod remote;
pub mod terminal;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PublicKey};

pub use keys::{DEFAULT_KEYS, make_key};
pub use quote::quote;
pub use remote::Remote;

/// Where and how to reach a machine over SSH.
#[derive(Debug, Clone, PartialEq)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key; `None` means the agent and the default keys in `~/.ssh`.
    pub key: Option<PathBuf>,
    /// The key as the user named it (hoist uses a copy in the machine directory), for messages.
    pub key_origin: Option<PathBuf>,
}

/// What can go wrong over SSH.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {addr} over SSH: {reason}")]
    Connect { addr: String, reason: String },
    #[error(
        "the SSH host key of {addr} has changed: pinned {pinned}, offered {offered}. If the host was reinstalled on purpose, re-trust it with '{} provision --trust-new-host-key {machine}'",
        crate::program::program_name()
    )]
    HostKeyChanged {
        addr: String,
        machine: String,
        pinned: String,
        offered: String,
    },
    #[error("SSH authentication as {user}@{addr} failed (tried: {tried}); {hint}")]
    Auth {
        user: String,
        addr: String,
        tried: String,
        hint: String,
    },
    #[error("SSH key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("SSH session to {addr} failed: {reason}")]
    Session { addr: String, reason: String },
    #[error(
        "user \"{user}\" on machine \"{machine}\" cannot use sudo without a password ({reason}); hoist needs passwordless sudo (NOPASSWD) or the root user"
    )]
    Sudo {
        user: String,
        machine: String,
        reason: String,
    },
    #[error("{what} failed on machine \"{machine}\" (exit status {status}): {reason}")]
    Command {
        what: String,
        machine: String,
        status: u32,
        reason: String,
    },
}

/// The output of a remote command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).to_string()
    }

    /// The last non-empty line of stderr (else stdout): the useful part of an error.
    pub fn last_error_line(&self) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        [text(&self.stderr), text(&self.stdout)]
            .iter()
            .find_map(|t| {
                t.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }
}

struct PinCheck {
    pinned: Option<PublicKey>,
    offered: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for PinCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        let key = key.clone();
        let accepted = self
            .pinned
            .as_ref()
            .is_none_or(|p| p.key_data() == key.key_data());
        *self.offered.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
        Ok(accepted)
    }
}

/// The algorithms to ask the server's host key in: only the pinned key's kind (any RSA signature
/// for an RSA key), so that a server that gained a key of another kind is not taken for a
/// changed one; all of them before a key is pinned.
fn host_key_algorithms(pinned: Option<&PublicKey>) -> russh::Preferred {
    let preferred = russh::Preferred::default();
    let Some(pinned) = pinned else {
        return preferred;
    };
    let kind = pinned.algorithm();
    let is_rsa = |a: &russh::keys::Algorithm| matches!(a, russh::keys::Algorithm::Rsa { .. });
    let key: Vec<_> = preferred
        .key
        .iter()
        .filter(|a| **a == kind || (is_rsa(a) && is_rsa(&kind)))
        .cloned()
        .collect();
    if key.is_empty() {
        return preferred;
    }
    russh::Preferred {
        key: key.into(),
        ..preferred
    }
}

/// The SHA256 fingerprint of a host key, as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether an SSH server answers at `host:port` with its banner within 3 s (a forwarded port, or
/// a machine still booting, can accept a connection before sshd is up).
pub async fn answers(host: &str, port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let mut banner = [0u8; 4];
        stream.read_exact(&mut banner).await.ok()?;
        (&banner == b"SSH-").then_some(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Parses a pinned host key (`ssh-ed25519 AAAA…`).
pub fn parse_host_key(line: &str) -> Option<PublicKey> {
    PublicKey::from_openssh(line.trim()).ok()
}

/// Where to connect and what to trust.
#[derive(Debug, Clone)]
pub struct Target {
    pub machine: String,
    pub endpoint: SshEndpoint,
    /// The pinned host key, or `None` to trust on first use.
    pub pinned: Option<String>,
    pub connect_timeout: Duration,
}

/// An authenticated SSH connection.
pub struct Session {
    handle: Handle<PinCheck>,
    addr: String,
    /// The host key the server presented, in `authorized_keys` form.
    pub host_key: String,
    /// The user logged in as.
    pub user: String,
}

impl Target {
    fn addr(&self) -> String {
        crate::netaddr::join_host_port(&self.endpoint.host, self.endpoint.port)
    }
}

impl Session {
    /// Connects and authenticates (key file, else ssh-agent, else `~/.ssh/id_*`), checking the
    /// host key against the pinned one.
    pub async fn connect(target: &Target) -> Result<Session, SshError> {
        let addr = target.addr();
        let pinned = match &target.pinned {
            Some(line) => Some(parse_host_key(line).ok_or_else(|| SshError::Session {
                addr: addr.clone(),
                reason: format!("the pinned host key {line:?} is not a valid key"),
            })?),
            None => None,
        };
        let offered = Arc::new(Mutex::new(None));
        let handler = PinCheck {
            pinned: pinned.clone(),
            offered: offered.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            preferred: host_key_algorithms(pinned.as_ref()),
            ..Default::default()
        });
        let connecting = client::connect(config, addr.clone(), handler);
        let result = tokio::time::timeout(target.connect_timeout, connecting).await;
        let offered_key = offered.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut handle = match result {
            Err(_) => {
                return Err(SshError::Connect {
                    addr,
                    reason: format!("timed out after {}s", target.connect_timeout.as_secs()),
                });
            }
            Ok(Err(e)) => {
                if let (Some(p), Some(o)) = (&pinned, &offered_key)
                    && p.key_data() != o.key_data()
                {
                    return Err(SshError::HostKeyChanged {
                        addr,
                        machine: target.machine.clone(),
                        pinned: fingerprint(p),
                        offered: fingerprint(o),
                    });
                }
                return Err(SshError::Connect {
                    addr,
                    reason: connect_reason(&e),
                });
            }
            Ok(Ok(handle)) => handle,
        };
        let host_key = offered_key
            .and_then(|k| k.to_openssh().ok())
            .unwrap_or_default();
        let user = target.endpoint.user.clone();
        keys::authenticate(&mut handle, &user, &target.endpoint, &addr).await?;
        Ok(Session {
            handle,
            addr,
            host_key,
            user,
        })
    }

    /// Connects, retrying until `deadline` passes (for hosts that are still booting). A changed
    /// host key or failed authentication is final.
    pub async fn connect_retrying(
        target: &Target,
        deadline: Duration,
    ) -> Result<Session, SshError> {
        let started = std::time::Instant::now();
        // Quick retries first (a host's sshd restarting or reloading is back within a fraction
        // of a second), then one a second.
        let mut pause = Duration::from_millis(100);
        loop {
            match Session::connect(target).await {
                Ok(s) => return Ok(s),
                Err(
                    e @ (SshError::HostKeyChanged { .. }
                    | SshError::Auth { .. }
                    | SshError::Key { .. }),
                ) => {
                    return Err(e);
                }
                Err(SshError::Connect { addr, reason }) if started.elapsed() >= deadline => {
                    return Err(SshError::Connect {
                        addr,
                        reason: format!("{reason} (tried for {}s)", deadline.as_secs()),
                    });
                }
                Err(e) if started.elapsed() >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs a command, feeding `stdin` to it; returns its exit status and output.
    pub async fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let err = |e: russh::Error| SshError::Session {
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        let mut channel = self.handle.channel_open_session().await.map_err(err)?;
        channel.exec(true, command).await.map_err(err)?;
        if let Some(data) = stdin {
            channel.data(data).await.map_err(err)?;
        }
        channel.eof().await.map_err(err)?;
        let mut out = Output::default();
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.stderr
                        .extend_from_slice(format!("killed by signal {signal_name:?}").as_bytes());
                    status = Some(255);
                }
                _ => {}
            }
        }
        out.status = status.ok_or_else(|| SshError::Session {
            addr: self.addr.clone(),
            reason: format!("the connection closed before {command:?} reported its exit status"),
        })?;
        Ok(out)
    }

    /// Opens an interactive shell (or runs `command`) on a PTY, wired to this terminal.
    pub async fn interactive(&self, command: Option<&str>) -> Result<u32, SshError> {
        terminal::interactive(&self.handle, &self.addr, command).await
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn connect_reason(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => crate::engine::io_reason(io),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_banner_is_an_ssh_server() {
        use tokio::io::AsyncWriteExt;
        let sshd = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = sshd.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = sshd.accept().await {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
            }
        });
        assert!(answers("127.0.0.1", port).await);
        let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web_port = web.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = web.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        assert!(!answers("127.0.0.1", web_port).await);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(!answers("127.0.0.1", closed_port).await);
    }
}
