//! The gateway: the only BookMySeat service that faces browsers.
//!
//! It renders the pages (home, film, the live seat page) as plain HTML that
//! works without JavaScript, serves the JSON API under `/api/v1` with its
//! OpenAPI document, streams live seat changes as Server-Sent Events, and
//! draws fallback posters. It owns no data of its own yet: films and
//! showtimes come from the catalog service and seats and holds from the
//! seating service over gRPC, through [`catalog_client`] and
//! [`seating_client`], which turn protobuf messages into the JSON types of
//! [`resources`] once, so pages and API never see prost types. Seat changes
//! arrive over NATS core ([`seat_events`]). Who is asking is, until accounts
//! exist, the development stand-in of [`dev_identity`].
//!
//! Start-up is split the zero2prod way: [`run`] binds the configured address,
//! [`serve`] takes any listener (tests pass port 0), and [`router`] builds the
//! axum application from an [`AppState`].

pub mod api;
pub mod assets;
pub mod catalog_client;
pub mod dev_identity;
pub mod error;
pub mod film_filter;
pub mod fingerprint;
pub mod local_time;
pub mod money;
pub mod pages;
pub mod poster;
pub mod resources;
pub mod seat_events;
pub mod seat_selection;
pub mod seating_client;
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
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::catalog_client::CatalogClient;
use crate::seat_events::SeatEvents;
use crate::seating_client::SeatingClient;

const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_CATALOG_URL: &str = "http://127.0.0.1:50051";
const DEFAULT_SEATING_URL: &str = "http://127.0.0.1:50052";
const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

/// Largest request body the gateway reads; browsing needs none, and later
/// forms (login, seat holds) are far smaller.
pub const REQUEST_BODY_LIMIT: usize = 64 * 1024;

/// What the page's scripts, styles, images and frames may load. No inline
/// scripts or styles anywhere; only the YouTube privacy-enhanced player may be
/// framed (the trailer modal), and nobody may frame us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; \
     frame-src https://www.youtube-nocookie.com; frame-ancestors 'none'; base-uri 'self'; \
     form-action 'self'; object-src 'none'";

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
    /// The address browsers reach the gateway at; absolute links in the JSON
    /// API (fallback posters) start with it.
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = DEFAULT_PUBLIC_BASE_URL)]
    pub public_base_url: String,
    // Connect and request timeouts for the calls to catalog and seating.
    #[command(flatten)]
    pub grpc: platform::config::GrpcClientArgs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gateway_http_addr: DEFAULT_HTTP_ADDR.to_owned(),
            catalog_url: DEFAULT_CATALOG_URL.to_owned(),
            seating_url: DEFAULT_SEATING_URL.to_owned(),
            public_base_url: DEFAULT_PUBLIC_BASE_URL.to_owned(),
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
    pub seat_events: SeatEvents,
    /// `PUBLIC_BASE_URL` without a trailing slash.
    pub public_base_url: String,
    pub config: Config,
    /// Fires when the gateway stops; open event streams end on it.
    pub shutdown: platform::Shutdown,
}

impl AppState {
    /// Validates `config` and opens lazy channels to catalog and seating (the
    /// gateway may start before they do; calls fail with 503 until they are
    /// up). `nats` may still be connecting.
    pub fn new(
        config: Config,
        nats: async_nats::Client,
        subject_prefix: String,
        shutdown: platform::Shutdown,
    ) -> anyhow::Result<Self> {
        let public_base_url = config.public_base_url()?;
        let catalog = platform::grpc::channel(&config.catalog_url, "CATALOG_URL", &config.grpc)?;
        let seating = platform::grpc::channel(&config.seating_url, "SEATING_URL", &config.grpc)?;
        Ok(Self {
            catalog: CatalogClient::new(catalog, public_base_url.clone()),
            seating: SeatingClient::new(seating),
            seat_events: SeatEvents::new(nats, subject_prefix),
            public_base_url,
            config,
            shutdown,
        })
    }
}

/// Runs the gateway on `GATEWAY_HTTP_ADDR` until `shutdown` fires.
pub async fn run(config: Config, deps: Deps, shutdown: platform::Shutdown) -> anyhow::Result<()> {
    let listener = platform::grpc::bind(&config.gateway_http_addr, "GATEWAY_HTTP_ADDR").await?;
    serve(listener, config, deps, shutdown).await
}

/// Serves the gateway on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    deps: Deps,
    shutdown: platform::Shutdown,
) -> anyhow::Result<()> {
    // Connecting goes on in the background: pages work without NATS, and
    // live updates start once it is reachable.
    let nats = platform::nats::connect(&deps.nats_url).await?;
    let state = AppState::new(config, nats, deps.subject_prefix, shutdown.clone())
        .context("invalid gateway configuration")?;
    platform::http::serve(listener, router(state), shutdown, "gateway").await
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
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/static/{file}", get(assets::serve))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
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
