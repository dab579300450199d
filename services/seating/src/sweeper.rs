//! The hold sweeper: one background task that tidies expired holds.
//!
//! Correctness never waits for it — availability is computed from
//! `held_until`, so an expired hold's seats can be taken the moment it
//! expires. The sweeper marks such holds `expired`, clears their seats and
//! announces the freed seats to live pages. It sleeps until the next expiry
//! (at most `interval`, so holds created or extended by another replica are
//! noticed). Several replicas may sweep at once: each showtime's sweep is a
//! conditional update under the showtime's row lock, so the second finds
//! nothing to do.

use std::sync::Arc;
use std::time::Duration;

use platform::Shutdown;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::live::SeatNotifier;
use crate::store;

/// Showtimes swept per round; more are taken on the next round at once.
const BATCH: i64 = 100;

/// Sweeps until `shutdown` fires.
pub async fn run(
    pool: PgPool,
    clock: Arc<dyn Clock>,
    notifier: SeatNotifier,
    interval: Duration,
    shutdown: Shutdown,
) {
    while !shutdown.is_triggered() {
        let pause = match sweep_once(&pool, clock.as_ref(), &notifier).await {
            Ok(swept) if swept as i64 == BATCH => Duration::ZERO,
            Ok(_) => match store::next_expiry(&pool).await {
                Ok(Some(next)) => (next - clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .clamp(Duration::from_millis(20), interval),
                Ok(None) => interval,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the next hold expiry");
                    interval
                }
            },
            Err(error) => {
                tracing::warn!(%error, "sweeping expired holds failed; will retry");
                interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.fired() => break,
        }
    }
}

/// Expires what is due now; returns how many showtimes were looked at.
pub async fn sweep_once(
    pool: &PgPool,
    clock: &dyn Clock,
    notifier: &SeatNotifier,
) -> Result<usize, crate::domain::SeatingError> {
    let now = clock.now();
    let showtimes = store::showtimes_with_expired_holds(pool, now, BATCH).await?;
    for showtime_id in &showtimes {
        if let Some(changes) = store::expire_holds(pool, *showtime_id, now).await? {
            tracing::debug!(showtime = %showtime_id, freed = changes.seats.len(), "expired holds swept");
            notifier.publish(&changes).await;
        }
    }
    Ok(showtimes.len())
}
