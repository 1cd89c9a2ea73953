//! Crash-safe file writes and advisory locks: the one place the store touches the disk for writing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `data` to `path` atomically: a temporary file in the same directory (a name no one can
/// guess, created exclusively and never through a symlink), fsync, rename over the target, fsync
/// of the directory. A crash leaves either the old file or the new one, never a mix; the
/// temporary files a killed process leaves are removed by [`remove_stale_temp_files`].
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// One file of a [`write_pair`]: its path, contents and mode.
pub type PairFile<'a> = (&'a Path, &'a [u8], u32);

/// Writes two files that belong together (a certificate and its key) so that a crash at any
/// point leaves, once [`settle_pair`] has run, both old files or both new ones — never a
/// certificate with another's key. Both are first written beside their targets (see
/// [`pending_path`]); then `first` is renamed over its target, then `second`. The caller holds
/// the lock that guards both paths, and [`settle_pair`]s them under it before reading them.
pub fn write_pair(first: PairFile, second: PairFile) -> io::Result<()> {
    settle_pair(first.0, second.0)?;
    for (path, data, mode) in [first, second] {
        write_atomic(&pending_path(path), data, mode)?;
    }
    settle_pair(first.0, second.0)
}

/// Where [`write_pair`] stages the new contents of `path`: `.NAME.next` beside it.
pub fn pending_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.next"))
}

/// The files that hold what `first` and `second` contain once [`settle_pair`] has run: the
/// staged ones when the second was staged (so the first was too: it is staged first, and renamed
/// first), the targets otherwise.
pub fn settled_paths(first: &Path, second: &Path) -> (PathBuf, PathBuf) {
    let (first_next, second_next) = (pending_path(first), pending_path(second));
    if !second_next.exists() {
        return (first.to_path_buf(), second.to_path_buf());
    }
    match first_next.exists() {
        true => (first_next, second_next),
        false => (first.to_path_buf(), second_next),
    }
}

/// Finishes a [`write_pair`] that was interrupted once both files were staged, and abandons one
/// interrupted before (its staged first file is removed: the old pair stays).
pub fn settle_pair(first: &Path, second: &Path) -> io::Result<()> {
    let (first_from, second_from) = settled_paths(first, second);
    if second_from == second {
        return match fs::remove_file(pending_path(first)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    // Each rename is made durable before the next, so that no crash finds the second renamed
    // and the first not.
    for (from, to) in [(first_from, first), (second_from, second)] {
        if from != to {
            fs::rename(&from, to)?;
            sync_dir(to.parent().unwrap_or(Path::new(".")))?;
        }
    }
    Ok(())
}

/// A temporary name beside `path` that no one can guess and that names this process, so that
/// [`remove_stale_temp_files`] removes what is left there once the process is gone.
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(dir.join(format!(
        ".{name}.tmp{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(nonce)
    )))
}

/// Removes the temporary files (and directories) of [`temp_path`] in `dir` whose process no
/// longer exists.
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp"))
            .and_then(|(_, rest)| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true => drop(fs::remove_dir_all(entry.path())),
                false => drop(fs::remove_file(entry.path())),
            }
        }
    }
}

/// fsyncs a directory, so that a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a directory and its parents with the given mode (existing ones are left as they are).
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// An exclusive advisory lock (flock) on a lock file; released when dropped or when the process dies,
/// so a killed command never leaves a lock that blocks the next one.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock is held.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        if let Some(dir) = path.parent() {
            create_dir_all(dir, 0o700)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        file.lock()?;
        Ok(FileLock { _file: file })
    }
}

/// The directories of `$PATH`, in order.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The first executable file named `program` in the directories of `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    path_dirs()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Writes an executable `/bin/sh` script at `path` with `body`: the stand-in programs of the
/// unit tests (a plugin, QEMU, curl, systemctl). Returns once no process holds the file open: a
/// process that another test thread forked while the file was open for writing keeps that
/// descriptor until its exec, and running the script meanwhile fails with "Text file busy".
#[cfg(test)]
pub fn write_sh_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let held = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read_dir(p.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
        })
    };
    wait_until(
        &format!("{} is closed in every other process", path.display()),
        || !held(),
    );
}

/// Waits until `done` says so, checking every 10 ms; fails the test after 10 s, naming `what`.
/// For the unit tests' waits on another process (a stand-in's exec, a descriptor's close).
#[cfg(test)]
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "not within 10 s: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state a crash can leave a [`write_pair`] in settles to one whole pair, and
    /// [`settled_paths`] names it before anything is moved.
    #[test]
    fn an_interrupted_pair_settles_whole() {
        let read = |p: &Path| fs::read_to_string(p).unwrap();
        // Steps of write_pair after the old pair: stage key, stage cert, rename key, rename cert.
        for (crashed_after, expected) in
            [(0, "old"), (1, "old"), (2, "new"), (3, "new"), (4, "new")]
        {
            let dir = tempfile::tempdir().unwrap();
            let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
            write_atomic(&key, b"old", 0o600).unwrap();
            write_atomic(&cert, b"old", 0o644).unwrap();
            let steps: [&dyn Fn(); 4] = [
                &|| write_atomic(&pending_path(&key), b"new", 0o600).unwrap(),
                &|| write_atomic(&pending_path(&cert), b"new", 0o644).unwrap(),
                &|| fs::rename(pending_path(&key), &key).unwrap(),
                &|| fs::rename(pending_path(&cert), &cert).unwrap(),
            ];
            steps.iter().take(crashed_after).for_each(|step| step());
            let (key_from, cert_from) = settled_paths(&key, &cert);
            assert_eq!(
                (read(&key_from).as_str(), read(&cert_from).as_str()),
                (expected, expected)
            );
            settle_pair(&key, &cert).unwrap();
            assert_eq!(
                (read(&key).as_str(), read(&cert).as_str()),
                (expected, expected),
                "after step {crashed_after}"
            );
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                2,
                "after step {crashed_after}"
            );
            assert_eq!(
                fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn a_pair_is_written_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        for contents in [b"one", b"two"] {
            write_pair((&key, contents, 0o600), (&cert, contents, 0o644)).unwrap();
            assert_eq!(fs::read(&key).unwrap(), contents);
            assert_eq!(fs::read(&cert).unwrap(), contents);
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        }
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_names_are_unguessable_and_stale_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        // What the old predictable name would have been: a link planted there is not followed.
        let planted = dir
            .path()
            .join(format!(".config.json.tmp{}", std::process::id()));
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&p).unwrap(), b"new");
        // A temporary file of a process that is gone is swept; one of a live process is not.
        let dead = dir.path().join(".config.json.tmp4194305-0123456789abcdef");
        let live = dir.path().join(format!(
            ".config.json.tmp{}-0123456789abcdef",
            std::process::id()
        ));
        fs::write(&dead, b"x").unwrap();
        fs::write(&live, b"x").unwrap();
        remove_stale_temp_files(dir.path());
        assert!(!dead.exists() && live.exists());
    }

    #[test]
    fn lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/x.lock");
        let held = FileLock::acquire(&p).unwrap();
        let other = OpenOptions::new().write(true).open(&p).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
