//! The `qemu` driver: a local VM from a standard cloud image, configured by cloud-init (NoCloud),
//! with user-mode networking and host forwards from free 127.0.0.1 ports to its SSH and Docker
//! ports. KVM when it works, software emulation (TCG) otherwise. QEMU runs detached, with its
//! pidfile, QMP socket and serial console in the machine directory; the state is QEMU's own (QMP).

mod golden;
mod image;
mod qmp;
mod vm;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    BaseDriver, Builtin, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagValues,
    SshEndpoint, State, ready, typed_config, untyped_config,
};
use golden::Golden;
use vm::Accel;

/// Debian 12's official cloud image (its checksum is the `SHA512SUMS` beside it).
pub const DEFAULT_IMAGE: &str =
    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2";
/// How long a VM may take to boot to SSH (software emulation on a busy machine included).
const BOOT_WAIT: Duration = Duration::from_secs(300);
/// How long a first boot under KVM may take to reach user space before hoist decides that this
/// KVM cannot boot the guest: a Linux kernel runs its first program within a few seconds under a
/// KVM that works (about 3 s under TCG here); under a nested `/dev/kvm` that runs only real mode
/// (`kvm_pvm`) the guest stays in its early boot for ever.
const KVM_BOOT_VERDICT: Duration = Duration::from_secs(25);
/// How long a VM may take to shut down after the ACPI power button before QEMU is ended.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How many times a launch is retried with other ports when QEMU lost a race for one.
const LAUNCH_ATTEMPTS: usize = 3;

/// The `qemu` entry of the table of drivers.
pub const BUILTIN: Builtin = Builtin {
    name: "qemu",
    flags,
    open,
    prefetch: None,
    runs_here: true,
};

fn flags() -> Vec<Flag> {
    vec![
        Flag::string(
            "qemu-image",
            "Path or http(s) URL of a qcow2 or raw cloud image",
            "QEMU_IMAGE",
            DEFAULT_IMAGE,
        ),
        Flag::string(
            "qemu-image-checksum",
            "sha256:HEX or sha512:HEX the image must have (a URL's default: the SHA512SUMS/SHA256SUMS beside it)",
            "QEMU_IMAGE_CHECKSUM",
            "",
        ),
        Flag::int(
            "qemu-cpu-count",
            "Number of CPUs (with --qemu-snapshot: the snapshot's)",
            "QEMU_CPU_COUNT",
            DEFAULT_CPUS,
        ),
        Flag::int(
            "qemu-memory",
            "Memory in MB (with --qemu-snapshot: the snapshot's)",
            "QEMU_MEMORY",
            DEFAULT_MEMORY_MB,
        ),
        Flag::int(
            "qemu-disk-size",
            "Disk size in GB",
            "QEMU_DISK_SIZE",
            DEFAULT_DISK_GB,
        ),
        Flag::string(
            "qemu-accel",
            "Acceleration: auto (KVM when a guest runs with it, else software emulation), kvm or tcg",
            "QEMU_ACCEL",
            "auto",
        ),
        Flag::string(
            "qemu-binary",
            "QEMU system emulator",
            "QEMU_BINARY",
            "qemu-system-x86_64",
        ),
        Flag::string(
            "qemu-kernel",
            "Kernel to boot (for images without a bootloader)",
            "QEMU_KERNEL",
            "",
        ),
        Flag::string("qemu-initrd", "Initrd of --qemu-kernel", "QEMU_INITRD", ""),
        Flag::string(
            "qemu-append",
            &format!(
                "Kernel command line of --qemu-kernel (default: {})",
                vm::DEFAULT_APPEND
            ),
            "QEMU_APPEND",
            "",
        ),
        Flag::string(
            "qemu-snapshot",
            "Make the machine from this golden snapshot ('snapshot create'): its disk, kernel and state, in seconds",
            "QEMU_SNAPSHOT",
            "",
        ),
    ]
}

fn open(config: &Map<String, Value>, env: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    Ok(Box::new(Qemu {
        config: typed_config(config)?,
        env: env.clone(),
        from_golden: None,
    }))
}

/// The defaults a machine made from a snapshot takes from the snapshot instead.
const DEFAULT_CPUS: i64 = 2;
const DEFAULT_MEMORY_MB: i64 = 2048;
const DEFAULT_DISK_GB: i64 = 20;

/// `qemu`'s part of the record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct QemuDriver {
    #[serde(flatten)]
    pub base: BaseDriver,
    /// The image as given (path or URL).
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub image_checksum: String,
    /// The base image file the disk is an overlay of, and its format.
    #[serde(default)]
    pub base_image: String,
    #[serde(default)]
    pub base_format: String,
    #[serde(rename = "CPUs", default)]
    pub cpus: u32,
    /// MB.
    #[serde(default)]
    pub memory: u64,
    /// GB.
    #[serde(default)]
    pub disk_size: u64,
    /// `auto`, `kvm` or `tcg` as asked; `AccelUsed` is what the VM got.
    #[serde(default)]
    pub accel: String,
    #[serde(default)]
    pub accel_used: String,
    #[serde(default)]
    pub binary: String,
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub initrd: String,
    #[serde(default)]
    pub append: String,
    /// The host port forwarded to the VM's Docker port 2376 (`SSHPort` is forwarded to 22).
    #[serde(default)]
    pub engine_port: u16,
    /// The golden snapshot the machine was made from (its disk is an overlay of the golden's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Runs a blocking wait (a file lock) off the async threads.
pub(super) async fn blocking<T, E>(
    wait: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, DriverError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(wait)
        .await
        .map_err(|e| DriverError::Config(e.to_string()))?
        .map_err(|e| DriverError::Config(e.to_string()))
}

/// The one warning line of a VM that runs under software emulation although KVM was not ruled
/// out by the user.
fn warn_tcg(env: &DriverEnv, why: &str, what_follows: &str) {
    env.report.info(&format!(
        "Warning: KVM cannot be used ({why}): {what_follows} software emulation (TCG), several times slower to boot and run"
    ));
}

/// The qemu driver of one machine.
pub struct Qemu {
    config: QemuDriver,
    env: DriverEnv,
    /// What a create from a snapshot learnt in its pre-create check.
    from_golden: Option<FromGolden>,
}

/// New SSH host keys being made for a machine from a golden.
type HostKeysMaking = tokio::task::JoinHandle<Result<Vec<crate::ssh::keys::HostKey>, DriverError>>;

/// A golden snapshot a new machine is made from.
struct FromGolden {
    dir: PathBuf,
    golden: Golden,
    /// The SSH host key of the machine it was taken of.
    host_key: String,
    /// Whether the state can be loaded (else the golden's disk boots from cold).
    loads_state: bool,
}

impl Qemu {
    fn dir(&self) -> PathBuf {
        self.config.base.machine_dir()
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.config.engine_port)
    }

    /// The VM's state: QEMU's own through QMP while it runs; off because hoist stopped it is
    /// Stopped, off otherwise (it crashed or was killed behind hoist's back) is an error with the
    /// console's last lines.
    async fn state(&self) -> Result<State, DriverError> {
        let dir = self.dir();
        if vm::running_pid(&dir).is_none() {
            if dir.join(vm::STOPPED_MARK).exists() || !dir.join(vm::DISK).exists() {
                return Ok(State::Stopped);
            }
            return Err(DriverError::Config(format!(
                "QEMU is not running and hoist did not stop it; its console ended with: {}",
                vm::console_tail(&dir, 3)
            )));
        }
        match qmp::execute(&dir.join(vm::QMP_SOCKET), "query-status").await {
            Ok(status) => Ok(
                match status.get("status").and_then(Value::as_str).unwrap_or("") {
                    "running" => State::Running,
                    "paused" | "suspended" => State::Paused,
                    "shutdown" => State::Stopping,
                    "prelaunch" | "inmigrate" | "restore-vm" => State::Starting,
                    _ => State::Error,
                },
            ),
            // Alive but not answering yet: QEMU is starting.
            Err(_) => Ok(State::Starting),
        }
    }

    /// The acceleration to use, as asked: `auto` falls back to software emulation with a
    /// warning, `kvm` fails when KVM cannot run a guest.
    async fn choose_accel(&self, scratch: &Path) -> Result<Accel, DriverError> {
        let why = match self.config.accel.as_str() {
            "tcg" => return Ok(Accel::Tcg(None)),
            _ => vm::kvm_unusable(&self.config.binary, scratch).await,
        };
        match (self.config.accel.as_str(), why) {
            (_, None) => Ok(Accel::Kvm),
            ("kvm", Some(why)) => Err(DriverError::Config(format!(
                "--qemu-accel kvm cannot work here: {why}; use --qemu-accel tcg (software emulation) or auto"
            ))),
            (_, Some(why)) => Ok(Accel::Tcg(Some(why))),
        }
    }

    /// Boots the VM's disk and waits for SSH.
    async fn launch(&mut self) -> Result<(), DriverError> {
        self.start_qemu("", false).await?;
        vm::wait_for_ssh(self.config.base.ssh_port, BOOT_WAIT, &self.dir()).await
    }

    /// Starts QEMU on the VM's disk with fresh forwarded ports (retried when QEMU lost a port
    /// to another process), booting it or, with `incoming`, waiting for a saved state of
    /// `machine_type` to be loaded.
    async fn start_qemu(&mut self, machine_type: &str, incoming: bool) -> Result<(), DriverError> {
        let dir = self.dir();
        let accel = match self.config.accel_used.as_str() {
            "kvm" => "kvm",
            _ => Accel::Tcg(None).arg(),
        };
        // Ports are chosen and bound by QEMU under the store's lock: parallel launches never
        // pick the same ones (another process may still take one: then other ports are tried).
        let locks = PathBuf::from(&self.config.base.store_path)
            .join(crate::store::layout::HOIST_DIR)
            .join(crate::store::layout::LOCKS_DIR);
        crate::fsutil::create_dir_all(&locks, 0o700)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        let lock_path = locks.join("qemu-ports.lock");
        let ports_lock = blocking(move || crate::fsutil::FileLock::acquire(&lock_path)).await?;
        let mut last = None;
        for _ in 0..LAUNCH_ATTEMPTS {
            let (ssh_port, engine_port) = vm::free_ports()?;
            let launch = vm::Launch {
                binary: &self.config.binary,
                name: &self.config.base.machine_name,
                dir: &dir,
                accel,
                cpus: self.config.cpus,
                memory_mb: self.config.memory,
                kernel: &self.config.kernel,
                initrd: &self.config.initrd,
                append: &self.config.append,
                ssh_port,
                engine_port,
                machine_type,
                incoming,
            };
            let _ = std::fs::remove_file(dir.join(vm::STOPPED_MARK));
            match launch.start().await {
                Ok(()) => {
                    drop(ports_lock);
                    self.config.base.ssh_port = ssh_port;
                    self.config.engine_port = engine_port;
                    return Ok(());
                }
                Err(e) if e.to_string().contains("host forwarding") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DriverError::Config("QEMU did not start".into())))
    }

    /// Everything that can fail before the machine exists: the host, the image (downloaded and
    /// verified into the cache), the disk size, the acceleration.
    async fn prepare(&mut self) -> Result<(), DriverError> {
        if !self.config.snapshot.is_empty() {
            return self.prepare_from_golden().await;
        }
        self.check_host()?;
        let report = self.env.report.clone();
        let checksum = match self.config.image_checksum.as_str() {
            "" => None,
            text => Some(image::Checksum::parse(text)?),
        };
        let store = PathBuf::from(&self.config.base.store_path);
        let base = image::resolve(
            &self.config.image,
            checksum.as_ref(),
            &store,
            report.as_ref(),
        )
        .await?;
        let (format, size) = vm::image_info(&base).await?;
        if size > self.config.disk_size << 30 {
            return Err(DriverError::Config(format!(
                "--qemu-disk-size {} GB is smaller than the image ({:.1} GB)",
                self.config.disk_size,
                size as f64 / f64::from(1u32 << 30)
            )));
        }
        self.config.base_image = base.to_string_lossy().to_string();
        self.config.base_format = format;
        self.settle_accel().await
    }

    /// Decides the acceleration the VM gets (and warns when it is software emulation although
    /// KVM was not ruled out).
    async fn settle_accel(&mut self) -> Result<(), DriverError> {
        let scratch = std::env::temp_dir();
        let accel = self.choose_accel(&scratch).await?;
        if let Accel::Tcg(Some(why)) = &accel {
            warn_tcg(&self.env, why, "the VM runs under");
        }
        self.config.accel_used = accel.name().to_string();
        Ok(())
    }

    /// The pre-create check of a machine made from a golden snapshot: the snapshot whole, its
    /// base unchanged, the disk, kernel, CPUs and memory taken from it, and whether its state
    /// can be loaded here (else its disk boots from cold, with a warning).
    async fn prepare_from_golden(&mut self) -> Result<(), DriverError> {
        let name = self.config.snapshot.clone();
        let store = crate::store::Store::new(&self.config.base.store_path);
        let snapshot = store
            .load_snapshot(&name)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        if snapshot.driver_name != BUILTIN.name {
            return Err(DriverError::Config(format!(
                "snapshot \"{name}\" is of a {} machine; --qemu-snapshot makes machines from snapshots of qemu machines",
                snapshot.driver_name
            )));
        }
        let golden = golden::golden_of(&name, &snapshot.driver)?;
        let dir = store.snapshot_dir(&name);
        for file in [vm::DISK, golden::STATE, vm::SSH_KEY] {
            if !dir.join(file).is_file() {
                return Err(DriverError::Config(format!(
                    "snapshot \"{name}\" is incomplete: its {file} is missing; remove it with '{} snapshot rm {name}'",
                    crate::program::program_name()
                )));
            }
        }
        golden.check_base(&name)?;
        let c = &mut self.config;
        c.image = golden.image.clone();
        c.kernel = golden.kernel.clone();
        c.initrd = golden.initrd.clone();
        c.append = golden.append.clone();
        c.disk_size = golden.disk_size;
        c.base_image = dir.join(vm::DISK).to_string_lossy().to_string();
        c.base_format = "qcow2".into();
        if i64::from(c.cpus) == DEFAULT_CPUS {
            c.cpus = golden.cpus;
        }
        if c.memory == DEFAULT_MEMORY_MB as u64 {
            c.memory = golden.memory;
        }
        self.check_host()?;
        self.settle_accel().await?;
        let c = &self.config;
        let version = golden::binary_version(&c.binary).await?;
        let refusal = golden.refusal(&version, c.cpus, c.memory, &c.accel_used);
        if let Some(why) = &refusal {
            self.env.report.info(&format!(
                "Warning: the state of snapshot \"{name}\" cannot be loaded ({why}): the machine boots the snapshot's disk from cold instead, as slowly as from an image"
            ));
        }
        self.from_golden = Some(FromGolden {
            dir,
            golden,
            host_key: snapshot.ssh_host_key,
            loads_state: refusal.is_none(),
        });
        Ok(())
    }

    /// Makes the VM's disk (an overlay of the base image, or of the golden's disk) and its seed
    /// (a machine made from a golden keeps the golden's cloud-init instance).
    async fn make_disk_and_seed(&self, public_key: &str) -> Result<(), DriverError> {
        let dir = self.dir();
        let _ = std::fs::remove_file(dir.join(vm::DISK));
        let base = PathBuf::from(&self.config.base_image);
        let c = &self.config;
        let instance_id = match &self.from_golden {
            None => {
                vm::make_disk(&base, &c.base_format, &dir, c.disk_size).await?;
                None
            }
            Some(from) => {
                // Under the snapshot lock: `snapshot rm` either sees this machine's record or
                // has removed the snapshot before the overlay is made on it.
                let store = crate::store::Store::new(&c.base.store_path);
                let locking = store.clone();
                let _snapshots = blocking(move || locking.lock_snapshots()).await?;
                if !store.snapshot_exists(&c.snapshot) {
                    return Err(DriverError::Config(format!(
                        "snapshot \"{}\" was removed before machine \"{}\" could be made from it",
                        c.snapshot, c.base.machine_name
                    )));
                }
                vm::make_disk(&base, &c.base_format, &dir, c.disk_size).await?;
                Some(from.golden.instance_id.clone())
            }
        };
        vm::make_seed(
            &dir,
            &c.base.machine_name,
            public_key,
            instance_id.as_deref(),
        )
        .await
    }

    /// Makes a VM restored from a golden a machine of its own with the host keys being made
    /// (nothing to do for other VMs).
    async fn make_distinct(
        &self,
        public_key: &str,
        host_keys: Option<HostKeysMaking>,
    ) -> Result<(), DriverError> {
        let (Some(from), Some(host_keys)) = (&self.from_golden, host_keys) else {
            return Ok(());
        };
        let host_keys = host_keys
            .await
            .map_err(|e| DriverError::Config(e.to_string()))??;
        let name = &self.config.base.machine_name;
        self.env.report.info(
            "Giving the machine its own identity (random generator, clock, SSH host keys, machine ID)...",
        );
        let reseeded = golden::make_distinct(
            name,
            &from.dir,
            &from.golden,
            &from.host_key,
            self.config.base.ssh_port,
            public_key,
            &host_keys,
        )
        .await?;
        if !reseeded {
            self.env.report.info(&format!(
                "Warning: the kernel of machine \"{name}\" could not be asked to reseed its random generator (it has neither perl nor python3): this host's randomness was only mixed in"
            ));
        }
        Ok(())
    }

    /// Where hoist logs in to the VM: its forwarded port on this computer.
    fn ssh_endpoint_now(&self) -> SshEndpoint {
        SshEndpoint {
            host: "127.0.0.1".into(),
            port: self.config.base.ssh_port,
            user: self.config.base.ssh_user.clone(),
            key: Some(PathBuf::from(&self.config.base.ssh_key_path)),
            key_origin: None,
        }
    }

    /// Saves a golden of the running VM into `into`, once its boot has finished.
    async fn save_golden(&self, into: &Path) -> Result<Map<String, Value>, DriverError> {
        if !self.config.snapshot.is_empty() {
            return Err(DriverError::Config(format!(
                "machine \"{}\" was made from snapshot \"{}\": snapshots are taken of machines made from an image",
                self.config.base.machine_name, self.config.snapshot
            )));
        }
        if self.state().await? != State::Running {
            return Err(DriverError::NotRunning);
        }
        let target = crate::ssh::Target {
            machine: self.config.base.machine_name.clone(),
            endpoint: self.ssh_endpoint_now(),
            pinned: self.env.ssh_host_key.clone().filter(|k| !k.is_empty()),
            connect_timeout: Duration::from_secs(10),
        };
        golden::wait_for_boot(&target, self.env.report.as_ref()).await?;
        let golden = golden::save(&self.config, &self.dir(), into).await?;
        untyped_config(&golden)
    }

    /// Makes the VM and boots it. A first boot under KVM that does not reach user space within
    /// [`KVM_BOOT_VERDICT`] means this KVM cannot boot the guest: with `auto` the VM is made
    /// again and booted under software emulation, with a warning; with `kvm` the create fails.
    async fn create_vm(&mut self) -> Result<(), DriverError> {
        let dir = self.dir();
        crate::fsutil::create_dir_all(&dir, 0o700)
            .map_err(|e| DriverError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let public = crate::ssh::make_key(
            &dir.join(vm::SSH_KEY),
            &format!("hoist-{}", self.config.base.machine_name),
        )
        .map_err(|e| DriverError::Config(e.to_string()))?;
        self.config.base.ssh_key_path = dir.join(vm::SSH_KEY).to_string_lossy().to_string();
        // A machine from a golden gets new SSH host keys, made here while its VM starts.
        let mut host_keys = self.from_golden.as_ref().map(|_| {
            let comment = format!("root@{}", self.config.base.machine_name);
            tokio::spawn(blocking(move || crate::ssh::keys::make_host_keys(&comment)))
        });
        loop {
            self.env
                .report
                .info("Creating the VM's disk and cloud-init seed...");
            self.make_disk_and_seed(&public).await?;
            if let Some(from) = self.from_golden.as_ref().filter(|f| f.loads_state) {
                let (golden_dir, machine_type) =
                    (from.dir.clone(), from.golden.machine_type.clone());
                self.env.report.info(&format!(
                    "Starting the VM from snapshot \"{}\" ({} CPUs, {} MB, {})...",
                    self.config.snapshot,
                    self.config.cpus,
                    self.config.memory,
                    self.config.accel_used
                ));
                self.start_qemu(&machine_type, true).await?;
                golden::load(&golden_dir, &dir, self.config.base.ssh_port).await?;
                return self.make_distinct(&public, host_keys.take()).await;
            }
            self.env.report.info(&format!(
                "Starting the VM ({} CPUs, {} MB, {}) and waiting for it to boot...",
                self.config.cpus, self.config.memory, self.config.accel_used
            ));
            self.start_qemu("", false).await?;
            let under_kvm = self.config.accel_used == Accel::Kvm.name();
            let verdict = match under_kvm {
                true => vm::wait_for_user_space(KVM_BOOT_VERDICT, &dir).await,
                false => Ok(()),
            };
            let why = match verdict {
                Ok(()) => {
                    vm::wait_for_ssh(self.config.base.ssh_port, BOOT_WAIT, &dir).await?;
                    return self.make_distinct(&public, host_keys.take()).await;
                }
                Err(e) => format!("under KVM it did not boot: {e}"),
            };
            self.power_off(false).await?;
            if self.config.accel == "kvm" {
                return Err(DriverError::Config(format!(
                    "--qemu-accel kvm cannot work here: {why}; use --qemu-accel tcg (software emulation) or auto"
                )));
            }
            warn_tcg(&self.env, &why, "restarted it under");
            self.config.accel_used = Accel::Tcg(None).name().to_string();
        }
    }

    /// Ends QEMU: the ACPI power button and a grace period with `clean`, else at once.
    async fn power_off(&self, clean: bool) -> Result<(), DriverError> {
        let dir = self.dir();
        let qmp = dir.join(vm::QMP_SOCKET);
        crate::fsutil::write_atomic(&dir.join(vm::STOPPED_MARK), b"", 0o600)
            .map_err(|e| DriverError::Config(e.to_string()))?;
        if vm::running_pid(&dir).is_none() {
            return Ok(());
        }
        if clean
            && qmp::execute(&qmp, "system_powerdown").await.is_ok()
            && vm::wait_gone(&dir, STOP_GRACE).await
        {
            return Ok(());
        }
        let _ = qmp::execute(&qmp, "quit").await;
        if !vm::wait_gone(&dir, Duration::from_secs(5)).await
            && let Some(pid) = vm::running_pid(&dir)
        {
            // SAFETY: a signal to the VM's own QEMU (its pidfile and command line checked).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            vm::wait_gone(&dir, Duration::from_secs(5)).await;
        }
        Ok(())
    }

    fn check_flags(&mut self, flags: &FlagValues) -> Result<(), DriverError> {
        let c = &mut self.config;
        c.image = flags.string("qemu-image");
        c.image_checksum = flags.string("qemu-image-checksum");
        if !c.image_checksum.is_empty() {
            image::Checksum::parse(&c.image_checksum)?;
        }
        let positive = |name: &str| {
            let value = flags.int(name);
            u64::try_from(value).ok().filter(|v| *v > 0).ok_or_else(|| {
                DriverError::Config(format!("--{name} {value} must be a positive number"))
            })
        };
        c.cpus = u32::try_from(positive("qemu-cpu-count")?)
            .map_err(|_| DriverError::Config("--qemu-cpu-count is too large".into()))?;
        c.memory = positive("qemu-memory")?;
        c.disk_size = positive("qemu-disk-size")?;
        c.accel = flags.string("qemu-accel");
        if !["auto", "kvm", "tcg"].contains(&c.accel.as_str()) {
            return Err(DriverError::Config(format!(
                "--qemu-accel {:?} is not auto, kvm or tcg",
                c.accel
            )));
        }
        c.binary = flags.string("qemu-binary");
        c.kernel = flags.string("qemu-kernel");
        c.initrd = flags.string("qemu-initrd");
        c.append = flags.string("qemu-append");
        c.snapshot = flags.string("qemu-snapshot");
        if !c.snapshot.is_empty() {
            crate::store::snapshot::validate_snapshot_name(&c.snapshot)
                .map_err(|e| DriverError::Config(e.to_string()))?;
            let given: Vec<&str> = [
                ("qemu-image", c.image != DEFAULT_IMAGE),
                ("qemu-image-checksum", !c.image_checksum.is_empty()),
                ("qemu-kernel", !c.kernel.is_empty()),
                ("qemu-initrd", !c.initrd.is_empty()),
                ("qemu-append", !c.append.is_empty()),
                ("qemu-disk-size", c.disk_size != DEFAULT_DISK_GB as u64),
            ]
            .into_iter()
            .filter_map(|(flag, given)| given.then_some(flag))
            .collect();
            if !given.is_empty() {
                return Err(DriverError::Config(format!(
                    "--qemu-snapshot takes the disk, image and kernel from the snapshot: drop --{}",
                    given.join(", --")
                )));
            }
        }
        for (flag, path) in [
            ("qemu-kernel", &mut c.kernel),
            ("qemu-initrd", &mut c.initrd),
        ] {
            if !path.is_empty() {
                *path = vm::absolute(path).to_string_lossy().to_string();
                if !Path::new(path.as_str()).is_file() {
                    return Err(DriverError::Config(format!(
                        "--{flag} {path:?} does not exist"
                    )));
                }
            }
        }
        if !c.initrd.is_empty() && c.kernel.is_empty() {
            return Err(DriverError::Config(
                "--qemu-initrd needs --qemu-kernel".into(),
            ));
        }
        if !image::is_url(&c.image) {
            c.image = vm::absolute(&c.image).to_string_lossy().to_string();
        }
        c.base.ip_address = "127.0.0.1".into();
        c.base.ssh_user = "root".into();
        c.base.set_swarm_config_from_flags(flags);
        Ok(())
    }

    /// Checks what can be checked before anything is made.
    fn check_host(&self) -> Result<(), DriverError> {
        let c = &self.config;
        if let Some(total) = vm::host_memory_mb()
            && c.memory > total
        {
            return Err(DriverError::Config(format!(
                "--qemu-memory {} MB is more than this machine has ({total} MB)",
                c.memory
            )));
        }
        let found = match c.binary.contains('/') {
            true => crate::fsutil::is_executable(Path::new(&c.binary)),
            false => crate::fsutil::find_in_path(&c.binary).is_some(),
        };
        if !found {
            return Err(DriverError::Config(format!(
                "{} is not installed (on Debian/Ubuntu: apt-get install --no-install-recommends qemu-system-x86 qemu-utils)",
                c.binary
            )));
        }
        Ok(())
    }
}

impl Driver for Qemu {
    typed_config_methods!("qemu");
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        ready(self.check_flags(flags))
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.prepare())
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.create_vm())
    }
    /// Ends the VM; its disk and seed go with the machine directory, the cached base stays.
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power_off(false))
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(async {
            if vm::running_pid(&self.dir()).is_some() {
                // Paused (a snapshot interrupted before it let the VM run on): run on.
                if self.state().await? == State::Paused {
                    qmp::execute(&self.dir().join(vm::QMP_SOCKET), "cont")
                        .await
                        .map_err(DriverError::Config)?;
                }
                return Ok(());
            }
            self.launch().await
        })
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power_off(true))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(async {
            self.power_off(true).await?;
            self.launch().await
        })
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power_off(false))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        Box::pin(self.state())
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        Box::pin(async {
            match self.state().await? {
                State::Running => Ok("127.0.0.1".to_string()),
                _ => Err(DriverError::NotRunning),
            }
        })
    }
    fn url(&self) -> DriverFuture<'_, String> {
        Box::pin(async {
            match self.state().await? {
                State::Running => Ok(self.url()),
                _ => Err(DriverError::NotRunning),
            }
        })
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        ready(Ok(Some(self.ssh_endpoint_now())))
    }
    fn known_url(&self) -> Option<String> {
        (self.config.engine_port != 0).then(|| self.url())
    }
    fn save_snapshot<'a>(&'a mut self, into: &'a Path) -> DriverFuture<'a, Map<String, Value>> {
        Box::pin(self.save_golden(into))
    }
    fn engine_port_inside(&self) -> Option<u16> {
        Some(super::generic::DEFAULT_ENGINE_PORT)
    }
}
