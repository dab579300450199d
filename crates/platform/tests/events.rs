//! The outbox relay and the idempotent consumer against real JetStream and
//! real PostgreSQL (a fresh database per test).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use platform::consumer::{self, ConsumerSpec, Delivery, Handler, HandlerError};
use platform::outbox::{self, OutboxEvent, RelaySettings, RelayWaker};
use platform::{Shutdown, nats};
use sqlx::{PgConnection, PgPool};
use test_support::eventually;
use test_support::nats::NatsServer;
use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// JetStream on the shared NATS server (tests keep apart by stream).
async fn shared_jetstream() -> jetstream::Context {
    jetstream::new(nats::connect(&nats_url()).await.unwrap())
}

async fn database() -> test_support::TestDb {
    let db = test_support::TestDb::create("platform_events").await;
    outbox::ensure_schema(&db.pool).await.unwrap();
    outbox::ensure_schema(&db.pool)
        .await
        .expect("the schema is idempotent");
    // txid: the transaction that applied the event (batches share one).
    sqlx::query(
        "CREATE TABLE effects (event_id uuid PRIMARY KEY, payload text NOT NULL, \
         txid bigint NOT NULL DEFAULT txid_current())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

/// A stream of the test's own on the shared server.
async fn test_stream(
    jetstream: &jetstream::Context,
    duplicate_window: Duration,
) -> (String, String) {
    let tag = Uuid::new_v4().simple().to_string();
    let name = format!("T{tag}");
    let subject = format!("t{tag}.events");
    jetstream
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("t{tag}.>")],
            duplicate_window,
            ..Default::default()
        })
        .await
        .unwrap();
    (name, subject)
}

fn event(subject: &str, payload: &str) -> OutboxEvent {
    OutboxEvent {
        id: Uuid::new_v4(),
        subject: subject.to_owned(),
        event_type: "TestEvent".into(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// One relay round with the default settings: how many rows it published.
async fn relay_round(pool: &PgPool, jetstream: &jetstream::Context) -> usize {
    outbox::relay_once(pool, jetstream, &RelaySettings::default())
        .await
        .expect("a relay round")
}

async fn enqueue(pool: &PgPool, events: &[OutboxEvent]) {
    let mut tx = pool.begin().await.unwrap();
    for event in events {
        outbox::enqueue(&mut tx, event).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Records each applied event; "poison" is permanently bad, "flaky" fails
/// its first two deliveries.
#[derive(Clone, Default)]
struct RecordingHandler {
    flaky_failures: Arc<AtomicUsize>,
}

impl Handler for RecordingHandler {
    type Committed = ();

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let payload = std::str::from_utf8(delivery.payload)
            .map_err(|_| HandlerError::Permanent("payload is not UTF-8".into()))?;
        if payload == "poison" {
            return Err(HandlerError::Permanent("poison pill".into()));
        }
        if payload == "flaky" && self.flaky_failures.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(HandlerError::Transient(anyhow::anyhow!("flaky dependency")));
        }
        sqlx::query("INSERT INTO effects (event_id, payload) VALUES ($1, $2)")
            .bind(delivery.event_id)
            .bind(payload)
            .execute(connection)
            .await?;
        Ok(())
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Publishes `payload` with `id` as its `Nats-Msg-Id` (none: no header), as
/// the relay would, once JetStream has stored it.
async fn publish(
    jetstream: &jetstream::Context,
    subject: &str,
    id: Option<Uuid>,
    payload: impl Into<Vec<u8>>,
) {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = id {
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
    }
    jetstream
        .publish_with_headers(subject.to_owned(), headers, payload.into().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A consumer running in the background until [`Running::stop`].
struct Running {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start<H: Handler>(
        pool: &PgPool,
        jetstream: &jetstream::Context,
        spec: ConsumerSpec,
        handler: H,
    ) -> Self {
        let shutdown = Shutdown::new();
        let task = tokio::spawn(consumer::run(
            pool.clone(),
            jetstream.clone(),
            spec,
            handler,
            shutdown.clone(),
        ));
        Self { shutdown, task }
    }

    /// Stops the consumer and waits until it has.
    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

/// The id of an event `consumer` has handled before.
async fn handled_before(pool: &PgPool, consumer: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)")
        .bind(consumer)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn relay_publishes_each_outbox_row_once_with_its_event_id() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let events: Vec<_> = (0..5).map(|i| event(&subject, &format!("e{i}"))).collect();
    enqueue(&db.pool, &events).await;

    assert_eq!(relay_round(&db.pool, &jetstream).await, 5);
    assert_eq!(relay_round(&db.pool, &jetstream).await, 0);
    assert_eq!(outbox::backlog(&db.pool).await.unwrap(), 0);

    // A crash between publish and "mark sent" means a second publish: the
    // stream's duplicate window drops it.
    sqlx::query("UPDATE outbox SET published_at = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(relay_round(&db.pool, &jetstream).await, 5);
    let info = jetstream
        .get_stream(&stream_name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        info.state.messages, 5,
        "duplicates are dropped by Nats-Msg-Id"
    );

    let stream = jetstream.get_stream(&stream_name).await.unwrap();
    for (sequence, expected) in (1..=5).zip(&events) {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str()
            .to_owned();
        assert_eq!(
            id,
            expected.id.to_string(),
            "published in order with their ids"
        );
    }
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// A change and its event in one statement: the event is written for each
/// row the change produced, and for none when it changed nothing.
async fn insert_effect_announcing_it(pool: &PgPool, effect: Uuid, announcement: &OutboxEvent) {
    let sql = format!(
        "WITH applied AS (INSERT INTO effects (event_id, payload) VALUES ($1, 'x') \
             ON CONFLICT DO NOTHING RETURNING event_id), \
         announced AS ({}) SELECT count(*) FROM applied",
        outbox::insert_event_for_each("applied", 2)
    );
    outbox::bind_event(sqlx::query(&sql).bind(effect), announcement)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_event_written_with_its_change_exists_only_when_the_change_happened() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let effect = Uuid::new_v4();
    let first = event(&subject, "first");
    insert_effect_announcing_it(&db.pool, effect, &first).await;
    // The same change again changes nothing, so its (new) event is not written.
    insert_effect_announcing_it(&db.pool, effect, &event(&subject, "second")).await;

    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 1);
    assert_eq!(relay_round(&db.pool, &jetstream).await, 1);
    let stream = jetstream.get_stream(&stream_name).await.unwrap();
    let message = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        message.headers.get("Nats-Msg-Id").unwrap().as_str(),
        first.id.to_string()
    );
    assert_eq!(
        message
            .headers
            .get(outbox::EVENT_TYPE_HEADER)
            .unwrap()
            .as_str(),
        "TestEvent"
    );
    assert_eq!(&message.payload[..], b"first");
    jetstream.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn rows_another_relay_has_claimed_are_left_to_it_until_its_lease_runs_out() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let events: Vec<_> = (0..3).map(|i| event(&subject, &format!("e{i}"))).collect();
    enqueue(&db.pool, &events).await;
    // A relay claimed the first two and died before marking them sent.
    sqlx::query("UPDATE outbox SET claimed_until = now() + interval '1 hour' WHERE id = ANY($1)")
        .bind(vec![events[0].id, events[1].id])
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(
        relay_round(&db.pool, &jetstream).await,
        1,
        "only the row nobody holds is published"
    );
    assert_eq!(outbox::backlog(&db.pool).await.unwrap(), 2);

    sqlx::query("UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE claimed_until IS NOT NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        relay_round(&db.pool, &jetstream).await,
        2,
        "once the lease has run out, the rows are anyone's"
    );
    assert_eq!(outbox::backlog(&db.pool).await.unwrap(), 0);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE claimed_until IS NOT NULL"
        )
        .await,
        0,
        "sent rows are nobody's"
    );
    jetstream.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn a_failed_publish_gives_its_rows_back_for_the_next_round() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let tag = Uuid::new_v4().simple().to_string();
    // No stream covers this subject yet: JetStream refuses the publish.
    let subject = format!("t{tag}.events");
    let events: Vec<_> = (0..3).map(|i| event(&subject, &format!("e{i}"))).collect();
    enqueue(&db.pool, &events).await;

    let error = outbox::relay_once(&db.pool, &jetstream, &RelaySettings::default())
        .await
        .expect_err("no stream takes the subject");
    assert!(
        error.to_string().contains(&events[0].id.to_string()),
        "the error names the first row that failed: {error}"
    );
    assert_eq!(outbox::backlog(&db.pool).await.unwrap(), 3);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE claimed_until IS NOT NULL"
        )
        .await,
        0,
        "nothing stays claimed after a failed round"
    );
    let (attempts, last_error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM outbox WHERE id = $1")
            .bind(events[0].id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(last_error.is_some(), "the failure is kept on the row");

    jetstream
        .create_stream(stream::Config {
            name: format!("T{tag}"),
            subjects: vec![format!("t{tag}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        relay_round(&db.pool, &jetstream).await,
        3,
        "the next round sends them all, without waiting out a lease"
    );
    let stream = jetstream.get_stream(format!("T{tag}")).await.unwrap();
    for (sequence, expected) in (1..=3).zip(&events) {
        let message = stream.get_raw_message(sequence).await.unwrap();
        assert_eq!(
            message.headers.get("Nats-Msg-Id").unwrap().as_str(),
            expected.id.to_string(),
            "still in write order"
        );
    }
    jetstream.delete_stream(format!("T{tag}")).await.unwrap();
}

#[tokio::test]
async fn events_written_while_nats_is_down_are_published_once_it_is_back() {
    let db = database().await;
    let mut server = NatsServer::unstarted();
    let url = server.url();
    // Nothing listens yet: the client keeps trying in the background.
    let jetstream = jetstream::new(nats::connect(&url).await.unwrap());
    let subject = "orders.placed";
    let events: Vec<_> = (0..3).map(|i| event(subject, &format!("e{i}"))).collect();
    enqueue(&db.pool, &events).await;

    let shutdown = Shutdown::new();
    let relay = tokio::spawn(outbox::run_relay(
        db.pool.clone(),
        jetstream.clone(),
        RelayWaker::new(),
        RelaySettings {
            publish_timeout: Duration::from_millis(500),
            ..Default::default()
        },
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        outbox::backlog(&db.pool).await.unwrap(),
        3,
        "nothing can be published yet"
    );

    server.restart().await;
    eventually("the stream can be created", || async {
        jetstream
            .get_or_create_stream(stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["orders.>".into()],
                ..Default::default()
            })
            .await
            .is_ok()
    })
    .await;
    eventually("the backlog drains", || async {
        outbox::backlog(&db.pool).await.unwrap() == 0
    })
    .await;
    let info = jetstream
        .get_stream("ORDERS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 3);

    shutdown.trigger();
    relay.await.unwrap();
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once_and_bad_events_are_dead_lettered_without_blocking() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    // The smallest duplicate window JetStream allows (100 ms) lets the same
    // event id reach the consumer three times, as a replay would.
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_millis(100)).await;
    let spec = ConsumerSpec {
        max_deliver: 4,
        ..ConsumerSpec::new(
            &stream_name,
            "test-consumer",
            std::slice::from_ref(&subject),
        )
    };
    let handler = RecordingHandler::default();
    let running = Running::start(&db.pool, &jetstream, spec.clone(), handler.clone());

    let publish =
        |id: Option<Uuid>, payload: &'static str| publish(&jetstream, &subject, id, payload);
    let repeated = Uuid::new_v4();
    for _ in 0..3 {
        publish(Some(repeated), "once").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    publish(Some(Uuid::new_v4()), "poison").await;
    publish(None, "no id").await;
    publish(Some(Uuid::new_v4()), "flaky").await;
    publish(Some(Uuid::new_v4()), "after").await;

    eventually("good events are applied", || async {
        count(&db.pool, "SELECT count(*) FROM effects").await == 3
    })
    .await;
    eventually("bad events are dead-lettered", || async {
        count(&db.pool, "SELECT count(*) FROM dead_letters").await == 2
    })
    .await;
    let applied: Vec<String> = sqlx::query_scalar("SELECT payload FROM effects ORDER BY payload")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        applied,
        ["after", "flaky", "once"],
        "the repeated event took effect once"
    );
    assert_eq!(
        handler.flaky_failures.load(Ordering::SeqCst),
        3,
        "flaky was retried until it worked"
    );
    let reasons: Vec<String> = sqlx::query_scalar("SELECT error FROM dead_letters ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(reasons.iter().any(|r| r.contains("poison")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("Nats-Msg-Id")),
        "{reasons:?}"
    );

    running.stop().await;
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// A batched consumer applies the messages at hand in shared transactions;
/// a bad event in a batch is dead-lettered alone (the batch falls back to
/// one by one) and an event handled before changes nothing.
#[tokio::test]
async fn a_batched_consumer_applies_events_together_and_a_bad_one_alone() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let spec =
        ConsumerSpec::new(&stream_name, "batched", std::slice::from_ref(&subject)).batched(32);
    let handled_before = handled_before(&db.pool, "batched").await;
    // Everything is published first, so the consumer finds it all at hand.
    for i in 0..100 {
        let (id, payload) = match i {
            40 => (Uuid::new_v4(), "poison".to_owned()),
            70 => (handled_before, "handled before".to_owned()),
            _ => (Uuid::new_v4(), format!("e{i}")),
        };
        publish(&jetstream, &subject, Some(id), payload).await;
    }
    let running = Running::start(&db.pool, &jetstream, spec, RecordingHandler::default());

    eventually("the good events are applied", || async {
        count(&db.pool, "SELECT count(*) FROM effects").await == 98
    })
    .await;
    eventually("the poison is dead-lettered", || async {
        count(&db.pool, "SELECT count(*) FROM dead_letters").await == 1
    })
    .await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM effects WHERE payload IN ('poison', 'handled before')"
        )
        .await,
        0
    );
    let transactions = count(&db.pool, "SELECT count(DISTINCT txid) FROM effects").await;
    assert!(
        transactions <= 50,
        "98 events applied in {transactions} transactions: batches share them"
    );

    running.stop().await;
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// One batch holding an event id twice and an event handled before: the
/// batch is still applied as one transaction, and each event takes effect
/// once (the id's second copy and the old event are duplicates).
#[tokio::test]
async fn a_batch_applies_an_event_id_it_holds_twice_and_one_handled_before_once() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    // The smallest duplicate window (100 ms): past it, JetStream stores an
    // event id again, as after a replay.
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_millis(100)).await;
    let spec =
        ConsumerSpec::new(&stream_name, "batched", std::slice::from_ref(&subject)).batched(16);
    let handled_before = handled_before(&db.pool, "batched").await;
    let twice = Uuid::new_v4();
    let publish =
        |id: Uuid, payload: &'static str| publish(&jetstream, &subject, Some(id), payload);
    publish(Uuid::new_v4(), "first").await;
    publish(twice, "twice").await;
    publish(handled_before, "handled before").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(twice, "twice again").await;
    publish(Uuid::new_v4(), "last").await;

    // Exactly these five, as one batch.
    let consumer = consumer::durable_consumer(&jetstream, &spec).await.unwrap();
    let mut pulled = consumer
        .batch()
        .max_messages(5)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let mut messages = Vec::new();
    while let Some(message) = futures::StreamExt::next(&mut pulled).await {
        messages.push(message.unwrap());
    }
    assert_eq!(messages.len(), 5);
    let outcomes =
        consumer::handle_batch(&db.pool, &spec, &RecordingHandler::default(), &messages).await;

    use consumer::Outcome::{Applied, Duplicate};
    assert_eq!(outcomes, [Applied, Applied, Duplicate, Duplicate, Applied]);
    let applied: Vec<String> = sqlx::query_scalar("SELECT payload FROM effects ORDER BY payload")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(applied, ["first", "last", "twice"]);
    assert_eq!(
        count(&db.pool, "SELECT count(DISTINCT txid) FROM effects").await,
        1,
        "applied as one batch, not one by one after a failure"
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM processed_events").await,
        4
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM dead_letters").await,
        0
    );
    eventually("every message, duplicates too, is acknowledged", || async {
        consumer
            .get_info()
            .await
            .is_ok_and(|info| info.num_ack_pending == 0 && info.num_pending == 0)
    })
    .await;
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// Lets each message through only once `width` of them are in hand at the
/// same moment: a consumer handling fewer at once never gets past it.
#[derive(Clone)]
struct GatheringHandler {
    barrier: Arc<tokio::sync::Barrier>,
    most_at_once: Arc<AtomicUsize>,
    in_hand: Arc<AtomicUsize>,
}

impl Handler for GatheringHandler {
    type Committed = ();

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let now = self.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let gathered = tokio::time::timeout(Duration::from_secs(5), self.barrier.wait()).await;
        self.in_hand.fetch_sub(1, Ordering::SeqCst);
        if gathered.is_err() {
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "the others never arrived"
            )));
        }
        sqlx::query("INSERT INTO effects (event_id, payload) VALUES ($1, $2)")
            .bind(delivery.event_id)
            .bind(String::from_utf8_lossy(delivery.payload).into_owned())
            .execute(connection)
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_concurrent_consumer_handles_several_messages_at_once_but_no_more_than_allowed() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let width = 4;
    let spec = ConsumerSpec::new(&stream_name, "gathering", std::slice::from_ref(&subject))
        .concurrent(width);
    let handler = GatheringHandler {
        barrier: Arc::new(tokio::sync::Barrier::new(width)),
        most_at_once: Arc::default(),
        in_hand: Arc::default(),
    };
    let events: Vec<_> = (0..3 * width)
        .map(|i| event(&subject, &format!("e{i}")))
        .collect();
    enqueue(&db.pool, &events).await;
    relay_round(&db.pool, &jetstream).await;

    let running = Running::start(&db.pool, &jetstream, spec, handler.clone());
    // One at a time, every message would wait at the barrier in vain.
    eventually("all messages are applied, in groups of four", || async {
        count(&db.pool, "SELECT count(*) FROM effects").await == (3 * width) as i64
    })
    .await;
    assert_eq!(handler.most_at_once.load(Ordering::SeqCst), width);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM dead_letters").await,
        0
    );

    running.stop().await;
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// Takes `pause` over every event before applying it, counting its calls.
#[derive(Clone)]
struct SlowHandler {
    pause: Duration,
    calls: Arc<AtomicUsize>,
}

impl Handler for SlowHandler {
    type Committed = ();

    async fn handle<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.pause).await;
        sqlx::query("INSERT INTO effects (event_id, payload) VALUES ($1, 'slow')")
            .bind(delivery.event_id)
            .execute(connection)
            .await?;
        Ok(())
    }
}

/// A handler may take far longer than the ack wait (the notifier retries
/// SMTP for minutes): the consumer keeps telling JetStream the message is in
/// hand, so it is never redelivered meanwhile, while the ack wait stays
/// short for messages nobody is working on.
#[tokio::test]
async fn a_message_being_handled_past_its_ack_wait_is_not_redelivered() {
    let db = database().await;
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let spec = ConsumerSpec {
        ack_wait: Duration::from_secs(1),
        ..ConsumerSpec::new(&stream_name, "slow", std::slice::from_ref(&subject))
    };
    let handler = SlowHandler {
        pause: Duration::from_millis(3_500),
        calls: Arc::default(),
    };
    publish(&jetstream, &subject, Some(Uuid::new_v4()), "slow").await;
    let running = Running::start(&db.pool, &jetstream, spec.clone(), handler.clone());
    eventually("the slow event is applied", || async {
        count(&db.pool, "SELECT count(*) FROM effects").await == 1
    })
    .await;
    let consumer = consumer::durable_consumer(&jetstream, &spec).await.unwrap();
    eventually("the event is acknowledged", || async {
        consumer
            .get_info()
            .await
            .is_ok_and(|info| info.num_ack_pending == 0 && info.num_pending == 0)
    })
    .await;
    let info = consumer.get_info().await.unwrap();
    assert_eq!(
        (info.num_redelivered, info.delivered.consumer_sequence),
        (0, 1),
        "delivered once, never again while it was being handled"
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);

    running.stop().await;
    jetstream.delete_stream(&stream_name).await.unwrap();
}

/// A durable consumer created with one ack wait and delivery limit takes the
/// ones a later release asks for.
#[tokio::test]
async fn a_durable_consumer_takes_a_changed_ack_wait_and_delivery_limit() {
    let jetstream = shared_jetstream().await;
    let (stream_name, subject) = test_stream(&jetstream, Duration::from_secs(120)).await;
    let before = ConsumerSpec {
        ack_wait: Duration::from_secs(600),
        ..ConsumerSpec::new(&stream_name, "durable", std::slice::from_ref(&subject))
    };
    let created = consumer::durable_consumer(&jetstream, &before)
        .await
        .unwrap();
    assert_eq!(
        created.cached_info().config.ack_wait,
        Duration::from_secs(600)
    );

    let after = ConsumerSpec {
        ack_wait: Duration::from_secs(30),
        max_deliver: 5,
        ..before
    };
    let mut bound = consumer::durable_consumer(&jetstream, &after)
        .await
        .unwrap();
    let config = bound.info().await.unwrap().config.clone();
    assert_eq!(
        (config.ack_wait, config.max_deliver),
        (Duration::from_secs(30), 5)
    );

    jetstream.delete_stream(&stream_name).await.unwrap();
}
