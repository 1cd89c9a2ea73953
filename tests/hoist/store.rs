//! The store against records written by docker-machine: exact round trips and migration.

use std::fs;
use std::path::Path;

use hoist::store::Store;

fn fixture() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dm-store/machines");
    for machine in fs::read_dir(&src).unwrap().flatten() {
        let to = dir.path().join("machines").join(machine.file_name());
        fs::create_dir_all(&to).unwrap();
        fs::copy(machine.path().join("config.json"), to.join("config.json")).unwrap();
    }
    let store = Store::new(dir.path());
    (dir, store)
}

#[test]
fn v3_records_round_trip_byte_for_byte() {
    let (dir, store) = fixture();
    for name in ["dev", "local"] {
        let path = dir.path().join("machines").join(name).join("config.json");
        let before = fs::read(&path).unwrap();
        let host = store.load(name).unwrap();
        store.save(&host).unwrap();
        assert_eq!(
            String::from_utf8(fs::read(&path).unwrap()).unwrap(),
            String::from_utf8(before).unwrap(),
            "{name}"
        );
        assert!(!path.with_file_name("config.json.bak").exists());
    }
}

#[test]
fn unknown_fields_survive_a_rewrite() {
    let (dir, store) = fixture();
    let mut host = store.load("local").unwrap();
    host.host_options.engine_options.labels = Some(vec!["x=y".into()]);
    store.save(&host).unwrap();
    let text = fs::read_to_string(dir.path().join("machines/local/config.json")).unwrap();
    assert!(
        text.contains("\"FutureField\": {\n        \"kept\": true\n    }"),
        "{text}"
    );
    assert!(text.contains("\"x=y\""));
}

#[test]
fn old_versions_are_saved_migrated_with_a_backup() {
    let (dir, store) = fixture();
    let path = dir.path().join("machines/legacy/config.json");
    let original = fs::read(&path).unwrap();
    let host = store.load("legacy").unwrap();
    // Loading alone writes nothing.
    assert_eq!(fs::read(&path).unwrap(), original);
    assert_eq!(host.config_version, 3);
    assert_eq!(host.name, "legacy");
    assert_eq!(host.driver_str("StorePath"), dir.path().to_string_lossy());
    store.save(&host).unwrap();
    assert_eq!(
        fs::read(path.with_file_name("config.json.bak")).unwrap(),
        original
    );
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["ConfigVersion"], 3);
    assert_eq!(
        saved["HostOptions"]["AuthOptions"]["CaPrivateKeyPath"],
        "/home/u/.docker/machine/certs/ca-key.pem"
    );
    assert!(
        saved["HostOptions"]["AuthOptions"]
            .get("PrivateKeyPath")
            .is_none()
    );
}

#[test]
fn remove_takes_the_whole_directory() {
    let (dir, store) = fixture();
    store.remove("dev").unwrap();
    assert!(!dir.path().join("machines/dev").exists());
    assert_eq!(store.list().unwrap(), ["legacy", "local"]);
    assert!(store.remove("dev").is_err());
}
