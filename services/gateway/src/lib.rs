//! The gateway: the only BookMySeat service that faces browsers.
//!
//! It renders the pages (home, film, the live seat page) as plain HTML that
//! works without JavaScript, serves the JSON API under `/api/v1` with its
//! OpenAPI document, streams live seat changes as Server-Sent Events, and
//! draws fallback posters. Films and showtimes come from the catalog service
//! and seats, holds and bookings from the seating service over gRPC, through
//! [`catalog_client`] and [`seating_client`], which turn protobuf messages
//! into the JSON types of [`resources`] once, so pages and API never see
//! prost types. Seat changes arrive over NATS core ([`seat_events`]). The
//! staff dashboard ([`dashboard`], `GET /api/v1/admin/stats`) reads its
//! figures from the analytics service through [`analytics_client`].
//!
//! The gateway owns accounts: users, server-side sessions and password-reset
//! tokens in its own database ([`store`]), the flows in [`auth`], who is
//! asking and CSRF in [`session`], guessing limits in [`throttle`]. Reset
//! emails leave as `accounts.password_reset.requested` through the outbox.
//!
//! Start-up is split the zero2prod way: [`run`] binds the configured address,
//! [`serve`] takes any listener (tests pass port 0), and [`router`] builds the
//! axum application from an [`AppState`].

pub mod account_api;
pub mod account_pages;
pub mod accounts;
pub mod analytics_client;
pub mod api;
pub mod assets;
pub mod auth;
pub mod catalog_client;
pub mod chart;
pub mod checkout_pages;
pub mod csv;
pub mod dashboard;
pub mod error;
pub mod film_filter;
pub mod fingerprint;
pub mod local_time;
pub mod money;
pub mod pages;
pub mod payments_client;
pub mod poster;
pub mod programme;
pub mod programme_pages;
pub mod resources;
pub mod seat_events;
pub mod seat_selection;
pub mod seating_client;
pub mod session;
pub mod session_cache;
pub mod session_lookups;
pub mod store;
pub mod throttle;
pub mod views;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use http::{HeaderName, HeaderValue, header};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::analytics_client::AnalyticsClient;
use crate::auth::{Accounts, SessionLifetimes};
use crate::catalog_client::CatalogClient;
use crate::payments_client::PaymentsClient;
use crate::seat_events::SeatEvents;
use crate::seating_client::SeatingClient;
use crate::session::CookiePolicy;
use crate::session_cache::SessionCache;

const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_CATALOG_URL: &str = "http://127.0.0.1:50051";
const DEFAULT_SEATING_URL: &str = "http://127.0.0.1:50052";
const DEFAULT_PAYMENTS_URL: &str = "http://127.0.0.1:50053";
const DEFAULT_ANALYTICS_URL: &str = "http://127.0.0.1:50054";
const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/bookmyseat_gateway";

/// The gateway's migrations (accounts, sessions, reset tokens, throttles).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Largest request body the gateway reads; its forms and JSON bodies (sign-in,
/// seat holds) are far smaller.
pub const REQUEST_BODY_LIMIT: usize = 64 * 1024;

/// What the page's scripts, styles, images and frames may load. No inline
/// scripts or styles anywhere; only the YouTube privacy-enhanced player may be
/// framed (the trailer modal), and nobody may frame us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; \
     frame-src https://www.youtube-nocookie.com; frame-ancestors 'none'; base-uri 'self'; \
     form-action 'self'; object-src 'none'";

/// How long a replica keeps a session lookup by default (seconds).
pub const DEFAULT_SESSION_CACHE_SECS: u64 = 10;
/// The most `SESSION_CACHE_SECS` may be.
pub const MAX_SESSION_CACHE_SECS: u64 = 300;

/// Seat maps a replica fetches at once by default (`GATEWAY_MAP_READS`):
/// in the rush benchmark 2, 4 and 8 gave the same hold latency, each far
/// below no limit.
pub const DEFAULT_MAP_READS: u16 = 4;
/// Connections in the gateway's database pool unless `GATEWAY_DB_POOL_SIZE`
/// says otherwise.
pub const DEFAULT_DB_POOL_SIZE: u32 = 16;

/// The gateway role's configuration.
#[derive(clap::Args, Clone, Debug)]
#[group(id = "gateway_config")]
pub struct Config {
    /// Address the gateway's HTTP server listens on.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub gateway_http_addr: String,
    /// gRPC URL of the catalog service.
    #[arg(long, env = "CATALOG_URL", default_value = DEFAULT_CATALOG_URL)]
    pub catalog_url: String,
    /// gRPC URL of the seating service.
    #[arg(long, env = "SEATING_URL", default_value = DEFAULT_SEATING_URL)]
    pub seating_url: String,
    /// gRPC URL of the payments service.
    #[arg(long, env = "PAYMENTS_URL", default_value = DEFAULT_PAYMENTS_URL)]
    pub payments_url: String,
    /// gRPC URL of the analytics service (the staff dashboard's figures).
    #[arg(long, env = "ANALYTICS_URL", default_value = DEFAULT_ANALYTICS_URL)]
    pub analytics_url: String,
    /// The address browsers reach the gateway at; absolute links (fallback
    /// posters, reset links in emails) start with it, and cookies are
    /// `Secure` when it is https.
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = DEFAULT_PUBLIC_BASE_URL)]
    pub public_base_url: String,
    /// The gateway's own database: accounts, sessions, reset tokens.
    #[arg(long, env = "GATEWAY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub gateway_database_url: String,
    /// Connections in the gateway's database pool (sessions, accounts).
    #[arg(long, env = "GATEWAY_DB_POOL_SIZE", default_value_t = DEFAULT_DB_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub gateway_db_pool_size: u32,
    /// A session unused for this long ends (seconds).
    #[arg(long, env = "SESSION_IDLE_SECS", default_value_t = 12 * 60 * 60)]
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however active (seconds).
    #[arg(long, env = "SESSION_ABSOLUTE_SECS", default_value_t = 7 * 24 * 60 * 60)]
    pub session_absolute_secs: u64,
    /// How long a replica keeps a session lookup in memory (seconds; 0
    /// never). A sign-out reaches every replica over NATS at once; should
    /// that message be lost, a copy lives at most this long.
    #[arg(long, env = "SESSION_CACHE_SECS", default_value_t = DEFAULT_SESSION_CACHE_SECS)]
    pub session_cache_secs: u64,
    /// Take the client address (for sign-in throttling) from the last
    /// `X-Forwarded-For` entry; set it only behind a proxy that appends it.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Accounts one client address may create per hour.
    #[arg(long, env = "SIGN_UPS_PER_ADDRESS_PER_HOUR", default_value_t = throttle::DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR)]
    pub sign_ups_per_address_per_hour: i32,
    /// Seat maps this replica fetches from seating at once; further
    /// requests for maps wait their turn, so that holds and payments are
    /// not queued behind a crowd of map reads.
    #[arg(long, env = "GATEWAY_MAP_READS", default_value_t = DEFAULT_MAP_READS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub map_reads: u16,
    /// Threads serving HTTP, 0 for one per CPU core. Each serves its own
    /// connections over its own channels to the other services, so a
    /// request never changes thread on its way through the gateway.
    #[arg(long, env = "GATEWAY_HTTP_THREADS", default_value_t = 0)]
    pub http_threads: u16,
    // Connect and request timeouts for the calls to the other services.
    #[command(flatten)]
    pub grpc: platform::config::GrpcClientArgs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gateway_http_addr: DEFAULT_HTTP_ADDR.to_owned(),
            catalog_url: DEFAULT_CATALOG_URL.to_owned(),
            seating_url: DEFAULT_SEATING_URL.to_owned(),
            payments_url: DEFAULT_PAYMENTS_URL.to_owned(),
            analytics_url: DEFAULT_ANALYTICS_URL.to_owned(),
            public_base_url: DEFAULT_PUBLIC_BASE_URL.to_owned(),
            gateway_database_url: DEFAULT_DATABASE_URL.to_owned(),
            gateway_db_pool_size: DEFAULT_DB_POOL_SIZE,
            session_idle_secs: 12 * 60 * 60,
            session_absolute_secs: 7 * 24 * 60 * 60,
            session_cache_secs: DEFAULT_SESSION_CACHE_SECS,
            trust_forwarded_for: false,
            sign_ups_per_address_per_hour: throttle::DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR,
            map_reads: DEFAULT_MAP_READS,
            http_threads: 0,
            grpc: Default::default(),
        }
    }
}

impl Config {
    /// Checks what can be checked before serving, naming the variable at
    /// fault, and returns the public base URL without a trailing slash.
    fn public_base_url(&self) -> anyhow::Result<String> {
        let url = self.public_base_url.trim_end_matches('/');
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        anyhow::ensure!(
            scheme_ok && url.len() > "https://".len(),
            "PUBLIC_BASE_URL must be an absolute http(s) URL such as https://tickets.example.com, \
             not {:?}",
            self.public_base_url
        );
        Ok(url.to_owned())
    }

    fn session_lifetimes(&self) -> anyhow::Result<SessionLifetimes> {
        anyhow::ensure!(
            self.session_idle_secs >= 60 && self.session_idle_secs <= self.session_absolute_secs,
            "SESSION_IDLE_SECS must be at least 60 and at most SESSION_ABSOLUTE_SECS ({}), not {}",
            self.session_absolute_secs,
            self.session_idle_secs
        );
        let seconds =
            |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        Ok(SessionLifetimes {
            idle: seconds(self.session_idle_secs),
            absolute: seconds(self.session_absolute_secs),
        })
    }

    fn session_cache_ttl(&self) -> anyhow::Result<std::time::Duration> {
        anyhow::ensure!(
            self.session_cache_secs <= MAX_SESSION_CACHE_SECS,
            "SESSION_CACHE_SECS must be at most {MAX_SESSION_CACHE_SECS} (it bounds how long a \
             sign-out may go unnoticed by another replica), not {}",
            self.session_cache_secs
        );
        Ok(std::time::Duration::from_secs(self.session_cache_secs))
    }

    /// Lazy channels to catalog, seating, payments and analytics, in that
    /// order, opened on the calling runtime.
    fn channels(&self) -> anyhow::Result<[platform::grpc::TracedChannel; 4]> {
        let channel = |url: &str, variable| platform::grpc::channel(url, variable, &self.grpc);
        Ok([
            channel(&self.catalog_url, "CATALOG_URL")?,
            channel(&self.seating_url, "SEATING_URL")?,
            channel(&self.payments_url, "PAYMENTS_URL")?,
            channel(&self.analytics_url, "ANALYTICS_URL")?,
        ])
    }

    /// The gateway's database pool.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        platform::db::connect(
            &self.gateway_database_url,
            "GATEWAY_DATABASE_URL",
            &platform::db::PoolSettings {
                max_connections: self.gateway_db_pool_size,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the gateway's database when missing and applies migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        platform::db::ensure_database(&self.gateway_database_url, "GATEWAY_DATABASE_URL").await?;
        let pool = self.pool().await?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Account administration (`bookmyseat admin`, `bookmyseat seed`) over
    /// the gateway's database, without serving.
    pub async fn accounts(&self) -> anyhow::Result<Accounts> {
        Ok(Accounts::new(
            self.pool().await?,
            self.session_lifetimes()?,
            self.public_base_url()?,
            "",
            platform::outbox::RelayWaker::new(),
        ))
    }
}

/// Applies the gateway's migrations and the outbox tables to `pool`.
pub async fn migrate(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, &MIGRATOR).await?;
    platform::outbox::ensure_schema(pool)
        .await
        .context("creating the outbox tables")
}

/// What the gateway needs that other roles configure too, passed in rather
/// than declared in [`Config`] (so `bookmyseat all` declares `NATS_URL` once).
#[derive(Clone, Debug)]
pub struct Deps {
    /// NATS server for live seat changes (`NATS_URL`).
    pub nats_url: String,
    /// Prefix of the seat-change subjects; empty in production, unique per
    /// test (see `platform::nats::subject`).
    pub subject_prefix: String,
}

impl Deps {
    /// Production subjects on the NATS server at `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            nats_url: nats_url.into(),
            subject_prefix: String::new(),
        }
    }
}

/// Everything a request handler needs, shared behind one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState {
    pub catalog: CatalogClient,
    pub seating: SeatingClient,
    pub payments: PaymentsClient,
    pub analytics: AnalyticsClient,
    pub seat_events: SeatEvents,
    pub accounts: Accounts,
    pub cookies: CookiePolicy,
    /// `PUBLIC_BASE_URL` without a trailing slash.
    pub public_base_url: String,
    pub config: Config,
    /// Fires when the gateway stops; open event streams end on it.
    pub shutdown: platform::Shutdown,
}

impl AppState {
    /// Validates `config` and opens lazy channels to catalog, seating,
    /// payments and analytics (the gateway may start before they do; calls fail with 503 until they are
    /// up). `nats` may still be connecting.
    pub fn new(
        config: Config,
        nats: async_nats::Client,
        subject_prefix: String,
        pool: sqlx::PgPool,
        relay: platform::outbox::RelayWaker,
        shutdown: platform::Shutdown,
    ) -> anyhow::Result<Self> {
        let public_base_url = config.public_base_url()?;
        let [catalog, seating, payments, analytics] = config.channels()?;
        let sessions = SessionCache::new(
            config.session_cache_ttl()?,
            Some((nats.clone(), SessionCache::subject(&subject_prefix))),
        );
        let accounts = Accounts::new(
            pool,
            config.session_lifetimes()?,
            public_base_url.clone(),
            &subject_prefix,
            relay,
        )
        .with_sign_up_limit(config.sign_ups_per_address_per_hour)
        .with_session_cache(sessions);
        Ok(Self {
            catalog: CatalogClient::new(catalog, public_base_url.clone()),
            seating: SeatingClient::new(seating, usize::from(config.map_reads)),
            payments: PaymentsClient::new(payments, config.grpc.request_timeout()),
            analytics: AnalyticsClient::new(analytics),
            seat_events: SeatEvents::new(nats, subject_prefix),
            accounts,
            cookies: CookiePolicy {
                secure: public_base_url.starts_with("https://"),
                trust_forwarded_for: config.trust_forwarded_for,
            },
            public_base_url,
            config,
            shutdown,
        })
    }

    /// The same state with channels of its own to the other services,
    /// opened on the calling thread's runtime (see [`Config::http_threads`]).
    pub fn with_own_channels(&self) -> anyhow::Result<Self> {
        let [catalog, seating, payments, analytics] = self.config.channels()?;
        Ok(Self {
            catalog: CatalogClient::new(catalog, self.public_base_url.clone()),
            seating: self.seating.with_channel(seating),
            payments: PaymentsClient::new(payments, self.config.grpc.request_timeout()),
            analytics: AnalyticsClient::new(analytics),
            ..self.clone()
        })
    }
}

/// Runs the gateway on `GATEWAY_HTTP_ADDR` until `shutdown` fires, over a
/// database `bookmyseat migrate` prepared.
pub async fn run(config: Config, deps: Deps, shutdown: platform::Shutdown) -> anyhow::Result<()> {
    let pool = config.pool().await?;
    let listener = platform::grpc::bind(&config.gateway_http_addr, "GATEWAY_HTTP_ADDR").await?;
    serve(listener, config, deps, pool, shutdown).await
}

/// Serves the gateway on `listener` over an already-migrated database until
/// `shutdown` fires, with its outbox relay and session housekeeping.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    deps: Deps,
    pool: sqlx::PgPool,
    shutdown: platform::Shutdown,
) -> anyhow::Result<()> {
    // Connecting goes on in the background: pages work without NATS, and
    // live updates start once it is reachable.
    let nats = platform::nats::connect(&deps.nats_url).await?;
    let jetstream = async_nats::jetstream::new(nats.clone());
    platform::nats::ensure_streams(
        &jetstream,
        &platform::nats::event_streams(&deps.subject_prefix),
    )
    .await?;
    let relay = platform::outbox::RelayWaker::new();
    let state = AppState::new(
        config,
        nats,
        deps.subject_prefix,
        pool.clone(),
        relay.clone(),
        shutdown.clone(),
    )
    .context("invalid gateway configuration")?;
    let accounts = state.accounts.clone();

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let shutdown = shutdown.clone();
        async move {
            platform::outbox::run_relay(pool, jetstream, relay, Default::default(), shutdown).await;
            Ok(())
        }
    });
    tasks.spawn(accounts.session_cache().clone().listen(shutdown.clone()));
    tasks.spawn(tidy_sessions(accounts, shutdown.clone()));
    let threads = match state.config.http_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        threads => usize::from(threads),
    };
    tasks.spawn(platform::http::serve_on_threads(
        listener,
        threads,
        move || Ok(router(state.with_own_channels()?)),
        shutdown.clone(),
        "gateway",
    ));
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| anyhow::anyhow!("a gateway task panicked: {e}"));
        if let Err(error) = result.and_then(|r| r) {
            first_error.get_or_insert(error);
        }
        // One task ending stops the others: no half-running gateway.
        shutdown.trigger();
    }
    first_error.map_or(Ok(()), Err)
}

/// Forgets ended sessions and reset tokens every few minutes. Expiry never
/// depends on this (lookups check the times); it only keeps tables small.
async fn tidy_sessions(accounts: Accounts, shutdown: platform::Shutdown) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = shutdown.fired() => return Ok(()),
            _ = tokio::time::sleep(std::time::Duration::from_secs(300)) => {}
        }
        match accounts.tidy().await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "ended sessions forgotten"),
            Err(error) => tracing::warn!(%error, "could not tidy sessions; will retry"),
        }
    }
}

/// The whole HTTP application: pages, API, assets, and the layers every
/// response goes through (tracing, body limit, compression, security headers).
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let security_headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));

    Router::new()
        .merge(pages::routes())
        .merge(account_pages::routes())
        .merge(checkout_pages::routes())
        // Nothing under /admin runs for anyone but staff.
        .merge(
            programme_pages::routes()
                .merge(dashboard::routes())
                .route_layer(axum::middleware::from_fn(session::require_staff)),
        )
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/static/{file}", get(assets::serve))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Counted per route template, after routing (see platform::metrics).
        .route_layer(axum::middleware::from_fn(platform::metrics::track_http))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::authenticate,
        ))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        // Joins the browser's trace when it sends `traceparent`.
                        .make_span_with(platform::http::request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(security_headers)
                .layer(RequestBodyLimitLayer::new(REQUEST_BODY_LIMIT))
                // The fastest level: the default spent most of a gzipped
                // response's CPU on compression, for little saving on JSON.
                .layer(CompressionLayer::new().quality(CompressionLevel::Fastest)),
        )
}

/// Addresses no route claims: JSON under `/api/`, a page everywhere else.
async fn not_found(uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if uri.path().starts_with("/api/") {
        api::not_found().await.into_response()
    } else {
        pages::not_found().await.into_response()
    }
}

/// Liveness: the process answers HTTP. It deliberately does not call catalog,
/// so a catalog outage does not get every gateway pod restarted.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the gateway's own dependencies answer — its database (every
/// signed-in request reads a session) and NATS (live seats, the outbox).
/// Catalog and seating are left out on purpose: their outage is theirs to
/// report, and taking every gateway out of the load balancer for it would
/// turn a partial outage into a total one.
async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let database = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(state.accounts.pool()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let nats = state.seat_events.connected();
    let body = serde_json::json!({ "database": database, "nats": nats });
    let status = if database && nats {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
