//! Every SQL statement of the payments service.
//!
//! Convergence lives in the schema: one checkout per hold
//! (`checkouts.hold_id UNIQUE`), one payment per checkout
//! (`payments.checkout_id UNIQUE`), one refund per payment, one row per
//! provider event id. Writers that can race (webhook, direct check,
//! simulated page) take the checkout row `FOR UPDATE` first, so the second
//! one sees what the first did; the unique constraints are the last line of
//! defence. Functions that must share a transaction with an outbox write take
//! a `PgConnection`; the rest take the pool.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use platform::outbox::{self, OutboxEvent};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{CheckoutStatus, LineItem, PaymentsError};

/// A checkout as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Checkout {
    pub id: Uuid,
    pub hold_id: Uuid,
    pub user_id: String,
    pub user_email: String,
    pub showtime_id: Uuid,
    pub summary: String,
    pub line_items: String,
    pub provider: String,
    pub session_id: Option<String>,
    pub url: Option<String>,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub booking_reference: Option<String>,
}

impl Checkout {
    pub fn status(&self) -> CheckoutStatus {
        CheckoutStatus::parse(&self.status)
    }

    pub fn line_items(&self) -> Vec<LineItem> {
        serde_json::from_str(&self.line_items).unwrap_or_default()
    }

    pub fn is_simulated(&self) -> bool {
        self.provider == "simulated"
    }

    /// Paid, and seating has not yet reported the booking (or its loss).
    pub fn awaits_booking(&self) -> bool {
        self.status() == CheckoutStatus::Paid && self.booking_reference.is_none()
    }
}

const CHECKOUT_COLUMNS: &str = "id, hold_id, user_id, user_email, showtime_id, summary, line_items, \
     provider, session_id, url, status, amount_minor, currency, expires_at, created_at, booking_reference";

/// A checkout about to be stored.
#[derive(Clone, Debug)]
pub struct NewCheckout {
    pub id: Uuid,
    pub hold_id: Uuid,
    pub user_id: String,
    pub user_email: String,
    pub showtime_id: Uuid,
    pub summary: String,
    pub line_items: Vec<LineItem>,
    pub provider: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// A payment as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub checkout_id: Uuid,
    pub payment_intent: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
}

/// A refund as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Refund {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub checkout_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub provider_refund_id: Option<String>,
    pub failure: Option<String>,
    pub attempts: i32,
}

const REFUND_COLUMNS: &str = "id, payment_id, checkout_id, amount_minor, currency, reason, status, \
     provider_refund_id, failure, attempts";

// ---------------------------------------------------------------- checkouts

pub async fn checkout_by_hold(
    pool: &PgPool,
    hold_id: Uuid,
) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE hold_id = $1"
    ))
    .bind(hold_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn checkout_by_session(
    pool: &PgPool,
    session_id: &str,
) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE session_id = $1"
    ))
    .bind(session_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn checkout_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE booking_reference = $1"
    ))
    .bind(reference)
    .fetch_optional(pool)
    .await?)
}

/// The checkout, locked until the transaction ends: every writer that
/// changes a checkout's state takes this lock first.
pub async fn lock_checkout(
    connection: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(connection)
    .await?)
}

/// The checkout of a provider session, locked like [`lock_checkout`]: for a
/// writer that knows only the session, one round trip instead of a read
/// and then the lock.
pub async fn lock_checkout_by_session(
    connection: &mut PgConnection,
    session_id: &str,
) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE session_id = $1 FOR UPDATE"
    ))
    .bind(session_id)
    .fetch_optional(connection)
    .await?)
}

/// Stores a checkout unless the hold has one already; either way returns
/// the hold's checkout (the first one wins a race). `session` is the
/// provider session when it is known before the record exists (the
/// simulated provider's is derived from the checkout id), so the record is
/// written once instead of inserted and then updated.
pub async fn insert_checkout(
    pool: &PgPool,
    new: &NewCheckout,
    session: Option<(&str, &str)>,
) -> Result<Checkout, PaymentsError> {
    let line_items = serde_json::to_string(&new.line_items)
        .map_err(|e| PaymentsError::InvalidArgument(format!("line items: {e}")))?;
    let (session_id, url) = session.unzip();
    let inserted: Option<Checkout> = sqlx::query_as(&format!(
        "INSERT INTO checkouts (id, hold_id, user_id, user_email, showtime_id, summary, line_items, \
             provider, status, amount_minor, currency, expires_at, created_at, updated_at, session_id, url) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11, $12, $12, $13, $14) \
         ON CONFLICT (hold_id) DO NOTHING RETURNING {CHECKOUT_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.hold_id)
    .bind(&new.user_id)
    .bind(&new.user_email)
    .bind(new.showtime_id)
    .bind(&new.summary)
    .bind(line_items)
    .bind(new.provider)
    .bind(new.amount_minor)
    .bind(&new.currency)
    .bind(new.expires_at)
    .bind(new.now)
    .bind(session_id)
    .bind(url)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(checkout) => Ok(checkout),
        None => checkout_by_hold(pool, new.hold_id)
            .await?
            .ok_or_else(|| PaymentsError::not_found("checkout for hold", new.hold_id)),
    }
}

/// Records the provider's session for a checkout that has none yet; returns
/// the checkout as it now is (a concurrent caller may have set it first —
/// with the same idempotency key, so the same session).
pub async fn set_session(
    pool: &PgPool,
    id: Uuid,
    session_id: &str,
    url: &str,
) -> Result<Checkout, PaymentsError> {
    let updated: Option<Checkout> = sqlx::query_as(&format!(
        "UPDATE checkouts SET session_id = $2, url = $3, updated_at = now() \
         WHERE id = $1 AND session_id IS NULL RETURNING {CHECKOUT_COLUMNS}"
    ))
    .bind(id)
    .bind(session_id)
    .bind(url)
    .fetch_optional(pool)
    .await?;
    match updated {
        Some(checkout) => Ok(checkout),
        None => checkout_by_id(pool, id)
            .await?
            .ok_or_else(|| PaymentsError::not_found("checkout", id)),
    }
}

/// A checkout by its id.
pub async fn checkout_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Checkout>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn set_status(
    connection: &mut PgConnection,
    id: Uuid,
    status: CheckoutStatus,
    now: DateTime<Utc>,
) -> Result<(), PaymentsError> {
    sqlx::query("UPDATE checkouts SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .execute(connection)
        .await?;
    Ok(())
}

/// Remembers the bookings seating made for checkouts, in one statement for
/// a consumer's whole batch; answers the checkouts found as they now are
/// (handed to whoever waits on them). A checkout payments does not know is
/// missing from the answer.
pub async fn set_booking_references(
    connection: &mut PgConnection,
    booked: &[(Uuid, String)],
) -> Result<Vec<Checkout>, PaymentsError> {
    // Sorted, so concurrent batches take the row locks in one order.
    let mut booked: Vec<&(Uuid, String)> = booked.iter().collect();
    booked.sort_unstable();
    let (checkouts, references): (Vec<Uuid>, Vec<&str>) =
        booked.iter().map(|(c, r)| (*c, r.as_str())).unzip();
    Ok(sqlx::query_as(&format!(
        "UPDATE checkouts SET booking_reference = b.reference, updated_at = now() \
         FROM unnest($1::uuid[], $2::text[]) AS b(checkout, reference) \
         WHERE checkouts.id = b.checkout RETURNING {CHECKOUT_COLUMNS}"
    ))
    .bind(checkouts)
    .bind(references)
    .fetch_all(connection)
    .await?)
}

// ---------------------------------------------------------------- payments

/// A payment about to be recorded.
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    pub checkout_id: Uuid,
    pub payment_intent: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// "webhook", "direct" or "simulated".
    pub source: &'a str,
    pub paid_at: DateTime<Utc>,
}

/// Records the payment of a checkout, marks the checkout paid and writes
/// `completed` (its event) to the outbox, in one statement. `false` when it
/// had a payment already: then nothing changed and no event was written.
pub async fn record_payment(
    connection: &mut PgConnection,
    payment: &NewPayment<'_>,
    completed: &OutboxEvent,
) -> Result<bool, PaymentsError> {
    static RECORD: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH paid AS ( \
                 INSERT INTO payments (id, checkout_id, payment_intent, amount_minor, currency, source, paid_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (checkout_id) DO NOTHING \
                 RETURNING checkout_id), \
             announced AS ({}) \
             UPDATE checkouts SET status = $8, updated_at = $7 FROM paid \
             WHERE checkouts.id = paid.checkout_id",
            outbox::insert_event_for_each("paid", 9)
        )
    });
    let query = sqlx::query(RECORD.as_str())
        .bind(Uuid::now_v7())
        .bind(payment.checkout_id)
        .bind(payment.payment_intent)
        .bind(payment.amount_minor)
        .bind(payment.currency)
        .bind(payment.source)
        .bind(payment.paid_at)
        .bind(CheckoutStatus::Paid.as_str());
    Ok(outbox::bind_event(query, completed)
        .execute(connection)
        .await?
        .rows_affected()
        == 1)
}

pub async fn payment_for_checkout(
    connection: &mut PgConnection,
    checkout_id: Uuid,
) -> Result<Option<Payment>, PaymentsError> {
    Ok(sqlx::query_as(
        "SELECT id, checkout_id, payment_intent, amount_minor, currency FROM payments \
         WHERE checkout_id = $1",
    )
    .bind(checkout_id)
    .fetch_optional(connection)
    .await?)
}

// ---------------------------------------------------------------- provider events

/// Records a provider event with what handling it did (for operators
/// reading the table). `false` when the id was recorded before (a replay);
/// a delivery of the same event still in flight is waited for.
pub async fn record_provider_event(
    connection: &mut PgConnection,
    id: &str,
    event_type: &str,
    checkout_id: Option<Uuid>,
    outcome: &str,
) -> Result<bool, PaymentsError> {
    Ok(sqlx::query(
        "INSERT INTO provider_events (id, type, checkout_id, outcome) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(event_type)
    .bind(checkout_id)
    .bind(outcome)
    .execute(connection)
    .await?
    .rows_affected()
        == 1)
}

// ---------------------------------------------------------------- refunds

/// Asks for the full refund of a payment unless one exists; returns the
/// payment's refund either way.
pub async fn request_refund(
    connection: &mut PgConnection,
    payment: &Payment,
    reason: &str,
) -> Result<Refund, PaymentsError> {
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, checkout_id, amount_minor, currency, reason, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'requested') ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(payment.id)
    .bind(payment.checkout_id)
    .bind(payment.amount_minor)
    .bind(&payment.currency)
    .bind(reason)
    .execute(&mut *connection)
    .await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE payment_id = $1"
    ))
    .bind(payment.id)
    .fetch_one(connection)
    .await?)
}

/// A refund the worker has to send, with what the provider needs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefundToSend {
    pub id: Uuid,
    pub checkout_id: Uuid,
    pub payment_id: Uuid,
    pub amount_minor: i64,
    pub payment_intent: Option<String>,
    pub provider: String,
    pub attempts: i32,
}

/// Refunds due to be sent to the provider.
pub async fn refunds_to_send(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RefundToSend>, PaymentsError> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.checkout_id, r.payment_id, r.amount_minor, p.payment_intent, c.provider, r.attempts \
         FROM refunds r JOIN payments p ON p.id = r.payment_id JOIN checkouts c ON c.id = r.checkout_id \
         WHERE r.status = 'requested' AND r.next_attempt_at <= $1 \
         ORDER BY r.next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The provider did not answer; try again at `next_attempt_at`.
pub async fn refund_retry_later(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), PaymentsError> {
    sqlx::query(
        "UPDATE refunds SET attempts = attempts + 1, failure = $2, next_attempt_at = $3, \
             updated_at = now() WHERE id = $1 AND status = 'requested'",
    )
    .bind(id)
    .bind(error)
    .bind(next_attempt_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The refund, locked until the transaction ends.
pub async fn lock_refund(
    connection: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Refund>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(connection)
    .await?)
}

/// The refund the provider knows as `provider_refund_id`, locked.
pub async fn lock_refund_by_provider_id(
    connection: &mut PgConnection,
    provider_refund_id: &str,
) -> Result<Option<Refund>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE provider_refund_id = $1 FOR UPDATE"
    ))
    .bind(provider_refund_id)
    .fetch_optional(connection)
    .await?)
}

/// Moves a refund to `status` ("pending", "succeeded" or "failed").
pub async fn update_refund(
    connection: &mut PgConnection,
    id: Uuid,
    status: &str,
    provider_refund_id: Option<&str>,
    failure: Option<&str>,
) -> Result<(), PaymentsError> {
    sqlx::query(
        "UPDATE refunds SET status = $2, provider_refund_id = COALESCE($3, provider_refund_id), \
             failure = $4, attempts = attempts + 1, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(provider_refund_id)
    .bind(failure)
    .execute(connection)
    .await?;
    Ok(())
}

/// The refund of a payment, if one was asked for.
pub async fn refund_for_checkout(
    pool: &PgPool,
    checkout_id: Uuid,
) -> Result<Option<Refund>, PaymentsError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE checkout_id = $1"
    ))
    .bind(checkout_id)
    .fetch_optional(pool)
    .await?)
}
