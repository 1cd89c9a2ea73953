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

/// A new SSH host key: its type as in `/etc/ssh/ssh_host_TYPE_key`, and both files' text.
pub struct HostKey {
    pub kind: &'static str,
    pub private: String,
    pub public: String,
}

/// New host keys of the three types OpenSSH makes by default (RSA 3072 bits, ECDSA P-256,
/// ed25519), from this computer's randomness, with `comment` (`root@NAME`). Made here rather than
/// by `ssh-keygen` on a small or emulated host, where an RSA key takes seconds (6 s under
/// software emulation here, and as uneven as its search for primes).
pub fn make_host_keys(comment: &str) -> Result<Vec<HostKey>, SshError> {
    use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
    let fail = |e: &dyn std::fmt::Display| SshError::Key {
        path: PathBuf::from("(a new host key)"),
        reason: e.to_string(),
    };
    let mut rng = rand::rng();
    let rsa = RsaKeypair::random(&mut rng, 3072).map_err(|e| fail(&e))?;
    let keys = [
        ("rsa", PrivateKey::new(KeypairData::from(rsa), comment)),
        (
            "ecdsa",
            PrivateKey::random(
                &mut rng,
                Algorithm::Ecdsa {
                    curve: russh::keys::EcdsaCurve::NistP256,
                },
            ),
        ),
        ("ed25519", PrivateKey::random(&mut rng, Algorithm::Ed25519)),
    ];
    keys.into_iter()
        .map(|(kind, key)| {
            let (private, public) =
                openssh_forms(key.map_err(|e| fail(&e))?, comment).map_err(|e| fail(&e))?;
            Ok(HostKey {
                kind,
                private,
                public: format!("{public}\n"),
            })
        })
        .collect()
}

/// A key named `comment` in OpenSSH's formats: the private key file's text and the public
/// key's line (without its newline).
fn openssh_forms(
    mut key: PrivateKey,
    comment: &str,
) -> Result<(String, String), russh::keys::ssh_key::Error> {
    key.set_comment(comment);
    let private = key.to_openssh(russh::keys::ssh_key::LineEnding::LF)?;
    Ok((private.to_string(), key.public_key().to_openssh()?))
}

/// Makes a new ed25519 key pair for a machine: the private key at `path` (0600) and the public
/// one at `path.pub`; returns the public key line.
pub fn make_key(path: &Path, comment: &str) -> Result<String, SshError> {
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let fail = |e: &dyn std::fmt::Display| SshError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| fail(&e))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let (private, public) = openssh_forms(key, comment).map_err(|e| fail(&e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_new_each_time_and_openssh_reads_them() {
        use std::os::unix::fs::PermissionsExt;
        let keys = make_host_keys("root@c1").unwrap();
        let kinds: Vec<&str> = keys.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, ["rsa", "ecdsa", "ed25519"]);
        let dir = tempfile::tempdir().unwrap();
        for key in &keys {
            let path = dir.path().join(format!("ssh_host_{}_key", key.kind));
            std::fs::write(&path, &key.private).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            // OpenSSH's own reading of the private key gives the public one.
            let out = std::process::Command::new("ssh-keygen")
                .arg("-y")
                .arg("-f")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let derived = String::from_utf8_lossy(&out.stdout);
            let derived: Vec<&str> = derived.split_whitespace().take(2).collect();
            let public: Vec<&str> = key.public.split_whitespace().collect();
            assert_eq!(derived, public[..2], "{}", key.kind);
            assert_eq!(public[2], "root@c1");
        }
        let rsa = &keys[0].public;
        assert!(rsa.starts_with("ssh-rsa "), "{rsa}");
        assert!(keys[1].public.starts_with("ecdsa-sha2-nistp256 "));
        let again = make_host_keys("root@c1").unwrap();
        for (a, b) in keys.iter().zip(&again) {
            assert_ne!(a.public, b.public, "{}", a.kind);
        }
    }
}
