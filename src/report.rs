//! How long operations report their steps: the library calls a [`Reporter`]; the binary decides
//! how to show the messages (a live line on a terminal, plain lines elsewhere).

/// Receives the step messages of long operations.
pub trait Reporter: Send + Sync {
    /// A step, as docker-machine logs it (`Creating machine...`).
    fn info(&self, message: &str);
    /// Detail shown only with `--debug` (remote commands, their output and exit status).
    fn debug(&self, message: &str);
    /// The reporter for machine `name` when several are worked on at once (its lines name it);
    /// `None`: this one.
    fn for_machine(&self, _name: &str) -> Option<std::sync::Arc<dyn Reporter>> {
        None
    }
}

/// Turns every message into a debug line: for output (a plugin's chatter) that must not disturb
/// a table such as `ls`.
pub struct DebugOnly(pub std::sync::Arc<dyn Reporter>);

impl Reporter for DebugOnly {
    fn info(&self, message: &str) {
        self.0.debug(message);
    }
    fn debug(&self, message: &str) {
        self.0.debug(message);
    }
}

/// Keeps the step messages, for unit tests that check what an operation said.
#[cfg(test)]
#[derive(Default)]
pub struct Recorder(std::sync::Mutex<Vec<String>>);

#[cfg(test)]
impl Reporter for Recorder {
    fn info(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
    fn debug(&self, _: &str) {}
}

#[cfg(test)]
impl Recorder {
    /// The step messages so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}
