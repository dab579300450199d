//! Every SQL statement of analytics: facts in, figures out.
//!
//! Writes happen inside the consumer's transaction (the same one that
//! records the event ids), a batch of events at a time with one statement
//! per table ([`record`]; `UNNEST`ed arrays, so a batch costs a few round
//! trips rather than a few per event), and each is an insert that ignores a
//! row already there, so an event applied twice — a redelivery, a replay
//! after a crash — changes nothing. Figures are `GROUP BY`s over the facts at query time:
//! with one row per booking this stays fast well past a cinema chain's
//! volume (indexes on the time and film columns); when it stops being fast,
//! per-day counters maintained by the same handlers are the next step.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{
    ActivityEntry, BookingFact, BookingLine, DayFigures, Facts, FilmFigures, Money, Occupancy,
    RefundFact, ShowtimeFigures, Totals,
};

/// What [`record`] added: facts new to the read model (one recorded
/// before, under another event, is not counted again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub bookings: u64,
    pub refunds: u64,
}

/// Records a batch of facts (one event's, or a few dozen's) with one
/// statement per table, whatever the batch's size: showtimes, bookings,
/// refunds, activity.
///
/// Up to four batches run at once (the bookings consumer's concurrency) and
/// may share rows: a popular showtime, a booking delivered again under a new
/// event id. Each statement therefore takes its rows in key order, and the
/// tables always in the order above, so two batches that touch the same
/// rows queue behind one another instead of each holding a row the other
/// waits for (a deadlock, which PostgreSQL would break by failing one batch
/// and sending its events through one by one).
pub async fn record(connection: &mut PgConnection, facts: &Facts) -> sqlx::Result<Recorded> {
    write_showtimes(connection, &facts.bookings).await?;
    let bookings = insert_bookings(connection, &facts.bookings).await?;
    let refunds = insert_refunds(connection, &facts.refunds).await?;
    insert_activity(connection, &facts.activity).await?;
    Ok(Recorded { bookings, refunds })
}

/// The showtimes of `bookings`: inserted when new, their capacity updated
/// only when it changed.
async fn write_showtimes(
    connection: &mut PgConnection,
    bookings: &[BookingFact],
) -> sqlx::Result<()> {
    if bookings.is_empty() {
        return Ok(());
    }
    // One row per showtime, as its last booking in the batch has it (the
    // newest capacity): one statement may not write a row twice, and of two
    // rows for a new showtime the insert would keep the first.
    let showtimes: BTreeMap<Uuid, &BookingFact> =
        bookings.iter().map(|b| (b.showtime_id, b)).collect();
    let column =
        |f: fn(&BookingFact) -> &str| -> Vec<&str> { showtimes.values().map(|b| f(b)).collect() };
    // Every booking of a showtime carries its capacity, nearly always the
    // same: a row is written only when new or changed. (An upsert's
    // DO UPDATE would lock the row even when nothing changes, serialising
    // concurrent batches on popular showtimes.) The rows the insert adds are
    // invisible to the rest of the statement (one snapshot), so `changed`
    // compares only showtimes known before; it locks them in key order, and
    // FOR NO KEY UPDATE, the lock the update itself takes, leaves other
    // batches' bookings of the showtime (their foreign-key checks) alone.
    sqlx::query(
        "WITH batch AS ( \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
                                  $5::timestamptz[], $6::integer[]) \
             AS b(showtime_id, film_id, film_title, cinema_name, starts_at, seats_offered)), \
         inserted AS ( \
             INSERT INTO showtimes (showtime_id, film_id, film_title, cinema_name, starts_at, seats_offered) \
             SELECT * FROM batch ORDER BY showtime_id ON CONFLICT (showtime_id) DO NOTHING), \
         changed AS ( \
             SELECT s.showtime_id, b.seats_offered FROM showtimes s \
             JOIN batch b ON b.showtime_id = s.showtime_id \
             WHERE s.seats_offered <> b.seats_offered \
             ORDER BY s.showtime_id FOR NO KEY UPDATE OF s) \
         UPDATE showtimes s SET seats_offered = c.seats_offered \
         FROM changed c WHERE s.showtime_id = c.showtime_id",
    )
    .bind(showtimes.keys().copied().collect::<Vec<Uuid>>())
    .bind(column(|b| &b.film_id))
    .bind(column(|b| &b.film_title))
    .bind(column(|b| &b.cinema_name))
    .bind(showtimes.values().map(|b| b.starts_at).collect::<Vec<_>>())
    .bind(showtimes.values().map(|b| b.seats_offered).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Inserts the bookings not recorded yet; how many were new.
async fn insert_bookings(
    connection: &mut PgConnection,
    bookings: &[BookingFact],
) -> sqlx::Result<u64> {
    if bookings.is_empty() {
        return Ok(0);
    }
    // The same booking twice in a batch (a producer's retry under a new
    // event id) is one row, the first, as it would be a batch later.
    let mut unique: BTreeMap<Uuid, &BookingFact> = BTreeMap::new();
    for booking in bookings {
        unique.entry(booking.booking_id).or_insert(booking);
    }
    let column =
        |f: fn(&BookingFact) -> &str| -> Vec<&str> { unique.values().map(|b| f(b)).collect() };
    let inserted = sqlx::query(
        "INSERT INTO bookings (booking_id, reference, checkout_id, showtime_id, film_id, film_title, \
                               seats, amount_minor, currency, booked_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], \
                              $7::integer[], $8::bigint[], $9::text[], $10::timestamptz[]) \
         AS b(booking_id, reference, checkout_id, showtime_id, film_id, film_title, \
              seats, amount_minor, currency, booked_at) \
         ORDER BY booking_id ON CONFLICT (booking_id) DO NOTHING",
    )
    .bind(unique.keys().copied().collect::<Vec<Uuid>>())
    .bind(column(|b| &b.reference))
    .bind(column(|b| &b.checkout_id))
    .bind(unique.values().map(|b| b.showtime_id).collect::<Vec<_>>())
    .bind(column(|b| &b.film_id))
    .bind(column(|b| &b.film_title))
    .bind(unique.values().map(|b| b.seats).collect::<Vec<_>>())
    .bind(unique.values().map(|b| b.amount_minor).collect::<Vec<_>>())
    .bind(column(|b| &b.currency))
    .bind(unique.values().map(|b| b.booked_at).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Inserts the refunds not recorded yet; how many were new.
async fn insert_refunds(
    connection: &mut PgConnection,
    refunds: &[RefundFact],
) -> sqlx::Result<u64> {
    if refunds.is_empty() {
        return Ok(0);
    }
    let mut unique: BTreeMap<&str, &RefundFact> = BTreeMap::new();
    for refund in refunds {
        unique.entry(&refund.refund_id).or_insert(refund);
    }
    let inserted = sqlx::query(
        "INSERT INTO refunds (refund_id, checkout_id, amount_minor, currency, refunded_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[]) \
         AS r(refund_id, checkout_id, amount_minor, currency, refunded_at) \
         ORDER BY refund_id ON CONFLICT (refund_id) DO NOTHING",
    )
    .bind(unique.keys().copied().collect::<Vec<&str>>())
    .bind(
        unique
            .values()
            .map(|r| r.checkout_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(unique.values().map(|r| r.amount_minor).collect::<Vec<_>>())
    .bind(
        unique
            .values()
            .map(|r| r.currency.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(unique.values().map(|r| r.refunded_at).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Adds each event's entry to the activity log (once per event).
async fn insert_activity(
    connection: &mut PgConnection,
    entries: &[(Uuid, ActivityEntry)],
) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut unique: BTreeMap<Uuid, &ActivityEntry> = BTreeMap::new();
    for (event_id, entry) in entries {
        unique.entry(*event_id).or_insert(entry);
    }
    let column =
        |f: fn(&ActivityEntry) -> &str| -> Vec<&str> { unique.values().map(|e| f(e)).collect() };
    sqlx::query(
        "INSERT INTO activity (event_id, at, kind, summary, reference, amount_minor, currency) \
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
                              $6::bigint[], $7::text[]) \
         AS a(event_id, at, kind, summary, reference, amount_minor, currency) \
         ORDER BY event_id ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(unique.keys().copied().collect::<Vec<Uuid>>())
    .bind(unique.values().map(|e| e.at).collect::<Vec<_>>())
    .bind(column(|e| &e.kind))
    .bind(column(|e| &e.summary))
    .bind(column(|e| &e.reference))
    .bind(
        unique
            .values()
            .map(|e| e.amount.as_ref().map(|m| m.amount_minor))
            .collect::<Vec<_>>(),
    )
    .bind(
        unique
            .values()
            .map(|e| e.amount.as_ref().map(|m| m.currency.as_str()))
            .collect::<Vec<_>>(),
    )
    .execute(connection)
    .await?;
    Ok(())
}

/// Forgets every fact, and which events the given consumers have handled,
/// so the streams can be replayed from the start (see [`crate::rebuild`]).
pub async fn reset(pool: &PgPool, consumers: &[String]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("TRUNCATE bookings, showtimes, refunds, activity")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM processed_events WHERE consumer = ANY($1)")
        .bind(consumers)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM dead_letters WHERE consumer = ANY($1)")
        .bind(consumers)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

fn money(rows: Vec<(String, i64)>) -> Vec<Money> {
    rows.into_iter()
        .map(|(currency, amount_minor)| Money {
            currency,
            amount_minor,
        })
        .collect()
}

/// Refunds of bookings (a refund whose checkout became a booking), per
/// currency. Refunds of rejected checkouts never counted as revenue.
const BOOKING_REFUNDS: &str = "SELECT r.currency, sum(r.amount_minor)::bigint FROM refunds r \
     WHERE EXISTS (SELECT 1 FROM bookings b WHERE b.checkout_id = r.checkout_id) \
     GROUP BY r.currency ORDER BY r.currency";

/// Everything so far.
pub async fn totals(pool: &PgPool) -> sqlx::Result<Totals> {
    let (bookings, seats_sold): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(seats), 0)::bigint FROM bookings")
            .fetch_one(pool)
            .await?;
    let gross = money(
        sqlx::query_as(
            "SELECT currency, sum(amount_minor)::bigint FROM bookings GROUP BY currency ORDER BY currency",
        )
        .fetch_all(pool)
        .await?,
    );
    let refunded = money(sqlx::query_as(BOOKING_REFUNDS).fetch_all(pool).await?);
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds")
        .fetch_one(pool)
        .await?;
    let seats_offered: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(seats_offered), 0)::bigint FROM showtimes")
            .fetch_one(pool)
            .await?;
    let rejected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM activity WHERE kind = 'booking.rejected'")
            .fetch_one(pool)
            .await?;
    Ok(Totals {
        bookings,
        seats_sold,
        seats_offered,
        revenue: Money::net(&gross, &refunded),
        gross,
        refunded,
        refunds,
        rejected,
    })
}

/// Per UTC day in `[from, until]`: that day's bookings, and that day's
/// refunds of bookings. Days without either are left out.
pub async fn revenue_by_day(
    pool: &PgPool,
    from: NaiveDate,
    until: NaiveDate,
) -> sqlx::Result<Vec<DayFigures>> {
    let bookings: Vec<(NaiveDate, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT (booked_at AT TIME ZONE 'UTC')::date AS day, currency, count(*), \
         sum(seats)::bigint, sum(amount_minor)::bigint FROM bookings \
         WHERE (booked_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2 \
         GROUP BY day, currency ORDER BY day, currency",
    )
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let refunds: Vec<(NaiveDate, String, i64)> = sqlx::query_as(
        "SELECT (r.refunded_at AT TIME ZONE 'UTC')::date AS day, r.currency, \
         sum(r.amount_minor)::bigint FROM refunds r \
         WHERE (r.refunded_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2 \
         AND EXISTS (SELECT 1 FROM bookings b WHERE b.checkout_id = r.checkout_id) \
         GROUP BY day, r.currency ORDER BY day, r.currency",
    )
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let mut days: BTreeMap<NaiveDate, (DayFigures, Vec<Money>)> = BTreeMap::new();
    let blank = |date: NaiveDate| {
        (
            DayFigures {
                date,
                ..Default::default()
            },
            Vec::new(),
        )
    };
    for (date, currency, count, seats, amount) in bookings {
        let (day, gross) = days.entry(date).or_insert_with(|| blank(date));
        day.bookings += count;
        day.seats_sold += seats;
        gross.push(Money {
            currency,
            amount_minor: amount,
        });
    }
    for (date, currency, amount) in refunds {
        let (day, _) = days.entry(date).or_insert_with(|| blank(date));
        day.refunded.push(Money {
            currency,
            amount_minor: amount,
        });
    }
    Ok(days
        .into_values()
        .map(|(mut day, gross)| {
            day.revenue = Money::net(&gross, &day.refunded);
            day
        })
        .collect())
}

/// Films by seats sold, then bookings, then title.
pub async fn top_films(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<FilmFigures>> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT film_id, max(film_title), count(*), sum(seats)::bigint FROM bookings \
         GROUP BY film_id ORDER BY sum(seats) DESC, count(*) DESC, max(film_title), film_id \
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let gross: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT film_id, currency, sum(amount_minor)::bigint FROM bookings \
         WHERE film_id = ANY($1) GROUP BY film_id, currency ORDER BY currency",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let refunded: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT b.film_id, r.currency, sum(r.amount_minor)::bigint FROM refunds r \
         JOIN bookings b ON b.checkout_id = r.checkout_id \
         WHERE b.film_id = ANY($1) GROUP BY b.film_id, r.currency ORDER BY r.currency",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let of_film = |rows: &[(String, String, i64)], film: &str| -> Vec<Money> {
        rows.iter()
            .filter(|(id, ..)| id == film)
            .map(|(_, currency, amount)| Money {
                currency: currency.clone(),
                amount_minor: *amount,
            })
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|(film_id, film_title, bookings, seats_sold)| FilmFigures {
            revenue: Money::net(&of_film(&gross, &film_id), &of_film(&refunded, &film_id)),
            film_id,
            film_title,
            bookings,
            seats_sold,
        })
        .collect())
}

/// Seats sold against seats offered, per showtime (soonest first, from
/// `starting_from` when given) and over every showtime known.
pub async fn occupancy(
    pool: &PgPool,
    limit: i64,
    starting_from: Option<DateTime<Utc>>,
) -> sqlx::Result<Occupancy> {
    let showtimes: Vec<(Uuid, String, String, DateTime<Utc>, i32, i64)> = sqlx::query_as(
        "SELECT s.showtime_id, s.film_title, s.cinema_name, s.starts_at, s.seats_offered, \
         coalesce(sum(b.seats), 0)::bigint FROM showtimes s \
         LEFT JOIN bookings b ON b.showtime_id = s.showtime_id \
         WHERE $1::timestamptz IS NULL OR s.starts_at >= $1 \
         GROUP BY s.showtime_id ORDER BY s.starts_at, s.showtime_id LIMIT $2",
    )
    .bind(starting_from)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let (seats_offered, seats_sold): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(seats_offered), 0) FROM showtimes)::bigint, \
         (SELECT coalesce(sum(seats), 0) FROM bookings)::bigint",
    )
    .fetch_one(pool)
    .await?;
    Ok(Occupancy {
        showtimes: showtimes
            .into_iter()
            .map(
                |(showtime_id, film_title, cinema_name, starts_at, offered, sold)| {
                    ShowtimeFigures {
                        showtime_id,
                        film_title,
                        cinema_name,
                        starts_at,
                        seats_offered: i64::from(offered),
                        seats_sold: sold,
                    }
                },
            )
            .collect(),
        seats_offered,
        seats_sold,
    })
}

/// An `activity` row: at, kind, summary, reference, amount, currency.
type ActivityRow = (
    DateTime<Utc>,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

/// The newest activity entries.
pub async fn activity(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<ActivityEntry>> {
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT at, kind, summary, reference, amount_minor, currency FROM activity \
             ORDER BY at DESC, event_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(at, kind, summary, reference, amount, currency)| ActivityEntry {
                at,
                kind,
                summary,
                reference,
                amount: amount.zip(currency).map(|(amount_minor, currency)| Money {
                    currency,
                    amount_minor,
                }),
            },
        )
        .collect())
}

/// A `bookings` row joined with its showtime and refunds.
type BookingRow = (
    Uuid,
    String,
    DateTime<Utc>,
    String,
    String,
    DateTime<Utc>,
    i32,
    i64,
    String,
    i64,
);

/// Bookings made in `[from, until)`, oldest first (ties by id), after the
/// booking `after` (booked at, id) when given: keyset paging, so a page
/// costs the same however deep into the range it is.
pub async fn bookings_between(
    pool: &PgPool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<BookingLine>> {
    let rows: Vec<BookingRow> = sqlx::query_as(
        "SELECT b.booking_id, b.reference, b.booked_at, b.film_title, s.cinema_name, s.starts_at, \
                b.seats, b.amount_minor, b.currency, \
                coalesce((SELECT sum(r.amount_minor) FROM refunds r \
                          WHERE r.checkout_id = b.checkout_id), 0)::bigint \
         FROM bookings b JOIN showtimes s ON s.showtime_id = b.showtime_id \
         WHERE b.booked_at >= $1 AND b.booked_at < $2 \
           AND ($3::timestamptz IS NULL OR (b.booked_at, b.booking_id) > ($3, $4)) \
         ORDER BY b.booked_at, b.booking_id LIMIT $5",
    )
    .bind(from)
    .bind(until)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                booking_id,
                reference,
                booked_at,
                film_title,
                cinema_name,
                starts_at,
                seats,
                amount_minor,
                currency,
                refunded_minor,
            )| {
                BookingLine {
                    booking_id,
                    reference,
                    booked_at,
                    film_title,
                    cinema_name,
                    starts_at,
                    seats,
                    amount: Money {
                        currency,
                        amount_minor,
                    },
                    refunded_minor,
                }
            },
        )
        .collect())
}
