//! The WebAssembly driver runtime: contract, loading, limits, host imports, grants.
//!
//! Its API takes and returns `neutrino_model` types. Each contract version the host runs has a
//! module (`v0_1`, for the frozen `wit/since_v0.1.0`) whose generated types never leave it.

mod adapters;
pub mod bundled;
pub mod contract;
pub mod error;
pub mod grant;
mod host_state;
pub mod inspect;
pub mod limits;
pub mod metrics;
pub mod registry;
pub mod render;
mod runtime;
mod v0_1;
pub mod validate;

pub use error::{CallError, LoadError, LoadFailure};
pub use grant::{Grant, GrantNarrowing};
pub use limits::Limits;
pub use runtime::{Driver, DriverSettings, Runtime, Session};
