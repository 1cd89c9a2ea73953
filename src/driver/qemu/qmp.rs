//! The QEMU Machine Protocol on a VM's unix socket: one JSON object per line, a greeting, then
//! `qmp_capabilities` before any command; events may come between a command and its answer.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long one QMP exchange may take (QEMU answers at once; a hung one must not hang `ls`).
const QMP_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs one QMP command on the socket at `path`; its `return` value.
pub async fn execute(path: &Path, command: &str) -> Result<Value, String> {
    execute_with(path, command, Value::Null).await
}

/// Whether a vCPU of the guest runs in user space (privilege level 3) right now, from QEMU's own
/// register dump: proof that the guest's kernel booted to its first program.
pub async fn in_user_space(path: &Path) -> Result<bool, String> {
    let dump = execute_with(
        path,
        "human-monitor-command",
        json!({ "command-line": "info registers -a" }),
    )
    .await?;
    Ok(dump.as_str().unwrap_or("").contains("CPL=3"))
}

/// Waits until the VM's migration (a save to a file, or a load from one) has ended, up to
/// `limit`; QEMU's own words when it failed.
pub async fn wait_migration(path: &Path, limit: Duration) -> Result<(), String> {
    let started = std::time::Instant::now();
    loop {
        let status = execute(path, "query-migrate").await?;
        match status.get("status").and_then(Value::as_str).unwrap_or("") {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                return Err(status
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("the migration failed")
                    .to_string());
            }
            _ if started.elapsed() >= limit => {
                return Err(format!("it did not end within {}s", limit.as_secs()));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs one QMP command with its arguments (`null`: none).
pub async fn execute_with(path: &Path, command: &str, arguments: Value) -> Result<Value, String> {
    tokio::time::timeout(QMP_TIMEOUT, exchange(path, command, arguments))
        .await
        .map_err(|_| {
            format!(
                "QMP did not answer {command} within {}s",
                QMP_TIMEOUT.as_secs()
            )
        })?
}

async fn exchange(path: &Path, command: &str, arguments: Value) -> Result<Value, String> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| format!("cannot connect to QMP at {}: {e}", path.display()))?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    // The greeting, then capabilities negotiation, then the command.
    next_answer(&mut lines, true).await?;
    for execute in ["qmp_capabilities", command] {
        let mut request = json!({ "execute": execute });
        if execute == command && !arguments.is_null() {
            request["arguments"] = arguments.clone();
        }
        let line = request.to_string() + "\n";
        write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("QMP: {e}"))?;
        let answer = next_answer(&mut lines, false).await?;
        if execute == command {
            return Ok(answer);
        }
    }
    Ok(Value::Null)
}

/// The next line that is not an event: the greeting (`QMP`) or an answer (`return`/`error`).
async fn next_answer(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    greeting: bool,
) -> Result<Value, String> {
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| format!("QMP: {e}"))?
            .ok_or("QMP closed the connection")?;
        let value: Value =
            serde_json::from_str(&line).map_err(|e| format!("QMP sent {line:?}: {e}"))?;
        if greeting && value.get("QMP").is_some() {
            return Ok(value);
        }
        if let Some(answer) = value.get("return") {
            return Ok(answer.clone());
        }
        if let Some(error) = value.get("error") {
            return Err(format!(
                "QMP: {}",
                error.get("desc").and_then(Value::as_str).unwrap_or("error")
            ));
        }
    }
}
