//! Bookings from payments: the JetStream consumer of `payments.checkout.*`.
//!
//! - `payments.checkout.completed` turns the paid hold into a booking and
//!   publishes `bookings.confirmed` — or, when the hold was lost and a seat
//!   was taken by someone else, publishes `bookings.rejected` so payments
//!   refunds. Nobody is charged without a seat.
//! - `payments.checkout.expired` releases the hold at once.
//!
//! Each event is applied by [`platform::consumer`] inside the transaction
//! that records its id, and the events seating publishes in response go into
//! the outbox in that same transaction ([`platform::outbox::enqueue`]), so a
//! replayed event changes nothing and publishes nothing. An undecodable
//! payload or an unknown hold is a permanent failure: dead-lettered, logged,
//! and the stream moves on.
//!
//! Seat changes go out on NATS core only after the commit, from the
//! handler's [`Handler::after_commit`], together with a wake-up of the outbox
//! relay so the booking events leave at once.

use std::sync::Arc;

use platform::consumer::{ConsumerSpec, Delivery, Handler, HandlerError};
use platform::outbox::{self, OutboxEvent, RelayWaker};
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::SeatingError;
use crate::live::SeatNotifier;
use crate::store::{self, BookingOutcome, PaidCheckout, SeatChanges};

/// The durable consumer's name (also the `processed_events.consumer` key).
pub const PAYMENTS_CONSUMER: &str = "seating-payments";

/// The subjects seating reads and writes, under the deployment's prefix.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub checkout_completed: String,
    pub checkout_expired: String,
    pub booking_confirmed: String,
    pub booking_rejected: String,
    pub payments_stream: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        let streams = platform::nats::event_streams(prefix);
        Self {
            checkout_completed: platform::nats::subject(prefix, "payments.checkout.completed"),
            checkout_expired: platform::nats::subject(prefix, "payments.checkout.expired"),
            booking_confirmed: platform::nats::subject(prefix, "bookings.confirmed"),
            booking_rejected: platform::nats::subject(prefix, "bookings.rejected"),
            payments_stream: streams
                .into_iter()
                .next()
                .map(|s| s.name)
                .unwrap_or_else(|| "PAYMENTS".into()),
        }
    }

    pub fn consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(
            &self.payments_stream,
            PAYMENTS_CONSUMER,
            &[
                self.checkout_completed.clone(),
                self.checkout_expired.clone(),
            ],
        )
    }
}

/// Applies payment events; the seat changes an event made are announced
/// from `after_commit`, once the transaction has committed.
#[derive(Clone, Debug)]
pub struct PaymentsHandler {
    clock: Arc<dyn Clock>,
    subjects: Subjects,
    notifier: SeatNotifier,
    relay: RelayWaker,
}

impl PaymentsHandler {
    pub fn new(
        clock: Arc<dyn Clock>,
        subjects: Subjects,
        notifier: SeatNotifier,
        relay: RelayWaker,
    ) -> Self {
        Self {
            clock,
            subjects,
            notifier,
            relay,
        }
    }

    async fn checkout_completed(
        &self,
        connection: &mut PgConnection,
        payload: &[u8],
    ) -> Result<Option<SeatChanges>, HandlerError> {
        let event = events_pb::CheckoutCompleted::decode(payload)
            .map_err(|e| HandlerError::Permanent(format!("not a CheckoutCompleted: {e}")))?;
        let hold_id = parse_hold_id(&event.hold_id)?;
        let paid = PaidCheckout {
            checkout_id: event.checkout_id.clone(),
            hold_id,
            user_id: event.user_id.clone(),
            user_email: event.user_email.clone(),
            amount_minor: event.amount_minor,
            currency: event.currency.clone(),
        };
        let now = self.clock.now();
        match store::book_paid_hold(connection, &paid, now)
            .await
            .map_err(handler_error)?
        {
            BookingOutcome::Confirmed { booking, changes } => {
                tracing::info!(booking = %booking.id, reference = %booking.reference,
                    hold = %hold_id, checkout = %paid.checkout_id, "booking confirmed");
                let showtime = &booking.showtime;
                let confirmed = events_pb::BookingConfirmed {
                    meta: Some(meta(now)),
                    booking_id: booking.id.to_string(),
                    reference: booking.reference.clone(),
                    user_id: booking.user_id.clone(),
                    user_email: booking.user_email.clone(),
                    checkout_id: booking.checkout_id.clone(),
                    showtime_id: showtime.id.to_string(),
                    film_id: showtime.film_id.to_string(),
                    film_title: showtime.film_title.clone(),
                    cinema_name: showtime.cinema_name.clone(),
                    cinema_time_zone: showtime.cinema_time_zone.clone(),
                    screen_name: showtime.screen_name.clone(),
                    starts_at: Some(to_timestamp(showtime.starts_at)),
                    seats: booking.seats.iter().map(|(l, _)| l.clone()).collect(),
                    amount_minor: booking.amount_minor,
                    currency: booking.currency.clone(),
                    seats_offered: showtime.capacity.max(0) as u32,
                };
                enqueue(
                    connection,
                    &self.subjects.booking_confirmed,
                    "bookmyseat.events.v1.BookingConfirmed",
                    confirmed.meta.as_ref(),
                    confirmed.encode_to_vec(),
                )
                .await?;
                Ok(Some(changes))
            }
            BookingOutcome::AlreadyBooked => {
                tracing::info!(hold = %hold_id, checkout = %paid.checkout_id,
                    "checkout was already booked; nothing to do");
                Ok(None)
            }
            BookingOutcome::Rejected {
                hold,
                unavailable,
                changes,
            } => {
                tracing::warn!(hold = %hold_id, checkout = %paid.checkout_id, seats = ?unavailable,
                    "paid hold was lost; booking rejected so payments refunds");
                let rejected = events_pb::BookingRejected {
                    meta: Some(meta(now)),
                    checkout_id: paid.checkout_id.clone(),
                    hold_id: hold_id.to_string(),
                    user_id: hold.user_id.clone(),
                    user_email: paid.user_email.clone(),
                    reason: format!(
                        "the hold expired and seats {} were taken by someone else",
                        unavailable.join(", ")
                    ),
                    unavailable_seats: unavailable,
                };
                enqueue(
                    connection,
                    &self.subjects.booking_rejected,
                    "bookmyseat.events.v1.BookingRejected",
                    rejected.meta.as_ref(),
                    rejected.encode_to_vec(),
                )
                .await?;
                Ok(Some(changes))
            }
            BookingOutcome::UnknownHold => {
                Err(HandlerError::Permanent(format!("no hold {hold_id}")))
            }
        }
    }

    async fn checkout_expired(
        &self,
        connection: &mut PgConnection,
        payload: &[u8],
    ) -> Result<Option<SeatChanges>, HandlerError> {
        let event = events_pb::CheckoutExpired::decode(payload)
            .map_err(|e| HandlerError::Permanent(format!("not a CheckoutExpired: {e}")))?;
        let hold_id = parse_hold_id(&event.hold_id)?;
        match store::release_hold(connection, hold_id, None, self.clock.now()).await {
            Ok(Some(changes)) => {
                tracing::info!(hold = %hold_id, checkout = %event.checkout_id,
                    "checkout expired; hold released");
                Ok(Some(changes))
            }
            Ok(None) => Ok(None), // already ended (booked, released, expired)
            Err(error) => Err(handler_error(error)),
        }
    }
}

impl Handler for PaymentsHandler {
    /// The seats whose state the event changed, announced after the commit.
    type Committed = Option<SeatChanges>;

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<Self::Committed, HandlerError> {
        if delivery.subject == self.subjects.checkout_completed {
            self.checkout_completed(connection, delivery.payload).await
        } else if delivery.subject == self.subjects.checkout_expired {
            self.checkout_expired(connection, delivery.payload).await
        } else {
            Err(HandlerError::Permanent(format!(
                "seating does not handle {}",
                delivery.subject
            )))
        }
    }

    async fn after_commit(&self, changes: Self::Committed) {
        self.relay.wake();
        if let Some(changes) = changes {
            self.notifier.publish(&changes).await;
        }
    }
}

fn parse_hold_id(value: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(value)
        .map_err(|_| HandlerError::Permanent(format!("hold_id {value:?} is not a UUID")))
}

/// A missing hold or showtime cannot appear by retrying; a database error can
/// go away.
fn handler_error(error: SeatingError) -> HandlerError {
    match error {
        SeatingError::Database(error) => HandlerError::Transient(error.into()),
        SeatingError::NotFound { .. } => HandlerError::Permanent(error.to_string()),
        other => HandlerError::Transient(anyhow::anyhow!(other.to_string())),
    }
}

fn meta(now: chrono::DateTime<chrono::Utc>) -> events_pb::EventMeta {
    events_pb::EventMeta {
        event_id: Uuid::new_v4().to_string(),
        occurred_at: Some(to_timestamp(now)),
    }
}

async fn enqueue(
    connection: &mut PgConnection,
    subject: &str,
    event_type: &str,
    meta: Option<&events_pb::EventMeta>,
    payload: Vec<u8>,
) -> Result<(), HandlerError> {
    let id = meta
        .and_then(|m| Uuid::parse_str(&m.event_id).ok())
        .unwrap_or_else(Uuid::new_v4);
    outbox::enqueue(
        connection,
        &OutboxEvent {
            id,
            subject: subject.to_owned(),
            event_type: event_type.to_owned(),
            payload,
        },
    )
    .await?;
    Ok(())
}
