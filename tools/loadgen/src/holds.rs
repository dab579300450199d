//! The seat-hold scenario (issue #3): holds per second and their latency,
//! through the gateway, over gRPC to seating, and as the raw SQL a hold
//! executes, sent straight to seating's PostgreSQL database as the ceiling
//! of this machine.
//!
//! One worker loop iteration is **a hold, then its release**. Only the hold
//! is timed (the latency percentiles are hold latencies); the release runs
//! untimed in the same iteration, so throughput is completed hold+release
//! pairs per second, and every hold leaves the seats free again.
//!
//! Paths (`--paths`), taking turns within each mode:
//! - `gateway`: `POST /api/v1/showtimes/{id}/holds` with a signed-in
//!   session's cookie and CSRF token, then `DELETE /api/v1/holds/{id}`;
//!   HTTP/1.1 keep-alive, one connection per worker. Each worker signs in
//!   (registering its account the first time) before the clock starts;
//! - `grpc`: `HoldSeats` then `ReleaseHold` straight to seating, several
//!   workers per HTTP/2 connection;
//! - `sql`: seating's own `store::hold_seats` and `store::release_hold` (one
//!   SQL function call each), through a pool as large as seating's own
//!   (`--sql-pool-size`, seating's default 16): everything of a hold but
//!   gRPC, validation and the live-map publish.
//!
//! Modes (`--modes`):
//! - `uncontended`: each worker holds on a showtime of its own (listed via
//!   the gateway's `/api/v1/movies` and `/api/v1/movies/{slug}/showtimes`);
//! - `contended`: `--contended-workers` (200) workers on one showtime of
//!   `--contended-seats` (120) seats. A hold refused because a seat is taken
//!   (HTTP 409, gRPC `FAILED_PRECONDITION`, or `HoldOutcome::Unavailable`
//!   on the SQL path) is a valid outcome, counted apart from errors.
//! - `replacing`: like `uncontended`, but nothing is released: each hold
//!   replaces the worker's previous one (seating ends it and frees its
//!   seats in the same transaction). One write per iteration, so these rows
//!   count holds, where the others count hold+release pairs.
//!
//! Each hold asks for 1 to `--max-seats` (4) adjacent seats of one row,
//! chosen at random. Worker `i` is user `bench-u{i}` (uncontended and
//! replacing) or `bench-c{i}` (contended) on every path, so a hold left behind by a
//! timed-out iteration is replaced by the same user's next hold.
//!
//! The rows above are closed loops: their p99 is the p99 at the throughput
//! achieved. `--rates 1000` adds uncontended (and replacing) rows at a
//! fixed arrival rate (`--paced-workers` workers, each starting holds on a schedule; latency
//! from the scheduled start), which is what "p99 at 1,000 holds/s" asks.
//! The gRPC share of the raw-SQL ceiling is judged on the closed loops only.

use std::time::Duration;

use anyhow::{Context as _, bail};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use hyper::body::Bytes;
use proto::seating::v1 as pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;
use seating::store;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::closed_loop::{self, Done, LoadArgs, Measurement, Pacer, Worker};
use crate::http1::Http1Connection;
use crate::programme::{EMPTY_HINT, film_slugs, showtime_ids};
use crate::report::{self, Row, thousands};
use crate::sign_in;
use crate::target::{Target, loopback_database};

/// Issue #3: gRPC hold throughput as a share of the raw-SQL ceiling.
const MIN_GRPC_SHARE_OF_SQL: f64 = 0.5;
/// Issue #3: p99 hold latency, at 1,000 holds/s.
const MAX_P99_MS: f64 = 20.0;
const P99_TARGET_RATE: f64 = 1_000.0;

/// The holds scenario's flags. `--concurrency` is the uncontended worker
/// count (one showtime each).
#[derive(clap::Args, Debug)]
pub struct HoldsArgs {
    /// The gateway's base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Seating's gRPC base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub seating: String,
    /// Seating's PostgreSQL database, for the raw-SQL row (this machine only).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_seating"
    )]
    pub database_url: String,
    /// Which ways of holding to measure, taking turns.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["gateway", "grpc", "sql"])]
    pub paths: Vec<HoldPath>,
    /// Which modes to run, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["uncontended", "contended"])]
    pub modes: Vec<Mode>,
    /// Workers in contended mode, all on one showtime.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub contended_workers: u16,
    /// Seats of the showtime contended mode picks (the closest size found).
    #[arg(long, default_value_t = 120)]
    pub contended_seats: usize,
    /// Most adjacent seats per hold (each hold takes 1 to this many).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub max_seats: u16,
    /// Direct gRPC workers sharing one HTTP/2 connection to seating.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub workers_per_channel: u16,
    /// Fixed arrival rates (holds per second, all workers together) at which
    /// to measure again, uncontended: each worker starts its holds on a
    /// schedule instead of as soon as the previous one ended, and latency
    /// counts from the scheduled start (so falling behind shows).
    #[arg(long, value_delimiter = ',', value_parser = closed_loop::parse_rate)]
    pub rates: Vec<f64>,
    /// Uncontended workers (one showtime each) for the fixed-rate rows.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub paced_workers: u16,
    /// Connections of the raw-SQL row's pool (seating's default is 16).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub sql_pool_size: u32,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// A way of holding seats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldPath {
    /// HTTP/1.1 through the gateway.
    Gateway,
    /// gRPC straight to seating.
    Grpc,
    /// Seating's statements straight to PostgreSQL.
    Sql,
}

/// Whether workers share a showtime.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One showtime per worker; each hold is released.
    Uncontended,
    /// Every worker on one showtime; each hold is released.
    Contended,
    /// One showtime per worker, and no release: each hold replaces the
    /// worker's previous one (a buyer changing their selection), so an
    /// iteration is one write transaction — holds per second, not
    /// hold+release pairs.
    Replacing,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Uncontended => "uncontended",
            Self::Contended => "contended",
            Self::Replacing => "replacing",
        }
    }

    /// Whether each worker has a showtime of its own.
    fn own_showtimes(self) -> bool {
        self != Self::Contended
    }

    /// Whether an iteration releases the hold it made.
    fn releases(self) -> bool {
        self != Self::Replacing
    }
}

fn row_name(path: HoldPath, mode: Mode, paced: bool) -> &'static str {
    match (path, mode, paced) {
        (HoldPath::Gateway, Mode::Uncontended, false) => "gateway-uncontended",
        (HoldPath::Grpc, Mode::Uncontended, false) => "grpc-uncontended",
        (HoldPath::Sql, Mode::Uncontended, false) => "sql-uncontended",
        (HoldPath::Gateway, Mode::Uncontended, true) => "gateway-uncontended-paced",
        (HoldPath::Grpc, Mode::Uncontended, true) => "grpc-uncontended-paced",
        (HoldPath::Sql, Mode::Uncontended, true) => "sql-uncontended-paced",
        (HoldPath::Gateway, Mode::Replacing, false) => "gateway-replacing",
        (HoldPath::Grpc, Mode::Replacing, false) => "grpc-replacing",
        (HoldPath::Sql, Mode::Replacing, false) => "sql-replacing",
        (HoldPath::Gateway, Mode::Replacing, true) => "gateway-replacing-paced",
        (HoldPath::Grpc, Mode::Replacing, true) => "grpc-replacing-paced",
        (HoldPath::Sql, Mode::Replacing, true) => "sql-replacing-paced",
        // Contended rows are closed loops only.
        (HoldPath::Gateway, Mode::Contended, _) => "gateway-contended",
        (HoldPath::Grpc, Mode::Contended, _) => "grpc-contended",
        (HoldPath::Sql, Mode::Contended, _) => "sql-contended",
    }
}

fn row_request(path: HoldPath, mode: Mode, rate: Option<f64>) -> String {
    let what = match (path, mode.releases()) {
        (HoldPath::Gateway, true) => "gateway POST hold + DELETE",
        (HoldPath::Grpc, true) => "gRPC HoldSeats + ReleaseHold",
        (HoldPath::Sql, true) => "raw SQL hold + release",
        (HoldPath::Gateway, false) => "gateway POST hold",
        (HoldPath::Grpc, false) => "gRPC HoldSeats",
        (HoldPath::Sql, false) => "raw SQL hold",
    };
    match rate {
        Some(rate) => format!("{what}, {} @ {}/s", mode.name(), thousands(rate as u64)),
        None => format!("{what}, {}", mode.name()),
    }
}

/// One set of rows: a mode, its worker count, and a fixed rate or none.
#[derive(Clone, Copy, Debug)]
struct Level {
    mode: Mode,
    concurrency: usize,
    rate: Option<f64>,
}

/// A showtime's free seats, as runs of adjacent seats in one row.
#[derive(Clone, Debug)]
struct Showtime {
    id: Uuid,
    seats: usize,
    runs: Vec<Vec<String>>,
}

/// The verdicts of one mode.
#[derive(Debug, Serialize)]
struct Verdict {
    mode: Mode,
    concurrency: usize,
    /// The fixed arrival rate asked for; none in a closed loop.
    rate: Option<f64>,
    grpc_holds_per_second: Option<f64>,
    sql_holds_per_second: Option<f64>,
    /// gRPC throughput as a share of the raw-SQL ceiling.
    grpc_share_of_sql: Option<f64>,
    grpc_share_target_met: Option<bool>,
    grpc_p99_ms: Option<f64>,
    /// p99 < 20 ms, judged at the closed loop's own throughput, or at the
    /// fixed rate (which must then be reached within 5 %).
    grpc_p99_under_target: Option<bool>,
    gateway_holds_per_second: Option<f64>,
    gateway_p99_ms: Option<f64>,
}

#[derive(Serialize)]
struct Settings<'a> {
    gateway: &'a str,
    seating: &'a str,
    warmup_seconds: f64,
    duration_seconds: f64,
    rounds: u32,
    max_seats: u16,
    workers_per_channel: u16,
    sql_pool_size: u32,
    loadgen_threads: usize,
    uncontended_showtimes: usize,
    contended_showtime: Option<String>,
    contended_showtime_seats: Option<usize>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'static str,
    timing: &'static str,
    settings: Settings<'a>,
    results: &'a [Row],
    verdicts: &'a [Verdict],
}

/// Runs the holds scenario and prints its results.
pub async fn run(args: HoldsArgs) -> anyhow::Result<()> {
    let gateway = Target::loopback(&args.gateway, "--gateway")?;
    let seating = Target::loopback(&args.seating, "--seating")?;
    let database = loopback_database(&args.database_url, "--database-url", "loadgen-holds")?;
    let mut levels = Vec::new();
    for &mode in &args.modes {
        match mode {
            Mode::Uncontended | Mode::Replacing => {
                levels.extend(args.load.concurrency.iter().map(|&concurrency| Level {
                    mode,
                    concurrency,
                    rate: None,
                }));
                levels.extend(args.rates.iter().map(|&rate| Level {
                    mode,
                    concurrency: usize::from(args.paced_workers),
                    rate: Some(rate),
                }));
            }
            Mode::Contended => levels.push(Level {
                mode,
                concurrency: usize::from(args.contended_workers),
                rate: None,
            }),
        }
    }
    let uncontended_workers = levels
        .iter()
        .filter(|l| l.mode.own_showtimes())
        .map(|l| l.concurrency)
        .max()
        .unwrap_or(0);
    let wants_contended = args.modes.contains(&Mode::Contended);
    let (own, shared) = discover(
        &args,
        &gateway,
        &seating,
        uncontended_workers,
        wants_contended,
    )
    .await
    .context("finding showtimes to hold seats on")?;

    let pool = if args.paths.contains(&HoldPath::Sql) {
        Some(
            PgPoolOptions::new()
                .max_connections(args.sql_pool_size)
                .acquire_timeout(args.load.timeout)
                .connect_with(database)
                .await
                .context("cannot connect to seating's database (--database-url)")?,
        )
    } else {
        None
    };

    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for level in levels {
        let Level {
            mode,
            concurrency,
            rate,
        } = level;
        let name = |path| row_name(path, mode, rate.is_some());
        {
            let mut totals: Vec<Option<Measurement>> = args.paths.iter().map(|_| None).collect();
            for round in 1..=args.load.rounds {
                for (&path, total) in args.paths.iter().zip(&mut totals) {
                    eprintln!(
                        "loadgen: {} at concurrency {concurrency}{}, round {round}/{}: \
                         {:.1}s warm-up, {:.1}s measured",
                        name(path),
                        rate.map_or_else(String::new, |r| format!(", {r}/s")),
                        args.load.rounds,
                        args.load.warmup.as_secs_f64(),
                        args.load.duration.as_secs_f64(),
                    );
                    let showtimes: Vec<&Showtime> = if mode.own_showtimes() {
                        own.iter().take(concurrency).collect()
                    } else {
                        vec![shared.as_ref().expect("found"); concurrency]
                    };
                    let measured = measure(
                        &args,
                        &gateway,
                        &seating,
                        pool.as_ref(),
                        path,
                        level,
                        &showtimes,
                    )
                    .await
                    .with_context(|| format!("measuring {}", name(path)))?;
                    match total {
                        Some(total) => total.absorb(measured)?,
                        None => *total = Some(measured),
                    }
                }
            }
            let first = rows.len();
            for (&path, total) in args.paths.iter().zip(totals) {
                if let Some(measured) = total {
                    rows.push(Row::new(
                        name(path),
                        row_request(path, mode, rate),
                        concurrency,
                        &measured,
                    ));
                }
            }
            verdicts.push(judge(level, &args.paths, &rows[first..]));
        }
    }

    let settings = Settings {
        gateway: &gateway.url,
        seating: &seating.url,
        warmup_seconds: args.load.warmup.as_secs_f64(),
        duration_seconds: args.load.duration.as_secs_f64(),
        rounds: args.load.rounds,
        max_seats: args.max_seats,
        workers_per_channel: args.workers_per_channel,
        sql_pool_size: args.sql_pool_size,
        loadgen_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        uncontended_showtimes: own.len(),
        contended_showtime: shared.as_ref().map(|s| s.id.to_string()),
        contended_showtime_seats: shared.as_ref().map(|s| s.seats),
    };
    if args.load.json {
        let document = JsonReport {
            scenario: "holds",
            timing: "hold timed, release untimed; one hold+release pair per iteration",
            settings,
            results: &rows,
            verdicts: &verdicts,
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_report(&settings, &rows, &verdicts);
    }

    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bail!("{errors} iterations failed; figures from a run with errors are not comparable");
    }
    Ok(())
}

/// The gRPC verdicts of one mode: share of the SQL ceiling, p99.
fn judge(level: Level, paths: &[HoldPath], rows: &[Row]) -> Verdict {
    let find = |path: HoldPath| {
        let name = row_name(path, level.mode, level.rate.is_some());
        paths
            .contains(&path)
            .then(|| rows.iter().find(|r| r.endpoint == name))
            .flatten()
    };
    let rate_reached = |row: &Row| {
        level
            .rate
            .is_none_or(|rate| row.requests_per_second >= 0.95 * rate)
    };
    let grpc = find(HoldPath::Grpc);
    let sql = find(HoldPath::Sql);
    let gateway = find(HoldPath::Gateway);
    let share = match (grpc, sql) {
        (Some(g), Some(s)) if level.rate.is_none() && s.requests_per_second > 0.0 => {
            Some(g.requests_per_second / s.requests_per_second)
        }
        _ => None,
    };
    Verdict {
        mode: level.mode,
        concurrency: level.concurrency,
        rate: level.rate,
        grpc_holds_per_second: grpc.map(|r| r.requests_per_second),
        sql_holds_per_second: sql.map(|r| r.requests_per_second),
        grpc_share_of_sql: share,
        grpc_share_target_met: share.map(|s| s >= MIN_GRPC_SHARE_OF_SQL),
        grpc_p99_ms: grpc.map(|r| r.p99_ms),
        grpc_p99_under_target: grpc.map(|r| r.p99_ms < MAX_P99_MS && rate_reached(r)),
        gateway_holds_per_second: gateway.map(|r| r.requests_per_second),
        gateway_p99_ms: gateway.map(|r| r.p99_ms),
    }
}

fn print_report(settings: &Settings<'_>, rows: &[Row], verdicts: &[Verdict]) {
    println!(
        "loadgen holds: gateway {} | seating {} (direct gRPC: {} workers per HTTP/2 connection) \
         | raw SQL: pool of {}",
        settings.gateway, settings.seating, settings.workers_per_channel, settings.sql_pool_size
    );
    println!(
        "closed loop; {:.1}s warm-up (not counted) + {:.1}s measured, {} round(s) per row, paths \
         taking turns; one iteration = hold 1–{} adjacent seats (timed) + release (untimed); \
         req/s = holds/s; loadgen runtime threads: {}",
        settings.warmup_seconds,
        settings.duration_seconds,
        settings.rounds,
        settings.max_seats,
        settings.loadgen_threads,
    );
    println!(
        "uncontended: {} showtimes, one per worker; contended: showtime {} ({} seats)\n",
        settings.uncontended_showtimes,
        settings.contended_showtime.as_deref().unwrap_or("-"),
        settings
            .contended_showtime_seats
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
    );
    report::print_table(rows);
    println!();
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    for v in verdicts {
        let rate = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| thousands(r as u64));
        let ms = |p: Option<f64>| p.map_or_else(|| "-".to_owned(), |p| format!("{p:.2} ms"));
        let (level, judged) = match v.rate {
            Some(r) => (
                format!(
                    "{} @ {}/s, {} workers",
                    v.mode.name(),
                    thousands(r as u64),
                    v.concurrency
                ),
                "judged at this fixed arrival rate",
            ),
            None => (
                format!("{}, closed loop, {} workers", v.mode.name(), v.concurrency),
                "judged at the closed loop's own throughput, not a fixed 1,000/s",
            ),
        };
        println!(
            "{level}: gRPC/raw SQL = {} / {} holds/s = {} (target ≥ {:.0}%: {}); gRPC p99 {} \
             at {} holds/s (target < {MAX_P99_MS} ms at {} holds/s: {}, {judged}); \
             gateway p99 {} at {} holds/s",
            rate(v.grpc_holds_per_second),
            rate(v.sql_holds_per_second),
            v.grpc_share_of_sql
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0)),
            MIN_GRPC_SHARE_OF_SQL * 100.0,
            verdict(v.grpc_share_target_met),
            ms(v.grpc_p99_ms),
            rate(v.grpc_holds_per_second),
            thousands(P99_TARGET_RATE as u64),
            verdict(v.grpc_p99_under_target),
            ms(v.gateway_p99_ms),
            rate(v.gateway_holds_per_second),
        );
    }
}

/// Lists showtimes through the gateway, then asks seating for each one's
/// seat map (which also makes seating create its seat rows, so the raw-SQL
/// row finds them): `own` has one showtime per uncontended worker, `shared`
/// is the contended showtime (never one of `own`).
async fn discover(
    args: &HoldsArgs,
    gateway: &Target,
    seating: &Target,
    own_needed: usize,
    wants_contended: bool,
) -> anyhow::Result<(Vec<Showtime>, Option<Showtime>)> {
    let mut connection = Http1Connection::new(gateway, args.load.timeout, false)?;
    let slugs = film_slugs(&mut connection).await?;
    let mut ids: Vec<Uuid> = Vec::new();
    for slug in slugs {
        let found = showtime_ids(&mut connection, &slug).await?;
        for id in found.iter().filter_map(|id| id.parse::<Uuid>().ok()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    let mut client =
        SeatingServiceClient::new(seating.grpc_channel("--seating", args.load.timeout).await?);
    let mut seat_map = async |id: Uuid| -> anyhow::Result<Showtime> {
        let map = client
            .get_seat_map(pb::GetSeatMapRequest {
                showtime_id: id.to_string(),
                user_id: String::new(),
            })
            .await
            .with_context(|| format!("GetSeatMap {id} at {}", seating.url))?
            .into_inner();
        Ok(showtime_from(id, &map))
    };
    let mut shared: Option<Showtime> = None;
    let mut own = Vec::new();
    let mut candidates = ids.into_iter();
    if wants_contended {
        // The first showtime with exactly the wanted size, else the closest
        // among the first few dozen looked at.
        for id in candidates.by_ref().take(48) {
            let showtime = seat_map(id).await?;
            let distance = |s: &Showtime| s.seats.abs_diff(args.contended_seats);
            let better = shared
                .as_ref()
                .is_none_or(|best| distance(&showtime) < distance(best));
            if showtime.runs.is_empty() {
                continue;
            }
            if better {
                let exact = distance(&showtime) == 0;
                if let Some(previous) = shared.replace(showtime) {
                    own.push(previous);
                }
                if exact {
                    break;
                }
            } else {
                own.push(showtime);
            }
        }
        anyhow::ensure!(
            shared.is_some(),
            "no showtime with free seats found; {EMPTY_HINT}"
        );
    }
    own.truncate(own_needed);
    while own.len() < own_needed {
        let Some(id) = candidates.next() else {
            bail!(
                "only {} showtimes with free seats are listed, fewer than the {own_needed} \
                 uncontended workers (one showtime each); lower --concurrency or seed more",
                own.len()
            );
        };
        let showtime = seat_map(id).await?;
        if !showtime.runs.is_empty() {
            own.push(showtime);
        }
    }
    Ok((own, shared))
}

/// The seat map as runs of adjacent free seats (neither booked nor blocked).
fn showtime_from(id: Uuid, map: &pb::SeatMap) -> Showtime {
    let free = |s: &pb::Seat| {
        s.state != pb::SeatState::Booked as i32 && s.state != pb::SeatState::Blocked as i32
    };
    let mut runs: Vec<Vec<String>> = Vec::new();
    let mut last: Option<(&str, u32)> = None;
    for seat in &map.seats {
        if !free(seat) {
            last = None;
            continue;
        }
        match (last, runs.last_mut()) {
            (Some((row, number)), Some(run)) if row == seat.row && number + 1 == seat.number => {
                run.push(seat.label.clone());
            }
            _ => runs.push(vec![seat.label.clone()]),
        }
        last = Some((&seat.row, seat.number));
    }
    Showtime {
        id,
        seats: map.seats.len(),
        runs,
    }
}

/// Picks 1 to `max` adjacent seats of one run at random (xorshift; no
/// shared state between workers).
struct SeatPicker {
    runs: Vec<Vec<String>>,
    max: usize,
    state: u64,
}

impl SeatPicker {
    fn new(showtime: &Showtime, max: u16, seed: u64) -> Self {
        Self {
            runs: showtime.runs.clone(),
            max: usize::from(max),
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn pick(&mut self) -> Vec<String> {
        let index = (self.next_u64() % self.runs.len() as u64) as usize;
        let count = 1 + (self.next_u64() % self.max as u64) as usize;
        let (runs_len, count) = {
            let run = &self.runs[index];
            (run.len(), count.min(run.len()))
        };
        let start = (self.next_u64() % (runs_len - count + 1) as u64) as usize;
        self.runs[index][start..start + count].to_vec()
    }
}

async fn measure(
    args: &HoldsArgs,
    gateway: &Target,
    seating: &Target,
    pool: Option<&PgPool>,
    path: HoldPath,
    level: Level,
    showtimes: &[&Showtime],
) -> anyhow::Result<Measurement> {
    let shape = args.load.shape();
    let mode = level.mode;
    let pacer = |i: usize| Pacer::new(level.rate, showtimes.len(), i);
    // The replacing rows use the uncontended users on the same showtimes:
    // the holds they leave behind are replaced by the next run's holds
    // instead of blocking their seats for the hold duration.
    let user = |i: usize| match mode {
        Mode::Uncontended | Mode::Replacing => format!("bench-u{i}"),
        Mode::Contended => format!("bench-c{i}"),
    };
    let release = mode.releases();
    let seed = |i: usize| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (i as u64 + 1) ^ (u64::from(nanos) << 20)
    };
    match path {
        HoldPath::Gateway => {
            let mut workers = Vec::with_capacity(showtimes.len());
            for (i, showtime) in showtimes.iter().enumerate() {
                let mut connection = Http1Connection::new(gateway, args.load.timeout, false)?;
                let session = sign_in::gateway_session(&mut connection, &user(i)).await?;
                workers.push(GatewayHold {
                    connection,
                    hold_uri: format!("/api/v1/showtimes/{}/holds", showtime.id).parse()?,
                    session,
                    picker: SeatPicker::new(showtime, args.max_seats, seed(i)),
                    pacer: pacer(i),
                    release,
                    left: None,
                });
            }
            closed_loop::run(shape, workers).await
        }
        HoldPath::Grpc => {
            let per_channel = usize::from(args.workers_per_channel);
            let mut channels = Vec::new();
            for _ in 0..showtimes.len().div_ceil(per_channel) {
                channels.push(seating.grpc_channel("--seating", args.load.timeout).await?);
            }
            let workers = showtimes
                .iter()
                .enumerate()
                .map(|(i, showtime)| GrpcHold {
                    client: SeatingServiceClient::new(channels[i / per_channel].clone()),
                    showtime_id: showtime.id.to_string(),
                    user: user(i),
                    picker: SeatPicker::new(showtime, args.max_seats, seed(i)),
                    pacer: pacer(i),
                    release,
                    left: None,
                })
                .collect();
            closed_loop::run(shape, workers).await
        }
        HoldPath::Sql => {
            let pool = pool.context("no database pool")?;
            let workers = showtimes
                .iter()
                .enumerate()
                .map(|(i, showtime)| SqlHold {
                    pool: pool.clone(),
                    showtime_id: showtime.id,
                    user: user(i),
                    picker: SeatPicker::new(showtime, args.max_seats, seed(i)),
                    pacer: pacer(i),
                    release,
                    left: None,
                    timeout: args.load.timeout,
                })
                .collect();
            closed_loop::run(shape, workers).await
        }
    }
}

/// A worker holding through the gateway's JSON API.
struct GatewayHold {
    connection: Http1Connection,
    hold_uri: Uri,
    /// The signed-in session's cookie and CSRF token.
    session: Vec<(HeaderName, HeaderValue)>,
    picker: SeatPicker,
    pacer: Pacer,
    /// Release each hold (else the next one replaces it).
    release: bool,
    /// The last hold, when not released (see [`Worker::finish`]).
    left: Option<Uri>,
}

impl Worker for GatewayHold {
    async fn call(&mut self) -> Result<Done, String> {
        let body = serde_json::to_vec(&serde_json::json!({ "seats": self.picker.pick() }))
            .map_err(|e| e.to_string())?;
        let sent = self.pacer.start().await;
        let (status, answer) = self
            .connection
            .send(
                Method::POST,
                &self.hold_uri,
                &self.session,
                Some(Bytes::from(body)),
            )
            .await?;
        let held_in = sent.elapsed();
        match status {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => return Ok(Done::Refused(held_in)),
            other => return Err(format!("hold: HTTP {other}")),
        }
        let hold: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| format!("hold: not JSON: {e}"))?;
        let id = hold["id"].as_str().ok_or("hold: no id in the answer")?;
        let release: Uri = format!("/api/v1/holds/{id}")
            .parse()
            .map_err(|e| format!("hold id {id:?}: {e}"))?;
        if self.release {
            self.release(&release).await?;
        } else {
            self.left = Some(release);
        }
        Ok(Done::OkIn(held_in))
    }

    async fn finish(&mut self) {
        if let Some(release) = self.left.take() {
            let _ = self.release(&release).await;
        }
    }
}

impl GatewayHold {
    async fn release(&mut self, release: &Uri) -> Result<(), String> {
        let (status, _) = self
            .connection
            .send(Method::DELETE, release, &self.session, None)
            .await?;
        if status != StatusCode::NO_CONTENT {
            return Err(format!("release: HTTP {status}"));
        }
        Ok(())
    }
}

/// A worker holding over gRPC, straight to seating.
struct GrpcHold {
    client: SeatingServiceClient<Channel>,
    showtime_id: String,
    user: String,
    picker: SeatPicker,
    pacer: Pacer,
    /// Release each hold (else the next one replaces it).
    release: bool,
    /// The last hold's id, when not released (see [`Worker::finish`]).
    left: Option<String>,
}

impl Worker for GrpcHold {
    async fn call(&mut self) -> Result<Done, String> {
        let sent = self.pacer.start().await;
        let answer = self
            .client
            .hold_seats(pb::HoldSeatsRequest {
                showtime_id: self.showtime_id.clone(),
                seats: self.picker.pick(),
                user_id: self.user.clone(),
            })
            .await;
        let held_in = sent.elapsed();
        let hold = match answer {
            Ok(hold) => hold.into_inner(),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return Ok(Done::Refused(held_in));
            }
            Err(status) => {
                return Err(format!(
                    "HoldSeats: gRPC {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
        };
        if self.release {
            self.release(hold.id).await?;
        } else {
            self.left = Some(hold.id);
        }
        Ok(Done::OkIn(held_in))
    }

    async fn finish(&mut self) {
        if let Some(hold_id) = self.left.take() {
            let _ = self.release(hold_id).await;
        }
    }
}

impl GrpcHold {
    async fn release(&mut self, hold_id: String) -> Result<(), String> {
        self.client
            .release_hold(pb::ReleaseHoldRequest {
                hold_id,
                user_id: self.user.clone(),
            })
            .await
            .map(|_| ())
            .map_err(|status| {
                format!(
                    "ReleaseHold: gRPC {:?}: {}",
                    status.code(),
                    status.message()
                )
            })
    }
}

/// A worker running seating's own hold and release statements (see
/// `services/seating/src/store.rs`: `hold_seats`, `release_hold`) straight
/// against its database.
struct SqlHold {
    pool: PgPool,
    showtime_id: Uuid,
    user: String,
    picker: SeatPicker,
    pacer: Pacer,
    /// Release each hold (else the next one replaces it).
    release: bool,
    /// The last hold, when not released (see [`Worker::finish`]).
    left: Option<Uuid>,
    timeout: Duration,
}

/// How long a raw-SQL hold lasts (seating's default hold duration).
const SQL_HOLD_SECS: i64 = 600;

impl Worker for SqlHold {
    async fn call(&mut self) -> Result<Done, String> {
        let labels = self.picker.pick();
        let sent = self.pacer.start().await;
        let held = tokio::time::timeout(self.timeout, self.hold(&labels))
            .await
            .map_err(|_| format!("hold: no answer within {} ms", self.timeout.as_millis()))?
            .map_err(|e| format!("hold: {e}"))?;
        let held_in = sent.elapsed();
        let Some(hold_id) = held else {
            return Ok(Done::Refused(held_in));
        };
        if !self.release {
            self.left = Some(hold_id);
            return Ok(Done::OkIn(held_in));
        }
        tokio::time::timeout(self.timeout, self.release(hold_id))
            .await
            .map_err(|_| format!("release: no answer within {} ms", self.timeout.as_millis()))?
            .map_err(|e| format!("release: {e}"))?;
        Ok(Done::OkIn(held_in))
    }

    async fn finish(&mut self) {
        if let Some(hold_id) = self.left.take() {
            let _ = tokio::time::timeout(self.timeout, self.release(hold_id)).await;
        }
    }
}

impl SqlHold {
    /// Seating's `store::hold_seats`: `None` when a seat was taken.
    async fn hold(&self, labels: &[String]) -> Result<Option<Uuid>, String> {
        let now = chrono::Utc::now();
        let held_until = now + chrono::Duration::seconds(SQL_HOLD_SECS);
        let outcome = store::hold_seats(
            &self.pool,
            self.showtime_id,
            &self.user,
            labels,
            Vec::new(),
            now,
            held_until,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(match outcome {
            store::HoldOutcome::Held { hold, .. } => Some(hold.id),
            store::HoldOutcome::Unavailable(_) => None,
        })
    }

    /// Seating's `store::release_hold`, with the owner check.
    async fn release(&self, hold_id: Uuid) -> Result<(), String> {
        let mut connection = self.pool.acquire().await.map_err(|e| e.to_string())?;
        match store::release_hold(
            &mut connection,
            hold_id,
            Some(&self.user),
            chrono::Utc::now(),
        )
        .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(format!("hold {hold_id} had already ended")),
            Err(e) => Err(e.to_string()),
        }
    }
}
