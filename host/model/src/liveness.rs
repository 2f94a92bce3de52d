use std::time::{Duration, SystemTime};

/// Neutron's `agent_down_time` default: an agent is dead when its last heartbeat is older.
pub const DEFAULT_AGENT_DOWN_TIME: Duration = Duration::from_secs(75);

/// Whether an agent whose last heartbeat was at `heartbeat` counts as alive at `now`.
pub fn agent_alive(heartbeat: SystemTime, now: SystemTime, down_time: Duration) -> bool {
    match now.duration_since(heartbeat) {
        Ok(age) => age <= down_time,
        // A heartbeat from the (slightly) future: clocks differ; it is recent.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_within_down_time_only() {
        let now = SystemTime::now();
        assert!(agent_alive(
            now - Duration::from_secs(30),
            now,
            DEFAULT_AGENT_DOWN_TIME
        ));
        assert!(agent_alive(
            now - Duration::from_secs(75),
            now,
            DEFAULT_AGENT_DOWN_TIME
        ));
        assert!(!agent_alive(
            now - Duration::from_secs(76),
            now,
            DEFAULT_AGENT_DOWN_TIME
        ));
        assert!(agent_alive(
            now + Duration::from_secs(2),
            now,
            DEFAULT_AGENT_DOWN_TIME
        ));
    }
}
