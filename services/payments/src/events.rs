//! Payments' events: the subjects it publishes (through the outbox, see
//! [`crate::ledger`]) and the JetStream consumer of `bookings.*`.
//!
//! - `bookings.confirmed` tells payments the booking reference of a paid
//!   checkout. Payments keeps it on the checkout, so `GetCheckout` can show
//!   it and staff can refund by reference (`RefundBooking`).
//! - `bookings.rejected` means the buyer paid but the seats were lost:
//!   payments asks for a refund of the payment in the same transaction that
//!   records the event; the refund worker ([`crate::refunds`]) sends it to
//!   Stripe and publishes the outcome.
//!
//! Both are applied by [`platform::consumer`] inside the transaction that
//! records the event id, so a redelivery changes nothing. A booking for a
//! checkout payments does not know, or a rejection without a payment, cannot
//! be fixed by retrying: dead-lettered and logged.

use std::sync::Arc;

use platform::consumer::{self, ConsumerSpec, Delivery, Handler, HandlerError};
use prost::Message as _;
use proto::events::v1 as events_pb;
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::PaymentsError;
use crate::store::{self, Checkout};
use crate::waiters::BookingWaiters;

/// The durable consumer's name (also the `processed_events.consumer` key).
pub const BOOKINGS_CONSUMER: &str = "payments-bookings";

/// The subjects payments reads and writes, under the deployment's prefix.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub checkout_completed: String,
    pub checkout_expired: String,
    pub refund_succeeded: String,
    pub refund_failed: String,
    pub booking_confirmed: String,
    pub booking_rejected: String,
    pub bookings_stream: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        let subject = |s: &str| platform::nats::subject(prefix, s);
        Self {
            checkout_completed: subject("payments.checkout.completed"),
            checkout_expired: subject("payments.checkout.expired"),
            refund_succeeded: subject("payments.refund.succeeded"),
            refund_failed: subject("payments.refund.failed"),
            booking_confirmed: subject("bookings.confirmed"),
            booking_rejected: subject("bookings.rejected"),
            bookings_stream: platform::nats::event_streams(prefix)
                .into_iter()
                .find(|s| s.name.ends_with("BOOKINGS"))
                .map(|s| s.name)
                .unwrap_or_else(|| "BOOKINGS".into()),
        }
    }

    /// Booking events of different checkouts are independent (each locks
    /// its own checkout row), so several are handled at once, and those
    /// already at hand share a transaction (one commit, one statement for
    /// their event ids); the pool of 8 keeps room for webhooks.
    pub fn consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(
            &self.bookings_stream,
            BOOKINGS_CONSUMER,
            &[
                self.booking_confirmed.clone(),
                self.booking_rejected.clone(),
            ],
        )
        .concurrent(4)
        .batched(16)
    }
}

/// Applies booking events; after the commit, wakes whoever waits on the
/// booked checkout, or the refund worker when a refund was asked for.
#[derive(Clone, Debug)]
pub struct BookingsHandler {
    subjects: Subjects,
    refunds: Arc<Notify>,
    waiters: BookingWaiters,
}

/// What a booking event changed, for the wake-ups after the commit.
#[derive(Clone, Debug)]
pub enum BookingOutcome {
    /// The booked checkout, handed to whoever waits on its session.
    Booked(Box<Checkout>),
    RefundRequested,
}

impl BookingsHandler {
    pub fn new(subjects: Subjects, refunds: Arc<Notify>, waiters: BookingWaiters) -> Self {
        Self {
            subjects,
            refunds,
            waiters,
        }
    }

    /// Records the bookings seating made for `booked` (checkout, reference)
    /// in one statement. A checkout payments does not know fails the lot.
    async fn confirmed(
        &self,
        connection: &mut PgConnection,
        booked: &[(Uuid, String)],
    ) -> Result<Vec<BookingOutcome>, HandlerError> {
        let checkouts = store::set_booking_references(connection, booked)
            .await
            .map_err(handler_error)?;
        if checkouts.len() != booked.len() {
            let known: Vec<Uuid> = checkouts.iter().map(|c| c.id).collect();
            let unknown: Vec<String> = booked
                .iter()
                .filter(|(checkout, _)| !known.contains(checkout))
                .map(|(checkout, reference)| format!("{reference} (checkout {checkout})"))
                .collect();
            return Err(HandlerError::Permanent(format!(
                "bookings for checkouts payments does not know: {}",
                unknown.join(", ")
            )));
        }
        Ok(checkouts
            .into_iter()
            .map(|checkout| {
                tracing::info!(checkout = %checkout.id,
                    reference = checkout.booking_reference.as_deref().unwrap_or_default(),
                    "booking confirmed");
                BookingOutcome::Booked(Box::new(checkout))
            })
            .collect())
    }

    async fn rejected(
        &self,
        connection: &mut PgConnection,
        payload: &[u8],
    ) -> Result<BookingOutcome, HandlerError> {
        let event = events_pb::BookingRejected::decode(payload)
            .map_err(|e| HandlerError::Permanent(format!("not a BookingRejected: {e}")))?;
        let checkout_id = parse_checkout_id(&event.checkout_id)?;
        let Some(_checkout) = store::lock_checkout(connection, checkout_id)
            .await
            .map_err(handler_error)?
        else {
            return Err(HandlerError::Permanent(format!(
                "rejected booking for checkout {checkout_id}, which payments does not know"
            )));
        };
        let Some(payment) = store::payment_for_checkout(connection, checkout_id)
            .await
            .map_err(handler_error)?
        else {
            return Err(HandlerError::Permanent(format!(
                "rejected booking for checkout {checkout_id}, which has no payment to refund"
            )));
        };
        let reason = if event.reason.is_empty() {
            "the seats were no longer available".to_owned()
        } else {
            event.reason.clone()
        };
        let refund = store::request_refund(connection, &payment, &reason)
            .await
            .map_err(handler_error)?;
        tracing::warn!(checkout = %checkout_id, refund = %refund.id,
            "booking rejected after payment; refund requested");
        Ok(BookingOutcome::RefundRequested)
    }
}

impl Handler for BookingsHandler {
    type Committed = BookingOutcome;

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<Self::Committed, HandlerError> {
        if delivery.subject == self.subjects.booking_confirmed {
            let booked = [booked(delivery.payload)?];
            let mut outcomes = self.confirmed(connection, &booked).await?;
            outcomes
                .pop()
                .ok_or_else(|| HandlerError::Transient(anyhow::anyhow!("no outcome")))
        } else if delivery.subject == self.subjects.booking_rejected {
            self.rejected(connection, delivery.payload).await
        } else {
            Err(HandlerError::Permanent(format!(
                "payments does not handle {}",
                delivery.subject
            )))
        }
    }

    /// A batch of confirmations, the common case, records every reference
    /// with one statement; a batch holding anything else is applied event
    /// by event. A confirmation that does not decode or names a checkout
    /// payments does not know fails the batch, which is then handled event
    /// by event and dead-letters only that one.
    async fn handle_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> Result<Vec<Self::Committed>, HandlerError> {
        if deliveries
            .iter()
            .any(|delivery| delivery.subject != self.subjects.booking_confirmed)
        {
            return consumer::handle_each(self, connection, deliveries).await;
        }
        let booked = deliveries
            .iter()
            .map(|delivery| booked(delivery.payload))
            .collect::<Result<Vec<_>, HandlerError>>()?;
        self.confirmed(connection, &booked).await
    }

    async fn after_commit(&self, outcome: BookingOutcome) {
        match outcome {
            BookingOutcome::Booked(checkout) => self.waiters.wake(*checkout),
            BookingOutcome::RefundRequested => self.refunds.notify_one(),
        }
    }
}

/// The checkout and booking reference a `bookings.confirmed` names.
fn booked(payload: &[u8]) -> Result<(Uuid, String), HandlerError> {
    let event = events_pb::BookingConfirmed::decode(payload)
        .map_err(|e| HandlerError::Permanent(format!("not a BookingConfirmed: {e}")))?;
    Ok((parse_checkout_id(&event.checkout_id)?, event.reference))
}

fn parse_checkout_id(value: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(value)
        .map_err(|_| HandlerError::Permanent(format!("checkout_id {value:?} is not a UUID")))
}

fn handler_error(error: PaymentsError) -> HandlerError {
    match error {
        PaymentsError::Database(error) => HandlerError::Transient(error.into()),
        PaymentsError::NotFound { .. } => HandlerError::Permanent(error.to_string()),
        other => HandlerError::Transient(anyhow::anyhow!(other.to_string())),
    }
}
