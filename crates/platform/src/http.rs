//! HTTP serving for the roles that face browsers or webhooks: an axum router
//! on a listener, stopped gracefully by the shared shutdown signal.

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
