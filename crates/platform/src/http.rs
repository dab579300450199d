//! HTTP serving for the roles that face browsers or webhooks: an axum router
//! on a listener, stopped gracefully by the shared shutdown signal, and the
//! request span every such server opens ([`request_span`]).

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Serves `router` until `shutdown` fires; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: Shutdown,
    name: &'static str,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, server = name, "HTTP server listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.fired().await })
    .await
    .with_context(|| format!("HTTP server {name} failed"))
}

/// The span of one incoming HTTP request (for `tower_http`'s `TraceLayer`
/// `make_span_with`): method, URI and version, as log lines have always
/// shown. When spans are exported, its parent is the caller's W3C
/// `traceparent` header if it sent one (a browser's or a script's
/// instrumentation), so the request joins the caller's trace.
pub fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    if crate::telemetry::exporting() {
        span.record(
            "otel.name",
            format!("{} {}", request.method(), request.uri().path()),
        );
        span.record("otel.kind", "server");
        crate::trace_context::set_parent_from_http(&span, request.headers());
    }
    span
}
