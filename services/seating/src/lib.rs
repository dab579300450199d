//! The seating service: per-showtime seat inventory, holds and bookings,
//! served over gRPC (`bookmyseat.seating.v1`) from its own PostgreSQL
//! database.
//!
//! Seating is the only place that decides who owns a seat. Every rule that
//! keeps a seat from being held or sold twice lives in its database (see
//! [`store`]), so any number of replicas may run on one database. Besides the
//! gRPC server, [`serve`] runs the outbox relay (`bookings.*` events), the
//! consumers of `payments.checkout.*` and `payments.refund.succeeded`
//! ([`events`]), and the hold sweeper ([`sweeper`]); every task stops on the
//! shared shutdown signal.

pub mod catalog;
pub mod clock;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod live;
pub mod store;
pub mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use platform::grpc::TracedChannel;
use sqlx::PgPool;
use tokio::net::TcpListener;

use platform::Shutdown;
use platform::config::GrpcClientArgs;
use platform::outbox::{RelaySettings, RelayWaker};
use proto::seating::v1::seating_service_server::SeatingServiceServer;

use crate::clock::Clock;
use crate::events::{PaymentsHandler, RefundsHandler, Subjects};
use crate::live::SeatNotifier;

/// The seating database's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the seating role listens, keeps its data and finds catalog.
///
/// NATS and the gRPC client timeouts are not here: in `bookmyseat all` they
/// are shared with other roles, so the binary owns those flags and passes
/// them to [`run`].
#[derive(clap::Args, Clone, Debug)]
#[group(id = "seating_config")]
pub struct Config {
    /// Address of seating's gRPC server.
    #[arg(long, env = "SEATING_GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub seating_grpc_addr: String,
    /// Seating's own PostgreSQL database.
    #[arg(
        long,
        env = "SEATING_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_seating"
    )]
    pub seating_database_url: String,
    /// gRPC URL of the catalog service (showtimes and their layouts).
    #[arg(
        long,
        env = "SEATING_CATALOG_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub seating_catalog_url: String,
    #[command(flatten)]
    pub settings: Settings,
}

/// Tunables that tests may change too.
#[derive(clap::Args, Clone, Debug)]
#[group(id = "seating_settings")]
pub struct Settings {
    /// How long a hold lasts while the buyer chooses, in seconds (payments
    /// extends it for checkout).
    #[arg(long, env = "HOLD_DURATION_SECS", default_value_t = 600)]
    pub hold_duration_secs: u64,
    /// Most seats one hold may take.
    #[arg(long, env = "MAX_SEATS_PER_HOLD", default_value_t = 10)]
    pub max_seats_per_hold: u32,
    /// Longest pause of the hold sweeper between rounds, in milliseconds.
    #[arg(long, env = "SEATING_SWEEP_INTERVAL_MS", default_value_t = 1_000)]
    pub seating_sweep_interval_ms: u64,
    /// Connections in seating's database pool.
    #[arg(long, env = "SEATING_DB_POOL_SIZE", default_value_t = 16)]
    pub seating_db_pool_size: u32,
    /// Connections seating opens at start and keeps open while idle (at
    /// most SEATING_DB_POOL_SIZE). When a premiere opens after a quiet
    /// spell, the first holds find them ready; opened on demand, each new
    /// backend held up the holds waiting for it.
    #[arg(long, env = "SEATING_DB_MIN_CONNECTIONS", default_value_t = 16)]
    pub seating_db_min_connections: u32,
    /// Seat-map reads that may use database connections at once. The rest
    /// of the pool stays free for holds and bookings: when a premiere opens
    /// and a thousand buyers load its seat map together, their reads queue
    /// here instead of ahead of the holds that decide who gets a seat.
    #[arg(long, env = "SEATING_MAP_READS", default_value_t = 4)]
    pub seating_map_reads: u32,
    /// Prefix for JetStream streams and NATS subjects; empty in production.
    /// Tests set one so parallel tests never share a stream.
    #[arg(skip)]
    pub seating_events_prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hold_duration_secs: 600,
            max_seats_per_hold: 10,
            seating_sweep_interval_ms: 1_000,
            seating_db_pool_size: 16,
            seating_db_min_connections: 16,
            seating_map_reads: 4,
            seating_events_prefix: String::new(),
        }
    }
}

impl Settings {
    /// Checks the values, naming the variable at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=24 * 60 * 60).contains(&self.hold_duration_secs),
            "HOLD_DURATION_SECS must be between 1 and 86400, not {}",
            self.hold_duration_secs
        );
        anyhow::ensure!(
            (1..=100).contains(&self.max_seats_per_hold),
            "MAX_SEATS_PER_HOLD must be between 1 and 100, not {}",
            self.max_seats_per_hold
        );
        anyhow::ensure!(
            self.seating_sweep_interval_ms >= 10,
            "SEATING_SWEEP_INTERVAL_MS must be at least 10"
        );
        anyhow::ensure!(
            (1..self.seating_db_pool_size).contains(&self.seating_map_reads),
            "SEATING_MAP_READS must be at least 1 and below SEATING_DB_POOL_SIZE ({}), so holds \
             always find a connection; not {}",
            self.seating_db_pool_size,
            self.seating_map_reads
        );
        Ok(())
    }
}

impl Config {
    /// The pool seating serves from, its warm connections opening, each
    /// with the rush's statements ready ([`store::warm_up`]).
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        let settings = &self.settings;
        let pool = platform::db::PoolSettings {
            max_connections: settings.seating_db_pool_size,
            min_connections: settings
                .seating_db_min_connections
                .min(settings.seating_db_pool_size),
            ..Default::default()
        };
        self.connect(pool, Some(store::warm_up)).await
    }

    async fn connect(
        &self,
        pool: platform::db::PoolSettings,
        warm_up: Option<platform::db::WarmUp>,
    ) -> anyhow::Result<PgPool> {
        platform::db::connect_warmed(
            &self.seating_database_url,
            "SEATING_DATABASE_URL",
            &pool,
            warm_up,
        )
        .await
    }

    /// Creates the database when missing and applies the migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.seating_database_url, "SEATING_DATABASE_URL").await?;
        // Migrating takes one connection; no warm pool for it.
        let pool = self
            .connect(
                platform::db::PoolSettings {
                    max_connections: 2,
                    ..Default::default()
                },
                None,
            )
            .await?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }
}

/// Applies seating's migrations and the outbox/consumer tables.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, &MIGRATOR).await?;
    platform::outbox::ensure_schema(pool)
        .await
        .context("creating the outbox tables")
}

/// The connections seating needs to other parts of the system.
#[derive(Clone, Debug)]
pub struct Peers {
    /// Channel to catalog.
    pub catalog: TracedChannel,
    pub nats: async_nats::Client,
}

/// Runs the seating role until `shutdown` fires.
pub async fn run(
    config: Config,
    nats_url: &str,
    grpc: &GrpcClientArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    config.settings.validate()?;
    let pool = config.pool().await?;
    let catalog =
        platform::grpc::channel(&config.seating_catalog_url, "SEATING_CATALOG_URL", grpc)?;
    let nats = platform::nats::connect(nats_url).await?;
    let listener = platform::grpc::bind(&config.seating_grpc_addr, "SEATING_GRPC_ADDR").await?;
    serve(
        listener,
        pool,
        Peers { catalog, nats },
        config.settings,
        Arc::new(clock::SystemClock),
        shutdown,
    )
    .await
}

/// Serves seating on `listener` over an already-migrated database, with its
/// background tasks; returns when all of them have stopped.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    peers: Peers,
    settings: Settings,
    clock: Arc<dyn Clock>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    settings.validate()?;
    let prefix = settings.seating_events_prefix.clone();
    let dependencies = platform::grpc::Dependencies {
        pool: pool.clone(),
        nats: Some(peers.nats.clone()),
    };
    let jetstream = jetstream::new(peers.nats.clone());
    platform::nats::ensure_streams(&jetstream, &platform::nats::event_streams(&prefix)).await?;
    let subjects = Subjects::new(&prefix);
    let notifier = SeatNotifier::new(peers.nats.clone(), prefix);
    let waker = RelayWaker::new();

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let (pool, jetstream, waker, shutdown) = (
            pool.clone(),
            jetstream.clone(),
            waker.clone(),
            shutdown.clone(),
        );
        async move {
            platform::outbox::run_relay(pool, jetstream, waker, RelaySettings::default(), shutdown)
                .await;
            Ok(())
        }
    });
    tasks.spawn(platform::consumer::run(
        pool.clone(),
        jetstream.clone(),
        subjects.refunds_consumer_spec(),
        RefundsHandler::new(clock.clone(), subjects.clone(), notifier.clone()),
        shutdown.clone(),
    ));
    tasks.spawn(platform::consumer::run(
        pool.clone(),
        jetstream,
        subjects.consumer_spec(),
        PaymentsHandler::new(clock.clone(), subjects, notifier.clone(), waker),
        shutdown.clone(),
    ));
    tasks.spawn({
        let (pool, clock, notifier, shutdown) = (
            pool.clone(),
            clock.clone(),
            notifier.clone(),
            shutdown.clone(),
        );
        let interval = Duration::from_millis(settings.seating_sweep_interval_ms);
        async move {
            sweeper::run(pool, clock, notifier, interval, shutdown).await;
            Ok(())
        }
    });
    let service = grpc::SeatingService::new(
        pool.clone(),
        catalog::Inventory::new(pool, peers.catalog),
        clock,
        notifier,
        chrono::Duration::seconds(settings.hold_duration_secs as i64),
        settings.max_seats_per_hold as usize,
        settings.seating_map_reads as usize,
    );
    tasks.spawn(platform::grpc::serve(
        listener,
        SeatingServiceServer::new(service),
        dependencies,
        shutdown.clone(),
    ));

    // One task failing (a consumer that cannot bind its stream) stops the
    // role rather than leaving it half-running.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| anyhow::anyhow!("a seating task panicked: {e}"));
        if let Err(error) = result.and_then(|r| r) {
            tracing::error!(error = %format!("{error:#}"), "seating task failed");
            first_error.get_or_insert(error);
        }
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn seat_map_reads_must_leave_a_connection_for_holds() {
        assert!(Settings::default().validate().is_ok());
        let settings = |pool, reads| Settings {
            seating_db_pool_size: pool,
            seating_map_reads: reads,
            ..Settings::default()
        };
        assert!(settings(2, 1).validate().is_ok());
        for (pool, reads) in [(16, 16), (16, 0), (4, 9), (1, 1)] {
            let error = settings(pool, reads)
                .validate()
                .expect_err("refused")
                .to_string();
            assert!(error.contains("SEATING_MAP_READS"), "{error}");
        }
    }
}
