//! The figures the dashboard shows, from a small programme of events.

use proto::analytics::v1 as pb;
use proto::events::v1 as events_pb;
use uuid::Uuid;

use crate::harness::{self, Analytics, Show, day, meta_at, refund_of};

/// Two films; three bookings over two days; one booking refunded; one
/// checkout whose seats were lost (rejected, then refunded — never revenue).
pub struct Programme {
    pub metropolis: Show,
    pub nosferatu: Show,
    /// Its three confirmed bookings, in the order published.
    pub bookings: [events_pb::BookingConfirmed; 3],
}

/// Publishes the programme and waits until analytics has applied it.
pub async fn publish_programme(analytics: &Analytics) -> Programme {
    let programme = publish_programme_events(analytics).await;
    analytics.settled().await;
    programme
}

/// Publishes the programme: four booking events (the rejection last), then
/// two refunds on the payments stream.
pub async fn publish_programme_events(analytics: &Analytics) -> Programme {
    let metropolis = Show::new(Uuid::new_v4(), "Metropolis", 40);
    let nosferatu = Show::new(Uuid::new_v4(), "Nosferatu", 10);
    let b1 = metropolis.booking(&["A1", "A2"], 50_000, day(20));
    let b2 = metropolis.booking(&["B1", "B2", "B3"], 75_000, day(21));
    let b3 = nosferatu.booking(&["C4"], 30_000, day(21));
    for booking in [&b1, &b2, &b3] {
        analytics.confirmed(booking).await;
    }
    let lost = events_pb::BookingRejected {
        meta: meta_at(day(22) + chrono::Duration::minutes(1)),
        checkout_id: "chk_lost".into(),
        hold_id: Uuid::new_v4().to_string(),
        user_id: "u9".into(),
        user_email: "grace@example.com".into(),
        reason: "the hold expired".into(),
        unavailable_seats: vec!["D1".into()],
    };
    analytics.rejected(&lost).await;
    analytics.refunded(&refund_of(&b2, 75_000, day(22))).await;
    analytics
        .refunded(&events_pb::RefundSucceeded {
            meta: meta_at(day(22) + chrono::Duration::minutes(5)),
            refund_id: "re_lost".into(),
            checkout_id: "chk_lost".into(),
            booking_reference: String::new(),
            user_id: "u9".into(),
            user_email: "grace@example.com".into(),
            amount_minor: 40_000,
            currency: "INR".into(),
            reason: "seats lost".into(),
        })
        .await;
    Programme {
        metropolis,
        nosferatu,
        bookings: [b1, b2, b3],
    }
}

pub fn inr(amount_minor: i64) -> Vec<pb::Money> {
    vec![pb::Money {
        currency: "INR".into(),
        amount_minor,
    }]
}

#[tokio::test]
async fn totals_count_bookings_seats_and_revenue_net_of_refunds_of_bookings() {
    let mut analytics = harness::start().await;
    publish_programme(&analytics).await;
    let totals = analytics
        .client
        .get_totals(pb::GetTotalsRequest {})
        .await
        .expect("totals")
        .into_inner();
    assert_eq!(totals.bookings, 3);
    assert_eq!(totals.seats_sold, 6);
    assert_eq!(totals.seats_offered, 50);
    assert_eq!(totals.gross, inr(155_000));
    // The rejected checkout's refund was never revenue: only b2's counts.
    assert_eq!(totals.refunded, inr(75_000));
    assert_eq!(totals.revenue, inr(80_000));
    assert_eq!(totals.refunds, 2);
    assert_eq!(totals.rejected, 1);
}

/// date, bookings, seats sold, revenue, refunded.
pub type DaySummary = (String, u64, u64, Vec<pb::Money>, Vec<pb::Money>);

/// Revenue by day over November 2026.
pub async fn november(analytics: &mut Analytics) -> Vec<DaySummary> {
    analytics
        .client
        .get_revenue_by_day(pb::GetRevenueByDayRequest {
            from_date: "2026-11-01".into(),
            until_date: "2026-11-30".into(),
        })
        .await
        .expect("revenue by day")
        .into_inner()
        .days
        .into_iter()
        .map(|d| (d.date, d.bookings, d.seats_sold, d.revenue, d.refunded))
        .collect()
}

/// The programme's days, worked out by hand: b1 on the 20th, b2 and b3 on
/// the 21st, b2's refund on the 22nd (the lost checkout's is no revenue).
pub fn programme_days() -> Vec<DaySummary> {
    vec![
        ("2026-11-20".into(), 1, 2, inr(50_000), vec![]),
        ("2026-11-21".into(), 2, 4, inr(105_000), vec![]),
        ("2026-11-22".into(), 0, 0, inr(-75_000), inr(75_000)),
    ]
}

#[tokio::test]
async fn revenue_by_day_counts_bookings_on_their_day_and_refunds_on_theirs() {
    let mut analytics = harness::start().await;
    publish_programme(&analytics).await;
    assert_eq!(november(&mut analytics).await, programme_days());

    let one_day = analytics
        .client
        .get_revenue_by_day(pb::GetRevenueByDayRequest {
            from_date: "2026-11-21".into(),
            until_date: "2026-11-21".into(),
        })
        .await
        .expect("one day")
        .into_inner()
        .days;
    assert_eq!(one_day.len(), 1);
    assert_eq!(one_day[0].bookings, 2);
}

#[tokio::test]
async fn malformed_dates_and_backward_ranges_are_invalid_arguments() {
    let mut analytics = harness::start().await;
    for (from, until) in [
        ("2026-13-01", ""),
        ("2026-11-22", "2026-11-01"),
        ("2020-01-01", "2026-01-01"),
    ] {
        let status = analytics
            .client
            .get_revenue_by_day(pb::GetRevenueByDayRequest {
                from_date: from.into(),
                until_date: until.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{from}..{until}"
        );
    }
}

#[tokio::test]
async fn top_films_are_ranked_by_seats_sold_with_revenue_net_of_refunds() {
    let mut analytics = harness::start().await;
    let programme = publish_programme(&analytics).await;
    let films = analytics
        .client
        .get_top_films(pb::GetTopFilmsRequest { limit: 0 })
        .await
        .expect("top films")
        .into_inner()
        .films;
    assert_eq!(films.len(), 2);
    assert_eq!(films[0].film_title, "Metropolis");
    assert_eq!(films[0].film_id, programme.metropolis.film_id.to_string());
    assert_eq!((films[0].bookings, films[0].seats_sold), (2, 5));
    assert_eq!(
        films[0].revenue,
        inr(50_000),
        "125,000 gross minus the 75,000 refund"
    );
    assert_eq!(films[1].film_title, "Nosferatu");
    assert_eq!((films[1].bookings, films[1].seats_sold), (1, 1));
    assert_eq!(films[1].revenue, inr(30_000));

    let top_one = analytics
        .client
        .get_top_films(pb::GetTopFilmsRequest { limit: 1 })
        .await
        .expect("top film")
        .into_inner()
        .films;
    assert_eq!(top_one.len(), 1);
    assert_eq!(top_one[0].film_title, "Metropolis");
}

#[tokio::test]
async fn occupancy_is_seats_sold_over_seats_offered_per_showtime_and_overall() {
    let mut analytics = harness::start().await;
    let programme = publish_programme(&analytics).await;
    let occupancy = analytics
        .client
        .get_occupancy(pb::GetOccupancyRequest::default())
        .await
        .expect("occupancy")
        .into_inner();
    assert_eq!((occupancy.seats_sold, occupancy.seats_offered), (6, 50));
    assert!((occupancy.occupancy - 0.12).abs() < 1e-9);
    let of = |show: &Show| {
        occupancy
            .showtimes
            .iter()
            .find(|s| s.showtime_id == show.showtime_id.to_string())
            .cloned()
            .expect("the showtime is listed")
    };
    let metropolis = of(&programme.metropolis);
    assert_eq!((metropolis.seats_sold, metropolis.seats_offered), (5, 40));
    assert!((metropolis.occupancy - 0.125).abs() < 1e-9);
    assert_eq!(metropolis.cinema_name, "Roxy");
    let nosferatu = of(&programme.nosferatu);
    assert_eq!((nosferatu.seats_sold, nosferatu.seats_offered), (1, 10));

    // Showtimes starting after a given instant: none of these.
    let later = analytics
        .client
        .get_occupancy(pb::GetOccupancyRequest {
            limit: 0,
            starting_from: Some(proto::time::to_timestamp(day(29))),
        })
        .await
        .expect("occupancy from a date")
        .into_inner();
    assert!(later.showtimes.is_empty());
    assert_eq!(
        later.seats_sold, 6,
        "the overall figure covers every showtime"
    );
}

#[tokio::test]
async fn activity_lists_every_event_newest_first_without_email_addresses() {
    let mut analytics = harness::start().await;
    publish_programme(&analytics).await;
    let entries = analytics
        .client
        .list_activity(pb::ListActivityRequest { limit: 0 })
        .await
        .expect("activity")
        .into_inner()
        .entries;
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "refund.succeeded",
            "booking.rejected",
            "refund.succeeded",
            "booking.confirmed",
            "booking.confirmed",
            "booking.confirmed",
        ],
        "newest first (the two refunds and the rejection are on the 22nd)"
    );
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e.at.as_ref().map(|t| t.seconds).unwrap_or_default())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    for entry in &entries {
        assert!(!entry.summary.contains('@'), "{}", entry.summary);
    }
    let rejected = &entries[1];
    assert_eq!(rejected.reference, "chk_lost");
    assert!(rejected.summary.contains("D1"), "{}", rejected.summary);
    let lost_refund = &entries[0];
    assert_eq!(lost_refund.amount, inr(40_000).into_iter().next());
    let oldest = entries.last().expect("an entry");
    assert!(
        oldest.summary.contains("2 seats for Metropolis"),
        "{}",
        oldest.summary
    );
    assert_eq!(oldest.amount, inr(50_000).into_iter().next());

    let two = analytics
        .client
        .list_activity(pb::ListActivityRequest { limit: 2 })
        .await
        .expect("activity")
        .into_inner()
        .entries;
    assert_eq!(two.len(), 2);
}

#[tokio::test]
async fn bookings_of_a_range_come_oldest_first_a_page_at_a_time_with_their_refunds() {
    let mut analytics = harness::start().await;
    publish_programme(&analytics).await;
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = analytics
            .client
            .list_bookings(pb::ListBookingsRequest {
                from_date: "2026-11-01".into(),
                until_date: "2026-11-30".into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("a page of bookings")
            .into_inner();
        pages.push(page.bookings);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages.len() < 5, "the pages end");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    let lines: Vec<_> = pages.into_iter().flatten().collect();
    let summary: Vec<(String, u32, i64, i64)> = lines
        .iter()
        .map(|b| {
            let amount = b.amount.as_ref().expect("an amount");
            (
                b.film_title.clone(),
                b.seats,
                amount.amount_minor,
                b.refunded_minor,
            )
        })
        .collect();
    // Booked on the 20th, then two on the 21st (same instant: by id).
    assert_eq!(summary[0], ("Metropolis".into(), 2, 50_000, 0));
    let mut same_day = summary[1..].to_vec();
    same_day.sort();
    assert_eq!(
        same_day,
        [
            ("Metropolis".into(), 3, 75_000, 75_000),
            ("Nosferatu".into(), 1, 30_000, 0),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|b| b.cinema_name == "Roxy" && b.starts_at.is_some())
    );
    let ids: std::collections::HashSet<_> = lines.iter().map(|b| &b.booking_id).collect();
    assert_eq!(ids.len(), 3, "no booking on two pages");

    // A day selects its own bookings; the rejected checkout is never one.
    let one_day = analytics
        .client
        .list_bookings(pb::ListBookingsRequest {
            from_date: "2026-11-21".into(),
            until_date: "2026-11-21".into(),
            ..Default::default()
        })
        .await
        .expect("one day")
        .into_inner();
    assert_eq!(one_day.bookings.len(), 2);
    assert!(one_day.next_page_token.is_empty());
    let none = analytics
        .client
        .list_bookings(pb::ListBookingsRequest {
            from_date: "2026-11-22".into(),
            until_date: "2026-11-22".into(),
            ..Default::default()
        })
        .await
        .expect("a day without bookings")
        .into_inner();
    assert!(none.bookings.is_empty());

    for token in [
        "nonsense",
        "12.not-a-uuid",
        "x.00000000-0000-0000-0000-000000000000",
    ] {
        let status = analytics
            .client
            .list_bookings(pb::ListBookingsRequest {
                page_token: token.into(),
                ..Default::default()
            })
            .await
            .expect_err("a forged token");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{token}");
        assert!(status.message().contains("page_token"), "{status:?}");
    }
}
