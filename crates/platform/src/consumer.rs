//! The idempotent consumer: how every service handles events from JetStream.
//!
//! One durable pull consumer per (service, purpose), explicit acks, a bounded
//! `max_deliver`. For each message the event id (its `Nats-Msg-Id`) is
//! recorded in `processed_events` *in the same transaction* as the handler's
//! effect, so a redelivered or replayed event changes nothing: the insert
//! finds the id and the handler is skipped.
//!
//! Failures are of two kinds ([`HandlerError`]): a *permanent* one (a
//! malformed or unknown event, a reference to something that cannot exist)
//! is written to `dead_letters` and acknowledged at once, so it never blocks
//! the stream; a *transient* one (a database or peer outage) rolls back and
//! asks for redelivery with backoff, and only after the last allowed delivery
//! is dead-lettered. Either way the message is logged with its id.
//!
//! A consumer whose events are independent may apply them in batches
//! ([`ConsumerSpec::batched`]): the messages already at hand, up to the batch
//! size, share one transaction (one commit instead of one each, which is most
//! of what a small event costs). The batch's event ids are recorded with one
//! statement, and the events seen for the first time go to the handler
//! together ([`Handler::handle_batch`]), so a handler can write a batch with
//! a statement per table rather than a few per event. When any of them
//! fails, the batch rolls back and each is handled on its own as above, so
//! one bad event never takes its neighbours with it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::shutdown::Shutdown;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Retrying cannot help: dead-letter and move on.
    #[error("{0}")]
    Permanent(String),
    /// Retrying may help: roll back and ask for redelivery.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        HandlerError::Transient(error.into())
    }
}

/// An event as a handler sees it.
pub struct Delivery<'a> {
    pub event_id: Uuid,
    pub subject: &'a str,
    pub event_type: &'a str,
    pub payload: &'a [u8],
    /// The event's own span (consumer, subject, event id), a child of the
    /// producer's trace. A message handled alone runs inside it already; a
    /// batch runs in one span of its own, so a handler that applies a
    /// batch event by event instruments each with this (as the default
    /// [`Handler::handle_batch`] does).
    pub span: tracing::Span,
}

/// Applies one event inside the transaction that also records it as handled.
pub trait Handler: Send + Sync + 'static {
    /// What the handler wants done once its transaction has committed, such
    /// as announcing seat changes on NATS core (never before: a rolled-back
    /// change must not be announced). `()` when there is nothing.
    type Committed: Send;

    fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> impl Future<Output = Result<Self::Committed, HandlerError>> + Send + 'a;

    /// Applies a batch of events, each seen for the first time, inside the
    /// one transaction that records them all: what each left for after the
    /// commit (in any order), or the first failure, which rolls the batch
    /// back so that each event is then handled alone by [`Handler::handle`]
    /// (a permanent failure dead-letters only the event that caused it).
    ///
    /// The default applies them one by one. A handler whose events are a
    /// few inserts each overrides it to write the whole batch with a
    /// statement per table: the round trips, not the rows, are what a
    /// small event costs.
    fn handle_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        deliveries: &'a [Delivery<'a>],
    ) -> impl Future<Output = Result<Vec<Self::Committed>, HandlerError>> + Send + 'a {
        handle_each(self, connection, deliveries.iter())
    }

    /// Runs after the commit of an event that took effect (not for
    /// duplicates or failures).
    fn after_commit(&self, committed: Self::Committed) -> impl Future<Output = ()> + Send {
        let _ = committed;
        async {}
    }
}

/// Applies `deliveries` one at a time, in the order given, each inside its
/// own span: the default [`Handler::handle_batch`], and the body of a batch
/// handler that only needs its events in another order (seating takes its
/// showtimes' locks in one order).
pub async fn handle_each<'a, H: Handler + ?Sized>(
    handler: &'a H,
    connection: &'a mut PgConnection,
    deliveries: impl IntoIterator<Item = &'a Delivery<'a>> + Send + 'a,
) -> Result<Vec<H::Committed>, HandlerError> {
    let deliveries = deliveries.into_iter();
    let mut committed = Vec::with_capacity(deliveries.size_hint().0);
    for delivery in deliveries {
        let handled = handler
            .handle(&mut *connection, delivery)
            .instrument(delivery.span.clone())
            .await?;
        committed.push(handled);
    }
    Ok(committed)
}

/// Where a consumer reads from.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub stream: String,
    /// The durable name; also the `consumer` column of `processed_events`.
    pub durable: String,
    pub filter_subjects: Vec<String>,
    pub max_deliver: i64,
    /// How long JetStream waits for an ack before redelivering. A message
    /// whose handler is still running is kept meanwhile (in-progress acks),
    /// so this bounds only how long a lost one waits.
    pub ack_wait: Duration,
    /// How many messages are handled at once. Each holds one pooled
    /// connection while it runs, so keep it below the pool's size. Above 1,
    /// messages finish out of order: only for handlers whose events are
    /// independent of each other, or serialise what must be ordered in the
    /// database (as seating does with its per-showtime row lock).
    pub concurrency: usize,
    /// At most this many messages applied in one transaction (1: each its
    /// own). Only for events independent of each other.
    pub batch: usize,
}

impl ConsumerSpec {
    pub fn new(stream: impl Into<String>, durable: impl Into<String>, subjects: &[String]) -> Self {
        Self {
            stream: stream.into(),
            durable: durable.into(),
            filter_subjects: subjects.to_vec(),
            max_deliver: 8,
            ack_wait: Duration::from_secs(30),
            concurrency: 1,
            batch: 1,
        }
    }

    /// The same consumer handling up to `concurrency` messages at once.
    pub fn concurrent(self, concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            ..self
        }
    }

    /// The same consumer applying up to `batch` messages already at hand in
    /// one transaction.
    pub fn batched(self, batch: usize) -> Self {
        Self {
            batch: batch.max(1),
            ..self
        }
    }
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    DeadLettered,
    Retrying,
}

/// Pulls and handles messages until `shutdown` fires, then finishes the
/// ones in hand and gives back the ones pulled but not started. Anything
/// left unacknowledged (a crash) returns by itself after the ack wait.
pub async fn run<H: Handler>(
    pool: PgPool,
    jetstream: jetstream::Context,
    spec: ConsumerSpec,
    handler: H,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let consumer = durable_consumer(&jetstream, &spec).await?;
    tracing::info!(consumer = %spec.durable, stream = %spec.stream, "consuming events");
    let limit = spec.concurrency.max(1);
    // One pull request asks for this many: a few per handler, so a busy
    // consumer rarely waits on a request round trip, and a stopping one has
    // little in hand to give back.
    let batch = (limit * 4).max(limit * spec.batch.max(1)).clamp(8, 400);
    // Messages being handled; the next is taken from the batch only while
    // fewer than `limit` are. They live across batches, and on shutdown
    // they finish, so none is left half-handled until its ack wait.
    let mut in_flight = FuturesUnordered::new();
    let mut backoff = Duration::from_millis(200);
    'pulling: while !shutdown.is_triggered() {
        // Discrete pull requests rather than a continuous stream: when this
        // process stops, no request of its own is left open for the server
        // to fill with messages nobody will read.
        let pulled = consumer
            .batch()
            .max_messages(batch)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let failed = match pulled {
            Ok(mut messages) => loop {
                tokio::select! {
                    Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                    next = messages.next(), if in_flight.len() < limit => match next {
                        Some(Ok(message)) => {
                            // What is still waiting behind this message.
                            if let Ok(info) = message.info() {
                                metrics::gauge!("bookmyseat_consumer_pending", "consumer" => spec.durable.clone())
                                    .set(info.pending as f64);
                            }
                            let mut group = vec![message];
                            // Batching takes only what is already here:
                            // it never waits for company.
                            while group.len() < spec.batch {
                                match messages.next().now_or_never() {
                                    Some(Some(Ok(message))) => group.push(message),
                                    _ => break,
                                }
                            }
                            let (pool, spec, handler) = (&pool, &spec, &handler);
                            in_flight.push(async move {
                                if let [message] = group.as_slice() {
                                    handle_message(pool, spec, handler, message).await;
                                } else {
                                    handle_batch(pool, spec, handler, &group).await;
                                }
                            });
                        }
                        Some(Err(error)) => {
                            tracing::warn!(consumer = %spec.durable, %error, "pulling messages failed; asking again");
                            break true;
                        }
                        // The request is filled or expired: ask again.
                        None => break false,
                    },
                    _ = shutdown.fired() => {
                        while in_flight.next().await.is_some() {}
                        hand_back(&spec, &mut messages).await;
                        break 'pulling;
                    }
                }
            },
            Err(error) => {
                tracing::warn!(consumer = %spec.durable, %error, "cannot pull messages; retrying");
                true
            }
        };
        if !failed {
            backoff = Duration::from_millis(200);
            continue;
        }
        // Pause before asking again, still finishing what is in hand.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                _ = &mut pause => break,
                _ = shutdown.fired() => break 'pulling,
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    while in_flight.next().await.is_some() {}
    tracing::info!(consumer = %spec.durable, "consumer stopped");
    Ok(())
}

/// How long one pull request waits for messages before it is renewed. Short,
/// because a stopping consumer reads its open request to the end (see
/// [`hand_back`]); an idle consumer renews it every two seconds, which costs
/// nothing worth counting.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// Gives back what a stopping consumer pulled but never started, so the
/// next process (a rolling restart) gets it within a second rather than
/// after the ack wait. The redelivery is delayed so that it cannot land in
/// this process's open request. The open pull request can still be filled
/// with messages published meanwhile until it expires, so this reads it to
/// its end (at most [`PULL_EXPIRES`]): a message delivered to a stopping
/// process would otherwise sit out its ack wait.
async fn hand_back(spec: &ConsumerSpec, messages: &mut pull::Batch) {
    let mut handed_back = 0;
    let deadline = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_secs(1);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, messages.next()).await {
        ack(&message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
        handed_back += 1;
    }
    if handed_back > 0 {
        tracing::info!(consumer = %spec.durable, handed_back, "unstarted messages handed back on shutdown");
    }
}

/// Creates the durable pull consumer, or binds to the existing one.
pub async fn durable_consumer(
    jetstream: &jetstream::Context,
    spec: &ConsumerSpec,
) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
    let stream = jetstream
        .get_stream(&spec.stream)
        .await
        .map_err(|e| anyhow::anyhow!("stream {} is missing: {e}", spec.stream))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        max_deliver: spec.max_deliver,
        ..Default::default()
    };
    // One subject goes in the single-filter field, which every NATS server
    // understands; several need `filter_subjects`, which servers before 2.10
    // ignore (the handler then sees, and acknowledges, the others too).
    let config = match spec.filter_subjects.as_slice() {
        [one] => pull::Config {
            filter_subject: one.clone(),
            ..config
        },
        many => pull::Config {
            filter_subjects: many.to_vec(),
            ..config
        },
    };
    let mut consumer = stream
        .get_or_create_consumer(&spec.durable, config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot create consumer {}: {e}", spec.durable))?;
    // A durable consumer keeps the settings it was created with; a release
    // that changes its ack wait or delivery limit brings them up to date
    // (both may change on a live consumer).
    let existing = &consumer.cached_info().config;
    if existing.ack_wait != spec.ack_wait || existing.max_deliver != spec.max_deliver {
        match stream.create_consumer(config).await {
            Ok(updated) => {
                tracing::info!(consumer = %spec.durable, ack_wait_ms = spec.ack_wait.as_millis() as u64,
                    max_deliver = spec.max_deliver, "consumer settings updated");
                consumer = updated;
            }
            Err(error) => {
                tracing::warn!(consumer = %spec.durable, %error, "cannot update the consumer's settings; keeping its old ones")
            }
        }
    }
    Ok(consumer)
}

/// Handles one message end to end (dedupe, apply, ack or retry, dead-letter).
pub async fn handle_message<H: Handler>(
    pool: &PgPool,
    spec: &ConsumerSpec,
    handler: &H,
    message: &jetstream::Message,
) -> Outcome {
    let deliveries = message.info().map(|i| i.delivered).unwrap_or(1);
    let raw_id = header(message, "Nats-Msg-Id");
    let event_type = header(message, crate::outbox::EVENT_TYPE_HEADER).unwrap_or_default();
    let subject = message.subject.as_str();
    let span = tracing::info_span!("event", consumer = %spec.durable, %subject, event_id = raw_id.as_deref().unwrap_or("-"));
    // The producer's span, carried in the headers from its outbox row, is
    // the parent: the event continues the trace that caused it.
    crate::trace_context::set_parent_from_nats(&span, message.headers.as_ref());
    let event_span = span.clone();
    // Instrumented rather than entered: handlers run concurrently, and an
    // entered span held across awaits would leak into the others.
    async move {
        let Some(event_id) = raw_id.as_deref().and_then(|id| Uuid::parse_str(id).ok()) else {
            let error = "the message has no Nats-Msg-Id event UUID";
            dead_letter(pool, spec, message, raw_id.as_deref(), error, deliveries).await;
            ack(message, AckKind::Ack).await;
            return Outcome::DeadLettered;
        };
        let delivery = Delivery {
            event_id,
            subject,
            event_type: &event_type,
            payload: &message.payload,
            span: event_span,
        };
        let applying = apply(pool, spec, handler, &delivery);
        match still_working(spec, std::slice::from_ref(message), applying).await {
            Ok(Some(committed)) => {
                ack(message, AckKind::Ack).await;
                handler.after_commit(committed).await;
                Outcome::Applied
            }
            Ok(None) => {
                tracing::debug!("already handled; acknowledged again");
                ack(message, AckKind::Ack).await;
                Outcome::Duplicate
            }
            Err(HandlerError::Permanent(error)) => {
                dead_letter(pool, spec, message, raw_id.as_deref(), &error, deliveries).await;
                ack(message, AckKind::Ack).await;
                Outcome::DeadLettered
            }
            Err(HandlerError::Transient(error)) if deliveries >= spec.max_deliver => {
                let error = format!("gave up after {deliveries} deliveries: {error:#}");
                dead_letter(pool, spec, message, raw_id.as_deref(), &error, deliveries).await;
                ack(message, AckKind::Term).await;
                Outcome::DeadLettered
            }
            Err(HandlerError::Transient(error)) => {
                let delay = Duration::from_millis(250 * 2u64.pow(deliveries.clamp(1, 6) as u32 - 1));
                tracing::warn!(error = %format!("{error:#}"), deliveries, retry_in_ms = delay.as_millis() as u64,
                    "event could not be handled; it will be redelivered");
                ack(message, AckKind::Nak(Some(delay))).await;
                Outcome::Retrying
            }
        }
    }
    .instrument(span)
    .await
}

/// Applies `messages` in one transaction, acknowledging each once it has
/// committed, and returns what became of each (in order). Should any of them
/// fail (or lack an event id), the batch rolls back and each message is
/// handled on its own by [`handle_message`], which retries or dead-letters
/// it alone.
pub async fn handle_batch<H: Handler>(
    pool: &PgPool,
    spec: &ConsumerSpec,
    handler: &H,
    messages: &[jetstream::Message],
) -> Vec<Outcome> {
    match still_working(spec, messages, apply_batch(pool, spec, handler, messages)).await {
        Ok((outcomes, applied)) => {
            for message in messages {
                ack(message, AckKind::Ack).await;
            }
            metrics::counter!("bookmyseat_consumer_batches_total", "consumer" => spec.durable.clone())
                .increment(1);
            for committed in applied {
                handler.after_commit(committed).await;
            }
            outcomes
        }
        Err(error) => {
            tracing::debug!(consumer = %spec.durable, size = messages.len(), %error,
                "batch not applied; handling its events one by one");
            let mut outcomes = Vec::with_capacity(messages.len());
            for message in messages {
                outcomes.push(handle_message(pool, spec, handler, message).await);
            }
            outcomes
        }
    }
}

/// The value of one of `message`'s headers.
fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// A message's headers, read once: what a [`Delivery`] borrows.
struct Headers {
    event_id: Uuid,
    event_type: String,
}

/// The batch's transaction: what became of each message and what each
/// applied event left for after the commit, or the first failure (nothing
/// applied).
async fn apply_batch<H: Handler>(
    pool: &PgPool,
    spec: &ConsumerSpec,
    handler: &H,
    messages: &[jetstream::Message],
) -> anyhow::Result<(Vec<Outcome>, Vec<H::Committed>)> {
    let headers = messages
        .iter()
        .map(|message| {
            let event_id = header(message, "Nats-Msg-Id")
                .and_then(|id| Uuid::parse_str(&id).ok())
                .ok_or_else(|| anyhow::anyhow!("a message without an event id"))?;
            let event_type = header(message, crate::outbox::EVENT_TYPE_HEADER).unwrap_or_default();
            Ok(Headers {
                event_id,
                event_type,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Sorted and without repeats: one row per id (the statement's own
    // duplicates would otherwise be left to chance), and every batch takes
    // the index entries in the same order, so two batches sharing ids (a
    // redelivery racing its first delivery) wait for each other rather
    // than deadlock.
    let mut ids: Vec<Uuid> = headers.iter().map(|h| h.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = pool.begin().await?;
    // One statement for the whole batch: the ids it returns are the ones
    // seen for the first time; the rest were handled before.
    let mut first_time: std::collections::HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(&spec.durable)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut deliveries = Vec::with_capacity(first_time.len());
    for (message, headers) in messages.iter().zip(&headers) {
        // `remove`: an id that comes twice in the batch is applied the
        // first time only, like one delivered again later.
        if !first_time.remove(&headers.event_id) {
            outcomes.push(Outcome::Duplicate);
            continue;
        }
        outcomes.push(Outcome::Applied);
        let subject = message.subject.as_str();
        let span = tracing::info_span!("event", consumer = %spec.durable, %subject, event_id = %headers.event_id);
        crate::trace_context::set_parent_from_nats(&span, message.headers.as_ref());
        deliveries.push(Delivery {
            event_id: headers.event_id,
            subject,
            event_type: &headers.event_type,
            payload: &message.payload,
            span,
        });
    }
    let applied = if deliveries.is_empty() {
        Vec::new()
    } else {
        let span =
            tracing::info_span!("event_batch", consumer = %spec.durable, size = deliveries.len());
        handler
            .handle_batch(&mut tx, &deliveries)
            .instrument(span)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    tx.commit().await?;
    Ok((outcomes, applied))
}

/// Records the event and applies it in one transaction. `Ok(None)` when it
/// had been handled before.
async fn apply<H: Handler>(
    pool: &PgPool,
    spec: &ConsumerSpec,
    handler: &H,
    delivery: &Delivery<'_>,
) -> Result<Option<H::Committed>, HandlerError> {
    let mut tx = pool.begin().await?;
    let first_time = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&spec.durable)
    .bind(delivery.event_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        return Ok(None);
    }
    let committed = handler.handle(&mut tx, delivery).await?;
    tx.commit().await?;
    Ok(Some(committed))
}

async fn dead_letter(
    pool: &PgPool,
    spec: &ConsumerSpec,
    message: &jetstream::Message,
    event_id: Option<&str>,
    error: &str,
    deliveries: i64,
) {
    tracing::error!(%error, deliveries, "event dead-lettered");
    let stored = sqlx::query(
        "INSERT INTO dead_letters (consumer, subject, event_id, payload, error, deliveries) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&spec.durable)
    .bind(message.subject.as_str())
    .bind(event_id)
    .bind(message.payload.as_ref())
    .bind(error)
    .bind(deliveries)
    .execute(pool)
    .await;
    if let Err(store_error) = stored {
        // The log line above still carries the event; nothing else can be done.
        tracing::error!(%store_error, "could not record the dead letter");
    }
}

/// Runs `work` on `messages`, telling JetStream every third of the ack wait
/// that they are still in hand. The ack wait can then stay short whatever a
/// handler's retries take (the notifier retries SMTP for minutes), and a
/// message the server counts as delivered but this process never received
/// (a pull answered as NATS went down) comes back within one ack wait.
async fn still_working<T>(
    spec: &ConsumerSpec,
    messages: &[jetstream::Message],
    work: impl Future<Output = T>,
) -> T {
    let period = (spec.ack_wait / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => {
                for message in messages {
                    ack(message, AckKind::Progress).await;
                }
            }
        }
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        // JetStream redelivers after ack_wait; the dedupe table absorbs it.
        tracing::warn!(%error, "acknowledgement failed; the message may be redelivered");
    }
}
