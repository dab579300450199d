//! A fixed number of permits for one kind of expensive request, so that a
//! crowd of them waits its turn instead of taking every connection and every
//! core from cheaper, more urgent work.
//!
//! Used for seat-map reads, in seating (around the query, so holds keep
//! pooled connections) and in the gateway (around the whole call, so holds
//! are not queued behind a thousand maps being fetched, decoded and
//! encoded). Waiting callers are served first come, first served, and
//! counted on a gauge: a rush shows there first.

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Permits for one kind of request, with a gauge of the callers waiting.
#[derive(Clone, Debug)]
pub struct Permits {
    semaphore: Arc<Semaphore>,
    /// The gauge counting callers waiting for a permit.
    waiting: &'static str,
}

impl Permits {
    /// `permits` at once (at least one); callers waiting are counted on
    /// the gauge named `waiting`.
    pub fn new(permits: usize, waiting: &'static str) -> Self {
        // Registered at once, so the gauge is exported before the first
        // wait (adding 0 leaves another instance's count alone).
        metrics::gauge!(waiting).increment(0.0);
        Self {
            semaphore: Arc::new(Semaphore::new(permits.max(1))),
            waiting,
        }
    }

    /// Waits for a permit; the work it allows ends when it is dropped.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        let _waiting = Waiting::new(self.waiting);
        self.semaphore
            .acquire()
            .await
            .expect("a Permits semaphore is never closed")
    }
}

/// Counts a caller on the gauge while it waits, and stops counting it when
/// it gets a permit or its request is dropped.
struct Waiting(metrics::Gauge);

impl Waiting {
    fn new(name: &'static str) -> Self {
        let gauge = metrics::gauge!(name);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn callers_beyond_the_permits_wait_until_one_is_returned() {
        let permits = Permits::new(2, "bookmyseat_test_waiting");
        let first = permits.acquire().await;
        let _second = permits.acquire().await;
        let third = permits.acquire();
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "a third caller waits while two hold permits"
        );
        drop(first);
        let _third = tokio::time::timeout(std::time::Duration::from_secs(5), third)
            .await
            .expect("the third caller gets the returned permit");
    }
}
