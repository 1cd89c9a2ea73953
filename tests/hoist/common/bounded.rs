//! Every process the tests start ends in bounded time, and every wait for a condition is
//! bounded too: a hang fails its test, naming what hung and what it had printed, instead of
//! hanging the run. The bounds are generous (a create under emulation on a loaded 2-core machine
//! takes minutes); they catch a hang, never measure speed (speed is `bench/`'s).

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any process started by the tests may run before it counts as hung.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(600);
/// How often [`finish_within`] looks again, and how soon [`eventually`] first does.
const POLL: Duration = Duration::from_millis(50);
/// The longest [`eventually`] waits between two checks (it doubles from [`POLL`]).
const POLL_MAX: Duration = Duration::from_secs(1);

/// `Command::output` and `Command::status` with [`PROCESS_LIMIT`].
pub trait Bounded {
    /// Runs with no input, stdout and stderr captured (as `output()` does), and waits at most
    /// [`PROCESS_LIMIT`]; a process still running then is killed and the test fails.
    fn output_bounded(&mut self) -> Output {
        self.output_bounded_from(Stdio::null())
    }
    /// [`Bounded::output_bounded`] with `stdin` as its input.
    fn output_bounded_from(&mut self, stdin: Stdio) -> Output;
    /// Runs with the caller's stdio settings and waits at most [`PROCESS_LIMIT`].
    fn status_bounded(&mut self) -> ExitStatus;
}

impl Bounded for Command {
    fn output_bounded_from(&mut self, stdin: Stdio) -> Output {
        let child = self
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.get_program()));
        finish(child)
    }

    fn status_bounded(&mut self) -> ExitStatus {
        let child = self
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.get_program()));
        finish(child).status
    }
}

/// Waits for `child` (reading whatever of its stdout and stderr is piped) for at most `limit`;
/// a child still running then is killed, and the test fails naming its command line and its
/// output so far.
pub fn finish_within(mut child: Child, limit: Duration) -> Output {
    fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (out, err) = (reader(child.stdout.take()), reader(child.stderr.take()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Ok(status);
        }
        if started.elapsed() >= limit {
            let what = std::fs::read(format!("/proc/{}/cmdline", child.id()))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            break Err(what);
        }
        std::thread::sleep(POLL);
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Ok(status) => Output {
            status,
            stdout,
            stderr,
        },
        Err(what) => panic!(
            "hung: {what} was still running after {limit:?} and was killed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// [`finish_within`] with [`PROCESS_LIMIT`].
pub fn finish(child: Child) -> Output {
    finish_within(child, PROCESS_LIMIT)
}

/// Checks `check` until it returns `Ok` (waiting [`POLL`] after the first try, twice as long
/// after each next, up to [`POLL_MAX`]); after `limit`, fails with `what` and what the last check
/// saw (its `Err`). Prints how long it took, so that a run's log shows the margin.
pub fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    let mut pause = POLL;
    loop {
        match check() {
            Ok(value) => {
                eprintln!("{what} after {:.1?}", started.elapsed());
                return value;
            }
            Err(seen) => assert!(
                started.elapsed() < limit,
                "not within {limit:?}: {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// A process whose stdout is read line by line as it comes, so that a test can act at a point
/// of its work that the process names (send a signal once it prints "Creating machine...")
/// rather than after a guessed delay.
pub struct Watched {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    /// Watches `child`, whose stdout must be piped.
    pub fn new(mut child: Child) -> Watched {
        let stdout = child
            .stdout
            .take()
            .expect("a watched process's stdout is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that contains `text`: true once it came, false when the process's
    /// output ended first. Fails after [`PROCESS_LIMIT`].
    pub fn line_with(&mut self, text: &str) -> bool {
        let started = Instant::now();
        loop {
            let left = PROCESS_LIMIT.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                    "hung: no line with {text:?} within {PROCESS_LIMIT:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to end (bounded as [`finish`]); its whole stdout.
    pub fn finish(self) -> Output {
        let mut out = finish(self.child);
        let mut lines = self.seen;
        // The rest of its output; a process left behind holding the pipe is not waited for.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        out.stdout = lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        out
    }
}

/// Calls `observe` while `child` runs, pausing `every` between calls; fails if it still runs
/// after [`PROCESS_LIMIT`]. For tests that look at what a process does while it works.
pub fn while_running(child: &mut Child, every: Duration, mut observe: impl FnMut()) {
    let started = Instant::now();
    while child.try_wait().expect("waiting for a child").is_none() {
        assert!(
            started.elapsed() < PROCESS_LIMIT,
            "hung: process {} was still running after {PROCESS_LIMIT:?}",
            child.id()
        );
        observe();
        std::thread::sleep(every);
    }
}
