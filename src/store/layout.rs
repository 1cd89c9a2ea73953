//! Every file and directory name of the store, named once.
//!
//! ```text
//! <root>/                       ~/.docker/machine, --storage-path, $MACHINE_STORAGE_PATH   (0700)
//! ├── certs/                    CA and client certificate, shared by all machines          (0700)
//! │   ├── ca.pem  ca-key.pem    the CA (key 0600)
//! │   ├── ca-previous.pem       the CA before a rotation, trusted beside the new one until it ends
//! │   └── cert.pem  key.pem     the client certificate (key 0600)
//! ├── machines/<name>/          one machine                                                 (0700)
//! │   ├── config.json           docker-machine ConfigVersion 3 record                       (0600)
//! │   ├── config.json.bak       the record as it was before a config-version migration
//! │   ├── ca.pem cert.pem key.pem      copies of the CA and client certificate
//! │   ├── server.pem server-key.pem    the machine's server certificate
//! │   └── <ssh key>             the SSH key the machine was created with (generic driver)
//! └── .hoist/
//!     ├── locks/                advisory locks: certs.lock, snapshots.lock, <name>.lock (never hold data)
//!     └── snapshots/<name>/     a golden snapshot: its driver's files and snapshot.json, never written again
//! ```

/// Directory of the shared certificates.
pub const CERTS_DIR: &str = "certs";
/// Directory of the machines.
pub const MACHINES_DIR: &str = "machines";
/// hoist's private directory inside the store.
pub const HOIST_DIR: &str = ".hoist";
/// Lock directory below [`HOIST_DIR`].
pub const LOCKS_DIR: &str = "locks";
/// Directory of the golden snapshots below [`HOIST_DIR`].
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// A snapshot's description.
pub const SNAPSHOT_JSON: &str = "snapshot.json";
/// The lock taken while a snapshot is made, removed, or a machine starts to use one.
pub const SNAPSHOTS_LOCK: &str = "snapshots.lock";
/// The lock taken while the CA and client certificate are bootstrapped.
pub const CERTS_LOCK: &str = "certs.lock";

/// A machine's record.
pub const CONFIG_JSON: &str = "config.json";
/// The record before a config-version migration.
pub const CONFIG_JSON_BAK: &str = "config.json.bak";

/// CA certificate.
pub const CA_CERT: &str = "ca.pem";
/// CA private key.
pub const CA_KEY: &str = "ca-key.pem";
/// The previous CA certificate while a CA rotation is under way.
pub const CA_PREVIOUS: &str = "ca-previous.pem";
/// Client certificate.
pub const CLIENT_CERT: &str = "cert.pem";
/// Client private key.
pub const CLIENT_KEY: &str = "key.pem";
/// A machine's server certificate.
pub const SERVER_CERT: &str = "server.pem";
/// A machine's server private key.
pub const SERVER_KEY: &str = "server-key.pem";
