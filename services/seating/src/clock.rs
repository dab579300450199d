//! The time seating decides expiry by, passed in rather than read ad hoc.
//!
//! Every rule that depends on time (is a hold still live, has the showtime
//! started, when does the sweeper run) asks a [`Clock`]. Production uses the
//! system clock; tests use a [`ManualClock`] they can move forward, so expiry
//! is tested without sleeping. The time is bound into the SQL as a parameter
//! (never the database's `now()`), so the store and the rules agree on one
//! instant per request. Replicas rely on NTP-synchronised clocks; a skew of
//! a second moves an expiry by a second, it never lets two holds own a seat
//! (that is the conditional update's job).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock: production.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: tests. Cheap to clone; clones
/// share the time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
