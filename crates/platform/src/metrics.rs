//! Prometheus metrics for every role: one recorder per process, served as
//! text on `/metrics` at `METRICS_ADDR` (a port of its own, so the public
//! HTTP port never exposes them), plus the layers that count requests.
//!
//! Code records with the `metrics` crate's macros wherever something happens
//! (`metrics::counter!("bookmyseat_holds_total", "outcome" => "granted")`);
//! without an installed recorder (unit and integration tests) the macros do
//! nothing, so recording never needs a guard. [`install`] is idempotent, so
//! `bookmyseat all` (every role in one process) has one registry and one
//! endpoint.
//!
//! Names: `bookmyseat_http_requests_total{route,method,status}` and
//! `bookmyseat_http_request_duration_seconds{route,method}` for axum
//! servers; `bookmyseat_grpc_requests_total{method,code}` and
//! `bookmyseat_grpc_request_duration_seconds{method}` for gRPC servers; the
//! domain counters next to the code that moves them (holds, bookings,
//! payments, refunds, emails); `bookmyseat_outbox_backlog{database}` and
//! `bookmyseat_consumer_pending{consumer}` gauges from the outbox relay and
//! the consumers; `bookmyseat_seat_map_reads_waiting` and
//! `bookmyseat_hold_phase_duration_seconds{phase}` from seating;
//! `bookmyseat_gateway_session_lookups_total` and
//! `bookmyseat_gateway_session_lookup_queries_total` from the gateway.
//! Durations are histograms with fixed buckets (milliseconds to seconds), so
//! they can be aggregated across replicas.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::shutdown::Shutdown;

/// Where the metrics endpoint listens.
#[derive(clap::Args, Clone, Debug)]
pub struct MetricsArgs {
    /// Address of the Prometheus `/metrics` endpoint (its own port); `off`
    /// turns it off.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
}

/// Buckets for every `*_duration_seconds` histogram.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> anyhow::Result<&'static PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".to_owned()),
            DURATION_BUCKETS,
        )
        .context("configuring metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Serves `/metrics` on `address` until `shutdown` fires; with `off` (or
/// nothing) it only waits for shutdown, so a role never stops early because
/// its metrics are off.
pub async fn serve(address: &str, shutdown: Shutdown) -> anyhow::Result<()> {
    let address = address.trim();
    if address.is_empty() || address.eq_ignore_ascii_case("off") {
        shutdown.fired().await;
        return Ok(());
    }
    let handle = install()?;
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
        format!("METRICS_ADDR {address} cannot be bound (in use?); set METRICS_ADDR to a free address, or to off")
    })?;
    // Histograms keep raw samples until drained; drain them regularly even
    // when nobody scrapes.
    let upkeep = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                    _ = shutdown.fired() => break,
                }
            }
        })
    };
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { handle.render() }),
    );
    let served = crate::http::serve(listener, router, shutdown, "metrics").await;
    upkeep.abort();
    served
}

/// Axum middleware (use as a `route_layer`, where the matched route is
/// known): counts and times every request by route template, method and
/// status. Route templates (`/showtimes/{id}`) keep the label set small.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "bookmyseat_http_request_duration_seconds",
        "route" => route.clone(),
        "method" => method.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "bookmyseat_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status
    )
    .increment(1);
    response
}

/// A tower layer for gRPC servers: counts and times every call by method
/// and status code.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a gRPC server.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let answer = call.await;
            // Errors travel as trailers-only responses, so their status is
            // in the headers; a success's status is in the trailers: OK.
            let code = match &answer {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| "0".to_owned(), str::to_owned),
                Err(_) => "transport".to_owned(),
            };
            metrics::histogram!(
                "bookmyseat_grpc_request_duration_seconds",
                "method" => method.clone()
            )
            .record(started.elapsed().as_secs_f64());
            metrics::counter!("bookmyseat_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_endpoint_serves_what_was_recorded() {
        let shutdown = Shutdown::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        install().expect("a recorder");
        let server = tokio::spawn(serve_owned(address.clone(), shutdown.clone()));
        metrics::counter!("bookmyseat_test_events_total", "kind" => "example").increment(3);
        let body = get(&address, "/metrics").await;
        assert!(
            body.contains("bookmyseat_test_events_total{kind=\"example\"} 3"),
            "{body}"
        );
        shutdown.trigger();
        server.await.expect("joined").expect("served");
    }

    async fn serve_owned(address: String, shutdown: Shutdown) -> anyhow::Result<()> {
        serve(&address, shutdown).await
    }

    /// A plain HTTP/1.1 GET, retried while the server is starting.
    async fn get(address: &str, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        for _ in 0..100 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
                stream.write_all(request.as_bytes()).await.expect("write");
                let mut body = String::new();
                stream.read_to_string(&mut body).await.expect("read");
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the metrics server never answered on {address}");
    }

    #[tokio::test]
    async fn off_waits_for_shutdown_instead_of_ending() {
        let shutdown = Shutdown::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve("off", shutdown).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !task.is_finished(),
            "a role must not stop because metrics are off"
        );
        shutdown.trigger();
        task.await.expect("joined").expect("ok");
    }
}
