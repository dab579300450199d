//! [`spawn_payments`]: the real payments service on port 0 (gRPC and HTTP)
//! over its own fresh database, sharing a test's seating streams (its events
//! prefix), talking to a real catalog and seating — and, when the test
//! passes one, to a [`crate::stripe::FakeStripe`] instead of Stripe.

use std::net::SocketAddr;

use proto::payments::v1::payments_service_client::PaymentsServiceClient;
use sqlx::PgPool;
use tonic::transport::Channel;

use crate::{SeatingHandle, TestDb, nats_url};

/// A real payments service running in this test process.
pub struct PaymentsHandle {
    /// `http://127.0.0.1:PORT` of the gRPC server.
    pub grpc_url: String,
    /// `http://127.0.0.1:PORT` of the HTTP server (webhook, simulated page).
    pub http_url: String,
    pub grpc_address: SocketAddr,
    pub db: TestDb,
    /// The public base URL success and cancel redirects start with.
    pub public_base_url: String,
    pub settings: payments::Settings,
    shutdown: platform::Shutdown,
}

impl PaymentsHandle {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// `{http_url}/webhooks/stripe`.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/stripe", self.http_url)
    }

    /// A gRPC client, retried until the server answers.
    pub async fn client(&self) -> PaymentsServiceClient<Channel> {
        for _ in 0..50 {
            if let Ok(client) = PaymentsServiceClient::connect(self.grpc_url.clone()).await {
                return client;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("payments does not answer at {}", self.grpc_url);
    }
}

impl Drop for PaymentsHandle {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The public base URL tests give payments (the gateway's, in production).
pub const TEST_PUBLIC_BASE_URL: &str = "http://gateway.test";

/// Starts payments next to `seating` (same events prefix) with `settings`;
/// the events prefix and public URL are filled in here.
pub async fn spawn_payments(
    catalog_url: &str,
    seating: &SeatingHandle,
    settings: payments::Settings,
) -> PaymentsHandle {
    spawn_payments_for(catalog_url, seating, settings, TEST_PUBLIC_BASE_URL).await
}

/// [`spawn_payments`] for a gateway at `public_base_url`: Stripe (or the
/// simulated provider) sends buyers back there.
pub async fn spawn_payments_for(
    catalog_url: &str,
    seating: &SeatingHandle,
    mut settings: payments::Settings,
    public_base_url: &str,
) -> PaymentsHandle {
    let db = TestDb::create("payments").await;
    payments::migrate(&db.pool)
        .await
        .expect("payments migrations apply to a fresh database");
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let grpc_address = grpc_listener.local_addr().expect("bound address");
    let http_address = http_listener.local_addr().expect("bound address");
    let http_url = format!("http://{http_address}");
    settings.payments_events_prefix = seating.prefix.clone();
    settings.payments_public_url = http_url.clone();
    let grpc = platform::config::GrpcClientArgs::default();
    let catalog = platform::grpc::channel(catalog_url, "catalog_url", &grpc).expect("a valid URL");
    let seating_channel =
        platform::grpc::channel(&seating.url, "seating_url", &grpc).expect("a valid URL");
    let nats = platform::nats::connect(&nats_url())
        .await
        .expect("tests need NATS with JetStream (make test starts one)");
    let pool = platform::db::connect(&db.url, "PAYMENTS_DATABASE_URL", &Default::default())
        .await
        .expect("connecting payments to its test database");
    let shutdown = platform::Shutdown::new();
    tokio::spawn(payments::serve(
        grpc_listener,
        http_listener,
        pool,
        payments::Peers {
            catalog,
            seating: seating_channel,
            nats,
            public_base_url: public_base_url.to_owned(),
        },
        settings.clone(),
        shutdown.clone(),
    ));
    PaymentsHandle {
        grpc_url: format!("http://{grpc_address}"),
        http_url,
        grpc_address,
        db,
        public_base_url: public_base_url.to_owned(),
        settings,
        shutdown,
    }
}

/// Settings for payments against a fake Stripe at `stripe_url`, with one
/// webhook secret.
pub fn stripe_settings(stripe_url: &str, webhook_secret: &str) -> payments::Settings {
    payments::Settings {
        stripe_secret_key: Some("sk_test_bookmyseat".into()),
        stripe_webhook_secret: webhook_secret.into(),
        stripe_api_base: stripe_url.into(),
        stripe_timeout_ms: 1_000,
        ..Default::default()
    }
}
