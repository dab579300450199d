//! Steady booking (issue #8): `--concurrency` workers in a closed loop, each
//! a signed-in buyer completing whole bookings one after the other.
//!
//! Each worker signs in once, before the clock starts. One iteration is a
//! whole purchase: pick one of the listed showtimes at random (spreading the
//! load over the programme; a showtime with no seat left is skipped), read
//! its seat map, hold 1 to `--max-seats` (2) available seats, check out with
//! the simulated payment provider, pay on its page, and poll the checkout
//! through the gateway until seating's booking reference shows up. The
//! latency recorded is **hold to confirmed**: from sending the hold to
//! seeing the booking, so it includes payments' `payments.succeeded`
//! event, seating's booking and its `bookings.confirmed` back to payments.
//! Throughput is completed bookings per second. A hold refused because a
//! seat was just taken (HTTP 409) is counted apart, not as an error.
//!
//! After the runs the invariants ([`crate::invariants`]) are checked in the
//! services' databases, once the pipeline has settled.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::closed_loop::{self, Done, LoadArgs, Measurement, Worker, parse_duration_within};
use crate::http1::Http1Connection;
use crate::invariants::{self, Databases, InvariantArgs};
use crate::programme::{EMPTY_HINT, film_slugs, showtime_ids};
use crate::purchase::{self, Buyer, Held, Rng, pick_seats};
use crate::report::{self, Row};
use crate::target::Target;

/// The steady booking scenario's flags.
#[derive(clap::Args, Debug)]
pub struct BookingArgs {
    /// The gateway's base URL (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Most seats per booking (each takes 1 to this many).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub max_seats: u16,
    /// How long a worker waits, after paying, for its booking to exist
    /// (longer counts as an error).
    #[arg(long, default_value = "30s", value_parser = parse_duration_within::<100, 600_000>)]
    pub confirm_within: Duration,
    /// Workers signing in at the same time before the clock starts.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub sign_in_parallel: u16,
    #[command(flatten)]
    pub invariants: InvariantArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'static str,
    timing: &'static str,
    gateway: &'a str,
    showtimes: usize,
    max_seats: u16,
    results: &'a [Row],
}

/// Runs steady booking at each concurrency level, then checks the
/// invariants.
pub async fn run(args: BookingArgs) -> anyhow::Result<()> {
    let gateway = Target::loopback(&args.gateway, "--gateway")?;
    let databases = Databases::connect(&args.invariants).await?;
    let showtimes = listed_showtimes(&gateway, args.load.timeout)
        .await
        .context("listing showtimes")?;

    let mut rows = Vec::new();
    for &concurrency in &args.load.concurrency {
        let names: Vec<String> = (0..concurrency).map(|i| format!("booking-{i}")).collect();
        let mut total: Option<Measurement> = None;
        for round in 1..=args.load.rounds {
            eprintln!(
                "loadgen: booking at concurrency {concurrency}, round {round}/{}: signing in, \
                 then {:.1}s warm-up, {:.1}s measured",
                args.load.rounds,
                args.load.warmup.as_secs_f64(),
                args.load.duration.as_secs_f64(),
            );
            let buyers = purchase::sign_in_all(
                &gateway,
                args.load.timeout,
                names.clone(),
                usize::from(args.sign_in_parallel),
            )
            .await
            .context("signing the workers in")?;
            let workers = buyers
                .into_iter()
                .enumerate()
                .map(|(i, buyer)| BookingWorker {
                    buyer,
                    showtimes: showtimes.clone(),
                    rng: Rng::new(Rng::seed_for(i)),
                    max_seats: usize::from(args.max_seats),
                    confirm_within: args.confirm_within,
                })
                .collect();
            let measured = closed_loop::run(args.load.shape(), workers).await?;
            match &mut total {
                Some(total) => total.absorb(measured)?,
                None => total = Some(measured),
            }
        }
        if let Some(measured) = total {
            rows.push(Row::new(
                "booking",
                "hold → checkout → pay → booking confirmed".to_owned(),
                concurrency,
                &measured,
            ));
        }
    }

    eprintln!(
        "loadgen: waiting (at most {:.0} s) for every booking and email to arrive",
        args.invariants.settle.as_secs_f64()
    );
    let databases = &databases;
    let (checks, waited) = invariants::settle(args.invariants.settle, || {
        databases.every_booking_invariant()
    })
    .await?;

    if args.load.json {
        let document = JsonReport {
            scenario: "booking",
            timing: "hold sent → booking reference seen through the gateway; req/s = completed \
                     bookings/s",
            gateway: &gateway.url,
            showtimes: showtimes.len(),
            max_seats: args.max_seats,
            results: &rows,
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!(
            "loadgen booking: gateway {} | {} showtimes, one picked at random per booking | \
             closed loop, {:.1}s warm-up + {:.1}s measured, {} round(s); one iteration = hold \
             1–{} seats → checkout → pay (simulated) → booking confirmed; req/s = bookings/s, \
             latency = hold to confirmed\n",
            gateway.url,
            showtimes.len(),
            args.load.warmup.as_secs_f64(),
            args.load.duration.as_secs_f64(),
            args.load.rounds,
            args.max_seats,
        );
        report::print_table(&rows);
    }
    invariants::conclude(&checks, waited)?;
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bail!("{errors} bookings failed; figures from a run with errors are not comparable");
    }
    Ok(())
}

/// Every showtime the gateway lists, film by film.
async fn listed_showtimes(gateway: &Target, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let mut connection = Http1Connection::new(gateway, timeout, false)?;
    let mut ids = Vec::new();
    for slug in film_slugs(&mut connection).await? {
        for id in showtime_ids(&mut connection, &slug).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    anyhow::ensure!(
        !ids.is_empty(),
        "no upcoming showtime is listed; {EMPTY_HINT}"
    );
    Ok(ids)
}

/// A signed-in buyer booking again and again.
struct BookingWorker {
    buyer: Buyer,
    /// The showtimes this worker has not found sold out.
    showtimes: Vec<String>,
    rng: Rng,
    max_seats: usize,
    confirm_within: Duration,
}

impl Worker for BookingWorker {
    async fn call(&mut self) -> Result<Done, String> {
        // A showtime found sold out is not tried again by this worker: a
        // fast box sells most of the week during a run, and picking blindly
        // would then spend the run reading full seat maps.
        let (showtime, available) = loop {
            if self.showtimes.is_empty() {
                return Err(
                    "every listed showtime is sold out (drop the bench databases or \
                            run for less time)"
                        .to_owned(),
                );
            }
            let i = self.rng.below(self.showtimes.len());
            let available = self.buyer.available_seats(&self.showtimes[i]).await?;
            if available.is_empty() {
                self.showtimes.swap_remove(i);
            } else {
                break (self.showtimes[i].clone(), available);
            }
        };
        let seats = pick_seats(&available, self.max_seats, &mut self.rng);
        let started = Instant::now();
        let retried_before = self.buyer.retried();
        let hold_id = match self.buyer.hold(&showtime, &seats).await? {
            Held::Granted(id) => id,
            Held::Refused => return Ok(Done::Refused(started.elapsed())),
        };
        let held = started.elapsed();
        let checkout = self.buyer.check_out(&hold_id).await?;
        let checked_out = started.elapsed();
        self.buyer.pay(&checkout).await?;
        let paid = started.elapsed();
        self.buyer
            .await_booking(&checkout, self.confirm_within)
            .await?;
        let total = started.elapsed();
        if total >= SLOW_BOOKING {
            // Which step a rare slow booking spent its time in, for whoever
            // chases it (the percentiles only say that it happened).
            eprintln!(
                "loadgen: slow booking, {} ms: hold {} ms, checkout {} ms, pay {} ms, \
                 until confirmed {} ms; {} request(s) retried after a 503 or no answer \
                 (checkout session {})",
                total.as_millis(),
                held.as_millis(),
                (checked_out - held).as_millis(),
                (paid - checked_out).as_millis(),
                (total - paid).as_millis(),
                self.buyer.retried() - retried_before,
                checkout.session_id,
            );
        }
        Ok(Done::OkIn(total))
    }
}

/// A booking slower than this is reported step by step on stderr.
const SLOW_BOOKING: Duration = Duration::from_secs(2);
