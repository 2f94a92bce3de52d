//! The mechanism manager: ML2 port binding over the loaded driver components.
//!
//! Drivers are asked in the configured order. A driver binds a segment (`bound`), binds a
//! segment and hands the next level new segments (`continue-with`, hierarchical binding, at most
//! [`MAX_BINDING_LEVELS`] levels), or passes with a reason. Every driver's decision and reason is
//! kept in the result, so a `binding_failed` port says why — Neutron only logs this at DEBUG.
//!
//! The segments a driver continues with are the host's, never the driver's: the network's
//! own, or dynamic segments the host issues through a [`SegmentHost`] (the store's in the
//! server, [`MemorySegments`] elsewhere). One binding's work is capped ([`BindingLimits`]:
//! decisions, levels, time) and shown in the result (`work`).

mod manager;

pub use manager::{
    BindingLimits, BindingOutcome, BindingResult, BindingWork, DriverDecision, MAX_BINDING_LEVELS,
    MechanismManager, MemorySegments, SegmentHost, Verdict, check_next_segments,
};
pub use neutrino_model::{DEFAULT_AGENT_DOWN_TIME, agent_alive};
