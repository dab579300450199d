//! gRPC for every service: servers that carry the standard health service and
//! stop on the shared shutdown signal, and client channels with connect and
//! request timeouts.

use std::convert::Infallible;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

use crate::config::GrpcClientArgs;
use crate::shutdown::Shutdown;

/// Serves `service` and the `grpc.health.v1.Health` service on `listener`
/// until `shutdown` fires; in-flight calls finish first.
pub async fn serve<S>(listener: TcpListener, service: S, shutdown: Shutdown) -> anyhow::Result<()>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    let address = listener.local_addr()?;
    tracing::info!(%address, service = S::NAME, "gRPC server listening");

    let stopping = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.fired().await;
            // Load balancers watching health stop sending new calls first.
            reporter.set_not_serving::<S>().await;
        }
    };
    Server::builder()
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopping,
        )
        .await
        .with_context(|| format!("gRPC server for {} failed", S::NAME))
}

/// A channel to another service. Connects lazily (a service may start before
/// its peers) and reconnects on its own; every call has the request timeout.
pub fn channel(url: &str, variable: &str, timeouts: &GrpcClientArgs) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{variable} is not a valid URL: {url}"))?
        .connect_timeout(timeouts.connect_timeout())
        .timeout(timeouts.request_timeout())
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Binds a TCP listener, naming the variable on failure (a port in use is
/// the usual cause).
pub async fn bind(address: &str, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({variable}); is the port in use?"))
}
