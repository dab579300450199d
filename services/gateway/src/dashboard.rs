//! The staff dashboard (`/admin/dashboard`) and the bookings export
//! (`/admin/bookings.csv`): what has sold, for how much, and how full the
//! showtimes are, from the analytics service.
//!
//! Both sit behind [`crate::session::require_staff`] (see [`crate::router`]);
//! the JSON twin, `GET /api/v1/admin/stats`, is in [`crate::account_api`]
//! and shares [`ReportRange`] and [`crate::analytics_client`].
//!
//! The page degrades rather than fails: with analytics down it still
//! renders (200) with a "figures unavailable" notice, since staff reach the
//! rest of the staff area from it. The export and the JSON answer 503
//! instead — a half-empty file would pass for the truth.
//!
//! Charts are server-drawn SVG ([`crate::chart`]); every chart is followed
//! by a table of the same figures. Analytics counts days in UTC and does
//! not know the cinemas' time zones, so dates and times here are UTC and the
//! page says so.
//!
//! The export pages through analytics' bookings of the range (oldest
//! first) and streams them as CSV, so a year of a busy cinema is never one
//! string in memory. Its first page is fetched before the answer starts: an
//! analytics outage is a 503 rather than a file with only its header; one
//! later in the stream cuts the download short (the client sees a broken
//! transfer, never a shorter file that looks complete).

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::{StreamExt as _, stream};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::analytics_client::{BookingLine, Stats, StatsLimits};
use crate::chart::{self, Chart, Point};
use crate::csv::CsvWriter;
use crate::error::{Error, PageError};
use crate::local_time;
use crate::money::{self, Money};
use crate::session::Staff;
use crate::views::{self, Nav, Notice};

/// The dashboard routes, for [`crate::router`] (staff only there).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/dashboard", get(dashboard))
        .route("/admin/bookings.csv", get(bookings_csv))
}

/// The staff pages a test walks (GET).
pub const PAGES: &[&str] = &["/admin/dashboard", "/admin/bookings.csv"];

/// Days shown when no range is asked for: the last two weeks, today included.
pub const DEFAULT_DAYS: u64 = 14;
/// The longest range one request may ask for, in days.
pub const MAX_DAYS: u64 = 366;

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, both optional, both UTC days.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First day (UTC), inclusive; default: 13 days before `to`.
    #[param(example = "2026-11-09")]
    pub from: Option<String>,
    /// Last day (UTC), inclusive; default: today.
    #[param(example = "2026-11-22")]
    pub to: Option<String>,
}

/// A checked range of UTC days, `from..=to`, at most [`MAX_DAYS`] long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl ReportRange {
    /// Reads the query, filling in what is missing relative to `today`;
    /// a message naming the fault for anything else.
    pub fn parse(query: &RangeQuery, today: NaiveDate) -> Result<Self, Error> {
        let day = |name: &str, text: Option<&String>| -> Result<Option<NaiveDate>, Error> {
            match text.map(|t| t.trim()).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| {
                        Error::BadRequest(format!(
                            "`{name}` must be a date written YYYY-MM-DD (such as 2026-11-22), \
                             not {text:?}."
                        ))
                    }),
            }
        };
        let to = day("to", query.to.as_ref())?.unwrap_or(today);
        let from = match day("from", query.from.as_ref())? {
            Some(from) => from,
            None => to
                .checked_sub_days(Days::new(DEFAULT_DAYS - 1))
                .unwrap_or(NaiveDate::MIN),
        };
        if from > to {
            return Err(Error::BadRequest(format!(
                "The range starts ({from}) after it ends ({to}); swap the dates."
            )));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS as i64 {
            return Err(Error::BadRequest(format!(
                "The range covers {days} days; ask for at most {MAX_DAYS} at a time."
            )));
        }
        Ok(Self { from, to })
    }

    /// Whether `at` falls on one of the range's UTC days.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        (self.from..=self.to).contains(&at.date_naive())
    }
}

/// Today, as analytics counts days.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The range of a request, or the 400 that explains what is wrong with it.
pub fn range_of(query: Result<Query<RangeQuery>, QueryRejection>) -> Result<ReportRange, Error> {
    let Query(query) = query?;
    ReportRange::parse(&query, today())
}

/// A headline figure.
#[derive(Clone, Debug)]
pub struct Figure {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
}

/// Revenue per day in one currency.
#[derive(Clone, Debug)]
pub struct RevenueChart {
    pub currency: String,
    pub chart: Chart,
}

/// A row of the per-day table.
#[derive(Clone, Debug)]
pub struct DayRow {
    pub date: String,
    pub bookings: u64,
    pub seats_sold: u64,
    pub revenue: String,
    pub refunded: String,
}

/// A row of the top-films table.
#[derive(Clone, Debug)]
pub struct FilmRow {
    pub title: String,
    pub bookings: u64,
    pub seats_sold: u64,
    pub revenue: String,
}

/// A row of the occupancy table.
#[derive(Clone, Debug)]
pub struct ShowtimeRow {
    pub film_title: String,
    pub cinema_name: String,
    pub starts_at: String,
    pub seats: String,
    pub percent: String,
}

/// A row of the activity table.
#[derive(Clone, Debug)]
pub struct ActivityRow {
    pub at: String,
    pub kind: &'static str,
    pub summary: String,
    pub reference: String,
    pub amount: String,
}

/// The figures, ready to print.
#[derive(Clone, Debug)]
pub struct Figures {
    pub headline: Vec<Figure>,
    pub revenue_charts: Vec<RevenueChart>,
    pub days: Vec<DayRow>,
    pub films_chart: Chart,
    pub films: Vec<FilmRow>,
    pub showtimes: Vec<ShowtimeRow>,
    pub activity: Vec<ActivityRow>,
}

/// `GET /admin/dashboard`.
#[derive(Template)]
#[template(path = "admin_dashboard.html")]
pub struct DashboardPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub from: String,
    pub to: String,
    pub max_days: u64,
    pub notice: Option<Notice>,
    /// `None` when analytics could not be asked.
    pub figures: Option<Figures>,
}

/// `GET /admin/dashboard?from&to`: the figures, or the page with a notice
/// when analytics is not answering.
async fn dashboard(
    State(state): State<Arc<AppState>>,
    Staff(staff): Staff,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let range = range_of(query)?;
    let (figures, notice) = match state
        .analytics
        .stats(range.from, range.to, StatsLimits::default())
        .await
    {
        Ok(stats) => (Some(figures(&stats)), None),
        Err(Error::Unavailable(_)) => (
            None,
            Some(Notice {
                is_error: true,
                message: "The figures are unavailable right now (analytics is not answering). \
                          Please try again in a moment."
                    .to_owned(),
            }),
        ),
        Err(error) => return Err(error.into()),
    };
    let page = DashboardPage {
        nav: staff.visitor.nav(),
        csrf_token: staff.visitor.csrf_token(),
        from: range.from.to_string(),
        to: range.to.to_string(),
        max_days: MAX_DAYS,
        notice,
        figures,
    };
    views::respond(StatusCode::OK, &page)
}

/// `GET /admin/bookings.csv?from&to`: the bookings of the range as CSV.
async fn bookings_csv(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let range = range_of(query)?;
    let first = state
        .analytics
        .bookings_page(range.from, range.to, None)
        .await?;
    let mut head = CsvWriter::new();
    head.row(EXPORT_COLUMNS);
    write_bookings(&mut head, &first.bookings);
    let head = Bytes::from(head.finish());
    let analytics = state.analytics.clone();
    let rest = stream::unfold(first.next, move |token| {
        let analytics = analytics.clone();
        async move {
            let page = analytics
                .bookings_page(range.from, range.to, Some(token?))
                .await;
            Some(match page {
                Ok(page) => {
                    let mut csv = CsvWriter::new();
                    write_bookings(&mut csv, &page.bookings);
                    (Ok(Bytes::from(csv.finish())), page.next)
                }
                Err(error) => {
                    tracing::error!(%error, from = %range.from, to = %range.to,
                        "bookings export cut short: analytics failed mid-stream");
                    (
                        Err(std::io::Error::other("analytics failed mid-export")),
                        None,
                    )
                }
            })
        }
    });
    let body = Body::from_stream(stream::once(async { Ok(head) }).chain(rest));
    let disposition = format!(
        "attachment; filename=\"bookings-{}-{}.csv\"",
        range.from, range.to
    );
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|_| PageError(Error::internal()))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The export's columns, in order. Times are UTC (analytics does not know
/// the cinemas' time zones); `amount` is in major units for reading,
/// `amount_minor` and `refunded_minor` exact for sums.
pub const EXPORT_COLUMNS: &[&str] = &[
    "booked_at_utc",
    "reference",
    "film",
    "cinema",
    "starts_at_utc",
    "seats",
    "amount",
    "amount_minor",
    "currency",
    "refunded_minor",
];

/// One CSV row per booking, in [`EXPORT_COLUMNS`] order.
pub fn write_bookings(csv: &mut CsvWriter, bookings: &[BookingLine]) {
    let time = |at: Option<DateTime<Utc>>| {
        at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    for booking in bookings {
        let (amount, amount_minor, currency) = match &booking.amount {
            Some(m) => (
                money::major_units(m.amount_minor, &m.currency),
                m.amount_minor.to_string(),
                m.currency.clone(),
            ),
            None => Default::default(),
        };
        csv.row([
            time(booking.booked_at),
            booking.reference.clone(),
            booking.film_title.clone(),
            booking.cinema_name.clone(),
            time(booking.starts_at),
            booking.seats.to_string(),
            amount,
            amount_minor,
            currency,
            booking.refunded_minor.to_string(),
        ]);
    }
}

/// Amounts per currency as one line: "₹1,250 + USD 12.50"; "none" for none.
fn amounts(list: &[Money]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    list.iter()
        .map(Money::to_string)
        .collect::<Vec<_>>()
        .join(" + ")
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", (ratio * 100.0).clamp(0.0, 100.0))
}

fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// "Sun 22 Nov, 18:30 UTC".
fn utc_time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| format!("{} UTC", local_time::day_and_time(&at.fixed_offset())))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The figures of `stats`, formatted and charted.
pub fn figures(stats: &Stats) -> Figures {
    let totals = &stats.totals;
    let headline = vec![
        Figure {
            label: "Bookings",
            value: totals.bookings.to_string(),
            detail: format!(
                "{}; {}",
                plural(
                    totals.rejected,
                    "paid checkout lost its seats",
                    "paid checkouts lost their seats"
                ),
                plural(totals.refunds, "refund", "refunds")
            ),
        },
        Figure {
            label: "Seats sold",
            value: totals.seats_sold.to_string(),
            detail: format!("of {} offered by showtimes that sold", totals.seats_offered),
        },
        Figure {
            label: "Revenue",
            value: amounts(&totals.revenue),
            detail: format!(
                "net of refunds: {} gross − {} refunded",
                amounts(&totals.gross),
                amounts(&totals.refunded)
            ),
        },
        Figure {
            label: "Occupancy",
            value: percent(totals.occupancy),
            detail: "seats sold ÷ seats offered, over showtimes that sold a seat".to_owned(),
        },
    ];

    let currencies: BTreeSet<&str> = stats
        .revenue_by_day
        .iter()
        .flat_map(|day| day.revenue.iter().chain(&day.refunded))
        .map(|m| m.currency.as_str())
        .collect();
    let revenue_charts = currencies
        .into_iter()
        .map(|currency| {
            let points: Vec<Point> = stats
                .revenue_by_day
                .iter()
                .map(|day| {
                    let value = day
                        .revenue
                        .iter()
                        .filter(|m| m.currency == currency)
                        .map(|m| m.amount_minor)
                        .sum::<i64>();
                    let text = money::format(value, currency);
                    Point {
                        label: day.date.format("%-d %b").to_string(),
                        value,
                        title: format!(
                            "{}: {text} net, {}, {}",
                            local_time::long_day(day.date),
                            plural(day.bookings, "booking", "bookings"),
                            plural(day.seats_sold, "seat", "seats"),
                        ),
                        value_text: text,
                    }
                })
                .collect();
            RevenueChart {
                currency: currency.to_owned(),
                chart: chart::columns(&points),
            }
        })
        .collect();
    let days = stats
        .revenue_by_day
        .iter()
        .rev()
        .map(|day| DayRow {
            date: day.date.format("%a %-d %b %Y").to_string(),
            bookings: day.bookings,
            seats_sold: day.seats_sold,
            revenue: amounts(&day.revenue),
            refunded: amounts(&day.refunded),
        })
        .collect();

    let film_points: Vec<Point> = stats
        .top_films
        .iter()
        .map(|film| Point {
            label: film.film_title.clone(),
            value: i64::try_from(film.seats_sold).unwrap_or(i64::MAX),
            title: format!(
                "{}: {}, {}, {}",
                film.film_title,
                plural(film.seats_sold, "seat", "seats"),
                plural(film.bookings, "booking", "bookings"),
                amounts(&film.revenue)
            ),
            value_text: plural(film.seats_sold, "seat", "seats"),
        })
        .collect();
    let films = stats
        .top_films
        .iter()
        .map(|film| FilmRow {
            title: film.film_title.clone(),
            bookings: film.bookings,
            seats_sold: film.seats_sold,
            revenue: amounts(&film.revenue),
        })
        .collect();
    let showtimes = stats
        .occupancy
        .iter()
        .map(|showtime| ShowtimeRow {
            film_title: showtime.film_title.clone(),
            cinema_name: showtime.cinema_name.clone(),
            starts_at: utc_time(showtime.starts_at),
            seats: format!("{} / {}", showtime.seats_sold, showtime.seats_offered),
            percent: percent(showtime.occupancy),
        })
        .collect();
    let activity = stats
        .activity
        .iter()
        .map(|entry| ActivityRow {
            at: utc_time(entry.at),
            kind: match entry.kind.as_str() {
                "booking.confirmed" => "Booking",
                "booking.rejected" => "Seats lost",
                "refund.succeeded" => "Refund",
                _ => "Other",
            },
            summary: entry.summary.clone(),
            reference: entry.reference.clone(),
            amount: entry
                .amount
                .as_ref()
                .map(Money::to_string)
                .unwrap_or_default(),
        })
        .collect();
    Figures {
        headline,
        revenue_charts,
        days,
        films_chart: chart::rows(&film_points),
        films,
        showtimes,
        activity,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn query(from: Option<&str>, to: Option<&str>) -> RangeQuery {
        RangeQuery {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        }
    }

    #[test]
    fn no_range_means_the_last_fourteen_days() {
        let today = date(2026, 11, 22);
        let range = ReportRange::parse(&query(None, None), today).unwrap();
        assert_eq!((range.from, range.to), (date(2026, 11, 9), today));
        let blank = ReportRange::parse(&query(Some(""), Some(" ")), today).unwrap();
        assert_eq!(blank, range, "an empty form field is no field");
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        let today = date(2026, 11, 22);
        let refused =
            |from: &str, to: &str| match ReportRange::parse(&query(Some(from), Some(to)), today) {
                Err(Error::BadRequest(message)) => message,
                other => panic!("{from}..{to}: {other:?}"),
            };
        assert!(refused("2026-13-01", "2026-12-01").contains("YYYY-MM-DD"));
        assert!(refused("yesterday", "2026-12-01").contains("`from`"));
        assert!(refused("2026-11-01", "22/11/2026").contains("`to`"));
        assert!(refused("2026-11-22", "2026-11-21").contains("after it ends"));
        assert!(refused("2025-01-01", "2026-01-02").contains("at most 366"));
        // 366 days exactly is fine; one day is fine.
        assert!(ReportRange::parse(&query(Some("2025-01-01"), Some("2026-01-01")), today).is_ok());
        assert!(ReportRange::parse(&query(Some("2026-11-22"), Some("2026-11-22")), today).is_ok());
    }

    #[test]
    fn export_rows_are_quoted_and_guarded_and_amounts_exact() {
        let at = |d: u32| Utc.with_ymd_and_hms(2026, 11, d, 10, 0, 0).unwrap();
        let line = |reference: &str, film: &str, refunded_minor: i64| BookingLine {
            reference: reference.to_owned(),
            booked_at: Some(at(21)),
            film_title: film.to_owned(),
            cinema_name: "Roxy".to_owned(),
            starts_at: Some(at(28)),
            seats: 2,
            amount: Some(Money::new(50_050, "INR")),
            refunded_minor,
        };
        let mut csv = CsvWriter::new();
        write_bookings(
            &mut csv,
            &[
                line("BMS-AAAA", "Dune, Part Two", 0),
                line("BMS-BBBB", "=HYPERLINK(\"x\")", 50_050),
            ],
        );
        assert_eq!(
            csv.finish(),
            "2026-11-21T10:00:00Z,BMS-AAAA,\"Dune, Part Two\",Roxy,2026-11-28T10:00:00Z,2,500.50,50050,INR,0\r\n\
             2026-11-21T10:00:00Z,BMS-BBBB,\"'=HYPERLINK(\"\"x\"\")\",Roxy,2026-11-28T10:00:00Z,2,500.50,50050,INR,50050\r\n"
        );
    }
}
