//! `create`: create a machine with a driver.

use hoist::context::{Context, program_name};
use hoist::driver::generic::GenericFlags;
use hoist::error::{Error, Result};
use hoist::ops::create::{self, CreateOptions, DriverFlags, EngineFlags, SwarmFlags};
use hoist::provision::InstallMethod;

use crate::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Driver to create machine with.
    #[arg(
        short = 'd',
        long,
        env = "MACHINE_DRIVER",
        default_value = "virtualbox"
    )]
    driver: String,
    /// Custom URL to use for engine installation
    #[arg(
        long,
        env = "MACHINE_DOCKER_INSTALL_URL",
        default_value = "https://get.docker.com"
    )]
    engine_install_url: String,
    /// Specify arbitrary flags to include with the created engine in the form flag=value
    #[arg(long)]
    engine_opt: Vec<String>,
    /// Specify insecure registries to allow with the created engine
    #[arg(long)]
    engine_insecure_registry: Vec<String>,
    /// Specify registry mirrors to use
    #[arg(long, env = "ENGINE_REGISTRY_MIRROR", value_delimiter = ',')]
    engine_registry_mirror: Vec<String>,
    /// Specify labels for the created engine
    #[arg(long)]
    engine_label: Vec<String>,
    /// Specify a storage driver to use with the engine
    #[arg(long, default_value = "")]
    engine_storage_driver: String,
    /// Specify environment variables to set in the engine
    #[arg(long)]
    engine_env: Vec<String>,
    /// Configure Machine to join a Swarm cluster
    #[arg(long)]
    swarm: bool,
    /// Specify Docker image to use for Swarm
    #[arg(long, env = "MACHINE_SWARM_IMAGE", default_value = "swarm:latest")]
    swarm_image: String,
    /// Configure Machine to be a Swarm master
    #[arg(long)]
    swarm_master: bool,
    /// Discovery service to use with Swarm
    #[arg(long, default_value = "")]
    swarm_discovery: String,
    /// Define a default scheduling strategy for Swarm
    #[arg(long, default_value = "spread")]
    swarm_strategy: String,
    /// Define arbitrary flags for Swarm master
    #[arg(long)]
    swarm_opt: Vec<String>,
    /// Define arbitrary flags for Swarm join
    #[arg(long)]
    swarm_join_opt: Vec<String>,
    /// ip/socket to listen on for Swarm master
    #[arg(long, default_value = "tcp://0.0.0.0:3376")]
    swarm_host: String,
    /// addr to advertise for Swarm (default: detect and use the machine IP)
    #[arg(long, default_value = "")]
    swarm_addr: String,
    /// Enable Swarm experimental features
    #[arg(long)]
    swarm_experimental: bool,
    /// Support extra SANs for TLS certs
    #[arg(long)]
    tls_san: Vec<String>,

    /// How to install Docker on a host without it: auto (the script at --engine-install-url), script, distro (the distribution's package) or none
    #[arg(long, env = "MACHINE_ENGINE_INSTALL_METHOD", default_value = "auto")]
    engine_install_method: String,

    /// none driver: URL of host when no driver is selected
    #[arg(long, default_value = "", help_heading = "none driver")]
    url: String,

    /// generic driver: IP Address of machine
    #[arg(
        long,
        env = "GENERIC_IP_ADDRESS",
        default_value = "",
        help_heading = "generic driver"
    )]
    generic_ip_address: String,
    /// generic driver: SSH user
    #[arg(
        long,
        env = "GENERIC_SSH_USER",
        default_value = "root",
        help_heading = "generic driver"
    )]
    generic_ssh_user: String,
    /// generic driver: SSH private key path (if not provided, the SSH agent or the default keys in ~/.ssh are used)
    #[arg(
        long,
        env = "GENERIC_SSH_KEY",
        default_value = "",
        help_heading = "generic driver"
    )]
    generic_ssh_key: String,
    /// generic driver: SSH port
    #[arg(
        long,
        env = "GENERIC_SSH_PORT",
        default_value_t = 22,
        help_heading = "generic driver"
    )]
    generic_ssh_port: u16,
    /// generic driver: Docker engine port
    #[arg(
        long,
        env = "GENERIC_ENGINE_PORT",
        default_value_t = 2376,
        help_heading = "generic driver"
    )]
    generic_engine_port: u16,
    /// generic driver: keep the host's hostname instead of setting it to the machine name
    #[arg(long, env = "GENERIC_KEEP_HOSTNAME", help_heading = "generic driver")]
    generic_keep_hostname: bool,

    /// The machine name
    names: Vec<String>,
}

impl Args {
    fn driver_flags(&self) -> Result<DriverFlags> {
        match self.driver.as_str() {
            "none" => Ok(DriverFlags::None {
                url: self.url.clone(),
            }),
            "generic" => Ok(DriverFlags::Generic(GenericFlags {
                ip_address: self.generic_ip_address.clone(),
                ssh_user: self.generic_ssh_user.clone(),
                ssh_key: self.generic_ssh_key.clone(),
                ssh_port: self.generic_ssh_port,
                engine_port: self.generic_engine_port,
                keep_hostname: self.generic_keep_hostname,
            })),
            other => Err(hoist::driver::DriverError::NotFound(other.to_string()).into()),
        }
    }
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let name = match args.names.as_slice() {
        [] => return Err(Error::Usage("Error: No machine name specified".into())),
        [name] => name.clone(),
        [_, extra @ ..] => {
            return Err(Error::Usage(format!(
                "Invalid command line. Found extra arguments {extra:?}"
            )));
        }
    };
    let driver = args.driver_flags()?;
    let opts = CreateOptions {
        name: name.clone(),
        driver,
        engine: EngineFlags {
            install_url: args.engine_install_url,
            opts: args.engine_opt,
            insecure_registries: args.engine_insecure_registry,
            registry_mirrors: args.engine_registry_mirror,
            labels: args.engine_label,
            storage_driver: args.engine_storage_driver,
            env: args.engine_env,
        },
        swarm: SwarmFlags {
            agent: args.swarm,
            master: args.swarm_master,
            image: args.swarm_image,
            discovery: args.swarm_discovery,
            strategy: args.swarm_strategy,
            opts: args.swarm_opt,
            join_opts: args.swarm_join_opt,
            host: args.swarm_host,
            addr: args.swarm_addr,
            experimental: args.swarm_experimental,
        },
        tls_sans: args.tls_san,
        install_method: InstallMethod::parse(&args.engine_install_method)?,
    };
    create::create(ctx, &opts, printer).await?;
    printer.finish();
    println!(
        "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: {} env {name}",
        program_name()
    );
    Ok(0)
}
