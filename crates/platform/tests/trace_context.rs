//! The W3C trace context of an event goes the whole way through the outbox:
//! the span that writes the event → the outbox row → the message headers
//! the relay publishes → the consumer's `event` span, which continues the
//! writer's trace. Real PostgreSQL and JetStream.
//!
//! A test binary of its own: it installs the process-wide subscriber (with
//! the OpenTelemetry layer) before any span exists, as `telemetry::init`
//! does in a service, so no other test's callsites race with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use platform::consumer::{self, ConsumerSpec, Delivery, Handler, HandlerError, Outcome};
use platform::nats;
use platform::outbox::{self, OutboxEvent, RelaySettings};
use sqlx::PgConnection;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::prelude::*;
use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Hands the trace id of the span it runs in to the test.
#[derive(Clone, Default)]
struct TraceRecordingHandler {
    seen: Arc<Mutex<Option<TraceId>>>,
}

impl Handler for TraceRecordingHandler {
    type Committed = ();

    async fn handle<'a>(
        &'a self,
        _connection: &'a mut PgConnection,
        _delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let context = tracing::Span::current().context();
        *self.seen.lock().unwrap() = Some(context.span().span_context().trace_id());
        Ok(())
    }
}

#[tokio::test]
async fn an_events_trace_context_goes_through_the_outbox_into_the_consumers_span() {
    // Tracing on, as `telemetry::init` turns it on: spans get OpenTelemetry
    // ids (no exporter needed) and the W3C propagator is the global one.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .try_init()
        .expect("the only subscriber of this test binary");
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    let db = test_support::TestDb::create("platform_trace").await;
    outbox::ensure_schema(&db.pool).await.unwrap();
    let jetstream = jetstream::new(nats::connect(&nats_url()).await.unwrap());
    let tag = Uuid::new_v4().simple().to_string();
    let (stream_name, subject) = (format!("T{tag}"), format!("t{tag}.events"));
    jetstream
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("t{tag}.>")],
            ..Default::default()
        })
        .await
        .unwrap();

    // The producer writes the event inside its request span.
    let request = tracing::info_span!("request");
    let producer = request.context().span().span_context().clone();
    assert!(producer.is_valid(), "the test's span is traced");
    let sent = OutboxEvent {
        id: Uuid::new_v4(),
        subject: subject.clone(),
        event_type: "TestEvent".into(),
        payload: b"traced".to_vec(),
    };
    async {
        let mut tx = db.pool.begin().await.unwrap();
        outbox::enqueue(&mut tx, &sent).await.unwrap();
        tx.commit().await.unwrap();
    }
    .instrument(request.clone())
    .await;
    let stored: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT traceparent, tracestate FROM outbox WHERE id = $1")
            .bind(sent.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored.0.as_deref(),
        Some(format!("00-{}-{}-01", producer.trace_id(), producer.span_id()).as_str()),
        "the row keeps the writer's traceparent"
    );

    // The relay, outside any span, publishes it with the stored context.
    let relayed = outbox::relay_once(&db.pool, &jetstream, &RelaySettings::default())
        .await
        .unwrap();
    assert_eq!(relayed, 1);
    let message = jetstream
        .get_stream(&stream_name)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(
        message.headers.get("traceparent").map(|v| v.as_str()),
        stored.0.as_deref(),
        "the message carries the traceparent"
    );

    // The consumer's event span continues the producer's trace.
    let spec = ConsumerSpec::new(
        &stream_name,
        "traced-consumer",
        std::slice::from_ref(&subject),
    );
    let consumer = consumer::durable_consumer(&jetstream, &spec).await.unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let delivered = futures::StreamExt::next(&mut messages)
        .await
        .expect("the event is delivered")
        .unwrap();
    let handler = TraceRecordingHandler::default();
    let outcome = consumer::handle_message(&db.pool, &spec, &handler, &delivered).await;
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(
        *handler.seen.lock().unwrap(),
        Some(producer.trace_id()),
        "the handler runs in the producer's trace"
    );

    // Events decided in spans of their own and written together later (a
    // consumer's batch) keep each its own span's context.
    let spans = [tracing::info_span!("first"), tracing::info_span!("second")];
    let pending: Vec<outbox::Pending> = spans
        .iter()
        .map(|span| {
            span.in_scope(|| {
                OutboxEvent::new("", &subject, "TestEvent", b"batched".to_vec()).pending()
            })
        })
        .collect();
    let mut tx = db.pool.begin().await.unwrap();
    outbox::enqueue_all(&mut tx, &pending).await.unwrap();
    tx.commit().await.unwrap();
    let stored: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT traceparent FROM outbox WHERE payload = 'batched'::bytea ORDER BY seq",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let expected: Vec<Option<String>> = spans
        .iter()
        .map(|span| {
            let context = span.context();
            let span_context = context.span().span_context().clone();
            Some(format!(
                "00-{}-{}-01",
                span_context.trace_id(),
                span_context.span_id()
            ))
        })
        .collect();
    assert_eq!(
        stored, expected,
        "each row keeps its own span's traceparent"
    );
    jetstream.delete_stream(&stream_name).await.unwrap();
}
