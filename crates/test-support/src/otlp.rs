//! An OTLP/gRPC trace receiver for tests: what a collector (or Jaeger) is
//! in production, reduced to remembering every span it is sent.
//!
//! Point a service's `OTEL_EXPORTER_OTLP_ENDPOINT` at
//! [`OtlpReceiver::endpoint`] and wait, with [`OtlpReceiver::wait_until`],
//! for the spans a scenario must have produced. Waiting is woken by each
//! export, never by a fixed sleep.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::sync::watch;

/// One received span, ids as lowercase hex (as in `traceparent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub name: String,
    /// Server for a request received, client for a call made.
    pub kind: SpanKind,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    received: watch::Receiver<usize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OtlpReceiver {
    /// Listens on a free local port.
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port for the OTLP receiver");
        let address = listener.local_addr().expect("a local address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (notify, received) = watch::channel(0);
        let service = Collector {
            spans: spans.clone(),
            notify,
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await;
        });
        OtlpReceiver {
            endpoint: format!("http://{address}"),
            spans,
            received,
            server,
        }
    }

    /// The URL for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().expect("spans lock").clone()
    }

    /// Waits until `done` holds for the spans received so far, re-checking
    /// after each export. On timeout returns the spans it had, so the test
    /// can say what was missing.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[CollectedSpan]) -> bool,
    ) -> Result<Vec<CollectedSpan>, Vec<CollectedSpan>> {
        let mut received = self.received.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                if received.changed().await.is_err() {
                    // The server stopped: nothing more will arrive.
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.map_err(|_| self.spans())
    }
}

struct Collector {
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    notify: watch::Sender<usize>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut collected = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    collected.push(CollectedSpan {
                        service: service.clone(),
                        kind: span.kind(),
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                    });
                }
            }
        }
        let total = {
            let mut spans = self.spans.lock().expect("spans lock");
            spans.extend(collected);
            spans.len()
        };
        self.notify.send_replace(total);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}
