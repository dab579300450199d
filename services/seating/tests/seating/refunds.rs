//! Refunds from payment events: a refunded booking shows as refunded and its
//! seats go back on sale (and can be sold again), once however often the
//! refund arrives; a refund of a checkout that never became a booking, or of
//! a booking seating does not know, frees nothing.

use std::time::Duration;

use futures::StreamExt as _;
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::seating::v1 as pb;
use uuid::Uuid;

use crate::bookings::{completed, wait_for_outbox};
use crate::harness::{Fixture, count, fixture};

fn refund(reference: &str, checkout_id: &str) -> Vec<u8> {
    events_pb::RefundSucceeded {
        meta: None,
        refund_id: Uuid::new_v4().to_string(),
        checkout_id: checkout_id.into(),
        booking_reference: reference.into(),
        user_id: "ann".into(),
        user_email: "ann@example.com".into(),
        amount_minor: 50_000,
        currency: "INR".into(),
        reason: "refunded by staff".into(),
    }
    .encode_to_vec()
}

/// Books `seats` for `user` through a paid checkout and returns the booking.
async fn book(
    f: &Fixture,
    jetstream: &async_nats::jetstream::Context,
    user: &str,
    seats: &[&str],
    checkout_id: &str,
) -> pb::Booking {
    let hold = f.hold(user, seats).await.expect("the seats are free");
    f.publish(
        jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&hold, checkout_id),
    )
    .await;
    f.payments_consumed(jetstream).await;
    wait_for_outbox(f).await;
    bookings_of(f, user)
        .await
        .into_iter()
        .find(|b| b.checkout_id == checkout_id)
        .expect("the checkout became a booking")
}

async fn bookings_of(f: &Fixture, user: &str) -> Vec<pb::Booking> {
    f.client
        .clone()
        .list_bookings(pb::ListBookingsRequest {
            user_id: user.into(),
        })
        .await
        .expect("the user's bookings")
        .into_inner()
        .bookings
}

async fn get_booking(f: &Fixture, reference: &str) -> pb::Booking {
    f.client
        .clone()
        .get_booking(pb::GetBookingRequest {
            reference: reference.into(),
            user_id: "ann".into(),
        })
        .await
        .expect("the booking")
        .into_inner()
}

#[tokio::test]
async fn a_refunded_booking_frees_its_seats_once_however_often_the_refund_arrives() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let booking = book(&f, &jetstream, "ann", &["A1", "E2"], "cs_refund").await;
    assert_eq!(booking.status, pb::BookingStatus::Confirmed as i32);
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["A1", "E2"]);

    let nats = platform::nats::connect(&test_support::nats_url())
        .await
        .unwrap();
    let showtime: Uuid = f.showtime_id.parse().unwrap();
    let mut live = nats
        .subscribe(seating::live::seats_subject(&f.seating.prefix, showtime))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    let event_id = Uuid::new_v4();
    let payload = refund(&booking.reference, "cs_refund");
    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        event_id,
        payload.clone(),
    )
    .await;
    let message = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("a seat change within 10 s")
        .expect("the subscription is open");
    let changed = events_pb::SeatsChanged::decode(message.payload).unwrap();
    let freed: Vec<_> = changed
        .changes
        .iter()
        .map(|c| (c.label.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(freed, [("A1", "available"), ("E2", "available")]);
    f.refunds_consumed(&jetstream).await;

    // The booking stays in the history, refunded, with the seats it had.
    let listed = bookings_of(&f, "ann").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, pb::BookingStatus::Refunded as i32);
    let seats: Vec<_> = listed[0].seats.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(seats, ["A1", "E2"]);
    assert_eq!(
        get_booking(&f, &booking.reference).await.status,
        pb::BookingStatus::Refunded as i32
    );
    // The seats are on sale again, and the map's version is the announced one.
    assert!(f.seats_in(pb::SeatState::Booked).await.is_empty());
    let available = f.seats_in(pb::SeatState::Available).await;
    assert!(
        available.contains(&"A1".to_owned()) && available.contains(&"E2".to_owned()),
        "{available:?}"
    );
    let version = f.seat_map_version().await;
    assert_eq!(version, changed.version);

    // The same event again (past the stream's duplicate window: a true
    // redelivery) and payments announcing the refund under a new event id.
    tokio::time::sleep(Duration::from_millis(250)).await;
    f.publish(&jetstream, "payments.refund.succeeded", event_id, payload)
        .await;
    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        Uuid::new_v4(),
        refund(&booking.reference, "cs_refund"),
    )
    .await;
    f.refunds_consumed(&jetstream).await;
    assert_eq!(f.seat_map_version().await, version, "nothing was written");
    assert_eq!(
        get_booking(&f, &booking.reference).await.status,
        pb::BookingStatus::Refunded as i32
    );
    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM dead_letters").await,
        0
    );
}

#[tokio::test]
async fn a_refunded_seat_can_be_sold_again_and_then_only_once() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let first = book(&f, &jetstream, "ann", &["B1", "B2"], "cs_first").await;
    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        Uuid::new_v4(),
        refund(&first.reference, "cs_first"),
    )
    .await;
    f.refunds_consumed(&jetstream).await;

    let second = book(&f, &jetstream, "bob", &["B2"], "cs_second").await;
    assert_eq!(second.status, pb::BookingStatus::Confirmed as i32);
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["B2"]);
    // The refunded booking keeps its seats in its history all the same.
    let seats: Vec<_> = get_booking(&f, &first.reference)
        .await
        .seats
        .into_iter()
        .map(|s| s.label)
        .collect();
    assert_eq!(seats, ["B1", "B2"]);
    assert_eq!(
        f.hold("ann", &["B2"]).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition,
        "the seat is sold again"
    );
    // Below the code, the database still refuses a second live sale of B2:
    // only the one-live-sale index stands in the way of this row.
    let third = book(&f, &jetstream, "cat", &["C5"], "cs_third").await;
    let second_sale = sqlx::query(
        "INSERT INTO booking_seats (booking_id, showtime_id, label, category, position) \
         VALUES ($1, $2, 'B2', 'standard', 2)",
    )
    .bind(Uuid::parse_str(&third.id).unwrap())
    .bind(Uuid::parse_str(&f.showtime_id).unwrap())
    .execute(f.seating.pool())
    .await;
    let error = second_sale.expect_err("a sold seat cannot be sold twice");
    assert!(
        error
            .to_string()
            .contains("booking_seats_one_live_sale_per_seat"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refund_of_a_checkout_that_never_became_a_booking_changes_nothing() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let booking = book(&f, &jetstream, "ann", &["C1"], "cs_kept").await;
    let version = f.seat_map_version().await;

    // Seating rejected cs_lost (its seats were taken), payments refunded it.
    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        Uuid::new_v4(),
        refund("", "cs_lost"),
    )
    .await;
    f.refunds_consumed(&jetstream).await;

    assert_eq!(f.seat_map_version().await, version);
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["C1"]);
    assert_eq!(
        get_booking(&f, &booking.reference).await.status,
        pb::BookingStatus::Confirmed as i32
    );
    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM dead_letters").await,
        0
    );
}

#[tokio::test]
async fn a_refund_naming_another_checkout_or_no_known_booking_is_dead_lettered_and_frees_nothing() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let booking = book(&f, &jetstream, "ann", &["D1"], "cs_real").await;
    let version = f.seat_map_version().await;

    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        Uuid::new_v4(),
        refund("BMS-XXXXXX", "cs_ghost"),
    )
    .await;
    f.publish(
        &jetstream,
        "payments.refund.succeeded",
        Uuid::new_v4(),
        refund(&booking.reference, "cs_other"),
    )
    .await;
    f.refunds_consumed(&jetstream).await;

    let letters: Vec<String> = sqlx::query_scalar("SELECT error FROM dead_letters ORDER BY id")
        .fetch_all(f.seating.pool())
        .await
        .unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters[0].contains("BMS-XXXXXX"), "{letters:?}");
    assert!(letters[1].contains("cs_other"), "{letters:?}");
    assert_eq!(f.seat_map_version().await, version);
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["D1"]);
    assert_eq!(
        get_booking(&f, &booking.reference).await.status,
        pb::BookingStatus::Confirmed as i32
    );
}
