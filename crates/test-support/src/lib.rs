//! The one place tests learn how to stand up real parts.
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test, dropped afterwards, so
//!   tests run in parallel without seeing each other's rows.
//! - [`spawn_catalog`]: the real catalog gRPC service on port 0 over its own
//!   database, optionally with the demo programme.
//! - [`spawn_seating`]: the real seating service on port 0 over its own
//!   database, with its own JetStream streams (a test prefix), talking to a
//!   real catalog and a real NATS.
//! - [`payments::spawn_payments`]: the real payments service beside a
//!   seating, and [`stripe::FakeStripe`], the Stripe-shaped server it talks
//!   to in tests, with the webhook signer.
//! - [`analytics::spawn_analytics`]: the real analytics service consuming a
//!   test's streams.
//! - [`otlp::OtlpReceiver`]: an OTLP/gRPC trace receiver that keeps every
//!   span services export to it.
//!
//! Nothing here mocks a service: if PostgreSQL is not reachable the test
//! fails and says how to start it (`make test` does).

pub mod analytics;
pub mod nats;
pub mod otlp;
pub mod payments;
pub mod smtp;
pub mod stripe;

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection, PgPool};

/// The server tests create their databases on. Override with
/// `TEST_DATABASE_URL` (any database on the server; `postgres` is used for
/// administration).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates an empty database named after `purpose` and a random suffix.
    pub async fn create(purpose: &str) -> TestDb {
        let admin = admin_url();
        let mut connection = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "tests need PostgreSQL at {admin} (set TEST_DATABASE_URL to use another); \
                 `make test` starts one. Error: {e}"
            )
        });
        sweep_abandoned_databases(&mut connection).await;
        let mut suffix = uuid::Uuid::new_v4().simple().to_string();
        suffix.truncate(12);
        let name = format!("test_{purpose}_{}_{suffix}", unix_seconds());
        sqlx::query(&format!(
            "CREATE DATABASE {}",
            platform::db::quote_identifier(&name)
        ))
        .execute(&mut connection)
        .await
        .expect("creating a test database");
        let url = replace_database(&admin, &name);
        let pool = platform::db::connect(&url, "TEST_DATABASE_URL", &Default::default())
            .await
            .expect("connecting to the fresh test database");
        TestDb { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Not waiting for the pool to close: the tasks holding its
        // connections (servers the test started) run on the test's runtime,
        // which is blocked in this drop — a deadlock. `WITH (FORCE)` ends
        // those connections instead. A database left behind is swept later.
        let name = self.name.clone();
        let admin = admin_url();
        run_cleanup(std::time::Duration::from_secs(30), async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    platform::db::quote_identifier(&name)
                ))
                .execute(&mut connection)
                .await;
            }
        });
    }
}

/// Runs async cleanup from a `Drop`, which has no async context it can rely
/// on (the test's runtime may be the one blocked in the drop): on a plain
/// thread with a runtime of its own, bounded by `limit`.
fn run_cleanup(limit: std::time::Duration, cleanup: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        // The timer has to be made inside the runtime.
        runtime.block_on(async move {
            let _ = tokio::time::timeout(limit, cleanup).await;
        });
    })
    .join();
}

/// Waits (bounded: 30 s) until `check` holds — for effects that arrive
/// asynchronously (an event consumed, an outbox drained). Asserts behaviour,
/// not timing: the bound only turns a hang into a failure.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s");
}

/// Test databases older than this were left by a run that was killed before
/// its cleanup; no test lives this long.
const ABANDONED_AFTER_SECS: u64 = 2 * 60 * 60;

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drops test databases abandoned by killed runs (their names carry their
/// creation time), once per test process.
async fn sweep_abandoned_databases(connection: &mut PgConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .fetch_all(&mut *connection)
            .await
            .unwrap_or_default();
    let cutoff = unix_seconds().saturating_sub(ABANDONED_AFTER_SECS);
    for name in names {
        let created = name
            .rsplit('_')
            .nth(1)
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| created < cutoff) {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                platform::db::quote_identifier(&name)
            ))
            .execute(&mut *connection)
            .await;
        }
    }
}

/// `postgres://user@host:port/any` → the same server, database `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A real catalog service running in this test process.
pub struct CatalogHandle {
    /// `http://127.0.0.1:PORT`, what a gRPC client or the gateway dials.
    pub url: String,
    pub address: SocketAddr,
    pub db: TestDb,
    shutdown: platform::Shutdown,
}

impl CatalogHandle {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

impl Drop for CatalogHandle {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts catalog on port 0 over a fresh, migrated, empty database.
pub async fn spawn_catalog() -> CatalogHandle {
    let db = TestDb::create("catalog").await;
    platform::db::migrate(&db.pool, &catalog::MIGRATOR)
        .await
        .expect("catalog migrations apply to a fresh database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let address = listener.local_addr().expect("bound address");
    let shutdown = platform::Shutdown::new();
    tokio::spawn(catalog::serve(
        listener,
        db.pool.clone(),
        Default::default(),
        shutdown.clone(),
    ));
    CatalogHandle {
        url: format!("http://{address}"),
        address,
        db,
        shutdown,
    }
}

/// Starts catalog with the demo programme seeded as of `now`.
pub async fn spawn_catalog_with_demo_programme(now: DateTime<Utc>) -> CatalogHandle {
    let handle = spawn_catalog().await;
    catalog::seed::demo_programme(handle.pool(), now)
        .await
        .expect("seeding the demo programme");
    handle
}

/// A TCP port on 127.0.0.1 that nothing listens on, for a server a test
/// starts a moment later (often in another process). Port 0's answer comes
/// from the kernel's ephemeral range, where any outgoing connection may take
/// it before the server binds it; under load tests that happens. So the port
/// is picked below that range (and above the well-known services' ports),
/// checked free, and never handed out twice by one test process.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (20_000u16, ephemeral_low.max(21_000));
    for _ in 0..2_000 {
        let port = low + (uuid::Uuid::new_v4().as_u128() % u128::from(high - low)) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free TCP port between {low} and {high} on 127.0.0.1");
}

/// The NATS server tests use: `NATS_URL`, or the local default.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A stream/subject prefix of a test's own (`t<uuid>`), so parallel tests
/// never share a JetStream stream or consumer.
pub fn events_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// The JetStream streams of one test prefix, deleted when the last owner
/// drops them (a replica shares its primary's).
pub struct TestStreams {
    pub prefix: String,
}

impl TestStreams {
    /// Takes ownership of the streams `prefix` names; sweeps streams that
    /// killed runs left behind, once per test process.
    pub async fn adopt(prefix: &str) -> TestStreams {
        sweep_abandoned_streams().await;
        TestStreams {
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for TestStreams {
    fn drop(&mut self) {
        let names: Vec<String> = platform::nats::event_streams(&self.prefix)
            .into_iter()
            .map(|spec| spec.name)
            .collect();
        run_cleanup(std::time::Duration::from_secs(10), async move {
            if let Ok(client) = async_nats::connect(nats_url()).await {
                let jetstream = async_nats::jetstream::new(client);
                for name in names {
                    let _ = jetstream.delete_stream(&name).await;
                }
            }
        });
    }
}

/// Whether a stream name is one `events_prefix` made (`T<32 hex>_…`).
fn is_test_stream(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 34
        && bytes[0] == b'T'
        && bytes[1..33].iter().all(u8::is_ascii_hexdigit)
        && bytes[33] == b'_'
}

/// Deletes test streams older than two hours (a killed run's), once per
/// process, so the shared NATS server does not fill up with them.
async fn sweep_abandoned_streams() {
    use futures::TryStreamExt as _;
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(client) = async_nats::connect(nats_url()).await else {
        return;
    };
    let jetstream = async_nats::jetstream::new(client);
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let Ok(infos) = jetstream.streams().try_collect::<Vec<_>>().await else {
        return;
    };
    for info in infos {
        if is_test_stream(&info.config.name) && info.created < cutoff {
            let _ = jetstream.delete_stream(&info.config.name).await;
        }
    }
}

/// A real seating service running in this test process.
pub struct SeatingHandle {
    /// `http://127.0.0.1:PORT`, what a gRPC client dials.
    pub url: String,
    pub address: SocketAddr,
    /// The database; shared by every instance started with
    /// [`SeatingHandle::spawn_replica`].
    pub db: std::sync::Arc<TestDb>,
    /// The prefix of its streams and subjects.
    pub prefix: String,
    /// Its streams, deleted with the last instance.
    pub streams: std::sync::Arc<TestStreams>,
    pub settings: seating::Settings,
    catalog_url: String,
    shutdown: platform::Shutdown,
}

impl SeatingHandle {
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Locks this seating's `seats` table until [`SeatsLocked::unlock`]:
    /// every seat-map query then waits, and [`Self::seat_maps_waiting`]
    /// counts the reads that reached the database.
    pub async fn lock_seats(&self) -> SeatsLocked {
        let mut connection = PgConnection::connect_with(&self.pool().connect_options())
            .await
            .expect("a connection of the test's own");
        sqlx::raw_sql("BEGIN; LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
            .execute(&mut connection)
            .await
            .expect("locking the seats table");
        SeatsLocked(connection)
    }

    /// Seat-map queries of this seating's database waiting on a lock (a
    /// test holding `LOCK TABLE seats` sees how many reads reached it).
    pub async fn seat_maps_waiting(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query = $1",
        )
        .bind(seating::store::SEAT_MAP_QUERY)
        .fetch_one(self.pool())
        .await
        .expect("reading pg_stat_activity")
    }

    /// Another seating instance on the same database, streams and catalog
    /// (what a second replica is), with its own clock.
    pub async fn spawn_replica(
        &self,
        clock: std::sync::Arc<dyn seating::clock::Clock>,
    ) -> SeatingHandle {
        start_seating(
            self.db.clone(),
            self.streams.clone(),
            &self.catalog_url,
            self.settings.clone(),
            clock,
        )
        .await
    }
}

/// A lock on seating's `seats` table, from [`SeatingHandle::lock_seats`].
/// Dropped without [`Self::unlock`], its connection closes and PostgreSQL
/// lets go.
pub struct SeatsLocked(PgConnection);

impl SeatsLocked {
    pub async fn unlock(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlocking the seats table");
    }
}

impl Drop for SeatingHandle {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts seating on port 0 over a fresh, migrated database, with the system
/// clock and default settings except the events `prefix`.
pub async fn spawn_seating(catalog_url: &str, prefix: &str) -> SeatingHandle {
    let settings = seating::Settings {
        seating_events_prefix: prefix.to_owned(),
        ..Default::default()
    };
    spawn_seating_with(
        catalog_url,
        settings,
        std::sync::Arc::new(seating::clock::SystemClock),
    )
    .await
}

/// Starts seating with the given settings (including its events prefix) and
/// clock — a `ManualClock` lets a test move time instead of sleeping.
pub async fn spawn_seating_with(
    catalog_url: &str,
    settings: seating::Settings,
    clock: std::sync::Arc<dyn seating::clock::Clock>,
) -> SeatingHandle {
    let db = TestDb::create("seating").await;
    seating::migrate(&db.pool)
        .await
        .expect("seating migrations apply to a fresh database");
    let streams = TestStreams::adopt(&settings.seating_events_prefix).await;
    start_seating(
        std::sync::Arc::new(db),
        std::sync::Arc::new(streams),
        catalog_url,
        settings,
        clock,
    )
    .await
}

async fn start_seating(
    db: std::sync::Arc<TestDb>,
    streams: std::sync::Arc<TestStreams>,
    catalog_url: &str,
    settings: seating::Settings,
    clock: std::sync::Arc<dyn seating::clock::Clock>,
) -> SeatingHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding port 0");
    let address = listener.local_addr().expect("bound address");
    let catalog = platform::grpc::channel(catalog_url, "catalog_url", &Default::default())
        .expect("a valid catalog URL");
    let nats = platform::nats::connect(&nats_url())
        .await
        .expect("tests need NATS with JetStream (make test starts one)");
    // Streams exist before serve returns control, so a test can publish at once.
    let jetstream = async_nats::jetstream::new(nats.clone());
    platform::nats::ensure_streams(
        &jetstream,
        &platform::nats::event_streams(&settings.seating_events_prefix),
    )
    .await
    .expect("creating the test's streams");
    // The service gets a pool of its own, as it would in production; the
    // test's pool stays free for the test's own queries.
    let pool = platform::db::connect(&db.url, "SEATING_DATABASE_URL", &Default::default())
        .await
        .expect("connecting seating to its test database");
    let shutdown = platform::Shutdown::new();
    tokio::spawn(seating::serve(
        listener,
        pool,
        seating::Peers { catalog, nats },
        settings.clone(),
        clock,
        shutdown.clone(),
    ));
    SeatingHandle {
        url: format!("http://{address}"),
        address,
        db,
        prefix: settings.seating_events_prefix.clone(),
        streams,
        settings,
        catalog_url: catalog_url.to_owned(),
        shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prefixed_test_streams_are_swept() {
        let prefix = events_prefix();
        for spec in platform::nats::event_streams(&prefix) {
            assert!(is_test_stream(&spec.name), "{}", spec.name);
        }
        assert!(!is_test_stream("PAYMENTS"));
        assert!(!is_test_stream("TICKETS_PAYMENTS"));
    }

    #[test]
    fn replace_database_keeps_server_and_query() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
    }
}
