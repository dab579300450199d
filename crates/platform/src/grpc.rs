//! gRPC for every service: servers that carry the standard health service and
//! stop on the shared shutdown signal, and client channels with connect and
//! request timeouts.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

use crate::config::GrpcClientArgs;
use crate::shutdown::Shutdown;

/// What a service needs to answer: its database and, for those that speak
/// NATS, the NATS connection. The health service reports SERVING only while
/// both answer, so a load balancer or Kubernetes stops sending calls to a
/// replica that could only fail them.
#[derive(Clone, Debug)]
pub struct Dependencies {
    pub pool: sqlx::PgPool,
    pub nats: Option<async_nats::Client>,
}

impl Dependencies {
    /// Whether the database answers a trivial query within a second and
    /// NATS (if any) is connected.
    pub async fn reachable(&self) -> bool {
        let database = tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let nats = self
            .nats
            .as_ref()
            .is_none_or(|n| n.connection_state() == async_nats::connection::State::Connected);
        database && nats
    }
}

/// How often the health service looks at the dependencies.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Serves `service` and the `grpc.health.v1.Health` service on `listener`
/// until `shutdown` fires; in-flight calls finish first. The health service
/// answers SERVING (for the server and for `S`) only while `dependencies`
/// are reachable, checked every two seconds, and NOT_SERVING from the moment
/// shutdown begins.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    dependencies: Dependencies,
    shutdown: Shutdown,
) -> anyhow::Result<()>
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
    let serving = dependencies.reachable().await;
    set_health::<S>(&reporter, serving).await;
    let address = listener.local_addr()?;
    tracing::info!(%address, service = S::NAME, serving, "gRPC server listening");

    let watcher = {
        let (reporter, shutdown) = (reporter.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut was = serving;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
                    _ = shutdown.fired() => break,
                }
                let now = dependencies.reachable().await;
                if now != was {
                    if now {
                        tracing::info!(service = S::NAME, "dependencies reachable again: serving");
                    } else {
                        tracing::warn!(
                            service = S::NAME,
                            "database or NATS unreachable: not serving"
                        );
                    }
                    set_health::<S>(&reporter, now).await;
                    was = now;
                }
            }
        })
    };
    let stopping = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.fired().await;
            // Load balancers watching health stop sending new calls first.
            set_health::<S>(&reporter, false).await;
        }
    };
    let served = Server::builder()
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopping,
        )
        .await
        .with_context(|| format!("gRPC server for {} failed", S::NAME));
    watcher.abort();
    served
}

/// Sets the health of the whole server ("") and of `S` together.
async fn set_health<S: NamedService>(
    reporter: &tonic_health::server::HealthReporter,
    serving: bool,
) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter.set_service_status(S::NAME, status).await;
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
