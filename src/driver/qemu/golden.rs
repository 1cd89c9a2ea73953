//! Golden snapshots of qemu machines: a running VM's RAM and device state saved by QEMU's
//! migration to a file, with a copy of its disk taken while it is paused, so that new machines
//! start from a booted system (`create --qemu-snapshot`) instead of booting one. A machine made
//! from a golden gets a qcow2 overlay on the golden's disk (QEMU opens a backing file read-only:
//! the golden is never written), loads the state, and is made a different machine over SSH before
//! anything else reaches it: the kernel's random generator reseeded, the clock set, new SSH host
//! keys, machine ID and login key, and no Docker engine ID (provisioning then restarts Docker with
//! a new one and its own server certificate).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::vm::fail;
use super::{DriverError, QemuDriver, qmp, vm};
use crate::report::Reporter;
use crate::ssh::keys::HostKey;
use crate::ssh::{Session, SshEndpoint, Target, quote};

/// The golden's saved RAM and device state.
pub const STATE: &str = "state";
/// How long QEMU may take to save or load the state (hundreds of MB of RAM, a disk copy).
const MIGRATION_WAIT: Duration = Duration::from_secs(300);
/// How long a restored VM may take to answer SSH (it was booted: at once, unless the host is busy).
const RESTORED_SSH_WAIT: Duration = Duration::from_secs(60);

/// What a qemu snapshot holds besides its files (`snapshot.json`'s `Driver` section): what the
/// VM ran with, which a machine must match to load the state, and what its disk depends on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Golden {
    /// `7.2.15 (Debian 1:7.2+dfsg-7+deb12u15)`: as `qemu-system-x86_64 --version` says it.
    pub qemu_version: String,
    /// The versioned machine type the VM ran as (`pc-i440fx-7.2`).
    pub machine_type: String,
    /// `kvm` or `tcg`: the CPU model differs, and a state loads only under the same one.
    pub accel: String,
    #[serde(rename = "CPUs")]
    pub cpus: u32,
    /// MB.
    pub memory: u64,
    /// GB.
    pub disk_size: u64,
    pub image: String,
    pub kernel: String,
    pub initrd: String,
    pub append: String,
    /// The base image the golden's disk is an overlay of, its size and modification time.
    pub base_image: String,
    pub base_format: String,
    pub base_size: u64,
    pub base_modified: u64,
    /// cloud-init's instance ID of the VM: a machine made from the golden keeps it, so that
    /// cloud-init does not take its later cold boots for a new instance's first boot.
    pub instance_id: String,
    /// The user hoist logs in as.
    #[serde(rename = "SSHUser")]
    pub ssh_user: String,
}

/// The size and modification time (seconds) of a file: what tells that a base image changed.
pub fn stamp(path: &Path) -> Result<(u64, u64), DriverError> {
    let meta = std::fs::metadata(path).map_err(|e| fail(&path.display().to_string(), e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((meta.len(), modified))
}

/// The version the QEMU binary `binary` reports, in [`Golden::qemu_version`]'s form.
pub async fn binary_version(binary: &str) -> Result<String, DriverError> {
    let out = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| fail(binary, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim();
    Ok(first
        .strip_prefix("QEMU emulator version ")
        .unwrap_or(first)
        .to_string())
}

/// The version of the QEMU that runs the VM, asked over QMP.
async fn running_version(qmp_socket: &Path) -> Result<String, DriverError> {
    let v = qmp::execute(qmp_socket, "query-version")
        .await
        .map_err(|e| fail("QEMU's version", e))?;
    let part = |k: &str| v["qemu"][k].as_u64().unwrap_or(0);
    let package = v["package"].as_str().unwrap_or("").trim();
    let number = format!("{}.{}.{}", part("major"), part("minor"), part("micro"));
    Ok(match package {
        "" => number,
        p => format!("{number} ({p})"),
    })
}

impl Golden {
    /// Why a machine with this QEMU, CPU count, memory and acceleration cannot load the state,
    /// or `None` when it can.
    pub fn refusal(
        &self,
        qemu_version: &str,
        cpus: u32,
        memory: u64,
        accel: &str,
    ) -> Option<String> {
        if self.qemu_version != qemu_version {
            return Some(format!(
                "it was saved by QEMU {}, this is QEMU {qemu_version}",
                self.qemu_version
            ));
        }
        if (self.cpus, self.memory) != (cpus, memory) {
            return Some(format!(
                "it was saved with {} CPUs and {} MB, this machine has {cpus} CPUs and {memory} MB",
                self.cpus, self.memory
            ));
        }
        if self.accel != accel {
            return Some(format!(
                "it was saved under {}, this machine runs under {accel}",
                self.accel
            ));
        }
        None
    }

    /// Fails when the base image the golden's disk is an overlay of is gone or changed.
    pub fn check_base(&self, snapshot: &str) -> Result<(), DriverError> {
        let changed = match stamp(Path::new(&self.base_image)) {
            Ok(now) if now == (self.base_size, self.base_modified) => return Ok(()),
            Ok((size, modified)) => format!(
                "its size or time changed (was {} bytes at {}, is {size} bytes at {modified})",
                self.base_size, self.base_modified
            ),
            Err(e) => e.to_string(),
        };
        Err(DriverError::Config(format!(
            "snapshot \"{snapshot}\" cannot be used: its disk is an overlay of the base image {} and {changed}; take the snapshot again",
            self.base_image
        )))
    }
}

/// How long `snapshot create` waits for the machine's boot to finish.
const BOOT_FINISH_WAIT: Duration = Duration::from_secs(300);

/// Waits until systemd in the VM says its boot has finished (`is-system-running` no longer
/// `initializing` or `starting`): a state saved earlier would make every machine made from it
/// run the rest of the boot's jobs (cloud-init's last stages were still running for seconds
/// after a `start` returned), on CPUs they share. A VM without systemd has nothing to wait for.
pub async fn wait_for_boot(target: &Target, report: &dyn Reporter) -> Result<(), DriverError> {
    let session = Session::connect_retrying(target, RESTORED_SSH_WAIT)
        .await
        .map_err(|e| fail("logging in to see whether its boot has finished", e))?;
    let state = |out: Result<crate::ssh::Output, _>| {
        out.map(|o| o.stdout_text().trim().to_string())
            .map_err(|e| fail("asking systemd whether the boot has finished", e))
    };
    let mut now = state(
        session
            .run("systemctl is-system-running 2>/dev/null", None)
            .await,
    );
    if matches!(now.as_deref(), Ok("initializing" | "starting")) {
        report.info(&format!(
            "The boot of machine \"{}\" has not finished: waiting for it first, so that machines made from the snapshot do not inherit its start-up jobs...",
            target.machine
        ));
        let wait = format!(
            "timeout {} systemctl is-system-running --wait 2>/dev/null",
            BOOT_FINISH_WAIT.as_secs()
        );
        now = state(session.run(&wait, None).await);
    }
    session.close().await;
    if let Ok(still @ ("initializing" | "starting")) = now.as_deref() {
        report.info(&format!(
            "Warning: the boot of machine \"{}\" was still {still} after {} s; the snapshot is taken now",
            target.machine,
            BOOT_FINISH_WAIT.as_secs()
        ));
    }
    now.map(|_| ())
}

/// Saves the running VM in `dir` as a golden in `into`: QEMU's state, then a copy of its disk
/// while it is paused, then the VM runs on.
pub async fn save(config: &QemuDriver, dir: &Path, into: &Path) -> Result<Golden, DriverError> {
    let socket = dir.join(vm::QMP_SOCKET);
    let qemu_version = running_version(&socket).await?;
    let machine_type = qmp::execute_with(
        &socket,
        "qom-get",
        json!({ "path": "/machine", "property": "type" }),
    )
    .await
    .map_err(|e| fail("QEMU's machine type", e))?;
    let machine_type = machine_type.as_str().unwrap_or("");
    let machine_type = machine_type
        .strip_suffix("-machine")
        .unwrap_or(machine_type)
        .to_string();
    let instance_id = vm::seed_instance_id(dir).await?;
    let (base_size, base_modified) = stamp(Path::new(&config.base_image))?;
    copy_read_only(&dir.join(vm::SSH_KEY), &into.join(vm::SSH_KEY), 0o400)?;
    qmp::execute_with(
        &socket,
        "migrate-set-parameters",
        json!({ "max-bandwidth": 1u64 << 40 }),
    )
    .await
    .map_err(|e| fail("QEMU's migration parameters", e))?;
    // A live save: the RAM is copied while the VM runs, then QEMU pauses it for the rest
    // (the state says "running", so machines made from it run at once when it is loaded).
    let saved = async {
        let state = into.join(STATE);
        let uri = format!("exec:cat > {}", quote(&state.to_string_lossy()));
        qmp::execute_with(&socket, "migrate", json!({ "uri": uri }))
            .await
            .map_err(|e| fail("saving the VM's state", e))?;
        qmp::wait_migration(&socket, MIGRATION_WAIT)
            .await
            .map_err(|e| fail("saving the VM's state", e))?;
        // The migration ended with the VM paused and its disk flushed: it stays untouched
        // until the VM runs on.
        copy_read_only(&dir.join(vm::DISK), &into.join(vm::DISK), 0o444)?;
        set_read_only(&state, 0o444)
    }
    .await;
    let resumed = qmp::execute(&socket, "cont")
        .await
        .or_else(|e| match e.contains("is running") {
            true => Ok(Value::Null),
            false => Err(e),
        })
        .map_err(|e| fail("resuming the VM", e));
    saved?;
    resumed?;
    Ok(Golden {
        qemu_version,
        machine_type,
        accel: config.accel_used.clone(),
        cpus: config.cpus,
        memory: config.memory,
        disk_size: config.disk_size,
        image: config.image.clone(),
        kernel: config.kernel.clone(),
        initrd: config.initrd.clone(),
        append: config.append.clone(),
        base_image: config.base_image.clone(),
        base_format: config.base_format.clone(),
        base_size,
        base_modified,
        instance_id,
        ssh_user: config.base.ssh_user.clone(),
    })
}

fn set_read_only(path: &Path, mode: u32) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(&path.display().to_string(), e))
}

fn copy_read_only(from: &Path, to: &Path, mode: u32) -> Result<(), DriverError> {
    std::fs::copy(from, to).map_err(|e| fail(&format!("copying {}", from.display()), e))?;
    set_read_only(to, mode)
}

/// Loads the golden's state into the VM that QEMU just started waiting for it (`-incoming
/// defer`), and waits until it runs and answers SSH.
pub async fn load(golden_dir: &Path, dir: &Path, ssh_port: u16) -> Result<(), DriverError> {
    let socket = dir.join(vm::QMP_SOCKET);
    let state = golden_dir.join(STATE);
    let uri = format!("exec:cat {}", quote(&state.to_string_lossy()));
    let loaded = async {
        qmp::execute_with(&socket, "migrate-incoming", json!({ "uri": uri })).await?;
        qmp::wait_migration(&socket, MIGRATION_WAIT).await?;
        // A state saved from a paused VM stays paused when loaded.
        let status = qmp::execute(&socket, "query-status").await?;
        if status["status"] == "paused" {
            qmp::execute(&socket, "cont").await?;
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = loaded {
        let why = match vm::running_pid(dir) {
            Some(_) => e,
            None => "QEMU ended while it loaded the state (a state it cannot load)".to_string(),
        };
        return Err(DriverError::Config(format!(
            "loading the snapshot's state failed: {why}"
        )));
    }
    vm::wait_for_ssh(ssh_port, RESTORED_SSH_WAIT, dir).await
}

/// What makes a machine made from a golden a different machine, run as root over SSH, first
/// thing: the kernel's random generator gets this host's randomness and reseeds at once (a
/// restored VM's generator is the golden's, so clones would otherwise draw the same numbers), the
/// clock is set, and the golden's identities are replaced: machine ID, login key, Docker's engine
/// ID, and the SSH host keys by `host_keys` (their files follow one another on the script's
/// standard input, each read by its exact length, before anything else runs), for each type the
/// golden has; a type hoist did not make (DSA) is made by `ssh-keygen` there. Prints `no-reseed`
/// where neither perl nor python3 can ask the kernel to reseed (the randomness is then only
/// mixed in).
fn identity_script(entropy: &str, now: u64, login_key: &str, host_keys: &[HostKey]) -> String {
    // The keys are written first, so that no later command can take the script's input; over
    // the golden's files, which keep their owner and mode. A type the golden has not is read
    // and dropped.
    let keys: String = host_keys
        .iter()
        .map(|key| {
            let k = format!("/etc/ssh/ssh_host_{}_key", key.kind);
            format!(
                "if [ -e {k} ]; then head -c {} > {k}; head -c {} > {k}.pub; else head -c {} > /dev/null; fi\n",
                key.private.len(),
                key.public.len(),
                key.private.len() + key.public.len(),
            )
        })
        .collect();
    let made = match host_keys {
        [] => "''".to_string(),
        keys => keys.iter().map(|k| k.kind).collect::<Vec<_>>().join("|"),
    };
    // Few programs: each start costs a tenth of a second under emulation.
    format!(
        r#"set -e
{keys}e={entropy}
perl -e 'open(my $f, ">", "/dev/urandom") or die; syswrite($f, pack("H*", $ARGV[0])) or die; ioctl($f, 0x5207, 0) or die' "$e" 2>/dev/null ||
  python3 -c 'import fcntl, sys; f = open("/dev/urandom", "wb", 0); f.write(bytes.fromhex(sys.argv[1])); fcntl.ioctl(f, 0x5207)' "$e" 2>/dev/null ||
  {{ printf %s "$e" > /dev/urandom; echo no-reseed; }}
date -u -s @{now} >/dev/null
if [ -d /var/lib/systemd ]; then head -c 512 /dev/urandom > /var/lib/systemd/random-seed; fi
rm -f /etc/machine-id /var/lib/dbus/machine-id /etc/docker/key.json /var/lib/docker/engine-id
systemd-machine-id-setup >/dev/null 2>&1 || dbus-uuidgen --ensure=/etc/machine-id
if [ -d /run/systemd/system ]; then systemctl --no-block restart systemd-journald; fi
for key in /etc/ssh/ssh_host_*_key; do
  [ -e "$key" ] || continue
  type=${{key#/etc/ssh/ssh_host_}}; type=${{type%_key}}
  case $type in {made}) continue ;; esac
  rm -f "$key" "$key.pub"; ssh-keygen -q -t "$type" -N '' -f "$key"
done
umask 077; [ -d "$HOME/.ssh" ] || mkdir "$HOME/.ssh"; printf '%s\n' {login_key} > "$HOME/.ssh/authorized_keys"
if read -r pid < /run/sshd.pid 2>/dev/null && kill -HUP "$pid" 2>/dev/null; then :; else systemctl reload ssh 2>/dev/null || systemctl reload sshd; fi
"#,
        login_key = quote(login_key.trim()),
    )
}

/// The standard input of [`identity_script`]: each host key's private then public file.
fn host_keys_input(host_keys: &[HostKey]) -> Vec<u8> {
    host_keys
        .iter()
        .flat_map(|k| [k.private.as_bytes(), k.public.as_bytes()])
        .flatten()
        .copied()
        .collect()
}

/// Makes the VM a machine of its own (see [`identity_script`]): logs in as the golden knew the
/// machine it was taken of (its host key pinned, its login key), at `ssh_port`. Whether the
/// kernel could be asked to reseed.
pub async fn make_distinct(
    machine: &str,
    golden_dir: &Path,
    golden: &Golden,
    pinned_host_key: &str,
    ssh_port: u16,
    login_key: &str,
    host_keys: &[HostKey],
) -> Result<bool, DriverError> {
    let target = Target {
        machine: machine.to_string(),
        endpoint: SshEndpoint {
            host: "127.0.0.1".into(),
            port: ssh_port,
            user: golden.ssh_user.clone(),
            key: Some(golden_dir.join(vm::SSH_KEY)),
            key_origin: None,
        },
        pinned: Some(pinned_host_key.to_string()).filter(|k| !k.is_empty()),
        connect_timeout: Duration::from_secs(10),
    };
    let session = Session::connect_retrying(&target, RESTORED_SSH_WAIT)
        .await
        .map_err(|e| fail("logging in to the new machine", e))?;
    let mut entropy = [0u8; 64];
    getrandom::fill(&mut entropy).map_err(|e| fail("randomness", e))?;
    let entropy: String = entropy.iter().map(|b| format!("{b:02x}")).collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = session
        .run(
            &identity_script(&entropy, now, login_key, host_keys),
            Some(&host_keys_input(host_keys)),
        )
        .await;
    session.close().await;
    let out = out.map_err(|e| fail("giving the new machine its own identity", e))?;
    if out.status != 0 {
        return Err(DriverError::Config(format!(
            "giving the new machine its own identity failed: {}",
            out.last_error_line()
        )));
    }
    Ok(!out.stdout_text().contains("no-reseed"))
}

/// The golden a qemu snapshot's `Driver` section describes.
pub fn golden_of(
    snapshot: &str,
    driver: &serde_json::Map<String, Value>,
) -> Result<Golden, DriverError> {
    serde_json::from_value(Value::Object(driver.clone())).map_err(|e| {
        DriverError::Config(format!(
            "snapshot \"{snapshot}\" is corrupt ({e}); remove it with '{} snapshot rm {snapshot}'",
            crate::program::program_name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> Golden {
        Golden {
            qemu_version: "7.2.15 (Debian 1:7.2+dfsg-7+deb12u15)".into(),
            accel: "tcg".into(),
            cpus: 2,
            memory: 2048,
            ..Golden::default()
        }
    }

    #[test]
    fn a_state_loads_only_into_the_same_qemu_cpus_memory_and_accelerator() {
        let g = golden();
        assert_eq!(
            g.refusal("7.2.15 (Debian 1:7.2+dfsg-7+deb12u15)", 2, 2048, "tcg"),
            None
        );
        assert_eq!(
            g.refusal("8.2.2", 2, 2048, "tcg").unwrap(),
            "it was saved by QEMU 7.2.15 (Debian 1:7.2+dfsg-7+deb12u15), this is QEMU 8.2.2"
        );
        assert_eq!(
            g.refusal(&g.qemu_version, 2, 1024, "tcg").unwrap(),
            "it was saved with 2 CPUs and 2048 MB, this machine has 2 CPUs and 1024 MB"
        );
        assert_eq!(
            g.refusal(&g.qemu_version, 2, 2048, "kvm").unwrap(),
            "it was saved under tcg, this machine runs under kvm"
        );
    }

    #[test]
    fn a_changed_or_missing_base_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        std::fs::write(&base, b"base").unwrap();
        let (size, modified) = stamp(&base).unwrap();
        let mut g = Golden {
            base_image: base.to_string_lossy().into(),
            base_size: size,
            base_modified: modified,
            ..golden()
        };
        assert!(g.check_base("g").is_ok());
        g.base_size += 1;
        let e = g.check_base("g").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "snapshot \"g\" cannot be used: its disk is an overlay of the base image"
            ),
            "{e}"
        );
        assert!(e.ends_with("take the snapshot again"), "{e}");
        std::fs::remove_file(&base).unwrap();
        assert!(
            g.check_base("g")
                .unwrap_err()
                .to_string()
                .contains("No such file")
        );
    }

    #[test]
    fn the_identity_script_reads_the_host_keys_first_quotes_the_login_key_and_reseeds() {
        let key = HostKey {
            kind: "ed25519",
            private: "private\n".into(),
            public: "ssh-ed25519 AAAA root@c1\n".into(),
        };
        let script = identity_script(
            "00ff",
            1_800_000_000,
            "ssh-ed25519 AAAA hoist-c'1\n",
            &[key],
        );
        assert!(
            script.starts_with("set -e\nif [ -e /etc/ssh/ssh_host_ed25519_key ]; then head -c 8 > /etc/ssh/ssh_host_ed25519_key; head -c 25 > /etc/ssh/ssh_host_ed25519_key.pub; else head -c 33 > /dev/null; fi\n"),
            "{script}"
        );
        assert_eq!(
            host_keys_input(&[HostKey {
                kind: "rsa",
                private: "a".into(),
                public: "b\n".into()
            }]),
            b"ab\n"
        );
        assert!(
            script.contains("printf '%s\\n' 'ssh-ed25519 AAAA hoist-c'\\''1'"),
            "{script}"
        );
        assert!(
            script.contains("case $type in ed25519) continue"),
            "{script}"
        );
        let reseed = script.find("0x5207").unwrap();
        assert!(reseed < script.find("ssh-keygen").unwrap());
        assert!(script.contains("date -u -s @1800000000"));
        let none = identity_script("00ff", 1, "k", &[]);
        assert!(none.contains("case $type in '') continue"), "{none}");
        for text in [&script, &none] {
            let syntax = std::process::Command::new("sh")
                .args(["-n", "-c", text])
                .output()
                .unwrap();
            assert!(
                syntax.status.success(),
                "{text}: {}",
                String::from_utf8_lossy(&syntax.stderr)
            );
        }
    }
}
