//! The name hoist was invoked as (`hoist` or `docker-machine`), for hints and messages.

use std::sync::OnceLock;

static PROGRAM: OnceLock<String> = OnceLock::new();

/// Sets the name hoist was invoked as, once, at start-up.
pub fn set_program_name(name: &str) {
    let _ = PROGRAM.set(name.to_string());
}

/// The name hoist was invoked as; used in hints such as "Run 'docker-machine env web'".
pub fn program_name() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("hoist")
}
