//! The payments service: checkouts through Stripe Checkout (or the simulated
//! provider when no Stripe key is configured), the Stripe webhook, direct
//! verification of a session, and refunds.
//!
//! Payments owns its database (checkouts, payments, provider events,
//! refunds; see [`store`]) and faces Stripe alone ([`stripe`]). It serves
//! gRPC (`bookmyseat.payments.v1`, [`grpc`]) to the gateway and HTTP
//! ([`http`]: the webhook and the simulated checkout page) to Stripe and
//! browsers. Every change of a checkout's state goes through one state
//! machine ([`ledger`]) that writes its event to the outbox in the same
//! transaction; [`serve`] runs the outbox relay, the consumer of
//! `bookings.*` ([`events`]) and the refund worker ([`refunds`]) beside the
//! two servers, and every task stops on the shared shutdown signal.

pub mod checkouts;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod ledger;
pub mod refunds;
pub mod signature;
pub mod store;
pub mod stripe;
pub mod waiters;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use platform::grpc::TracedChannel;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use platform::Shutdown;
use platform::config::GrpcClientArgs;
use platform::outbox::{RelaySettings, RelayWaker};
use proto::payments::v1::payments_service_server::PaymentsServiceServer;

use crate::checkouts::{Checkouts, Urls};
use crate::events::{BookingsHandler, Subjects};
use crate::refunds::RefundWorker;
use crate::stripe::StripeClient;
use crate::waiters::BookingWaiters;

/// The payments database's schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The local default of `PUBLIC_BASE_URL` (declared by the gateway's config
/// in `bookmyseat all`, so the binary passes it to [`run`]).
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

/// Where the payments role listens, keeps its data and finds its peers.
///
/// NATS, the gRPC client timeouts and `PUBLIC_BASE_URL` are not here: in
/// `bookmyseat all` other roles declare them, so the binary passes them to
/// [`run`].
#[derive(clap::Args, Clone, Debug)]
#[group(id = "payments_config")]
pub struct Config {
    /// Address of payments' gRPC server.
    #[arg(long, env = "PAYMENTS_GRPC_ADDR", default_value = "127.0.0.1:50053")]
    pub payments_grpc_addr: String,
    /// Address of payments' HTTP server (Stripe webhook, simulated checkout).
    #[arg(long, env = "PAYMENTS_HTTP_ADDR", default_value = "127.0.0.1:8083")]
    pub payments_http_addr: String,
    /// Payments' own PostgreSQL database.
    #[arg(
        long,
        env = "PAYMENTS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/bookmyseat_payments"
    )]
    pub payments_database_url: String,
    /// gRPC URL of the catalog service (prices).
    #[arg(
        long,
        env = "PAYMENTS_CATALOG_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub payments_catalog_url: String,
    /// gRPC URL of the seating service (holds).
    #[arg(
        long,
        env = "PAYMENTS_SEATING_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub payments_seating_url: String,
    #[command(flatten)]
    pub settings: Settings,
}

/// Provider settings and tunables that tests set too.
#[derive(clap::Args, Clone)]
#[group(id = "payments_settings")]
pub struct Settings {
    /// Stripe secret key. Absent: the simulated provider takes "payments"
    /// (no money moves); present: the simulated provider is refused.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Webhook signing secrets, comma-separated (two during a rotation).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub stripe_webhook_secret: String,
    /// Stripe's API base URL (tests point it at a local server).
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// How long one call to Stripe may take, in milliseconds.
    #[arg(long, env = "STRIPE_TIMEOUT_MS", default_value_t = 10_000)]
    pub stripe_timeout_ms: u64,
    /// Where browsers reach payments' HTTP port (the simulated checkout page).
    #[arg(
        long,
        env = "PAYMENTS_PUBLIC_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub payments_public_url: String,
    /// How long a buyer has to pay, in seconds (with Stripe at least 35
    /// minutes are used: Stripe's minimum is 30). The hold is extended to
    /// cover it.
    #[arg(long, env = "CHECKOUT_DURATION_SECS", default_value_t = 1_800)]
    pub checkout_duration_secs: u64,
    /// Connections in payments' database pool.
    #[arg(long, env = "PAYMENTS_DB_POOL_SIZE", default_value_t = 8)]
    pub payments_db_pool_size: u32,
    /// Prefix for JetStream streams and NATS subjects; empty in production.
    #[arg(skip)]
    pub payments_events_prefix: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are never printed.
        f.debug_struct("Settings")
            .field("stripe_secret_key_set", &self.stripe_secret_key.is_some())
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_timeout_ms", &self.stripe_timeout_ms)
            .field("payments_public_url", &self.payments_public_url)
            .field("checkout_duration_secs", &self.checkout_duration_secs)
            .field("payments_events_prefix", &self.payments_events_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_webhook_secret: String::new(),
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_timeout_ms: 10_000,
            payments_public_url: "http://127.0.0.1:8083".into(),
            checkout_duration_secs: 1_800,
            payments_db_pool_size: 8,
            payments_events_prefix: String::new(),
        }
    }
}

impl Settings {
    /// Checks the values, naming the variable at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (60..=24 * 60 * 60).contains(&self.checkout_duration_secs),
            "CHECKOUT_DURATION_SECS must be between 60 and 86400, not {}",
            self.checkout_duration_secs
        );
        anyhow::ensure!(
            (100..=120_000).contains(&self.stripe_timeout_ms),
            "STRIPE_TIMEOUT_MS must be between 100 and 120000"
        );
        for (name, url) in [
            ("STRIPE_API_BASE", &self.stripe_api_base),
            ("PAYMENTS_PUBLIC_URL", &self.payments_public_url),
        ] {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{name} must be an absolute http(s) URL, not {url:?}"
            );
        }
        if let Some(key) = &self.stripe_secret_key {
            anyhow::ensure!(
                key.starts_with("sk_") || key.starts_with("rk_"),
                "STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_… or rk_…)"
            );
            anyhow::ensure!(
                !signature::parse_secrets(&self.stripe_webhook_secret).is_empty(),
                "STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set: \
                 without it no payment could be confirmed by webhook"
            );
        }
        Ok(())
    }

    fn stripe(&self) -> anyhow::Result<Option<StripeClient>> {
        self.stripe_secret_key
            .as_deref()
            .filter(|key| !key.trim().is_empty())
            .map(|key| {
                StripeClient::new(
                    &self.stripe_api_base,
                    key.trim(),
                    Duration::from_millis(self.stripe_timeout_ms),
                )
            })
            .transpose()
    }
}

impl Config {
    pub async fn pool(&self) -> anyhow::Result<PgPool> {
        platform::db::connect(
            &self.payments_database_url,
            "PAYMENTS_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.settings.payments_db_pool_size,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the database when missing and applies the migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.payments_database_url, "PAYMENTS_DATABASE_URL").await?;
        let pool = self.pool().await?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }
}

/// Applies payments' migrations and the outbox/consumer tables.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, &MIGRATOR).await?;
    platform::outbox::ensure_schema(pool)
        .await
        .context("creating the outbox tables")
}

/// The connections payments needs to other parts of the system.
#[derive(Clone, Debug)]
pub struct Peers {
    pub catalog: TracedChannel,
    pub seating: TracedChannel,
    pub nats: async_nats::Client,
    /// The gateway's public URL (`PUBLIC_BASE_URL`): success and cancel
    /// pages live there.
    pub public_base_url: String,
}

/// Runs the payments role until `shutdown` fires.
pub async fn run(
    config: Config,
    public_base_url: &str,
    nats_url: &str,
    grpc: &GrpcClientArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    config.settings.validate()?;
    let pool = config.pool().await?;
    let catalog =
        platform::grpc::channel(&config.payments_catalog_url, "PAYMENTS_CATALOG_URL", grpc)?;
    let seating =
        platform::grpc::channel(&config.payments_seating_url, "PAYMENTS_SEATING_URL", grpc)?;
    let nats = platform::nats::connect(nats_url).await?;
    let grpc_listener =
        platform::grpc::bind(&config.payments_grpc_addr, "PAYMENTS_GRPC_ADDR").await?;
    let http_listener =
        platform::grpc::bind(&config.payments_http_addr, "PAYMENTS_HTTP_ADDR").await?;
    serve(
        grpc_listener,
        http_listener,
        pool,
        Peers {
            catalog,
            seating,
            nats,
            public_base_url: public_base_url.to_owned(),
        },
        config.settings,
        shutdown,
    )
    .await
}

/// Serves payments on the two listeners over an already-migrated database,
/// with its background tasks; returns when all of them have stopped.
pub async fn serve(
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    pool: PgPool,
    peers: Peers,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    settings.validate()?;
    let stripe = settings.stripe()?;
    match &stripe {
        Some(_) => {
            tracing::info!(api = %settings.stripe_api_base, "payments take real payments through Stripe")
        }
        None => tracing::warn!(
            "no STRIPE_SECRET_KEY: the simulated provider takes test payments (no money moves)"
        ),
    }
    let prefix = settings.payments_events_prefix.clone();
    let jetstream = jetstream::new(peers.nats.clone());
    platform::nats::ensure_streams(&jetstream, &platform::nats::event_streams(&prefix)).await?;
    let subjects = Subjects::new(&prefix);
    let relay = RelayWaker::new();
    let refunds_wake = Arc::new(Notify::new());
    let waiters = BookingWaiters::default();
    let checkouts = Checkouts::new(
        pool.clone(),
        peers.catalog,
        peers.seating,
        stripe.clone(),
        subjects.clone(),
        relay.clone(),
        refunds_wake.clone(),
        waiters.clone(),
        Urls {
            public_base_url: peers.public_base_url.trim_end_matches('/').to_owned(),
            payments_public_url: settings
                .payments_public_url
                .trim_end_matches('/')
                .to_owned(),
        },
        chrono::Duration::seconds(settings.checkout_duration_secs as i64),
    );

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let (pool, jetstream, relay, shutdown) = (
            pool.clone(),
            jetstream.clone(),
            relay.clone(),
            shutdown.clone(),
        );
        async move {
            platform::outbox::run_relay(pool, jetstream, relay, RelaySettings::default(), shutdown)
                .await;
            Ok(())
        }
    });
    tasks.spawn(platform::consumer::run(
        pool.clone(),
        jetstream,
        subjects.consumer_spec(),
        BookingsHandler::new(subjects.clone(), refunds_wake.clone(), waiters),
        shutdown.clone(),
    ));
    tasks.spawn({
        let worker = RefundWorker {
            pool: pool.clone(),
            stripe,
            subjects,
            wake: refunds_wake,
            relay,
        };
        let shutdown = shutdown.clone();
        async move {
            worker.run(shutdown).await;
            Ok(())
        }
    });
    tasks.spawn(platform::grpc::serve(
        grpc_listener,
        PaymentsServiceServer::new(grpc::PaymentsService::new(checkouts.clone())),
        platform::grpc::Dependencies {
            pool: pool.clone(),
            nats: Some(peers.nats.clone()),
        },
        shutdown.clone(),
    ));
    tasks.spawn(platform::http::serve(
        http_listener,
        http::router(http::HttpState {
            checkouts,
            webhook_secrets: signature::parse_secrets(&settings.stripe_webhook_secret),
            pool: pool.clone(),
            nats: peers.nats.clone(),
        }),
        shutdown.clone(),
        "payments",
    ));

    // One task failing stops the role rather than leaving it half-running.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| anyhow::anyhow!("a payments task panicked: {e}"));
        if let Err(error) = result.and_then(|r| r) {
            tracing::error!(error = %format!("{error:#}"), "payments task failed");
            first_error.get_or_insert(error);
        }
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}
