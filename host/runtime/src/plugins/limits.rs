//! Per-call resource caps for drivers.

use std::time::Duration;

use serde::Deserialize;

/// What one driver call may use. A call that passes a cap fails with a typed error; the host
/// and later calls are unaffected.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a driver instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Fuel (roughly: wasm instructions) per call.
    pub fuel: u64,
    /// Wall-clock deadline per call, enforced with epoch interruption.
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// Driver instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            fuel: 200_000_000,
            deadline: Duration::from_millis(250),
            max_instances: 64,
        }
    }
}

/// How often the epoch advances; deadlines are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

impl Limits {
    pub fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
