//! Every SQL statement of the notifier: the `deliveries` table.
//!
//! Each write here commits on its own (through the pool), not inside the
//! consumer's transaction: an attempt that failed must stay recorded even
//! though the consumer rolls its transaction back, and "sent" must be on disk
//! as soon as possible after the SMTP server accepted the message, to keep
//! the at-least-once window (see [`crate::events`]) as short as it can be.
//!
//! Two deliveries of one event never run at the same time: the consumer's
//! transaction holds the event's `processed_events` row, which a second
//! replica's insert waits on. The row-level rules below therefore only need
//! to be right for one writer at a time, plus a replay after the fact.

use sqlx::PgPool;
use uuid::Uuid;

/// What the notifier is about to send for one event.
#[derive(Clone, Debug)]
pub struct NewDelivery<'a> {
    pub event_id: Uuid,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
}

/// Where a delivery stood when an event (or its redelivery) arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// First time this event asks for an email.
    New,
    /// Sent before: nothing more to do.
    AlreadySent,
    /// A previous delivery of the event attempted and failed (or gave up,
    /// and an operator replays it).
    Unsent,
    /// A previous attempt started and never recorded its end: its process
    /// died between starting and recording. The SMTP server may have
    /// accepted it — the at-least-once gap.
    Interrupted,
}

/// A delivery as stored, for operators and tests.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub event_id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub transport: Option<String>,
}

/// Records that an email is due for `delivery.event_id` (or finds the
/// earlier record), says where it stood, and unless it was sent before
/// starts the first attempt of this delivery ("sending"), answering the
/// attempts so far over every delivery of the event (0 when it was sent).
///
/// One statement: the previous state comes from the statement's snapshot,
/// which is exact because only one delivery of an event runs at a time (see
/// the module comment).
pub async fn open(pool: &PgPool, delivery: &NewDelivery<'_>) -> sqlx::Result<(Opened, i32)> {
    let (previous, attempts): (Option<String>, Option<i32>) = sqlx::query_as(
        "WITH previous AS (SELECT status FROM deliveries WHERE event_id = $1), \
         started AS ( \
             INSERT INTO deliveries (event_id, kind, recipient, subject, message_id, status, attempts) \
             VALUES ($1, $2, $3, $4, $5, 'sending', 1) \
             ON CONFLICT (event_id) DO UPDATE \
                 SET status = 'sending', attempts = deliveries.attempts + 1, updated_at = now() \
                 WHERE deliveries.status <> 'sent' \
             RETURNING attempts) \
         SELECT (SELECT status FROM previous), (SELECT attempts FROM started)",
    )
    .bind(delivery.event_id)
    .bind(delivery.kind)
    .bind(delivery.recipient)
    .bind(delivery.subject)
    .bind(delivery.message_id)
    .fetch_one(pool)
    .await?;
    let opened = match previous.as_deref() {
        None => Opened::New,
        Some("sent") => Opened::AlreadySent,
        Some("sending") => Opened::Interrupted,
        Some(_) => Opened::Unsent,
    };
    Ok((opened, attempts.unwrap_or(0)))
}

/// Marks the start of a further attempt ("sending") and counts it. Returns the
/// number of attempts so far, over every delivery of the event.
pub async fn attempt_started(pool: &PgPool, event_id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = now() \
         WHERE event_id = $1 RETURNING attempts",
    )
    .bind(event_id)
    .fetch_one(pool)
    .await
}

/// Records a failed attempt: `retrying`, or `failed` when the notifier gives
/// up on it.
pub async fn attempt_failed(
    pool: &PgPool,
    event_id: Uuid,
    error: &str,
    gave_up: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = $2, last_error = $3, updated_at = now() WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(if gave_up { "failed" } else { "retrying" })
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the transport accepted the email.
pub async fn sent(pool: &PgPool, event_id: Uuid, transport: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'sent', transport = $2, last_error = NULL, \
         sent_at = now(), updated_at = now() WHERE event_id = $1",
    )
    .bind(event_id)
    .bind(transport)
    .execute(pool)
    .await?;
    Ok(())
}

/// One delivery by event id.
pub async fn delivery(pool: &PgPool, event_id: Uuid) -> sqlx::Result<Option<DeliveryRecord>> {
    sqlx::query_as(
        "SELECT event_id, kind, recipient, subject, message_id, status, attempts, last_error, \
         transport FROM deliveries WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await
}

/// How many deliveries the notifier gave up on: the figure to alert on.
pub async fn failed_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'failed'")
        .fetch_one(pool)
        .await
}
