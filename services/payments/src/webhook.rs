//! Stripe's events, after the signature was verified ([`crate::signature`]):
//! parsed, stored by id, and applied — all in one transaction.
//!
//! - The event id goes into `provider_events` with its outcome, last, in the
//!   transaction that applied it; a replay finds it taken, rolls back and is
//!   acknowledged without anything done again.
//! - `checkout.session.completed` (paid → paid; unpaid → processing),
//!   `checkout.session.async_payment_succeeded` and
//!   `checkout.session.expired` apply the session through
//!   [`crate::ledger::apply_session`] (the same code as the direct check);
//!   `checkout.session.async_payment_failed` ends the checkout as failed and
//!   releases the hold.
//! - `refund.updated` / `refund.failed` finish a refund Stripe had left
//!   pending. (`charge.refunded` says the same thing less precisely and is
//!   acknowledged only.)
//! - Anything else is acknowledged and recorded as ignored.
//!
//! Metadata naming a checkout payments does not know (another environment
//! sharing the Stripe account, a deleted database) is acknowledged — Stripe
//! retrying cannot make it known — and recorded with the outcome
//! `unknown checkout`, logged as a warning; nothing else changes. A session
//! whose amount or currency disagrees with the checkout is refused: nothing
//! is recorded but the event and its outcome `refused: …`, logged as an
//! error for an operator, and acknowledged (a retry would be refused again).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::checkouts::{Checkouts, log_applied};
use crate::domain::{CheckoutStatus, PaymentsError};
use crate::ledger::{self, Applied};
use crate::refunds::refund_outcome;
use crate::store::{self, Checkout};
use crate::stripe::{Refund, Session};

/// A Stripe event as payments reads it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub object: EventObject,
}

/// The `data.object` of the event types payments handles.
#[derive(Clone, Debug)]
pub enum EventObject {
    Session(Session),
    Refund(Refund),
    Other,
}

/// Why a body is not a Stripe event payments can read (a 400).
#[derive(Debug, thiserror::Error)]
#[error("not a Stripe event: {0}")]
pub struct NotAnEvent(String);

impl Event {
    /// Parses the raw (verified) body.
    pub fn parse(body: &[u8]) -> Result<Event, NotAnEvent> {
        #[derive(Deserialize)]
        struct Raw {
            id: String,
            #[serde(rename = "type")]
            kind: String,
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            object: serde_json::Value,
        }
        let raw: Raw = serde_json::from_slice(body).map_err(|e| NotAnEvent(e.to_string()))?;
        if !raw.id.starts_with("evt_") {
            return Err(NotAnEvent("the id is not an event id".into()));
        }
        let object = if raw.kind.starts_with("checkout.session.") {
            EventObject::Session(
                serde_json::from_value(raw.data.object)
                    .map_err(|e| NotAnEvent(format!("not a checkout session: {e}")))?,
            )
        } else if raw.kind.starts_with("refund.") {
            EventObject::Refund(
                serde_json::from_value(raw.data.object)
                    .map_err(|e| NotAnEvent(format!("not a refund: {e}")))?,
            )
        } else {
            EventObject::Other
        };
        Ok(Event {
            id: raw.id,
            kind: raw.kind,
            object,
        })
    }
}

/// What became of an event, for the response and the tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Seen before: acknowledged, nothing done.
    Replay,
    /// Recorded with this outcome.
    Recorded(String),
}

/// Applies one event and records it, in one transaction.
///
/// The event id is written last, with its outcome: one statement rather than
/// an insert before the work and an update after it. A replay, even one
/// arriving while the first delivery is still being applied, finds the id
/// taken and rolls back what it did, which was nothing new: the checkout's
/// (or refund's) row lock made it wait for the first delivery and then find
/// the work done.
pub async fn handle(checkouts: &Checkouts, event: &Event) -> Result<Handled, PaymentsError> {
    let now = Utc::now();
    let mut tx = checkouts.pool().begin().await?;
    let (checkout_id, outcome, applied) = apply(checkouts, &mut tx, event, now).await?;
    if !store::record_provider_event(&mut tx, &event.id, &event.kind, checkout_id, &outcome).await?
    {
        tx.rollback().await?;
        tracing::info!(event = %event.id, kind = %event.kind, "Stripe event replayed; ignored");
        return Ok(Handled::Replay);
    }
    tx.commit().await?;
    if let Some((checkout, applied)) = applied {
        log_applied(&checkout, &applied, &event.kind);
    }
    checkouts.wake_relay();
    Ok(Handled::Recorded(outcome))
}

/// What applying an event did: the checkout it concerned, the outcome for
/// `provider_events`, and what a checkout event did to its checkout (logged
/// once the event is known not to be a replay).
type Application = (Option<Uuid>, String, Option<(Checkout, Applied)>);

/// Applies `event` inside `tx`, without recording it.
async fn apply(
    checkouts: &Checkouts,
    tx: &mut PgConnection,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Application, PaymentsError> {
    let subjects = checkouts.subjects();
    match (&event.object, event.kind.as_str()) {
        (
            EventObject::Session(session),
            kind @ ("checkout.session.completed"
            | "checkout.session.async_payment_succeeded"
            | "checkout.session.async_payment_failed"
            | "checkout.session.expired"),
        ) => {
            let checkout = match checkout_id_of(session) {
                Some(checkout_id) => store::lock_checkout(&mut *tx, checkout_id).await?,
                None => None,
            };
            let Some(checkout) = checkout else {
                tracing::warn!(event = %event.id, session = %session.id,
                    "Stripe event names no checkout of ours; acknowledged, nothing changed");
                return Ok((None, "unknown checkout".into(), None));
            };
            let applied = if kind == "checkout.session.async_payment_failed" {
                ledger::end_checkout(tx, subjects, &checkout, CheckoutStatus::Failed, now).await?
            } else {
                ledger::apply_session(tx, subjects, &checkout, session, "webhook", now).await?
            };
            Ok((
                Some(checkout.id),
                applied.outcome(),
                Some((checkout, applied)),
            ))
        }
        (EventObject::Refund(refund), "refund.updated" | "refund.failed") => {
            let ours = refund
                .metadata
                .get("refund_id")
                .and_then(|id| Uuid::parse_str(id).ok());
            let locked = match ours {
                Some(id) => store::lock_refund(&mut *tx, id).await?,
                None => None,
            };
            let locked = match locked {
                Some(found) => Some(found),
                None => store::lock_refund_by_provider_id(&mut *tx, &refund.id).await?,
            };
            let Some(ours) = locked else {
                tracing::warn!(event = %event.id, refund = %refund.id, "update for an unknown refund; acknowledged");
                return Ok((None, "unknown refund".into(), None));
            };
            let changed = ledger::settle_refund(
                tx,
                subjects,
                &ours,
                &refund_outcome(refund),
                Some(&refund.id),
                now,
            )
            .await?;
            tracing::info!(event = %event.id, refund = %ours.id, status = %refund.status, changed,
                "refund update applied");
            Ok((
                Some(ours.checkout_id),
                format!("refund {}", refund.status),
                None,
            ))
        }
        _ => Ok((None, "ignored".into(), None)),
    }
}

/// Our checkout id: the metadata we set, else `client_reference_id`.
fn checkout_id_of(session: &Session) -> Option<Uuid> {
    session
        .metadata
        .get("checkout_id")
        .or(session.client_reference_id.as_ref())
        .and_then(|id| Uuid::parse_str(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_stripe_events_are_refused() {
        assert!(Event::parse(b"hello").is_err());
        assert!(Event::parse(br#"{"id":"x","type":"a","data":{"object":{}}}"#).is_err());
        assert!(
            Event::parse(
                br#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{}}}"#
            )
            .is_err()
        );
        let other =
            Event::parse(br#"{"id":"evt_1","type":"customer.created","data":{"object":{}}}"#)
                .unwrap();
        assert!(matches!(other.object, EventObject::Other));
    }
}
