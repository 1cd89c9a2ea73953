//! SSH authentication: the key file, ssh-agent, the default keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg};

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
    endpoint: &super::SshEndpoint,
    addr: &str,
) -> Result<(), SshError> {
    let key = endpoint.key.as_deref();
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
    let hint = match (key, &endpoint.key_origin) {
        (Some(copy), Some(origin)) => format!(
            "the host does not accept the key {} (hoist's copy: {}): add its public key to ~{user}/.ssh/authorized_keys on the host, or give the machine the key the host trusts",
            origin.display(),
            copy.display()
        ),
        (Some(copy), None) => format!(
            "the host does not accept the key {}: add its public key to ~{user}/.ssh/authorized_keys on the host",
            copy.display()
        ),
        (None, _) => "pass --generic-ssh-key, or load the key into ssh-agent".to_string(),
    };
    Err(SshError::Auth {
        user: user.to_string(),
        addr: addr.to_string(),
        tried: if tried.is_empty() {
            "no key: none given, no ssh-agent, no ~/.ssh/id_* key".into()
        } else {
            tried.join(", ")
        },
        hint,
    })
}

/// Makes a new ed25519 key pair for a machine: the private key at `path` (0600) and the public
/// one at `path.pub`; returns the public key line.
pub fn make_key(path: &Path, comment: &str) -> Result<String, SshError> {
    use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
    let fail = |e: &dyn std::fmt::Display| SshError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| fail(&e))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).map_err(|e| fail(&e))?;
    let public = key.public_key().to_openssh().map_err(|e| fail(&e))?;
    crate::fsutil::write_atomic(path, private.as_bytes(), 0o600).map_err(|e| fail(&e))?;
    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    crate::fsutil::write_atomic(
        Path::new(&public_path),
        format!("{public}\n").as_bytes(),
        0o644,
    )
    .map_err(|e| fail(&e))?;
    Ok(public)
}
