//! Where AWS credentials and the region come from, in the AWS tools' order: the flags (and their
//! env vars, `AWS_ACCESS_KEY_ID`…), then the shared files — `~/.aws/credentials`
//! (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`) — in the profile
//! `AWS_PROFILE` (else `default`).

use std::collections::HashMap;
use std::path::PathBuf;

use super::api::Credentials;

/// The profile the shared files are read in.
pub fn profile() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into())
}

fn home_file(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join(name))
}

/// The `key = value` pairs of one section of an INI file as the AWS tools write them (`[name]` in
/// `credentials`, `[profile name]` or `[default]` in `config`); comments are `#` and `;` lines.
pub fn section(text: &str, wanted: &[String]) -> Option<HashMap<String, String>> {
    let mut current: Option<bool> = None;
    let mut found: Option<HashMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            let matches = wanted.contains(&name);
            current = Some(matches);
            if matches && found.is_none() {
                found = Some(HashMap::new());
            }
            continue;
        }
        if current == Some(true)
            && let (Some(map), Some((k, v))) = (found.as_mut(), line.split_once('='))
        {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found
}

/// The profile's entries: `credentials`' section over `config`'s.
fn profile_entries() -> HashMap<String, String> {
    let name = profile();
    let mut entries = HashMap::new();
    let config_names = if name == "default" {
        vec!["default".to_string(), "profile default".to_string()]
    } else {
        vec![format!("profile {name}")]
    };
    let read =
        |env: &str, file: &str| home_file(env, file).and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(map) = read("AWS_CONFIG_FILE", "config").and_then(|t| section(&t, &config_names)) {
        entries.extend(map);
    }
    if let Some(map) = read("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .and_then(|t| section(&t, std::slice::from_ref(&name)))
    {
        entries.extend(map);
    }
    entries
}

/// The credentials to sign with: the given key pair when both halves are set (a flag or its
/// env var), else the profile's in the shared files. `None`: there are none.
pub fn resolve(access_key: &str, secret_key: &str, session_token: &str) -> Option<Credentials> {
    let token = |t: &str| Some(t.to_string()).filter(|t| !t.is_empty());
    if !access_key.is_empty() && !secret_key.is_empty() {
        return Some(Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: token(session_token),
        });
    }
    let entries = profile_entries();
    let get = |k: &str| entries.get(k).cloned().unwrap_or_default();
    let (access_key, secret_key) = (get("aws_access_key_id"), get("aws_secret_access_key"));
    if access_key.is_empty() || secret_key.is_empty() {
        return None;
    }
    Some(Credentials {
        access_key,
        secret_key,
        session_token: token(&get("aws_session_token")),
    })
}

/// The region the shared config names when the flag was left at its default: `AWS_REGION`,
/// else the profile's `region`.
pub fn configured_region() -> Option<String> {
    std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| profile_entries().get("region").cloned())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_by_name() {
        let text = "# c\n[default]\naws_access_key_id = A\n\n[profile  ci]\nregion=eu-west-1\nAWS_Secret_Access_Key = S = x\n; other\n[other]\nregion = x\n";
        let d = section(text, &["default".into()]).unwrap();
        assert_eq!(d.get("aws_access_key_id").unwrap(), "A");
        assert!(!d.contains_key("region"));
        let ci = section(text, &["profile ci".into()]).unwrap();
        assert_eq!(ci.get("region").unwrap(), "eu-west-1");
        assert_eq!(ci.get("aws_secret_access_key").unwrap(), "S = x");
        assert!(section(text, &["nope".into()]).is_none());
    }

    #[test]
    fn given_keys_win() {
        let c = resolve("AK", "SK", "").unwrap();
        assert_eq!((c.access_key.as_str(), c.session_token), ("AK", None));
        assert_eq!(
            resolve("AK", "SK", "T").unwrap().session_token.as_deref(),
            Some("T")
        );
    }
}
