//! Bookings from payments: the JetStream consumers of `payments.checkout.*`
//! and `payments.refund.succeeded`.
//!
//! - `payments.checkout.completed` turns the paid hold into a booking and
//!   publishes `bookings.confirmed` — or, when the hold was lost and a seat
//!   was taken by someone else, publishes `bookings.rejected` so payments
//!   refunds. Nobody is charged without a seat.
//! - `payments.checkout.expired` releases the hold at once.
//! - `payments.refund.succeeded` marks the refunded booking `refunded` and
//!   puts its seats back on sale ([`RefundsHandler`]). A refund of a checkout
//!   that never became a booking (seating rejected it) names no booking and
//!   changes nothing.
//!
//! Refunds have a durable consumer of their own (`seating-refunds`) rather
//! than a third subject on `seating-payments`: platform's consumer binds to
//! an existing durable consumer as it is, so a new filter would not reach a
//! running server; a changed filter would also hand refund events to
//! replicas of the previous release, still bound to that consumer, which
//! would dead-letter them during a rolling upgrade. A new consumer starts at
//! the beginning of the stream, so refunds made before the upgrade free
//! their seats too (each once: replays are absorbed as usual).
//!
//! Each event is applied by [`platform::consumer`] inside the transaction
//! that records its id, and the events seating publishes in response go into
//! the outbox in that same transaction ([`platform::outbox::enqueue`]), so a
//! replayed event changes nothing and publishes nothing. An undecodable
//! payload, an unknown hold, or a refund naming a booking seating does not
//! have is a permanent failure: dead-lettered (once per event, acknowledged
//! at once), logged, and the stream moves on. Payments only learns a
//! reference from `bookings.confirmed`, so an unknown one means the two
//! databases disagree — an operator has to look, and the dead letter keeps
//! the event for that.
//!
//! Each consumer applies only its own subjects and acknowledges any other
//! payments event with no effect ([`not_ours`]): a server that ignores the
//! consumer's filter (NATS before 2.10) delivers the whole stream to both.
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
use tracing::Instrument as _;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::SeatingError;
use crate::live::SeatNotifier;
use crate::store::{self, BookingOutcome, PaidCheckout, RefundOutcome, SeatChanges};

/// The durable consumer of checkout events (also its
/// `processed_events.consumer` key).
pub const PAYMENTS_CONSUMER: &str = "seating-payments";

/// The durable consumer of refund events (see the module comment for why it
/// is not `seating-payments`).
pub const REFUNDS_CONSUMER: &str = "seating-refunds";

/// The subjects seating reads and writes, under the deployment's prefix.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub checkout_completed: String,
    pub checkout_expired: String,
    pub refund_succeeded: String,
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
            refund_succeeded: platform::nats::subject(prefix, "payments.refund.succeeded"),
            booking_confirmed: platform::nats::subject(prefix, "bookings.confirmed"),
            booking_rejected: platform::nats::subject(prefix, "bookings.rejected"),
            payments_stream: streams
                .into_iter()
                .next()
                .map(|s| s.name)
                .unwrap_or_else(|| "PAYMENTS".into()),
        }
    }

    /// The checkout events' consumer. Events of different checkouts are
    /// independent, and those touching one showtime queue on its row lock,
    /// so several are handled at once: the paid-to-booked path is mostly
    /// waiting on the database. The events at hand are applied in one
    /// transaction (a commit and a dedupe statement for the lot), their
    /// showtimes locked in one order ([`PaymentsHandler::handle_batch`]).
    pub fn consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(
            &self.payments_stream,
            PAYMENTS_CONSUMER,
            &[
                self.checkout_completed.clone(),
                self.checkout_expired.clone(),
            ],
        )
        .concurrent(6)
        .batched(8)
    }

    /// The refund events' consumer.
    pub fn refunds_consumer_spec(&self) -> ConsumerSpec {
        ConsumerSpec::new(
            &self.payments_stream,
            REFUNDS_CONSUMER,
            std::slice::from_ref(&self.refund_succeeded),
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

/// What applying a checkout event did: the seat changes to announce after
/// the commit, and the event for the outbox.
type Applied = (Option<SeatChanges>, Option<outbox::Pending>);

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
    ) -> Result<Applied, HandlerError> {
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
                // Counted as the transaction's work; a rollback after this
                // (rare) overcounts by one, and the redelivery counts again.
                metrics::counter!("bookmyseat_bookings_total", "outcome" => "confirmed")
                    .increment(1);
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
                let announced = announce(
                    &self.subjects.booking_confirmed,
                    "bookmyseat.events.v1.BookingConfirmed",
                    confirmed.meta.as_ref(),
                    confirmed.encode_to_vec(),
                );
                Ok((Some(changes), Some(announced)))
            }
            BookingOutcome::AlreadyBooked => {
                tracing::info!(hold = %hold_id, checkout = %paid.checkout_id,
                    "checkout was already booked; nothing to do");
                Ok((None, None))
            }
            BookingOutcome::Rejected {
                hold,
                unavailable,
                changes,
            } => {
                metrics::counter!("bookmyseat_bookings_total", "outcome" => "rejected")
                    .increment(1);
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
                let announced = announce(
                    &self.subjects.booking_rejected,
                    "bookmyseat.events.v1.BookingRejected",
                    rejected.meta.as_ref(),
                    rejected.encode_to_vec(),
                );
                Ok((Some(changes), Some(announced)))
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
        let (changes, announced) = self.apply(connection, delivery).await?;
        outbox::enqueue_all(connection, announced.as_slice()).await?;
        Ok(changes)
    }

    /// Applies the batch one event at a time, ordered by showtime, then
    /// writes the events they announce in one statement. Each booking or
    /// release locks its showtime's row until the batch commits; batches
    /// running side by side that took their locks in arrival order could
    /// each wait for the other's (a deadlock PostgreSQL breaks after a
    /// second by failing one, which is then retried event by event). In one
    /// order they only queue. The order comes from the events'
    /// `showtime_id`; an event without one (an older producer) sorts first
    /// and merely risks that retry.
    async fn handle_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> Result<Vec<Self::Committed>, HandlerError> {
        let mut keyed: Vec<(String, &'a Delivery<'a>)> = deliveries
            .iter()
            .map(|delivery| (self.showtime_of(delivery), delivery))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut committed = Vec::with_capacity(keyed.len());
        let mut announced = Vec::with_capacity(keyed.len());
        for (_, delivery) in keyed {
            let (changes, event) = self
                .apply(&mut *connection, delivery)
                .instrument(delivery.span.clone())
                .await?;
            committed.push(changes);
            announced.extend(event);
        }
        outbox::enqueue_all(connection, &announced).await?;
        Ok(committed)
    }

    async fn after_commit(&self, changes: Self::Committed) {
        self.relay.wake();
        if let Some(changes) = changes {
            self.notifier.publish(&changes).await;
        }
    }
}

impl PaymentsHandler {
    /// Applies one checkout event: the seats it changed and the event it
    /// announces, which the caller writes to the outbox (alone, or with the
    /// rest of its batch).
    async fn apply(
        &self,
        connection: &mut PgConnection,
        delivery: &Delivery<'_>,
    ) -> Result<Applied, HandlerError> {
        if delivery.subject == self.subjects.checkout_completed {
            self.checkout_completed(connection, delivery.payload).await
        } else if delivery.subject == self.subjects.checkout_expired {
            let changes = self.checkout_expired(connection, delivery.payload).await?;
            Ok((changes, None))
        } else {
            Ok((not_ours(PAYMENTS_CONSUMER, delivery.subject), None))
        }
    }

    /// The showtime a checkout event names, for the lock order: empty when
    /// it names none or does not decode (the handler reports the latter).
    fn showtime_of(&self, delivery: &Delivery<'_>) -> String {
        if delivery.subject == self.subjects.checkout_completed {
            events_pb::CheckoutCompleted::decode(delivery.payload)
                .map(|event| event.showtime_id)
                .unwrap_or_default()
        } else if delivery.subject == self.subjects.checkout_expired {
            events_pb::CheckoutExpired::decode(delivery.payload)
                .map(|event| event.showtime_id)
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Applies `payments.refund.succeeded`: the refunded booking gives its seats
/// back, announced from `after_commit` like every other seat change.
#[derive(Clone, Debug)]
pub struct RefundsHandler {
    clock: Arc<dyn Clock>,
    subjects: Subjects,
    notifier: SeatNotifier,
}

impl RefundsHandler {
    pub fn new(clock: Arc<dyn Clock>, subjects: Subjects, notifier: SeatNotifier) -> Self {
        Self {
            clock,
            subjects,
            notifier,
        }
    }

    async fn refund_succeeded(
        &self,
        connection: &mut PgConnection,
        payload: &[u8],
    ) -> Result<Option<SeatChanges>, HandlerError> {
        let event = events_pb::RefundSucceeded::decode(payload)
            .map_err(|e| HandlerError::Permanent(format!("not a RefundSucceeded: {e}")))?;
        // Normalised as GetBooking normalises what a person types.
        let reference = event.booking_reference.trim().to_ascii_uppercase();
        if reference.is_empty() {
            // Seating rejected this checkout: no booking, no seats to free.
            tracing::info!(refund = %event.refund_id, checkout = %event.checkout_id,
                "refund of a checkout that never became a booking; nothing to do");
            return Ok(None);
        }
        let checkout = Some(event.checkout_id.trim()).filter(|c| !c.is_empty());
        match store::refund_booking(connection, &reference, checkout, self.clock.now())
            .await
            .map_err(handler_error)?
        {
            RefundOutcome::Refunded {
                booking_id,
                changes,
            } => {
                tracing::info!(booking = %booking_id, %reference, refund = %event.refund_id,
                    checkout = %event.checkout_id, seats = changes.seats.len(),
                    "booking refunded; its seats are on sale again");
                Ok(Some(changes))
            }
            RefundOutcome::AlreadyRefunded => {
                tracing::info!(%reference, refund = %event.refund_id,
                    "booking was already refunded; nothing to do");
                Ok(None)
            }
            RefundOutcome::UnknownBooking => Err(HandlerError::Permanent(format!(
                "refund {} names booking {reference}, which seating does not have",
                event.refund_id
            ))),
            RefundOutcome::OtherCheckout { booking_checkout } => {
                Err(HandlerError::Permanent(format!(
                    "refund {} is for checkout {} but booking {reference} is checkout \
                     {booking_checkout}; no seats were freed",
                    event.refund_id, event.checkout_id
                )))
            }
        }
    }
}

impl Handler for RefundsHandler {
    /// The seats the refund freed, announced after the commit.
    type Committed = Option<SeatChanges>;

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<Self::Committed, HandlerError> {
        if delivery.subject == self.subjects.refund_succeeded {
            self.refund_succeeded(connection, delivery.payload).await
        } else {
            Ok(not_ours(REFUNDS_CONSUMER, delivery.subject))
        }
    }

    async fn after_commit(&self, changes: Self::Committed) {
        if let Some(changes) = changes {
            self.notifier.publish(&changes).await;
        }
    }
}

/// An event on a subject this consumer did not ask for: acknowledged with no
/// effect. It reaches a consumer only where the server ignores the filter
/// (NATS before 2.10 does not know `filter_subjects` and delivers the whole
/// stream), and then it is the other consumer's to apply, or one seating has
/// no use for (`payments.refund.failed`) — not a failure to dead-letter.
fn not_ours(consumer: &str, subject: &str) -> Option<SeatChanges> {
    tracing::debug!(consumer, subject, "not this consumer's subject; skipped");
    None
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

/// The outbox row of an event whose id is its `meta`'s, with the current
/// span's trace context.
fn announce(
    subject: &str,
    event_type: &str,
    meta: Option<&events_pb::EventMeta>,
    payload: Vec<u8>,
) -> outbox::Pending {
    let event_id = meta.map(|m| m.event_id.as_str()).unwrap_or_default();
    OutboxEvent::new(event_id, subject, event_type, payload).pending()
}
