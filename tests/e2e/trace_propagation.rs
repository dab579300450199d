//! One booking is one trace: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, every
//! role (each its own process) exports its spans to an OTLP receiver this
//! test runs, and the spans of one purchase — the browser's requests, the
//! gateway's gRPC calls, payments, the JetStream hops to seating, the
//! notifier and analytics — share the browser's trace id, each span's
//! parent being a span of that same trace.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use test_support::otlp::{CollectedSpan, OtlpReceiver, SpanKind};

use super::{Environment, SERVICES};

/// The browser's trace and span, as its instrumentation would send them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_booking_is_one_trace_from_the_browser_to_the_email() {
    let receiver = OtlpReceiver::start().await;
    let mut env = Environment::new().await;
    env.migrate_and_seed().await;
    env.vars.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            receiver.endpoint().to_owned(),
        ),
        // Export within a tenth of a second rather than five.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]);
    let system = env.start_services().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let buyer = env.sign_up(&http, "grace@example.com", "Grace").await;
    let showtime_id = env.first_showtime(&http, "metropolis").await;

    // The purchase, every request sent from the browser's one span.
    let traceparent = format!("00-{TRACE_ID}-{BROWSER_SPAN}-01");
    let traced = |request: reqwest::RequestBuilder| request.header("traceparent", &traceparent);
    let hold =
        traced(buyer.on(http.post(env.url(&format!("/api/v1/showtimes/{showtime_id}/holds")))))
            .json(&serde_json::json!({ "seats": ["E6", "E7"] }))
            .send()
            .await
            .expect("the gateway answers");
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let hold_id = hold["id"].as_str().expect("hold id");
    let checkout =
        traced(buyer.on(http.post(env.url(&format!("/api/v1/holds/{hold_id}/checkout")))))
            .send()
            .await
            .expect("the gateway answers");
    assert_eq!(checkout.status(), 201);
    let checkout: serde_json::Value = checkout.json().await.expect("a checkout");
    let pay_page = checkout["url"].as_str().expect("a url").to_owned();
    let paid = traced(http.post(format!("{pay_page}/pay")))
        .send()
        .await
        .expect("paying");
    assert_eq!(paid.status(), 303);

    // The trace is complete once every role has reported its part, the
    // notifier's and analytics' from the events they consumed, and every
    // span's parent has arrived too.
    let outcome = receiver
        .wait_until(Duration::from_secs(60), |spans| {
            one_connected_trace(spans).is_ok()
        })
        .await;
    let spans = match outcome {
        Ok(spans) => spans,
        Err(spans) => {
            let problem = one_connected_trace(&spans).expect_err("the wait timed out");
            let ours: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
            panic!("the booking's trace is incomplete after 60 s: {problem}\nits spans: {ours:#?}");
        }
    };
    let ours: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    assert!(
        ours.len() >= 10,
        "a booking takes more than a handful of spans: {ours:#?}"
    );

    system.stop().await;
}

/// `Ok` when the spans of [`TRACE_ID`] come from every role, each one's
/// parent is either the browser's span (a request it sent) or a span of the
/// trace, and the hops between processes are where the design puts them:
/// gateway's gRPC client → payments' gRPC server; payments → (JetStream) →
/// seating; seating → (JetStream) → notifier and analytics.
fn one_connected_trace(spans: &[CollectedSpan]) -> Result<(), String> {
    let ours: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let by_id: HashMap<&str, &CollectedSpan> =
        ours.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let services: BTreeSet<&str> = ours.iter().map(|s| s.service.as_str()).collect();
    for role in SERVICES {
        if !services.contains(role) {
            return Err(format!("no span from {role} yet (have {services:?})"));
        }
    }
    for span in &ours {
        if span.parent_span_id == BROWSER_SPAN {
            let http_request = span.kind == SpanKind::Server
                && (span.name.starts_with("GET /") || span.name.starts_with("POST /"));
            if !http_request {
                return Err(format!(
                    "{span:?} hangs off the browser but is no HTTP request"
                ));
            }
        } else if !by_id.contains_key(span.parent_span_id.as_str()) {
            return Err(format!("the parent of {span:?} is not in the trace (yet)"));
        }
    }
    // A server span in `to` whose parent is a client span in `from`.
    let call = |from: &str, to: &str, method: &str| {
        ours.iter().any(|span| {
            span.service == to
                && span.kind == SpanKind::Server
                && span.name.ends_with(method)
                && by_id
                    .get(span.parent_span_id.as_str())
                    .is_some_and(|parent| parent.service == from && parent.kind == SpanKind::Client)
        })
    };
    for (from, to, method) in [
        ("gateway", "seating", "SeatingService/HoldSeats"),
        ("gateway", "payments", "PaymentsService/CreateCheckout"),
        ("payments", "catalog", "CatalogService/GetShowtime"),
    ] {
        if !call(from, to, method) {
            return Err(format!("no {from} → {to} {method} call in the trace yet"));
        }
    }
    // An `event` span in `to` whose parent is a span of `from` (the one that
    // wrote the event to its outbox).
    let event = |from: &str, to: &str| {
        ours.iter().any(|span| {
            span.service == to
                && span.name == "event"
                && by_id
                    .get(span.parent_span_id.as_str())
                    .is_some_and(|parent| parent.service == from)
        })
    };
    for (from, to) in [
        ("payments", "seating"),
        ("seating", "notifier"),
        ("seating", "analytics"),
    ] {
        if !event(from, to) {
            return Err(format!(
                "no {from} → (JetStream) → {to} event in the trace yet"
            ));
        }
    }
    Ok(())
}
