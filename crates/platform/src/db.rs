//! PostgreSQL for every service: one database per service, one pool per
//! process role, migrations embedded in each service crate with
//! `sqlx::migrate!` and applied through [`migrate`].

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, PgPool};

/// Pool settings shared by every service.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Connections opened at start and kept open while idle (the pool
    /// reopens them in the background when they close): requests that
    /// arrive together after a quiet spell find them ready instead of each
    /// waiting for a new backend to start.
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// Server-side limit for one statement; a runaway query fails instead of
    /// holding a connection forever.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses a `postgres://` URL, naming the variable it came from on failure.
pub fn parse_url(url: &str, variable: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .with_context(|| format!("{variable} is not a valid PostgreSQL URL: {url}"))
}

/// Opens a pool to a service's database.
pub async fn connect(url: &str, variable: &str, settings: &PoolSettings) -> anyhow::Result<PgPool> {
    connect_warmed(url, variable, settings, None).await
}

/// Work a service does on each new connection before the pool hands it out
/// (see [`connect_warmed`]).
pub type WarmUp = for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>>;

/// Opens a pool whose every new connection first runs `warm_up`: a service
/// whose hot statements live in PL/pgSQL functions has each one compiled and
/// planned there, and sqlx's statement cache filled, before any request
/// waits on it. A connection whose warm-up fails is dropped, as one that
/// fails to open is.
pub async fn connect_warmed(
    url: &str,
    variable: &str,
    settings: &PoolSettings,
    warm_up: Option<WarmUp>,
) -> anyhow::Result<PgPool> {
    let options = parse_url(url, variable)?
        .options([(
            "statement_timeout",
            settings.statement_timeout.as_millis().to_string(),
        )])
        .application_name("bookmyseat");
    let mut pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout);
    if let Some(warm_up) = warm_up {
        pool = pool.after_connect(move |connection, _| warm_up(connection));
    }
    pool.connect_with(options).await.with_context(|| {
        format!(
            "cannot connect to PostgreSQL at {} ({variable}); is it running? `make up` starts one",
            redact(url)
        )
    })
}

/// Creates the database named in `url` when it does not exist yet, by
/// connecting to the server's `postgres` database with the same credentials.
pub async fn ensure_database(url: &str, variable: &str) -> anyhow::Result<()> {
    let options = parse_url(url, variable)?;
    let name = options
        .get_database()
        .with_context(|| format!("{variable} names no database: {}", redact(url)))?
        .to_owned();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} ({variable}); is it running? `make up` starts one",
                redact(url)
            )
        })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&name));
        match sqlx::query(&statement).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Two roles creating the same database at once: the other won.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Applies a service's embedded migrations.
pub async fn migrate(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    migrator
        .run(pool)
        .await
        .context("applying database migrations failed")
}

/// Quotes a PostgreSQL identifier (database names in DDL cannot be bound).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A URL with its password replaced, safe for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/catalog"),
            "postgres://app:***@db:5432/catalog"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/catalog"),
            "postgres://postgres@127.0.0.1/catalog"
        );
    }

    #[test]
    fn quote_identifier_doubles_quotes() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
