//! The docker CLI's context store, where hoist writes machines' contexts
//! (`$DOCKER_CONFIG`, else `~/.docker`), so that `docker --context NAME …` reaches a machine
//! without `eval $(hoist env NAME)`:
//!
//! - `contexts/meta/<sha256 of the name>/meta.json`: `Name`, `Metadata` (a description and the
//!   machine it belongs to, so hoist only ever removes its own), `Endpoints.docker.Host`,
//!   `SkipTLSVerify: false`;
//! - `contexts/tls/<same id>/docker/{ca,cert,key}.pem` (directories 0700, files 0600);
//! - `config.json`'s `currentContext` for `hoist use`, every other key kept.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::fsutil::{create_dir_all, write_atomic};

/// The metadata key that names the machine a context was written for.
const MACHINE_KEY: &str = "HoistMachine";

/// What can go wrong with a context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(
        "{name:?} cannot be a docker context name ({why}); choose one with --context-name (letters, digits, _ . + -, two characters at least, not \"default\")"
    )]
    BadName { name: String, why: &'static str },
    #[error("cannot write the docker context {name:?} in {}: {source}", dir.display())]
    Write {
        name: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error(
        "a docker context named {name:?} exists and hoist did not write it for this machine; choose another with --context-name"
    )]
    Taken { name: String },
    #[error("{} is not a docker configuration hoist can read: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
}

/// The docker CLI's rule for context names: `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`, not `default`.
pub fn validate_name(name: &str) -> Result<(), ContextError> {
    let bad = |why| ContextError::BadName {
        name: name.to_string(),
        why,
    };
    if name == "default" {
        return Err(bad("\"default\" is the docker CLI's own"));
    }
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    if !first || rest.is_empty() {
        return Err(bad(
            "it needs two characters at least, the first a letter or digit",
        ));
    }
    if !rest
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(*c))
    {
        return Err(bad("only letters, digits and _ . + - are allowed"));
    }
    Ok(())
}

/// The directory id of a context: the hex SHA-256 of its name, as the docker CLI names it.
pub fn context_id(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A machine's context: where the docker CLI reaches it and the TLS files it presents.
pub struct MachineContext<'a> {
    pub name: &'a str,
    pub machine: &'a str,
    pub host: &'a str,
    pub ca: &'a [u8],
    pub cert: &'a [u8],
    pub key: &'a [u8],
}

/// Writes (or rewrites) a machine's context in the store at `dir`.
pub fn write(dir: &Path, c: &MachineContext) -> Result<(), ContextError> {
    validate_name(c.name)?;
    let id = context_id(c.name);
    // Someone else's context of that name is never overwritten.
    if dir
        .join("contexts/meta")
        .join(&id)
        .join("meta.json")
        .exists()
        && machine_of(dir, c.name).as_deref() != Some(c.machine)
    {
        return Err(ContextError::Taken {
            name: c.name.to_string(),
        });
    }
    let err = |source| ContextError::Write {
        name: c.name.to_string(),
        dir: dir.to_path_buf(),
        source,
    };
    let meta_dir = dir.join("contexts/meta").join(&id);
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    create_dir_all(&meta_dir, 0o755).map_err(err)?;
    create_dir_all(&tls_dir, 0o700).map_err(err)?;
    for (file, data) in [("ca.pem", c.ca), ("cert.pem", c.cert), ("key.pem", c.key)] {
        write_atomic(&tls_dir.join(file), data, 0o600).map_err(err)?;
    }
    let meta = json!({
        "Name": c.name,
        "Metadata": {
            "Description": format!("hoist machine {}", c.machine),
            MACHINE_KEY: c.machine,
        },
        "Endpoints": {"docker": {"Host": c.host, "SkipTLSVerify": false}},
    });
    let text = serde_json::to_vec(&meta).map_err(|e| err(io::Error::other(e)))?;
    write_atomic(&meta_dir.join("meta.json"), &text, 0o644).map_err(err)
}

/// The machine a context was written for by hoist (`None` for any other context).
pub fn machine_of(dir: &Path, name: &str) -> Option<String> {
    let meta = dir
        .join("contexts/meta")
        .join(context_id(name))
        .join("meta.json");
    let value: Value = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
    value["Metadata"][MACHINE_KEY].as_str().map(str::to_string)
}

/// Removes the context `name` if hoist wrote it for `machine`; any other is left alone.
/// Returns whether it removed it.
pub fn remove(dir: &Path, name: &str, machine: &str) -> bool {
    if machine_of(dir, name).as_deref() != Some(machine) {
        return false;
    }
    let id = context_id(name);
    let _ = std::fs::remove_dir_all(dir.join("contexts/tls").join(&id));
    std::fs::remove_dir_all(dir.join("contexts/meta").join(&id)).is_ok()
}

/// Sets (or, with `None`, unsets) the docker CLI's current context in `config.json`, keeping
/// every other key of the file.
pub fn use_context(dir: &Path, name: Option<&str>) -> Result<(), ContextError> {
    let path = dir.join("config.json");
    let mut config: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(&bytes).map_err(|e| ContextError::Config {
                path: path.clone(),
                reason: e.to_string(),
            })?
        }
        _ => Map::new(),
    };
    match name {
        Some(name) => {
            config.insert("currentContext".into(), Value::from(name));
        }
        None => {
            config.remove("currentContext");
        }
    }
    let text = serde_json::to_vec_pretty(&config).map_err(|e| ContextError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    create_dir_all(dir, 0o700)
        .and_then(|_| write_atomic(&path, &text, 0o600))
        .map_err(|source| ContextError::Write {
            name: name.unwrap_or("default").to_string(),
            dir: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_docker_clis_rule() {
        for ok in ["web", "w1", "a.b+c_d-e", "0x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "default", "-ab", ".ab", "a b", "a/b", "é1"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(
            validate_name("a")
                .unwrap_err()
                .to_string()
                .contains("--context-name")
        );
    }

    #[test]
    fn ids_are_the_sha256_of_the_name() {
        // printf web | sha256sum
        assert_eq!(
            context_id("web"),
            "4b5e57f6eb2f42b9039b3d1e13929295f231749c510cbe341cd68036d9af97e2"
        );
    }
}
