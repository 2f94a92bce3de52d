//! Neutron's DB retry: a write transaction that failed on a conflict with a concurrent one (a
//! deadlock, a serialization failure, a row another transaction deleted under it) runs again,
//! whole, a few times with a jittered backoff, instead of reaching the client as a 500. Run
//! again, it reads what the other transaction committed and answers as Neutron does
//! (`NetworkInUse`, `NetworkNotFound`, ...).

use std::future::Future;
use std::time::Duration;

use crate::error::CoreResult;

/// Runs of one write at most (Neutron's `MAX_RETRIES` is 20 with a 0.5 s cap; writes here are
/// short, so fewer and shorter waits do).
pub const TRIES: u32 = 8;

/// Runs `write` (a whole transaction: begin, work, commit) again while it fails on a conflict
/// with a concurrent transaction, up to [`TRIES`] runs; answers its last result.
pub async fn retrying<T, F, Fut>(what: &str, mut write: F) -> CoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CoreResult<T>>,
{
    let mut run = 1;
    loop {
        match write().await {
            Err(e) if e.again && run < TRIES => {
                tracing::debug!("{what}: run {run} conflicted ({e}); running it again");
                tokio::time::sleep(backoff(run)).await;
                run += 1;
            }
            Err(e) if e.again => {
                tracing::warn!("{what}: still conflicting after {run} runs: {e}");
                return Err(e);
            }
            other => return other,
        }
    }
}

/// A random wait in [0, 5 ms * 2^run], at most 320 ms: transactions that deadlocked together
/// do not meet again at once.
pub fn backoff(run: u32) -> Duration {
    let cap_ms = 5u64 << run.min(6);
    let micros = random_below(cap_ms * 1000);
    Duration::from_micros(micros)
}

/// A random number below `n` (0 for 0), from the standard library's randomly keyed hasher.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    if n == 0 {
        return 0;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NeutronError;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn conflicts_run_again_other_errors_do_not() {
        let runs = AtomicU32::new(0);
        let r = retrying("t", || async {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(NeutronError {
                    again: true,
                    ..NeutronError::invalid_input("x")
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        runs.store(0, Ordering::SeqCst);
        let r: CoreResult<()> = retrying("t", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(NeutronError::invalid_input("x"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        runs.store(0, Ordering::SeqCst);
        let r: CoreResult<()> = retrying("t", || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(NeutronError {
                again: true,
                ..NeutronError::invalid_input("x")
            })
        })
        .await;
        assert!(r.unwrap_err().again);
        assert_eq!(runs.load(Ordering::SeqCst), TRIES);
        for run in 1..20 {
            assert!(backoff(run) <= Duration::from_millis(320));
        }
    }
}
