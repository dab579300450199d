//! Booking confirmations from seating: payments records each booking's
//! reference on its checkout, a consumer batch of them in one statement.

use std::sync::Arc;

use payments::events::{BookingsHandler, Subjects};
use payments::waiters::BookingWaiters;
use platform::consumer::{Delivery, Handler as _, HandlerError};
use prost::Message as _;
use proto::events::v1 as events_pb;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::harness::{Fixture, Provider, fixture};

/// A checkout for each user, each holding a seat of its own.
async fn checkouts(f: &Fixture, users: &[&str], first_seat: usize) -> Vec<String> {
    let seats = f.seat_map().await;
    let mut ids = Vec::new();
    for (user, seat) in users.iter().zip(&seats[first_seat..]) {
        let hold = f.hold_seats(user, &[&seat.label]).await;
        ids.push(f.checkout(&hold, user).await.expect("a checkout").id);
    }
    ids
}

/// `bookings.confirmed` payloads, one per (checkout, reference).
fn confirmations(booked: &[(String, String)]) -> Vec<Vec<u8>> {
    booked
        .iter()
        .map(|(checkout_id, reference)| {
            events_pb::BookingConfirmed {
                checkout_id: checkout_id.clone(),
                reference: reference.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect()
}

fn deliveries<'a>(subject: &'a str, payloads: &'a [Vec<u8>]) -> Vec<Delivery<'a>> {
    payloads
        .iter()
        .map(|payload| Delivery {
            event_id: Uuid::new_v4(),
            subject,
            event_type: "bookmyseat.events.v1.BookingConfirmed",
            payload,
            span: tracing::Span::none(),
        })
        .collect()
}

async fn reference_of(f: &Fixture, checkout_id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT booking_reference FROM checkouts WHERE id = $1::uuid")
        .bind(checkout_id)
        .fetch_one(f.payments.pool())
        .await
        .expect("the checkout")
}

#[tokio::test]
async fn confirmations_applied_together_give_each_checkout_its_own_reference() {
    let f = fixture(Provider::Simulated).await;
    let subjects = Subjects::new(&f.seating.prefix);
    let handler = BookingsHandler::new(
        subjects.clone(),
        Arc::new(Notify::new()),
        BookingWaiters::default(),
    );
    let booked: Vec<(String, String)> = checkouts(&f, &["ann", "bob", "cat"], 0)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, checkout)| (checkout, format!("BMS-BATCH{i}")))
        .collect();
    let payloads = confirmations(&booked);
    let mut tx = f.payments.pool().begin().await.unwrap();
    let outcomes = handler
        .handle_batch(&mut tx, &deliveries(&subjects.booking_confirmed, &payloads))
        .await
        .expect("the batch applies");
    tx.commit().await.unwrap();
    assert_eq!(outcomes.len(), 3, "one outcome per confirmation");
    for (checkout, reference) in &booked {
        assert_eq!(reference_of(&f, checkout).await.as_ref(), Some(reference));
    }

    // A batch naming a checkout payments never made fails whole, naming the
    // booking, so the consumer applies its events one by one and
    // dead-letters only that one; the batch's other checkout is untouched.
    let late = checkouts(&f, &["dan"], 3).await.remove(0);
    let unknown = Uuid::new_v4().to_string();
    let payloads = confirmations(&[
        (late.clone(), "BMS-LATE01".into()),
        (unknown.clone(), "BMS-LOST01".into()),
    ]);
    let mut tx = f.payments.pool().begin().await.unwrap();
    let failed = handler
        .handle_batch(&mut tx, &deliveries(&subjects.booking_confirmed, &payloads))
        .await;
    tx.rollback().await.unwrap();
    match failed {
        Err(HandlerError::Permanent(why)) => {
            assert!(
                why.contains("BMS-LOST01") && !why.contains("BMS-LATE01"),
                "{why}"
            )
        }
        Err(HandlerError::Transient(error)) => panic!("a permanent failure, not {error:#}"),
        Ok(_) => panic!("a booking of an unknown checkout was accepted"),
    }
    assert_eq!(reference_of(&f, &late).await, None);
}
