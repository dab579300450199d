//! The rush (issue #8): `--users` buyers (1,000) race for the seats of one
//! showtime at the same moment, the way a popular premiere opens for sale.
//!
//! Before the clock starts every user signs in (registering its account
//! the first time), a few at a time, and the showtime is chosen: the first
//! listed one whose screen has `--seats` (120) seats, all on sale, else the
//! largest screen looked at; its capacity is reported either way. Then all
//! users start together. Each one, until it holds seats or finds none left:
//! reads the seat map, picks 1 to `--max-seats` (4) of the seats still
//! available at random, and asks for a hold. A hold refused because someone
//! was quicker (HTTP 409) is the expected outcome of a rush, counted apart
//! from errors; the user looks at the seat map again and tries other seats.
//! A user whose hold is granted takes `--pay-after` (2 s) as a person
//! would to review the seats and fill in the card form, then checks out
//! with the simulated payment provider, pays, and waits until its booking
//! exists. `--pay-after 0s` makes the winners pay while the race for the
//! seats is still on, which the first versions of this scenario did.
//!
//! Reported: hold latency (every answer, and granted holds only), when the
//! holds were sent and the slowest answers with their moment (the tail
//! comes in clusters of holds sent together), how late loadgen itself was
//! to wake its tasks (time in those latencies that no service spent; see
//! [`crate::lateness`]), seat-map
//! latency (seating serves holds before a crowd of map reads, so the wait
//! moves to the maps and shows there), holds granted and refused, what
//! became of the users, seats held and sold, and errors. Then the
//! invariants ([`crate::invariants`]) are checked in the services'
//! databases once the pipeline has settled: no seat sold twice, every
//! payment turned into one booking or one refund, one confirmation email
//! per booking, no more seats sold than the screen has, and — when some
//! user found the showtime sold out — every seat that was on sale sold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use uuid::Uuid;

use crate::closed_loop::parse_duration_within;
use crate::http1::Http1Connection;
use crate::invariants::{self, Databases, InvariantArgs};
use crate::lateness::{self, Lateness, Probe};
use crate::programme::{EMPTY_HINT, film_slugs, seat_count, seat_map, showtime_ids};
use crate::purchase::{self, Buyer, Held, Rng, pick_seats};
use crate::report::{micros, thousands};
use crate::target::Target;

/// Showtimes whose seat maps are read while looking for the screen size.
const SHOWTIMES_LOOKED_AT: usize = 64;
/// Longest latency the histograms tell apart, in microseconds.
const HIGHEST_MICROS: u64 = 120_000_000;

/// The rush scenario's flags.
#[derive(clap::Args, Debug)]
pub struct RushArgs {
    /// The gateway's base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Buyers racing for the showtime, all at once.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Most seats one buyer asks for (each asks for 1 to this many).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub max_seats: u16,
    /// Screen size to look for (the showtime with the most seats is taken
    /// when none has exactly this many).
    #[arg(long, default_value_t = 120)]
    pub seats: usize,
    /// Rush on this showtime instead of looking for one.
    #[arg(long)]
    pub showtime: Option<Uuid>,
    /// Hold attempts per user before it gives up.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub attempts: u32,
    /// Users signing in at the same time before the rush.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub sign_in_parallel: u16,
    /// How long one request may take before it counts as an error.
    #[arg(long, default_value = "10s", value_parser = parse_duration_within::<10, 120_000>)]
    pub timeout: Duration,
    /// How long a buyer takes from its hold to starting the checkout and
    /// paying: a person reviews the seats and fills in a card form. `0s`
    /// makes every winner pay the instant its hold is granted, so the
    /// winners' payments, bookings and emails share the CPU with the holds
    /// still being decided.
    #[arg(long, default_value = "2s", value_parser = parse_duration_within::<0, 600_000>)]
    pub pay_after: Duration,
    /// How long a buyer waits, after paying, for its booking to exist.
    #[arg(long, default_value = "60s", value_parser = parse_duration_within::<100, 600_000>)]
    pub confirm_within: Duration,
    #[command(flatten)]
    pub invariants: InvariantArgs,
    /// Print the results as one JSON document after the table.
    #[arg(long)]
    pub json: bool,
}

/// The showtime the rush is on.
#[derive(Clone, Debug, Serialize)]
struct Stage {
    showtime: Uuid,
    /// Seats of the screen.
    capacity: usize,
    /// Seats on sale when the rush began.
    supply: usize,
}

/// How one user's rush ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Ending {
    /// Held seats, paid, and its booking exists.
    Bought,
    /// Found no seat available.
    SoldOut,
    /// Ran out of attempts.
    GaveUp,
    /// Held seats but a later step failed.
    Failed,
}

/// What every user of one rush is told.
#[derive(Clone, Debug)]
struct Race {
    showtime: String,
    /// Most seats one user asks for.
    max_seats: usize,
    /// Hold attempts before a user gives up.
    attempts: u32,
    pay_after: Duration,
    confirm_within: Duration,
    /// When the users started, for when each hold was sent.
    started: Instant,
}

/// One hold answer.
#[derive(Clone, Copy, Debug)]
struct HoldAnswer {
    /// When the request was sent, from the start of the rush.
    sent_at: Duration,
    latency: Duration,
    granted: bool,
}

/// One user's rush.
struct Outcome {
    ending: Ending,
    holds: Vec<HoldAnswer>,
    /// Latency of every seat-map answer.
    maps: Vec<Duration>,
    seats_held: usize,
    errors: Vec<String>,
    /// Requests sent again after a 503 or no answer.
    retried: u64,
}

/// One of the slowest hold answers: when it was sent tells whether the
/// tail comes from the rush's first moments or from its middle.
#[derive(Debug, Serialize)]
struct SlowHold {
    sent_at_ms: f64,
    latency_ms: f64,
    granted: bool,
}

/// Hold answers listed in the report as the slowest.
const SLOWEST_LISTED: usize = 5;

/// What the run found, for people and for `--json`.
#[derive(Debug, Serialize)]
struct Summary {
    gateway: String,
    stage: Stage,
    users: u32,
    max_seats: u16,
    pay_after_seconds: f64,
    sign_in_seconds: f64,
    rush_seconds: f64,
    hold_requests: u64,
    holds_granted: u64,
    holds_refused: u64,
    hold_p50_ms: f64,
    hold_p95_ms: f64,
    hold_p99_ms: f64,
    hold_max_ms: f64,
    granted_p50_ms: f64,
    granted_p95_ms: f64,
    granted_p99_ms: f64,
    map_reads: u64,
    map_p50_ms: f64,
    map_p99_ms: f64,
    map_max_ms: f64,
    /// When the first and the last hold were sent, from the start of the
    /// rush: the window in which every hold was decided.
    holds_sent_from_ms: f64,
    holds_sent_until_ms: f64,
    /// The slowest hold answers, slowest first.
    slowest_holds: Vec<SlowHold>,
    /// How late loadgen itself was to wake its tasks during the rush:
    /// time in its latencies that no service spent.
    loadgen_lateness: Lateness,
    users_by_ending: BTreeMap<Ending, u64>,
    seats_held: u64,
    /// Seats sold during the rush, by seating's records once settled.
    seats_sold: Option<i64>,
    /// Requests sent again after a 503 or no answer (not errors unless the
    /// last try failed too).
    retried: u64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

/// Runs the rush and checks the invariants.
pub async fn run(args: RushArgs) -> anyhow::Result<()> {
    let gateway = Target::loopback(&args.gateway, "--gateway")?;
    let databases = Databases::connect(&args.invariants).await?;
    let stage = choose_stage(&args, &gateway)
        .await
        .context("choosing the showtime to rush")?;
    let before = invariants::showtime_sales(&databases.seating, stage.showtime).await?;
    eprintln!(
        "loadgen: rush on showtime {} ({} seats, {} on sale); signing in {} users, {} at a time",
        stage.showtime, stage.capacity, stage.supply, args.users, args.sign_in_parallel
    );

    let signing_in = Instant::now();
    let names = (0..args.users).map(|i| format!("rush-{i}")).collect();
    let buyers = purchase::sign_in_all(
        &gateway,
        args.timeout,
        names,
        usize::from(args.sign_in_parallel),
    )
    .await
    .context("signing the users in")?;
    let sign_in_seconds = signing_in.elapsed().as_secs_f64();
    eprintln!(
        "loadgen: {} users signed in in {sign_in_seconds:.1} s; the rush starts",
        buyers.len()
    );

    let started = Instant::now();
    let race = Race {
        showtime: stage.showtime.to_string(),
        max_seats: usize::from(args.max_seats),
        attempts: args.attempts,
        pay_after: args.pay_after,
        confirm_within: args.confirm_within,
        started,
    };
    let probe = Probe::start(started);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, buyer) in buyers.into_iter().enumerate() {
        tasks.spawn(rush_one(buyer, race.clone(), Rng::new(Rng::seed_for(i))));
    }
    let mut outcomes = Vec::with_capacity(args.users as usize);
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome?);
    }
    let rush_seconds = started.elapsed().as_secs_f64();
    let loadgen_lateness = probe.stop().await;

    let mut summary = summarise(
        &args,
        &gateway,
        stage.clone(),
        &outcomes,
        sign_in_seconds,
        rush_seconds,
        loadgen_lateness,
    )?;
    print_summary(&summary);

    let demand_exceeded = outcomes.iter().any(|o| o.ending == Ending::SoldOut);
    let supply = stage.supply as i64;
    let showtime_id = stage.showtime;
    let databases = &databases;
    let (checks, waited) = invariants::settle(args.invariants.settle, || async move {
        let mut checks = databases.every_booking_invariant().await?;
        checks.extend([
            invariants::seats_sold_within_capacity(&databases.seating, showtime_id).await?,
            invariants::sold_out_when_demand_exceeds_supply(
                &databases.seating,
                showtime_id,
                before,
                supply,
                demand_exceeded,
            )
            .await?,
        ]);
        Ok(checks)
    })
    .await?;
    let after = invariants::showtime_sales(&databases.seating, showtime_id).await?;
    summary.seats_sold = Some(after.sold - before.sold);
    println!(
        "seats: {} held by buyers; {} sold in the rush (seating's bookings, after settling), of \
         {} on sale",
        summary.seats_held,
        after.sold - before.sold,
        summary.stage.supply
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    invariants::conclude(&checks, waited)?;
    anyhow::ensure!(
        summary.errors == 0,
        "{} requests failed during the rush; figures from a run with errors are not comparable",
        summary.errors
    );
    Ok(())
}

/// One user, from its first look at the seat map to its booking (or to
/// finding no seat left).
async fn rush_one(mut buyer: Buyer, race: Race, mut rng: Rng) -> Outcome {
    let Race {
        showtime,
        max_seats,
        attempts,
        pay_after,
        confirm_within,
        started: rush_started,
    } = race;
    let mut outcome = Outcome {
        ending: Ending::GaveUp,
        holds: Vec::new(),
        maps: Vec::new(),
        seats_held: 0,
        errors: Vec::new(),
        retried: 0,
    };
    for _ in 0..attempts {
        let asked = Instant::now();
        let available = buyer.available_seats(&showtime).await;
        outcome.maps.push(asked.elapsed());
        let available = match available {
            Ok(available) => available,
            Err(error) => {
                outcome.errors.push(error);
                continue;
            }
        };
        if available.is_empty() {
            outcome.ending = Ending::SoldOut;
            outcome.retried = buyer.retried();
            return outcome;
        }
        let seats = pick_seats(&available, max_seats, &mut rng);
        let sent = Instant::now();
        let answer = buyer.hold(&showtime, &seats).await;
        let mut record = |granted| {
            outcome.holds.push(HoldAnswer {
                sent_at: sent - rush_started,
                latency: sent.elapsed(),
                granted,
            });
        };
        let hold_id = match answer {
            Ok(Held::Granted(id)) => {
                record(true);
                id
            }
            Ok(Held::Refused) => {
                record(false);
                continue;
            }
            // A hold that timed out may still have been granted; the next
            // one replaces it (one active hold per user and showtime).
            Err(error) => {
                outcome.errors.push(error);
                continue;
            }
        };
        outcome.seats_held = seats.len();
        tokio::time::sleep(pay_after).await;
        let bought = async {
            let checkout = buyer.check_out(&hold_id).await?;
            buyer.pay(&checkout).await?;
            buyer.await_booking(&checkout, confirm_within).await
        };
        outcome.ending = match bought.await {
            Ok(_reference) => Ending::Bought,
            Err(error) => {
                outcome.errors.push(error);
                Ending::Failed
            }
        };
        outcome.retried = buyer.retried();
        return outcome;
    }
    outcome.retried = buyer.retried();
    outcome
}

/// The showtime to rush: `--showtime`, else the first listed one whose
/// screen has exactly `--seats` seats all on sale, else the one with the
/// most seats on sale among those looked at.
async fn choose_stage(args: &RushArgs, gateway: &Target) -> anyhow::Result<Stage> {
    let mut connection = Http1Connection::new(gateway, args.timeout, false)?;
    let mut stage_of = async |id: Uuid| -> anyhow::Result<Stage> {
        let map = seat_map(&mut connection, &id.to_string()).await?;
        Ok(Stage {
            showtime: id,
            capacity: seat_count(&map),
            supply: purchase::available_in_parsed(&map)
                .map_err(anyhow::Error::msg)?
                .len(),
        })
    };
    if let Some(id) = args.showtime {
        return stage_of(id).await;
    }
    let mut listing = Http1Connection::new(gateway, args.timeout, false)?;
    let mut ids: Vec<Uuid> = Vec::new();
    for slug in film_slugs(&mut listing).await? {
        for id in showtime_ids(&mut listing, &slug).await? {
            if let Ok(id) = id.parse::<Uuid>()
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
    }
    let mut best: Option<Stage> = None;
    for id in ids.into_iter().take(SHOWTIMES_LOOKED_AT) {
        let stage = stage_of(id).await?;
        if stage.capacity == args.seats && stage.supply == stage.capacity {
            return Ok(stage);
        }
        if best.as_ref().is_none_or(|b| stage.supply > b.supply) {
            best = Some(stage);
        }
    }
    best.filter(|b| b.supply > 0)
        .with_context(|| format!("no listed showtime has a seat on sale; {EMPTY_HINT}"))
}

fn summarise(
    args: &RushArgs,
    gateway: &Target,
    stage: Stage,
    outcomes: &[Outcome],
    sign_in_seconds: f64,
    rush_seconds: f64,
    loadgen_lateness: Lateness,
) -> anyhow::Result<Summary> {
    let mut all = Histogram::<u64>::new_with_bounds(1, HIGHEST_MICROS, 3)?;
    let mut granted = all.clone();
    let mut maps = all.clone();
    let mut users_by_ending = BTreeMap::new();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let (mut holds_granted, mut holds_refused, mut seats_held) = (0, 0, 0);
    let mut every_hold: Vec<HoldAnswer> = Vec::new();
    for outcome in outcomes {
        *users_by_ending.entry(outcome.ending).or_default() += 1;
        seats_held += outcome.seats_held as u64;
        every_hold.extend_from_slice(&outcome.holds);
        for hold in &outcome.holds {
            let latency = micros(hold.latency);
            all.saturating_record(latency);
            if hold.granted {
                holds_granted += 1;
                granted.saturating_record(latency);
            } else {
                holds_refused += 1;
            }
        }
        for latency in &outcome.maps {
            maps.saturating_record(micros(*latency));
        }
        for error in &outcome.errors {
            *error_kinds.entry(error.clone()).or_default() += 1;
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    let millis = |d: Duration| d.as_secs_f64() * 1_000.0;
    let holds_sent_from_ms = every_hold
        .iter()
        .map(|h| h.sent_at)
        .min()
        .map_or(0.0, millis);
    let holds_sent_until_ms = every_hold
        .iter()
        .map(|h| h.sent_at)
        .max()
        .map_or(0.0, millis);
    every_hold.sort_by_key(|hold| std::cmp::Reverse(hold.latency));
    let slowest_holds = every_hold
        .iter()
        .take(SLOWEST_LISTED)
        .map(|h| SlowHold {
            sent_at_ms: millis(h.sent_at),
            latency_ms: millis(h.latency),
            granted: h.granted,
        })
        .collect();
    Ok(Summary {
        gateway: gateway.url.clone(),
        stage,
        users: args.users,
        max_seats: args.max_seats,
        pay_after_seconds: args.pay_after.as_secs_f64(),
        sign_in_seconds,
        rush_seconds,
        hold_requests: all.len(),
        holds_granted,
        holds_refused,
        hold_p50_ms: ms(&all, 0.50),
        hold_p95_ms: ms(&all, 0.95),
        hold_p99_ms: ms(&all, 0.99),
        hold_max_ms: all.max() as f64 / 1_000.0,
        granted_p50_ms: ms(&granted, 0.50),
        granted_p95_ms: ms(&granted, 0.95),
        granted_p99_ms: ms(&granted, 0.99),
        map_reads: maps.len(),
        map_p50_ms: ms(&maps, 0.50),
        map_p99_ms: ms(&maps, 0.99),
        map_max_ms: maps.max() as f64 / 1_000.0,
        holds_sent_from_ms,
        holds_sent_until_ms,
        slowest_holds,
        loadgen_lateness,
        users_by_ending,
        seats_held,
        seats_sold: None,
        retried: outcomes.iter().map(|o| o.retried).sum(),
        errors: error_kinds.values().sum(),
        error_kinds,
    })
}

fn print_summary(s: &Summary) {
    println!(
        "loadgen rush: gateway {} | showtime {} (screen of {} seats, {} on sale) | {} users, \
         1–{} seats each, all starting at once, paying {} s after their hold (signed in \
         beforehand in {:.1} s)\n",
        s.gateway,
        s.stage.showtime,
        s.stage.capacity,
        s.stage.supply,
        thousands(u64::from(s.users)),
        s.max_seats,
        s.pay_after_seconds,
        s.sign_in_seconds,
    );
    println!(
        "rush: {:.2} s until every user had bought, found the showtime sold out, or given up",
        s.rush_seconds
    );
    println!(
        "holds: {} requests = {} granted + {} refused (409, seat taken); {} errors; {} requests \
         retried after a 503 or no answer",
        thousands(s.hold_requests),
        thousands(s.holds_granted),
        thousands(s.holds_refused),
        thousands(s.errors),
        thousands(s.retried),
    );
    println!(
        "hold latency, every answer:  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        s.hold_p50_ms, s.hold_p95_ms, s.hold_p99_ms, s.hold_max_ms
    );
    println!(
        "hold latency, granted only:  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
        s.granted_p50_ms, s.granted_p95_ms, s.granted_p99_ms
    );
    println!(
        "holds sent from +{:.0} ms to +{:.0} ms of the rush; slowest answers: {}",
        s.holds_sent_from_ms,
        s.holds_sent_until_ms,
        s.slowest_holds
            .iter()
            .map(|h| format!(
                "{:.1} ms ({} at +{:.0} ms)",
                h.latency_ms,
                if h.granted { "granted" } else { "refused" },
                h.sent_at_ms
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "loadgen's own lateness: woke up to {:.1} ms late (due at +{:.0} ms); {} wake-ups \
         {} ms or more late",
        s.loadgen_lateness.max_ms,
        s.loadgen_lateness.max_at_ms,
        s.loadgen_lateness.stalls,
        lateness::STALL.as_millis()
    );
    println!(
        "seat maps: {} reads; latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        thousands(s.map_reads),
        s.map_p50_ms,
        s.map_p99_ms,
        s.map_max_ms
    );
    let users = |ending| s.users_by_ending.get(&ending).copied().unwrap_or(0);
    println!(
        "users: {} bought, {} found it sold out, {} gave up after their attempts, {} failed \
         after holding",
        users(Ending::Bought),
        users(Ending::SoldOut),
        users(Ending::GaveUp),
        users(Ending::Failed),
    );
    if !s.error_kinds.is_empty() {
        println!("errors:");
        for (kind, count) in &s.error_kinds {
            println!("  {count:>9} × {kind}");
        }
    }
}
