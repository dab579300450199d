//! The closed-loop runner every scenario uses, and the flags that shape it.
//!
//! `concurrency` workers each send a request, wait for its answer, and send
//! the next. The run has two phases on one clock: a warm-up (connections
//! open, caches fill, the runtime's threads spin up) whose requests are not
//! counted, then the measured window. A request counts when it *completes*
//! inside the window, so throughput is simply counted requests divided by the
//! window's length. Latency is measured from just before the request to the
//! end of its response body, recorded per worker in an HdrHistogram
//! (microseconds, three significant digits) and merged at the end, so
//! workers share nothing on the hot path but two relaxed atomics.
//!
//! A run is bounded twice: by its duration, and by a request count after
//! which every worker stops early (the window is then measured up to the
//! last counted answer). Workers own their timeouts, because only they know
//! what a timed-out request leaves behind (an HTTP/1.1 connection that must
//! be dropped). A worker with a finite supply of requests (webhooks, each
//! sent once) ends its own part early with [`Done::Exhausted`]; a run given
//! that supply as its request budget then ends with the last answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::cpu::{self, Watched};
use crate::report::micros;

/// Longest latency the histogram tells apart; longer ones count as this.
const HIGHEST_LATENCY_MICROS: u64 = 60_000_000;
/// Distinct error messages kept per run; the rest are lumped together.
const MAX_ERROR_KINDS: usize = 8;

/// Flags every scenario shares: how hard and how long to push.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Concurrent workers (closed loop). A comma-separated list runs every
    /// endpoint at each level, e.g. `16,64,256`.
    #[arg(long, value_delimiter = ',', default_value = "64", value_parser = parse_concurrency)]
    pub concurrency: Vec<usize>,
    /// Measured time per endpoint and concurrency level, e.g. `10s`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration_within::<1_000, 600_000>)]
    pub duration: Duration,
    /// Uncounted warm-up before each measured window, e.g. `2s`.
    #[arg(long, default_value = "2s", value_parser = parse_duration_within::<0, 60_000>)]
    pub warmup: Duration,
    /// Most counted requests per endpoint and level; the window ends early
    /// when they are reached.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_requests: u64,
    /// How long one request may take before it counts as an error, e.g. `5s`.
    #[arg(long, default_value = "5s", value_parser = parse_duration_within::<10, 60_000>)]
    pub timeout: Duration,
    /// Measure each endpoint this many times, the endpoints taking turns,
    /// and add the rounds up: a slow drift in background load then hits
    /// every endpoint alike instead of whichever ran last.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Processes whose CPU time per request is reported, as NAME=PID
    /// (comma-separated), e.g. `gateway=4242,catalog=4243`. The load
    /// generator and the whole machine are always reported (Linux only).
    #[arg(long, value_delimiter = ',', value_parser = cpu::parse_watched)]
    pub watch: Vec<Watched>,
    /// Print the results as one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// How long and how far each run goes (its concurrency is the number of
    /// workers it is given).
    pub fn shape(&self) -> Shape {
        Shape {
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.max_requests,
            watched: self.watch.clone(),
        }
    }
}

/// One run's shape.
#[derive(Clone, Debug)]
pub struct Shape {
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
    /// Processes whose CPU time is sampled over the measured window.
    pub watched: Vec<Watched>,
}

/// One kind of request, sent over and over by one worker.
pub trait Worker: Send + 'static {
    /// Sends one request and checks its answer; `Err` says what was wrong.
    fn call(&mut self) -> impl Future<Output = Result<Done, String>> + Send;

    /// Tidies up once the run has ended (untimed, outside the CPU window):
    /// e.g. releases a seat hold the last call left in place.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How a call that did not fail went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// The expected answer; the latency recorded is the whole call.
    Ok,
    /// The expected answer, but only this part of the call is timed (e.g. a
    /// seat hold, with the release that follows it untimed).
    OkIn(Duration),
    /// An answer the scenario expects under contention (seats already
    /// taken: HTTP 409, gRPC `FAILED_PRECONDITION`), counted apart from both
    /// correct answers and errors; the latency of the timed part goes to its
    /// own histogram.
    Refused(Duration),
    /// Nothing was sent: the worker's finite supply of requests ran out
    /// (each webhook can be delivered once). The worker stops; the call is
    /// not counted.
    Exhausted,
}

/// What one run measured.
pub struct Measurement {
    /// Counted requests answered correctly.
    pub ok: u64,
    /// Counted requests that failed (wrong status, transport error, timeout).
    pub errors: u64,
    /// Counted requests refused as the scenario expects (see [`Done::Refused`]).
    pub refused: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// Latencies of the correct answers, in microseconds.
    pub latency: Histogram<u64>,
    /// Latencies of the refusals, in microseconds.
    pub refused_latency: Histogram<u64>,
    /// Error messages and how often each occurred.
    pub error_kinds: BTreeMap<String, u64>,
    /// CPU time each process spent during the window (see [`cpu`]); empty
    /// when the window was cut short by the request budget.
    pub cpu: Vec<(String, Duration)>,
}

impl Measurement {
    /// Adds another run of the same endpoint (a later round) to this one.
    pub fn absorb(&mut self, other: Measurement) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.refused += other.refused;
        self.window += other.window;
        self.latency.add(&other.latency)?;
        self.refused_latency.add(&other.refused_latency)?;
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
        // Only processes sampled in every round have a meaningful total.
        self.cpu = std::mem::take(&mut self.cpu)
            .into_iter()
            .filter_map(|(name, used)| {
                let more = other.cpu.iter().find(|(n, _)| *n == name)?.1;
                Some((name, used + more))
            })
            .collect();
        Ok(())
    }

    /// CPU microseconds per counted request, per process.
    pub fn cpu_per_request(&self) -> Vec<(String, f64)> {
        let requests = (self.ok + self.errors + self.refused).max(1) as f64;
        self.cpu
            .iter()
            .map(|(name, used)| (name.clone(), used.as_secs_f64() * 1e6 / requests))
            .collect()
    }

    /// Correct answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }

    /// Refusals per second.
    pub fn refused_rate(&self) -> f64 {
        self.refused as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }
}

/// Drives `workers` (one task each) through warm-up and the measured window.
pub async fn run<W: Worker>(shape: Shape, workers: Vec<W>) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    let clock = Clock {
        counted_from: started + shape.warmup,
        ends: started + shape.warmup + shape.duration,
    };
    let budget = Arc::new(Budget {
        max: shape.max_requests,
        counted: AtomicU64::new(0),
        spent: AtomicBool::new(false),
    });
    let empty = Histogram::new_with_bounds(1, HIGHEST_LATENCY_MICROS, 3)?;
    let mut tasks = JoinSet::new();
    for worker in workers {
        tasks.spawn(drive(
            worker,
            clock,
            Arc::clone(&budget),
            [empty.clone(), empty.clone()],
        ));
    }
    let watched = shape.watched;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(clock.counted_from.into()).await;
        let before = cpu::sample(&watched);
        tokio::time::sleep_until(clock.ends.into()).await;
        cpu::elapsed(&before, &cpu::sample(&watched))
    });

    let mut measurement = Measurement {
        ok: 0,
        errors: 0,
        refused: 0,
        window: shape.duration,
        refused_latency: empty.clone(),
        latency: empty,
        error_kinds: BTreeMap::new(),
        cpu: Vec::new(),
    };
    let mut last_counted = clock.counted_from;
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        measurement.ok += tally.ok;
        measurement.errors += tally.errors;
        measurement.refused += tally.refused;
        measurement.latency.add(&tally.latency)?;
        measurement.refused_latency.add(&tally.refused_latency)?;
        for (kind, count) in tally.error_kinds {
            *measurement.error_kinds.entry(kind).or_default() += count;
        }
        last_counted = last_counted.max(tally.last_counted.unwrap_or(last_counted));
    }
    if budget.spent.load(Ordering::Relaxed) {
        measurement.window = last_counted - clock.counted_from;
        // The samples would span a longer window than the requests did.
        sampler.abort();
    } else {
        measurement.cpu = sampler.await?;
    }
    Ok(measurement)
}

#[derive(Clone, Copy)]
struct Clock {
    counted_from: Instant,
    ends: Instant,
}

/// The request-count bound, shared by all workers of a run.
struct Budget {
    max: u64,
    counted: AtomicU64,
    spent: AtomicBool,
}

/// One worker's share of a measurement.
struct Tally {
    ok: u64,
    errors: u64,
    refused: u64,
    latency: Histogram<u64>,
    refused_latency: Histogram<u64>,
    error_kinds: BTreeMap<String, u64>,
    last_counted: Option<Instant>,
}

async fn drive<W: Worker>(
    mut worker: W,
    clock: Clock,
    budget: Arc<Budget>,
    [latency, refused_latency]: [Histogram<u64>; 2],
) -> Tally {
    let mut tally = Tally {
        ok: 0,
        errors: 0,
        refused: 0,
        latency,
        refused_latency,
        error_kinds: BTreeMap::new(),
        last_counted: None,
    };
    loop {
        let sent = Instant::now();
        if sent >= clock.ends || budget.spent.load(Ordering::Relaxed) {
            break;
        }
        let answer = worker.call().await;
        if answer == Ok(Done::Exhausted) {
            break;
        }
        let answered = Instant::now();
        if answered < clock.counted_from || answered >= clock.ends {
            continue;
        }
        let counted = budget.counted.fetch_add(1, Ordering::Relaxed) + 1;
        if counted > budget.max {
            break;
        }
        if counted == budget.max {
            budget.spent.store(true, Ordering::Relaxed);
        }
        tally.last_counted = Some(answered);
        match answer {
            Ok(Done::Ok) => {
                tally.ok += 1;
                tally.latency.saturating_record(micros(answered - sent));
            }
            Ok(Done::OkIn(timed)) => {
                tally.ok += 1;
                tally.latency.saturating_record(micros(timed));
            }
            Ok(Done::Refused(timed)) => {
                tally.refused += 1;
                tally.refused_latency.saturating_record(micros(timed));
            }
            Ok(Done::Exhausted) => break,
            Err(message) => {
                tally.errors += 1;
                let kind = if tally.error_kinds.len() < MAX_ERROR_KINDS
                    || tally.error_kinds.contains_key(&message)
                {
                    message
                } else {
                    "(other errors)".to_owned()
                };
                *tally.error_kinds.entry(kind).or_default() += 1;
            }
        }
    }
    worker.finish().await;
    tally
}

fn parse_concurrency(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=4_096).contains(&n) => Ok(n),
        _ => Err(format!(
            "{value:?} is not a worker count between 1 and 4096"
        )),
    }
}

/// Parses `250ms`, `10s`, `2m` (a bare number is seconds) and checks it lies
/// within `MIN_MS..=MAX_MS` milliseconds.
pub fn parse_duration_within<const MIN_MS: u64, const MAX_MS: u64>(
    value: &str,
) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 500ms, 10s or 2m"))?;
    let millis = match unit {
        "ms" => number,
        "" | "s" => number * 1_000.0,
        "m" | "min" => number * 60_000.0,
        _ => return Err(format!("{value:?}: the unit must be ms, s or m")),
    };
    if !(MIN_MS as f64..=MAX_MS as f64).contains(&millis) {
        return Err(format!(
            "{value:?} must lie between {MIN_MS} ms and {} s",
            MAX_MS / 1_000
        ));
    }
    Ok(Duration::from_secs_f64(millis / 1_000.0))
}

/// A fixed arrival rate, requests per second, as a flag gives it.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (1.0..=100_000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{value:?}: a rate is a number of requests per second from 1 to 100,000"
        )),
    }
}

/// A worker's schedule at a fixed rate: `workers` workers share `rate`
/// requests per second, their starts spread evenly over one interval. Without
/// a rate, the next hold starts at once (closed loop).
pub struct Pacer {
    interval: Option<Duration>,
    offset: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(rate: Option<f64>, workers: usize, i: usize) -> Self {
        let interval = rate.map(|rate| Duration::from_secs_f64(workers as f64 / rate));
        Self {
            offset: interval.map_or(Duration::ZERO, |interval| {
                interval.mul_f64(i as f64 / workers.max(1) as f64)
            }),
            interval,
            next: None,
        }
    }

    /// Waits for the next scheduled start and returns it; latency counts
    /// from there, so a worker that falls behind its schedule reports the
    /// delay too. (A worker more than one interval behind starts at once:
    /// the schedule is kept, not the pause.)
    pub async fn start(&mut self) -> Instant {
        let Some(interval) = self.interval else {
            return Instant::now();
        };
        let next = *self
            .next
            .get_or_insert_with(|| Instant::now() + self.offset);
        tokio::time::sleep_until(next.into()).await;
        self.next = Some(next + interval);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bounds() {
        let parse = parse_duration_within::<0, 600_000>;
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert!(parse("11m").is_err());
        assert!(parse("10h").is_err());
        assert!(parse("fast").is_err());
    }

    struct Instant200;

    impl Worker for Instant200 {
        async fn call(&mut self) -> Result<Done, String> {
            tokio::task::yield_now().await;
            Ok(Done::Ok)
        }
    }

    #[tokio::test]
    async fn the_request_budget_ends_the_window_early() {
        let shape = Shape {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(30),
            max_requests: 1_000,
            watched: Vec::new(),
        };
        let workers = (0..4).map(|_| Instant200).collect();
        let measurement = run(shape, workers).await.unwrap();
        assert_eq!(measurement.ok, 1_000);
        assert_eq!(measurement.errors, 0);
        assert!(measurement.window < Duration::from_secs(30));
        assert_eq!(measurement.latency.len(), 1_000);
    }
}
