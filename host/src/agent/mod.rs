//! The node agent: it watches the server for its own host's desired state, computes plans
//! with the same driver components the server binds with, applies them to the kernel and
//! reports ports up.

pub mod executor;
pub mod protocol;
