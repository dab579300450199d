//! W3C trace context (`traceparent`, `tracestate`) across process
//! boundaries: HTTP and gRPC headers, and NATS message headers, so one
//! booking is one trace from the browser's request to the email.
//!
//! Everything goes through the globally installed text-map propagator,
//! which [`crate::telemetry::init`] sets to W3C trace context only when
//! spans are exported. Without it the global propagator is a no-op:
//! injection writes nothing and extraction finds nothing, so the helpers
//! here cost next to nothing when tracing is off.
//!
//! The three carriers (an `http::HeaderMap`, which is also what tonic's
//! metadata is underneath, an `async_nats::HeaderMap`, and an outbox row)
//! each get their one adapter here.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Writes `span`'s context into HTTP (or gRPC) request headers.
pub fn inject_http(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HttpInjector(headers))
    });
}

/// The remote context in HTTP (or gRPC) request headers, if any.
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HttpExtractor(headers))
    })
}

/// Makes the caller's context (from request headers) the parent of `span`.
/// Nothing happens when the headers carry none.
pub fn set_parent_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    set_remote_parent(span, extract_http(headers));
}

/// Makes the producer's context (from a NATS message's headers) the parent
/// of `span`.
pub fn set_parent_from_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(headers) = headers {
        let context = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&NatsExtractor(headers))
        });
        set_remote_parent(span, context);
    }
}

fn set_remote_parent(span: &tracing::Span, context: Context) {
    use opentelemetry::trace::TraceContextExt as _;
    if context.span().span_context().is_valid() {
        // Fails only when the span was already started or is not traced;
        // then it keeps its local parent, which is the best left to do.
        let _ = span.set_parent(context);
    }
}

/// A span's trace context in storable form: what an outbox row keeps so
/// the relay, running later and elsewhere, can hand it to the consumers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl StoredContext {
    /// The context of the current span; empty when tracing is off or there
    /// is no span.
    pub fn current() -> Self {
        let context = tracing::Span::current().context();
        let mut fields = HashMap::new();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut fields)
        });
        StoredContext {
            traceparent: fields.remove(TRACEPARENT),
            tracestate: fields.remove(TRACESTATE).filter(|s| !s.is_empty()),
        }
    }

    /// Adds `traceparent` (and `tracestate`) to a message's headers.
    pub fn write_to(&self, headers: &mut async_nats::HeaderMap) {
        if let Some(traceparent) = &self.traceparent {
            headers.insert(TRACEPARENT, traceparent.as_str());
            if let Some(tracestate) = &self.tracestate {
                headers.insert(TRACESTATE, tracestate.as_str());
            }
        }
    }
}

struct HttpInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HttpInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HttpExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HttpExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn propagator() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }

    #[test]
    fn a_traceparent_survives_http_and_nats_headers() {
        propagator();
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert(TRACEPARENT, PARENT.parse().unwrap());
        let context = extract_http(&http_headers);
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );

        let stored = StoredContext {
            traceparent: Some(PARENT.into()),
            tracestate: Some("vendor=1".into()),
        };
        let mut nats_headers = async_nats::HeaderMap::new();
        stored.write_to(&mut nats_headers);
        let extracted = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&NatsExtractor(&nats_headers))
        });
        let span = extracted.span();
        assert_eq!(
            span.span_context().span_id().to_string(),
            "b7ad6b7169203331"
        );
        assert_eq!(
            span.span_context().trace_state().header(),
            "vendor=1".to_owned()
        );
    }
}
