//! Golden snapshots (`snapshot create|ls|rm`, `create --qemu-snapshot`): one directory per
//! snapshot below `.hoist/snapshots/`, holding its driver's files and `snapshot.json`. Nothing in
//! it is written after the snapshot is made: machines made from it only read it.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Store, StoreError, layout};
use crate::fsutil::{self, FileLock};

/// The key of a machine record's `Driver` section that names the snapshot it was made from.
pub const SOURCE_KEY: &str = "Snapshot";

/// A snapshot's description (`snapshot.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    pub name: String,
    /// The machine it was taken of.
    pub machine: String,
    pub driver_name: String,
    /// When it was taken, seconds since the epoch.
    pub created: u64,
    /// The host key the machine's SSH server had (a new machine made from the snapshot answers
    /// with it until hoist gives it its own).
    #[serde(rename = "SSHHostKey")]
    pub ssh_host_key: String,
    /// What the driver needs to make machines from it.
    pub driver: Map<String, Value>,
}

/// Checks a snapshot name: the machine-name rule.
pub fn validate_snapshot_name(name: &str) -> Result<(), StoreError> {
    super::validate_name(name).map_err(|_| StoreError::InvalidSnapshotName(name.to_string()))
}

impl Store {
    /// `<root>/.hoist/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root
            .join(layout::HOIST_DIR)
            .join(layout::SNAPSHOTS_DIR)
    }

    /// The directory of snapshot `name`.
    pub fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.snapshots_dir().join(name)
    }

    /// Whether snapshot `name` exists (its description is in place: it was made whole).
    pub fn snapshot_exists(&self, name: &str) -> bool {
        self.snapshot_dir(name)
            .join(layout::SNAPSHOT_JSON)
            .is_file()
    }

    /// Reads snapshot `name`'s description.
    pub fn load_snapshot(&self, name: &str) -> Result<Snapshot, StoreError> {
        validate_snapshot_name(name)?;
        let path = self.snapshot_dir(name).join(layout::SNAPSHOT_JSON);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::SnapshotNotFound(name.to_string()));
            }
            Err(source) => {
                return Err(StoreError::Read {
                    name: name.to_string(),
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&data).map_err(|source| StoreError::CorruptSnapshot {
            name: name.to_string(),
            path,
            source,
        })
    }

    /// The names of all snapshots, sorted (directories being made or removed are not listed).
    pub fn list_snapshots(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.snapshots_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    name: "(snapshots)".into(),
                    path: dir,
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && self.snapshot_exists(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes a new snapshot's description last, so that a snapshot directory without one is a
    /// snapshot that was never made whole.
    pub fn write_snapshot(
        &self,
        dir: &std::path::Path,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let path = dir.join(layout::SNAPSHOT_JSON);
        let mut text = serde_json::to_vec_pretty(snapshot).unwrap_or_default();
        text.push(b'\n');
        fsutil::write_atomic(&path, &text, 0o444)
            .map_err(|source| StoreError::Write { path, source })
    }

    /// Takes the store-wide snapshot lock: held while a snapshot is made or removed, and while a
    /// machine starts to use one (so that `snapshot rm` sees every machine that uses it).
    pub fn lock_snapshots(&self) -> Result<FileLock, StoreError> {
        let path = self.lock_path(layout::SNAPSHOTS_LOCK);
        FileLock::acquire(&path).map_err(|source| StoreError::Write { path, source })
    }
}
