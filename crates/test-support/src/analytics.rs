//! [`spawn_analytics`]: the real analytics service on port 0 over its own
//! fresh database, consuming a test's streams (its events prefix), so the
//! figures it serves come from the events the other real services publish.

use std::net::SocketAddr;

use sqlx::PgPool;

use crate::{TestDb, nats_url};

/// A real analytics service running in this test process.
pub struct AnalyticsHandle {
    /// `http://127.0.0.1:PORT` of the gRPC server.
    pub url: String,
    pub address: SocketAddr,
    pub db: TestDb,
    /// The events prefix whose streams it consumes.
    pub prefix: String,
    shutdown: platform::Shutdown,
}

impl AnalyticsHandle {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

impl Drop for AnalyticsHandle {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts analytics consuming the streams of `prefix` (a seating's, say);
/// the streams themselves belong to whoever adopted them.
pub async fn spawn_analytics(prefix: &str) -> AnalyticsHandle {
    let db = TestDb::create("analytics").await;
    analytics::migrate(&db.pool)
        .await
        .expect("analytics migrations apply to a fresh database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let address = listener.local_addr().expect("bound address");
    let pool = platform::db::connect(&db.url, "ANALYTICS_DATABASE_URL", &Default::default())
        .await
        .expect("connecting analytics to its test database");
    let nats = platform::nats::connect(&nats_url())
        .await
        .expect("tests need NATS with JetStream (make test starts one)");
    let shutdown = platform::Shutdown::new();
    tokio::spawn(analytics::serve(
        listener,
        pool,
        nats,
        prefix.to_owned(),
        shutdown.clone(),
    ));
    AnalyticsHandle {
        url: format!("http://{address}"),
        address,
        db,
        prefix: prefix.to_owned(),
        shutdown,
    }
}
