//! Payments' HTTP port (`PAYMENTS_HTTP_ADDR`): the Stripe webhook and the
//! simulated provider's checkout page.
//!
//! - `POST /webhooks/stripe` verifies `Stripe-Signature` on the raw body
//!   before parsing it; a missing, forged or stale signature, or a body that
//!   is not a Stripe event, is a 400 and nothing is recorded. A database
//!   failure is a 500, so Stripe retries.
//! - `GET /simulated-checkout/{session}` is the simulated provider's page:
//!   the order summary and two plain HTML forms (Pay, Cancel) — no script,
//!   no external assets. Pay and Cancel redirect (303) to the same success
//!   and cancel URLs Stripe would. With a Stripe key set the page and its
//!   forms answer 404 and say why: a real deployment cannot skip payment.
//! - `GET /healthz` for probes.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use tower_http::trace::TraceLayer;
use tracing::Instrument as _;

use crate::checkouts::{Checkouts, SimulatedAction};
use crate::domain::{CheckoutStatus, PaymentsError};
use crate::signature;
use crate::store::Checkout;
use crate::webhook::{self, Event, Handled};

/// What the HTTP handlers share.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub checkouts: Checkouts,
    /// Accepted webhook secrets (more than one during a rotation).
    pub webhook_secrets: Vec<String>,
    /// For readiness: payments' database and NATS.
    pub pool: sqlx::PgPool,
    pub nats: async_nats::Client,
}

/// The router of payments' HTTP port.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/webhooks/stripe", post(stripe_webhook))
        .route("/simulated-checkout/{session}", get(simulated_page))
        .route("/simulated-checkout/{session}/pay", post(simulated_pay))
        .route(
            "/simulated-checkout/{session}/cancel",
            post(simulated_cancel),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route_layer(axum::middleware::from_fn(platform::metrics::track_http))
        .with_state(state)
        // One span per request; it continues the caller's trace (the
        // buyer's browser on the simulated page) when `traceparent` is sent.
        .layer(TraceLayer::new_for_http().make_span_with(platform::http::request_span))
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn stripe_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature_header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(error) =
        signature::verify(signature_header, &body, &state.webhook_secrets, Utc::now())
    {
        tracing::warn!(%error, "Stripe webhook refused");
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_signature",
            &error.to_string(),
        );
    }
    let event = match Event::parse(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "Stripe webhook body refused");
            return json_error(StatusCode::BAD_REQUEST, "invalid_event", &error.to_string());
        }
    };
    // Instrumented, not entered: an entered guard held across the awaits
    // would lend this span to whatever else the thread ran meanwhile.
    let span = tracing::info_span!("stripe_event", event = %event.id, kind = %event.kind);
    match webhook::handle(&state.checkouts, &event)
        .instrument(span)
        .await
    {
        Ok(Handled::Replay) => {
            axum::Json(serde_json::json!({"received": true, "replay": true})).into_response()
        }
        Ok(Handled::Recorded(outcome)) => {
            axum::Json(serde_json::json!({"received": true, "outcome": outcome})).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "Stripe event could not be handled; Stripe will retry");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the event could not be recorded; retry later",
            )
        }
    }
}

async fn simulated_page(State(state): State<HttpState>, Path(session): Path<String>) -> Response {
    match state.checkouts.simulated_checkout(&session).await {
        Ok(checkout) => Html(checkout_page(&checkout)).into_response(),
        Err(error) => error_page(error),
    }
}

async fn simulated_pay(State(state): State<HttpState>, Path(session): Path<String>) -> Response {
    simulated_action(state, session, SimulatedAction::Pay).await
}

async fn simulated_cancel(State(state): State<HttpState>, Path(session): Path<String>) -> Response {
    simulated_action(state, session, SimulatedAction::Cancel).await
}

async fn simulated_action(state: HttpState, session: String, action: SimulatedAction) -> Response {
    match state.checkouts.simulated(&session, action).await {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(error) => error_page(error),
    }
}

fn error_page(error: PaymentsError) -> Response {
    let (status, title) = match &error {
        // With a Stripe key the simulated provider does not exist.
        PaymentsError::PermissionDenied(_) | PaymentsError::NotFound { .. } => {
            (StatusCode::NOT_FOUND, "Checkout not found")
        }
        PaymentsError::FailedPrecondition(_) => (StatusCode::GONE, "Checkout ended"),
        PaymentsError::Database(_) => {
            tracing::error!(%error, "simulated checkout failed");
            (StatusCode::SERVICE_UNAVAILABLE, "Please try again")
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "Please try again"),
    };
    let message = match &error {
        PaymentsError::Database(_) => "Payments could not answer; try again in a moment.".into(),
        PaymentsError::NotFound { .. } => "There is no such test checkout.".into(),
        other => other.to_string(),
    };
    let body = page(
        title,
        &format!(
            "<h1>{}</h1><p class=\"message\">{}</p>",
            escape(title),
            escape(&capitalise_first(&message))
        ),
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

/// The simulated provider's page for one checkout.
pub fn checkout_page(checkout: &Checkout) -> String {
    let amount = format_money(checkout.amount_minor, &checkout.currency);
    let lines: String = checkout
        .line_items()
        .iter()
        .map(|line| {
            format!(
                "<tr><td>{} seat</td><td>{} × {}</td><td class=\"amount\">{}</td></tr>",
                escape(&line.category),
                line.quantity,
                escape(&format_money(line.unit_amount_minor, &checkout.currency)),
                escape(&format_money(
                    line.unit_amount_minor * i64::from(line.quantity),
                    &checkout.currency
                )),
            )
        })
        .collect();
    let session = escape(checkout.session_id.as_deref().unwrap_or_default());
    let actions = match checkout.status() {
        CheckoutStatus::Open | CheckoutStatus::Processing if Utc::now() < checkout.expires_at => {
            format!(
                "<div class=\"actions\">\
                 <form method=\"post\" action=\"/simulated-checkout/{session}/pay\">\
                 <button type=\"submit\" class=\"pay\">Pay {}</button></form>\
                 <form method=\"post\" action=\"/simulated-checkout/{session}/cancel\">\
                 <button type=\"submit\" class=\"cancel\">Cancel</button></form></div>",
                escape(&amount)
            )
        }
        CheckoutStatus::Paid | CheckoutStatus::Refunded => {
            "<p class=\"message\">This checkout has been paid.</p>".into()
        }
        _ => "<p class=\"message\">This checkout has ended; choose your seats again.</p>".into(),
    };
    page(
        "Test checkout",
        &format!(
            "<p class=\"banner\">Test payment — no money moves</p>\
             <h1>BookMySeat checkout</h1>\
             <p>{}</p>\
             <table><tbody>{lines}</tbody>\
             <tfoot><tr><th colspan=\"2\">Total</th><th class=\"amount\">{}</th></tr></tfoot></table>\
             <p class=\"small\">Pay before {} · checkout {}</p>{actions}",
            escape(&checkout.summary),
            escape(&amount),
            escape(&checkout.expires_at.format("%H:%M UTC").to_string()),
            escape(&checkout.id.to_string()),
        ),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · BookMySeat</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        escape(title)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f4f6;color:#222;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}\
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.6rem;border-radius:.3rem;font-weight:600;text-align:center}\
table{width:100%;border-collapse:collapse;margin:1rem 0}td,th{padding:.4rem;border-bottom:1px solid #eee;text-align:left}\
.amount{text-align:right}.small{color:#666;font-size:.85rem}.actions{display:flex;gap:1rem}\
button{font-size:1rem;padding:.7rem 1.4rem;border-radius:.3rem;border:0;cursor:pointer}\
.pay{background:#1a7f37;color:#fff}.cancel{background:#ddd}";

/// Money for people, written exactly as the gateway writes it (`₹650`).
pub use platform::money::format as format_money;

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn capitalise_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Readiness: payments' own database and NATS answer (a webhook can then be
/// recorded and its event relayed). Stripe is not asked: its outage must
/// not take payments out of the load balancer, the webhook still records.
async fn readyz(State(state): State<HttpState>) -> Response {
    let database = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let status = if database && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "database": database, "nats": nats })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_markup_are_rendered_safely() {
        assert_eq!(format_money(65_000, "INR"), "₹650");
        assert_eq!(format_money(5, "EUR"), "EUR 0.05");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
