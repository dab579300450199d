//! What every payments test starts from: a real catalog with the demo
//! programme, a real seating (with a clock the test moves), real payments
//! sharing seating's streams, and — for Stripe tests — the fake Stripe and a
//! webhook signer. Helpers read what happened: events on the PAYMENTS
//! stream, rows in either database, seat states.

use std::sync::Arc;

use async_nats::jetstream;
use chrono::{Duration as Span, Utc};
use proto::catalog::v1 as catalog_pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use proto::payments::v1 as pb;
use proto::payments::v1::payments_service_client::PaymentsServiceClient;
use proto::seating::v1 as seating_pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;
use proto::time::{from_timestamp, to_timestamp};
use seating::clock::ManualClock;
use serde_json::Value;
use test_support::payments::{PaymentsHandle, spawn_payments, stripe_settings};
use test_support::stripe::{FakeStripe, WebhookSigner, deliver, event};
use test_support::{CatalogHandle, SeatingHandle};
use tonic::transport::Channel;

pub use test_support::eventually;

pub const WEBHOOK_SECRET: &str = "whsec_test_current";

pub struct Fixture {
    pub _catalog: CatalogHandle,
    pub seating: SeatingHandle,
    pub payments: PaymentsHandle,
    pub stripe: Option<FakeStripe>,
    pub signer: WebhookSigner,
    pub client: PaymentsServiceClient<Channel>,
    pub seating_client: SeatingServiceClient<Channel>,
    pub clock: ManualClock,
    pub showtime_id: String,
    /// Price per category of the showtime, from catalog.
    pub prices: Vec<(String, i64)>,
    pub currency: String,
}

/// Which provider payments runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Stripe,
    Simulated,
}

pub async fn fixture(provider: Provider) -> Fixture {
    fixture_with(provider, |_| {}).await
}

pub async fn fixture_with(
    provider: Provider,
    adjust: impl FnOnce(&mut payments::Settings),
) -> Fixture {
    let now = Utc::now();
    let catalog = test_support::spawn_catalog_with_demo_programme(now).await;
    let (showtime_id, prices, currency) = pick_showtime(&catalog.url).await;
    let prefix = test_support::events_prefix();
    let clock = ManualClock::new(now);
    let seating = test_support::spawn_seating_with(
        &catalog.url,
        seating::Settings {
            seating_events_prefix: prefix,
            seating_sweep_interval_ms: 50,
            ..Default::default()
        },
        Arc::new(clock.clone()),
    )
    .await;
    let stripe = match provider {
        Provider::Stripe => Some(FakeStripe::start().await),
        Provider::Simulated => None,
    };
    let mut settings = match &stripe {
        Some(stripe) => stripe_settings(&stripe.url, WEBHOOK_SECRET),
        None => payments::Settings::default(),
    };
    adjust(&mut settings);
    let payments = spawn_payments(&catalog.url, &seating, settings).await;
    let client = payments.client().await;
    let seating_client = connect_seating(&seating.url).await;
    Fixture {
        _catalog: catalog,
        seating,
        payments,
        stripe,
        signer: WebhookSigner::new(WEBHOOK_SECRET),
        client,
        seating_client,
        clock,
        showtime_id,
        prices,
        currency,
    }
}

async fn connect_seating(url: &str) -> SeatingServiceClient<Channel> {
    for _ in 0..50 {
        if let Ok(client) = SeatingServiceClient::connect(url.to_owned()).await {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("seating does not answer at {url}");
}

/// A demo showtime at least three hours away (tests move seating's clock by
/// an hour at most), with its prices.
async fn pick_showtime(catalog_url: &str) -> (String, Vec<(String, i64)>, String) {
    let mut client = CatalogServiceClient::connect(catalog_url.to_owned())
        .await
        .expect("catalog answers");
    let films = client
        .list_films(catalog_pb::ListFilmsRequest::default())
        .await
        .expect("films")
        .into_inner()
        .films;
    let earliest = Utc::now() + Span::hours(3);
    for film in films {
        let days = client
            .list_film_showtimes(catalog_pb::ListFilmShowtimesRequest {
                film_id: film.id.clone(),
                from: Some(to_timestamp(earliest)),
                until: Some(to_timestamp(earliest + Span::days(7))),
            })
            .await
            .expect("showtimes")
            .into_inner()
            .days;
        let slot = days
            .iter()
            .flat_map(|d| d.cinemas.iter())
            .flat_map(|c| c.showtimes.iter())
            .find(|s| {
                s.starts_at
                    .as_ref()
                    .and_then(from_timestamp)
                    .is_some_and(|t| t > earliest)
            });
        if let Some(slot) = slot {
            let detail = client
                .get_showtime(catalog_pb::GetShowtimeRequest {
                    showtime_id: slot.showtime_id.clone(),
                })
                .await
                .expect("the showtime")
                .into_inner();
            let showtime = detail.showtime.expect("showtime details");
            let prices = showtime
                .prices
                .iter()
                .map(|p| (p.category.clone(), p.amount_minor))
                .collect();
            return (slot.showtime_id.clone(), prices, showtime.currency);
        }
    }
    panic!("the demo programme has no showtime three hours ahead");
}

impl Fixture {
    pub fn stripe(&self) -> &FakeStripe {
        self.stripe.as_ref().expect("a Stripe fixture")
    }

    /// The seats of the showtime in seat-map order, with their categories.
    pub async fn seat_map(&self) -> Vec<seating_pb::Seat> {
        self.seating_client
            .clone()
            .get_seat_map(seating_pb::GetSeatMapRequest {
                showtime_id: self.showtime_id.clone(),
                user_id: String::new(),
            })
            .await
            .expect("the seat map")
            .into_inner()
            .seats
    }

    pub async fn seat_state(&self, label: &str) -> seating_pb::SeatState {
        let seat = self
            .seat_map()
            .await
            .into_iter()
            .find(|s| s.label == label)
            .expect("the seat exists");
        seating_pb::SeatState::try_from(seat.state).expect("a known state")
    }

    /// Holds `labels` for `user`.
    pub async fn hold_seats(&self, user: &str, labels: &[&str]) -> seating_pb::Hold {
        self.seating_client
            .clone()
            .hold_seats(seating_pb::HoldSeatsRequest {
                showtime_id: self.showtime_id.clone(),
                seats: labels.iter().map(|l| (*l).to_owned()).collect(),
                user_id: user.into(),
            })
            .await
            .expect("the seats are held")
            .into_inner()
    }

    /// Holds the first seat of the map and the first seat of another
    /// category (when the hall has one): two price lines where possible.
    pub async fn hold(&self, user: &str) -> seating_pb::Hold {
        let seats = self.seat_map().await;
        let first = &seats[0];
        let second = seats
            .iter()
            .find(|s| s.category != first.category)
            .unwrap_or(&seats[1]);
        self.hold_seats(user, &[&first.label, &second.label]).await
    }

    /// What the hold must cost, computed here from catalog's prices.
    pub fn expected_amount(&self, hold: &seating_pb::Hold) -> i64 {
        hold.seats
            .iter()
            .map(|seat| {
                self.prices
                    .iter()
                    .find(|(c, _)| c == &seat.category)
                    .map(|(_, p)| *p)
                    .expect("a price for every category")
            })
            .sum()
    }

    pub async fn checkout(
        &self,
        hold: &seating_pb::Hold,
        user: &str,
    ) -> Result<pb::Checkout, tonic::Status> {
        self.client
            .clone()
            .create_checkout(pb::CreateCheckoutRequest {
                hold_id: hold.id.clone(),
                user_id: user.into(),
                customer_email: format!("{user}@example.com"),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_checkout(
        &self,
        session_id: &str,
        user: &str,
    ) -> Result<pb::Checkout, tonic::Status> {
        self.client
            .clone()
            .get_checkout(pb::GetCheckoutRequest {
                session_id: session_id.into(),
                user_id: user.into(),
                wait_for_booking_ms: 0,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Delivers a correctly signed event about `object`.
    pub async fn send_event(&self, kind: &str, object: &Value) -> (u16, String) {
        let payload = event(kind, object);
        self.send_payload(&payload).await
    }

    pub async fn send_payload(&self, payload: &str) -> (u16, String) {
        let signature = self.signer.header(payload);
        deliver(&self.payments.webhook_url(), Some(&signature), payload).await
    }

    /// Counts rows in payments' database.
    pub async fn count(&self, sql: &str) -> i64 {
        count(self.payments.pool(), sql).await
    }

    pub async fn checkout_status(&self, session_id: &str, user: &str) -> pb::CheckoutStatus {
        let checkout = self
            .get_checkout(session_id, user)
            .await
            .expect("the checkout");
        pb::CheckoutStatus::try_from(checkout.status).expect("a known status")
    }

    /// Waits until payments' outbox has been relayed.
    pub async fn outbox_relayed(&self) {
        eventually("payments' outbox is relayed", || async {
            platform::outbox::backlog(self.payments.pool())
                .await
                .expect("the backlog")
                == 0
        })
        .await;
    }

    /// The subjects on the test's PAYMENTS stream, in order, with payloads.
    pub async fn payments_events(&self) -> Vec<(String, Vec<u8>)> {
        self.outbox_relayed().await;
        let jetstream = jetstream::new(
            platform::nats::connect(&test_support::nats_url())
                .await
                .expect("NATS"),
        );
        let name = format!("{}_PAYMENTS", self.seating.prefix.to_uppercase());
        let mut stream = jetstream.get_stream(&name).await.expect("the stream");
        let info = stream.info().await.expect("stream info");
        let mut events = Vec::new();
        for sequence in info.state.first_sequence..=info.state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                events.push((message.subject.to_string(), message.payload.to_vec()));
            }
        }
        events
    }

    /// How many events of `subject` (unprefixed) are on the PAYMENTS stream.
    pub async fn events_on(&self, subject: &str) -> Vec<Vec<u8>> {
        let full = platform::nats::subject(&self.seating.prefix, subject);
        self.payments_events()
            .await
            .into_iter()
            .filter(|(s, _)| *s == full)
            .map(|(_, p)| p)
            .collect()
    }

    /// The booking reference seating made for a checkout, once it has.
    pub async fn booking_reference(&self, checkout_id: &str) -> String {
        for _ in 0..300 {
            let reference: Option<String> =
                sqlx::query_scalar("SELECT reference FROM bookings WHERE checkout_id = $1")
                    .bind(checkout_id)
                    .fetch_optional(self.seating.pool())
                    .await
                    .expect("reading bookings");
            if let Some(reference) = reference {
                return reference;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("seating did not book checkout {checkout_id} within 30 s");
    }

    pub async fn seating_bookings(&self) -> i64 {
        count(self.seating.pool(), "SELECT count(*) FROM bookings").await
    }
}

pub async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("counting")
}
