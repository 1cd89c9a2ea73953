//! The `qemu` driver: a local VM from a standard cloud image, configured by cloud-init (NoCloud),
//! with user-mode networking and host forwards from free 127.0.0.1 ports to its SSH and Docker
//! ports. KVM when it works, software emulation (TCG) otherwise. QEMU runs detached, with its
//! pidfile, QMP socket and serial console in the machine directory; the state is QEMU's own (QMP).

mod image;
mod qmp;
mod vm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    BaseDriver, Builtin, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagValues,
    SshEndpoint, State, ready, typed_config, untyped_config,
};
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
        Flag::int("qemu-cpu-count", "Number of CPUs", "QEMU_CPU_COUNT", 2),
        Flag::int("qemu-memory", "Memory in MB", "QEMU_MEMORY", 2048),
        Flag::int("qemu-disk-size", "Disk size in GB", "QEMU_DISK_SIZE", 20),
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
    ]
}

fn open(config: &Map<String, Value>, env: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    Ok(Box::new(Qemu {
        config: typed_config(config)?,
        env: env.clone(),
    }))
}

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
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
        self.start_qemu().await?;
        vm::wait_for_ssh(self.config.base.ssh_port, BOOT_WAIT, &self.dir()).await
    }

    /// Starts QEMU on the VM's disk with fresh forwarded ports (retried when QEMU lost a port
    /// to another process).
    async fn start_qemu(&mut self) -> Result<(), DriverError> {
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
        let ports_lock =
            tokio::task::spawn_blocking(move || crate::fsutil::FileLock::acquire(&lock_path))
                .await
                .map_err(|e| DriverError::Config(e.to_string()))?
                .map_err(|e| DriverError::Config(e.to_string()))?;
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
        let scratch = std::env::temp_dir();
        let accel = self.choose_accel(&scratch).await?;
        if let Accel::Tcg(Some(why)) = &accel {
            warn_tcg(&self.env, why, "the VM runs under");
        }
        self.config.accel_used = accel.name().to_string();
        Ok(())
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
        loop {
            self.env
                .report
                .info("Creating the VM's disk and cloud-init seed...");
            let _ = std::fs::remove_file(dir.join(vm::DISK));
            let base = PathBuf::from(&self.config.base_image);
            vm::make_disk(&base, &self.config.base_format, &dir, self.config.disk_size).await?;
            vm::make_seed(&dir, &self.config.base.machine_name, &public).await?;
            self.env.report.info(&format!(
                "Starting the VM ({} CPUs, {} MB, {}) and waiting for it to boot...",
                self.config.cpus, self.config.memory, self.config.accel_used
            ));
            self.start_qemu().await?;
            let under_kvm = self.config.accel_used == Accel::Kvm.name();
            let verdict = match under_kvm {
                true => vm::wait_for_user_space(KVM_BOOT_VERDICT, &dir).await,
                false => Ok(()),
            };
            let why = match verdict {
                Ok(()) => {
                    return vm::wait_for_ssh(self.config.base.ssh_port, BOOT_WAIT, &dir).await;
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
            false => crate::fsutil::path_dirs()
                .iter()
                .any(|dir| crate::fsutil::is_executable(&dir.join(&c.binary))),
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
        ready(Ok(Some(SshEndpoint {
            host: "127.0.0.1".into(),
            port: self.config.base.ssh_port,
            user: self.config.base.ssh_user.clone(),
            key: Some(PathBuf::from(&self.config.base.ssh_key_path)),
            key_origin: None,
        })))
    }
    fn known_url(&self) -> Option<String> {
        (self.config.engine_port != 0).then(|| self.url())
    }
    fn engine_port_inside(&self) -> Option<u16> {
        Some(super::generic::DEFAULT_ENGINE_PORT)
    }
}
