//! An in-process driver for unit tests: it records the calls it gets, moves between states as a
//! real machine would, and fails the operations it is told to fail.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::{Driver, DriverError, DriverFuture, Flag, FlagValues, SshEndpoint, State, ready};

/// What the fake driver was asked, and how it behaves.
#[derive(Debug, Default)]
pub struct Script {
    /// The calls, in order (`create`, `state`, …).
    pub calls: Vec<String>,
    /// The machine's state.
    pub state: Option<State>,
    /// Operations that fail, by name.
    pub failing: Vec<&'static str>,
    /// Whether it removes what a failed create made (as EC2's does).
    pub removes_failed_create: bool,
}

/// The fake driver; clones share one [`Script`].
#[derive(Clone)]
pub struct FakeDriver {
    pub script: Arc<Mutex<Script>>,
    config: Map<String, Value>,
}

impl FakeDriver {
    /// A fake machine in `state`, failing the operations named in `failing`.
    pub fn new(state: State, failing: &[&'static str]) -> FakeDriver {
        FakeDriver {
            script: Arc::new(Mutex::new(Script {
                state: Some(state),
                failing: failing.to_vec(),
                ..Script::default()
            })),
            config: Map::new(),
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.script.lock().unwrap().calls.clone()
    }

    fn step(&self, op: &'static str, then: Option<State>) -> Result<(), DriverError> {
        let mut s = self.script.lock().unwrap();
        s.calls.push(op.to_string());
        if s.failing.contains(&op) {
            return Err(DriverError::Plugin(format!("fake: {op} failed")));
        }
        if then.is_some() {
            s.state = then;
        }
        Ok(())
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &str {
        "fake"
    }
    fn config(&self) -> DriverFuture<'_, Map<String, Value>> {
        ready(self.step("config", None).map(|_| self.config.clone()))
    }
    fn set_config(&mut self, config: Map<String, Value>) -> DriverFuture<'_, ()> {
        self.config = config;
        ready(self.step("set_config", None))
    }
    fn create_flags(&self) -> DriverFuture<'_, Vec<Flag>> {
        ready(Ok(vec![Flag::string("fake-ip", "IP", "", "192.0.2.9")]))
    }
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        self.config
            .insert("IPAddress".into(), Value::from(flags.string("fake-ip")));
        ready(self.step("set_config_from_flags", None))
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("pre_create_check", None))
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        self.config
            .insert("InstanceId".into(), Value::from("i-fake"));
        ready(self.step("create", Some(State::Running)))
    }
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("remove", None))
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("start", Some(State::Running)))
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("stop", Some(State::Stopped)))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("restart", Some(State::Running)))
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        ready(self.step("kill", Some(State::Stopped)))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        let result = self.step("state", None);
        let state = self.script.lock().unwrap().state.unwrap_or(State::None);
        ready(result.map(|_| state))
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        ready(Ok("192.0.2.9".into()))
    }
    fn url(&self) -> DriverFuture<'_, String> {
        ready(Ok("tcp://192.0.2.9:2376".into()))
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        ready(Ok(None))
    }
    /// Like `none`: nothing to provision, so a create ends after the driver's.
    fn provisions(&self) -> bool {
        false
    }
    fn removes_failed_create(&self) -> bool {
        self.script.lock().unwrap().removes_failed_create
    }
}
