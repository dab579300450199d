//! What every seating test starts from: a real catalog with one showtime on
//! a small hall, a real seating service with a clock the test moves, and
//! helpers to read the seat map and publish payment events.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Duration as Span, TimeZone as _, Utc};
use prost::Message as _;
use proto::catalog::v1 as catalog_pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use proto::seating::v1 as pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;
use proto::time::to_timestamp;
use seating::clock::ManualClock;
use test_support::{CatalogHandle, SeatingHandle};
use tonic::transport::Channel;

pub type Client = SeatingServiceClient<Channel>;

pub struct Fixture {
    // Kept alive for the test's duration.
    pub _catalog: CatalogHandle,
    pub seating: SeatingHandle,
    pub client: Client,
    pub clock: ManualClock,
    pub showtime_id: String,
    pub starts_at: DateTime<Utc>,
}

/// Rows A–D of 8 seats ("standard"), row E of 8 ("premium"): 40 seats.
fn small_hall() -> catalog_pb::SeatLayout {
    catalog_pb::SeatLayout {
        rows: ["A", "B", "C", "D", "E"]
            .iter()
            .map(|label| catalog_pb::SeatRow {
                label: (*label).into(),
                seats: 8,
                category: if *label == "E" { "premium" } else { "standard" }.into(),
            })
            .collect(),
        aisles_after: vec![4],
    }
}

/// Two days from now at 18:00 UTC: far enough that the tests' clock moves
/// (hours at most) never reach it unless they mean to.
fn start_time() -> DateTime<Utc> {
    let day = (Utc::now() + Span::days(2)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(18, 0, 0).expect("a valid time"))
}

/// Creates a film, cinema, screen and showtime through catalog's staff calls.
pub async fn create_showtime(catalog_url: &str) -> (String, DateTime<Utc>) {
    let mut client = CatalogServiceClient::connect(catalog_url.to_owned())
        .await
        .expect("catalog answers");
    let film = client
        .create_film(catalog_pb::CreateFilmRequest {
            film: Some(catalog_pb::FilmInput {
                title: "Metropolis".into(),
                synopsis: "A city of the future.".into(),
                genres: vec!["sci-fi".into()],
                language: "de".into(),
                duration_minutes: 120,
                certificate: "U".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("film created")
        .into_inner();
    let cinema = client
        .create_cinema(catalog_pb::CreateCinemaRequest {
            cinema: Some(catalog_pb::CinemaInput {
                name: "Roxy".into(),
                city: "Bengaluru".into(),
                address: "1 Test Road".into(),
                time_zone: "Asia/Kolkata".into(),
            }),
        })
        .await
        .expect("cinema created")
        .into_inner();
    let screen = client
        .create_screen(catalog_pb::CreateScreenRequest {
            cinema_id: cinema.id,
            name: "Screen 1".into(),
            layout: Some(small_hall()),
        })
        .await
        .expect("screen created")
        .into_inner();
    let starts_at = start_time();
    let showtime = client
        .create_showtime(catalog_pb::CreateShowtimeRequest {
            showtime: Some(catalog_pb::ShowtimeInput {
                film_id: film.id,
                screen_id: screen.id,
                starts_at: Some(to_timestamp(starts_at)),
                currency: "INR".into(),
                prices: vec![
                    catalog_pb::Price {
                        category: "standard".into(),
                        amount_minor: 25_000,
                    },
                    catalog_pb::Price {
                        category: "premium".into(),
                        amount_minor: 40_000,
                    },
                ],
            }),
        })
        .await
        .expect("showtime created")
        .into_inner();
    (showtime.id, starts_at)
}

/// Streams of the test's own with the smallest duplicate window JetStream
/// allows (100 ms), so a test can deliver one event id several times, as a
/// replay would. Created before seating starts (which leaves existing
/// streams as they are).
pub async fn create_streams(prefix: &str) -> jetstream::Context {
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

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub async fn fixture_with(adjust: impl FnOnce(&mut seating::Settings)) -> Fixture {
    let catalog = test_support::spawn_catalog().await;
    let (showtime_id, starts_at) = create_showtime(&catalog.url).await;
    let prefix = test_support::events_prefix();
    create_streams(&prefix).await;
    let mut settings = seating::Settings {
        seating_events_prefix: prefix,
        seating_sweep_interval_ms: 50,
        ..Default::default()
    };
    adjust(&mut settings);
    let clock = ManualClock::new(Utc::now());
    let seating =
        test_support::spawn_seating_with(&catalog.url, settings, Arc::new(clock.clone())).await;
    let client = connect(&seating.url).await;
    Fixture {
        _catalog: catalog,
        seating,
        client,
        clock,
        showtime_id,
        starts_at,
    }
}

pub async fn connect(url: &str) -> Client {
    for _ in 0..50 {
        if let Ok(client) = SeatingServiceClient::connect(url.to_owned()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("seating does not answer at {url}");
}

pub fn labels(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

impl Fixture {
    pub fn clock_now(&self) -> DateTime<Utc> {
        use seating::clock::Clock as _;
        self.clock.now()
    }

    pub async fn hold(&self, user: &str, seats: &[&str]) -> Result<pb::Hold, tonic::Status> {
        self.client
            .clone()
            .hold_seats(pb::HoldSeatsRequest {
                showtime_id: self.showtime_id.clone(),
                seats: labels(seats),
                user_id: user.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn seat_map(&self, user: &str) -> pb::SeatMap {
        self.client
            .clone()
            .get_seat_map(pb::GetSeatMapRequest {
                showtime_id: self.showtime_id.clone(),
                user_id: user.into(),
            })
            .await
            .expect("the seat map")
            .into_inner()
    }

    /// Labels in `state`, in seat-map order.
    pub async fn seats_in(&self, state: pb::SeatState) -> Vec<String> {
        self.seat_map("")
            .await
            .seats
            .into_iter()
            .filter(|s| s.state == state as i32)
            .map(|s| s.label)
            .collect()
    }

    pub async fn get_hold(&self, hold_id: &str) -> pb::Hold {
        self.client
            .clone()
            .get_hold(pb::GetHoldRequest {
                hold_id: hold_id.into(),
            })
            .await
            .expect("the hold")
            .into_inner()
    }

    /// A connection of the test's own (the service has its own).
    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(
            platform::nats::connect(&test_support::nats_url())
                .await
                .expect("NATS"),
        )
    }

    pub fn subject(&self, subject: &str) -> String {
        platform::nats::subject(&self.seating.prefix, subject)
    }

    /// Publishes a protobuf event with `Nats-Msg-Id` = `event_id`.
    pub async fn publish(
        &self,
        jetstream: &jetstream::Context,
        subject: &str,
        event_id: uuid::Uuid,
        payload: Vec<u8>,
    ) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event_id.to_string().as_str());
        jetstream
            .publish_with_headers(self.subject(subject), headers, payload.into())
            .await
            .expect("publishing")
            .await
            .expect("JetStream acknowledges");
    }

    /// The events on the test's BOOKINGS stream, decoded by subject.
    pub async fn bookings_events(&self, jetstream: &jetstream::Context) -> Vec<(String, Vec<u8>)> {
        let name = format!("{}_BOOKINGS", self.seating.prefix.to_uppercase());
        let mut stream = jetstream.get_stream(&name).await.expect("the stream");
        let count = stream.info().await.expect("stream info").state.messages;
        let mut events = Vec::new();
        for sequence in 1..=count {
            let message = stream
                .get_raw_message(sequence)
                .await
                .expect("a stored message");
            events.push((message.subject.to_string(), message.payload.to_vec()));
        }
        events
    }

    /// Waits until the seating consumer has acknowledged everything published
    /// to the PAYMENTS stream so far.
    pub async fn payments_consumed(&self, jetstream: &jetstream::Context) {
        let name = format!("{}_PAYMENTS", self.seating.prefix.to_uppercase());
        eventually("the consumer has handled every payment event", || async {
            let Ok(mut stream) = jetstream.get_stream(&name).await else {
                return false;
            };
            let Ok(info) = stream.info().await else {
                return false;
            };
            let last = info.state.last_sequence;
            let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(
                    seating::events::PAYMENTS_CONSUMER,
                )
                .await
            else {
                return false;
            };
            match consumer.info().await {
                Ok(info) => info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0,
                Err(_) => false,
            }
        })
        .await;
    }
}

impl Fixture {
    /// Waits until seating's refund consumer has acknowledged every
    /// `payments.refund.succeeded` published so far. (Its filter takes only
    /// refunds, so "nothing pending, nothing unacknowledged" is the measure,
    /// not the stream's last sequence.)
    pub async fn refunds_consumed(&self, jetstream: &jetstream::Context) {
        let name = format!("{}_PAYMENTS", self.seating.prefix.to_uppercase());
        eventually("the consumer has handled every refund event", || async {
            let Ok(stream) = jetstream.get_stream(&name).await else {
                return false;
            };
            let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(
                    seating::events::REFUNDS_CONSUMER,
                )
                .await
            else {
                return false;
            };
            match consumer.info().await {
                Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
                Err(_) => false,
            }
        })
        .await;
    }

    /// The seat map's version: every committed change of the showtime's
    /// seats raises it, so an unchanged version means nothing was written.
    pub async fn seat_map_version(&self) -> u64 {
        self.seat_map("").await.version
    }
}

pub fn unavailable_seats(status: &tonic::Status) -> Vec<String> {
    pb::SeatsUnavailable::decode(status.details())
        .expect("SeatsUnavailable in the status details")
        .seats
}

pub use test_support::eventually;

pub async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("counting")
}
