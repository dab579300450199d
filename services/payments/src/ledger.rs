//! The checkout's state machine, shared by every way news of a payment
//! arrives: the Stripe webhook, the direct check from the success page, and
//! the simulated provider's Pay and Cancel buttons. One code path, so the
//! three converge on one outcome.
//!
//! Every function runs inside the caller's transaction, on a checkout the
//! caller has locked (`store::lock_checkout`), and writes the event it causes
//! to the outbox in that same transaction:
//!
//! - [`mark_paid`] records the payment (`payments.checkout_id` is unique, so a
//!   second recorder finds it done) and enqueues `payments.checkout.completed`
//!   — exactly once per checkout, because the event is written by the same
//!   statement as the payment, for the row that insert created.
//! - [`end_checkout`] (expired, or an async payment that failed) enqueues
//!   `payments.checkout.expired`, which makes seating release the hold.
//! - [`settle_refund`] enqueues `payments.refund.succeeded` / `.failed`.
//!
//! Amount and currency are checked against the checkout before anything is
//! recorded: a payment that disagrees is refused (and logged by the caller).

use chrono::{DateTime, Utc};
use platform::outbox::OutboxEvent;
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{CheckoutStatus, PaymentsError};
use crate::events::Subjects;
use crate::store::{self, Checkout, Refund};
use crate::stripe::Session;

/// What a piece of payment news did to a checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The payment was recorded now; `checkout.completed` is in the outbox.
    Paid,
    /// The checkout had its payment already (a replay, or the other path won).
    AlreadyPaid,
    /// Completed at the provider, money not yet arrived.
    Processing,
    /// The checkout ended without payment; `checkout.expired` is in the outbox.
    Ended,
    /// Nothing to do in the checkout's state.
    Unchanged,
    /// The news disagrees with the checkout (amount, currency, session); nothing
    /// was recorded.
    Refused(String),
}

impl Applied {
    /// A short word for `provider_events.outcome` and logs.
    pub fn outcome(&self) -> String {
        match self {
            Applied::Paid => "paid".into(),
            Applied::AlreadyPaid => "already paid".into(),
            Applied::Processing => "processing".into(),
            Applied::Ended => "ended".into(),
            Applied::Unchanged => "unchanged".into(),
            Applied::Refused(why) => format!("refused: {why}"),
        }
    }
}

/// Evidence of a payment.
#[derive(Clone, Debug)]
pub struct Paid<'a> {
    pub payment_intent: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// "webhook", "direct" or "simulated".
    pub source: &'static str,
}

/// Records the payment and announces the completed checkout, once.
pub async fn mark_paid(
    connection: &mut PgConnection,
    subjects: &Subjects,
    checkout: &Checkout,
    paid: &Paid<'_>,
    now: DateTime<Utc>,
) -> Result<Applied, PaymentsError> {
    if paid.amount_minor != checkout.amount_minor
        || !paid.currency.eq_ignore_ascii_case(&checkout.currency)
    {
        return Ok(Applied::Refused(format!(
            "paid {} {} but the checkout is for {} {}",
            paid.amount_minor, paid.currency, checkout.amount_minor, checkout.currency
        )));
    }
    // A payment for a checkout that had already expired still completes it:
    // seating books the seats if they are free and rejects otherwise, which
    // refunds. Nobody is charged without a seat either way.
    let event = events_pb::CheckoutCompleted {
        meta: Some(meta(now)),
        checkout_id: checkout.id.to_string(),
        hold_id: checkout.hold_id.to_string(),
        user_id: checkout.user_id.clone(),
        user_email: checkout.user_email.clone(),
        amount_minor: checkout.amount_minor,
        currency: checkout.currency.clone(),
        showtime_id: checkout.showtime_id.to_string(),
    };
    let completed = outbox_event(
        &subjects.checkout_completed,
        "bookmyseat.events.v1.CheckoutCompleted",
        event.meta.as_ref(),
        event.encode_to_vec(),
    );
    // The payment, the status and the event in one statement: the payment's
    // unique checkout id decides, so a second payment changes nothing and
    // announces nothing.
    let payment = store::NewPayment {
        checkout_id: checkout.id,
        payment_intent: paid.payment_intent,
        amount_minor: paid.amount_minor,
        currency: &checkout.currency,
        source: paid.source,
        paid_at: now,
    };
    let recorded = store::record_payment(connection, &payment, &completed).await?;
    if !recorded {
        return Ok(Applied::AlreadyPaid);
    }
    metrics::counter!("bookmyseat_payments_total", "outcome" => "paid").increment(1);
    Ok(Applied::Paid)
}

/// Completed at the provider, waiting for the money (bank debits).
pub async fn mark_processing(
    connection: &mut PgConnection,
    checkout: &Checkout,
    now: DateTime<Utc>,
) -> Result<Applied, PaymentsError> {
    if checkout.status() != CheckoutStatus::Open {
        return Ok(Applied::Unchanged);
    }
    store::set_status(connection, checkout.id, CheckoutStatus::Processing, now).await?;
    Ok(Applied::Processing)
}

/// Ends a checkout that is still waiting for money (`Expired` or `Failed`)
/// and tells seating to release the hold.
pub async fn end_checkout(
    connection: &mut PgConnection,
    subjects: &Subjects,
    checkout: &Checkout,
    status: CheckoutStatus,
    now: DateTime<Utc>,
) -> Result<Applied, PaymentsError> {
    if !checkout.status().awaiting_payment() {
        return Ok(Applied::Unchanged);
    }
    store::set_status(connection, checkout.id, status, now).await?;
    let event = events_pb::CheckoutExpired {
        meta: Some(meta(now)),
        checkout_id: checkout.id.to_string(),
        hold_id: checkout.hold_id.to_string(),
        user_id: checkout.user_id.clone(),
        showtime_id: checkout.showtime_id.to_string(),
    };
    enqueue(
        connection,
        &subjects.checkout_expired,
        "bookmyseat.events.v1.CheckoutExpired",
        event.meta.as_ref(),
        event.encode_to_vec(),
    )
    .await?;
    Ok(Applied::Ended)
}

/// Applies what Stripe says about a session (from a webhook's
/// `checkout.session.completed` / `async_payment_succeeded` /
/// `expired`, or from a direct retrieve).
pub async fn apply_session(
    connection: &mut PgConnection,
    subjects: &Subjects,
    checkout: &Checkout,
    session: &Session,
    source: &'static str,
    now: DateTime<Utc>,
) -> Result<Applied, PaymentsError> {
    if checkout
        .session_id
        .as_deref()
        .is_some_and(|known| known != session.id)
    {
        return Ok(Applied::Refused(format!(
            "session {} is not the checkout's session",
            session.id
        )));
    }
    match (session.payment_status.as_str(), session.status.as_deref()) {
        ("paid" | "no_payment_required", _) => {
            let (Some(amount), Some(currency)) =
                (session.amount_total, session.currency.as_deref())
            else {
                return Ok(Applied::Refused(
                    "the session carries no amount or currency".into(),
                ));
            };
            let paid = Paid {
                payment_intent: session.payment_intent.as_deref(),
                amount_minor: amount,
                currency,
                source,
            };
            mark_paid(connection, subjects, checkout, &paid, now).await
        }
        (_, Some("expired")) => {
            end_checkout(connection, subjects, checkout, CheckoutStatus::Expired, now).await
        }
        (_, Some("complete")) => mark_processing(connection, checkout, now).await,
        _ => Ok(Applied::Unchanged),
    }
}

/// How a refund ended at the provider.
#[derive(Clone, Debug)]
pub enum RefundOutcome {
    /// Accepted; the outcome follows later (`refund.updated`).
    Pending,
    Succeeded,
    Failed(String),
}

/// Moves a (locked) refund to its outcome and announces a final one.
/// `false` when the refund had already ended.
pub async fn settle_refund(
    connection: &mut PgConnection,
    subjects: &Subjects,
    refund: &Refund,
    outcome: &RefundOutcome,
    provider_refund_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, PaymentsError> {
    if matches!(refund.status.as_str(), "succeeded" | "failed") {
        return Ok(false);
    }
    let checkout = store::lock_checkout(connection, refund.checkout_id)
        .await?
        .ok_or_else(|| PaymentsError::not_found("checkout", refund.checkout_id))?;
    match outcome {
        RefundOutcome::Pending => {
            store::update_refund(connection, refund.id, "pending", provider_refund_id, None)
                .await?;
        }
        RefundOutcome::Succeeded => {
            store::update_refund(connection, refund.id, "succeeded", provider_refund_id, None)
                .await?;
            store::set_status(connection, checkout.id, CheckoutStatus::Refunded, now).await?;
            let event = events_pb::RefundSucceeded {
                meta: Some(meta(now)),
                refund_id: refund.id.to_string(),
                checkout_id: checkout.id.to_string(),
                booking_reference: checkout.booking_reference.clone().unwrap_or_default(),
                user_id: checkout.user_id.clone(),
                user_email: checkout.user_email.clone(),
                amount_minor: refund.amount_minor,
                currency: refund.currency.clone(),
                reason: refund.reason.clone(),
            };
            enqueue(
                connection,
                &subjects.refund_succeeded,
                "bookmyseat.events.v1.RefundSucceeded",
                event.meta.as_ref(),
                event.encode_to_vec(),
            )
            .await?;
            metrics::counter!("bookmyseat_refunds_total", "outcome" => "succeeded").increment(1);
        }
        RefundOutcome::Failed(why) => {
            store::update_refund(
                connection,
                refund.id,
                "failed",
                provider_refund_id,
                Some(why),
            )
            .await?;
            let event = events_pb::RefundFailed {
                meta: Some(meta(now)),
                refund_id: refund.id.to_string(),
                checkout_id: checkout.id.to_string(),
                reason: why.clone(),
                booking_reference: checkout.booking_reference.clone().unwrap_or_default(),
                user_id: checkout.user_id.clone(),
                amount_minor: refund.amount_minor,
                currency: refund.currency.clone(),
            };
            enqueue(
                connection,
                &subjects.refund_failed,
                "bookmyseat.events.v1.RefundFailed",
                event.meta.as_ref(),
                event.encode_to_vec(),
            )
            .await?;
            metrics::counter!("bookmyseat_refunds_total", "outcome" => "failed").increment(1);
        }
    }
    Ok(true)
}

fn meta(now: DateTime<Utc>) -> events_pb::EventMeta {
    events_pb::EventMeta {
        event_id: Uuid::new_v4().to_string(),
        occurred_at: Some(to_timestamp(now)),
    }
}

/// The outbox row for an event whose id is its `meta`'s.
fn outbox_event(
    subject: &str,
    event_type: &str,
    meta: Option<&events_pb::EventMeta>,
    payload: Vec<u8>,
) -> OutboxEvent {
    let event_id = meta.map(|m| m.event_id.as_str()).unwrap_or_default();
    OutboxEvent::new(event_id, subject, event_type, payload)
}

async fn enqueue(
    connection: &mut PgConnection,
    subject: &str,
    event_type: &str,
    meta: Option<&events_pb::EventMeta>,
    payload: Vec<u8>,
) -> Result<(), PaymentsError> {
    let event = outbox_event(subject, event_type, meta, payload);
    platform::outbox::enqueue(connection, &event).await?;
    Ok(())
}
