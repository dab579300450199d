//! The analytics consumers: booking and refund events into facts.
//!
//! Two durable pull consumers on [`platform::consumer`]:
//! `analytics-bookings` (`bookings.confirmed`, `bookings.rejected`) and
//! `analytics-payments` (`payments.refund.succeeded`). Each event is applied
//! in the transaction that records its id, and every write is an insert
//! that ignores an existing row, so an event counts once however often it
//! arrives. An undecodable event, or one missing what a figure needs (ids,
//! seats, its time), is dead-lettered and the stream moves on: a figure built
//! from a guess would be wrong forever.
//!
//! A batch of events is read whole into [`Facts`] first and then written
//! with one statement per table ([`store::record`]); an event alone goes the
//! same way as a batch of one. One event that cannot be read fails the
//! batch, and the platform then handles each event of it alone, so only
//! that one is dead-lettered.
//!
//! Time: a booking counts on the day its event occurred (`EventMeta
//! .occurred_at`), not the day analytics saw it, so a replay or a backlog
//! puts every booking on the same day as the first time.

use platform::consumer::{ConsumerSpec, Delivery, Handler, HandlerError};
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::time::from_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{ActivityEntry, BookingFact, Facts, Money, RefundFact};
use crate::store::{self, Recorded};

/// Durable consumer names (also the `consumer` column of `processed_events`
/// and `dead_letters`).
pub const BOOKINGS_CONSUMER: &str = "analytics-bookings";
pub const PAYMENTS_CONSUMER: &str = "analytics-payments";

/// The subjects and streams analytics reads, under the deployment's prefix.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub booking_confirmed: String,
    pub booking_rejected: String,
    pub refund_succeeded: String,
    bookings_stream: String,
    payments_stream: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        let stream = |domain: &str| {
            platform::nats::event_streams(prefix)
                .into_iter()
                .find(|s| {
                    s.subjects
                        .iter()
                        .any(|subject| subject.ends_with(&format!("{domain}.>")))
                })
                .map(|s| s.name)
                .unwrap_or_else(|| domain.to_uppercase())
        };
        let subject = |s: &str| platform::nats::subject(prefix, s);
        Self {
            booking_confirmed: subject("bookings.confirmed"),
            booking_rejected: subject("bookings.rejected"),
            refund_succeeded: subject("payments.refund.succeeded"),
            bookings_stream: stream("bookings"),
            payments_stream: stream("payments"),
        }
    }

    /// The two durable consumers. A new durable consumer starts at the
    /// beginning of its stream, which is what a rebuild relies on. Every
    /// event is a few inserts of rows of its own (figures are computed at
    /// query time), so booking events are applied several at once and in
    /// batches of up to 64 per transaction, each batch with a statement per
    /// table; the one shared row, a showtime's capacity, is written only
    /// when it changes (see `store::record`).
    pub fn consumer_specs(&self) -> Vec<ConsumerSpec> {
        vec![
            ConsumerSpec::new(
                &self.bookings_stream,
                BOOKINGS_CONSUMER,
                &[
                    self.booking_confirmed.clone(),
                    self.booking_rejected.clone(),
                ],
            )
            .concurrent(4)
            .batched(64),
            ConsumerSpec::new(
                &self.payments_stream,
                PAYMENTS_CONSUMER,
                std::slice::from_ref(&self.refund_succeeded),
            ),
        ]
    }
}

/// Applies booking and refund events to the read model.
#[derive(Clone, Debug)]
pub struct FiguresHandler {
    subjects: Subjects,
}

impl FiguresHandler {
    pub fn new(subjects: Subjects) -> Self {
        Self { subjects }
    }
}

fn permanent(message: impl Into<String>) -> HandlerError {
    HandlerError::Permanent(message.into())
}

fn occurred_at(
    meta: Option<&events_pb::EventMeta>,
) -> Result<chrono::DateTime<chrono::Utc>, HandlerError> {
    meta.and_then(|m| m.occurred_at.as_ref())
        .and_then(from_timestamp)
        .ok_or_else(|| permanent("the event has no occurred_at"))
}

fn uuid(value: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(value).map_err(|_| permanent(format!("{what} {value:?} is not a UUID")))
}

/// What a `bookings.confirmed` event states: the booking and its entry in
/// the activity log.
fn booking_confirmed(payload: &[u8]) -> Result<(BookingFact, ActivityEntry), HandlerError> {
    let event = events_pb::BookingConfirmed::decode(payload)
        .map_err(|e| permanent(format!("not a BookingConfirmed: {e}")))?;
    let booked_at = occurred_at(event.meta.as_ref())?;
    let seats = i32::try_from(event.seats.len()).map_err(|_| permanent("too many seats"))?;
    if seats == 0 {
        return Err(permanent("a booking without seats"));
    }
    let entry = ActivityEntry {
        at: booked_at,
        kind: "booking.confirmed".into(),
        summary: format!(
            "{} seat{} for {} at {} ({})",
            seats,
            if seats == 1 { "" } else { "s" },
            event.film_title,
            event.cinema_name,
            event.seats.join(", ")
        ),
        reference: event.reference.clone(),
        amount: Some(Money {
            currency: event.currency.clone(),
            amount_minor: event.amount_minor,
        }),
    };
    let fact = BookingFact {
        booking_id: uuid(&event.booking_id, "booking_id")?,
        showtime_id: uuid(&event.showtime_id, "showtime_id")?,
        starts_at: event
            .starts_at
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| permanent("the booking has no showtime start"))?,
        seats_offered: i32::try_from(event.seats_offered)
            .map_err(|_| permanent("seats_offered is out of range"))?,
        reference: event.reference,
        checkout_id: event.checkout_id,
        film_id: event.film_id,
        film_title: event.film_title,
        cinema_name: event.cinema_name,
        seats,
        amount_minor: event.amount_minor,
        currency: event.currency,
        booked_at,
    };
    Ok((fact, entry))
}

/// What a `bookings.rejected` event states: an entry in the activity log.
fn booking_rejected(payload: &[u8]) -> Result<ActivityEntry, HandlerError> {
    let event = events_pb::BookingRejected::decode(payload)
        .map_err(|e| permanent(format!("not a BookingRejected: {e}")))?;
    Ok(ActivityEntry {
        at: occurred_at(event.meta.as_ref())?,
        kind: "booking.rejected".into(),
        summary: if event.unavailable_seats.is_empty() {
            "paid, but the seats were lost; refund follows".to_owned()
        } else {
            format!(
                "paid, but seats {} were lost; refund follows",
                event.unavailable_seats.join(", ")
            )
        },
        reference: event.checkout_id,
        amount: None,
    })
}

/// What a `payments.refund.succeeded` event states: the refund and its
/// entry in the activity log.
fn refund_succeeded(payload: &[u8]) -> Result<(RefundFact, ActivityEntry), HandlerError> {
    let event = events_pb::RefundSucceeded::decode(payload)
        .map_err(|e| permanent(format!("not a RefundSucceeded: {e}")))?;
    if event.refund_id.is_empty() {
        return Err(permanent("a refund without a refund_id"));
    }
    let refunded_at = occurred_at(event.meta.as_ref())?;
    let reference = if event.booking_reference.is_empty() {
        event.checkout_id.clone()
    } else {
        event.booking_reference.clone()
    };
    let entry = ActivityEntry {
        at: refunded_at,
        kind: "refund.succeeded".into(),
        summary: if event.reason.is_empty() {
            "refunded".to_owned()
        } else {
            format!("refunded: {}", event.reason)
        },
        reference,
        amount: Some(Money {
            currency: event.currency.clone(),
            amount_minor: event.amount_minor,
        }),
    };
    let fact = RefundFact {
        refund_id: event.refund_id,
        checkout_id: event.checkout_id,
        amount_minor: event.amount_minor,
        currency: event.currency,
        refunded_at,
    };
    Ok((fact, entry))
}

impl FiguresHandler {
    /// Adds what `delivery` states to `facts`; a permanent error when it
    /// cannot be read or lacks what a figure needs.
    fn read(&self, delivery: &Delivery<'_>, facts: &mut Facts) -> Result<(), HandlerError> {
        let subject = delivery.subject;
        let entry = if subject == self.subjects.booking_confirmed {
            let (booking, entry) = booking_confirmed(delivery.payload)?;
            facts.bookings.push(booking);
            entry
        } else if subject == self.subjects.booking_rejected {
            booking_rejected(delivery.payload)?
        } else if subject == self.subjects.refund_succeeded {
            let (refund, entry) = refund_succeeded(delivery.payload)?;
            facts.refunds.push(refund);
            entry
        } else {
            return Err(permanent(format!("analytics does not handle {subject}")));
        };
        facts.activity.push((delivery.event_id, entry));
        Ok(())
    }
}

impl Handler for FiguresHandler {
    type Committed = ();

    /// A batch of one: the same reading and the same statements.
    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        self.handle_batch(connection, std::slice::from_ref(delivery))
            .await
            .map(drop)
    }

    /// Reads every event before writing anything, so an unreadable one
    /// fails the batch at no cost (the platform then handles each alone and
    /// dead-letters just that one), then writes them all with a statement
    /// per table.
    async fn handle_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> Result<Vec<()>, HandlerError> {
        let mut facts = Facts::default();
        for delivery in deliveries {
            self.read(delivery, &mut facts)?;
        }
        let recorded = store::record(connection, &facts).await?;
        if recorded != Recorded::default() {
            tracing::info!(
                events = deliveries.len(),
                bookings = recorded.bookings,
                refunds = recorded.refunds,
                "facts counted"
            );
        }
        Ok(vec![(); deliveries.len()])
    }
}
