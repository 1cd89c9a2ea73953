//! The certificate authority of a store, and the client and server certificates it signs.
//!
//! As docker-machine: one CA (`O=<user>`) and one client certificate (`O=<user>.<bootstrap>`) in
//! `certs/`, a server certificate per machine (`O=<user>.<name>`) with the machine's IP, `localhost`
//! and each `--tls-san` as SANs; validity 1080 days from five minutes (to the minute) before now.
//! New keys are ECDSA P-256 (PKCS#8 PEM); an RSA CA from a docker-machine store (PKCS#1 PEM) keeps
//! signing. Bootstrap holds the store-wide lock and writes every file atomically.

mod tls;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::fsutil;
use crate::store::{Store, layout};

pub use tls::{Offered, client_config, recording_client_config};

/// Validity of every certificate, as docker-machine.
pub const VALIDITY_DAYS: i64 = 1080;

/// What can go wrong with certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a usable certificate: {reason}", path.display())]
    BadCert { path: PathBuf, reason: String },
    #[error("{} is not a usable private key (PKCS#8, or PKCS#1 RSA): {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The CA key is not in this store (a machine imported without `--with-ca`).
    #[error("the CA key {} is not in this store (the machine was imported without --with-ca): its certificates can only be regenerated where its CA is", path.display())]
    NoCaKey { path: PathBuf },
}

/// The CA certificates a machine's daemon and its clients trust: the CA, followed during a CA
/// rotation by the previous CA (`ca-previous.pem` beside it), so that daemons accept clients of
/// either until every machine has a certificate of the new one.
pub fn trust_bundle(paths: &CertPaths) -> Result<Vec<u8>, CertError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut bundle = read(&paths.ca_cert)?;
    let previous = paths.ca_cert.with_file_name(layout::CA_PREVIOUS);
    if previous.exists() {
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend(read(&previous)?);
    }
    Ok(bundle)
}

/// Paths of the CA and client certificate a machine uses (its `AuthOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct CertPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl CertPaths {
    /// The standard files in `<store>/certs`.
    pub fn in_dir(dir: &Path) -> CertPaths {
        CertPaths {
            ca_cert: dir.join(layout::CA_CERT),
            ca_key: dir.join(layout::CA_KEY),
            client_cert: dir.join(layout::CLIENT_CERT),
            client_key: dir.join(layout::CLIENT_KEY),
        }
    }
}

/// What [`bootstrap`] did, for the step messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BootstrapReport {
    pub messages: Vec<String>,
}

/// Makes sure the store has a valid CA and client certificate, creating or renewing them under the
/// store-wide lock. Many processes may call this at once: exactly one CA results, and every client
/// certificate verifies against it.
pub fn bootstrap(
    store: &Store,
    paths: &CertPaths,
    user: &str,
) -> Result<BootstrapReport, CertError> {
    let _lock = store.lock_certs()?;
    let mut report = BootstrapReport::default();
    for dir in [paths.ca_cert.parent(), paths.client_cert.parent()]
        .into_iter()
        .flatten()
    {
        fsutil::create_dir_all(dir, 0o700).map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        fsutil::remove_stale_temp_files(dir);
    }

    settle(paths)?;
    let mut ca_renewed = false;
    match read_cert_state(&paths.ca_cert)? {
        CertState::Valid => {}
        state => {
            if state == CertState::Expired {
                report
                    .messages
                    .push("CA certificate is outdated and needs to be regenerated".into());
            }
            report
                .messages
                .push(format!("Creating CA: {}", paths.ca_cert.display()));
            let (cert, key) = generate_ca(user)?;
            write_pair(&paths.ca_cert, &cert, &paths.ca_key, &key)?;
            ca_renewed = true;
        }
    }

    let client_ok = !ca_renewed
        && read_cert_state(&paths.client_cert)? == CertState::Valid
        && signed_by(&paths.client_cert, &paths.ca_cert)?;
    if !client_ok {
        if paths.client_cert.exists() && !ca_renewed {
            report
                .messages
                .push("Client certificate is outdated and needs to be regenerated".into());
        }
        report.messages.push(format!(
            "Creating client certificate: {}",
            paths.client_cert.display()
        ));
        let issuer = load_issuer(paths)?;
        let (cert, key) =
            generate_leaf(&issuer, &format!("{user}.<bootstrap>"), Leaf::Client, &[])?;
        write_pair(&paths.client_cert, &cert, &paths.client_key, &key)?;
    }
    Ok(report)
}

#[derive(Debug, PartialEq)]
enum CertState {
    Missing,
    Expired,
    Valid,
}

fn read_cert_state(path: &Path) -> Result<CertState, CertError> {
    let pem = match fs::read(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CertState::Missing),
        Err(source) => {
            return Err(CertError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let not_after = parse_cert(path, &pem)?.not_after;
    Ok(if OffsetDateTime::now_utc() > not_after {
        CertState::Expired
    } else {
        CertState::Valid
    })
}

/// The facts of a certificate hoist cares about.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// Parses the first certificate of a PEM file.
pub fn parse_cert(path: &Path, pem: &[u8]) -> Result<CertInfo, CertError> {
    let bad = |reason: String| CertError::BadCert {
        path: path.into(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let not_after = cert.validity().not_after.to_datetime();
    Ok(CertInfo {
        der: pem.contents.clone(),
        not_after,
    })
}

fn signed_by(cert_path: &Path, ca_path: &Path) -> Result<bool, CertError> {
    let read = |p: &Path| {
        fs::read(p).map_err(|source| CertError::Read {
            path: p.into(),
            source,
        })
    };
    let cert = parse_cert(cert_path, &read(cert_path)?)?;
    let ca = parse_cert(ca_path, &read(ca_path)?)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&cert.der).map_err(|e| CertError::BadCert {
            path: cert_path.into(),
            reason: e.to_string(),
        })?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca.der).map_err(|e| CertError::BadCert {
        path: ca_path.into(),
        reason: e.to_string(),
    })?;
    Ok(cert.verify_signature(Some(ca.public_key())).is_ok())
}

fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), CertError> {
    fsutil::write_pair(
        (key_path, key_pem.as_bytes(), 0o600),
        (cert_path, cert_pem.as_bytes(), 0o644),
    )
    .map_err(|source| CertError::Write {
        path: cert_path.into(),
        source,
    })
}

/// Settles the CA's and the client certificate's pairs that a killed [`write_pair`] left (see
/// [`fsutil::settle_pair`]); the caller holds the store's certificate lock.
pub fn settle(paths: &CertPaths) -> Result<(), CertError> {
    for (cert_path, key_path) in [
        (&paths.ca_cert, &paths.ca_key),
        (&paths.client_cert, &paths.client_key),
    ] {
        fsutil::settle_pair(key_path, cert_path).map_err(|source| CertError::Write {
            path: cert_path.into(),
            source,
        })?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Leaf {
    Client,
    Server,
}

fn base_params(org: &str) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    let minute = now
        .replace_second(0)
        .unwrap_or(now)
        .replace_nanosecond(0)
        .unwrap_or(now);
    params.not_before = minute - Duration::minutes(5);
    params.not_after = params.not_before + Duration::days(VALIDITY_DAYS);
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| CertError::Tls(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

fn generate_ca(user: &str) -> Result<(String, String), CertError> {
    let mut params = base_params(user)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn generate_leaf(
    issuer: &Issuer<'static, KeyPair>,
    org: &str,
    kind: Leaf,
    sans: &[String],
) -> Result<(String, String), CertError> {
    let mut params = base_params(org)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    if kind == Leaf::Client {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    } else {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    }
    for san in sans {
        let entry = match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                san.clone()
                    .try_into()
                    .map_err(|_| CertError::Tls(format!("invalid SAN {san:?}")))?,
            ),
        };
        if !params.subject_alt_names.contains(&entry) {
            params.subject_alt_names.push(entry);
        }
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Loads a private key from PEM: PKCS#8 (any algorithm) or docker-machine's PKCS#1 RSA keys.
pub fn load_key_pair(path: &Path) -> Result<KeyPair, CertError> {
    let pem = fs::read(path).map_err(|source| CertError::Read {
        path: path.into(),
        source,
    })?;
    let bad = |reason: String| CertError::BadKey {
        path: path.into(),
        reason,
    };
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no private key found".into()))?;
    use rustls::pki_types::PrivateKeyDer;
    match key {
        PrivateKeyDer::Pkcs8(der) => {
            KeyPair::try_from(der.secret_pkcs8_der()).map_err(|e| bad(e.to_string()))
        }
        PrivateKeyDer::Pkcs1(der) => {
            let pkcs8 = rsa_pkcs1_to_pkcs8(der.secret_pkcs1_der());
            KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad(
            "SEC1 EC keys are not supported; convert it to PKCS#8".into()
        )),
    }
}

/// Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo (rsaEncryption, NULL parameters).
fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALGORITHM);
    body.extend(der(0x04, pkcs1));
    der(0x30, &body)
}

fn load_issuer(paths: &CertPaths) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key = load_key_pair(&paths.ca_key).map_err(|e| match e {
        CertError::Read { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            CertError::NoCaKey { path }
        }
        e => e,
    })?;
    let pem = fs::read_to_string(&paths.ca_cert).map_err(|source| CertError::Read {
        path: paths.ca_cert.clone(),
        source,
    })?;
    Issuer::from_ca_cert_pem(&pem, key).map_err(|e| CertError::BadCert {
        path: paths.ca_cert.clone(),
        reason: e.to_string(),
    })
}

/// Generates a machine's server certificate and key (signed by the CA) into `cert_path`/`key_path`.
pub fn generate_server_cert(
    paths: &CertPaths,
    org: &str,
    sans: &[String],
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), CertError> {
    let issuer = load_issuer(paths)?;
    let (cert, key) = generate_leaf(&issuer, org, Leaf::Server, sans)?;
    write_pair(cert_path, &cert, key_path, &key)
}

/// The SANs of a machine's server certificate: each `--tls-san`, then the IP, then `localhost`.
pub fn server_sans(extra: &[String], ip: &str) -> Vec<String> {
    let mut sans: Vec<String> = extra.to_vec();
    for s in [ip, "localhost"] {
        if !s.is_empty() && !sans.iter().any(|x| x == s) {
            sans.push(s.to_string());
        }
    }
    sans
}

#[cfg(test)]
mod tests;
