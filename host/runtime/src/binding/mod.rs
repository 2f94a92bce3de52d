//! The mechanism manager: ML2 port binding over the loaded driver components.
//!
//! Drivers are asked in the configured order. A driver binds a segment (`bound`), binds a
//! segment and hands the next level new segments (`continue-with`, hierarchical binding, at most
//! [`MAX_BINDING_LEVELS`] levels), or passes with a reason. Every driver's decision and reason is
//! kept in the result, so a `binding_failed` port says why — Neutron only logs this at DEBUG.

mod manager;

pub use manager::{
    BindingOutcome, BindingResult, DriverDecision, MAX_BINDING_LEVELS, MechanismManager, Verdict,
};
pub use neutrino_model::{DEFAULT_AGENT_DOWN_TIME, agent_alive};
