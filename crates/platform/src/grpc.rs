//! gRPC for every service: servers that carry the standard health service and
//! stop on the shared shutdown signal, and client channels with connect and
//! request timeouts.
//!
//! Both ends carry the W3C trace context when spans are exported
//! ([`crate::telemetry`]): a client call opens a `grpc.client` span and
//! sends it as `traceparent` metadata ([`TracedChannel`]); the server opens
//! its `grpc.server` span as that span's child ([`TraceContextLayer`]). With
//! tracing off both are a pass-through.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

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
        let database = tokio::time::timeout(Duration::from_secs(1), self.database_answers())
            .await
            .unwrap_or(false);
        let nats = self
            .nats
            .as_ref()
            .is_none_or(|n| n.connection_state() == async_nats::connection::State::Connected);
        database && nats
    }
}

impl Dependencies {
    /// A trivial query over an idle pooled connection or, when every pooled
    /// connection is busy, over a connection of its own. A rush keeps the
    /// whole pool busy; queueing behind it would report a busy database as
    /// an unreachable one and take the replica out of service just when it
    /// is needed most.
    async fn database_answers(&self) -> bool {
        use sqlx::{ConnectOptions as _, Connection as _};
        // A closed pool serves nothing, whatever the database says.
        if self.pool.is_closed() {
            return false;
        }
        if let Some(mut connection) = self.pool.try_acquire() {
            return sqlx::query("SELECT 1")
                .execute(&mut *connection)
                .await
                .is_ok();
        }
        match self.pool.connect_options().connect().await {
            Ok(mut connection) => {
                let answered = sqlx::query("SELECT 1")
                    .execute(&mut connection)
                    .await
                    .is_ok();
                let _ = connection.close().await;
                answered
            }
            Err(_) => false,
        }
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
        .layer(TraceContextLayer)
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
/// its peers) and reconnects on its own; every call has the request timeout
/// and carries the caller's trace context.
pub fn channel(
    url: &str,
    variable: &str,
    timeouts: &GrpcClientArgs,
) -> anyhow::Result<TracedChannel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{variable} is not a valid URL: {url}"))?
        .connect_timeout(timeouts.connect_timeout())
        .timeout(timeouts.request_timeout())
        .tcp_nodelay(true);
    Ok(TracedChannel::new(endpoint.connect_lazy()))
}

/// The `(service, method)` of a gRPC request path `/pkg.Service/Method`.
fn rpc_names(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// A tonic channel whose calls carry the trace context: each call runs in a
/// `grpc.client` span (a child of the caller's span) whose context goes out
/// as `traceparent` metadata. Generated clients take it like a `Channel`.
#[derive(Clone, Debug)]
pub struct TracedChannel {
    inner: Channel,
}

impl TracedChannel {
    pub fn new(inner: Channel) -> Self {
        Self { inner }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for TracedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = Either<
        <Channel as tower::Service<http::Request<tonic::body::Body>>>::Future,
        Instrumented<<Channel as tower::Service<http::Request<tonic::body::Body>>>::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if !crate::telemetry::exporting() {
            return Either::Left(self.inner.call(request));
        }
        let path = request.uri().path().to_owned();
        let (service, method) = rpc_names(&path);
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
        );
        crate::trace_context::inject_http(&span, request.headers_mut());
        Either::Right(self.inner.call(request).instrument(span))
    }
}

/// Server side of [`TracedChannel`]: every call (health checks aside) runs in
/// a `grpc.server` span whose parent is the caller's context from the
/// request metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

/// The service [`TraceContextLayer`] wraps around a gRPC server.
#[derive(Clone, Debug)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if !crate::telemetry::exporting() || path.starts_with("/grpc.health.v1.Health/") {
            return Either::Left(self.inner.call(request));
        }
        let (service, method) = rpc_names(path);
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
        );
        crate::trace_context::set_parent_from_http(&span, request.headers());
        let call = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Either::Right(call.instrument(span))
    }
}

/// Binds a TCP listener, naming the variable on failure (a port in use is
/// the usual cause).
pub async fn bind(address: &str, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({variable}); is the port in use?"))
}
