//! `create`: create a machine with a driver.
//!
//! Its flags are the shared ones below plus those the driver declares, as docker-machine does:
//! the driver is found first (`-d`/`--driver` anywhere, else `$MACHINE_DRIVER`, else
//! `virtualbox`), opened (a plugin is started), asked for its flags, and the command line is then
//! parsed with them — so `create -d NAME --help` lists a plugin's flags too.

use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches, FromArgMatches};
use hoist::context::{Context, ENV_DRIVER};
use hoist::driver::{self, Driver, DriverEnv, Flag, FlagKind, FlagValue, FlagValues};
use hoist::error::{Error, Result};
use hoist::ops::create::{self, CreateOptions, EngineFlags, SwarmFlags, SwarmStep};
use hoist::provision::InstallMethod;
use hoist::report::Reporter;

use super::{Cli, Command};
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
    /// Start a Swarm-mode swarm with the new machine as its first manager
    #[arg(long, conflicts_with = "swarm_mode_join")]
    swarm_mode_init: bool,
    /// Join the new machine to the Swarm-mode swarm that MANAGER (a machine) manages
    #[arg(long, value_name = "MANAGER")]
    swarm_mode_join: Option<String>,
    /// The role the new machine joins its swarm as
    #[arg(
        long,
        value_enum,
        default_value = "worker",
        requires = "swarm_mode_join"
    )]
    swarm_mode_role: super::swarm::RoleArg,
    /// Support extra SANs for TLS certs
    #[arg(long)]
    tls_san: Vec<String>,

    /// Also write a docker CLI context for the machine (docker --context NAME)
    #[arg(long)]
    docker_context: bool,

    /// How to install Docker on a host without it: auto (the script at --engine-install-url), script, distro (the distribution's package) or none
    #[arg(long, env = "MACHINE_ENGINE_INSTALL_METHOD", default_value = "auto")]
    engine_install_method: String,

    /// Keep what a failed create made (a cloud instance is otherwise removed), for 'provision' or 'rm'
    #[arg(long)]
    keep_on_failure: bool,

    /// The machine name
    names: Vec<String>,

    /// The opened driver and the values of its flags, filled in by [`parse`].
    #[arg(skip)]
    prepared: Prepared,
}

impl Args {
    /// The name of the machine to create, when exactly one is given.
    pub fn machine_name(&self) -> Option<&str> {
        match self.names.as_slice() {
            [name] => Some(name),
            _ => None,
        }
    }
}

/// The driver `create` opened to learn its flags, kept for the create itself.
#[derive(Default)]
pub struct Prepared(Option<(Box<dyn Driver>, FlagValues)>);

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let driver = self.0.as_ref().map(|(d, _)| d.name());
        f.debug_tuple("Prepared").field(&driver).finish()
    }
}

/// The driver named on a command line (docker-machine's `flagHackLookup`): `-d X`, `--driver X`,
/// `-d=X`, `--driver=X`, else `$MACHINE_DRIVER`, else `virtualbox`.
pub fn driver_name(args: &[String]) -> String {
    let mut words = args.iter().skip(1).take_while(|a| *a != "--");
    while let Some(word) = words.next() {
        if word == "-d" || word == "--driver" {
            if let Some(value) = words.next() {
                return value.clone();
            }
        } else if let Some(value) = word
            .strip_prefix("--driver=")
            .or_else(|| word.strip_prefix("-d="))
        {
            return value.to_string();
        }
    }
    std::env::var(ENV_DRIVER)
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "virtualbox".into())
}

/// The `create` subcommand with a driver's flags added (under their own heading); names the
/// shared flags already use are left out.
pub fn with_driver_flags(cli: clap::Command, driver: &str, flags: &[Flag]) -> clap::Command {
    cli.mut_subcommand("create", |mut create| {
        let heading = format!("{driver} driver");
        for flag in flags {
            if create
                .get_arguments()
                .any(|a| a.get_id() == flag.name.as_str())
            {
                continue;
            }
            let mut arg = Arg::new(flag.name.clone())
                .long(flag.name.clone())
                .help(flag.usage.clone())
                .help_heading(heading.clone())
                .value_name(flag.name.to_uppercase().replace('-', "_"));
            if !flag.env_var.is_empty() {
                arg = arg.env(flag.env_var.clone()).hide_env_values(true);
            }
            arg = match &flag.kind {
                FlagKind::String(default) if default.is_empty() => arg,
                FlagKind::String(default) => arg.default_value(default.clone()),
                FlagKind::Int(default) => arg
                    .value_parser(clap::value_parser!(i64))
                    .allow_negative_numbers(true)
                    .default_value(default.to_string()),
                FlagKind::Bool => arg.action(ArgAction::SetTrue),
                FlagKind::StringSlice(defaults) => arg
                    .action(ArgAction::Append)
                    .default_values(defaults.clone()),
            };
            create = create.arg(arg);
        }
        create
    })
}

/// The values of the driver's flags (their defaults when not given), as `SetConfigFromFlags`
/// gets them.
fn driver_values(matches: &ArgMatches, flags: &[Flag]) -> FlagValues {
    let mut values = FlagValues::default();
    for flag in flags {
        let name = flag.name.as_str();
        let value = match &flag.kind {
            FlagKind::String(_) => matches
                .try_get_one::<String>(name)
                .ok()
                .flatten()
                .map(|s| FlagValue::String(s.clone())),
            FlagKind::Int(_) => matches
                .try_get_one::<i64>(name)
                .ok()
                .flatten()
                .map(|i| FlagValue::Int(*i)),
            FlagKind::Bool => matches
                .try_get_one::<bool>(name)
                .ok()
                .flatten()
                .map(|b| FlagValue::Bool(*b)),
            FlagKind::StringSlice(_) => matches
                .try_get_many::<String>(name)
                .ok()
                .flatten()
                .map(|v| FlagValue::StringSlice(v.cloned().collect())),
        };
        values.set(name, value.unwrap_or_else(|| flag.default_value()));
    }
    values
}

/// Adds the shared flags' values, as docker-machine hands every flag of the command to the
/// driver (string slices only when given).
fn add_shared_values(values: &mut FlagValues, a: &Args) {
    let strings = [
        ("driver", &a.driver),
        ("engine-install-url", &a.engine_install_url),
        ("engine-storage-driver", &a.engine_storage_driver),
        ("swarm-image", &a.swarm_image),
        ("swarm-discovery", &a.swarm_discovery),
        ("swarm-strategy", &a.swarm_strategy),
        ("swarm-host", &a.swarm_host),
        ("swarm-addr", &a.swarm_addr),
    ];
    for (name, v) in strings {
        values.set(name, FlagValue::String(v.clone()));
    }
    for (name, v) in [
        ("swarm", a.swarm),
        ("swarm-master", a.swarm_master),
        ("swarm-experimental", a.swarm_experimental),
    ] {
        values.set(name, FlagValue::Bool(v));
    }
    let slices = [
        ("engine-opt", &a.engine_opt),
        ("engine-insecure-registry", &a.engine_insecure_registry),
        ("engine-registry-mirror", &a.engine_registry_mirror),
        ("engine-label", &a.engine_label),
        ("engine-env", &a.engine_env),
        ("swarm-opt", &a.swarm_opt),
        ("swarm-join-opt", &a.swarm_join_opt),
        ("tls-san", &a.tls_san),
    ];
    for (name, v) in slices {
        if !v.is_empty() {
            values.set(name, FlagValue::StringSlice(v.clone()));
        }
    }
}

/// How parsing `create` can fail.
pub enum ParseError {
    /// A usage error or a help request: clap's message.
    Usage(clap::Error),
    /// The driver could not be opened.
    Driver(Error),
}

/// Parses a `create` command line: opens the driver, adds its flags, parses. The driver stays
/// open in the parsed arguments for [`exec`].
pub async fn parse(args: &[String], printer: &Printer) -> std::result::Result<Cli, ParseError> {
    let name = driver_name(args);
    let report: Arc<dyn Reporter> = Arc::new(printer.clone());
    let env = DriverEnv::new("flag-lookup", report);
    let config = driver::new_config("flag-lookup", "");
    let opened = match driver::open(&name, &config, &env).await {
        Ok(d) => match d.create_flags().await {
            Ok(flags) => Ok((d, flags)),
            Err(e) => {
                d.close().await;
                Err(e)
            }
        },
        Err(e) => Err(e),
    };
    let (driver, flags) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            // Without the driver, help still shows the shared flags; anything else fails.
            return match super::cli_command().try_get_matches_from(args) {
                Err(help) if help.kind() == clap::error::ErrorKind::DisplayHelp => {
                    eprintln!("(the flags of driver \"{name}\" are not listed: {e})");
                    Err(ParseError::Usage(help))
                }
                _ => Err(ParseError::Driver(e.into())),
            };
        }
    };
    let matches = with_driver_flags(super::cli_command(), &name, &flags).try_get_matches_from(args);
    let parsed = matches.and_then(|m| {
        let cli = Cli::from_arg_matches(&m)?;
        let create = m.subcommand_matches("create").cloned();
        Ok((cli, create))
    });
    match parsed {
        Ok((mut cli, Some(create_matches))) => {
            if let Command::Create(a) = &mut cli.command {
                let mut values = driver_values(&create_matches, &flags);
                add_shared_values(&mut values, a);
                a.prepared = Prepared(Some((driver, values)));
            } else {
                driver.close().await;
            }
            Ok(cli)
        }
        Ok((cli, None)) => {
            driver.close().await;
            Ok(cli)
        }
        Err(e) => {
            driver.close().await;
            Err(ParseError::Usage(e))
        }
    }
}

pub async fn exec(args: Args, ctx: &Context, printer: &Printer) -> Result<u8> {
    let Some((driver, flags)) = args.prepared.0 else {
        return Err(Error::Other("create: the driver was not prepared".into()));
    };
    let name = match args.names.as_slice() {
        [name] => name.clone(),
        names => {
            driver.close().await;
            return Err(Error::Usage(match names {
                [] => "Error: No machine name specified".into(),
                // Go's %v of a []string: [a b], no quotes.
                [_, extra @ ..] => format!(
                    "Invalid command line. Found extra arguments [{}]",
                    extra.join(" ")
                ),
            }));
        }
    };
    let checked = InstallMethod::parse(&args.engine_install_method).and_then(|method| match &args
        .swarm_mode_join
    {
        Some(manager) => ctx.store.load(manager).map(|_| method).map_err(Error::from),
        None => Ok(method),
    });
    let install_method = match checked {
        Ok(m) => m,
        Err(e) => {
            driver.close().await;
            return Err(e);
        }
    };
    let opts = CreateOptions {
        name: name.clone(),
        flags,
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
        install_method,
        keep_on_failure: args.keep_on_failure,
        docker_context: args.docker_context,
        swarm_step: match (args.swarm_mode_init, args.swarm_mode_join) {
            (true, _) => Some(SwarmStep::Init),
            (false, Some(manager)) => Some(SwarmStep::Join {
                manager,
                role: args.swarm_mode_role.into(),
            }),
            (false, None) => None,
        },
    };
    create::create(ctx, &opts, driver, printer).await?;
    printer.finish();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_driver_is_found_anywhere_before_a_double_dash() {
        assert_eq!(
            driver_name(&argv(&["hoist", "create", "-d", "none", "x"])),
            "none"
        );
        assert_eq!(
            driver_name(&argv(&["hoist", "create", "x", "--driver=qemu"])),
            "qemu"
        );
        assert_eq!(
            driver_name(&argv(&["hoist", "-d=generic", "create", "x"])),
            "generic"
        );
        assert_eq!(
            driver_name(&argv(&["hoist", "create", "--driver", "labplug", "x"])),
            "labplug"
        );
        let fallback = std::env::var(ENV_DRIVER).unwrap_or_default();
        let expected = if fallback.is_empty() {
            "virtualbox".to_string()
        } else {
            fallback
        };
        assert_eq!(
            driver_name(&argv(&["hoist", "create", "--", "-d", "x"])),
            expected
        );
    }

    #[test]
    fn driver_flags_become_arguments_with_defaults_and_env_vars() {
        let flags = vec![
            Flag::string("p-str", "a string", "P_STR", "dflt"),
            Flag::int("p-int", "an int", "", 7),
            Flag::bool("p-bool", "a bool", ""),
            Flag::string_slice("p-list", "a list", "", &["a"]),
            // Already a shared flag: left out, not a clash.
            Flag::string("driver", "clash", "", ""),
        ];
        let cmd = with_driver_flags(crate::commands::cli_command(), "p", &flags);
        let m = cmd
            .clone()
            .try_get_matches_from(argv(&[
                "hoist", "create", "-d", "p", "--p-int", "-3", "--p-bool", "--p-list", "x",
                "--p-list", "y", "m",
            ]))
            .unwrap();
        let values = driver_values(m.subcommand_matches("create").unwrap(), &flags);
        assert_eq!(values.string("p-str"), "dflt");
        assert_eq!(values.int("p-int"), -3);
        assert!(values.bool("p-bool"));
        assert_eq!(values.string_slice("p-list"), ["x", "y"]);
        let m = cmd
            .clone()
            .try_get_matches_from(argv(&["hoist", "create", "m"]))
            .unwrap();
        let values = driver_values(m.subcommand_matches("create").unwrap(), &flags);
        assert_eq!(values.string_slice("p-list"), ["a"]);
        assert!(!values.bool("p-bool"));
        let err = cmd
            .try_get_matches_from(argv(&["hoist", "create", "--p-nope", "m"]))
            .unwrap_err();
        assert!(err.to_string().contains("--p-nope"), "{err}");
    }
}
