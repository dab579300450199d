//! The transactional outbox: how every producer publishes events.
//!
//! A service never publishes straight after a commit and hopes. It writes the
//! event into its own `outbox` table in the same transaction as the state
//! change ([`enqueue`]); a relay task ([`run_relay`]) publishes unsent rows to
//! JetStream with `Nats-Msg-Id` set to the event id, waits for JetStream's
//! acknowledgement and only then marks the row sent. Delivery is therefore
//! at-least-once, and JetStream's duplicate window plus idempotent consumers
//! ([`crate::consumer`]) make it exactly-once in effect.
//!
//! A relay *claims* a batch of rows in write order with one statement (a
//! short lease, `claimed_until`, taken under `FOR UPDATE SKIP LOCKED`), so
//! several replicas can run relays on one database without publishing a row
//! at the same time; it publishes them and marks them sent with a second
//! statement. No transaction stays open across the JetStream round trip,
//! and a round costs two statements (an idle one, one). A relay that dies
//! between the two leaves its lease to run out, after which any relay sends
//! those rows again: a repeat that JetStream's duplicate window and the
//! idempotent consumers absorb, as for a crash after publishing. A failed
//! publish gives its rows back at once.
//! The relay polls (a few times a second) and can be woken right after a
//! commit ([`RelayWaker`]) so the common path has no polling delay.
//!
//! Each row also keeps the W3C trace context of the span that wrote it
//! (`traceparent`, `tracestate`; null when tracing is off), and the relay
//! sends it as message headers: the consumer's span continues the
//! producer's trace even though the publish happens later, in another task.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::shutdown::Shutdown;
use crate::trace_context::StoredContext;

/// Header carrying the event type (the protobuf message name).
pub const EVENT_TYPE_HEADER: &str = "Bookmyseat-Event-Type";

/// The tables the outbox and the idempotent consumer need. Each service runs
/// this against its own database at migration time (`CREATE … IF NOT
/// EXISTS`, so it is safe to run on every start).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS outbox (
    -- Write order: events of one transaction share created_at.
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,
    subject      text NOT NULL,
    event_type   text NOT NULL,
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- The writer's W3C trace context, sent on as message headers.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS tracestate text;

-- Until when a relay has the row in hand (null: nobody has).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_until timestamptz;

CREATE TABLE IF NOT EXISTS processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id         bigserial PRIMARY KEY,
    consumer   text NOT NULL,
    subject    text NOT NULL,
    event_id   text,
    payload    bytea NOT NULL,
    error      text NOT NULL,
    deliveries bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// Creates the outbox, processed-events and dead-letter tables if missing.
///
/// Two processes migrating at once (replicas starting together) would race:
/// `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent create. A
/// transaction-scoped advisory lock makes them take turns.
pub async fn ensure_schema(pool: &PgPool) -> anyhow::Result<()> {
    const LOCK_KEY: i64 = 0x626d_735f_6f75_7462; // "bms_outb"
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// One event to publish.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    /// The event's id: also its `Nats-Msg-Id`, so JetStream drops a duplicate.
    pub id: Uuid,
    pub subject: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

impl OutboxEvent {
    /// An event whose id is the one its payload carries (`EventMeta.event_id`),
    /// so the `Nats-Msg-Id` and the consumers' dedupe key match what a
    /// reader of the payload sees; a fresh id when that text is not a UUID.
    pub fn new(event_id: &str, subject: &str, event_type: &str, payload: Vec<u8>) -> Self {
        Self {
            id: Uuid::parse_str(event_id).unwrap_or_else(|_| Uuid::new_v4()),
            subject: subject.to_owned(),
            event_type: event_type.to_owned(),
            payload,
        }
    }
}

/// The outbox columns an event fills, in the order [`bind_event`] binds them.
const EVENT_COLUMNS: &str = "id, subject, event_type, payload, traceparent, tracestate";

/// How many parameters [`bind_event`] binds.
pub const EVENT_PARAMETERS: usize = 6;

/// A bound query on the way to PostgreSQL.
pub type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Writes `event` into the outbox inside the caller's transaction, with the
/// current span's trace context.
pub async fn enqueue(connection: &mut PgConnection, event: &OutboxEvent) -> sqlx::Result<()> {
    insert(connection, [(event, StoredContext::current())]).await
}

/// An event with the trace context of the span that decided it, to be
/// written together with others ([`enqueue_all`]).
#[derive(Clone, Debug)]
pub struct Pending {
    event: OutboxEvent,
    trace: StoredContext,
}

impl OutboxEvent {
    /// This event with the current span's trace context, for
    /// [`enqueue_all`].
    pub fn pending(self) -> Pending {
        Pending {
            event: self,
            trace: StoredContext::current(),
        }
    }
}

/// Writes `events` into the outbox inside the caller's transaction in one
/// statement, in order, each with its own span's trace context: a consumer
/// applying a batch of events writes what they announce in one round trip
/// rather than one each.
pub async fn enqueue_all(connection: &mut PgConnection, events: &[Pending]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    insert(
        connection,
        events.iter().map(|p| (&p.event, p.trace.clone())),
    )
    .await
}

async fn insert<'e>(
    connection: &mut PgConnection,
    events: impl IntoIterator<Item = (&'e OutboxEvent, StoredContext)>,
) -> sqlx::Result<()> {
    static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO outbox ({EVENT_COLUMNS}) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[]) \
             ON CONFLICT (id) DO NOTHING"
        )
    });
    let (mut ids, mut subjects, mut types, mut payloads, mut parents, mut states) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (event, trace) in events {
        ids.push(event.id);
        subjects.push(event.subject.as_str());
        types.push(event.event_type.as_str());
        payloads.push(event.payload.as_slice());
        parents.push(trace.traceparent);
        states.push(trace.tracestate);
    }
    sqlx::query(INSERT.as_str())
        .bind(ids)
        .bind(subjects)
        .bind(types)
        .bind(payloads)
        .bind(parents)
        .bind(states)
        .execute(connection)
        .await?;
    Ok(())
}

/// The outbox insert as a piece of a larger statement: a data-modifying CTE
/// body that writes the event once for each row of `source` (a CTE of the
/// caller's statement, e.g. the `RETURNING` of the change that causes the
/// event), taking the event from parameters `$first` onwards, which the
/// caller binds with [`bind_event`] in that position.
///
/// The state change and its event then travel as one statement, one round
/// trip, and the event exists exactly when the change happened (no row in
/// `source`, no event) without the caller reading the result in between.
pub fn insert_event_for_each(source: &str, first: usize) -> String {
    let values: Vec<String> = (first..first + EVENT_PARAMETERS)
        .map(|n| format!("${n}"))
        .collect();
    format!(
        "INSERT INTO outbox ({EVENT_COLUMNS}) SELECT {} FROM {source} ON CONFLICT (id) DO NOTHING",
        values.join(", ")
    )
}

/// Binds `event` (and the current span's trace context) as the next
/// [`EVENT_PARAMETERS`] parameters of `query`.
pub fn bind_event<'q>(query: PgQuery<'q>, event: &'q OutboxEvent) -> PgQuery<'q> {
    let trace = StoredContext::current();
    query
        .bind(event.id)
        .bind(&event.subject)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(trace.traceparent)
        .bind(trace.tracestate)
}

/// Wakes the relay after a commit so an event goes out without waiting for
/// the next poll. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Relay tunables.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// Poll interval when nothing wakes the relay.
    pub poll_interval: Duration,
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long to wait for JetStream's acknowledgement of one publish.
    pub publish_timeout: Duration,
    /// Pause after a failed round (NATS down), doubling up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long claimed rows stay a relay's own. Only a relay that died
    /// holding them makes anyone wait this long; it should well exceed the
    /// time a round may take (a batch's publishes and their acks).
    pub claim_lease: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            batch_size: 256,
            publish_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            claim_lease: Duration::from_secs(30),
        }
    }
}

/// How often the relay refreshes the `bookmyseat_outbox_backlog` gauge.
const BACKLOG_GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes unsent outbox rows until `shutdown` fires, then makes one last
/// attempt to flush what is pending.
pub async fn run_relay(
    pool: PgPool,
    jetstream: jetstream::Context,
    waker: RelayWaker,
    settings: RelaySettings,
    shutdown: Shutdown,
) {
    let mut backoff = settings.initial_backoff;
    let database = pool
        .connect_options()
        .get_database()
        .unwrap_or("unknown")
        .to_owned();
    // The backlog gauge costs a query; once a second is plenty for a gauge,
    // and a relay woken by every commit would otherwise count after each.
    let mut backlog_measured: Option<tokio::time::Instant> = None;
    loop {
        match relay_once(&pool, &jetstream, &settings).await {
            Ok(published) => {
                backoff = settings.initial_backoff;
                if backlog_measured.is_none_or(|at| at.elapsed() >= BACKLOG_GAUGE_INTERVAL) {
                    backlog_measured = Some(tokio::time::Instant::now());
                    if let Ok(waiting) = backlog(&pool).await {
                        metrics::gauge!("bookmyseat_outbox_backlog", "database" => database.clone())
                            .set(waiting as f64);
                    }
                }
                if published as i64 == settings.batch_size {
                    continue; // more may be waiting
                }
                tokio::select! {
                    _ = waker.0.notified() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                    _ = shutdown.fired() => break,
                }
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), retry_in_ms = backoff.as_millis() as u64,
                    "outbox relay could not publish; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.fired() => break,
                }
                backoff = (backoff * 2).min(settings.max_backoff);
            }
        }
    }
    // Flush what the last requests committed, without waiting on a dead NATS.
    match tokio::time::timeout(
        settings.publish_timeout,
        relay_once(&pool, &jetstream, &settings),
    )
    .await
    {
        Ok(Ok(published)) if published > 0 => {
            tracing::info!(published, "outbox flushed on shutdown")
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "outbox not flushed on shutdown; rows stay for the next start")
        }
        _ => {}
    }
}

/// An unsent row as the relay claims it.
type OutboxRow = (
    i64,
    Uuid,
    String,
    String,
    Vec<u8>,
    Option<String>,
    Option<String>,
);

/// Claims up to one batch of unsent rows, publishes them in order and marks
/// the published ones sent. Returns how many were published. A failure
/// gives the rest back (unsent, counted, with the error) for the next round.
pub async fn relay_once(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    settings: &RelaySettings,
) -> anyhow::Result<usize> {
    // `ORDER BY seq` picks the oldest rows; RETURNING has no order of its
    // own, hence the sort below.
    let mut rows = sqlx::query_as::<_, OutboxRow>(
        "UPDATE outbox o SET claimed_until = now() + make_interval(secs => $2) \
         FROM (SELECT seq FROM outbox \
                WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= now()) \
                ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) claimed \
         WHERE o.seq = claimed.seq \
         RETURNING o.seq, o.id, o.subject, o.event_type, o.payload, o.traceparent, o.tracestate",
    )
    .bind(settings.batch_size)
    .bind(settings.claim_lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort_unstable_by_key(|row| row.0);
    let claimed: Vec<Uuid> = rows.iter().map(|row| row.1).collect();
    // Send every publish first, then await the acknowledgements: one round
    // trip for the batch instead of one per event.
    let mut pending = Vec::with_capacity(rows.len());
    let mut failure = None;
    for (_, id, subject, event_type, payload, traceparent, tracestate) in rows {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
        headers.insert(EVENT_TYPE_HEADER, event_type.as_str());
        StoredContext {
            traceparent,
            tracestate,
        }
        .write_to(&mut headers);
        match jetstream
            .publish_with_headers(subject, headers, payload.into())
            .await
        {
            Ok(ack) => pending.push((id, ack)),
            Err(error) => {
                failure = Some((id, error.to_string()));
                break;
            }
        }
    }
    let mut published = Vec::with_capacity(pending.len());
    for (id, ack) in pending {
        if failure.is_some() {
            break;
        }
        match tokio::time::timeout(settings.publish_timeout, ack).await {
            Ok(Ok(_)) => published.push(id),
            Ok(Err(error)) => failure = Some((id, error.to_string())),
            Err(_) => failure = Some((id, "no acknowledgement from JetStream in time".into())),
        }
    }
    // One statement settles the batch: the published rows are sent, the
    // failed one keeps its error, and every row not published is given back
    // so the next round sends it (in order) without waiting out the lease.
    let (failed_id, failed_error) = match &failure {
        Some((id, error)) => (Some(*id), Some(error.as_str())),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE outbox SET claimed_until = NULL, \
             published_at = CASE WHEN id = ANY($2) THEN now() ELSE published_at END, \
             attempts = attempts + CASE WHEN id = ANY($2) OR id = $3 THEN 1 ELSE 0 END, \
             last_error = CASE WHEN id = $3 THEN $4 ELSE last_error END \
         WHERE id = ANY($1)",
    )
    .bind(&claimed)
    .bind(&published)
    .bind(failed_id)
    .bind(failed_error)
    .execute(pool)
    .await?;
    match failure {
        Some((id, error)) => Err(anyhow::anyhow!(
            "publishing outbox event {id} failed after {} sent: {error}",
            published.len()
        )),
        None => Ok(published.len()),
    }
}

/// Rows not yet published: the backlog an operator watches.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_keeps_the_id_its_payload_carries_or_gets_a_fresh_one() {
        let id = Uuid::new_v4();
        let kept = OutboxEvent::new(&id.to_string(), "s", "T", vec![1]);
        assert_eq!(kept.id, id);
        let fresh = OutboxEvent::new("not a uuid", "s", "T", vec![1]);
        let other = OutboxEvent::new("not a uuid", "s", "T", vec![1]);
        assert_ne!(fresh.id, other.id, "each event without an id gets its own");
        assert_eq!(
            (fresh.subject.as_str(), fresh.event_type.as_str()),
            ("s", "T")
        );
    }
}
