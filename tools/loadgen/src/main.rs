//! `loadgen`: BookMySeat's load generator, one subcommand per scenario.
//!
//! A scenario is a set of request kinds ("endpoints") driven one after the
//! other by the same closed-loop runner ([`closed_loop`]): N workers, each
//! sending its next request as soon as the previous one answered, a warm-up
//! that is not counted, then a measured window whose every latency lands in
//! an HdrHistogram. Closed loops measure capacity (how many requests per
//! second the system completes at a given concurrency), not behaviour under
//! an arrival rate the system cannot keep up with; that is what issue #2's
//! targets ask about.
//!
//! `browse` (issue #2) compares the film list through the gateway with the
//! same call made straight to catalog over gRPC. `holds` (issue #3) measures
//! seat holds through the gateway, over gRPC to seating and as seating's raw
//! SQL, uncontended and contended. `webhooks` (issue #5) sends signed Stripe
//! webhooks to payments and times each to its `bookings.confirmed`.
//! `events` (issue #6) publishes `bookings.confirmed` events and times the
//! notifier's and analytics' consumers through them. `rush` (issue #8) sends
//! a crowd of signed-in buyers at one showtime at once; `booking` (issue #8)
//! completes whole purchases in a closed loop (hold, checkout, simulated
//! payment, booking confirmed). Both end by checking the product's
//! invariants in the services' databases ([`invariants`]) and fail when one
//! is violated.
//!
//! Load only ever goes to this machine: [`target`] refuses any address
//! outside the loopback range, and every run is bounded in time and in
//! request count.

mod booking;
mod browse;
mod closed_loop;
mod cpu;
mod events;
mod holds;
mod http1;
mod invariants;
mod lateness;
mod programme;
mod purchase;
mod report;
mod rush;
mod sign_in;
mod stripe;
mod target;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "BookMySeat load generator (targets this machine only)"
)]
struct Cli {
    /// Runtime threads for the load generator itself (default: one per core).
    /// It shares the machine with the services it measures; fewer threads
    /// leave them more CPU.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Browsing: the film list through the gateway and straight from catalog
    /// over gRPC (issue #2), optionally the film page and showtime JSON too.
    Browse(browse::BrowseArgs),
    /// Seat holds (issue #3): hold then release, through the gateway, over
    /// gRPC to seating, and as seating's raw SQL, uncontended and contended.
    Holds(holds::HoldsArgs),
    /// Payments webhooks (issue #5): signed `checkout.session.completed`
    /// webhooks per second into payments, and webhook → `bookings.confirmed`.
    Webhooks(webhooks::WebhooksArgs),
    /// Event consumers (issue #6): `bookings.confirmed` events per second
    /// through the notifier (emails) and analytics (figures).
    Events(events::EventsArgs),
    /// A rush (issue #8): many buyers at once race for one showtime's seats;
    /// hold latency, holds granted and refused, seats sold, invariants.
    Rush(rush::RushArgs),
    /// Steady booking (issue #8): workers complete whole bookings (hold,
    /// checkout, simulated payment, confirmed) in a closed loop; bookings/s,
    /// hold-to-confirmed latency, invariants.
    Booking(booking::BookingArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.threads {
        anyhow::ensure!(
            (1..=64).contains(&threads),
            "--threads must be between 1 and 64"
        );
        runtime.worker_threads(threads);
    }
    let runtime = runtime.build()?;
    match cli.scenario {
        Scenario::Browse(args) => runtime.block_on(browse::run(args)),
        Scenario::Holds(args) => runtime.block_on(holds::run(args)),
        Scenario::Webhooks(args) => runtime.block_on(webhooks::run(args)),
        Scenario::Events(args) => runtime.block_on(events::run(args)),
        Scenario::Rush(args) => runtime.block_on(rush::run(args)),
        Scenario::Booking(args) => runtime.block_on(booking::run(args)),
    }
}
