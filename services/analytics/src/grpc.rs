//! `bookmyseat.analytics.v1.AnalyticsService`: the dashboard's questions,
//! answered from the read model ([`crate::store`]).
//!
//! Requests are checked at this edge (limits clamped to a bound, dates
//! parsed) and answered with protobuf types; a database outage is
//! `UNAVAILABLE`, a malformed date `INVALID_ARGUMENT`. The service is
//! read-only: only the event consumers write.

use chrono::{NaiveDate, Utc};
use proto::analytics::v1 as pb;
use proto::analytics::v1::analytics_service_server::AnalyticsService as AnalyticsApi;
use proto::time::{from_timestamp, to_timestamp};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::domain::{AnalyticsError, Money, ratio};
use crate::store;

/// The gRPC service over analytics' database.
#[derive(Clone, Debug)]
pub struct AnalyticsService {
    pool: PgPool,
}

impl AnalyticsService {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn money(list: &[Money]) -> Vec<pb::Money> {
    list.iter()
        .map(|m| pb::Money {
            currency: m.currency.clone(),
            amount_minor: m.amount_minor,
        })
        .collect()
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A requested limit: `default` for 0, at most `max`.
fn limit(requested: u32, default: u32, max: u32) -> i64 {
    i64::from(if requested == 0 {
        default
    } else {
        requested.min(max)
    })
}

fn date(value: &str, field: &str) -> Result<Option<NaiveDate>, AnalyticsError> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            AnalyticsError::InvalidArgument(format!("{field} must be YYYY-MM-DD, not {value:?}"))
        })
}

/// Longest span one revenue-by-day request may cover.
const MAX_DAYS: i64 = 366;

#[tonic::async_trait]
impl AnalyticsApi for AnalyticsService {
    async fn get_totals(
        &self,
        _request: Request<pb::GetTotalsRequest>,
    ) -> Result<Response<pb::Totals>, Status> {
        let totals = store::totals(&self.pool)
            .await
            .map_err(AnalyticsError::from)?;
        Ok(Response::new(pb::Totals {
            bookings: count(totals.bookings),
            seats_sold: count(totals.seats_sold),
            revenue: money(&totals.revenue),
            seats_offered: count(totals.seats_offered),
            gross: money(&totals.gross),
            refunded: money(&totals.refunded),
            refunds: count(totals.refunds),
            rejected: count(totals.rejected),
        }))
    }

    async fn get_revenue_by_day(
        &self,
        request: Request<pb::GetRevenueByDayRequest>,
    ) -> Result<Response<pb::GetRevenueByDayResponse>, Status> {
        let request = request.into_inner();
        let until =
            date(&request.until_date, "until_date")?.unwrap_or_else(|| Utc::now().date_naive());
        let from = date(&request.from_date, "from_date")?
            .unwrap_or_else(|| until - chrono::Duration::days(30));
        if from > until {
            return Err(
                AnalyticsError::InvalidArgument("from_date is after until_date".into()).into(),
            );
        }
        if (until - from).num_days() >= MAX_DAYS {
            return Err(AnalyticsError::InvalidArgument(format!(
                "ask for at most {MAX_DAYS} days at a time"
            ))
            .into());
        }
        let days = store::revenue_by_day(&self.pool, from, until)
            .await
            .map_err(AnalyticsError::from)?;
        Ok(Response::new(pb::GetRevenueByDayResponse {
            days: days
                .into_iter()
                .map(|day| pb::DayRevenue {
                    date: day.date.format("%Y-%m-%d").to_string(),
                    revenue: money(&day.revenue),
                    bookings: count(day.bookings),
                    seats_sold: count(day.seats_sold),
                    refunded: money(&day.refunded),
                })
                .collect(),
        }))
    }

    async fn get_top_films(
        &self,
        request: Request<pb::GetTopFilmsRequest>,
    ) -> Result<Response<pb::GetTopFilmsResponse>, Status> {
        let limit = limit(request.into_inner().limit, 10, 100);
        let films = store::top_films(&self.pool, limit)
            .await
            .map_err(AnalyticsError::from)?;
        Ok(Response::new(pb::GetTopFilmsResponse {
            films: films
                .into_iter()
                .map(|film| pb::FilmFigures {
                    film_id: film.film_id,
                    film_title: film.film_title,
                    bookings: count(film.bookings),
                    seats_sold: count(film.seats_sold),
                    revenue: money(&film.revenue),
                })
                .collect(),
        }))
    }

    async fn get_occupancy(
        &self,
        request: Request<pb::GetOccupancyRequest>,
    ) -> Result<Response<pb::GetOccupancyResponse>, Status> {
        let request = request.into_inner();
        let starting_from = match request.starting_from.as_ref() {
            Some(at) => Some(from_timestamp(at).ok_or_else(|| {
                AnalyticsError::InvalidArgument("starting_from is not a valid time".into())
            })?),
            None => None,
        };
        let occupancy = store::occupancy(&self.pool, limit(request.limit, 50, 500), starting_from)
            .await
            .map_err(AnalyticsError::from)?;
        Ok(Response::new(pb::GetOccupancyResponse {
            showtimes: occupancy
                .showtimes
                .into_iter()
                .map(|s| pb::ShowtimeOccupancy {
                    showtime_id: s.showtime_id.to_string(),
                    film_title: s.film_title,
                    starts_at: Some(to_timestamp(s.starts_at)),
                    seats_sold: u32::try_from(s.seats_sold).unwrap_or(u32::MAX),
                    seats_offered: u32::try_from(s.seats_offered).unwrap_or(u32::MAX),
                    cinema_name: s.cinema_name,
                    occupancy: ratio(s.seats_sold, s.seats_offered),
                })
                .collect(),
            seats_sold: count(occupancy.seats_sold),
            seats_offered: count(occupancy.seats_offered),
            occupancy: ratio(occupancy.seats_sold, occupancy.seats_offered),
        }))
    }

    async fn list_activity(
        &self,
        request: Request<pb::ListActivityRequest>,
    ) -> Result<Response<pb::ListActivityResponse>, Status> {
        let limit = limit(request.into_inner().limit, 20, 200);
        let entries = store::activity(&self.pool, limit)
            .await
            .map_err(AnalyticsError::from)?;
        Ok(Response::new(pb::ListActivityResponse {
            entries: entries
                .into_iter()
                .map(|entry| pb::Activity {
                    at: Some(to_timestamp(entry.at)),
                    kind: entry.kind,
                    summary: entry.summary,
                    reference: entry.reference,
                    amount: entry.amount.map(|m| pb::Money {
                        currency: m.currency,
                        amount_minor: m.amount_minor,
                    }),
                })
                .collect(),
        }))
    }
}
