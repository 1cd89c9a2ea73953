//! `export` and `import`: a machine as one archive, to move it to another store (another laptop,
//! a teammate).
//!
//! The archive is a tar of flat members: `hoist-export.json` (what it is), `machine/config.json`
//! and the other files of the machine's directory (certificates, SSH key; the pinned host key is
//! in the record), and under `auth/` the CA certificate and client certificate and key the record
//! points at — plus the CA key with `--with-ca`, which otherwise never leaves the store. With a
//! passphrase the tar is encrypted with age (scrypt). Import reads the whole archive into memory
//! first and refuses anything it would not have written (a member that is not a plain file, a name
//! outside that layout, a member or archive too large) before a byte reaches the store; the
//! machine then appears whole, as a create's does.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{Context, program_name};
use crate::error::{Error, Result};
use crate::store::config::Host;
use crate::store::{layout, validate_name};

/// What the manifest's `Format` says.
const FORMAT: &str = "hoist-machine-export";
/// The archive version this hoist writes and reads.
const VERSION: u64 = 1;
/// The manifest member.
const MANIFEST: &str = "hoist-export.json";
/// Where the machine directory's files are.
const MACHINE_PREFIX: &str = "machine/";
/// Where the CA and client certificate the record points at are.
const AUTH_PREFIX: &str = "auth/";
/// The largest member hoist reads (certificates, keys and records are a few KiB).
const MAX_MEMBER: u64 = 1 << 20;
/// The largest archive hoist reads, encrypted or not.
pub const MAX_ARCHIVE: u64 = 16 << 20;
/// The most members an archive may have.
const MAX_MEMBERS: usize = 256;
/// How age-encrypted files begin.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// The manifest of an archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    format: String,
    version: u64,
    machine: String,
    /// The store root and machine directory the record's paths were written for.
    store_path: String,
    machine_dir: String,
    #[serde(rename = "WithCA")]
    with_ca: bool,
}

/// `export` options.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Also the CA key (the importer can regenerate certificates).
    pub with_ca: bool,
    /// Encrypt with this passphrase (age, scrypt).
    pub passphrase: Option<String>,
}

/// The archive of a machine: its record, its directory's files and the certificates its record
/// points at.
pub async fn export(ctx: &Context, name: &str, opts: &ExportOptions) -> Result<Vec<u8>> {
    let _lock = crate::machine::lock_machine(ctx, name).await?;
    let host = ctx.store.load(name)?;
    if crate::driver::runs_here(&host.driver_name) {
        return Err(Error::Other(format!(
            "cannot export machine \"{name}\": it is a {} VM on this computer, whose disk and process stay here; export moves machines that run elsewhere (generic, amazonec2, plugin drivers)",
            host.driver_name
        )));
    }
    let dir = ctx.store.machine_dir(name);
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::Other(format!(
                "cannot export machine \"{name}\": cannot read {}: {e}",
                path.display()
            ))
        })
    };
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| Error::Other(format!("cannot export machine \"{name}\": {e}")))?;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let plain = entry.file_type().is_ok_and(|t| t.is_file());
        if plain && is_plain_name(&file) && file != layout::CONFIG_JSON_BAK {
            members.insert(format!("{MACHINE_PREFIX}{file}"), read(&entry.path())?);
        }
    }
    let paths = crate::machine::cert_paths(&host);
    let mut auth = vec![
        (layout::CA_CERT, &paths.ca_cert),
        (layout::CLIENT_CERT, &paths.client_cert),
        (layout::CLIENT_KEY, &paths.client_key),
    ];
    if opts.with_ca {
        auth.push((layout::CA_KEY, &paths.ca_key));
    }
    for (member, path) in auth {
        members.insert(format!("{AUTH_PREFIX}{member}"), read(path)?);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        machine: name.into(),
        store_path: ctx.store.root().to_string_lossy().into(),
        machine_dir: dir.to_string_lossy().into(),
        with_ca: opts.with_ca,
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    members.insert(MANIFEST.into(), manifest);
    let tar = write_tar(&members)?;
    match &opts.passphrase {
        Some(passphrase) => encrypt(&tar, passphrase),
        None => Ok(tar),
    }
}

fn write_tar(members: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        builder
            .append_data(&mut header, name, data.as_slice())
            .map_err(|e| Error::Other(format!("cannot write the archive: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| Error::Other(format!("cannot write the archive: {e}")))
}

fn encrypt(data: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| Error::Other(format!("cannot encrypt the archive: {e}"));
    let encryptor =
        age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(passphrase));
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).map_err(|e| fail(&e))?;
    writer.write_all(data).map_err(|e| fail(&e))?;
    writer.finish().map_err(|e| fail(&e))?;
    Ok(out)
}

/// Whether archive bytes are age-encrypted (a passphrase is needed to import them).
pub fn is_encrypted(archive: &[u8]) -> bool {
    archive.starts_with(AGE_MAGIC)
}

fn decrypt(data: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let refused =
        |e: &dyn std::fmt::Display| Error::Other(format!("cannot decrypt the archive: {e}"));
    let decryptor = age::Decryptor::new(data).map_err(|e| refused(&e))?;
    let identity = age::scrypt::Identity::new(age::secrecy::SecretString::from(passphrase));
    let reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                refused(&"wrong passphrase (or a damaged archive)")
            }
            e => refused(&e),
        })?;
    let mut out = Vec::new();
    reader
        .take(MAX_ARCHIVE + 1)
        .read_to_end(&mut out)
        .map_err(|e| refused(&e))?;
    if out.len() as u64 > MAX_ARCHIVE {
        return Err(refused(&"it holds more than any machine archive"));
    }
    Ok(out)
}

/// A file name hoist writes into a machine directory: one plain component.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Whether a member name is one of the archive's layout.
fn is_layout_member(name: &str) -> bool {
    if name == MANIFEST {
        return true;
    }
    if let Some(file) = name.strip_prefix(MACHINE_PREFIX) {
        return is_plain_name(file);
    }
    name.strip_prefix(AUTH_PREFIX).is_some_and(|file| {
        [
            layout::CA_CERT,
            layout::CLIENT_CERT,
            layout::CLIENT_KEY,
            layout::CA_KEY,
        ]
        .contains(&file)
    })
}

/// Reads an archive's members, refusing anything hoist's export does not write.
fn read_tar(archive: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    let refused = |why: String| Error::Other(format!("refused archive: {why}"));
    let mut members = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    let entries = tar
        .entries()
        .map_err(|e| refused(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let entry = entry.map_err(|e| refused(format!("not a tar archive ({e})")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let shown = crate::engine::printable(&name);
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(refused(format!(
                "member {shown:?} is not a plain file ({kind:?})"
            )));
        }
        if !is_layout_member(&name) {
            return Err(refused(format!(
                "member {shown:?} is not part of a machine export"
            )));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_MEMBER {
            return Err(refused(format!(
                "member {shown:?} claims {size} bytes, more than any file of a machine"
            )));
        }
        if members.len() >= MAX_MEMBERS {
            return Err(refused(format!("more than {MAX_MEMBERS} members")));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .take(MAX_MEMBER + 1)
            .read_to_end(&mut data)
            .map_err(|e| refused(format!("member {shown:?} cannot be read ({e})")))?;
        if members.insert(name, data).is_some() {
            return Err(refused(format!("member {shown:?} appears twice")));
        }
    }
    Ok(members)
}

/// `import` options.
pub struct ImportOptions<'a> {
    /// The machine's name in this store (default: its name in the archive).
    pub name: Option<String>,
    /// Asked for the passphrase of an encrypted archive (not asked otherwise).
    pub passphrase: &'a dyn Fn() -> Result<String>,
}

/// Recreates a machine from an archive; the message to print. Nothing is written unless the
/// whole archive is sound and the name is free.
pub fn import(ctx: &Context, archive: &[u8], opts: &ImportOptions<'_>) -> Result<String> {
    if archive.len() as u64 > MAX_ARCHIVE {
        return Err(Error::Other(
            "refused archive: larger than any machine archive".into(),
        ));
    }
    let plain;
    let archive = if is_encrypted(archive) {
        plain = decrypt(archive, &(opts.passphrase)()?)?;
        plain.as_slice()
    } else {
        archive
    };
    let mut members = read_tar(archive)?;
    let manifest: Manifest = members
        .get(MANIFEST)
        .and_then(|m| serde_json::from_slice(m).ok())
        .filter(|m: &Manifest| m.format == FORMAT)
        .ok_or_else(|| {
            Error::Other(format!(
                "refused archive: not a machine export of {} (no {MANIFEST})",
                program_name()
            ))
        })?;
    if manifest.version != VERSION {
        return Err(Error::Other(format!(
            "refused archive: format version {} (this {} reads version {VERSION}); import it with a newer one",
            manifest.version,
            program_name()
        )));
    }
    let name = opts.name.clone().unwrap_or(manifest.machine.clone());
    validate_name(&name)?;
    let record = members
        .remove(&format!("{MACHINE_PREFIX}{}", layout::CONFIG_JSON))
        .ok_or_else(|| Error::Other("refused archive: it has no machine record".into()))?;
    let auth = |file: &str| members.get(&format!("{AUTH_PREFIX}{file}")).cloned();
    let (ca_cert, client_cert, client_key) = match (
        auth(layout::CA_CERT),
        auth(layout::CLIENT_CERT),
        auth(layout::CLIENT_KEY),
    ) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => {
            return Err(Error::Other(
                "refused archive: the machine's CA or client certificate is missing".into(),
            ));
        }
    };
    let ca_key = auth(layout::CA_KEY);
    let mut host = rewrite_record(&record, &manifest, ctx, &name)?;
    if ctx.store.exists(&name) {
        return Err(Error::Other(format!(
            "machine \"{name}\" already exists in this store; import it under another name with --name"
        )));
    }
    let mut files: Vec<(String, Vec<u8>)> = members
        .iter()
        .filter_map(|(member, data)| {
            let file = member.strip_prefix(MACHINE_PREFIX)?;
            Some((file.to_string(), data.clone()))
        })
        .collect();
    // The machine's daemon trusts the CA it was exported with: the store's own when it is the
    // same CA, else the machine keeps its CA and client certificate in its directory.
    let machine_dir = ctx.store.machine_dir(&name);
    let certs = ctx.store.certs_dir();
    let store_ca = std::fs::read(certs.join(layout::CA_CERT)).ok();
    let path = |p: std::path::PathBuf| p.to_string_lossy().to_string();
    let auth_options = &mut host.host_options.auth_options;
    let which_ca = if store_ca.as_deref() == Some(ca_cert.as_slice()) {
        auth_options.cert_dir = path(certs.clone());
        auth_options.ca_cert_path = path(certs.join(layout::CA_CERT));
        auth_options.ca_private_key_path = path(certs.join(layout::CA_KEY));
        auth_options.client_cert_path = path(certs.join(layout::CLIENT_CERT));
        auth_options.client_key_path = path(certs.join(layout::CLIENT_KEY));
        "this store's CA"
    } else {
        auth_options.cert_dir = path(machine_dir.clone());
        auth_options.ca_cert_path = path(machine_dir.join(layout::CA_CERT));
        auth_options.ca_private_key_path = path(machine_dir.join(layout::CA_KEY));
        auth_options.client_cert_path = path(machine_dir.join(layout::CLIENT_CERT));
        auth_options.client_key_path = path(machine_dir.join(layout::CLIENT_KEY));
        if let Some(key) = ca_key {
            files.push((layout::CA_KEY.into(), key));
            "its own CA (with its key: regenerate-certs works here)"
        } else {
            "its own CA (without its key: export it --with-ca to regenerate certificates here)"
        }
    };
    // The directory's copies are what `env` gives the docker CLI.
    for (file, data) in [
        (layout::CA_CERT, ca_cert),
        (layout::CLIENT_CERT, client_cert),
        (layout::CLIENT_KEY, client_key),
    ] {
        files.retain(|(f, _)| f != file);
        files.push((file.into(), data));
    }
    ctx.store.create_with_files(&host, &files)?;
    Ok(format!(
        "Imported machine \"{name}\" (\"{}\" in the exporting store), trusting {which_ca}.\nTo point the docker CLI at it, run: {} env {name}",
        manifest.machine,
        program_name()
    ))
}

/// The archived record with its name and paths made this store's: every string that named the
/// old machine directory or store root names the new ones.
fn rewrite_record(record: &[u8], manifest: &Manifest, ctx: &Context, name: &str) -> Result<Host> {
    let mut value: Value = serde_json::from_slice(record).map_err(|e| {
        Error::Other(format!(
            "refused archive: its machine record is corrupt: {e}"
        ))
    })?;
    let new_dir = ctx.store.machine_dir(name).to_string_lossy().to_string();
    let new_root = ctx.store.root().to_string_lossy().to_string();
    rewrite_paths(
        &mut value,
        &[
            (manifest.machine_dir.as_str(), new_dir.as_str()),
            (manifest.store_path.as_str(), new_root.as_str()),
        ],
    );
    if let Some(driver) = value.get_mut("Driver").and_then(Value::as_object_mut)
        && driver.contains_key("MachineName")
    {
        driver.insert("MachineName".into(), Value::from(name));
    }
    value["Name"] = Value::from(name);
    serde_json::from_value(value).map_err(|e| {
        Error::Other(format!(
            "refused archive: its machine record is corrupt: {e}"
        ))
    })
}

/// Replaces, in every string of `value`, a leading `old` path (the whole string or a prefix
/// ending at a `/`) by its `new` one; the first pair that applies wins.
fn rewrite_paths(value: &mut Value, pairs: &[(&str, &str)]) {
    match value {
        Value::String(s) => {
            for (old, new) in pairs {
                if old.is_empty() {
                    continue;
                }
                if let Some(rest) = s.strip_prefix(old)
                    && (rest.is_empty() || rest.starts_with('/'))
                {
                    *s = format!("{new}{rest}");
                    return;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_paths(v, pairs)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_paths(v, pairs)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_old_store_become_the_new_ones() {
        let mut v = serde_json::json!({
            "a": "/old/machines/web/id_rsa",
            "b": ["/old/certs/ca.pem", "/old", "/older/x", "relative"],
            "c": {"d": "/old/machines/web"}
        });
        rewrite_paths(
            &mut v,
            &[("/old/machines/web", "/new/machines/w2"), ("/old", "/new")],
        );
        assert_eq!(
            v,
            serde_json::json!({
                "a": "/new/machines/w2/id_rsa",
                "b": ["/new/certs/ca.pem", "/new", "/older/x", "relative"],
                "c": {"d": "/new/machines/w2"}
            })
        );
    }

    #[test]
    fn only_the_layout_of_an_export_is_accepted() {
        for ok in [
            "hoist-export.json",
            "machine/config.json",
            "machine/id_rsa",
            "auth/ca-key.pem",
        ] {
            assert!(is_layout_member(ok), "{ok}");
        }
        for bad in [
            "machine/../../etc/passwd",
            "machine/..",
            "machine/.hidden",
            "machine/a/b",
            "/etc/passwd",
            "auth/other.pem",
            "config.json",
            "machine/",
        ] {
            assert!(!is_layout_member(bad), "{bad}");
        }
    }
}
