//! Questions on the terminal: yes/no, and passphrases read with the echo off.

use hoist::error::{Error, Result};

/// The passphrase of an archive: `$HOIST_PASSPHRASE`, else asked on the terminal without echo
/// (twice, to confirm, for a new one).
pub fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(secret) = std::env::var(ENV_PASSPHRASE) {
        return match secret.is_empty() {
            true => Err(Error::Other(format!("{ENV_PASSPHRASE} is empty"))),
            false => Ok(secret),
        };
    }
    let first = ask_secret("Passphrase: ")?;
    if first.is_empty() {
        return Err(Error::Other("an empty passphrase encrypts nothing".into()));
    }
    if confirm && ask_secret("Passphrase again: ")? != first {
        return Err(Error::Other("the passphrases differ".into()));
    }
    Ok(first)
}

/// Where scripts give an archive's passphrase.
const ENV_PASSPHRASE: &str = "HOIST_PASSPHRASE";

/// One line read from the terminal with its echo off.
fn ask_secret(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let no_tty = |e: std::io::Error| {
        Error::Other(format!(
            "cannot ask for the passphrase ({e}): set {ENV_PASSPHRASE}"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios of an open terminal, put back as it was before returning.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(no_tty(std::io::Error::last_os_error()));
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut line = String::new();
    let read = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|_| std::io::BufReader::new(&tty).read_line(&mut line));
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    let _ = (&tty).write_all(b"\n");
    read.map_err(no_tty)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks a yes/no question on the terminal; an empty answer or end of input is an error.
pub fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    print!("{question} (y/n): ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer).unwrap_or(0);
    if read == 0 || answer.trim().is_empty() {
        println!();
        return Err(Error::Usage(
            "Error: no answer given; pass -y (rm) or -f (regenerate-certs) to skip the question"
                .into(),
        ));
    }
    Ok(answer.trim_start().starts_with(['y', 'Y']))
}
