//! Migration of docker-machine's older record formats (ConfigVersion 0, 1 and 2) to version 3.
//!
//! * v0 was flat: certificate paths and swarm settings at the top level, `PrivateKeyPath` for the CA key.
//! * v1 nested them under `HostOptions`, still with `AuthOptions.PrivateKeyPath` and a top-level `StorePath`.
//! * v2 renamed it `CaPrivateKeyPath` and added `CertDir`.
//! * v3 added `StorePath` (the store root) to the driver part.
//!
//! Unlike docker-machine, `AuthOptions.StorePath` becomes the machine directory (what v3 means by it),
//! not the store root, and the migration happens in memory: the migrated record and `config.json.bak`
//! are written only by a command that changes the machine (see `Store::save`).

use serde_json::{Map, Value, json};
use std::path::Path;

use super::config::CONFIG_VERSION;

/// Why a record could not be migrated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MigrateError {
    #[error("config version is from the future -- you should upgrade your Docker Machine client")]
    FromTheFuture,
    #[error("config.json is not a JSON object")]
    NotAnObject,
}

/// Brings a parsed `config.json` to ConfigVersion 3. Returns whether anything changed.
pub fn migrate(doc: &mut Value, store_root: &Path, dir_name: &str) -> Result<bool, MigrateError> {
    let obj = doc.as_object_mut().ok_or(MigrateError::NotAnObject)?;
    let version = obj
        .get("ConfigVersion")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if version > CONFIG_VERSION {
        return Err(MigrateError::FromTheFuture);
    }
    if version == CONFIG_VERSION {
        return Ok(false);
    }
    let root = store_root.to_string_lossy().to_string();
    let machine_dir = store_root
        .join("machines")
        .join(dir_name)
        .to_string_lossy()
        .to_string();
    if version == 0 {
        v0_to_v1(obj);
    }
    if version <= 1 {
        v1_to_v2(obj, &root, &machine_dir, dir_name);
    }
    v2_to_v3(obj, &root);
    obj.insert("ConfigVersion".into(), json!(CONFIG_VERSION));
    reorder(obj);
    Ok(true)
}

fn take_str(obj: &mut Map<String, Value>, key: &str) -> Value {
    obj.remove(key)
        .filter(Value::is_string)
        .unwrap_or_else(|| json!(""))
}

fn v0_to_v1(obj: &mut Map<String, Value>) {
    let swarm = json!({
        "IsSwarm": false, "Address": "",
        "Discovery": take_str(obj, "SwarmDiscovery"),
        "Agent": false,
        "Master": obj.remove("SwarmMaster").and_then(|v| v.as_bool()).unwrap_or(false),
        "Host": take_str(obj, "SwarmHost"),
        "Image": "", "Strategy": "", "Heartbeat": 0, "Overcommit": 0,
        "ArbitraryFlags": null, "ArbitraryJoinFlags": null, "Env": null, "IsExperimental": false
    });
    let store_path = obj.get("StorePath").cloned().unwrap_or_else(|| json!(""));
    let auth = json!({
        "StorePath": store_path,
        "CaCertPath": take_str(obj, "CaCertPath"),
        "CaCertRemotePath": "",
        "ServerCertPath": take_str(obj, "ServerCertPath"),
        "ServerKeyPath": take_str(obj, "ServerKeyPath"),
        "ClientKeyPath": take_str(obj, "ClientKeyPath"),
        "ServerCertRemotePath": "",
        "ServerKeyRemotePath": "",
        "PrivateKeyPath": take_str(obj, "PrivateKeyPath"),
        "ClientCertPath": take_str(obj, "ClientCertPath"),
    });
    let engine = json!({
        "ArbitraryFlags": null, "Dns": null, "GraphDir": "", "Env": null, "Ipv6": false,
        "InsecureRegistry": null, "Labels": null, "LogLevel": "", "StorageDriver": "",
        "SelinuxEnabled": false, "TlsVerify": false, "RegistryMirror": null, "InstallURL": ""
    });
    obj.insert(
        "HostOptions".into(),
        json!({"Driver": "", "Memory": 0, "Disk": 0, "EngineOptions": engine, "SwarmOptions": swarm, "AuthOptions": auth}),
    );
}

fn v1_to_v2(obj: &mut Map<String, Value>, root: &str, machine_dir: &str, dir_name: &str) {
    obj.remove("StorePath");
    let name = obj
        .get("Driver")
        .and_then(|d| d.get("MachineName"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(dir_name)
        .to_string();
    obj.insert("Name".into(), json!(name));
    let options = obj
        .entry("HostOptions")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(options) = options else { return };
    let auth = options.entry("AuthOptions").or_insert_with(|| json!({}));
    let Some(auth) = auth.as_object_mut() else {
        return;
    };
    let ca_key = auth.remove("PrivateKeyPath").unwrap_or_else(|| json!(""));
    let field =
        |auth: &Map<String, Value>, k: &str| auth.get(k).cloned().unwrap_or_else(|| json!(""));
    let migrated = json!({
        "CertDir": format!("{root}/certs"),
        "CaCertPath": field(auth, "CaCertPath"),
        "CaPrivateKeyPath": ca_key,
        "CaCertRemotePath": field(auth, "CaCertRemotePath"),
        "ServerCertPath": field(auth, "ServerCertPath"),
        "ServerKeyPath": field(auth, "ServerKeyPath"),
        "ClientKeyPath": field(auth, "ClientKeyPath"),
        "ServerCertRemotePath": field(auth, "ServerCertRemotePath"),
        "ServerKeyRemotePath": field(auth, "ServerKeyRemotePath"),
        "ClientCertPath": field(auth, "ClientCertPath"),
        "ServerCertSANs": [],
        "StorePath": machine_dir,
    });
    *auth = migrated.as_object().cloned().unwrap_or_default();
}

fn v2_to_v3(obj: &mut Map<String, Value>, root: &str) {
    let driver = obj.entry("Driver").or_insert_with(|| json!({}));
    if let Some(driver) = driver.as_object_mut() {
        driver.insert("StorePath".into(), json!(root));
    }
    if !obj.contains_key("Name") {
        obj.insert("Name".into(), json!(""));
    }
}

/// Puts the top-level keys in docker-machine's order, keeping unknown ones after them.
fn reorder(obj: &mut Map<String, Value>) {
    let mut ordered = Map::new();
    for key in [
        "ConfigVersion",
        "Driver",
        "DriverName",
        "HostOptions",
        "Name",
    ] {
        if let Some(v) = obj.remove(key) {
            ordered.insert(key.to_string(), v);
        }
    }
    ordered.append(obj);
    *obj = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_versions_are_refused() {
        let mut doc = json!({"ConfigVersion": 4});
        assert_eq!(
            migrate(&mut doc, Path::new("/s"), "m"),
            Err(MigrateError::FromTheFuture)
        );
    }

    #[test]
    fn v3_is_untouched() {
        let mut doc = json!({"ConfigVersion": 3, "Driver": {}});
        let before = doc.clone();
        assert!(!migrate(&mut doc, Path::new("/s"), "m").unwrap());
        assert_eq!(doc, before);
    }

    #[test]
    fn v0_flat_record_becomes_nested() {
        let mut doc = json!({
            "Driver": {"IPAddress": "1.2.3.4", "MachineName": "old"},
            "DriverName": "generic",
            "StorePath": "/s/machines/old",
            "CaCertPath": "/s/certs/ca.pem",
            "PrivateKeyPath": "/s/certs/ca-key.pem",
            "ServerCertPath": "/s/machines/old/server.pem",
            "ServerKeyPath": "/s/machines/old/server-key.pem",
            "ClientCertPath": "/s/certs/cert.pem",
            "ClientKeyPath": "/s/certs/key.pem",
            "SwarmHost": "tcp://0.0.0.0:3376", "SwarmMaster": true, "SwarmDiscovery": "token://x"
        });
        assert!(migrate(&mut doc, Path::new("/s"), "old").unwrap());
        assert_eq!(doc["ConfigVersion"], 3);
        assert_eq!(doc["Name"], "old");
        let auth = &doc["HostOptions"]["AuthOptions"];
        assert_eq!(auth["CaPrivateKeyPath"], "/s/certs/ca-key.pem");
        assert_eq!(auth["CertDir"], "/s/certs");
        assert_eq!(auth["StorePath"], "/s/machines/old");
        assert_eq!(doc["HostOptions"]["SwarmOptions"]["Master"], true);
        assert_eq!(doc["HostOptions"]["SwarmOptions"]["Discovery"], "token://x");
        assert_eq!(doc["Driver"]["StorePath"], "/s");
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "ConfigVersion",
                "Driver",
                "DriverName",
                "HostOptions",
                "Name"
            ]
        );
    }

    #[test]
    fn v2_gains_store_path_in_driver() {
        let mut doc = json!({"ConfigVersion": 2, "Driver": {"URL": "tcp://1.2.3.4:2376"}, "DriverName": "none",
            "HostOptions": {}, "Name": "n"});
        assert!(migrate(&mut doc, Path::new("/s"), "n").unwrap());
        assert_eq!(doc["Driver"]["StorePath"], "/s");
        assert_eq!(doc["ConfigVersion"], 3);
    }
}
