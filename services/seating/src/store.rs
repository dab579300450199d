//! All of seating's SQL.
//!
//! Two rules keep a seat from being held or sold twice, with any number of
//! replicas on one database:
//!
//! 1. **Ownership changes only through conditional updates.** A seat is taken
//!    by one `UPDATE seats … WHERE <the seat is free> … RETURNING label`; if
//!    fewer rows come back than were asked for, the transaction is rolled
//!    back and nothing changed. "Free" is computed from `held_until` against
//!    the request's clock, so an expired hold frees its seats even when no
//!    sweeper has run.
//! 2. **Every writing transaction first locks its showtime's row** and bumps
//!    its `version` ([`lock_showtime`]; the hold and the release do both in
//!    the SQL functions `seating_hold` and `seating_release`, so that they
//!    are one round trip each). That row lock orders the writers of one showtime:
//!    seat rows are then never locked in conflicting orders (no deadlocks),
//!    a user's "replace my previous hold" sees the previous hold committed,
//!    and the version published with `SeatsChanged` matches the commit order.
//!    Showtimes do not contend with each other.
//!
//! Reads run at READ COMMITTED; the seat map reads the version and the
//! seats in one statement, so they come from one snapshot and the map is
//! exactly the version it carries.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{HoldStatus, SeatState, SeatingError, new_booking_reference};

/// What seating keeps of a showtime from catalog.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Showtime {
    pub id: Uuid,
    pub film_id: Uuid,
    pub film_title: String,
    pub poster_url: String,
    pub cinema_name: String,
    pub cinema_time_zone: String,
    pub screen_name: String,
    pub starts_at: DateTime<Utc>,
    pub currency: String,
    pub capacity: i32,
    pub version: i64,
}

/// One seat of a layout, as materialised.
#[derive(Clone, Debug)]
pub struct SeatSpec {
    pub label: String,
    pub row_label: String,
    pub number: i32,
    pub category: String,
}

/// A hold with its seats (label, category) in the order asked for.
#[derive(Clone, Debug)]
pub struct Hold {
    pub id: Uuid,
    pub showtime_id: Uuid,
    pub user_id: String,
    pub seats: Vec<(String, String)>,
    pub held_until: DateTime<Utc>,
    pub status: HoldStatus,
    pub created_at: DateTime<Utc>,
}

impl Hold {
    /// The status a caller sees: an active hold past its time has expired.
    pub fn status_at(&self, now: DateTime<Utc>) -> HoldStatus {
        match self.status {
            HoldStatus::Active if self.held_until <= now => HoldStatus::Expired,
            status => status,
        }
    }

    pub fn labels(&self) -> Vec<String> {
        self.seats.iter().map(|(label, _)| label.clone()).collect()
    }
}

/// A confirmed booking with what a ticket shows.
#[derive(Clone, Debug)]
pub struct Booking {
    pub id: Uuid,
    pub reference: String,
    pub checkout_id: String,
    pub user_id: String,
    pub user_email: String,
    pub showtime: Showtime,
    pub seats: Vec<(String, String)>,
    pub amount_minor: i64,
    pub currency: String,
    pub refunded: bool,
    pub booked_at: DateTime<Utc>,
}

/// Seats whose state changed in one commit, and the version after it.
#[derive(Clone, Debug, Default)]
pub struct SeatChanges {
    pub showtime_id: Uuid,
    pub version: i64,
    /// (label, new state, holding hold)
    pub seats: Vec<(String, SeatState, Option<Uuid>)>,
}

impl SeatChanges {
    fn new(showtime_id: Uuid, version: i64) -> Self {
        Self {
            showtime_id,
            version,
            seats: Vec::new(),
        }
    }

    fn push(&mut self, labels: &[String], state: SeatState, hold: Option<Uuid>) {
        self.seats
            .extend(labels.iter().map(|l| (l.clone(), state, hold)));
    }
}

// ---------------------------------------------------------------- showtimes

pub async fn get_showtime(pool: &PgPool, id: Uuid) -> Result<Option<Showtime>, SeatingError> {
    Ok(sqlx::query_as::<_, Showtime>(
        "SELECT id, film_id, film_title, poster_url, cinema_name, cinema_time_zone, \
                screen_name, starts_at, currency, capacity, version \
         FROM showtimes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Stores a showtime and its seats unless they exist. Idempotent and safe to
/// race: the loser's inserts do nothing.
pub async fn materialise(
    pool: &PgPool,
    showtime: &Showtime,
    seats: &[SeatSpec],
) -> Result<(), SeatingError> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO showtimes (id, film_id, film_title, poster_url, cinema_name, \
             cinema_time_zone, screen_name, starts_at, currency, capacity) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(showtime.id)
    .bind(showtime.film_id)
    .bind(&showtime.film_title)
    .bind(&showtime.poster_url)
    .bind(&showtime.cinema_name)
    .bind(&showtime.cinema_time_zone)
    .bind(&showtime.screen_name)
    .bind(showtime.starts_at)
    .bind(&showtime.currency)
    .bind(showtime.capacity)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        let labels: Vec<&str> = seats.iter().map(|s| s.label.as_str()).collect();
        let rows: Vec<&str> = seats.iter().map(|s| s.row_label.as_str()).collect();
        let numbers: Vec<i32> = seats.iter().map(|s| s.number).collect();
        let categories: Vec<&str> = seats.iter().map(|s| s.category.as_str()).collect();
        sqlx::query(
            "INSERT INTO seats (showtime_id, label, row_label, number, category, sort_order) \
             SELECT $1, label, row_label, number, category, ordinality::integer \
             FROM unnest($2::text[], $3::text[], $4::integer[], $5::text[]) \
                  WITH ORDINALITY AS s(label, row_label, number, category, ordinality)",
        )
        .bind(showtime.id)
        .bind(&labels)
        .bind(&rows)
        .bind(&numbers)
        .bind(&categories)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Locks the showtime's row for this transaction and bumps its version (see
/// the module comment). Returns the new version.
pub async fn lock_showtime(
    connection: &mut PgConnection,
    showtime_id: Uuid,
) -> Result<i64, SeatingError> {
    sqlx::query_scalar("UPDATE showtimes SET version = version + 1 WHERE id = $1 RETURNING version")
        .bind(showtime_id)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| SeatingError::not_found("showtime", showtime_id))
}

/// The seats of the showtime's hall in the seat map's order (front row
/// first, then by number), each with its `sort_order`.
pub async fn seat_layout(
    pool: &PgPool,
    showtime_id: Uuid,
) -> Result<Vec<(i32, SeatSpec)>, SeatingError> {
    let rows: Vec<(i32, String, String, i32, String)> = sqlx::query_as(
        "SELECT sort_order, label, row_label, number, category FROM seats \
         WHERE showtime_id = $1 ORDER BY sort_order",
    )
    .bind(showtime_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sort_order, label, row_label, number, category)| {
            (
                sort_order,
                SeatSpec {
                    label,
                    row_label,
                    number,
                    category,
                },
            )
        })
        .collect())
}

/// The seat map's changing part in one statement (one snapshot, so the
/// version and the seats agree): `$1` showtime, `$2` now, `$3` the caller
/// (or NULL). Public for the plan tests that keep it so.
///
/// Only the seats that are not available come back, packed into one
/// integer each (see [`TakenSeat::unpack`]) in one array: the hall's layout
/// never changes and seating keeps it in memory
/// ([`crate::catalog::KnownShowtime`]), so the database is not asked for
/// 120 labels, rows and categories at every read. A thousand buyers read
/// the map at once when a popular showtime opens, and each row and column
/// sent was work for PostgreSQL and for decoding here; the array costs a
/// fraction of that (pgbench, 120-seat hall: 0.19 ms a map as rows in
/// order, 0.11 ms as this array, 0.07 ms a query doing nothing). No
/// `ORDER BY`: an ordered aggregate sorts, and the positions say where
/// each seat goes.
///
/// Only the caller's own active hold is looked up (through the
/// one-active-hold-per-user index); joining seats to `holds` instead made
/// every map read scan the whole history of holds once the table had grown.
///
/// The showtime is compared as `(SELECT $1::uuid)`, a value the planner
/// cannot see, so that a plan made for one showtime costs what the generic
/// plan costs. Given `$1` itself, PostgreSQL estimated that showtime's seats
/// from the column's most common values, the generic plan from the average,
/// and, finding the generic one dearer, planned the seat map again at nearly
/// every call (6,931 plans in 7,552 calls in a booking benchmark; 0.21 ms
/// of planning against 0.26 ms of running). The plan is the same either
/// way; now it is made once per connection.
pub const SEAT_MAP_QUERY: &str = "\
    SELECT t.version, \
           (SELECT array_agg(s.sort_order * 4 + \
                       CASE WHEN s.booking_id IS NOT NULL THEN 0 \
                            WHEN s.blocked THEN 1 \
                            WHEN s.hold_id = (SELECT h.id FROM holds h \
                                              WHERE h.showtime_id = $1 AND h.user_id = $3 \
                                                AND h.status = 'active') THEN 3 \
                            ELSE 2 END) \
              FROM seats s \
             WHERE s.showtime_id = t.id \
               AND (s.booking_id IS NOT NULL OR s.blocked OR s.held_until > $2)) \
    FROM showtimes t WHERE t.id = (SELECT $1::uuid)";

/// A seat that is not available, as the seat map query reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TakenSeat {
    /// The seat's `sort_order`.
    pub sort_order: i32,
    pub state: SeatState,
    /// Held by the caller's own live hold.
    pub held_by_caller: bool,
}

impl TakenSeat {
    /// One element of [`SEAT_MAP_QUERY`]'s array: `sort_order * 4` plus 0
    /// booked, 1 blocked, 2 held, 3 held by the caller.
    pub fn unpack(packed: i32) -> Self {
        let (state, held_by_caller) = match packed & 3 {
            0 => (SeatState::Booked, false),
            1 => (SeatState::Blocked, false),
            2 => (SeatState::Held, false),
            _ => (SeatState::Held, true),
        };
        Self {
            sort_order: packed >> 2,
            state,
            held_by_caller,
        }
    }
}

/// The map's version and every seat that is not available at `now`.
pub async fn seat_map(
    db: impl sqlx::PgExecutor<'_>,
    showtime_id: Uuid,
    caller: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(i64, Vec<TakenSeat>), SeatingError> {
    let (version, packed): (i64, Option<Vec<i32>>) = sqlx::query_as(SEAT_MAP_QUERY)
        .bind(showtime_id)
        .bind(now)
        .bind(caller)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| SeatingError::not_found("showtime", showtime_id))?;
    let taken = packed
        .unwrap_or_default()
        .into_iter()
        .map(TakenSeat::unpack)
        .collect();
    Ok((version, taken))
}

/// Runs the rush's two statements, the seat map and the hold, once on a new
/// connection, for a showtime that cannot exist (the nil UUID), so they
/// change nothing. The first call of `seating_hold` on a connection costs
/// 3-8 ms (compiling the function, planning its statements, sqlx preparing
/// the call) against 0.2 ms after; without this, each pooled connection's
/// first hold pays that in the middle of a rush.
///
/// Only an optimisation: a failure (a database not migrated yet) is logged
/// and the connection served as it is.
pub fn warm_up(
    connection: &mut PgConnection,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let (nobody, now) = (Uuid::nil(), Utc::now());
        let seat_map = seat_map(&mut *connection, nobody, Some("warm-up"), now)
            .await
            .map(drop);
        let hold = hold_seats(
            &mut *connection,
            nobody,
            "warm-up",
            &["A1".to_owned()],
            vec![String::new()],
            now,
            now,
        )
        .await
        .map(drop);
        for answer in [seat_map, hold] {
            match answer {
                Ok(()) | Err(SeatingError::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, "a new database connection could not be warmed up");
                }
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------- holds

/// What a hold request came to.
#[derive(Debug)]
pub enum HoldOutcome {
    Held {
        hold: Hold,
        changes: SeatChanges,
    },
    /// Nothing changed; these seats are held, booked or blocked.
    Unavailable(Vec<String>),
}

/// Holds every seat in `labels` for `user_id` until `held_until`, replacing
/// the user's previous hold on the showtime, or changes nothing.
pub async fn hold_seats(
    db: impl sqlx::PgExecutor<'_>,
    showtime_id: Uuid,
    user_id: &str,
    labels: &[String],
    categories: Vec<String>,
    now: DateTime<Utc>,
    held_until: DateTime<Utc>,
) -> Result<HoldOutcome, SeatingError> {
    // One round trip: the statements live in the database (migration
    // 20261201000003), so the showtime lock is never held across the network.
    let hold_id = Uuid::now_v7();
    let (version, unavailable, freed): (Option<i64>, Option<Vec<String>>, Option<Vec<String>>) =
        sqlx::query_as(
            "SELECT seats_version, unavailable, freed FROM seating_hold($1, $2, $3, $4, $5, $6)",
        )
        .bind(showtime_id)
        .bind(user_id)
        .bind(labels)
        .bind(hold_id)
        .bind(now)
        .bind(held_until)
        .fetch_one(db)
        .await?;
    if let Some(unavailable) = unavailable {
        return Ok(HoldOutcome::Unavailable(unavailable));
    }
    let version = version.ok_or_else(|| SeatingError::not_found("showtime", showtime_id))?;
    let freed = freed.unwrap_or_default();
    // Everything the answer needs is known here; reading the row back would
    // be one more round trip on the hottest path.
    let hold = Hold {
        id: hold_id,
        showtime_id,
        user_id: user_id.to_owned(),
        seats: labels.iter().cloned().zip(categories).collect(),
        held_until,
        status: HoldStatus::Active,
        created_at: now,
    };

    let mut changes = SeatChanges::new(showtime_id, version);
    changes.push(labels, SeatState::Held, Some(hold_id));
    changes.push(&freed, SeatState::Available, None);
    Ok(HoldOutcome::Held { hold, changes })
}

const HOLD_SELECT: &str = "SELECT h.id, h.showtime_id, h.user_id, h.labels, \
        ARRAY(SELECT s.category FROM unnest(h.labels) WITH ORDINALITY AS l(label, i) \
              JOIN seats s ON s.showtime_id = h.showtime_id AND s.label = l.label \
              ORDER BY l.i) AS categories, \
        h.held_until, h.status, h.created_at \
     FROM holds h WHERE h.id = $1";

type HoldRow = (
    Uuid,
    Uuid,
    String,
    Vec<String>,
    Vec<String>,
    DateTime<Utc>,
    String,
    DateTime<Utc>,
);

fn hold_from_row(row: HoldRow) -> Hold {
    let (id, showtime_id, user_id, labels, categories, held_until, status, created_at) = row;
    Hold {
        id,
        showtime_id,
        user_id,
        seats: labels.into_iter().zip(categories).collect(),
        held_until,
        status: HoldStatus::parse(&status),
        created_at,
    }
}

async fn get_hold_in(
    connection: &mut PgConnection,
    hold_id: Uuid,
) -> Result<Option<Hold>, SeatingError> {
    Ok(sqlx::query_as::<_, HoldRow>(HOLD_SELECT)
        .bind(hold_id)
        .fetch_optional(connection)
        .await?
        .map(hold_from_row))
}

pub async fn get_hold(pool: &PgPool, hold_id: Uuid) -> Result<Option<Hold>, SeatingError> {
    let mut connection = pool.acquire().await?;
    get_hold_in(&mut connection, hold_id).await
}

/// An answer of one of seating's SQL functions that its Rust caller does not
/// know: the migration and the binary disagree.
fn unexpected_answer(function: &str, answer: &str) -> SeatingError {
    SeatingError::Database(sqlx::Error::Protocol(format!(
        "{function} answered {answer:?}"
    )))
}

/// Ends an active hold (released by its owner, or its checkout expired) and
/// frees its seats. `owner`: refuse unless the hold is this user's. A hold
/// that is no longer active is left as it is (`None`): releasing is
/// idempotent.
pub async fn release_hold(
    connection: &mut PgConnection,
    hold_id: Uuid,
    owner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<SeatChanges>, SeatingError> {
    type Released = (String, Option<Uuid>, Option<i64>, Option<Vec<String>>);
    let (outcome, showtime_id, version, freed): Released = sqlx::query_as(
        "SELECT outcome, showtime, seats_version, freed FROM seating_release($1, $2, $3)",
    )
    .bind(hold_id)
    .bind(owner)
    .bind(now)
    .fetch_one(&mut *connection)
    .await?;
    match (outcome.as_str(), showtime_id.zip(version)) {
        ("released", Some((showtime_id, version))) => {
            let mut changes = SeatChanges::new(showtime_id, version);
            changes.push(&freed.unwrap_or_default(), SeatState::Available, None);
            Ok(Some(changes))
        }
        ("inactive", _) => Ok(None),
        ("not_owner", _) => Err(SeatingError::NotHoldOwner),
        ("not_found", _) => Err(SeatingError::not_found("hold", hold_id)),
        (other, _) => Err(unexpected_answer("seating_release", other)),
    }
}

/// Moves a live hold's expiry to `until` (never earlier), but never past the
/// showtime's start — like a new hold, whatever the caller asked for. Only
/// its owner may; a hold that has ended or expired cannot be revived, and
/// nothing is extended once the showtime has started.
pub async fn extend_hold(
    pool: &PgPool,
    hold_id: Uuid,
    owner: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Hold, SeatingError> {
    // The rules live in `seating_extend` (migration 20261201000005), which
    // runs them under the showtime's lock in one round trip. The hold comes
    // back in the same statement: read in the statement's snapshot, before
    // the function ran, so everything but its expiry and status, which the
    // outcome says, is as it is now (nothing else of a hold ever changes).
    let (outcome, extended_until, hold): (String, Option<DateTime<Utc>>, Option<HoldRow>) = {
        let row: ExtendRow = sqlx::query_as(&format!(
            "SELECT e.outcome, e.extended_until, h.* FROM seating_extend($1, $2, $3, $4) e \
             LEFT JOIN LATERAL ({HOLD_SELECT}) h ON true"
        ))
        .bind(hold_id)
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_one(pool)
        .await?;
        (row.outcome, row.extended_until, row.hold.into_row())
    };
    match outcome.as_str() {
        "extended" => {}
        "unknown_hold" => return Err(SeatingError::not_found("hold", hold_id)),
        "not_owner" => return Err(SeatingError::NotHoldOwner),
        "started" => {
            return Err(SeatingError::FailedPrecondition(
                "this showtime has started; its seats can no longer be held".into(),
            ));
        }
        "ended" => {
            return Err(SeatingError::FailedPrecondition(
                "the hold has expired or ended; choose the seats again".into(),
            ));
        }
        other => return Err(unexpected_answer("seating_extend", other)),
    }
    let incomplete = || unexpected_answer("seating_extend", "extended without the hold");
    let mut hold = hold_from_row(hold.ok_or_else(incomplete)?);
    hold.held_until = extended_until.ok_or_else(incomplete)?;
    hold.status = HoldStatus::Active;
    Ok(hold)
}

/// seating_extend's answer with the hold beside it.
#[derive(sqlx::FromRow)]
struct ExtendRow {
    outcome: String,
    extended_until: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    hold: MaybeHoldRow,
}

/// [`HOLD_SELECT`]'s columns from an outer join: all NULL without a hold.
#[derive(sqlx::FromRow)]
struct MaybeHoldRow {
    id: Option<Uuid>,
    showtime_id: Option<Uuid>,
    user_id: Option<String>,
    labels: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    held_until: Option<DateTime<Utc>>,
    status: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

impl MaybeHoldRow {
    fn into_row(self) -> Option<HoldRow> {
        Some((
            self.id?,
            self.showtime_id?,
            self.user_id?,
            self.labels?,
            self.categories?,
            self.held_until?,
            self.status?,
            self.created_at?,
        ))
    }
}

// ---------------------------------------------------------------- sweeper

/// Showtimes that have active holds past their time.
pub async fn showtimes_with_expired_holds(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, SeatingError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT showtime_id FROM holds \
         WHERE status = 'active' AND held_until <= $1 LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// When the next active hold expires.
pub async fn next_expiry(pool: &PgPool) -> Result<Option<DateTime<Utc>>, SeatingError> {
    Ok(
        sqlx::query_scalar("SELECT min(held_until) FROM holds WHERE status = 'active'")
            .fetch_one(pool)
            .await?,
    )
}

/// Marks one showtime's expired holds and clears their seats. `None` when
/// another replica (or a new hold) got there first.
pub async fn expire_holds(
    pool: &PgPool,
    showtime_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<SeatChanges>, SeatingError> {
    let mut tx = pool.begin().await?;
    let version = lock_showtime(&mut tx, showtime_id).await?;
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE holds SET status = 'expired', ended_at = $2 \
         WHERE showtime_id = $1 AND status = 'active' AND held_until <= $2 RETURNING id",
    )
    .bind(showtime_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if expired.is_empty() {
        tx.rollback().await?;
        return Ok(None);
    }
    let freed = free_seats_of(&mut tx, showtime_id, &expired).await?;
    tx.commit().await?;
    let mut changes = SeatChanges::new(showtime_id, version);
    changes.push(&freed, SeatState::Available, None);
    Ok(Some(changes))
}

/// Lets go of the unsold seats of `holds`; returns their labels (the SQL
/// function `seating_free_seats`, which the hold, release and booking
/// functions use too).
async fn free_seats_of(
    connection: &mut PgConnection,
    showtime_id: Uuid,
    holds: &[Uuid],
) -> Result<Vec<String>, SeatingError> {
    let freed: Option<Vec<String>> = sqlx::query_scalar("SELECT seating_free_seats($1, $2)")
        .bind(showtime_id)
        .bind(holds)
        .fetch_one(connection)
        .await?;
    Ok(freed.unwrap_or_default())
}

// ---------------------------------------------------------------- staff

/// Blocks seats (idempotent for seats already blocked), or changes nothing
/// when any of them is held or booked.
pub async fn block_seats(
    pool: &PgPool,
    showtime_id: Uuid,
    labels: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Result<SeatChanges, Vec<String>>, SeatingError> {
    let mut tx = pool.begin().await?;
    let version = lock_showtime(&mut tx, showtime_id).await?;
    let blocked: Vec<String> = sqlx::query_scalar(
        "UPDATE seats SET blocked = true, block_reason = $3, hold_id = NULL, held_until = NULL \
         WHERE showtime_id = $1 AND label = ANY($2) AND booking_id IS NULL \
           AND (hold_id IS NULL OR held_until <= $4) \
         RETURNING label",
    )
    .bind(showtime_id)
    .bind(labels)
    .bind(reason)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if blocked.len() < labels.len() {
        tx.rollback().await?;
        return Ok(Err(labels
            .iter()
            .filter(|l| !blocked.contains(l))
            .cloned()
            .collect()));
    }
    tx.commit().await?;
    let mut changes = SeatChanges::new(showtime_id, version);
    changes.push(labels, SeatState::Blocked, None);
    Ok(Ok(changes))
}

/// Puts blocked seats back on sale; seats that were not blocked are ignored.
pub async fn unblock_seats(
    pool: &PgPool,
    showtime_id: Uuid,
    labels: &[String],
) -> Result<SeatChanges, SeatingError> {
    let mut tx = pool.begin().await?;
    let version = lock_showtime(&mut tx, showtime_id).await?;
    let unblocked: Vec<String> = sqlx::query_scalar(
        "UPDATE seats SET blocked = false, block_reason = '' \
         WHERE showtime_id = $1 AND label = ANY($2) AND blocked RETURNING label",
    )
    .bind(showtime_id)
    .bind(labels)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut changes = SeatChanges::new(showtime_id, version);
    // A blocked seat cannot be held or booked, so it is available now.
    changes.push(&unblocked, SeatState::Available, None);
    Ok(changes)
}

// ---------------------------------------------------------------- bookings

/// A paid checkout, as the booking consumer passes it in.
#[derive(Clone, Debug)]
pub struct PaidCheckout {
    pub checkout_id: String,
    pub hold_id: Uuid,
    pub user_id: String,
    pub user_email: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// What a paid checkout came to.
#[derive(Debug)]
pub enum BookingOutcome {
    Confirmed {
        booking: Box<Booking>,
        changes: SeatChanges,
    },
    /// The checkout was turned into a booking before (another event for it).
    AlreadyBooked,
    /// The hold was lost and these seats were taken by someone else.
    Rejected {
        hold: Hold,
        unavailable: Vec<String>,
        changes: SeatChanges,
    },
    /// No such hold: nothing seating can do.
    UnknownHold,
}

/// seating_book's answer with the booked showtime beside it.
#[derive(sqlx::FromRow)]
struct BookAnswer {
    outcome: String,
    seats_version: Option<i64>,
    booking_reference: Option<String>,
    unavailable: Option<Vec<String>>,
    freed: Option<Vec<String>>,
    holder: Option<String>,
    booked_labels: Option<Vec<String>>,
    booked_categories: Option<Vec<String>>,
    #[sqlx(flatten)]
    showtime: MaybeShowtime,
}

/// A [`Showtime`] from an outer join: every column NULL when there is none
/// (an unknown hold names no showtime).
#[derive(sqlx::FromRow)]
struct MaybeShowtime {
    id: Option<Uuid>,
    film_id: Option<Uuid>,
    film_title: Option<String>,
    poster_url: Option<String>,
    cinema_name: Option<String>,
    cinema_time_zone: Option<String>,
    screen_name: Option<String>,
    starts_at: Option<DateTime<Utc>>,
    currency: Option<String>,
    capacity: Option<i32>,
    version: Option<i64>,
}

impl MaybeShowtime {
    fn into_showtime(self) -> Option<Showtime> {
        Some(Showtime {
            id: self.id?,
            film_id: self.film_id?,
            film_title: self.film_title?,
            poster_url: self.poster_url?,
            cinema_name: self.cinema_name?,
            cinema_time_zone: self.cinema_time_zone?,
            screen_name: self.screen_name?,
            starts_at: self.starts_at?,
            currency: self.currency?,
            capacity: self.capacity?,
            version: self.version?,
        })
    }
}

/// Turns a paid hold into a booking inside the caller's transaction (the
/// idempotent consumer's), or reports which seats were lost.
pub async fn book_paid_hold(
    connection: &mut PgConnection,
    paid: &PaidCheckout,
    now: DateTime<Utc>,
) -> Result<BookingOutcome, SeatingError> {
    // One round trip for the whole decision and what the event carries
    // (seating_book, migrations 20261201000003 and 0006). The showtime's
    // details come from the same statement: the function does not change
    // them, only the version, which it answers itself.
    let booking_id = Uuid::now_v7();
    let references: Vec<String> = (0..8).map(|_| new_booking_reference()).collect();
    let answer: BookAnswer = sqlx::query_as(
        "SELECT o.outcome, o.seats_version, o.booking_reference, o.unavailable, o.freed, \
                o.holder, o.booked_labels, o.booked_categories, \
                o.showtime AS id, t.film_id, t.film_title, t.poster_url, t.cinema_name, \
                t.cinema_time_zone, t.screen_name, t.starts_at, t.currency, t.capacity, \
                o.seats_version AS version \
         FROM seating_book($1, $2, $3, $4, $5, $6, $7, $8) o \
         LEFT JOIN LATERAL (SELECT * FROM showtimes WHERE showtimes.id = o.showtime) t ON true",
    )
    .bind(paid.hold_id)
    .bind(&paid.checkout_id)
    .bind(booking_id)
    .bind(&paid.user_email)
    .bind(paid.amount_minor)
    .bind(&paid.currency)
    .bind(&references)
    .bind(now)
    .fetch_one(&mut *connection)
    .await?;
    let BookAnswer {
        outcome,
        seats_version: version,
        booking_reference,
        unavailable,
        freed,
        holder,
        booked_labels,
        booked_categories,
        showtime,
    } = answer;
    let showtime_id = showtime.id;
    // Set for every outcome that changed seats.
    let changed = |state: SeatState, labels: &[String]| match showtime_id.zip(version) {
        Some((showtime_id, version)) => {
            let mut changes = SeatChanges::new(showtime_id, version);
            changes.push(labels, state, None);
            Ok(changes)
        }
        None => Err(unexpected_answer(
            "seating_book",
            &format!("{outcome} without a showtime and version"),
        )),
    };
    match outcome.as_str() {
        "confirmed" => {
            let incomplete = || unexpected_answer("seating_book", "confirmed without the booking");
            let labels = booked_labels.ok_or_else(incomplete)?;
            let changes = changed(SeatState::Booked, &labels)?;
            let booking = Booking {
                id: booking_id,
                reference: booking_reference.ok_or_else(incomplete)?,
                checkout_id: paid.checkout_id.clone(),
                user_id: holder.ok_or_else(incomplete)?,
                user_email: paid.user_email.clone(),
                showtime: showtime.into_showtime().ok_or_else(incomplete)?,
                seats: labels
                    .into_iter()
                    .zip(booked_categories.ok_or_else(incomplete)?)
                    .collect(),
                amount_minor: paid.amount_minor,
                currency: paid.currency.clone(),
                refunded: false,
                booked_at: now,
            };
            Ok(BookingOutcome::Confirmed {
                booking: Box::new(booking),
                changes,
            })
        }
        "already_booked" => Ok(BookingOutcome::AlreadyBooked),
        "unknown_hold" => Ok(BookingOutcome::UnknownHold),
        "rejected" => {
            let hold = get_hold_in(connection, paid.hold_id)
                .await?
                .ok_or_else(|| SeatingError::not_found("hold", paid.hold_id))?;
            Ok(BookingOutcome::Rejected {
                hold,
                unavailable: unavailable.unwrap_or_default(),
                changes: changed(SeatState::Available, &freed.unwrap_or_default())?,
            })
        }
        "no_reference" => Err(SeatingError::FailedPrecondition(
            "could not draw an unused booking reference".into(),
        )),
        other => Err(unexpected_answer("seating_book", other)),
    }
}

/// What a refund of a booking came to.
#[derive(Debug)]
pub enum RefundOutcome {
    /// The booking is refunded now and these seats are available again.
    Refunded {
        booking_id: Uuid,
        changes: SeatChanges,
    },
    /// It had been refunded before (another refund event for it).
    AlreadyRefunded,
    /// No booking has this reference.
    UnknownBooking,
    /// The reference belongs to another checkout's booking than the refund's.
    OtherCheckout { booking_checkout: String },
}

/// Marks a booking refunded and gives its seats back, inside the caller's
/// transaction (the idempotent consumer's). The booking and its seat list
/// stay for the customer's history; `seats.booking_id` is cleared and the
/// `booking_seats` rows are marked released, so the seats can be sold again.
/// `checkout_id`, when given, must be the booking's: a refund never frees
/// the seats of a booking it was not for.
pub async fn refund_booking(
    connection: &mut PgConnection,
    reference: &str,
    checkout_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RefundOutcome, SeatingError> {
    // Read without locks first, to know which showtime to lock (the one lock
    // order) and to leave an already refunded booking untouched.
    let found: Option<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "SELECT id, showtime_id, checkout_id, status FROM bookings WHERE reference = $1",
    )
    .bind(reference)
    .fetch_optional(&mut *connection)
    .await?;
    let Some((booking_id, showtime_id, booking_checkout, status)) = found else {
        return Ok(RefundOutcome::UnknownBooking);
    };
    if checkout_id.is_some_and(|checkout| checkout != booking_checkout) {
        return Ok(RefundOutcome::OtherCheckout { booking_checkout });
    }
    if status == "refunded" {
        return Ok(RefundOutcome::AlreadyRefunded);
    }
    let version = lock_showtime(connection, showtime_id).await?;
    // Conditional, so two refunds racing past the read above refund once.
    let refunded = sqlx::query(
        "UPDATE bookings SET status = 'refunded', refunded_at = $2 \
         WHERE id = $1 AND status = 'confirmed'",
    )
    .bind(booking_id)
    .bind(now)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if refunded == 0 {
        return Ok(RefundOutcome::AlreadyRefunded);
    }
    let mut released: Vec<(String, i32)> = sqlx::query_as(
        "UPDATE booking_seats SET released_at = $2 \
         WHERE booking_id = $1 AND released_at IS NULL RETURNING label, position",
    )
    .bind(booking_id)
    .bind(now)
    .fetch_all(&mut *connection)
    .await?;
    released.sort_by_key(|(_, position)| *position);
    let labels: Vec<String> = released.into_iter().map(|(label, _)| label).collect();
    let freed: Vec<String> = sqlx::query_scalar(
        "UPDATE seats SET booking_id = NULL \
         WHERE showtime_id = $1 AND booking_id = $2 RETURNING label",
    )
    .bind(showtime_id)
    .bind(booking_id)
    .fetch_all(&mut *connection)
    .await?;
    // Announced in the booking's seat order; every freed seat is one of its.
    let freed: Vec<String> = labels.into_iter().filter(|l| freed.contains(l)).collect();
    let mut changes = SeatChanges::new(showtime_id, version);
    changes.push(&freed, SeatState::Available, None);
    Ok(RefundOutcome::Refunded {
        booking_id,
        changes,
    })
}

/// A booking with its seats (in the order they were held) and showtime.
/// Aliases keep the flattened row's `booking_*` columns apart from the
/// showtime's `id` and `currency`.
const BOOKING_SELECT: &str = "SELECT b.id AS booking_id, b.reference, b.checkout_id, b.user_id, \
        b.user_email, b.amount_minor, b.currency AS booking_currency, b.status, b.booked_at, \
        ARRAY(SELECT bs.label FROM booking_seats bs WHERE bs.booking_id = b.id \
              ORDER BY bs.position) AS labels, \
        ARRAY(SELECT bs.category FROM booking_seats bs WHERE bs.booking_id = b.id \
              ORDER BY bs.position) AS categories, \
        t.id, t.film_id, t.film_title, t.poster_url, t.cinema_name, t.cinema_time_zone, \
        t.screen_name, t.starts_at, t.currency, t.capacity, t.version \
     FROM bookings b JOIN showtimes t ON t.id = b.showtime_id";

#[derive(sqlx::FromRow)]
struct BookingRow {
    #[sqlx(flatten)]
    head: BookingHead,
    #[sqlx(flatten)]
    showtime: Showtime,
}

#[derive(sqlx::FromRow)]
struct BookingHead {
    booking_id: Uuid,
    reference: String,
    checkout_id: String,
    user_id: String,
    user_email: String,
    amount_minor: i64,
    booking_currency: String,
    status: String,
    booked_at: DateTime<Utc>,
    labels: Vec<String>,
    categories: Vec<String>,
}

fn booking_sql(filter: &str) -> String {
    format!("{BOOKING_SELECT} {filter}")
}

fn booking_from_row(row: BookingRow) -> Booking {
    let head = row.head;
    Booking {
        id: head.booking_id,
        reference: head.reference,
        checkout_id: head.checkout_id,
        user_id: head.user_id,
        user_email: head.user_email,
        showtime: row.showtime,
        seats: head.labels.into_iter().zip(head.categories).collect(),
        amount_minor: head.amount_minor,
        currency: head.booking_currency,
        refunded: head.status == "refunded",
        booked_at: head.booked_at,
    }
}

pub async fn get_booking_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Option<Booking>, SeatingError> {
    Ok(
        sqlx::query_as::<_, BookingRow>(&booking_sql("WHERE b.reference = $1"))
            .bind(reference)
            .fetch_optional(pool)
            .await?
            .map(booking_from_row),
    )
}

/// A user's bookings, newest first (at most 200: a ticket history, not an
/// export).
pub async fn list_bookings(pool: &PgPool, user_id: &str) -> Result<Vec<Booking>, SeatingError> {
    Ok(sqlx::query_as::<_, BookingRow>(&booking_sql(
        "WHERE b.user_id = $1 ORDER BY b.booked_at DESC, b.id DESC LIMIT 200",
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(booking_from_row)
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_seat_unpacks_to_its_sort_order_and_state() {
        let unpacked = [0, 1, 2, 3].map(|state| TakenSeat::unpack(117 * 4 + state));
        assert!(unpacked.iter().all(|seat| seat.sort_order == 117));
        assert_eq!(
            unpacked.map(|seat| (seat.state, seat.held_by_caller)),
            [
                (SeatState::Booked, false),
                (SeatState::Blocked, false),
                (SeatState::Held, false),
                (SeatState::Held, true),
            ]
        );
    }
}
