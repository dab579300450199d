//! Logging and distributed tracing for every role.
//!
//! Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as
//! human-readable lines or JSON (`LOG_FORMAT=json`, for log collectors).
//! Installed once per process, so `bookmyseat all` shares it.
//!
//! Traces: only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, an OpenTelemetry
//! layer turns the same `tracing` spans into OTLP spans, exported over gRPC
//! in batches, with the role as `service.name` (`OTEL_SERVICE_NAME`
//! overrides it) and the build's version as `service.version`. The W3C
//! trace-context propagator is installed globally at the same time, and
//! [`crate::trace_context`] carries it across gRPC, HTTP and NATS, so one
//! booking is one trace. Without the variable nothing of this is installed:
//! no exporter, no propagator (injection writes nothing), no extra spans.
//!
//! With tracing on, JSON log lines inside a span carry the span's
//! `trace_id`, so a log search leads to the trace and back.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::ValueEnum;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Whether spans are being exported. Read on every gRPC call and outbox
/// write, so a plain atomic rather than a look-up.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// True once [`init`] installed the OpenTelemetry layer: the propagation
/// helpers create their extra spans only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Who is exporting spans: the role (`gateway`, `seating`, … or `bookmyseat`
/// for `all`) and the build.
#[derive(Clone, Copy, Debug)]
pub struct ServiceIdentity<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// Keeps the span exporter alive; [`TelemetryGuard::shutdown`] (or, as a
/// fallback, drop) flushes the spans still buffered.
#[must_use = "dropping the guard shuts the span exporter down"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports what is buffered and stops the exporter. Runs off the async
    /// runtime: the SDK blocks while the batch goes out.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                eprintln!("spans not flushed on shutdown: {error}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber, and with `otlp_endpoint` (a URL such as
/// `http://jaeger:4317`; empty means off) the OpenTelemetry layer and the
/// W3C propagator. Later calls (tests starting several services in one
/// process) leave the first subscriber in place. Must run inside the Tokio
/// runtime: the exporter's gRPC channel lives on it.
pub fn init(
    format: LogFormat,
    service: ServiceIdentity<'_>,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
    let Some(endpoint) = endpoint else {
        let registry = tracing_subscriber::registry().with(filter);
        let result = match format {
            LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
            LogFormat::Json => registry
                .with(fmt::layer().json().flatten_event(true))
                .try_init(),
        };
        // An already-installed subscriber is fine: the first one wins.
        let _ = result;
        return Ok(TelemetryGuard::default());
    };

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| {
            format!("OTEL_EXPORTER_OTLP_ENDPOINT is not a usable OTLP/gRPC endpoint: {endpoint}")
        })?;
    // The variable the OpenTelemetry specification defines wins over the role.
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.name.to_owned());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            service.version.to_owned(),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("bookmyseat"));

    // Spans at INFO and above are exported whatever RUST_LOG says about log
    // lines; the HTTP/2 and gRPC plumbing stays out (the exporter itself
    // speaks gRPC, and its own spans would feed back into the export).
    let exported = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    let dispatch = std::sync::Arc::new(OnceLock::new());
    let registry = tracing_subscriber::registry()
        .with(otel.with_filter(exported))
        .with(DispatchRecorder(dispatch.clone()));
    let fmt_filter = filter;
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_target(true).with_filter(fmt_filter))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .event_format(WithTraceId {
                        inner: fmt::format().json().flatten_event(true),
                        dispatch,
                    })
                    .with_filter(fmt_filter),
            )
            .try_init(),
    };
    if result.is_err() {
        // Someone else's subscriber is in place; ours would see no spans.
        let _ = provider.shutdown();
        return Ok(TelemetryGuard::default());
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// Remembers the dispatcher it was registered with, so the JSON formatter
/// can ask the OpenTelemetry layer for a span's trace id.
struct DispatchRecorder(std::sync::Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for DispatchRecorder {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// The JSON line of `inner` with a leading `"trace_id"` field when the
/// event happens inside a traced span.
struct WithTraceId<F> {
    inner: F,
    dispatch: std::sync::Arc<OnceLock<WeakDispatch>>,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        let trace_id = span.and_then(|span| {
            let dispatch = self.dispatch.get()?.upgrade()?;
            let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let span_context = context.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| span_context.trace_id().to_string())
        });
        let Some(trace_id) = trace_id else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_in_a_traced_span_carry_its_trace_id() {
        let provider = SdkTracerProvider::builder().build();
        let lines = Lines::default();
        let dispatch = std::sync::Arc::new(OnceLock::new());
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(DispatchRecorder(dispatch.clone()))
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .event_format(WithTraceId {
                        inner: fmt::format().json().flatten_event(true),
                        dispatch,
                    })
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("request");
            let trace_id = span.context().span().span_context().trace_id();
            span.in_scope(|| tracing::info!(hold = "h1", "inside the request"));

            let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
            let logged: Vec<serde_json::Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).expect("each line is JSON"))
                .collect();
            assert_eq!(logged.len(), 2, "{text}");
            assert!(logged[0].get("trace_id").is_none(), "{text}");
            assert_eq!(logged[1]["trace_id"], trace_id.to_string(), "{text}");
            assert_eq!(logged[1]["hold"], "h1", "{text}");
        });
    }
}
