//! What the driver runtime tells operators, through the `metrics` facade: every call into a
//! driver (by driver and function), its failures by kind, the fuel it burnt and its wall time.
//! The runtime only records; whoever installs a recorder (the API server's `/metrics`) exports.
//! With no recorder installed (the agent alone, the kit, benches) every record is a no-op.
//!
//! Labels are bounded: driver names are the operator's configured drivers, functions and
//! failure kinds are the constants below. No port, network or project id is ever a label.

use std::sync::Arc;
use std::time::Duration;

use super::error::CallError;

/// Counter: calls into a driver, labels `driver`, `function`.
pub const CALLS: &str = "neutrino_driver_calls_total";
/// Counter: failed calls, labels `driver`, `function`, `kind` ([`failure_kind`]).
pub const FAILURES: &str = "neutrino_driver_call_failures_total";
/// Histogram: fuel (wasm instructions, roughly) one call consumed, labels `driver`, `function`.
pub const FUEL: &str = "neutrino_driver_call_fuel";
/// Histogram: wall time of one call in seconds (the call and the check of its answer; not
/// the making of its instance), labels `driver`, `function`.
pub const SECONDS: &str = "neutrino_driver_call_duration_seconds";

/// The bounded name of a failure's kind, as `CallError` classifies it.
pub fn failure_kind(e: &CallError) -> &'static str {
    match e {
        CallError::Driver(_) => "driver_error",
        CallError::OutOfFuel { .. } => "out_of_fuel",
        CallError::DeadlineExceeded { .. } => "deadline_exceeded",
        CallError::MemoryCap { .. } => "memory_cap",
        CallError::Trap { .. } => "trap",
        CallError::Malformed(_) => "malformed",
        CallError::OutsideGrant(_) => "outside_grant",
        CallError::Host(_) => "host",
    }
}

/// Records one call of `function` of `driver`.
pub(crate) fn call(
    driver: &Arc<str>,
    function: &'static str,
    elapsed: Duration,
    fuel: u64,
    failure: Option<&CallError>,
) {
    metrics::counter!(CALLS, "driver" => driver.clone(), "function" => function).increment(1);
    metrics::histogram!(SECONDS, "driver" => driver.clone(), "function" => function)
        .record(elapsed.as_secs_f64());
    metrics::histogram!(FUEL, "driver" => driver.clone(), "function" => function)
        .record(fuel as f64);
    if let Some(e) = failure {
        failed(driver, function, e);
    }
}

/// Records a call that failed before it ran (its instance could not be made).
pub(crate) fn failed(driver: &Arc<str>, function: &'static str, e: &CallError) {
    metrics::counter!(FAILURES, "driver" => driver.clone(), "function" => function,
        "kind" => failure_kind(e))
    .increment(1);
}

/// Help texts for the exporter.
pub fn describe() {
    metrics::describe_counter!(
        CALLS,
        "Calls into a mechanism driver, by driver and function."
    );
    metrics::describe_counter!(
        FAILURES,
        "Failed calls into a mechanism driver, by driver, function and kind (trap, \
         out_of_fuel, deadline_exceeded, memory_cap, malformed, outside_grant, driver_error, host)."
    );
    metrics::describe_histogram!(FUEL, "Fuel one driver call consumed.");
    metrics::describe_histogram!(
        SECONDS,
        metrics::Unit::Seconds,
        "Wall time of one driver call and the check of its answer."
    );
}
