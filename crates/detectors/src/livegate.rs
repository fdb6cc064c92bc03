//! Bulk work yields to live work.
//!
//! The engine's batcher already serves queued model requests by priority,
//! but an analysis is more than its model calls: decoding, voice activity,
//! face detection and the detectors' own signal processing run on the same
//! cores. So a bulk item starts only after a quiet moment: no live analysis
//! in flight and none ended within `quiet`. It never waits longer than
//! `max_wait` per item, so bulk work cannot starve for ever under constant
//! live traffic (it then competes as before).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live analyses in flight and when the last one ended.
#[derive(Debug)]
pub struct LiveGate {
    origin: Instant,
    inflight: AtomicUsize,
    /// Milliseconds since `origin` at which the last live analysis ended.
    last_end_ms: AtomicU64,
}

/// Held while a live analysis runs (see [`LiveGate::enter_live`]).
#[derive(Debug)]
pub struct LiveGuard(Arc<LiveGate>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let g = &self.0;
        g.last_end_ms
            .store(g.origin.elapsed().as_millis() as u64, Ordering::Release);
        g.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LiveGate {
    pub fn new() -> Arc<Self> {
        Arc::new(LiveGate {
            origin: Instant::now(),
            inflight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        })
    }

    /// Marks a live analysis as running until the guard drops.
    pub fn enter_live(self: &Arc<Self>) -> LiveGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        LiveGuard(Arc::clone(self))
    }

    /// Live analyses running now.
    pub fn live_in_flight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// How long until the gate is quiet: zero when no live analysis runs
    /// and the last one ended at least `quiet` ago.
    fn quiet_in(&self, quiet: Duration) -> Option<Duration> {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = self.last_end_ms.load(Ordering::Acquire);
        if last == 0 {
            return Some(Duration::ZERO);
        }
        let since = self
            .origin
            .elapsed()
            .saturating_sub(Duration::from_millis(last));
        Some(quiet.saturating_sub(since))
    }

    /// Waits for a quiet moment (see the module docs), at most `max_wait`;
    /// returns how long it waited.
    pub async fn wait_quiet(&self, quiet: Duration, max_wait: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let waited = start.elapsed();
            let step = match self.quiet_in(quiet) {
                Some(d) if d.is_zero() => return waited,
                Some(d) => d,
                None => quiet.max(Duration::from_millis(10)),
            };
            if waited >= max_wait {
                return waited;
            }
            // Short steps: a live request that starts meanwhile is seen soon.
            let step = step
                .min(Duration::from_millis(20))
                .min(max_wait - waited)
                .max(Duration::from_millis(1));
            tokio::time::sleep(step).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bulk_waits_for_live_work_and_a_quiet_moment_but_not_for_ever() {
        let gate = LiveGate::new();
        let quiet = Duration::from_millis(60);
        // Nothing live ever ran: no wait.
        assert!(gate.wait_quiet(quiet, Duration::from_secs(5)).await < Duration::from_millis(20));

        let guard = gate.enter_live();
        assert_eq!(gate.live_in_flight(), 1);
        let g2 = Arc::clone(&gate);
        let waiter =
            tokio::spawn(async move { g2.wait_quiet(quiet, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!waiter.is_finished(), "bulk started while live work ran");
        drop(guard);
        let waited = waiter.await.unwrap();
        // Live ended ~150 ms in; bulk waited for the quiet period after it.
        assert!(waited >= Duration::from_millis(150 + 50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        // Live work that never ends: bulk goes ahead after max_wait.
        let _stuck = gate.enter_live();
        let waited = gate.wait_quiet(quiet, Duration::from_millis(100)).await;
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(2));
    }
}
