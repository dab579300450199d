//! `bookmyseat.analytics.v1.AnalyticsService`: the dashboard's questions,
//! answered from the read model ([`crate::store`]).
//!
//! Requests are checked at this edge (limits clamped to a bound, dates
//! parsed) and answered with protobuf types; a database outage is
//! `UNAVAILABLE`, a malformed date `INVALID_ARGUMENT`. The service is
//! read-only: only the event consumers write.

use chrono::{DateTime, NaiveDate, Utc};
use proto::analytics::v1 as pb;
use proto::analytics::v1::analytics_service_server::AnalyticsService as AnalyticsApi;
use proto::time::{from_timestamp, to_timestamp};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

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

/// Longest span one revenue-by-day or bookings request may cover.
const MAX_DAYS: i64 = 366;

/// A request's `from_date..=until_date`: until today and from 30 days
/// before by default, in order, at most [`MAX_DAYS`] long.
fn day_range(from: &str, until: &str) -> Result<(NaiveDate, NaiveDate), AnalyticsError> {
    let until = date(until, "until_date")?.unwrap_or_else(|| Utc::now().date_naive());
    let from = date(from, "from_date")?.unwrap_or_else(|| until - chrono::Duration::days(30));
    if from > until {
        return Err(AnalyticsError::InvalidArgument(
            "from_date is after until_date".into(),
        ));
    }
    if (until - from).num_days() >= MAX_DAYS {
        return Err(AnalyticsError::InvalidArgument(format!(
            "ask for at most {MAX_DAYS} days at a time"
        )));
    }
    Ok((from, until))
}

/// A bookings page token: where the previous page ended, as
/// `<booked_at in microseconds>.<booking id>`.
fn page_token(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

fn parse_page_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, AnalyticsError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        AnalyticsError::InvalidArgument(
            "page_token is not one this service handed out; start again without it".into(),
        )
    };
    let (micros, id) = token.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some((at, id)))
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

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
        let (from, until) = day_range(&request.from_date, &request.until_date)?;
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

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let request = request.into_inner();
        let (from, until) = day_range(&request.from_date, &request.until_date)?;
        let after = parse_page_token(&request.page_token)?;
        let size = limit(request.page_size, 500, 1000);
        let end = start_of(until) + chrono::Duration::days(1);
        // One more than the page, to know whether another page follows.
        let mut lines = store::bookings_between(&self.pool, start_of(from), end, after, size + 1)
            .await
            .map_err(AnalyticsError::from)?;
        let more = lines.len() as i64 > size;
        lines.truncate(size as usize);
        let next_page_token = match lines.last() {
            Some(last) if more => page_token(last.booked_at, last.booking_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListBookingsResponse {
            bookings: lines
                .into_iter()
                .map(|line| pb::BookingLine {
                    booking_id: line.booking_id.to_string(),
                    reference: line.reference,
                    booked_at: Some(to_timestamp(line.booked_at)),
                    film_title: line.film_title,
                    cinema_name: line.cinema_name,
                    starts_at: Some(to_timestamp(line.starts_at)),
                    seats: u32::try_from(line.seats).unwrap_or(0),
                    amount: Some(pb::Money {
                        currency: line.amount.currency,
                        amount_minor: line.amount.amount_minor,
                    }),
                    refunded_minor: line.refunded_minor,
                })
                .collect(),
            next_page_token,
        }))
    }
}
