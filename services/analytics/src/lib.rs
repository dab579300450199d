//! The analytics service: bookings, seats sold, revenue net of refunds (per
//! currency, per day, per film), occupancy per showtime and overall, top
//! films and the recent-activity log, for the staff dashboard.
//!
//! Analytics is a read model of the event streams. Its consumers
//! ([`events`]) turn `bookings.confirmed`, `bookings.rejected` and
//! `payments.refund.succeeded` into facts in its own database ([`store`]),
//! once per event; its gRPC service ([`grpc`], `bookmyseat.analytics.v1`)
//! computes figures from those facts. Because everything it knows comes from
//! the streams, it can be thrown away and rebuilt ([`rebuild`]): `bookmyseat
//! analytics --rebuild` forgets every fact, deletes its durable consumers and
//! starts them again from the beginning of the streams (kept for a year).

pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use anyhow::Context as _;
use async_nats::jetstream;
use sqlx::PgPool;
use tokio::net::TcpListener;

use platform::Shutdown;
use proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;

use crate::events::{FiguresHandler, Subjects};

/// The analytics database's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where analytics listens and keeps its figures.
///
/// NATS is not here: in `bookmyseat all` it is shared with other roles, so
/// the binary owns those flags and passes them to [`run`].
#[derive(clap::Args, Clone, Debug)]
#[group(id = "analytics_config")]
pub struct Config {
    /// Address of analytics' gRPC server.
    #[arg(long, env = "ANALYTICS_GRPC_ADDR", default_value = "127.0.0.1:50054")]
    pub analytics_grpc_addr: String,
    /// Analytics' own PostgreSQL database.
    #[arg(
        long,
        env = "ANALYTICS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_analytics"
    )]
    pub analytics_database_url: String,
    /// Connections in analytics' database pool.
    #[arg(long, env = "ANALYTICS_DB_POOL_SIZE", default_value_t = 8)]
    pub analytics_db_pool_size: u32,
    /// Prefix for JetStream streams and NATS subjects; empty in production.
    /// Tests set one so parallel tests never share a stream.
    #[arg(skip)]
    pub analytics_events_prefix: String,
}

impl Config {
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        platform::db::connect(
            &self.analytics_database_url,
            "ANALYTICS_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.analytics_db_pool_size,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the database when missing and applies the migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.analytics_database_url, "ANALYTICS_DATABASE_URL")
            .await?;
        let pool = self.pool().await?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }
}

/// Applies analytics' migrations and the processed-events/dead-letter tables.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, &MIGRATOR).await?;
    platform::outbox::ensure_schema(pool)
        .await
        .context("creating the processed-events and dead-letter tables")
}

/// Forgets every fact and deletes analytics' durable consumers, so that the
/// next [`serve`] replays the streams from their first message.
///
/// Run it with one analytics instance (scale the Deployment to one first): a
/// replica still consuming would keep writing into the emptied tables and
/// recreate its consumer where it stood.
pub async fn rebuild(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    prefix: &str,
) -> anyhow::Result<()> {
    platform::nats::ensure_streams(jetstream, &platform::nats::event_streams(prefix)).await?;
    let specs = Subjects::new(prefix).consumer_specs();
    for spec in &specs {
        let stream = jetstream
            .get_stream(&spec.stream)
            .await
            .map_err(|e| anyhow::anyhow!("stream {} is missing: {e}", spec.stream))?;
        // A consumer that does not exist (first start, earlier rebuild) is fine.
        let _ = stream.delete_consumer(&spec.durable).await;
    }
    let consumers: Vec<String> = specs.iter().map(|s| s.durable.clone()).collect();
    store::reset(pool, &consumers)
        .await
        .context("emptying analytics' tables")?;
    tracing::warn!(consumers = ?consumers, "analytics forgot its figures; replaying the streams from the start");
    Ok(())
}

/// Runs the analytics role until `shutdown` fires; with `rebuild`, replays
/// the streams from the start first (see [`rebuild`]).
pub async fn run(
    config: Config,
    nats_url: &str,
    rebuild_first: bool,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let pool = config.pool().await?;
    let nats = platform::nats::connect(nats_url).await?;
    if rebuild_first {
        rebuild(
            &pool,
            &jetstream::new(nats.clone()),
            &config.analytics_events_prefix,
        )
        .await?;
    }
    let listener = platform::grpc::bind(&config.analytics_grpc_addr, "ANALYTICS_GRPC_ADDR").await?;
    serve(
        listener,
        pool,
        nats,
        config.analytics_events_prefix,
        shutdown,
    )
    .await
}

/// Serves analytics on `listener` over an already-migrated database, with
/// its consumers; returns when all of them have stopped.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    nats: async_nats::Client,
    prefix: String,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let dependencies = platform::grpc::Dependencies {
        pool: pool.clone(),
        nats: Some(nats.clone()),
    };
    let jetstream = jetstream::new(nats);
    platform::nats::ensure_streams(&jetstream, &platform::nats::event_streams(&prefix)).await?;
    let subjects = Subjects::new(&prefix);
    let mut tasks = tokio::task::JoinSet::new();
    for spec in subjects.consumer_specs() {
        tasks.spawn(platform::consumer::run(
            pool.clone(),
            jetstream.clone(),
            spec,
            FiguresHandler::new(subjects.clone()),
            shutdown.clone(),
        ));
    }
    tasks.spawn(platform::grpc::serve(
        listener,
        AnalyticsServiceServer::new(grpc::AnalyticsService::new(pool)),
        dependencies,
        shutdown.clone(),
    ));
    // One task failing stops the role rather than leaving it half-running.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| anyhow::anyhow!("an analytics task panicked: {e}"));
        if let Err(error) = result.and_then(|r| r) {
            tracing::error!(error = %format!("{error:#}"), "analytics task failed");
            first_error.get_or_insert(error);
        }
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}
