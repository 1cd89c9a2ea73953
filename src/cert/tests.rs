use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use x509_parser::prelude::*;

fn setup() -> (tempfile::TempDir, Store, CertPaths) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let paths = CertPaths::in_dir(&store.certs_dir());
    (dir, store, paths)
}

fn der_of(path: &Path) -> Vec<u8> {
    parse_cert(path, &fs::read(path).unwrap()).unwrap().der
}

fn org_of(cert: &X509Certificate) -> String {
    cert.subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .unwrap()
        .to_string()
}

fn verify_with_webpki(ca: &Path, leaf: &Path, name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der_of(ca))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from(der_of(leaf)),
            &[],
            &server_name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn bootstrap_creates_ca_and_client_cert_once() {
    let (_d, store, paths) = setup();
    let report = bootstrap(&store, &paths, "alice").unwrap();
    assert_eq!(report.messages.len(), 2, "{report:?}");
    assert!(report.messages[0].starts_with("Creating CA: "));
    assert!(report.messages[1].starts_with("Creating client certificate: "));
    let ca_before = fs::read(&paths.ca_cert).unwrap();
    let again = bootstrap(&store, &paths, "alice").unwrap();
    assert!(again.messages.is_empty());
    assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca_before);
    for key in [&paths.ca_key, &paths.client_key] {
        assert_eq!(
            fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        fs::metadata(store.certs_dir())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn certificates_have_docker_machine_names_validity_and_usages() {
    let (_d, store, paths) = setup();
    bootstrap(&store, &paths, "alice").unwrap();
    let ca_der = der_of(&paths.ca_cert);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(org_of(&ca), "alice");
    assert!(ca.subject().iter_common_name().next().is_none());
    assert!(ca.is_ca());
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    let nb = ca.validity().not_before.to_datetime();
    let na = ca.validity().not_after.to_datetime();
    assert_eq!(na - nb, ::time::Duration::days(1080));
    let back = OffsetDateTime::now_utc() - nb;
    assert!(
        back >= ::time::Duration::minutes(5) && back < ::time::Duration::minutes(7),
        "{back}"
    );
    assert_eq!(nb.second(), 0);
    // ECDSA P-256 keys.
    assert_eq!(
        ca.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );

    let client_der = der_of(&paths.client_cert);
    let (_, client) = X509Certificate::from_der(&client_der).unwrap();
    assert_eq!(org_of(&client), "alice.<bootstrap>");
    assert!(client.verify_signature(Some(ca.public_key())).is_ok());
    let eku = client.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!client.is_ca());
}

#[test]
fn server_certificate_carries_ip_and_dns_sans_and_verifies() {
    let (d, store, paths) = setup();
    bootstrap(&store, &paths, "alice").unwrap();
    let sans = server_sans(
        &["web.example.test".into(), "10.9.8.7".into()],
        "192.0.2.10",
    );
    assert_eq!(
        sans,
        ["web.example.test", "10.9.8.7", "192.0.2.10", "localhost"]
    );
    let cert = d.path().join("server.pem");
    let key = d.path().join("server-key.pem");
    generate_server_cert(&paths, "alice.web", &sans, &cert, &key).unwrap();
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let der = der_of(&cert);
    let (_, parsed) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(org_of(&parsed), "alice.web");
    let san = parsed.subject_alternative_name().unwrap().unwrap().value;
    let mut ips = vec![];
    let mut dns = vec![];
    for name in &san.general_names {
        match name {
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(ips, vec![vec![10, 9, 8, 7], vec![192, 0, 2, 10]]);
    assert_eq!(dns, vec!["web.example.test", "localhost"]);
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);

    for name in ["192.0.2.10", "10.9.8.7", "localhost", "web.example.test"] {
        verify_with_webpki(&paths.ca_cert, &cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify_with_webpki(&paths.ca_cert, &cert, "192.0.2.11").is_err());
    assert!(verify_with_webpki(&paths.ca_cert, &cert, "other.example.test").is_err());
}

#[test]
fn an_existing_rsa_ca_from_docker_machine_keeps_signing() {
    let (d, store, paths) = setup();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa-store/certs");
    fs::create_dir_all(store.certs_dir()).unwrap();
    fs::copy(fixture.join("ca.pem"), &paths.ca_cert).unwrap();
    fs::copy(fixture.join("ca-key.pem"), &paths.ca_key).unwrap();
    let ca_before = fs::read(&paths.ca_cert).unwrap();
    let report = bootstrap(&store, &paths, "bob").unwrap();
    assert_eq!(
        report.messages.len(),
        1,
        "only the client certificate is new: {report:?}"
    );
    assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca_before);
    let cert = d.path().join("server.pem");
    let key = d.path().join("server-key.pem");
    generate_server_cert(
        &paths,
        "bob.m",
        &server_sans(&[], "192.0.2.20"),
        &cert,
        &key,
    )
    .unwrap();
    verify_with_webpki(&paths.ca_cert, &cert, "192.0.2.20").unwrap();
    let ca_der = der_of(&paths.ca_cert);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let client_der = der_of(&paths.client_cert);
    let (_, client) = X509Certificate::from_der(&client_der).unwrap();
    assert!(client.verify_signature(Some(ca.public_key())).is_ok());
    // The TLS client configuration accepts the RSA CA too.
    client_config(&paths).unwrap();
}

#[test]
fn expired_or_foreign_client_certificate_is_replaced() {
    let (_d, store, paths) = setup();
    bootstrap(&store, &paths, "alice").unwrap();
    // Replace the CA behind the client certificate's back: the client cert no longer verifies.
    let (cert, key) = generate_ca("mallory").unwrap();
    write_pair(&paths.ca_cert, &cert, &paths.ca_key, &key).unwrap();
    let report = bootstrap(&store, &paths, "alice").unwrap();
    assert_eq!(report.messages.len(), 2, "{report:?}");
    assert!(signed_by(&paths.client_cert, &paths.ca_cert).unwrap());
}

#[test]
fn concurrent_bootstraps_give_one_ca() {
    let (_d, store, paths) = setup();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (store, paths) = (store.clone(), paths.clone());
            std::thread::spawn(move || bootstrap(&store, &paths, "alice").unwrap())
        })
        .collect();
    let created: usize = handles
        .into_iter()
        .map(|h| h.join().unwrap().messages.len())
        .sum();
    assert_eq!(
        created, 2,
        "exactly one CA and one client certificate were created"
    );
    assert!(signed_by(&paths.client_cert, &paths.ca_cert).unwrap());
}

#[test]
fn a_corrupt_key_is_a_clear_error() {
    let (d, _store, _paths) = setup();
    let p = d.path().join("bad.pem");
    fs::write(
        &p,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = load_key_pair(&p).unwrap_err().to_string();
    assert!(
        err.contains("bad.pem") && err.contains("not a usable private key"),
        "{err}"
    );
}
