//! The one place tests learn how to stand up real parts.
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test, dropped afterwards, so
//!   tests run in parallel without seeing each other's rows.
//! - [`spawn_catalog`]: the real catalog gRPC service on port 0 over its own
//!   database, optionally with the demo programme.
//!
//! Nothing here mocks a service: if PostgreSQL is not reachable the test
//! fails and says how to start it (`make test` does).

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
        // Drop runs outside any async context we can rely on, so the cleanup
        // gets a small runtime of its own on a plain thread.
        let name = self.name.clone();
        let pool = self.pool.clone();
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    pool.close().await;
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
        })
        .join();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
