//! SSH authentication (key file, ssh-agent, default keys) and interactive sessions on a PTY.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::ChannelMsg;
use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg};
use tokio::io::AsyncWriteExt;

use super::{PinCheck, SshError};

/// The keys tried, in order, when no key is given and the agent has none that works.
pub const DEFAULT_KEYS: &[&str] = &["id_ed25519", "id_ecdsa", "id_rsa"];

/// Loads a private key file; `Ok(None)` when it is encrypted (it must come through the agent).
pub fn load_key(path: &Path) -> Result<Option<PrivateKey>, SshError> {
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(Some(k)),
        Err(russh::keys::Error::KeyIsEncrypted) => Ok(None),
        Err(e) => Err(SshError::Key {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

async fn try_key(handle: &mut Handle<PinCheck>, user: &str, key: PrivateKey) -> bool {
    let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    };
    let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
    matches!(
        handle.authenticate_publickey(user, key).await,
        Ok(AuthResult::Success)
    )
}

async fn try_agent(handle: &mut Handle<PinCheck>, user: &str, tried: &mut Vec<String>) -> bool {
    let Ok(mut agent) = AgentClient::connect_env().await else {
        return false;
    };
    let Ok(identities) = agent.request_identities().await else {
        return false;
    };
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    for identity in identities {
        let key = identity.public_key().into_owned();
        tried.push(format!("agent key {}", key.fingerprint(Default::default())));
        let hash = matches!(key.algorithm(), Algorithm::Rsa { .. })
            .then_some(rsa_hash)
            .flatten();
        if matches!(
            handle
                .authenticate_publickey_with(user, key, hash, &mut agent)
                .await,
            Ok(AuthResult::Success)
        ) {
            return true;
        }
    }
    false
}

/// Authenticates: the key file when given (through the agent when it is encrypted); otherwise
/// the agent's keys, then `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
pub(super) async fn authenticate(
    handle: &mut Handle<PinCheck>,
    user: &str,
    key: Option<&Path>,
    addr: &str,
) -> Result<(), SshError> {
    let mut tried = Vec::new();
    if let Some(path) = key {
        match load_key(path)? {
            Some(k) => {
                tried.push(path.display().to_string());
                if try_key(handle, user, k).await {
                    return Ok(());
                }
            }
            None => {
                tried.push(format!("{} (encrypted: needs ssh-agent)", path.display()));
                if try_agent(handle, user, &mut tried).await {
                    return Ok(());
                }
            }
        }
    } else {
        if try_agent(handle, user, &mut tried).await {
            return Ok(());
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        for name in DEFAULT_KEYS {
            let path = home.join(".ssh").join(name);
            if let Ok(Some(k)) = load_key(&path) {
                tried.push(path.display().to_string());
                if try_key(handle, user, k).await {
                    return Ok(());
                }
            }
        }
    }
    Err(SshError::Auth {
        user: user.to_string(),
        addr: addr.to_string(),
        tried: if tried.is_empty() {
            "no key: none given, no ssh-agent, no ~/.ssh/id_* key".into()
        } else {
            tried.join(", ")
        },
    })
}

/// Puts the terminal on stdin in raw mode until dropped.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enable() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled, termios struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(0) == 0 || libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in `enable`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

fn terminal_size() -> (u32, u32) {
    // SAFETY: TIOCGWINSZ fills a winsize struct for fd 1.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            (u32::from(ws.ws_col), u32::from(ws.ws_row))
        } else {
            (80, 24)
        }
    }
}

/// This process's standard input, read on a thread of its own: unlike `tokio::io::stdin`, whose
/// blocking read keeps the runtime from shutting down, the thread does not delay the exit once
/// the remote session has ended. The channel closes at end of input.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs a shell (or `command`) on a PTY, copying this terminal's input and output.
pub(super) async fn interactive(
    handle: &Handle<PinCheck>,
    addr: &str,
    command: Option<&str>,
) -> Result<u32, SshError> {
    let err = |e: russh::Error| SshError::Session {
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let mut channel = handle.channel_open_session().await.map_err(err)?;
    let (cols, rows) = terminal_size();
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
    channel
        .request_pty(false, &term, cols, rows, 0, 0, &[])
        .await
        .map_err(err)?;
    match command {
        Some(c) => channel.exec(true, c).await.map_err(err)?,
        None => channel.request_shell(true).await.map_err(err)?,
    }
    let _raw = RawMode::enable();
    let mut stdin = stdin_chunks();
    let mut stdout = tokio::io::stdout();
    let mut stdin_open = true;
    let mut status = 0;
    loop {
        tokio::select! {
            chunk = stdin.recv(), if stdin_open => match chunk {
                None => { stdin_open = false; let _ = channel.eof().await; }
                Some(bytes) => channel.data(&bytes[..]).await.map_err(err)?,
            },
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let _ = stdout.write_all(&data).await;
                    let _ = stdout.flush().await;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = exit_status,
                Some(_) => {}
                None => break,
            },
        }
    }
    Ok(status)
}
