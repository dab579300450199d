//! The notifier service: booking confirmations, booking apologies, refund
//! notices and password-reset emails, one per event as far as it can know.
//!
//! The notifier has no API. It consumes `bookings.*`, `payments.refund.*`
//! and `accounts.*` from JetStream ([`events`]), turns each event into an
//! email ([`emails`]), sends it over SMTP or writes it to a local outbox
//! folder ([`mailer`]), and records every delivery in its own database
//! ([`store`]) so a redelivered event is not sent twice. [`run`] starts the
//! three consumers; every one stops on the shared shutdown signal.

pub mod emails;
pub mod events;
pub mod mailer;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use lettre::message::Mailbox;
use sqlx::PgPool;

use platform::Shutdown;

use crate::events::{EmailHandler, RetryPolicy, Subjects};
use crate::mailer::Mailer;

/// The notifier database's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the notifier keeps its records and sends its mail.
///
/// NATS is not here: in `bookmyseat all` it is shared with other roles, so
/// the binary owns those flags and passes them to [`run`].
#[derive(clap::Args, Clone)]
#[group(id = "notifier_config")]
pub struct Config {
    /// The notifier's own PostgreSQL database (deliveries, processed events).
    #[arg(
        long,
        env = "NOTIFIER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_notifier"
    )]
    pub notifier_database_url: String,
    /// SMTP server, e.g. `smtp://user:pass@host:587?tls=required` (STARTTLS)
    /// or `smtps://user:pass@host:465` (TLS). Unset: emails are written as
    /// `.eml` files to NOTIFIER_OUTBOX_DIR instead.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// PEM file of the CA that signed the SMTP server's certificate, for a
    /// relay with a private CA. Unset: the public web roots are trusted.
    #[arg(long, env = "SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// The From of every email.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "BookMySeat <no-reply@bookmyseat.local>"
    )]
    pub mail_from: String,
    /// Folder for `.eml` files when SMTP_URL is unset.
    #[arg(long, env = "NOTIFIER_OUTBOX_DIR", default_value = ".stack/mail")]
    pub notifier_outbox_dir: PathBuf,
    #[command(flatten)]
    pub settings: Settings,
}

/// The SMTP URL may carry a password: Debug shows whether it is set, not it.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "notifier_database_url",
                &platform::db::redact(&self.notifier_database_url),
            )
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<set>"))
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("mail_from", &self.mail_from)
            .field("notifier_outbox_dir", &self.notifier_outbox_dir)
            .field("settings", &self.settings)
            .finish()
    }
}

/// Tunables that tests may change too.
#[derive(clap::Args, Clone, Debug)]
#[group(id = "notifier_settings")]
pub struct Settings {
    /// Send attempts per delivery of an event before it is dead-lettered.
    /// With the default pauses, ten attempts ride out about six minutes of
    /// relay outage (a restart, a failover) before an email is given up.
    #[arg(long, env = "NOTIFIER_SMTP_ATTEMPTS", default_value_t = 10)]
    pub notifier_smtp_attempts: u32,
    /// Pause after the first failed attempt, in milliseconds; doubles after
    /// each further one.
    #[arg(long, env = "NOTIFIER_SMTP_BACKOFF_MS", default_value_t = 1_000)]
    pub notifier_smtp_backoff_ms: u64,
    /// Longest pause between attempts, in milliseconds.
    #[arg(long, env = "NOTIFIER_SMTP_MAX_BACKOFF_MS", default_value_t = 120_000)]
    pub notifier_smtp_max_backoff_ms: u64,
    /// Upper bound for one SMTP send (connect, TLS, dialogue), in milliseconds.
    #[arg(long, env = "NOTIFIER_SMTP_TIMEOUT_MS", default_value_t = 20_000)]
    pub notifier_smtp_timeout_ms: u64,
    /// Confirmation emails sent at once, each over its own pooled SMTP
    /// connection. Most of a send is waiting on the relay, so several in
    /// flight is what makes throughput.
    #[arg(long, env = "NOTIFIER_CONCURRENCY", default_value_t = 16)]
    pub notifier_concurrency: u32,
    /// Connections in the notifier's database pool (at least
    /// NOTIFIER_CONCURRENCY + 3: each send holds one, and the other two
    /// consumers and the delivery records need theirs).
    #[arg(long, env = "NOTIFIER_DB_POOL_SIZE", default_value_t = 20)]
    pub notifier_db_pool_size: u32,
    /// How long JetStream waits, in milliseconds, before handing an event a
    /// notifier took but never acknowledged (it crashed, or the delivery
    /// was lost while NATS went down) to another. Retries in progress keep
    /// their event however long they take, so this need not cover them.
    #[arg(long, env = "NOTIFIER_ACK_WAIT_MS", default_value_t = 30_000)]
    pub notifier_ack_wait_ms: u64,
    /// Prefix for JetStream streams and NATS subjects; empty in production.
    /// Tests set one so parallel tests never share a stream.
    #[arg(skip)]
    pub notifier_events_prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            notifier_smtp_attempts: 10,
            notifier_smtp_backoff_ms: 1_000,
            notifier_smtp_max_backoff_ms: 120_000,
            notifier_smtp_timeout_ms: 20_000,
            notifier_concurrency: 16,
            notifier_db_pool_size: 20,
            notifier_ack_wait_ms: 30_000,
            notifier_events_prefix: String::new(),
        }
    }
}

impl Settings {
    /// Checks the values, naming the variable at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=100).contains(&self.notifier_smtp_attempts),
            "NOTIFIER_SMTP_ATTEMPTS must be between 1 and 100, not {}",
            self.notifier_smtp_attempts
        );
        anyhow::ensure!(
            self.notifier_smtp_backoff_ms >= 1,
            "NOTIFIER_SMTP_BACKOFF_MS must be at least 1"
        );
        anyhow::ensure!(
            self.notifier_smtp_max_backoff_ms >= self.notifier_smtp_backoff_ms,
            "NOTIFIER_SMTP_MAX_BACKOFF_MS must be at least NOTIFIER_SMTP_BACKOFF_MS"
        );
        anyhow::ensure!(
            (100..=600_000).contains(&self.notifier_smtp_timeout_ms),
            "NOTIFIER_SMTP_TIMEOUT_MS must be between 100 and 600000, not {}",
            self.notifier_smtp_timeout_ms
        );
        anyhow::ensure!(
            (1..=64).contains(&self.notifier_concurrency),
            "NOTIFIER_CONCURRENCY must be between 1 and 64, not {}",
            self.notifier_concurrency
        );
        anyhow::ensure!(
            self.notifier_db_pool_size >= self.notifier_concurrency + 3,
            "NOTIFIER_DB_POOL_SIZE ({}) must be at least NOTIFIER_CONCURRENCY + 3 ({}): \
             each email being sent holds a database connection",
            self.notifier_db_pool_size,
            self.notifier_concurrency + 3
        );
        anyhow::ensure!(
            self.retry().worst_case() <= Duration::from_secs(6 * 60 * 60),
            "NOTIFIER_SMTP_ATTEMPTS, NOTIFIER_SMTP_MAX_BACKOFF_MS and NOTIFIER_SMTP_TIMEOUT_MS \
             together allow one email more than six hours of retries; lower them"
        );
        anyhow::ensure!(
            (1_000..=3_600_000).contains(&self.notifier_ack_wait_ms),
            "NOTIFIER_ACK_WAIT_MS must be between 1000 and 3600000, not {}",
            self.notifier_ack_wait_ms
        );
        Ok(())
    }

    /// The retry schedule these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.notifier_smtp_attempts,
            initial_backoff: Duration::from_millis(self.notifier_smtp_backoff_ms),
            max_backoff: Duration::from_millis(self.notifier_smtp_max_backoff_ms),
            send_timeout: Duration::from_millis(self.notifier_smtp_timeout_ms),
        }
    }
}

impl Config {
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        platform::db::connect(
            &self.notifier_database_url,
            "NOTIFIER_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.settings.notifier_db_pool_size,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the database when missing and applies the migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.notifier_database_url, "NOTIFIER_DATABASE_URL").await?;
        let pool = self.pool().await?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// The sender, parsed once.
    pub fn from_mailbox(&self) -> anyhow::Result<Mailbox> {
        parse_from(&self.mail_from)
    }

    /// SMTP when SMTP_URL is set, the outbox folder otherwise.
    pub fn mailer(&self) -> anyhow::Result<Mailer> {
        Mailer::new(
            self.smtp_url.as_deref(),
            self.smtp_ca_file.as_deref(),
            self.notifier_outbox_dir.clone(),
            &self.settings,
        )
    }
}

/// Parses MAIL_FROM (`Name <address>` or a bare address).
pub fn parse_from(value: &str) -> anyhow::Result<Mailbox> {
    value.parse().map_err(|e| {
        anyhow::anyhow!(
            "MAIL_FROM is not an email address ({e}): expected e.g. \"BookMySeat <no-reply@example.com>\""
        )
    })
}

/// Applies the notifier's migrations and the processed-events/dead-letter
/// tables.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, &MIGRATOR).await?;
    platform::outbox::ensure_schema(pool)
        .await
        .context("creating the processed-events and dead-letter tables")
}

/// Runs the notifier role until `shutdown` fires.
pub async fn run(config: Config, nats_url: &str, shutdown: Shutdown) -> anyhow::Result<()> {
    config.settings.validate()?;
    let from = config.from_mailbox()?;
    let mailer = config.mailer()?;
    match &mailer {
        Mailer::Smtp { .. } => tracing::info!("notifier sends email over SMTP (SMTP_URL)"),
        Mailer::Outbox { dir } => tracing::info!(folder = %dir.display(),
            "SMTP_URL is not set: emails are written as .eml files to the outbox folder"),
    }
    let pool = config.pool().await?;
    let nats = platform::nats::connect(nats_url).await?;
    serve(pool, nats, mailer, from, config.settings, shutdown).await
}

/// Consumes events over an already-migrated database until `shutdown`
/// fires; returns when every consumer has stopped.
pub async fn serve(
    pool: PgPool,
    nats: async_nats::Client,
    mailer: Mailer,
    from: Mailbox,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    settings.validate()?;
    let prefix = settings.notifier_events_prefix.clone();
    let jetstream = jetstream::new(nats);
    platform::nats::ensure_streams(&jetstream, &platform::nats::event_streams(&prefix)).await?;
    let subjects = Subjects::new(&prefix);
    let retry = settings.retry();
    let handler = EmailHandler::new(
        pool.clone(),
        Arc::new(mailer),
        from,
        retry,
        subjects.clone(),
        shutdown.clone(),
    );
    let mut consumers = tokio::task::JoinSet::new();
    for spec in subjects.consumer_specs(
        Duration::from_millis(settings.notifier_ack_wait_ms),
        settings.notifier_concurrency as usize,
    ) {
        consumers.spawn(platform::consumer::run(
            pool.clone(),
            jetstream.clone(),
            spec,
            handler.clone(),
            shutdown.clone(),
        ));
    }
    // One consumer failing (a stream it cannot bind) stops the role rather
    // than leaving it half-running.
    let mut first_error = None;
    while let Some(joined) = consumers.join_next().await {
        let result = joined.map_err(|e| anyhow::anyhow!("a notifier consumer panicked: {e}"));
        if let Err(error) = result.and_then(|r| r) {
            tracing::error!(error = %format!("{error:#}"), "notifier consumer failed");
            first_error.get_or_insert(error);
        }
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        Settings::default().validate().unwrap();
        let no_attempts = Settings {
            notifier_smtp_attempts: 0,
            ..Default::default()
        };
        assert!(no_attempts.validate().is_err());
        let backwards = Settings {
            notifier_smtp_max_backoff_ms: 10,
            ..Default::default()
        };
        assert!(backwards.validate().is_err());
        let starved = Settings {
            notifier_concurrency: 16,
            notifier_db_pool_size: 18,
            ..Default::default()
        };
        assert!(
            starved.validate().is_err(),
            "a pool smaller than the sends it must serve is refused"
        );
        assert!(parse_from("BookMySeat <no-reply@example.com>").is_ok());
        assert!(parse_from("not an address").is_err());
    }
}
