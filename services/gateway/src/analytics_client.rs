//! The gateway's view of the analytics service: the figures of the staff
//! dashboard (totals, revenue per day, top films, occupancy, activity).
//!
//! As with the other clients, prost types stay in here: callers get the
//! [`Stats`] resource (also the JSON of `GET /api/v1/admin/stats`) and
//! [`ActivityEntry`]s, and analytics' failures become [`Error`]s once, in
//! [`unavailable_or`]. [`AnalyticsClient::stats`] asks analytics' five
//! questions at once, so the dashboard waits for the slowest, not the sum.
//!
//! What analytics cannot say, the resources do not pretend to: showtimes
//! come without their cinema's time zone, so their start is UTC; activity
//! entries carry a summary line, a reference and an amount, not the film,
//! showtime or seats as separate fields.

use chrono::{DateTime, NaiveDate, Utc};
use platform::grpc::TracedChannel;
use proto::analytics::v1 as pb;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;
use crate::money::Money;

/// Most activity entries analytics hands out in one call.
pub const ACTIVITY_LIMIT_MAX: u32 = 200;

/// A cheap-to-clone handle on the analytics service.
#[derive(Clone, Debug)]
pub struct AnalyticsClient {
    client: AnalyticsServiceClient<TracedChannel>,
}

/// Everything so far, over every day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Totals {
    pub bookings: u64,
    pub seats_sold: u64,
    /// Net of refunds of bookings, one entry per currency (never converted).
    pub revenue: Vec<Money>,
    /// Before refunds, per currency.
    pub gross: Vec<Money>,
    /// Refunds of bookings, per currency.
    pub refunded: Vec<Money>,
    /// Every refund, including those of checkouts whose seats were lost.
    pub refunds: u64,
    /// Checkouts paid whose seats were lost (and refunded).
    pub rejected: u64,
    /// Seats offered by the showtimes that sold at least one seat.
    pub seats_offered: u64,
    /// `seats_sold / seats_offered`, 0 to 1.
    pub occupancy: f64,
}

/// One UTC day of the chosen range; days without activity are included with
/// zeroes so a chart has no gaps.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DayRevenue {
    #[schema(value_type = String, format = Date, example = "2026-11-22")]
    pub date: NaiveDate,
    /// That day's bookings minus that day's refunds of bookings, per currency.
    pub revenue: Vec<Money>,
    pub bookings: u64,
    pub seats_sold: u64,
    pub refunded: Vec<Money>,
}

/// A film's figures, for the top-films list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FilmFigures {
    #[schema(format = "uuid")]
    pub film_id: String,
    pub film_title: String,
    pub bookings: u64,
    pub seats_sold: u64,
    /// Net of refunds of its bookings, per currency.
    pub revenue: Vec<Money>,
}

/// Seats sold of one showtime. Analytics does not know the cinema's time
/// zone, so `starts_at` is UTC.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShowtimeOccupancy {
    #[schema(format = "uuid")]
    pub showtime_id: String,
    pub film_title: String,
    pub cinema_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub seats_sold: u32,
    pub seats_offered: u32,
    /// 0 to 1.
    pub occupancy: f64,
}

/// One line of the recent-activity log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActivityEntry {
    pub at: Option<DateTime<Utc>>,
    /// `booking.confirmed`, `booking.rejected` or `refund.succeeded`.
    #[schema(example = "booking.confirmed")]
    pub kind: String,
    /// For staff, e.g. "2 seats for Dune at Roxy (E5, E6)"; never an email.
    pub summary: String,
    /// The booking reference, or the checkout id when there is none.
    pub reference: String,
    /// The money the event moved, if any.
    pub amount: Option<Money>,
}

/// One confirmed booking of the bookings export.
#[derive(Clone, Debug)]
pub struct BookingLine {
    pub reference: String,
    pub booked_at: Option<DateTime<Utc>>,
    pub film_title: String,
    pub cinema_name: String,
    /// UTC: analytics does not know the cinema's time zone.
    pub starts_at: Option<DateTime<Utc>>,
    pub seats: u32,
    pub amount: Option<Money>,
    /// Refunded of it so far, in the amount's currency.
    pub refunded_minor: i64,
}

/// A page of the bookings export, and the token of the next (`None` on the
/// last page).
#[derive(Clone, Debug)]
pub struct BookingsPage {
    pub bookings: Vec<BookingLine>,
    pub next: Option<String>,
}

/// What the staff dashboard shows, for a range of UTC days.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Stats {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub totals: Totals,
    /// Every day of `from..=to`, oldest first.
    pub revenue_by_day: Vec<DayRevenue>,
    pub top_films: Vec<FilmFigures>,
    /// Showtimes that sold a seat, soonest first.
    pub occupancy: Vec<ShowtimeOccupancy>,
    /// Newest first.
    pub activity: Vec<ActivityEntry>,
}

/// How many of each list the dashboard shows.
#[derive(Clone, Copy, Debug)]
pub struct StatsLimits {
    pub top_films: u32,
    pub showtimes: u32,
    pub activity: u32,
}

impl Default for StatsLimits {
    fn default() -> Self {
        Self {
            top_films: 10,
            showtimes: 50,
            activity: 20,
        }
    }
}

impl AnalyticsClient {
    pub fn new(channel: TracedChannel) -> Self {
        Self {
            client: AnalyticsServiceClient::new(channel),
        }
    }

    /// Every dashboard figure for the UTC days `from..=to`.
    pub async fn stats(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limits: StatsLimits,
    ) -> Result<Stats, Error> {
        let (mut totals_client, mut days_client, mut films_client, mut occupancy_client) = (
            self.client.clone(),
            self.client.clone(),
            self.client.clone(),
            self.client.clone(),
        );
        let (totals, days, films, occupancy, activity) = tokio::try_join!(
            async {
                totals_client
                    .get_totals(pb::GetTotalsRequest {})
                    .await
                    .map_err(unavailable_or)
            },
            async {
                days_client
                    .get_revenue_by_day(pb::GetRevenueByDayRequest {
                        from_date: from.to_string(),
                        until_date: to.to_string(),
                    })
                    .await
                    .map_err(unavailable_or)
            },
            async {
                films_client
                    .get_top_films(pb::GetTopFilmsRequest {
                        limit: limits.top_films,
                    })
                    .await
                    .map_err(unavailable_or)
            },
            async {
                occupancy_client
                    .get_occupancy(pb::GetOccupancyRequest {
                        limit: limits.showtimes,
                        starting_from: None,
                    })
                    .await
                    .map_err(unavailable_or)
            },
            self.activity(limits.activity),
        )?;
        let totals = totals.into_inner();
        let occupancy = occupancy.into_inner();
        Ok(Stats {
            from,
            to,
            totals: Totals {
                bookings: totals.bookings,
                seats_sold: totals.seats_sold,
                revenue: money(totals.revenue),
                gross: money(totals.gross),
                refunded: money(totals.refunded),
                refunds: totals.refunds,
                rejected: totals.rejected,
                // Both from GetOccupancy, so the ratio matches its parts.
                seats_offered: occupancy.seats_offered,
                occupancy: occupancy.occupancy,
            },
            revenue_by_day: every_day(from, to, days.into_inner().days),
            top_films: films
                .into_inner()
                .films
                .into_iter()
                .map(|film| FilmFigures {
                    film_id: film.film_id,
                    film_title: film.film_title,
                    bookings: film.bookings,
                    seats_sold: film.seats_sold,
                    revenue: money(film.revenue),
                })
                .collect(),
            occupancy: occupancy
                .showtimes
                .into_iter()
                .map(|showtime| ShowtimeOccupancy {
                    starts_at: showtime
                        .starts_at
                        .as_ref()
                        .and_then(proto::time::from_timestamp),
                    showtime_id: showtime.showtime_id,
                    film_title: showtime.film_title,
                    cinema_name: showtime.cinema_name,
                    seats_sold: showtime.seats_sold,
                    seats_offered: showtime.seats_offered,
                    occupancy: showtime.occupancy,
                })
                .collect(),
            activity,
        })
    }

    /// The newest `limit` activity entries (at most [`ACTIVITY_LIMIT_MAX`]),
    /// newest first.
    pub async fn activity(&self, limit: u32) -> Result<Vec<ActivityEntry>, Error> {
        let entries = self
            .client
            .clone()
            .list_activity(pb::ListActivityRequest {
                limit: limit.min(ACTIVITY_LIMIT_MAX),
            })
            .await
            .map_err(unavailable_or)?
            .into_inner()
            .entries;
        Ok(entries
            .into_iter()
            .map(|entry| ActivityEntry {
                at: entry.at.as_ref().and_then(proto::time::from_timestamp),
                kind: entry.kind,
                summary: entry.summary,
                reference: entry.reference,
                amount: entry.amount.map(|m| Money::new(m.amount_minor, m.currency)),
            })
            .collect())
    }
}

impl AnalyticsClient {
    /// The confirmed bookings made on `from..=to` (UTC days), oldest first,
    /// one page: start with `token` `None`, then pass each page's `next`.
    pub async fn bookings_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        token: Option<String>,
    ) -> Result<BookingsPage, Error> {
        let page = self
            .client
            .clone()
            .list_bookings(pb::ListBookingsRequest {
                from_date: from.format("%Y-%m-%d").to_string(),
                until_date: to.format("%Y-%m-%d").to_string(),
                page_size: BOOKINGS_PAGE_SIZE,
                page_token: token.unwrap_or_default(),
            })
            .await
            .map_err(unavailable_or)?
            .into_inner();
        Ok(BookingsPage {
            bookings: page
                .bookings
                .into_iter()
                .map(|line| BookingLine {
                    reference: line.reference,
                    booked_at: line
                        .booked_at
                        .as_ref()
                        .and_then(proto::time::from_timestamp),
                    film_title: line.film_title,
                    cinema_name: line.cinema_name,
                    starts_at: line
                        .starts_at
                        .as_ref()
                        .and_then(proto::time::from_timestamp),
                    seats: line.seats,
                    amount: line.amount.map(|m| Money::new(m.amount_minor, m.currency)),
                    refunded_minor: line.refunded_minor,
                })
                .collect(),
            next: Some(page.next_page_token).filter(|t| !t.is_empty()),
        })
    }
}

/// Bookings per export page: the most analytics hands out at once.
const BOOKINGS_PAGE_SIZE: u32 = 1000;

/// Analytics' failures in the caller's terms: when it is down, the figures
/// are what is unavailable, and the message says so.
fn unavailable_or(status: tonic::Status) -> Error {
    match Error::from(status) {
        Error::Unavailable(_) => Error::Unavailable(
            "The figures are unavailable right now (analytics is not answering); please try \
             again in a moment."
                .to_owned(),
        ),
        other => other,
    }
}

fn money(amounts: Vec<pb::Money>) -> Vec<Money> {
    amounts
        .into_iter()
        .map(|m| Money::new(m.amount_minor, m.currency))
        .collect()
}

/// Analytics lists only days with activity; the dashboard wants every day
/// of the range, oldest first. A day analytics sends with a date it cannot
/// read (never, unless analytics changes) is dropped and logged.
fn every_day(from: NaiveDate, to: NaiveDate, days: Vec<pb::DayRevenue>) -> Vec<DayRevenue> {
    let mut known: std::collections::HashMap<NaiveDate, pb::DayRevenue> = Default::default();
    for day in days {
        match day.date.parse::<NaiveDate>() {
            Ok(date) => {
                known.insert(date, day);
            }
            Err(_) => tracing::warn!(date = %day.date, "analytics sent an unreadable day"),
        }
    }
    from.iter_days()
        .take_while(|date| *date <= to)
        .map(|date| match known.remove(&date) {
            Some(day) => DayRevenue {
                date,
                revenue: money(day.revenue),
                bookings: day.bookings,
                seats_sold: day.seats_sold,
                refunded: money(day.refunded),
            },
            None => DayRevenue {
                date,
                revenue: Vec::new(),
                bookings: 0,
                seats_sold: 0,
                refunded: Vec::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_of_the_range_is_listed_even_without_activity() {
        let date = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let days = every_day(
            date(20),
            date(23),
            vec![pb::DayRevenue {
                date: "2026-11-22".into(),
                revenue: vec![pb::Money {
                    currency: "INR".into(),
                    amount_minor: 50_000,
                }],
                bookings: 1,
                seats_sold: 2,
                refunded: vec![],
            }],
        );
        let listed: Vec<_> = days.iter().map(|d| (d.date, d.bookings)).collect();
        assert_eq!(
            listed,
            vec![(date(20), 0), (date(21), 0), (date(22), 1), (date(23), 0)]
        );
        assert_eq!(days[2].revenue, vec![Money::new(50_000, "INR")]);
    }
}
