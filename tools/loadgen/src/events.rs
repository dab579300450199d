//! The event consumers' throughput (issue #6): how many `bookings.confirmed`
//! events per second the notifier turns into emails and analytics into
//! figures.
//!
//! loadgen publishes `--events` `BookingConfirmed` events straight to
//! JetStream under `--events-prefix`, as seating's outbox relay would: each
//! with its own `Nats-Msg-Id` and the event-type header, every one a
//! different booking of a different showtime, with a recipient address of
//! its own. Publishing is pipelined (up to 256 unacknowledged) and timed on
//! its own. Meanwhile loadgen polls each durable consumer named by
//! `--consumer` (e.g. `notifier-bookings`, `analytics-bookings`) until its
//! ack floor reaches the last event published; a consumer's rate is the
//! events over the time from the first publish to that moment, so it
//! includes the consumer catching up with the publisher.
//!
//! The consumers must be running and bound to the prefix's streams before
//! the run (the bench script starts them first). What each consumer made of
//! the events (emails at the SMTP server, rows in analytics) is for the
//! calling script to check in their own stores; loadgen checks only that no
//! event is left unacknowledged and that the consumer's redeliveries stayed
//! at zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull};
use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::closed_loop;
use crate::report::thousands;
use crate::webhooks::loopback_nats;

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// NATS with JetStream (a loopback address).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The EVENTS_PREFIX the consumers run with (their streams' prefix).
    #[arg(long, default_value = "")]
    events_prefix: String,
    /// Events to publish.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=500_000))]
    events: u32,
    /// A durable consumer of the bookings stream to wait for; repeat for
    /// several (e.g. --consumer notifier-bookings --consumer analytics-bookings).
    #[arg(long = "consumer", required = true)]
    consumers: Vec<String>,
    /// Give up waiting for the consumers after this long.
    #[arg(long, default_value = "300s", value_parser = closed_loop::parse_duration_within::<1_000, 3_600_000>)]
    timeout: Duration,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one consumer did with the events.
#[derive(Debug, Serialize)]
struct ConsumerFigures {
    consumer: String,
    events: u64,
    seconds: f64,
    events_per_second: f64,
    /// Deliveries beyond the first (retries, ack waits) during the run.
    redelivered: u64,
}

#[derive(Debug, Serialize)]
struct Figures {
    events: u64,
    publish_seconds: f64,
    published_per_second: f64,
    consumers: Vec<ConsumerFigures>,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let nats = loopback_nats(&args.nats)?;
    let client = platform::nats::connect(&nats).await?;
    let jetstream = jetstream::new(client);
    let stream_name = platform::nats::event_streams(&args.events_prefix)
        .into_iter()
        .find(|s| s.name.ends_with("BOOKINGS"))
        .map(|s| s.name)
        .context("the bookings stream's name")?;
    let mut stream = jetstream.get_stream(&stream_name).await.with_context(|| {
        format!(
            "stream {stream_name} is missing: start the consumers with EVENTS_PREFIX={:?} first",
            args.events_prefix
        )
    })?;
    let mut consumers = Vec::new();
    for durable in &args.consumers {
        let mut consumer: jetstream::consumer::Consumer<pull::Config> =
            stream.get_consumer(durable).await.map_err(|e| {
                anyhow::anyhow!(
                    "consumer {durable} is not bound to {stream_name} ({e}): is its service running?"
                )
            })?;
        let before = consumer.info().await?.clone();
        consumers.push((durable.clone(), consumer, before));
    }
    let first_sequence = stream.info().await?.state.last_sequence + 1;

    let subject = platform::nats::subject(&args.events_prefix, "bookings.confirmed");
    let run = Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut pending = VecDeque::new();
    let mut last_sequence = 0;
    for i in 0..args.events {
        let (id, payload) = booking_confirmed(&run, i);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
        headers.insert(
            platform::outbox::EVENT_TYPE_HEADER,
            "bookmyseat.events.v1.BookingConfirmed",
        );
        let ack = jetstream
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .context("publishing an event")?;
        pending.push_back(ack);
        if pending.len() >= 256 {
            let ack = pending.pop_front().expect("a pending ack").await?;
            last_sequence = last_sequence.max(ack.sequence);
        }
    }
    for ack in pending {
        last_sequence = last_sequence.max(ack.await?.sequence);
    }
    let publish_seconds = started.elapsed().as_secs_f64();

    let mut figures = Figures {
        events: u64::from(args.events),
        publish_seconds,
        published_per_second: f64::from(args.events) / publish_seconds,
        consumers: Vec::new(),
    };
    let deadline = started + args.timeout;
    let mut waiting: Vec<_> = consumers.into_iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (durable, mut consumer, before) in waiting {
            let info = consumer.info().await?.clone();
            if info.ack_floor.stream_sequence >= last_sequence {
                let seconds = started.elapsed().as_secs_f64();
                figures.consumers.push(ConsumerFigures {
                    consumer: durable,
                    events: u64::from(args.events),
                    seconds,
                    events_per_second: f64::from(args.events) / seconds,
                    redelivered: info.num_redelivered.saturating_sub(before.num_redelivered) as u64,
                });
            } else {
                still.push((durable, consumer, before));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let names: Vec<_> = waiting.iter().map(|(d, _, _)| d.as_str()).collect();
            bail!(
                "{} did not acknowledge events {first_sequence}..={last_sequence} within {:?}",
                names.join(", "),
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!(
            "published {} events in {:.2} s ({}/s)",
            thousands(figures.events),
            figures.publish_seconds,
            thousands(figures.published_per_second as u64)
        );
        println!(
            "{:<24} {:>8} {:>9} {:>10} {:>11}",
            "consumer", "events", "seconds", "events/s", "redelivered"
        );
        for c in &figures.consumers {
            println!(
                "{:<24} {:>8} {:>9.2} {:>10} {:>11}",
                c.consumer,
                thousands(c.events),
                c.seconds,
                thousands(c.events_per_second as u64),
                c.redelivered
            );
        }
    }
    Ok(())
}

/// The `i`th event of run `run`: its event id and encoded payload. Each is
/// a booking of its own showtime (analytics learns every one) by a
/// recipient of its own.
fn booking_confirmed(run: &str, i: u32) -> (Uuid, Vec<u8>) {
    let id = Uuid::new_v4();
    let now = chrono::Utc::now();
    let event = events_pb::BookingConfirmed {
        meta: Some(events_pb::EventMeta {
            event_id: id.to_string(),
            occurred_at: Some(to_timestamp(now)),
        }),
        booking_id: Uuid::new_v4().to_string(),
        reference: format!("BNC{:07}", i),
        user_id: format!("bench-{run}-{i}"),
        user_email: format!("bench+{i}@bookmyseat.test"),
        checkout_id: format!("cs_bench_{run}_{i}"),
        showtime_id: Uuid::new_v4().to_string(),
        film_id: Uuid::new_v4().to_string(),
        film_title: "The Benchmark".into(),
        cinema_name: "Roxy".into(),
        cinema_time_zone: "Asia/Kolkata".into(),
        screen_name: "Screen 1".into(),
        starts_at: Some(to_timestamp(now + chrono::Duration::days(3))),
        seats: vec!["E5".into(), "E6".into()],
        amount_minor: 50_000,
        currency: "INR".into(),
        seats_offered: 120,
    };
    (id, prost::Message::encode_to_vec(&event))
}
