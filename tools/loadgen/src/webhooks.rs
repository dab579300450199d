//! The payments webhook scenario (issue #5): signed Stripe webhooks processed
//! per second by payments, and the time from a webhook sent to the booking
//! seating confirms for it (`bookings.confirmed`).
//!
//! Preparing (untimed): loadgen starts its Stripe-shaped server
//! ([`crate::stripe`]; payments' `STRIPE_API_BASE` points at it), lists the
//! programme's upcoming showtimes through catalog's gRPC and their free seats
//! through seating's, then for each webhook-to-be holds **one seat for a user
//! of its own** (seating `HoldSeats`, the holds spread round-robin over the
//! showtimes) and creates its checkout (payments `CreateCheckout`, which
//! reads the hold, prices it through catalog, extends it and creates the
//! session on the fake Stripe), `--prepare-concurrency` at a time. Each
//! checkout's `checkout.session.completed` event is then built from the
//! session the fake Stripe holds — paid, with its amount, currency and
//! metadata — exactly as Stripe would post it.
//!
//! Measuring: `--concurrency` workers, each with its own HTTP/1.1 keep-alive
//! connection ([`crate::http1`]), take the next unsent event, sign it
//! (`Stripe-Signature`, timestamp = now) and `POST /webhooks/stripe`, as fast
//! as payments answers (a closed loop over a finite supply: the run ends
//! when every webhook was answered, or at `--duration`). A webhook counts as
//! correct when payments answers 200 with the outcome `paid`; its latency is
//! the response time. Meanwhile a NATS core subscription on
//! `bookings.confirmed` (under `--events-prefix`; JetStream delivers every
//! published message to core subscribers too) decodes each
//! `BookingConfirmed` and matches it to its checkout: the webhook-to-booking
//! latency runs from just before the webhook was sent to the moment the
//! booking event reached loadgen, across payments' transaction and outbox,
//! JetStream, seating's consumer and transaction and outbox, and JetStream
//! again. `--warmup-webhooks` are sent first and not counted.
//!
//! Invariants checked afterwards: every checkout whose webhook was accepted
//! got exactly one `bookings.confirmed`; then `--replays` of the measured
//! webhooks are delivered again — the same event (payments must answer it
//! as a replay) and the same session under a new event id (payments must
//! find it already paid) — and after a pause no checkout may have a second
//! booking.
//!
//! The fixed `--warmup` time of the other scenarios does not apply here
//! (each webhook can only be delivered once); `--duration` bounds each
//! measured run and `--max-requests` its webhooks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use hyper::body::Bytes;
use prost::Message as _;
use proto::catalog::v1 as catalog_pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use proto::events::v1::BookingConfirmed;
use proto::payments::v1 as payments_pb;
use proto::payments::v1::payments_service_client::PaymentsServiceClient;
use proto::seating::v1 as seating_pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::closed_loop::{self, Done, LoadArgs, Measurement, Pacer, Shape, Worker};
use crate::cpu;
use crate::http1::Http1Connection;
use crate::programme::EMPTY_HINT;
use crate::report::{self, Row, micros, thousands};
use crate::stripe::{self, FakeStripe, WebhookSigner};
use crate::target::Target;

/// Issue #5: webhooks per second on 2 cores.
const MIN_WEBHOOKS_PER_SECOND: f64 = 1_000.0;
/// Issue #5: p99 from webhook to `bookings.confirmed`.
const MAX_BOOKING_P99_MS: f64 = 100.0;
/// Longest latency the histograms tell apart (as the closed loop's).
const HIGHEST_LATENCY_MICROS: u64 = 60_000_000;
/// Showtimes starting sooner than this are skipped: the checkout extends
/// the hold by at least 40 minutes, and seating stops a hold at the start.
const MIN_LEAD: chrono::Duration = chrono::Duration::hours(2);
/// How long the replay check waits for a (wrong) second booking.
const REPLAY_SETTLE: Duration = Duration::from_secs(3);

/// The webhooks scenario's flags. `--concurrency` is the number of
/// connections sending webhooks (a list measures each level with webhooks
/// of its own).
#[derive(clap::Args, Debug)]
pub struct WebhooksArgs {
    /// Payments' HTTP base URL, where `/webhooks/stripe` is (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:8083")]
    pub payments_http: String,
    /// Payments' gRPC base URL, for `CreateCheckout` (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:50053")]
    pub payments: String,
    /// Seating's gRPC base URL, for holds and seat maps (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub seating: String,
    /// Catalog's gRPC base URL, for the programme (this machine only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub catalog: String,
    /// NATS, where `bookings.confirmed` is published (this machine only).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The services' EVENTS_PREFIX (empty in production).
    #[arg(long, default_value = "")]
    pub events_prefix: String,
    /// Where loadgen's Stripe-shaped server listens; payments'
    /// STRIPE_API_BASE must point here (a loopback address).
    #[arg(long, default_value = "127.0.0.1:12111")]
    pub stripe_listen: SocketAddr,
    /// Payments' STRIPE_WEBHOOK_SECRET, to sign with.
    #[arg(long, default_value = "whsec_bench")]
    pub webhook_secret: String,
    /// Measured webhooks per concurrency level (one checkout each).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub webhooks: u32,
    /// Webhooks sent first and not counted.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub warmup_webhooks: u32,
    /// Measured webhooks delivered again afterwards (same event, and the same
    /// session under a new event id) to check that none books twice.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub replays: u32,
    /// Holds and checkouts created at a time while preparing.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub prepare_concurrency: u16,
    /// Most showtimes the holds are spread over.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub showtimes: u32,
    /// How long to wait, after the last webhook answered, for the bookings
    /// still on their way, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = closed_loop::parse_duration_within::<100, 600_000>)]
    pub booking_timeout: Duration,
    /// Send the measured webhooks at this fixed rate per second (spread over
    /// the connections; latency counts from each scheduled start) instead of
    /// as fast as payments answers. The closed loop measures capacity; a
    /// rate below it measures webhook → booking latency without a queue.
    #[arg(long, value_parser = closed_loop::parse_rate)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// One checkout, ready to be paid by webhook.
struct Prepared {
    checkout_id: String,
    /// The `checkout.session.completed` event, as Stripe would post it.
    payload: Bytes,
    /// The paid session, for a duplicate under a new event id.
    session: serde_json::Value,
}

/// What every webhook worker and the booking listener share: the events,
/// when each was sent, and the bookings seen per checkout.
struct Deliveries {
    prepared: Vec<Prepared>,
    sent: Vec<OnceLock<Instant>>,
    /// Checkout id → index into `prepared`.
    index: HashMap<String, usize>,
    bookings: Mutex<Bookings>,
    /// Checkouts with at least one booking.
    booked: AtomicUsize,
}

#[derive(Default)]
struct Bookings {
    /// When the first `bookings.confirmed` of each checkout arrived.
    first: Vec<Option<Instant>>,
    /// How many arrived per checkout (must end at exactly one).
    count: Vec<u32>,
    /// Events naming a checkout this run did not create.
    foreign: u64,
    /// Payloads that were not a `BookingConfirmed`.
    undecodable: u64,
}

/// One concurrency level's figures beyond the two rows.
#[derive(Debug, Serialize)]
struct Verdict {
    concurrency: usize,
    webhooks_per_second: f64,
    webhook_p99_ms: f64,
    bookings_confirmed: u64,
    bookings_missing: u64,
    booking_p50_ms: f64,
    booking_p95_ms: f64,
    booking_p99_ms: f64,
    /// ≥ 1,000 webhooks/s.
    throughput_target_met: bool,
    /// Webhook-to-booking p99 < 100 ms (with every booking arrived).
    booking_p99_target_met: bool,
}

/// The exactly-once checks over the whole run.
#[derive(Debug, Default, Serialize)]
struct Invariants {
    checkouts: usize,
    /// Accepted webhooks whose checkout has no booking.
    without_booking: usize,
    /// Checkouts with more than one `bookings.confirmed`.
    booked_twice: usize,
    replays_sent: usize,
    /// Replays (same event) not answered as a replay.
    replays_not_acknowledged_as_replay: usize,
    /// Duplicates (same session, new event id) not answered `already paid`.
    duplicates_not_already_paid: usize,
    foreign_bookings: u64,
    undecodable_events: u64,
    holds: bool,
}

#[derive(Serialize)]
struct Settings<'a> {
    payments_http: &'a str,
    events_subject: &'a str,
    webhooks_per_level: u32,
    warmup_webhooks: u32,
    showtimes: usize,
    prepare_seconds: f64,
    loadgen_threads: usize,
    /// Webhooks per second when paced (`--rate`); none: closed loop.
    rate: Option<f64>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'static str,
    timing: &'static str,
    settings: Settings<'a>,
    results: &'a [Row],
    verdicts: &'a [Verdict],
    invariants: &'a Invariants,
}

/// Runs the webhooks scenario and prints its results.
pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let payments_http = Target::loopback(&args.payments_http, "--payments-http")?;
    let payments = Target::loopback(&args.payments, "--payments")?;
    let seating = Target::loopback(&args.seating, "--seating")?;
    let catalog = Target::loopback(&args.catalog, "--catalog")?;
    let nats = loopback_nats(&args.nats)?;
    anyhow::ensure!(
        args.stripe_listen.ip().is_loopback(),
        "--stripe-listen must be a loopback address such as 127.0.0.1:12111"
    );
    anyhow::ensure!(
        args.load.rounds == 1,
        "--rounds does not apply to webhooks (each can be delivered once); use --webhooks"
    );
    let per_level = u64::from(args.webhooks).min(args.load.max_requests) as usize;
    let warmup = args.warmup_webhooks as usize;
    let levels = args.load.concurrency.clone();
    let total = warmup + per_level * levels.len();
    let timeout = args.load.timeout;

    let fake = FakeStripe::start(args.stripe_listen).await?;
    eprintln!(
        "loadgen: fake Stripe on http://{} (payments' STRIPE_API_BASE must point here)",
        fake.address
    );
    let mut catalog_client =
        CatalogServiceClient::new(catalog.grpc_channel("--catalog", timeout).await?);
    let mut seating_client =
        SeatingServiceClient::new(seating.grpc_channel("--seating", timeout).await?);
    let payments_client =
        PaymentsServiceClient::new(payments.grpc_channel("--payments", timeout).await?);

    let preparing = Instant::now();
    let (showtimes, seats) = free_seats(
        &mut catalog_client,
        &mut seating_client,
        args.showtimes as usize,
        total,
    )
    .await
    .context("finding free seats to hold")?;
    eprintln!(
        "loadgen: preparing {} holds and checkouts ({} warm-up + {} × {} levels) over {showtimes} \
         showtimes, {} at a time",
        thousands(total as u64),
        warmup,
        thousands(per_level as u64),
        levels.len(),
        args.prepare_concurrency
    );
    let prepared = prepare(
        &seats,
        &fake,
        &seating_client,
        &payments_client,
        usize::from(args.prepare_concurrency),
    )
    .await
    .context("preparing holds and checkouts")?;
    let prepare_seconds = preparing.elapsed().as_secs_f64();
    eprintln!(
        "loadgen: prepared {} checkouts in {prepare_seconds:.1}s ({} sessions on the fake Stripe)",
        thousands(prepared.len() as u64),
        thousands(fake.session_count() as u64)
    );

    let deliveries = Arc::new(Deliveries {
        sent: (0..prepared.len()).map(|_| OnceLock::new()).collect(),
        index: prepared
            .iter()
            .enumerate()
            .map(|(i, p)| (p.checkout_id.clone(), i))
            .collect(),
        bookings: Mutex::new(Bookings {
            first: vec![None; prepared.len()],
            count: vec![0; prepared.len()],
            ..Bookings::default()
        }),
        booked: AtomicUsize::new(0),
        prepared,
    });

    let subject = platform::nats::subject(&args.events_prefix, "bookings.confirmed");
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .name("loadgen-webhooks")
        .connect(nats.as_str())
        .await
        .with_context(|| format!("cannot connect to NATS at {} (--nats)", args.nats))?;
    let subscriber = client
        .subscribe(subject.clone())
        .await
        .with_context(|| format!("cannot subscribe to {subject}"))?;
    client.flush().await.context("NATS flush")?;
    let listener = tokio::spawn(listen(subscriber, Arc::clone(&deliveries)));

    let signer = WebhookSigner::new(&args.webhook_secret)?;
    let webhook_uri: Uri = "/webhooks/stripe".parse()?;
    let send = |range: std::ops::Range<usize>, concurrency: usize, rate: Option<f64>| {
        let batch = Arc::new(Batch {
            next: AtomicUsize::new(range.start),
            end: range.end,
        });
        let workers: anyhow::Result<Vec<WebhookSender>> = (0..concurrency)
            .map(|worker| {
                Ok(WebhookSender {
                    pacer: Pacer::new(rate, concurrency, worker),
                    connection: Http1Connection::new(&payments_http, timeout, false)?,
                    uri: webhook_uri.clone(),
                    signer: signer.clone(),
                    deliveries: Arc::clone(&deliveries),
                    batch: Arc::clone(&batch),
                })
            })
            .collect();
        let shape = Shape {
            warmup: Duration::ZERO,
            duration: args.load.duration,
            max_requests: range.len() as u64,
            watched: Vec::new(),
        };
        async move { closed_loop::run(shape, workers?).await }
    };

    if warmup > 0 {
        eprintln!(
            "loadgen: warm-up, {} webhooks at concurrency {}",
            thousands(warmup as u64),
            levels[0]
        );
        send(0..warmup, levels[0], None).await?;
        wait_for_bookings(&deliveries, 0..warmup, args.booking_timeout).await;
    }

    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for (level, &concurrency) in levels.iter().enumerate() {
        let range = warmup + level * per_level..warmup + (level + 1) * per_level;
        eprintln!(
            "loadgen: {} webhooks at concurrency {concurrency} (at most {:.0}s)",
            thousands(per_level as u64),
            args.load.duration.as_secs_f64()
        );
        let before = cpu::sample(&args.load.watch);
        let mut measured = send(range.clone(), concurrency, args.rate).await?;
        measured.cpu = cpu::elapsed(&before, &cpu::sample(&args.load.watch));
        wait_for_bookings(&deliveries, range.clone(), args.booking_timeout).await;
        let booking = booking_latency(&deliveries, range)?;
        let webhook_row = Row::new(
            "webhook",
            "POST /webhooks/stripe (checkout.session.completed)".to_owned(),
            concurrency,
            &measured,
        );
        let booking_row = Row::new(
            "webhook-to-booking",
            "webhook sent → bookings.confirmed received".to_owned(),
            concurrency,
            &booking,
        );
        verdicts.push(Verdict {
            concurrency,
            webhooks_per_second: webhook_row.requests_per_second,
            webhook_p99_ms: webhook_row.p99_ms,
            bookings_confirmed: booking.ok,
            bookings_missing: booking.errors,
            booking_p50_ms: booking_row.p50_ms,
            booking_p95_ms: booking_row.p95_ms,
            booking_p99_ms: booking_row.p99_ms,
            throughput_target_met: webhook_row.requests_per_second >= MIN_WEBHOOKS_PER_SECOND,
            booking_p99_target_met: booking.errors == 0 && booking_row.p99_ms < MAX_BOOKING_P99_MS,
        });
        rows.push(webhook_row);
        rows.push(booking_row);
    }

    let mut invariants = replay(
        &deliveries,
        warmup..deliveries.prepared.len(),
        args.replays as usize,
        &payments_http,
        &signer,
        timeout,
    )
    .await?;
    tokio::time::sleep(REPLAY_SETTLE).await;
    listener.abort();
    count_bookings(&deliveries, &mut invariants);

    let settings = Settings {
        payments_http: &payments_http.url,
        events_subject: &subject,
        webhooks_per_level: per_level as u32,
        warmup_webhooks: args.warmup_webhooks,
        showtimes,
        prepare_seconds,
        loadgen_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        rate: args.rate,
    };
    if args.load.json {
        let document = JsonReport {
            scenario: "webhooks",
            timing: "webhook: response time of POST /webhooks/stripe; webhook-to-booking: \
                     from just before the webhook is sent to bookings.confirmed received",
            settings,
            results: &rows,
            verdicts: &verdicts,
            invariants: &invariants,
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print_report(&settings, &rows, &verdicts, &invariants);
    }

    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if !invariants.holds {
        bail!("the exactly-once invariants do not hold (see above)");
    }
    if errors > 0 {
        bail!(
            "{errors} webhooks or bookings failed; figures from a run with errors are not comparable"
        );
    }
    Ok(())
}

/// `nats://host:port` on this machine, as the URL to connect to.
pub(crate) fn loopback_nats(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim()
        .strip_prefix("nats://")
        .with_context(|| format!("--nats must be a nats:// URL, not {url:?}"))?;
    // The same loopback rule as every other target.
    let target = Target::loopback(&format!("http://{rest}"), "--nats")?;
    let port = if rest.contains(':') && !rest.ends_with(']') {
        target.address.port()
    } else {
        4222
    };
    Ok(format!(
        "nats://{}",
        SocketAddr::new(target.address.ip(), port)
    ))
}

/// A seat to hold on a showtime.
struct Seat {
    showtime_id: String,
    label: String,
}

/// Lists upcoming showtimes (through catalog) and their free seats (through
/// seating), and picks `needed` seats spread round-robin over at most
/// `max_showtimes` showtimes: the number of showtimes used, and the seats.
async fn free_seats(
    catalog: &mut CatalogServiceClient<Channel>,
    seating: &mut SeatingServiceClient<Channel>,
    max_showtimes: usize,
    needed: usize,
) -> anyhow::Result<(usize, Vec<Seat>)> {
    let earliest = chrono::Utc::now() + MIN_LEAD;
    let mut showtime_ids = Vec::new();
    let mut page_token = String::new();
    'films: for _ in 0..100 {
        let page = catalog
            .list_films(catalog_pb::ListFilmsRequest {
                page_size: 100,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .context("catalog ListFilms")?
            .into_inner();
        for film in page.films {
            let schedule = catalog
                .list_film_showtimes(catalog_pb::ListFilmShowtimesRequest {
                    film_id: film.id.clone(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("catalog ListFilmShowtimes {}", film.slug))?
                .into_inner();
            let slots = schedule
                .days
                .iter()
                .flat_map(|day| &day.cinemas)
                .flat_map(|cinema| &cinema.showtimes);
            for slot in slots {
                let starts = slot
                    .starts_at
                    .as_ref()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
                if starts.is_some_and(|s| s >= earliest)
                    && !showtime_ids.contains(&slot.showtime_id)
                {
                    showtime_ids.push(slot.showtime_id.clone());
                }
            }
            if showtime_ids.len() >= max_showtimes * 4 {
                break 'films;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // Spread over films: every k-th showtime rather than one film's first few.
    let step = (showtime_ids.len() / max_showtimes).max(1);
    let chosen: Vec<String> = showtime_ids
        .into_iter()
        .step_by(step)
        .take(max_showtimes)
        .collect();
    anyhow::ensure!(
        !chosen.is_empty(),
        "catalog lists no showtime starting in more than two hours; {EMPTY_HINT}"
    );
    let mut free: Vec<Vec<String>> = Vec::with_capacity(chosen.len());
    for id in &chosen {
        let map = seating
            .get_seat_map(seating_pb::GetSeatMapRequest {
                showtime_id: id.clone(),
                user_id: String::new(),
            })
            .await
            .with_context(|| format!("seating GetSeatMap {id}"))?
            .into_inner();
        free.push(
            map.seats
                .into_iter()
                .filter(|s| s.state == seating_pb::SeatState::Available as i32)
                .map(|s| s.label)
                .collect(),
        );
    }
    let mut seats = Vec::with_capacity(needed);
    let deepest = free.iter().map(Vec::len).max().unwrap_or(0);
    'rounds: for round in 0..deepest {
        for (id, labels) in chosen.iter().zip(&free) {
            if let Some(label) = labels.get(round) {
                seats.push(Seat {
                    showtime_id: id.clone(),
                    label: label.clone(),
                });
                if seats.len() == needed {
                    break 'rounds;
                }
            }
        }
    }
    anyhow::ensure!(
        seats.len() == needed,
        "only {} free seats on the {} showtimes looked at, fewer than the {needed} webhooks \
         need; lower --webhooks, raise --showtimes, or seed a fresh bench database",
        seats.len(),
        chosen.len()
    );
    Ok((chosen.len(), seats))
}

/// Holds each seat for a user of its own and creates its checkout; the
/// paid event of each, in the order of `seats`.
async fn prepare(
    seats: &[Seat],
    fake: &FakeStripe,
    seating: &SeatingServiceClient<Channel>,
    payments: &PaymentsServiceClient<Channel>,
    concurrency: usize,
) -> anyhow::Result<Vec<Prepared>> {
    // Users of this run only, so no earlier run's hold is replaced.
    let run = chrono::Utc::now().timestamp();
    let done = AtomicUsize::new(0);
    let checkouts: Vec<payments_pb::Checkout> =
        futures::stream::iter(seats.iter().enumerate().map(|(i, seat)| {
            let mut seating = seating.clone();
            let mut payments = payments.clone();
            let done = &done;
            async move {
                let user_id = format!("bench-wh-{run}-{i}");
                let hold = seating
                    .hold_seats(seating_pb::HoldSeatsRequest {
                        showtime_id: seat.showtime_id.clone(),
                        seats: vec![seat.label.clone()],
                        user_id: user_id.clone(),
                    })
                    .await
                    .with_context(|| format!("HoldSeats {} on {}", seat.label, seat.showtime_id))?
                    .into_inner();
                let checkout = payments
                    .create_checkout(payments_pb::CreateCheckoutRequest {
                        hold_id: hold.id.clone(),
                        user_id: user_id.clone(),
                        customer_email: format!("{user_id}@loadgen.bookmyseat.test"),
                    })
                    .await
                    .with_context(|| format!("CreateCheckout for hold {}", hold.id))?
                    .into_inner();
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished.is_multiple_of(1_000) {
                    eprintln!("loadgen: … {} prepared", thousands(finished as u64));
                }
                anyhow::Ok(checkout)
            }
        }))
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    checkouts
        .into_iter()
        .map(|checkout| {
            let session = fake.paid(&checkout.session_id).with_context(|| {
                format!(
                    "checkout {} names session {:?}, which the fake Stripe never created \
                     (is payments' STRIPE_API_BASE http://{}?)",
                    checkout.id, checkout.session_id, fake.address
                )
            })?;
            anyhow::ensure!(
                session["metadata"]["checkout_id"] == checkout.id.as_str()
                    && session["amount_total"] == checkout.amount_minor
                    && session["currency"]
                        .as_str()
                        .is_some_and(|c| c.eq_ignore_ascii_case(&checkout.currency)),
                "session {} does not match checkout {} ({} {})",
                checkout.session_id,
                checkout.id,
                checkout.amount_minor,
                checkout.currency
            );
            Ok(Prepared {
                payload: Bytes::from(stripe::event("checkout.session.completed", &session)),
                checkout_id: checkout.id,
                session,
            })
        })
        .collect()
}

/// Records every `bookings.confirmed` against its checkout until aborted.
async fn listen(mut subscriber: async_nats::Subscriber, deliveries: Arc<Deliveries>) {
    while let Some(message) = subscriber.next().await {
        let arrived = Instant::now();
        let mut bookings = deliveries
            .bookings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Ok(event) = BookingConfirmed::decode(message.payload.as_ref()) else {
            bookings.undecodable += 1;
            continue;
        };
        let Some(&i) = deliveries.index.get(&event.checkout_id) else {
            bookings.foreign += 1;
            continue;
        };
        bookings.count[i] += 1;
        if bookings.first[i].is_none() {
            bookings.first[i] = Some(arrived);
            deliveries.booked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits until every accepted webhook of `range` has its booking, or
/// `timeout` passed.
async fn wait_for_bookings(
    deliveries: &Deliveries,
    range: std::ops::Range<usize>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let missing = {
            let bookings = deliveries
                .bookings
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            range
                .clone()
                .filter(|&i| deliveries.sent[i].get().is_some() && bookings.first[i].is_none())
                .count()
        };
        if missing == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "loadgen: gave up waiting for bookings after {:.0}s",
        timeout.as_secs_f64()
    );
}

/// Webhook-sent → booking-received latencies of `range`, as a measurement:
/// the bookings that arrived are correct answers, sent webhooks without
/// one are errors, and the window runs from the first webhook sent to the
/// last booking received.
fn booking_latency(
    deliveries: &Deliveries,
    range: std::ops::Range<usize>,
) -> anyhow::Result<Measurement> {
    let bookings = deliveries
        .bookings
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut latency = hdrhistogram::Histogram::new_with_bounds(1, HIGHEST_LATENCY_MICROS, 3)?;
    let (mut ok, mut missing) = (0, 0);
    let mut first_sent: Option<Instant> = None;
    let mut last_booked: Option<Instant> = None;
    for i in range {
        let Some(&sent) = deliveries.sent[i].get() else {
            continue;
        };
        first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
        match bookings.first[i] {
            Some(booked) => {
                ok += 1;
                last_booked = Some(last_booked.map_or(booked, |l| l.max(booked)));
                latency.saturating_record(micros(booked.saturating_duration_since(sent)));
            }
            None => missing += 1,
        }
    }
    let window = match (first_sent, last_booked) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    };
    let mut error_kinds = std::collections::BTreeMap::new();
    if missing > 0 {
        error_kinds.insert("no bookings.confirmed in time".to_owned(), missing);
    }
    Ok(Measurement {
        ok,
        errors: missing,
        refused: 0,
        window,
        refused_latency: latency.clone(),
        latency,
        error_kinds,
        cpu: Vec::new(),
    })
}

/// Delivers `count` webhooks of `range` again, spread evenly: each as the
/// same event (must be answered as a replay) and as the same session under
/// a new event id (must be found already paid).
async fn replay(
    deliveries: &Deliveries,
    range: std::ops::Range<usize>,
    count: usize,
    payments_http: &Target,
    signer: &WebhookSigner,
    timeout: Duration,
) -> anyhow::Result<Invariants> {
    let mut invariants = Invariants::default();
    let count = count.min(range.len());
    if count == 0 {
        return Ok(invariants);
    }
    eprintln!("loadgen: replaying {count} webhooks, then a duplicate of each under a new event id");
    let mut connection = Http1Connection::new(payments_http, timeout, false)?;
    let uri: Uri = "/webhooks/stripe".parse()?;
    let step = range.len() / count;
    for k in 0..count {
        let prepared = &deliveries.prepared[range.start + k * step];
        let duplicate = Bytes::from(stripe::event(
            "checkout.session.completed",
            &prepared.session,
        ));
        for (payload, expected) in [(&prepared.payload, "replay"), (&duplicate, "already paid")] {
            let signature = HeaderValue::from_str(&signer.header(payload))?;
            let answer = connection
                .send(
                    Method::POST,
                    &uri,
                    &[(HeaderName::from_static("stripe-signature"), signature)],
                    Some(payload.clone()),
                )
                .await;
            let outcome = match &answer {
                Ok((StatusCode::OK, body)) => outcome_of(body),
                _ => None,
            };
            let acknowledged = match expected {
                "replay" => outcome.as_deref() == Some("replay"),
                _ => outcome.as_deref() == Some("already paid"),
            };
            if !acknowledged {
                match expected {
                    "replay" => invariants.replays_not_acknowledged_as_replay += 1,
                    _ => invariants.duplicates_not_already_paid += 1,
                }
            }
        }
        invariants.replays_sent += 1;
    }
    Ok(invariants)
}

/// Payments' answer to a webhook: `replay`, or the recorded outcome.
fn outcome_of(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    if answer["replay"] == true {
        return Some("replay".to_owned());
    }
    answer["outcome"].as_str().map(str::to_owned)
}

/// Fills in the exactly-once counts over every checkout of the run.
fn count_bookings(deliveries: &Deliveries, invariants: &mut Invariants) {
    let bookings = deliveries
        .bookings
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    invariants.checkouts = deliveries.prepared.len();
    invariants.without_booking = (0..deliveries.prepared.len())
        .filter(|&i| deliveries.sent[i].get().is_some() && bookings.count[i] == 0)
        .count();
    invariants.booked_twice = bookings.count.iter().filter(|&&n| n > 1).count();
    invariants.foreign_bookings = bookings.foreign;
    invariants.undecodable_events = bookings.undecodable;
    invariants.holds = invariants.without_booking == 0
        && invariants.booked_twice == 0
        && invariants.replays_not_acknowledged_as_replay == 0
        && invariants.duplicates_not_already_paid == 0;
}

/// The next unsent webhook of a run, shared by its workers.
struct Batch {
    next: AtomicUsize,
    end: usize,
}

/// A worker posting webhooks to payments over its own connection.
struct WebhookSender {
    pacer: Pacer,
    connection: Http1Connection,
    uri: Uri,
    signer: WebhookSigner,
    deliveries: Arc<Deliveries>,
    batch: Arc<Batch>,
}

impl Worker for WebhookSender {
    async fn call(&mut self) -> Result<Done, String> {
        let started = self.pacer.start().await;
        let i = self.batch.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.batch.end {
            return Ok(Done::Exhausted);
        }
        let payload = &self.deliveries.prepared[i].payload;
        let signature =
            HeaderValue::from_str(&self.signer.header(payload)).map_err(|e| e.to_string())?;
        let _ = self.deliveries.sent[i].set(started);
        let (status, body) = self
            .connection
            .send(
                Method::POST,
                &self.uri,
                &[(HeaderName::from_static("stripe-signature"), signature)],
                Some(payload.clone()),
            )
            .await?;
        let took = started.elapsed();
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        match outcome_of(&body).as_deref() {
            Some("paid") => Ok(Done::OkIn(took)),
            Some(other) => Err(format!("outcome {other:?}")),
            None => Err("an answer without an outcome".to_owned()),
        }
    }
}

fn print_report(
    settings: &Settings<'_>,
    rows: &[Row],
    verdicts: &[Verdict],
    invariants: &Invariants,
) {
    println!(
        "loadgen webhooks: payments {} | bookings from {} | loadgen runtime threads: {}",
        settings.payments_http, settings.events_subject, settings.loadgen_threads
    );
    println!(
        "{} webhooks per level after {} warm-up webhooks; one checkout each (one seat, a user \
         of its own, {} showtimes), prepared in {:.1}s (untimed); {}, one HTTP/1.1 \
         connection per worker; req/s = paid webhooks/s (webhook row), bookings/s from the first \
         webhook sent to the last booking received (booking row)\n",
        thousands(u64::from(settings.webhooks_per_level)),
        thousands(u64::from(settings.warmup_webhooks)),
        settings.showtimes,
        settings.prepare_seconds,
        match settings.rate {
            Some(rate) => format!(
                "paced at {} webhooks/s (latency from each scheduled start)",
                thousands(rate.round() as u64)
            ),
            None => "closed loop".to_owned(),
        },
    );
    report::print_table(rows);
    println!();
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    for v in verdicts {
        println!(
            "concurrency {}: {} webhooks/s (target ≥ {}: {}); webhook → booking p50 {:.2} ms, \
             p95 {:.2} ms, p99 {:.2} ms (target < {MAX_BOOKING_P99_MS} ms: {}); {} bookings, {} \
             missing",
            v.concurrency,
            thousands(v.webhooks_per_second.round() as u64),
            thousands(MIN_WEBHOOKS_PER_SECOND as u64),
            if settings.rate.is_some() {
                "not judged: paced"
            } else {
                met(v.throughput_target_met)
            },
            v.booking_p50_ms,
            v.booking_p95_ms,
            v.booking_p99_ms,
            met(v.booking_p99_target_met),
            thousands(v.bookings_confirmed),
            v.bookings_missing,
        );
    }
    println!(
        "exactly once: {} checkouts, {} accepted without a booking, {} booked more than once; \
         {} replays (same event: {} not answered as a replay; new event id: {} not found \
         already paid); {} bookings of other checkouts, {} undecodable → {}",
        thousands(invariants.checkouts as u64),
        invariants.without_booking,
        invariants.booked_twice,
        invariants.replays_sent,
        invariants.replays_not_acknowledged_as_replay,
        invariants.duplicates_not_already_paid,
        invariants.foreign_bookings,
        invariants.undecodable_events,
        if invariants.holds {
            "holds"
        } else {
            "VIOLATED"
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_off_this_machine_are_refused() {
        assert_eq!(
            loopback_nats("nats://127.0.0.1:4222").unwrap(),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            loopback_nats("nats://localhost").unwrap(),
            "nats://127.0.0.1:4222"
        );
        assert!(loopback_nats("nats://10.0.0.1:4222").is_err());
        assert!(loopback_nats("http://127.0.0.1:4222").is_err());
    }
}
