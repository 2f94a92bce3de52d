//! Typed errors of driver loading and driver calls.

use std::fmt;

use neutrino_model::DriverError;

/// Why a component was refused at load time. Always names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot load driver {source_name}: {cause}")]
pub struct LoadError {
    pub source_name: String,
    pub cause: LoadFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("it does not export {interface} (is it a Neutrino mechanism driver?)")]
    MissingExport { interface: String },
    #[error("it implements contract version {found}, this host supports {supported}")]
    UnsupportedVersion { found: String, supported: String },
    #[error("it imports {} which drivers may not use (allowed: logging, config and stdio)", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    #[error("describe failed: {0}")]
    Describe(CallError),
    #[error("its description is not usable: {0}")]
    BadDescription(String),
    #[error("{0}")]
    Other(String),
}

/// Why one call into a driver failed. The driver instance is discarded; the host goes on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum CallError {
    /// The driver answered with its own typed error.
    Driver(DriverError),
    /// It ran out of fuel (too many instructions for one call).
    OutOfFuel { fuel: u64 },
    /// It ran past the call's deadline.
    DeadlineExceeded { millis: u64 },
    /// It tried to grow its memory past the cap.
    MemoryCap { limit_bytes: usize },
    /// It trapped (a panic, an unreachable, a bad memory access...).
    Trap { trap: String, output: String },
    /// It answered something the contract does not allow.
    Malformed(String),
    /// Its plan touches things outside its grant; nothing of the plan ran.
    OutsideGrant(Vec<String>),
    /// The host could not run it at all (instantiation, pool exhausted...).
    Host(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Driver(e) => match e {
                DriverError::InvalidInput(m) => write!(f, "driver error: invalid input: {m}"),
                DriverError::Unsupported(m) => write!(f, "driver error: unsupported: {m}"),
                DriverError::Conflict(m) => write!(f, "driver error: conflict: {m}"),
                DriverError::RetryLater(m) => write!(f, "driver error: retry later: {m}"),
                DriverError::Internal(m) => write!(f, "driver error: internal: {m}"),
            },
            CallError::OutOfFuel { fuel } => write!(f, "ran out of fuel ({fuel} units per call)"),
            CallError::DeadlineExceeded { millis } => {
                write!(f, "ran past its deadline of {millis} ms")
            }
            CallError::MemoryCap { limit_bytes } => {
                write!(
                    f,
                    "tried to grow its memory past the cap of {limit_bytes} bytes"
                )
            }
            CallError::Trap { trap, output } if output.is_empty() => write!(f, "trapped: {trap}"),
            CallError::Trap { trap, output } => write!(f, "trapped: {trap}; it said: {output}"),
            CallError::Malformed(m) => write!(f, "malformed answer: {m}"),
            CallError::OutsideGrant(v) => write!(f, "plan outside the grant: {}", v.join("; ")),
            CallError::Host(m) => write!(f, "host could not run the driver: {m}"),
        }
    }
}

impl std::error::Error for CallError {}
