//! How late the load generator itself is to wake its own tasks.
//!
//! Every latency loadgen reports runs from sending a request to reading its
//! answer in a task of loadgen's runtime. On a machine it shares with the
//! services, an answer can sit in a socket while loadgen's threads are busy
//! with other users or have no core, and that wait is counted as the
//! server's. A probe task that asks to be woken every millisecond measures
//! that wait directly: how late it wakes is roughly how late any of
//! loadgen's tasks is to read an answer at that moment. A report whose
//! slowest requests coincide with a late wake-up says the tail is, at least
//! in part, loadgen's own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the probe asks to be woken.
const TICK: Duration = Duration::from_millis(1);
/// A wake-up at least this late is counted as a stall.
pub const STALL: Duration = Duration::from_millis(10);

/// What the probe saw while it ran.
#[derive(Debug, Default, Serialize)]
pub struct Lateness {
    /// The latest wake-up, beyond the tick asked for.
    pub max_ms: f64,
    /// When it was due, from the start of the probe.
    pub max_at_ms: f64,
    /// Wake-ups at least [`STALL`] late.
    pub stalls: u64,
}

/// A running probe; [`Probe::stop`] ends it and answers what it saw.
pub struct Probe {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Lateness>,
}

impl Probe {
    /// Starts probing on the current runtime; times are from `since`.
    pub fn start(since: Instant) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(probe(since, running.clone()));
        Self { running, task }
    }

    pub async fn stop(self) -> Lateness {
        self.running.store(false, Ordering::Relaxed);
        // The probe cannot panic; if its runtime is shutting down there is
        // nothing to report.
        self.task.await.unwrap_or_default()
    }
}

async fn probe(since: Instant, running: Arc<AtomicBool>) -> Lateness {
    let mut seen = Lateness::default();
    while running.load(Ordering::Relaxed) {
        let due = Instant::now() + TICK;
        tokio::time::sleep_until(due.into()).await;
        let late = Instant::now().saturating_duration_since(due);
        let late_ms = late.as_secs_f64() * 1_000.0;
        if late_ms > seen.max_ms {
            seen.max_ms = late_ms;
            seen.max_at_ms = due.saturating_duration_since(since).as_secs_f64() * 1_000.0;
        }
        if late >= STALL {
            seen.stalls += 1;
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that blocks the runtime shows as a late wake-up at least as
    /// long as the block, placed no earlier than the block. (Only lower
    /// bounds: a slower machine can only make the probe see more, and
    /// later.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_as_a_late_wake_up_no_earlier_than_the_block() {
        let since = Instant::now();
        let probe = Probe::start(since);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let blocked_at = since.elapsed();
        // Holds the only thread of this runtime, as a busy task would.
        std::thread::sleep(Duration::from_millis(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let seen = probe.stop().await;
        assert!(seen.max_ms >= 50.0, "the block went unseen: {seen:?}");
        assert!(seen.stalls >= 1, "no stall counted: {seen:?}");
        assert!(
            seen.max_at_ms >= blocked_at.as_secs_f64() * 1_000.0 - 2.0,
            "the late wake-up is placed before the block began: {seen:?}, block at {blocked_at:?}"
        );
    }
}
