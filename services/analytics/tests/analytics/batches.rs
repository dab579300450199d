//! Events applied a batch at a time, a statement per table: each still
//! counts once, a bad one is dead-lettered alone, a showtime that comes
//! twice keeps its newest capacity, and the figures are what they would be
//! one event at a time.
//!
//! The test takes the events off the durable consumers itself and applies
//! exactly the batches it means to ([`Analytics::apply_batch`]); the service
//! only serves the figures.

use std::time::Duration;

use analytics::events::{BOOKINGS_CONSUMER, PAYMENTS_CONSUMER};
use platform::consumer::Outcome::{Applied, DeadLettered, Duplicate};
use proto::analytics::v1 as pb;
use uuid::Uuid;

use crate::figures::{inr, november, programme_days, publish_programme_events};
use crate::harness::{self, Analytics, Show, day};

/// Past the test streams' 100 ms duplicate window, so that JetStream
/// stores an event id it has seen again, as after a replay.
async fn past_the_duplicate_window() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn totals(analytics: &mut Analytics) -> pb::Totals {
    analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner()
}

async fn seats_offered(analytics: &mut Analytics, show: &Show) -> u32 {
    analytics
        .client
        .get_occupancy(pb::GetOccupancyRequest::default())
        .await
        .expect("occupancy")
        .into_inner()
        .showtimes
        .into_iter()
        .find(|s| s.showtime_id == show.showtime_id.to_string())
        .expect("the showtime is listed")
        .seats_offered
}

async fn activity(analytics: &mut Analytics) -> Vec<pb::Activity> {
    analytics
        .client
        .list_activity(pb::ListActivityRequest { limit: 100 })
        .await
        .expect("activity")
        .into_inner()
        .entries
}

#[tokio::test]
async fn a_batch_counts_an_event_it_holds_twice_and_an_event_applied_before_once() {
    let mut analytics = harness::start_applying_by_hand().await;
    let show = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let earlier = show.booking(&["A1"], 20_000, day(20));
    analytics.confirmed(&earlier).await;
    assert_eq!(analytics.apply_batch(BOOKINGS_CONSUMER, 1).await, [Applied]);

    past_the_duplicate_window().await;
    let twice = show.booking(&["B1", "B2"], 40_000, day(21));
    let other = show.booking(&["C1"], 25_000, day(21));
    analytics.confirmed(&twice).await;
    analytics.confirmed(&earlier).await;
    analytics.confirmed(&other).await;
    past_the_duplicate_window().await;
    analytics.confirmed(&twice).await;
    assert_eq!(
        analytics.apply_batch(BOOKINGS_CONSUMER, 4).await,
        [Applied, Duplicate, Applied, Duplicate],
        "the replayed event and the second copy change nothing"
    );
    assert_eq!(
        analytics.transactions_of(&[&twice, &other]).await,
        1,
        "the batch was applied as one, not event by event"
    );

    let totals = totals(&mut analytics).await;
    assert_eq!((totals.bookings, totals.seats_sold), (3, 4));
    assert_eq!(totals.gross, inr(85_000));
    let activity = activity(&mut analytics).await;
    assert_eq!(activity.len(), 3, "one entry per event");
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer = $1")
            .bind(BOOKINGS_CONSUMER)
            .fetch_one(&analytics.db.pool)
            .await
            .expect("counting processed events");
    assert_eq!(processed, 3);
    assert!(analytics.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_malformed_event_in_a_batch_is_dead_lettered_alone_and_the_rest_are_applied() {
    let mut analytics = harness::start_applying_by_hand().await;
    let show = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let first = show.booking(&["A1", "A2"], 50_000, day(20));
    let last = show.booking(&["B1"], 25_000, day(20));
    analytics.confirmed(&first).await;
    analytics.malformed_booking().await;
    analytics.confirmed(&last).await;

    assert_eq!(
        analytics.apply_batch(BOOKINGS_CONSUMER, 3).await,
        [Applied, DeadLettered, Applied]
    );
    assert_eq!(
        analytics.transactions_of(&[&first, &last]).await,
        2,
        "the batch fell back to one event at a time"
    );
    let dead = analytics.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, BOOKINGS_CONSUMER);
    assert!(dead[0].1.contains("not a BookingConfirmed"), "{dead:?}");
    let totals = totals(&mut analytics).await;
    assert_eq!((totals.bookings, totals.seats_sold), (2, 3));
    assert_eq!(totals.gross, inr(75_000));
}

#[tokio::test]
async fn a_showtime_twice_in_a_batch_keeps_the_capacity_of_its_last_booking() {
    let mut analytics = harness::start_applying_by_hand().await;
    let show = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let with_capacity = |seats_offered| Show {
        seats_offered,
        ..show.clone()
    };

    // New to analytics with two capacities in one batch; then known and
    // changed twice in one batch; then twice unchanged.
    for (capacities, expected) in [([40, 50], 50), ([60, 55], 55), ([55, 55], 55)] {
        let bookings =
            capacities.map(|capacity| with_capacity(capacity).booking(&["A1"], 10_000, day(20)));
        for booking in &bookings {
            analytics.confirmed(booking).await;
        }
        assert_eq!(
            analytics.apply_batch(BOOKINGS_CONSUMER, 2).await,
            [Applied, Applied]
        );
        assert_eq!(
            analytics.transactions_of(&bookings.each_ref()).await,
            1,
            "applied as one batch"
        );
        assert_eq!(
            seats_offered(&mut analytics, &show).await,
            expected,
            "capacities {capacities:?} in one batch"
        );
    }
    let totals = totals(&mut analytics).await;
    assert_eq!((totals.bookings, totals.seats_sold), (6, 6));
    assert_eq!(totals.seats_offered, 55, "one showtime, counted once");
}

/// The programme of `figures`, applied in two batches (its four booking
/// events, its two refunds) gives the figures worked out there by hand.
#[tokio::test]
async fn figures_from_batches_are_the_hand_computed_ones() {
    let mut analytics = harness::start_applying_by_hand().await;
    let programme = publish_programme_events(&analytics).await;
    assert_eq!(
        analytics.apply_batch(BOOKINGS_CONSUMER, 4).await,
        [Applied; 4]
    );
    let [b1, b2, b3] = &programme.bookings;
    assert_eq!(analytics.transactions_of(&[b1, b2, b3]).await, 1);
    assert_eq!(
        analytics.apply_batch(PAYMENTS_CONSUMER, 2).await,
        [Applied; 2]
    );

    let totals = totals(&mut analytics).await;
    assert_eq!((totals.bookings, totals.seats_sold), (3, 2 + 3 + 1));
    assert_eq!(totals.seats_offered, 40 + 10);
    assert_eq!(totals.gross, inr(50_000 + 75_000 + 30_000));
    assert_eq!(
        totals.refunded,
        inr(75_000),
        "the lost checkout's is not revenue"
    );
    assert_eq!(totals.revenue, inr(155_000 - 75_000));
    assert_eq!((totals.refunds, totals.rejected), (2, 1));

    assert_eq!(november(&mut analytics).await, programme_days());

    let films: Vec<(String, u64, u64, Vec<pb::Money>)> = analytics
        .client
        .get_top_films(pb::GetTopFilmsRequest { limit: 0 })
        .await
        .expect("top films")
        .into_inner()
        .films
        .into_iter()
        .map(|f| (f.film_title, f.bookings, f.seats_sold, f.revenue))
        .collect();
    assert_eq!(
        films,
        [
            ("Metropolis".into(), 2, 5, inr(125_000 - 75_000)),
            ("Nosferatu".into(), 1, 1, inr(30_000)),
        ]
    );

    assert_eq!(
        seats_offered(&mut analytics, &programme.metropolis).await,
        40
    );
    assert_eq!(
        seats_offered(&mut analytics, &programme.nosferatu).await,
        10
    );
    let activity = activity(&mut analytics).await;
    let of_kind = |kind: &str| activity.iter().filter(|e| e.kind == kind).count();
    assert_eq!(
        (
            of_kind("booking.confirmed"),
            of_kind("booking.rejected"),
            of_kind("refund.succeeded")
        ),
        (3, 1, 2),
        "one entry per event: {activity:?}"
    );
    assert!(analytics.dead_letters().await.is_empty());
}
