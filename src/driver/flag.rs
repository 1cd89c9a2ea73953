//! Create flags declared as data (libmachine's `mcnflag`), and the values `create` hands a driver
//! (libmachine's `DriverOptions` / `RPCFlags`).

use std::collections::BTreeMap;

/// The kind of a flag, with its default value.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagKind {
    String(String),
    StringSlice(Vec<String>),
    Int(i64),
    Bool,
}

/// One create flag of a driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// The flag's name without dashes (`generic-ip-address`).
    pub name: String,
    pub usage: String,
    /// The environment variable that sets it, or "".
    pub env_var: String,
    pub kind: FlagKind,
}

impl Flag {
    fn new(name: &str, usage: &str, env_var: &str, kind: FlagKind) -> Flag {
        Flag {
            name: name.into(),
            usage: usage.into(),
            env_var: env_var.into(),
            kind,
        }
    }

    /// A string flag with its default.
    pub fn string(name: &str, usage: &str, env_var: &str, default: &str) -> Flag {
        Flag::new(name, usage, env_var, FlagKind::String(default.into()))
    }

    /// An integer flag with its default.
    pub fn int(name: &str, usage: &str, env_var: &str, default: i64) -> Flag {
        Flag::new(name, usage, env_var, FlagKind::Int(default))
    }

    /// A boolean flag (false unless given).
    pub fn bool(name: &str, usage: &str, env_var: &str) -> Flag {
        Flag::new(name, usage, env_var, FlagKind::Bool)
    }

    /// A repeatable string flag with its defaults.
    pub fn string_slice(name: &str, usage: &str, env_var: &str, default: &[&str]) -> Flag {
        Flag::new(
            name,
            usage,
            env_var,
            FlagKind::StringSlice(default.iter().map(|s| s.to_string()).collect()),
        )
    }

    /// The value the driver gets when the flag is not given.
    pub fn default_value(&self) -> FlagValue {
        match &self.kind {
            FlagKind::String(s) => FlagValue::String(s.clone()),
            FlagKind::StringSlice(v) => FlagValue::StringSlice(v.clone()),
            FlagKind::Int(i) => FlagValue::Int(*i),
            FlagKind::Bool => FlagValue::Bool(false),
        }
    }
}

/// A flag's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    String(String),
    StringSlice(Vec<String>),
    Int(i64),
    Bool(bool),
}

/// The values of `create`'s flags by name, the driver's own and the shared ones, as libmachine's
/// `getDriverOpts` collects them: every driver flag (its default when not given), every shared
/// flag, string slices only when given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagValues(pub BTreeMap<String, FlagValue>);

impl FlagValues {
    /// Sets a value.
    pub fn set(&mut self, name: &str, value: FlagValue) {
        self.0.insert(name.to_string(), value);
    }

    /// A string value ("" when absent or of another kind, as `RPCFlags.String`).
    pub fn string(&self, name: &str) -> String {
        match self.0.get(name) {
            Some(FlagValue::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// A string-slice value (empty when absent).
    pub fn string_slice(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(FlagValue::StringSlice(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// An integer value (0 when absent).
    pub fn int(&self, name: &str) -> i64 {
        match self.0.get(name) {
            Some(FlagValue::Int(i)) => *i,
            _ => 0,
        }
    }

    /// A boolean value (false when absent).
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(FlagValue::Bool(true)))
    }
}
