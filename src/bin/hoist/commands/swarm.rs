//! `swarm`: Swarm-mode clusters across machines, through their Docker APIs over TLS.

use clap::Subcommand;
use hoist::context::Context;
use hoist::error::Result;
use hoist::ops::swarm::{self, InitOptions, Role};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Start a swarm with MANAGER as its first manager
    Init {
        /// The address the other nodes reach the manager at (default: the machine's IP)
        #[arg(long)]
        advertise_addr: Option<String>,
        /// Address pool (CIDR) for overlay networks; repeat for several (default: Docker's)
        #[arg(long)]
        default_addr_pool: Vec<String>,
        /// Prefix length of the networks taken from the pools (default: Docker's, 24)
        #[arg(long, default_value_t = 0)]
        default_addr_pool_mask_length: u32,
        manager: String,
    },
    /// Join machines to the swarm MANAGER manages, in parallel
    Join {
        /// The role they join as
        #[arg(long = "as", value_enum, default_value = "worker")]
        role: RoleArg,
        manager: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List the nodes of a swarm and the machines they are
    Ls {
        /// A machine of the swarm (default: the one swarm the store's machines are in)
        manager: Option<String>,
    },
    /// Drain machines, take them out of their swarm and remove them from its node list
    Leave {
        /// Also the last manager (ends the swarm), or a machine that does not answer
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make machines managers of their swarm
    Promote {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make machines workers of their swarm
    Demote {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// A role as a flag value.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Worker,
    Manager,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Worker => Role::Worker,
            RoleArg::Manager => Role::Manager,
        }
    }
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    match args.action {
        Action::Init {
            advertise_addr,
            default_addr_pool,
            default_addr_pool_mask_length,
            manager,
        } => {
            let opts = InitOptions {
                advertise_addr,
                default_addr_pool,
                subnet_size: default_addr_pool_mask_length,
            };
            println!("{}", swarm::init(ctx, &manager, &opts).await?);
            Ok(0)
        }
        Action::Join {
            role,
            manager,
            names,
        } => crate::printer::print_each(swarm::join(ctx, &manager, &names, role.into()).await?),
        Action::Ls { manager } => {
            crate::printer::print_text(&swarm::ls(ctx, manager.as_deref()).await?)
        }
        Action::Leave { force, names } => {
            crate::printer::print_each(swarm::leave(ctx, &names, force).await)
        }
        Action::Promote { names } => {
            crate::printer::print_each(swarm::set_role(ctx, &names, Role::Manager).await)
        }
        Action::Demote { names } => {
            crate::printer::print_each(swarm::set_role(ctx, &names, Role::Worker).await)
        }
    }
}
