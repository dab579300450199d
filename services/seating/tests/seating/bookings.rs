//! Bookings from payment events: exactly one booking per paid hold whatever
//! the redeliveries, a rejection when the seats were lost, a release when the
//! checkout expired, and dead letters that do not block the stream.

use std::time::Duration;

use chrono::Duration as Span;
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::seating::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::harness::{Fixture, count, fixture};

/// A `CheckoutCompleted` for `hold`, paid by ann@example.com.
pub(crate) fn completed(hold: &pb::Hold, checkout_id: &str) -> Vec<u8> {
    events_pb::CheckoutCompleted {
        meta: None,
        checkout_id: checkout_id.into(),
        hold_id: hold.id.clone(),
        user_id: hold.user_id.clone(),
        user_email: "ann@example.com".into(),
        amount_minor: 50_000,
        currency: "INR".into(),
        showtime_id: hold.showtime_id.clone(),
    }
    .encode_to_vec()
}

async fn booking_events(
    f: &Fixture,
    jetstream: &async_nats::jetstream::Context,
) -> (
    Vec<events_pb::BookingConfirmed>,
    Vec<events_pb::BookingRejected>,
) {
    let mut confirmed = Vec::new();
    let mut rejected = Vec::new();
    for (subject, payload) in f.bookings_events(jetstream).await {
        if subject == f.subject("bookings.confirmed") {
            confirmed.push(events_pb::BookingConfirmed::decode(payload.as_slice()).unwrap());
        } else if subject == f.subject("bookings.rejected") {
            rejected.push(events_pb::BookingRejected::decode(payload.as_slice()).unwrap());
        } else {
            panic!("unexpected subject {subject}");
        }
    }
    (confirmed, rejected)
}

pub(crate) async fn wait_for_outbox(f: &Fixture) {
    crate::harness::eventually("the outbox is relayed", || async {
        platform::outbox::backlog(f.seating.pool()).await.unwrap() == 0
    })
    .await;
}

#[tokio::test]
async fn a_paid_hold_becomes_exactly_one_booking_even_when_the_event_arrives_three_times() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let hold = f.hold("ann", &["A1", "E2"]).await.unwrap();
    let event_id = Uuid::new_v4();
    for _ in 0..3 {
        f.publish(
            &jetstream,
            "payments.checkout.completed",
            event_id,
            completed(&hold, "cs_1"),
        )
        .await;
        // Past the stream's 100 ms duplicate window: a true redelivery.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Payments announcing the same checkout again under a new event id.
    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&hold, "cs_1"),
    )
    .await;
    f.payments_consumed(&jetstream).await;
    wait_for_outbox(&f).await;

    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM bookings").await,
        1
    );
    let (confirmed, rejected) = booking_events(&f, &jetstream).await;
    assert!(rejected.is_empty());
    assert_eq!(confirmed.len(), 1, "one bookings.confirmed");
    let event = &confirmed[0];
    assert!(event.reference.starts_with("BMS-") && event.reference.len() == 10);
    assert_eq!(event.user_id, "ann");
    assert_eq!(event.user_email, "ann@example.com");
    assert_eq!(event.checkout_id, "cs_1");
    assert_eq!(event.showtime_id, f.showtime_id);
    assert_eq!(event.film_title, "Metropolis");
    assert_eq!(event.cinema_name, "Roxy");
    assert_eq!(event.cinema_time_zone, "Asia/Kolkata");
    assert_eq!(event.screen_name, "Screen 1");
    assert_eq!(
        event.starts_at,
        Some(proto::time::to_timestamp(f.starts_at))
    );
    assert_eq!(event.seats, ["A1", "E2"]);
    assert_eq!(
        (event.amount_minor, event.currency.as_str()),
        (50_000, "INR")
    );
    assert_eq!(event.seats_offered, 40);
    assert!(
        event
            .meta
            .as_ref()
            .is_some_and(|m| Uuid::parse_str(&m.event_id).is_ok())
    );

    // The booking as the API shows it.
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["A1", "E2"]);
    assert_eq!(
        f.get_hold(&hold.id).await.status,
        pb::HoldStatus::Converted as i32
    );
    let listed = f
        .client
        .clone()
        .list_bookings(pb::ListBookingsRequest {
            user_id: "ann".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .bookings;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reference, event.reference);
    assert_eq!(listed[0].film_title, "Metropolis");
    let seats: Vec<_> = listed[0]
        .seats
        .iter()
        .map(|s| (s.label.as_str(), s.category.as_str()))
        .collect();
    assert_eq!(seats, [("A1", "standard"), ("E2", "premium")]);
    let found = f
        .client
        .clone()
        .get_booking(pb::GetBookingRequest {
            reference: event.reference.clone(),
            user_id: "ann".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.id, event.booking_id);
    let hidden = f
        .client
        .clone()
        .get_booking(pb::GetBookingRequest {
            reference: event.reference.clone(),
            user_id: "bob".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        hidden.code(),
        Code::NotFound,
        "another user's booking is not found"
    );
    // Booked seats cannot be held, released into sale, or blocked.
    assert_eq!(
        f.hold("bob", &["A1"]).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn a_paid_hold_whose_seat_was_taken_after_it_expired_is_rejected_for_a_refund() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let lost = f.hold("ann", &["B1", "B2"]).await.unwrap();
    f.clock.advance(Span::minutes(11));
    f.hold("bob", &["B2"])
        .await
        .expect("the expired seat is taken");

    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&lost, "cs_lost"),
    )
    .await;
    f.payments_consumed(&jetstream).await;
    wait_for_outbox(&f).await;

    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM bookings").await,
        0
    );
    let (confirmed, rejected) = booking_events(&f, &jetstream).await;
    assert!(confirmed.is_empty());
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].checkout_id, "cs_lost");
    assert_eq!(rejected[0].hold_id, lost.id);
    assert_eq!(rejected[0].unavailable_seats, ["B2"]);
    assert_eq!(rejected[0].user_email, "ann@example.com");
    assert_eq!(
        f.seats_in(pb::SeatState::Held).await,
        ["B2"],
        "bob keeps B2; B1 is free"
    );
}

#[tokio::test]
async fn a_paid_hold_that_expired_with_its_seats_still_free_is_booked() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let hold = f.hold("ann", &["C1", "C2"]).await.unwrap();
    f.clock.advance(Span::minutes(11));
    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&hold, "cs_late"),
    )
    .await;
    f.payments_consumed(&jetstream).await;
    wait_for_outbox(&f).await;
    let (confirmed, rejected) = booking_events(&f, &jetstream).await;
    assert!(rejected.is_empty());
    assert_eq!(confirmed.len(), 1);
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["C1", "C2"]);
}

#[tokio::test]
async fn an_expired_checkout_releases_the_hold() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let hold = f.hold("ann", &["D1", "D2"]).await.unwrap();
    let expired = events_pb::CheckoutExpired {
        meta: None,
        checkout_id: "cs_gone".into(),
        hold_id: hold.id.clone(),
        user_id: "ann".into(),
        showtime_id: hold.showtime_id.clone(),
    };
    f.publish(
        &jetstream,
        "payments.checkout.expired",
        Uuid::new_v4(),
        expired.encode_to_vec(),
    )
    .await;
    f.payments_consumed(&jetstream).await;
    assert!(f.seats_in(pb::SeatState::Held).await.is_empty());
    assert_eq!(
        f.get_hold(&hold.id).await.status,
        pb::HoldStatus::Released as i32
    );
}

#[tokio::test]
async fn a_malformed_event_is_dead_lettered_and_a_later_good_event_still_applies() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let hold = f.hold("ann", &["E5"]).await.unwrap();
    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        b"\xff\xff not protobuf".to_vec(),
    )
    .await;
    let unknown_hold = events_pb::CheckoutCompleted {
        hold_id: Uuid::new_v4().to_string(),
        checkout_id: "cs_ghost".into(),
        ..Default::default()
    };
    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        unknown_hold.encode_to_vec(),
    )
    .await;
    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&hold, "cs_ok"),
    )
    .await;
    f.payments_consumed(&jetstream).await;

    let letters: Vec<String> = sqlx::query_scalar("SELECT error FROM dead_letters ORDER BY id")
        .fetch_all(f.seating.pool())
        .await
        .unwrap();
    // Checkout events are handled several at once: the letters may come
    // in either order.
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .any(|l| l.contains("not a CheckoutCompleted")),
        "{letters:?}"
    );
    assert!(letters.iter().any(|l| l.contains("no hold")), "{letters:?}");
    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM bookings").await,
        1
    );
    assert_eq!(f.seats_in(pb::SeatState::Booked).await, ["E5"]);
}

#[tokio::test]
async fn paid_holds_arriving_together_each_become_one_booking_beside_a_bad_event() {
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let rows = ["A", "B", "C", "D", "E"];
    let mut holds = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let seats = [format!("{row}1"), format!("{row}2")];
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        holds.push(f.hold(&format!("user{i}"), &seats).await.unwrap());
    }
    // Published back to back, acknowledgements awaited afterwards, so the
    // consumer finds them at hand together (a batch), with an undecodable
    // event among them that must not take its neighbours down.
    let mut payloads: Vec<Vec<u8>> = holds
        .iter()
        .enumerate()
        .map(|(i, hold)| completed(hold, &format!("cs_together_{i}")))
        .collect();
    payloads.insert(2, b"\xff not protobuf".to_vec());
    let mut acks = Vec::new();
    for payload in payloads {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
        acks.push(
            jetstream
                .publish_with_headers(
                    f.subject("payments.checkout.completed"),
                    headers,
                    payload.into(),
                )
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    f.payments_consumed(&jetstream).await;
    wait_for_outbox(&f).await;

    let (confirmed, rejected) = booking_events(&f, &jetstream).await;
    assert!(rejected.is_empty());
    let mut checkouts: Vec<_> = confirmed.iter().map(|e| e.checkout_id.clone()).collect();
    checkouts.sort();
    let expected: Vec<_> = (0..holds.len())
        .map(|i| format!("cs_together_{i}"))
        .collect();
    assert_eq!(checkouts, expected, "one bookings.confirmed per paid hold");
    for (event, hold) in confirmed.iter().map(|e| {
        let i: usize = e.checkout_id["cs_together_".len()..].parse().unwrap();
        (e, &holds[i])
    }) {
        assert_eq!(event.user_id, hold.user_id);
        assert_eq!(
            event.seats,
            hold.seats
                .iter()
                .map(|s| s.label.clone())
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM bookings").await,
        holds.len() as i64
    );
    assert_eq!(
        count(f.seating.pool(), "SELECT count(*) FROM dead_letters").await,
        1,
        "only the undecodable event is dead-lettered"
    );
    assert_eq!(
        f.seats_in(pb::SeatState::Booked).await.len(),
        2 * holds.len()
    );
}

#[tokio::test]
async fn seats_booked_from_a_payment_event_are_announced_on_the_live_subject() {
    use futures::StreamExt as _;
    let f = fixture().await;
    let jetstream = f.jetstream().await;
    let hold = f.hold("ann", &["D1", "D2"]).await.unwrap();
    let nats = platform::nats::connect(&test_support::nats_url())
        .await
        .unwrap();
    let showtime: Uuid = f.showtime_id.parse().unwrap();
    let mut live = nats
        .subscribe(seating::live::seats_subject(&f.seating.prefix, showtime))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    f.publish(
        &jetstream,
        "payments.checkout.completed",
        Uuid::new_v4(),
        completed(&hold, "cs_live"),
    )
    .await;
    let message = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("a seat change within 10 s")
        .expect("the subscription is open");
    let changed = events_pb::SeatsChanged::decode(message.payload).unwrap();
    let booked: Vec<_> = changed
        .changes
        .iter()
        .map(|c| (c.label.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(booked, [("D1", "booked"), ("D2", "booked")]);
}

/// Booking a paid hold, and answering its replay, never scans the bookings
/// table: whether a hold is booked is read from the hold. seating_book plans
/// once per connection; an EXISTS over bookings, planned while the table was
/// small, read every booking on every later booking.
#[tokio::test]
async fn booking_a_paid_hold_never_scans_the_bookings_table() {
    let f = fixture().await;
    let hold = f.hold("ann", &["A1"]).await.unwrap();
    let pool = f.seating.pool();
    // Three hundred earlier bookings, analysed as autovacuum would.
    sqlx::query(
        "WITH h AS ( \
             INSERT INTO holds (id, showtime_id, user_id, labels, held_until, status, created_at, ended_at) \
             SELECT gen_random_uuid(), $1::uuid, 'past-' || g, ARRAY['A2'], now(), 'converted', now(), now() \
             FROM generate_series(1, 300) g RETURNING id, showtime_id, user_id) \
         INSERT INTO bookings (id, reference, checkout_id, hold_id, user_id, user_email, showtime_id, \
                               amount_minor, currency, status, booked_at) \
         SELECT gen_random_uuid(), 'PAST-' || h.id, 'cs_past_' || h.id, h.id, h.user_id, \
                'past@example.com', h.showtime_id, 1000, 'INR', 'confirmed', now() FROM h",
    )
    .bind(&f.showtime_id)
    .execute(pool)
    .await
    .expect("earlier bookings");
    sqlx::query("ANALYZE").execute(pool).await.expect("analyze");

    // A connection of its own, so the function's plans are made now. The
    // scan counter is the backend's, not flushed yet: what it counted for
    // earlier transactions stays in it, hence the difference.
    let mut connection = pool.acquire().await.expect("a connection").detach();
    for expected in ["confirmed", "already_booked"] {
        let mut tx = sqlx::Connection::begin(&mut connection).await.unwrap();
        let before = bookings_seq_scans(&mut tx).await;
        let outcome: String = sqlx::query_scalar(
            "SELECT outcome FROM seating_book($1::uuid, 'cs_ann', gen_random_uuid(), \
             'ann@example.com', 50000, 'INR', ARRAY['BMS-ANN001'], now())",
        )
        .bind(&hold.id)
        .fetch_one(&mut *tx)
        .await
        .expect("seating_book answers");
        assert_eq!(outcome, expected);
        assert_eq!(
            bookings_seq_scans(&mut tx).await - before,
            0,
            "{expected}: bookings read by a sequential scan"
        );
        tx.commit().await.unwrap();
    }
}

/// Sequential scans of `bookings` this backend has counted and not yet
/// reported.
async fn bookings_seq_scans(connection: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'bookings'")
        .fetch_one(connection)
        .await
        .expect("the backend's table statistics")
}
