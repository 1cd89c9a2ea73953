//! `start`, `stop`, `kill`, `restart`: power actions through the machine's driver, with
//! docker-machine's messages (`Starting "web"...`, `Machine "web" was started.`) and its rules (a
//! machine already in the wanted state is an error; a stopped machine is restarted by starting it;
//! after a start or restart, the daemon must answer over TLS).

use crate::context::Context;
use crate::driver::{self, State};
use crate::error::{Error, Result};
use crate::provision;
use crate::report::Reporter;

use crate::machine::Machine;

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Start,
    Stop,
    Kill,
    Restart,
}

impl Power {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Power::Start => "start",
            Power::Stop => "stop",
            Power::Kill => "kill",
            Power::Restart => "restart",
        }
    }
}

/// Runs a power action on one machine under its lock; the driver's config (addresses and ports
/// may change) is saved afterwards.
pub async fn power(ctx: &Context, name: &str, action: Power, report: &dyn Reporter) -> Result<()> {
    let _lock = crate::machine::lock_machine(ctx, name).await?;
    let mut machine = Machine::load(ctx, name).await?;
    let result = run(&mut machine, action, report).await;
    let saved = save_driver_config(ctx, &mut machine).await;
    machine.close().await;
    result
        .map_err(|e| with_next_step(e, name, action))
        .and(saved)
        .map_err(|e| prefixed(name, e))
}

/// A start or restart that timed out waiting says what to run once the machine is back.
fn with_next_step(e: Error, name: &str, action: Power) -> Error {
    let waited = matches!(&e, Error::Driver(driver::DriverError::Timeout(_)))
        || e.to_string().contains("did not answer over TLS");
    if waited && matches!(action, Power::Start | Power::Restart) {
        Error::Other(format!(
            "{e}; once the machine is up, run '{p} status {name}', and '{p} provision {name}' if Docker does not answer",
            p = crate::context::program_name()
        ))
    } else {
        e
    }
}

async fn save_driver_config(ctx: &Context, machine: &mut Machine) -> Result<()> {
    let config = machine.driver.config().await?;
    if config != machine.host.driver {
        machine.host.driver = config;
        ctx.store.save(&machine.host)?;
    }
    Ok(())
}

/// docker-machine's `runActionForState`: refuse when already there, act, wait for the state.
pub(crate) async fn act(machine: &mut Machine, action: Power, wanted: State) -> Result<()> {
    let name = &machine.host.name;
    if machine.driver.state().await? == wanted {
        return Err(Error::Other(format!(
            "Machine \"{name}\" is already {}.",
            wanted.to_string().to_lowercase()
        )));
    }
    match action {
        Power::Start => machine.driver.start().await?,
        Power::Stop => machine.driver.stop().await?,
        Power::Kill => machine.driver.kill().await?,
        Power::Restart => machine.driver.restart().await?,
    }
    driver::wait_for_state(machine.driver.as_ref(), wanted, driver::STATE_WAIT).await?;
    Ok(())
}

async fn start(machine: &mut Machine, report: &dyn Reporter) -> Result<()> {
    let name = machine.host.name.clone();
    report.info(&format!("Starting \"{name}\"..."));
    act(machine, Power::Start, State::Running).await?;
    report.info(&format!("Machine \"{name}\" was started."));
    wait_for_docker(machine).await
}

async fn wait_for_docker(machine: &Machine) -> Result<()> {
    let url = machine.docker_url().await?;
    provision::wait_for_docker(None, &machine.host, &url)
        .await
        .map(|_| ())
}

pub(crate) async fn run(machine: &mut Machine, action: Power, report: &dyn Reporter) -> Result<()> {
    let name = machine.host.name.clone();
    match action {
        Power::Start => start(machine, report).await,
        Power::Stop | Power::Kill => {
            let (doing, done) = if action == Power::Stop {
                ("Stopping", "stopped")
            } else {
                ("Killing", "killed")
            };
            report.info(&format!("{doing} \"{name}\"..."));
            act(machine, action, State::Stopped).await?;
            report.info(&format!("Machine \"{name}\" was {done}."));
            Ok(())
        }
        Power::Restart => {
            report.info(&format!("Restarting \"{name}\"..."));
            match machine.driver.state().await? {
                State::Stopped => start(machine, report).await,
                State::Running => {
                    machine.driver.restart().await?;
                    driver::wait_for_state(
                        machine.driver.as_ref(),
                        State::Running,
                        driver::STATE_WAIT,
                    )
                    .await?;
                    wait_for_docker(machine).await
                }
                other => Err(Error::Other(format!(
                    "machine \"{name}\" is {}; only a running or stopped machine can be restarted",
                    if other == State::None {
                        "in no known state".into()
                    } else {
                        other.to_string()
                    }
                ))),
            }
        }
    }
}

/// Names the machine in an error that does not already, for commands about several machines.
pub fn prefixed(name: &str, e: Error) -> Error {
    let text = e.to_string();
    if text.contains(&format!("\"{name}\"")) {
        e
    } else {
        Error::Other(format!("machine \"{name}\": {text}"))
    }
}
