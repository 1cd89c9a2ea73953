//! The machine store: `~/.docker/machine` in docker-machine's layout (see [`layout`]).
//!
//! Reads never write. Writes are atomic ([`crate::fsutil::write_atomic`]). Commands that change a
//! machine hold its lock ([`Store::lock_machine`]); a broken record only affects its own machine.

pub mod config;
pub mod layout;
pub mod migrate;
pub mod snapshot;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, FileLock};
use config::{Host, to_go_json_pretty};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "Docker machine \"{0}\" does not exist. Use \"{prog} ls\" to list machines. Use \"{prog} create\" to add a new one.",
        prog = crate::program::program_name()
    )]
    NotFound(String),
    #[error("Docker machine \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("Invalid hostname specified. Allowed hostname chars are: 0-9a-zA-Z . -")]
    InvalidName(String),
    #[error("machine \"{name}\": cannot read {}: {source}", path.display())]
    Read {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("machine \"{name}\": {} is corrupt ({source}); fix or remove it with '{} rm -f {name}'", path.display(), crate::program::program_name())]
    Corrupt {
        name: String,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("machine \"{name}\": {source}")]
    Migrate {
        name: String,
        source: migrate::MigrateError,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "snapshot \"{0}\" does not exist; '{prog} snapshot ls' lists them, '{prog} snapshot create MACHINE SNAPSHOT' takes one",
        prog = crate::program::program_name()
    )]
    SnapshotNotFound(String),
    #[error(
        "invalid snapshot name {0:?}: snapshot names follow the machine-name rule (0-9a-zA-Z . -, a letter or digit first)"
    )]
    InvalidSnapshotName(String),
    #[error("snapshot \"{name}\": {} is corrupt ({source}); remove it with '{} snapshot rm {name}'", path.display(), crate::program::program_name())]
    CorruptSnapshot {
        name: String,
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Checks a machine name against docker-machine's rule `^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// A machine's name and its record, or why the record could not be read.
pub type LoadedHost = (String, Result<Host, StoreError>);

/// A machine store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store at `root` (nothing is created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/certs`.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join(layout::CERTS_DIR)
    }

    /// `<root>/machines`.
    pub fn machines_dir(&self) -> PathBuf {
        self.root.join(layout::MACHINES_DIR)
    }

    /// `<root>/machines/<name>`.
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.machines_dir().join(name)
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join(layout::CONFIG_JSON)
    }

    fn lock_path(&self, file: &str) -> PathBuf {
        self.root
            .join(layout::HOIST_DIR)
            .join(layout::LOCKS_DIR)
            .join(file)
    }

    fn machine_lock_path(&self, name: &str) -> PathBuf {
        self.lock_path(&format!("{name}.lock"))
    }

    /// Names of all machines, sorted by directory name (docker-machine's `Filestore.List` order).
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.machines_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    name: String::new(),
                    path: dir,
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether a machine directory exists.
    pub fn exists(&self, name: &str) -> bool {
        validate_name(name).is_ok() && self.machine_dir(name).is_dir()
    }

    /// Loads one machine, migrating older config versions in memory. Never writes.
    pub fn load(&self, name: &str) -> Result<Host, StoreError> {
        if validate_name(name).is_err() || !self.machine_dir(name).is_dir() {
            return Err(StoreError::NotFound(name.to_string()));
        }
        let path = self.config_path(name);
        let bytes = fs::read(&path).map_err(|source| StoreError::Read {
            name: name.to_string(),
            path: path.clone(),
            source,
        })?;
        self.parse(name, &path, &bytes)
    }

    fn parse(&self, name: &str, path: &Path, bytes: &[u8]) -> Result<Host, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let mut doc: serde_json::Value = serde_json::from_slice(bytes).map_err(corrupt)?;
        migrate::migrate(&mut doc, &self.root, name).map_err(|source| StoreError::Migrate {
            name: name.to_string(),
            source,
        })?;
        let mut host: Host = serde_json::from_value(doc).map_err(corrupt)?;
        if host.name != name {
            self.rename_record(&mut host, name);
        }
        Ok(host)
    }

    /// The directory's name is the machine's: a record copied from another machine's directory
    /// (`cp -r machines/a machines/b`) is `b`, and its own files are `b`'s — a command on `b`
    /// never writes into `a`'s directory.
    fn rename_record(&self, host: &mut Host, name: &str) {
        let old_dir = self.machine_dir(&host.name);
        let new_dir = self.machine_dir(name);
        let auth = &mut host.host_options.auth_options;
        for path in [
            &mut auth.server_cert_path,
            &mut auth.server_key_path,
            &mut auth.store_path,
        ] {
            if !host.name.is_empty()
                && let Ok(rest) = Path::new(path.as_str()).strip_prefix(&old_dir)
            {
                let moved = if rest.as_os_str().is_empty() {
                    new_dir.clone()
                } else {
                    new_dir.join(rest)
                };
                *path = moved.to_string_lossy().into_owned();
            }
        }
        host.name = name.to_string();
    }

    /// Loads every machine; each entry carries its own result, so one broken record does not hide the others.
    pub fn load_all(&self) -> Result<Vec<LoadedHost>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .map(|name| {
                let host = self.load(&name);
                (name, host)
            })
            .collect())
    }

    /// The record as docker-machine writes it (Go's field order and escaping).
    fn record_json(&self, host: &Host) -> Result<Vec<u8>, StoreError> {
        validate_name(&host.name)?;
        to_go_json_pretty(host).map_err(|e| StoreError::Write {
            path: self.machine_dir(&host.name),
            source: io::Error::other(e),
        })
    }

    /// Writes the first record of a new machine: its directory is built aside and renamed into
    /// place, so a machine appears whole.
    pub fn create(&self, host: &Host) -> Result<(), StoreError> {
        self.create_with_files(host, &[])
    }

    /// [`Store::create`] with more files in the machine's directory (name, content; mode 0600),
    /// all in place before the machine appears.
    pub fn create_with_files(
        &self,
        host: &Host,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let json = self.record_json(host)?;
        let dir = self.machine_dir(&host.name);
        if dir.exists() {
            return Err(StoreError::AlreadyExists(host.name.clone()));
        }
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Write { path, source }
        };
        let machines = self.machines_dir();
        fsutil::create_dir_all(&machines, 0o700).map_err(write_err(&machines))?;
        let staging = machines.join(format!(".{}.new{}", host.name, std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fsutil::create_dir_all(&staging, 0o700).map_err(write_err(&staging))?;
        for (name, content) in files {
            let staged = staging.join(name);
            fsutil::write_atomic(&staged, content, 0o600).map_err(write_err(&staged))?;
        }
        let staged = staging.join(layout::CONFIG_JSON);
        fsutil::write_atomic(&staged, &json, 0o600).map_err(write_err(&staged))?;
        fs::rename(&staging, &dir).map_err(write_err(&dir))?;
        fsutil::sync_dir(&machines).map_err(write_err(&machines))
    }

    /// Writes an existing machine's record atomically (0600). A machine removed meanwhile is not
    /// brought back: that is `NotFound`. When the file on disk is of an older config version, it
    /// is kept as `config.json.bak` first, as docker-machine does.
    pub fn save(&self, host: &Host) -> Result<(), StoreError> {
        let json = self.record_json(host)?;
        let dir = self.machine_dir(&host.name);
        if !dir.is_dir() {
            return Err(StoreError::NotFound(host.name.clone()));
        }
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Write { path, source }
        };
        let path = self.config_path(&host.name);
        if let Ok(old) = fs::read(&path) {
            let old_version = serde_json::from_slice::<serde_json::Value>(&old)
                .ok()
                .and_then(|v| v.get("ConfigVersion").map(|c| c.as_u64().unwrap_or(0)));
            if old_version.is_some_and(|v| v < config::CONFIG_VERSION) {
                let bak = dir.join(layout::CONFIG_JSON_BAK);
                fsutil::write_atomic(&bak, &old, 0o600).map_err(write_err(&bak))?;
            }
        }
        fsutil::write_atomic(&path, &json, 0o600).map_err(write_err(&path))
    }

    /// Removes a machine's directory. The removal is made atomic by renaming the directory out of
    /// `machines/` first, so a crash never leaves a half-deleted machine that still lists.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        validate_name(name)?;
        let dir = self.machine_dir(name);
        let trash = self
            .machines_dir()
            .join(format!(".{name}.removing{}", std::process::id()));
        let write_err = |source| StoreError::Write {
            path: dir.clone(),
            source,
        };
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.into()));
            }
            Err(e) => return Err(write_err(e)),
        }
        fsutil::sync_dir(&self.machines_dir()).map_err(write_err)?;
        match fs::remove_dir_all(&trash) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(write_err(e)),
            _ => Ok(()),
        }
    }

    /// Removes what killed commands left behind: machine directories set aside
    /// (`machines/.NAME.removingPID` of an `rm`, `machines/.NAME.newPID` of a first save) and
    /// temporary files in machine directories and `certs/`, of processes that no longer exist.
    pub fn sweep(&self) {
        let Ok(entries) = fs::read_dir(self.machines_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let pid = name
                .strip_prefix('.')
                .and_then(|n| n.rsplit_once(".removing").or_else(|| n.rsplit_once(".new")))
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = fs::remove_dir_all(entry.path());
            } else if entry.path().is_dir() {
                fsutil::remove_stale_temp_files(&entry.path());
            }
        }
        fsutil::remove_stale_temp_files(&self.certs_dir());
    }

    /// Takes the lock of one machine (blocking), held by every command that changes it.
    /// A name that cannot be a machine's is a machine that does not exist (nothing is touched).
    pub fn lock_machine(&self, name: &str) -> Result<FileLock, StoreError> {
        validate_name(name).map_err(|_| StoreError::NotFound(name.to_string()))?;
        let path = self.machine_lock_path(name);
        FileLock::acquire(&path).map_err(|source| StoreError::Write { path, source })
    }

    /// Whether no command currently holds a machine's lock (a create in progress holds it).
    pub fn lock_is_free(&self, name: &str) -> bool {
        match fs::File::open(self.machine_lock_path(name)) {
            Ok(file) => file.try_lock_shared().is_ok(),
            Err(_) => true,
        }
    }

    /// Takes the store-wide certificate lock (CA and client-certificate bootstrap).
    pub fn lock_certs(&self) -> Result<FileLock, StoreError> {
        let path = self.lock_path(layout::CERTS_LOCK);
        FileLock::acquire(&path).map_err(|source| StoreError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_hostname_rule() {
        for ok in ["a", "web-1", "A.b-c", "0x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a_b", "a/b", "a b", "..", "é"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
