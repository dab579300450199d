//! Once per event, whatever arrives twice or broken; and the whole read
//! model rebuilt from the streams.

use proto::analytics::v1 as pb;
use uuid::Uuid;

use crate::figures::{inr, publish_programme};
use crate::harness::{self, Show, day};

#[tokio::test]
async fn a_replayed_event_counts_once() {
    let mut analytics = harness::start().await;
    let show = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let booking = show.booking(&["A1", "A2"], 50_000, day(20));
    analytics.confirmed(&booking).await;
    analytics.settled().await;
    // Past the test stream's 100 ms duplicate window the same event id is
    // stored again, as after a replay.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    analytics.confirmed(&booking).await;
    // And the same booking under a new event id (a producer's retry that
    // made a new event) counts once too: the booking id decides.
    let mut again = booking.clone();
    again.meta = harness::meta_at(day(20));
    analytics.confirmed(&again).await;
    analytics.settled().await;

    let totals = analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner();
    assert_eq!((totals.bookings, totals.seats_sold), (1, 2));
    assert_eq!(totals.gross, inr(50_000));
    assert!(analytics.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_malformed_event_is_dead_lettered_and_the_stream_moves_on() {
    let mut analytics = harness::start().await;
    analytics.malformed_booking().await;
    let show = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let mut no_seats = show.booking(&[], 10_000, day(20));
    no_seats.seats.clear();
    analytics.confirmed(&no_seats).await;
    analytics
        .confirmed(&show.booking(&["A1"], 25_000, day(20)))
        .await;
    analytics.settled().await;

    let dead = analytics.dead_letters().await;
    // Booking events are handled several at once: the letters may come in
    // either order.
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter()
            .any(|(_, e)| e.contains("not a BookingConfirmed")),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|(_, e)| e.contains("without seats")),
        "{dead:?}"
    );
    let totals = analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner();
    assert_eq!((totals.bookings, totals.seats_sold), (1, 1));
}

#[tokio::test]
async fn a_rebuild_replays_the_streams_into_the_same_figures() {
    let mut analytics = harness::start().await;
    publish_programme(&analytics).await;
    let before = analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner();
    let activity_before = analytics
        .client
        .list_activity(pb::ListActivityRequest { limit: 100 })
        .await
        .expect("activity")
        .into_inner();

    let rebuilt_at = chrono::Utc::now();
    analytics.rebuild_and_restart().await;
    analytics.settled().await;

    // Every event was applied again after the rebuild, not left as it was.
    let replayed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE processed_at > $1")
            .bind(rebuilt_at)
            .fetch_one(&analytics.db.pool)
            .await
            .expect("counting processed events");
    assert_eq!(replayed, 6, "3 bookings, 1 rejection, 2 refunds replayed");

    let after = analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner();
    assert_eq!(after, before);
    assert_eq!(after.bookings, 3);
    let activity_after = analytics
        .client
        .list_activity(pb::ListActivityRequest { limit: 100 })
        .await
        .expect("activity")
        .into_inner();
    assert_eq!(activity_after, activity_before);
}
