//! Where AWS credentials and the region come from, in the AWS tools' order: the flags (and their
//! env vars, `AWS_ACCESS_KEY_ID`…), then the shared files — `~/.aws/credentials`
//! (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`) — in the profile
//! `AWS_PROFILE` (else `default`), then the role of the EC2 instance hoist runs on (IMDSv2, as a
//! GitLab Runner manager on EC2 has it; `AWS_EC2_METADATA_SERVICE_ENDPOINT` and
//! `AWS_EC2_METADATA_DISABLED` as the AWS SDKs read them).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::web::{self, WebUrl};

/// Credentials for signing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.access_key)
    }
}

/// Where signing credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// Keys given or read from the shared files.
    Keys(Credentials),
    /// The role of the EC2 instance hoist runs on, from its metadata service.
    InstanceRole,
}

/// The instance metadata service of EC2.
const IMDS: &str = "http://169.254.169.254";
/// How long one request to the metadata service may take (it answers at once on EC2).
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long role credentials are reused before they are asked again (EC2 hands out ones valid
/// for hours and rotates them well before they expire).
const ROLE_REUSE: Duration = Duration::from_secs(600);

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

/// The profile's entries: `credentials`' section over `config`'s, read once per process (`ls`
/// resolves the credentials of every EC2 machine).
fn profile_entries() -> &'static HashMap<String, String> {
    static ENTRIES: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(read_profile)
}

fn read_profile() -> HashMap<String, String> {
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

/// Where the credentials to sign with come from: the given key pair when both halves are set (a
/// flag or its env var), else the profile's in the shared files, else the instance role (unless
/// `AWS_EC2_METADATA_DISABLED=true`). `None`: there are none.
pub fn resolve(access_key: &str, secret_key: &str, session_token: &str) -> Option<Source> {
    let token = |t: &str| Some(t.to_string()).filter(|t| !t.is_empty());
    if !access_key.is_empty() && !secret_key.is_empty() {
        return Some(Source::Keys(Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: token(session_token),
        }));
    }
    let entries = profile_entries();
    let get = |k: &str| entries.get(k).cloned().unwrap_or_default();
    let (access_key, secret_key) = (get("aws_access_key_id"), get("aws_secret_access_key"));
    if !access_key.is_empty() && !secret_key.is_empty() {
        return Some(Source::Keys(Credentials {
            access_key,
            secret_key,
            session_token: token(&get("aws_session_token")),
        }));
    }
    let disabled =
        std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    (!disabled).then_some(Source::InstanceRole)
}

impl Source {
    /// The credentials to sign with now.
    pub async fn credentials(&self) -> Result<Credentials, String> {
        match self {
            Source::Keys(keys) => Ok(keys.clone()),
            Source::InstanceRole => role_credentials().await,
        }
    }
}

/// The instance role's credentials (IMDSv2: a session token, the role's name, its
/// credentials), reused for [`ROLE_REUSE`].
async fn role_credentials() -> Result<Credentials, String> {
    static CACHE: tokio::sync::Mutex<Option<(Instant, Credentials)>> =
        tokio::sync::Mutex::const_new(None);
    let mut cache = CACHE.lock().await;
    if let Some((at, credentials)) = cache.as_ref()
        && at.elapsed() < ROLE_REUSE
    {
        return Ok(credentials.clone());
    }
    let endpoint = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| IMDS.to_string());
    let endpoint = endpoint.trim_end_matches('/');
    let cannot = |e: String| {
        format!(
            "no credentials given, and none from the instance role ({endpoint}: {e}): give --amazonec2-access-key and --amazonec2-secret-key, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)"
        )
    };
    let token = imds(endpoint, "PUT", "/latest/api/token", None)
        .await
        .map_err(cannot)?;
    let roles = imds(
        endpoint,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        Some(&token),
    )
    .await
    .map_err(cannot)?;
    let role = roles
        .lines()
        .next()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| cannot("the instance has no role".into()))?;
    let text = imds(
        endpoint,
        "GET",
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
        Some(&token),
    )
    .await
    .map_err(cannot)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| cannot(format!("role {role}: {e}")))?;
    let field = |k: &str| json[k].as_str().unwrap_or("").to_string();
    let credentials = Credentials {
        access_key: field("AccessKeyId"),
        secret_key: field("SecretAccessKey"),
        session_token: Some(field("Token")).filter(|t| !t.is_empty()),
    };
    if credentials.access_key.is_empty() || credentials.secret_key.is_empty() {
        return Err(cannot(format!("role {role} has no keys")));
    }
    *cache = Some((Instant::now(), credentials.clone()));
    Ok(credentials)
}

/// One request to the metadata service; its body.
async fn imds(
    endpoint: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<String, String> {
    let url = WebUrl::parse(&format!("{endpoint}{path}"))?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(hyper::header::USER_AGENT, web::USER_AGENT);
    request = match token {
        Some(token) => request.header("x-aws-ec2-metadata-token", token),
        None => request.header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
    };
    let request = request
        .body(Full::<Bytes>::default())
        .map_err(|e| e.to_string())?;
    let response = web::send(&url, request, IMDS_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = tokio::time::timeout(IMDS_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{method} {path}: {status}"));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
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
        let keys = |a, s, t| match resolve(a, s, t) {
            Some(Source::Keys(c)) => c,
            other => panic!("{other:?}"),
        };
        let c = keys("AK", "SK", "");
        assert_eq!((c.access_key.as_str(), c.session_token), ("AK", None));
        assert_eq!(keys("AK", "SK", "T").session_token.as_deref(), Some("T"));
    }
}
