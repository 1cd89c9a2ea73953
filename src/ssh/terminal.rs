//! Interactive sessions: a PTY on the remote side, the local terminal in raw mode, and the
//! remote exit status passed through.

use russh::ChannelMsg;
use russh::client::Handle;
use tokio::io::AsyncWriteExt;

use super::{PinCheck, SshError};

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
