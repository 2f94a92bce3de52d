//! The WebAssembly driver runtime: contract, loading, limits, host imports, grants.

pub mod bindings;
pub mod bundled;
pub mod contract;
pub mod error;
pub mod grant;
mod host_state;
pub mod limits;
pub mod registry;
pub mod render;
mod runtime;
pub mod validate;

pub use error::{CallError, LoadError, LoadFailure};
pub use grant::{Grant, GrantNarrowing};
pub use limits::Limits;
pub use runtime::{Driver, DriverSettings, Runtime, Session};
