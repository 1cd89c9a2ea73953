//! The `config.json` of a machine, in docker-machine's ConfigVersion 3 form.
//!
//! Field names and their order follow docker-machine's Go structs, `[]` and `null` are kept apart
//! (`Option<Vec<_>>`), and every level keeps the fields it does not know in `extra`, so a file written
//! by docker-machine survives a rewrite by hoist and the other way round. The driver part is kept as
//! a JSON object: each driver reads and writes its own typed view of it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// The config version docker-machine 0.16.2 writes.
pub const CONFIG_VERSION: u64 = 3;

/// One machine, as stored in `machines/NAME/config.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Host {
    pub config_version: u64,
    pub driver: Map<String, Value>,
    pub driver_name: String,
    pub host_options: HostOptions,
    pub name: String,
    /// hoist's own record (lifecycle, pinned SSH host key); docker-machine ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hoist: Option<HoistRecord>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `HostOptions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HostOptions {
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub disk: i64,
    pub engine_options: EngineOptions,
    pub swarm_options: SwarmOptions,
    pub auth_options: AuthOptions,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `engine.Options`: how the Docker daemon on the machine is configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EngineOptions {
    #[serde(rename = "ArbitraryFlags", default)]
    pub arbitrary_flags: Option<Vec<String>>,
    #[serde(rename = "Dns", default)]
    pub dns: Option<Vec<String>>,
    #[serde(rename = "GraphDir", default)]
    pub graph_dir: String,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Ipv6", default)]
    pub ipv6: bool,
    #[serde(rename = "InsecureRegistry", default)]
    pub insecure_registry: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<Vec<String>>,
    #[serde(rename = "LogLevel", default)]
    pub log_level: String,
    #[serde(rename = "StorageDriver", default)]
    pub storage_driver: String,
    #[serde(rename = "SelinuxEnabled", default)]
    pub selinux_enabled: bool,
    #[serde(rename = "TlsVerify", default)]
    pub tls_verify: bool,
    #[serde(rename = "RegistryMirror", default)]
    pub registry_mirror: Option<Vec<String>>,
    #[serde(rename = "InstallURL", default)]
    pub install_url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `swarm.Options` (classic Swarm; kept for compatibility).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmOptions {
    #[serde(default)]
    pub is_swarm: bool,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub discovery: String,
    #[serde(default)]
    pub agent: bool,
    #[serde(default)]
    pub master: bool,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub heartbeat: i64,
    #[serde(default = "zero")]
    pub overcommit: Number,
    #[serde(default)]
    pub arbitrary_flags: Option<Vec<String>>,
    #[serde(default)]
    pub arbitrary_join_flags: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub is_experimental: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn zero() -> Number {
    Number::from(0)
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            is_swarm: false,
            address: String::new(),
            discovery: String::new(),
            agent: false,
            master: false,
            host: String::new(),
            image: String::new(),
            strategy: String::new(),
            heartbeat: 0,
            overcommit: zero(),
            arbitrary_flags: None,
            arbitrary_join_flags: None,
            env: None,
            is_experimental: false,
            extra: Map::new(),
        }
    }
}

/// `auth.Options`: where the certificates of a machine live.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AuthOptions {
    #[serde(default)]
    pub cert_dir: String,
    #[serde(default)]
    pub ca_cert_path: String,
    #[serde(default)]
    pub ca_private_key_path: String,
    #[serde(default)]
    pub ca_cert_remote_path: String,
    #[serde(default)]
    pub server_cert_path: String,
    #[serde(default)]
    pub server_key_path: String,
    #[serde(default)]
    pub client_key_path: String,
    #[serde(default)]
    pub server_cert_remote_path: String,
    #[serde(default)]
    pub server_key_remote_path: String,
    #[serde(default)]
    pub client_cert_path: String,
    #[serde(rename = "ServerCertSANs", default)]
    pub server_cert_sans: Option<Vec<String>>,
    #[serde(default)]
    pub store_path: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where a machine is in its life, as hoist records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Creating,
    Provisioning,
    Running,
    Failed,
}

/// hoist's additions to a machine record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HoistRecord {
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The SSH host key pinned at create, in `authorized_keys` form (`ssh-ed25519 AAAA…`).
    #[serde(
        rename = "SSHHostKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ssh_host_key: String,
    /// The Swarm-mode cluster hoist joined this machine to: the name of the machine the swarm
    /// was initialised on. The role is the daemon's to say; no token is ever stored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub swarm_cluster: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Host {
    /// The lifecycle state; a record without hoist's part (written by docker-machine) counts as running.
    pub fn lifecycle(&self) -> Lifecycle {
        self.hoist.as_ref().map_or(Lifecycle::Running, |h| h.state)
    }

    /// The error that made this machine fail, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.hoist
            .as_ref()
            .filter(|h| h.state == Lifecycle::Failed && !h.error.is_empty())
            .map(|h| h.error.as_str())
    }

    /// hoist's record of this machine, created (as running) for a record docker-machine wrote.
    pub fn record_mut(&mut self) -> &mut HoistRecord {
        self.hoist.get_or_insert_with(|| HoistRecord {
            state: Lifecycle::Running,
            error: String::new(),
            ssh_host_key: String::new(),
            swarm_cluster: String::new(),
            extra: Map::new(),
        })
    }

    /// The Swarm-mode cluster hoist joined this machine to, if any.
    pub fn swarm_cluster(&self) -> Option<&str> {
        self.hoist
            .as_ref()
            .map(|h| h.swarm_cluster.as_str())
            .filter(|c| !c.is_empty())
    }

    /// Records a lifecycle step (and the error when it failed).
    pub fn set_lifecycle(&mut self, state: Lifecycle, error: &str) {
        let record = self.record_mut();
        record.state = state;
        record.error = error.to_string();
    }

    /// A string field of the driver part, or "" when it is absent.
    pub fn driver_str(&self, key: &str) -> &str {
        self.driver.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

/// Serializes a value as Go's `json.MarshalIndent(v, "", "    ")` does, including Go's escaping of
/// `<`, `>` and `&` in strings and its `\u00XX` form for control characters.
pub fn to_go_json_pretty<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, go_json::GoFormatter::pretty());
    value.serialize(&mut ser)?;
    Ok(out)
}

/// Serializes a value as Go's compact `json.Marshal` does.
pub fn to_go_json_compact<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, go_json::GoFormatter::compact());
    value.serialize(&mut ser)?;
    Ok(out)
}

mod go_json {
    use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};
    use std::io::{self, Write};

    /// A serde_json formatter that escapes strings the way Go's encoding/json does.
    pub enum GoFormatter {
        Pretty(PrettyFormatter<'static>),
        Compact(CompactFormatter),
    }

    impl GoFormatter {
        pub fn pretty() -> Self {
            GoFormatter::Pretty(PrettyFormatter::with_indent(b"    "))
        }
        pub fn compact() -> Self {
            GoFormatter::Compact(CompactFormatter)
        }
    }

    macro_rules! delegate {
        ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                match self {
                    GoFormatter::Pretty(f) => f.$name(w $(, $arg)*),
                    GoFormatter::Compact(f) => f.$name(w $(, $arg)*),
                }
            }
        )*};
    }

    impl Formatter for GoFormatter {
        delegate! {
            begin_array();
            end_array();
            begin_array_value(first: bool);
            end_array_value();
            begin_object();
            end_object();
            begin_object_key(first: bool);
            end_object_key();
            begin_object_value();
            end_object_value();
        }

        fn write_string_fragment<W: ?Sized + Write>(
            &mut self,
            w: &mut W,
            fragment: &str,
        ) -> io::Result<()> {
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                let escaped = match c {
                    '<' => "\\u003c",
                    '>' => "\\u003e",
                    '&' => "\\u0026",
                    '\u{2028}' => "\\u2028",
                    '\u{2029}' => "\\u2029",
                    _ => continue,
                };
                w.write_all(&fragment.as_bytes()[start..i])?;
                w.write_all(escaped.as_bytes())?;
                start = i + c.len_utf8();
            }
            w.write_all(&fragment.as_bytes()[start..])
        }

        fn write_char_escape<W: ?Sized + Write>(
            &mut self,
            w: &mut W,
            escape: CharEscape,
        ) -> io::Result<()> {
            let s: &[u8] = match escape {
                CharEscape::Quote => b"\\\"",
                CharEscape::ReverseSolidus => b"\\\\",
                CharEscape::LineFeed => b"\\n",
                CharEscape::CarriageReturn => b"\\r",
                CharEscape::Tab => b"\\t",
                CharEscape::Backspace => b"\\u0008",
                CharEscape::FormFeed => b"\\u000c",
                CharEscape::AsciiControl(byte) => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let buf = [
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(byte >> 4) as usize],
                        HEX[(byte & 0xf) as usize],
                    ];
                    return w.write_all(&buf);
                }
                _ => b"",
            };
            w.write_all(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_matches_encoding_json() {
        let v = serde_json::json!({"a": "<b>&\u{8}\u{c}\u{1}\"\\\n"});
        let out = String::from_utf8(to_go_json_compact(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"a":"\u003cb\u003e\u0026\u0008\u000c\u0001\"\\\n"}"#
        );
    }

    #[test]
    fn pretty_uses_four_spaces_and_keeps_empty_arrays() {
        let v = serde_json::json!({"A": [], "B": null, "C": {"D": 1}});
        let out = String::from_utf8(to_go_json_pretty(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            "{\n    \"A\": [],\n    \"B\": null,\n    \"C\": {\n        \"D\": 1\n    }\n}"
        );
    }
}
