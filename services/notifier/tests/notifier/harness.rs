//! What every notifier test starts from: the real notifier over a fresh
//! database, streams of the test's own, and either a real SMTP server
//! (aiosmtpd) or an outbox folder; plus events to publish and a parser for
//! what arrived.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, stream};
use chrono::{DateTime, TimeZone as _, Utc};
use mail_parser::{MessageParser, MimeHeaders as _};
use notifier::Settings;
use platform::Shutdown;
use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use test_support::{TestDb, TestStreams};
use uuid::Uuid;

/// A running notifier and what a test needs to talk to it.
pub struct Notifier {
    pub db: TestDb,
    pub jetstream: jetstream::Context,
    pub prefix: String,
    pub outbox: PathBuf,
    smtp_url: Option<String>,
    /// `SMTP_CA_FILE`: set before a restart to trust a private CA.
    pub smtp_ca_file: Option<PathBuf>,
    settings: Settings,
    shutdown: Shutdown,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _streams: TestStreams,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shutdown.trigger();
        let _ = std::fs::remove_dir_all(&self.outbox);
    }
}

/// Retries fast enough for a test: 50 ms doubling to 200 ms.
pub fn quick_settings(attempts: u32) -> Settings {
    Settings {
        notifier_smtp_attempts: attempts,
        notifier_smtp_backoff_ms: 50,
        notifier_smtp_max_backoff_ms: 200,
        notifier_smtp_timeout_ms: 5_000,
        ..Default::default()
    }
}

/// Starts the notifier sending to `smtp_url` (or, with `None`, writing to an
/// outbox folder of the test's own).
pub async fn start(smtp_url: Option<String>, settings: Settings) -> Notifier {
    start_trusting(smtp_url, None, settings).await
}

/// [`start`] with `SMTP_CA_FILE` set to `ca_file`.
pub async fn start_trusting(
    smtp_url: Option<String>,
    ca_file: Option<PathBuf>,
    mut settings: Settings,
) -> Notifier {
    let db = TestDb::create("notifier").await;
    notifier::migrate(&db.pool)
        .await
        .expect("notifier migrations apply to a fresh database");
    let prefix = test_support::events_prefix();
    let streams = TestStreams::adopt(&prefix).await;
    let jetstream = create_streams(&prefix).await;
    settings.notifier_events_prefix = prefix.clone();
    let outbox = std::env::temp_dir().join(format!("bookmyseat-outbox-{}", Uuid::new_v4()));
    let mut notifier = Notifier {
        db,
        jetstream,
        prefix,
        outbox,
        smtp_url,
        smtp_ca_file: ca_file,
        settings,
        shutdown: Shutdown::new(),
        running: None,
        _streams: streams,
    };
    notifier.launch().await;
    notifier
}

/// Streams of the test's own with the smallest duplicate window JetStream
/// allows (100 ms), so a test can deliver one event id twice, as a replay
/// would. Created before the notifier starts (which leaves them as they are).
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

impl Notifier {
    /// Starts the service over this notifier's database, streams and mail
    /// transport, as a fresh process would.
    async fn launch(&mut self) {
        let mailer = notifier::mailer::Mailer::new(
            self.smtp_url.as_deref(),
            self.smtp_ca_file.as_deref(),
            self.outbox.clone(),
            &self.settings,
        )
        .expect("a usable mail transport");
        let from =
            notifier::parse_from("BookMySeat <tickets@bookmyseat.test>").expect("a valid From");
        // The service gets a pool of its own, as it would in production.
        let pool = platform::db::connect(
            &self.db.url,
            "NOTIFIER_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.settings.notifier_db_pool_size,
                ..Default::default()
            },
        )
        .await
        .expect("connecting the notifier to its test database");
        let nats = platform::nats::connect(&test_support::nats_url())
            .await
            .expect("tests need NATS with JetStream (make test starts one)");
        self.shutdown = Shutdown::new();
        self.running = Some(tokio::spawn(notifier::serve(
            pool,
            nats,
            mailer,
            from,
            self.settings.clone(),
            self.shutdown.clone(),
        )));
    }

    /// Stops the service as SIGTERM would (it finishes what it holds) and
    /// starts it again.
    pub async fn restart(&mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("the notifier task")
                .expect("the notifier stops cleanly");
        }
        self.launch().await;
    }

    /// Publishes an event the way the outbox relay does: `Nats-Msg-Id` and
    /// the event-type header.
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

    pub async fn publish_confirmed(&self, event: &events_pb::BookingConfirmed) -> Uuid {
        let id = event_id(event.meta.as_ref());
        self.publish(
            "bookings.confirmed",
            id,
            "bookmyseat.events.v1.BookingConfirmed",
            prost::Message::encode_to_vec(event),
        )
        .await;
        id
    }

    /// The delivery recorded for `event_id`.
    pub async fn delivery(&self, event_id: Uuid) -> Option<notifier::store::DeliveryRecord> {
        notifier::store::delivery(&self.db.pool, event_id)
            .await
            .expect("reading a delivery")
    }

    /// The delivery of `event_id` once it is recorded as sent: the email
    /// reaches the sink a moment before its "sent" row commits.
    pub async fn sent_delivery(&self, event_id: Uuid) -> notifier::store::DeliveryRecord {
        test_support::eventually("the delivery is recorded as sent", || async {
            self.delivery(event_id)
                .await
                .is_some_and(|d| d.status == "sent")
        })
        .await;
        self.delivery(event_id).await.expect("recorded")
    }

    /// Dead letters of one consumer, as (event id, error).
    pub async fn dead_letters(&self, consumer: &str) -> Vec<(Option<String>, String)> {
        sqlx::query_as("SELECT event_id, error FROM dead_letters WHERE consumer = $1 ORDER BY id")
            .bind(consumer)
            .fetch_all(&self.db.pool)
            .await
            .expect("reading dead letters")
    }

    /// Waits until `durable` has acknowledged every message in its stream:
    /// nothing more will happen for what was published so far.
    pub async fn wait_until_consumed(&self, stream_domain: &str, durable: &str) {
        let name = platform::nats::event_streams(&self.prefix)
            .into_iter()
            .find(|s| s.name.ends_with(&stream_domain.to_uppercase()))
            .expect("a known stream")
            .name;
        test_support::eventually(&format!("{durable} acknowledging everything"), || async {
            let Ok(stream) = self.jetstream.get_stream(&name).await else {
                return false;
            };
            let Ok(consumer) = stream.get_consumer::<pull::Config>(durable).await else {
                return false;
            };
            let Ok(info) = consumer.get_info().await else {
                return false;
            };
            let last = stream
                .get_info()
                .await
                .map(|i| i.state.last_sequence)
                .unwrap_or(u64::MAX);
            info.num_pending == 0
                && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence >= last
        })
        .await;
    }

    /// The `.eml` files in the outbox folder.
    pub fn outbox_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.outbox)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

fn event_id(meta: Option<&events_pb::EventMeta>) -> Uuid {
    meta.and_then(|m| Uuid::parse_str(&m.event_id).ok())
        .expect("test events carry a UUID event id")
}

pub fn meta(id: Uuid) -> Option<events_pb::EventMeta> {
    Some(events_pb::EventMeta {
        event_id: id.to_string(),
        occurred_at: Some(to_timestamp(Utc::now())),
    })
}

/// 28 November 2026, 18:00 UTC: 23:30 in Kolkata.
pub fn showtime() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 18, 0, 0).unwrap()
}

pub fn booking_confirmed(reference: &str) -> events_pb::BookingConfirmed {
    events_pb::BookingConfirmed {
        meta: meta(Uuid::new_v4()),
        booking_id: Uuid::new_v4().to_string(),
        reference: reference.into(),
        user_id: Uuid::new_v4().to_string(),
        user_email: "ada@example.com".into(),
        checkout_id: Uuid::new_v4().to_string(),
        showtime_id: Uuid::new_v4().to_string(),
        film_id: Uuid::new_v4().to_string(),
        film_title: "Metropolis".into(),
        cinema_name: "Roxy".into(),
        cinema_time_zone: "Asia/Kolkata".into(),
        screen_name: "Screen 1".into(),
        starts_at: Some(to_timestamp(showtime())),
        seats: vec!["E3".into(), "E4".into()],
        amount_minor: 80_000,
        currency: "INR".into(),
        seats_offered: 40,
    }
}

/// One received email, parsed.
pub struct Received {
    pub raw: Vec<u8>,
}

impl Received {
    pub fn parse(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .expect("a parsable email")
    }

    pub fn subject(&self) -> String {
        self.parse().subject().unwrap_or_default().to_owned()
    }

    pub fn to(&self) -> String {
        self.parse()
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn text(&self) -> String {
        let message = self.parse();
        let part = message.text_part(0).expect("a text/plain part");
        assert!(
            part.is_content_type("text", "plain"),
            "the text part is text/plain"
        );
        message.body_text(0).expect("a text body").into_owned()
    }

    pub fn html(&self) -> String {
        let message = self.parse();
        let part = message.html_part(0).expect("a text/html part");
        assert!(
            part.is_content_type("text", "html"),
            "the html part is text/html"
        );
        message.body_html(0).expect("an html body").into_owned()
    }

    /// Every attachment or inline part as (content type, name, content id,
    /// bytes).
    pub fn enclosures(&self) -> Vec<(String, String, Option<String>, Vec<u8>)> {
        let message = self.parse();
        message
            .attachments()
            .map(|part| {
                let content_type = part
                    .content_type()
                    .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default()))
                    .unwrap_or_default();
                (
                    content_type,
                    part.attachment_name().unwrap_or_default().to_owned(),
                    part.content_id().map(str::to_owned),
                    part.contents().to_vec(),
                )
            })
            .collect()
    }

    /// The raw message as text (headers, MIME structure).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// What the SMTP sink has received, parsed.
pub fn received(sink: &test_support::smtp::SmtpSink) -> Vec<Received> {
    sink.messages()
        .into_iter()
        .map(|raw| Received { raw })
        .collect()
}

/// Waits until the sink holds `count` messages and returns them.
pub async fn wait_for_mail(sink: &test_support::smtp::SmtpSink, count: usize) -> Vec<Received> {
    test_support::eventually(&format!("{count} email(s) arriving"), || async {
        sink.count() >= count
    })
    .await;
    received(sink)
}
