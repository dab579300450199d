//! Throttling of password guessing and reset spam, per account and per
//! client address.
//!
//! Counters live in the gateway's database (`auth_throttle`), not in memory,
//! so every replica sees the same numbers and a restart forgives nobody. Each
//! [`Limit`] is a fixed window: up to `max` attempts, then refusals until the
//! window that began with the first attempt ends. Sign-in counts failures
//! only (a success clears the account's counter); reset requests and sign-ups
//! count every request. The refusal says when to try again.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

use crate::error::Error;
use crate::store;

/// Up to `max` attempts per `window`.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub scope: &'static str,
    pub max: i32,
    pub window: Duration,
}

/// Failed sign-ins for one account (whoever tries).
pub const SIGN_IN_PER_ACCOUNT: Limit = Limit {
    scope: "sign-in:account",
    max: 5,
    window: Duration::minutes(15),
};
/// Failed sign-ins from one address (whichever account).
pub const SIGN_IN_PER_ADDRESS: Limit = Limit {
    scope: "sign-in:address",
    max: 20,
    window: Duration::minutes(15),
};
/// Reset emails asked for one address (known or not, so the limit itself
/// reveals nothing).
pub const RESET_PER_ACCOUNT: Limit = Limit {
    scope: "reset:account",
    max: 3,
    window: Duration::hours(1),
};
/// Reset requests from one client address.
pub const RESET_PER_ADDRESS: Limit = Limit {
    scope: "reset:address",
    max: 10,
    window: Duration::hours(1),
};
/// Accounts created from one client address, per hour by default
/// (`SIGN_UPS_PER_ADDRESS_PER_HOUR`; a load test raises it).
pub const fn sign_up_per_address(max: i32) -> Limit {
    Limit {
        scope: "sign-up:address",
        max,
        window: Duration::hours(1),
    }
}

/// The default of [`sign_up_per_address`].
pub const DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR: i32 = 20;

impl Limit {
    fn key(&self, subject: &str) -> String {
        format!("{}:{subject}", self.scope)
    }

    /// Refuses when `subject` has used up this limit's attempts.
    pub async fn check(
        &self,
        pool: &PgPool,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        match store::attempts(pool, &self.key(subject), now - self.window).await? {
            Some((attempts, window_start)) if attempts >= self.max => {
                Err(self.refusal(window_start, now))
            }
            _ => Ok(()),
        }
    }

    /// Counts an attempt; refuses when it is one too many.
    pub async fn count(
        &self,
        pool: &PgPool,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (attempts, window_start) =
            store::count_attempt(pool, &self.key(subject), now, now - self.window).await?;
        if attempts > self.max {
            return Err(self.refusal(window_start, now));
        }
        Ok(())
    }

    /// Forgets `subject`'s attempts.
    pub async fn clear(&self, pool: &PgPool, subject: &str) -> Result<(), Error> {
        store::clear_attempts(pool, &self.key(subject)).await
    }

    fn refusal(&self, window_start: DateTime<Utc>, now: DateTime<Utc>) -> Error {
        let retry_after = (window_start + self.window - now).num_seconds().max(1);
        let minutes = (retry_after + 59) / 60;
        let wait = if minutes == 1 {
            "a minute".to_owned()
        } else {
            format!("{minutes} minutes")
        };
        let message = if self.scope.starts_with("sign-in") {
            format!(
                "Too many failed sign-in attempts. Try again in {wait}, or reset your password."
            )
        } else if self.scope.starts_with("reset") {
            format!("Too many password reset requests. Try again in {wait}.")
        } else {
            format!("Too many accounts created from your network. Try again in {wait}.")
        };
        Error::TooManyRequests {
            message,
            retry_after_secs: retry_after as u64,
        }
    }
}
