//! What every analytics test starts from: the real service over a fresh
//! database and streams of the test's own, a gRPC client, and events to
//! publish the way the outbox relay does.

use std::time::Duration;

use analytics::events::{FiguresHandler, Subjects};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, stream};
use chrono::{DateTime, TimeZone as _, Utc};
use futures::StreamExt as _;
use platform::Shutdown;
use platform::consumer::Outcome;
use platform::grpc::TracedChannel;
use proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use test_support::{TestDb, TestStreams};
use uuid::Uuid;

pub type Client = AnalyticsServiceClient<TracedChannel>;

/// A running analytics service.
pub struct Analytics {
    pub db: TestDb,
    pub jetstream: jetstream::Context,
    pub prefix: String,
    pub client: Client,
    shutdown: Shutdown,
    _streams: TestStreams,
    /// The other prefix's streams the service consumes instead, when the
    /// test applies the events itself (see [`start_applying_by_hand`]).
    _consumed_instead: Option<TestStreams>,
}

impl Drop for Analytics {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn start() -> Analytics {
    start_consuming(true).await
}

/// Analytics serving its figures while its consumers read another prefix's
/// streams, where nothing is published: the test takes the events off the
/// consumers itself and applies them in batches of its choosing
/// ([`Analytics::apply_batch`]), as a running consumer would.
pub async fn start_applying_by_hand() -> Analytics {
    start_consuming(false).await
}

async fn start_consuming(own_streams: bool) -> Analytics {
    let db = TestDb::create("analytics").await;
    analytics::migrate(&db.pool)
        .await
        .expect("analytics migrations apply to a fresh database");
    let prefix = test_support::events_prefix();
    let streams = TestStreams::adopt(&prefix).await;
    let jetstream = create_streams(&prefix).await;
    let consumed_instead = if own_streams {
        None
    } else {
        Some(TestStreams::adopt(&test_support::events_prefix()).await)
    };
    let consumed = consumed_instead.as_ref().map_or(&prefix, |s| &s.prefix);
    let (client, shutdown) = launch(&db, consumed).await;
    Analytics {
        db,
        jetstream,
        prefix,
        client,
        shutdown,
        _streams: streams,
        _consumed_instead: consumed_instead,
    }
}

/// Starts an analytics instance on port 0 over `db` and `prefix`'s streams.
async fn launch(db: &TestDb, prefix: &str) -> (Client, Shutdown) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let address = listener.local_addr().expect("bound address");
    let pool = platform::db::connect(&db.url, "ANALYTICS_DATABASE_URL", &Default::default())
        .await
        .expect("connecting analytics to its test database");
    let nats = platform::nats::connect(&test_support::nats_url())
        .await
        .expect("tests need NATS with JetStream (make test starts one)");
    let shutdown = Shutdown::new();
    tokio::spawn(analytics::serve(
        listener,
        pool,
        nats,
        prefix.to_owned(),
        shutdown.clone(),
    ));
    let channel = platform::grpc::channel(
        &format!("http://{address}"),
        "analytics_url",
        &Default::default(),
    )
    .expect("a valid URL");
    (AnalyticsServiceClient::new(channel), shutdown)
}

impl Analytics {
    /// Stops this instance, rebuilds (forgets the figures, deletes the
    /// consumers) and starts a new instance that replays the streams.
    pub async fn rebuild_and_restart(&mut self) {
        self.shutdown.trigger();
        // The old instance's consumers stop within one pull.
        tokio::time::sleep(Duration::from_millis(300)).await;
        analytics::rebuild(&self.db.pool, &self.jetstream, &self.prefix)
            .await
            .expect("rebuilding");
        let (client, shutdown) = launch(&self.db, &self.prefix).await;
        self.client = client;
        self.shutdown = shutdown;
    }

    pub async fn publish(&self, subject: &str, event_id: Uuid, event_type: &str, payload: Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event_id.to_string().as_str());
        headers.insert(platform::outbox::EVENT_TYPE_HEADER, event_type);
        self.jetstream
            .publish_with_headers(
                platform::nats::subject(&self.prefix, subject),
                headers,
                payload.into(),
            )
            .await
            .expect("publishing")
            .await
            .expect("JetStream stores the event");
    }

    pub async fn confirmed(&self, event: &events_pb::BookingConfirmed) {
        self.publish(
            "bookings.confirmed",
            id_of(event.meta.as_ref()),
            "bookmyseat.events.v1.BookingConfirmed",
            prost::Message::encode_to_vec(event),
        )
        .await;
    }

    pub async fn rejected(&self, event: &events_pb::BookingRejected) {
        self.publish(
            "bookings.rejected",
            id_of(event.meta.as_ref()),
            "bookmyseat.events.v1.BookingRejected",
            prost::Message::encode_to_vec(event),
        )
        .await;
    }

    pub async fn refunded(&self, event: &events_pb::RefundSucceeded) {
        self.publish(
            "payments.refund.succeeded",
            id_of(event.meta.as_ref()),
            "bookmyseat.events.v1.RefundSucceeded",
            prost::Message::encode_to_vec(event),
        )
        .await;
    }

    /// A `bookings.confirmed` event whose payload is not protobuf.
    pub async fn malformed_booking(&self) {
        self.publish(
            "bookings.confirmed",
            Uuid::new_v4(),
            "bookmyseat.events.v1.BookingConfirmed",
            b"\xff\xfe not protobuf".to_vec(),
        )
        .await;
    }

    /// Waits until both consumers have acknowledged everything published.
    pub async fn settled(&self) {
        for (domain, durable) in [
            ("BOOKINGS", analytics::events::BOOKINGS_CONSUMER),
            ("PAYMENTS", analytics::events::PAYMENTS_CONSUMER),
        ] {
            let name = format!("{}_{domain}", self.prefix.to_uppercase());
            test_support::eventually(&format!("{durable} acknowledging everything"), || async {
                let Ok(stream) = self.jetstream.get_stream(&name).await else {
                    return false;
                };
                let last = match stream.get_info().await {
                    Ok(info) => info.state.last_sequence,
                    Err(_) => return false,
                };
                let Ok(consumer) = stream.get_consumer::<pull::Config>(durable).await else {
                    return false;
                };
                consumer.get_info().await.is_ok_and(|info| {
                    info.num_pending == 0
                        && info.num_ack_pending == 0
                        && info.ack_floor.stream_sequence >= last
                })
            })
            .await;
        }
    }

    /// Takes the next `size` events off the durable consumer `durable` and
    /// applies them as one batch, the way the running consumer applies the
    /// messages it has at hand; what became of each, in order.
    pub async fn apply_batch(&self, durable: &str, size: usize) -> Vec<Outcome> {
        let subjects = Subjects::new(&self.prefix);
        let spec = subjects
            .consumer_specs()
            .into_iter()
            .find(|spec| spec.durable == durable)
            .expect("one of analytics' consumers");
        let consumer = platform::consumer::durable_consumer(&self.jetstream, &spec)
            .await
            .expect("binding the durable consumer");
        let mut pulled = consumer
            .batch()
            .max_messages(size)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .expect("pulling messages");
        let mut messages = Vec::with_capacity(size);
        while let Some(message) = pulled.next().await {
            messages.push(message.expect("a message"));
        }
        assert_eq!(messages.len(), size, "the batch's events were published");
        platform::consumer::handle_batch(
            &self.db.pool,
            &spec,
            &FiguresHandler::new(subjects),
            &messages,
        )
        .await
    }

    /// How many transactions wrote these bookings (1: they were applied
    /// together, not one by one).
    pub async fn transactions_of(&self, bookings: &[&events_pb::BookingConfirmed]) -> i64 {
        let ids: Vec<Uuid> = bookings
            .iter()
            .map(|b| Uuid::parse_str(&b.booking_id).expect("a UUID booking id"))
            .collect();
        sqlx::query_scalar(
            "SELECT count(DISTINCT xmin::text) FROM bookings WHERE booking_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&self.db.pool)
        .await
        .expect("reading the bookings' transactions")
    }

    pub async fn dead_letters(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT consumer, error FROM dead_letters ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .expect("reading dead letters")
    }
}

/// Streams with JetStream's smallest duplicate window (100 ms), so a test
/// can deliver one event id twice, as a replay would.
async fn create_streams(prefix: &str) -> jetstream::Context {
    let jetstream = jetstream::new(
        platform::nats::connect(&test_support::nats_url())
            .await
            .expect("tests need NATS"),
    );
    for spec in platform::nats::event_streams(prefix) {
        jetstream
            .create_stream(stream::Config {
                name: spec.name,
                subjects: spec.subjects,
                duplicate_window: Duration::from_millis(100),
                ..Default::default()
            })
            .await
            .expect("creating a test stream");
    }
    jetstream
}

fn id_of(meta: Option<&events_pb::EventMeta>) -> Uuid {
    meta.and_then(|m| Uuid::parse_str(&m.event_id).ok())
        .expect("test events carry a UUID event id")
}

pub fn meta_at(at: DateTime<Utc>) -> Option<events_pb::EventMeta> {
    Some(events_pb::EventMeta {
        event_id: Uuid::new_v4().to_string(),
        occurred_at: Some(to_timestamp(at)),
    })
}

/// Noon UTC on 2026-11-`day`.
pub fn day(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
}

/// A showtime of one film, as bookings describe it.
#[derive(Clone)]
pub struct Show {
    pub showtime_id: Uuid,
    pub film_id: Uuid,
    pub film_title: &'static str,
    pub seats_offered: u32,
}

impl Show {
    pub fn new(film_id: Uuid, film_title: &'static str, seats_offered: u32) -> Self {
        Self {
            showtime_id: Uuid::new_v4(),
            film_id,
            film_title,
            seats_offered,
        }
    }

    /// A confirmed booking of `seats` seats for `amount_minor` INR, made at `at`.
    pub fn booking(
        &self,
        seats: &[&str],
        amount_minor: i64,
        at: DateTime<Utc>,
    ) -> events_pb::BookingConfirmed {
        events_pb::BookingConfirmed {
            meta: meta_at(at),
            booking_id: Uuid::new_v4().to_string(),
            reference: format!(
                "BMS-{}",
                &Uuid::new_v4().simple().to_string()[..6].to_uppercase()
            ),
            user_id: "u1".into(),
            user_email: "ada@example.com".into(),
            checkout_id: format!("chk_{}", Uuid::new_v4().simple()),
            showtime_id: self.showtime_id.to_string(),
            film_id: self.film_id.to_string(),
            film_title: self.film_title.into(),
            cinema_name: "Roxy".into(),
            cinema_time_zone: "Asia/Kolkata".into(),
            screen_name: "Screen 1".into(),
            starts_at: Some(to_timestamp(day(28) + chrono::Duration::hours(6))),
            seats: seats.iter().map(|s| (*s).to_owned()).collect(),
            amount_minor,
            currency: "INR".into(),
            seats_offered: self.seats_offered,
        }
    }
}

/// The refund of `booking` (same checkout), at `at`.
pub fn refund_of(
    booking: &events_pb::BookingConfirmed,
    amount_minor: i64,
    at: DateTime<Utc>,
) -> events_pb::RefundSucceeded {
    events_pb::RefundSucceeded {
        meta: meta_at(at),
        refund_id: format!("re_{}", Uuid::new_v4().simple()),
        checkout_id: booking.checkout_id.clone(),
        booking_reference: booking.reference.clone(),
        user_id: "u1".into(),
        user_email: "ada@example.com".into(),
        amount_minor,
        currency: booking.currency.clone(),
        reason: "requested by the customer".into(),
    }
}
