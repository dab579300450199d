//! Stripe, as far as the webhook benchmark needs it: a Stripe-shaped HTTP
//! server for the one call payments makes when a checkout is created, and
//! the signer of the webhooks loadgen then sends.
//!
//! Payments runs its production code against this server (only
//! `STRIPE_API_BASE` differs), so `CreateCheckout` goes through
//! `async-stripe` exactly as it would in production. The server answers
//! `POST /v1/checkout/sessions` (form-encoded, honouring `Idempotency-Key`)
//! and `GET /v1/checkout/sessions/{id}` with the session shape of
//! `crates/test-support/src/stripe.rs` (every field `async-stripe` requires
//! of a session), and keeps every session so the benchmark can build the
//! `checkout.session.completed` event Stripe would send for it.
//!
//! Why a second copy of that shape rather than a dependency on test-support:
//! test-support pulls every service crate and test-only dependencies
//! (reqwest, the harness) into the load generator's release build. The shape
//! is data, and both copies follow Stripe's documented object; when one
//! changes, the other must too.
//!
//! [`WebhookSigner`] signs a payload as Stripe does:
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Value>,
    by_idempotency_key: HashMap<String, String>,
    counter: u64,
}

type Shared = Arc<Mutex<Sessions>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Sessions> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Stripe-shaped server, listening on this machine until dropped.
pub struct FakeStripe {
    /// Where it listens, what payments' `STRIPE_API_BASE` points at.
    pub address: SocketAddr,
    sessions: Shared,
    _stop: oneshot::Sender<()>,
}

impl FakeStripe {
    /// Listens on `address` (a loopback address: checked by the caller).
    pub async fn start(address: SocketAddr) -> anyhow::Result<Self> {
        let sessions: Shared = Arc::default();
        let router = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .with_state(Arc::clone(&sessions));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("the fake Stripe cannot listen on {address}: {e}"))?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            address,
            sessions,
            _stop: stop,
        })
    }

    /// How many sessions payments created.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).by_id.len()
    }

    /// The session `id` as Stripe would send it once the buyer paid by card:
    /// complete, paid, with a payment intent.
    pub fn paid(&self, id: &str) -> Option<Value> {
        let mut sessions = lock(&self.sessions);
        sessions.counter += 1;
        let intent = format!("pi_bench_{:08}", sessions.counter);
        let session = sessions.by_id.get_mut(id)?;
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["payment_intent"] = json!(intent);
        Some(session.clone())
    }
}

fn stripe_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_"))
}

async fn create_session(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !authorised(&headers) {
        return stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut sessions = lock(&shared);
    if let Some(previous) = key
        .as_ref()
        .and_then(|k| sessions.by_idempotency_key.get(k))
        .and_then(|id| sessions.by_id.get(id))
    {
        return Json(previous.clone()).into_response();
    }
    let fields: HashMap<&str, &str> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut amount_total = 0i64;
    let mut currency = None;
    let mut items = 0;
    for i in 0.. {
        let Some(quantity) = fields.get(format!("line_items[{i}][quantity]").as_str()) else {
            break;
        };
        let quantity: i64 = quantity.parse().unwrap_or(0);
        let unit: i64 = fields
            .get(format!("line_items[{i}][price_data][unit_amount]").as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        currency = currency.or_else(|| {
            fields
                .get(format!("line_items[{i}][price_data][currency]").as_str())
                .map(|c| (*c).to_owned())
        });
        amount_total += quantity * unit;
        items += 1;
    }
    if items == 0 || fields.get("mode") != Some(&"payment") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "line_items and mode=payment are required",
        );
    }
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), Value::String(v.clone())))
        })
        .collect();
    sessions.counter += 1;
    let id = format!(
        "cs_bench_{:08}{}",
        sessions.counter,
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    // The shape of test-support's fake (see the module comment).
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": amount_total,
        "currency": currency,
        "client_reference_id": fields.get("client_reference_id"),
        "customer_email": fields.get("customer_email"),
        "metadata": metadata,
        "success_url": fields.get("success_url"),
        "cancel_url": fields.get("cancel_url"),
        "expires_at": fields.get("expires_at").and_then(|v| v.parse::<i64>().ok()),
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
        "payment_intent": null,
        "livemode": false,
        "created": chrono::Utc::now().timestamp(),
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "payment_method_types": ["card"],
        "shipping_options": [],
    });
    sessions.by_id.insert(id.clone(), session.clone());
    if let Some(key) = key {
        sessions.by_idempotency_key.insert(key, id);
    }
    Json(session).into_response()
}

async fn retrieve_session(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&headers) {
        return stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    match lock(&shared).by_id.get(&id) {
        Some(session) => Json(session.clone()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            &format!("No such checkout.session: '{id}'"),
        ),
    }
}

/// A Stripe event envelope around `object`, as Stripe posts it, under a
/// fresh event id.
pub fn event(kind: &str, object: &Value) -> String {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object},
    })
    .to_string()
}

/// Signs webhook payloads as Stripe does for one endpoint secret.
#[derive(Clone)]
pub struct WebhookSigner {
    mac: Hmac<Sha256>,
}

impl WebhookSigner {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            mac: Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|e| anyhow::anyhow!("unusable webhook secret: {e}"))?,
        })
    }

    /// `t=<now>,v1=<signature>`: signed at sending time, as Stripe does, so
    /// payments' five-minute tolerance never refuses a long run.
    pub fn header(&self, payload: &[u8]) -> String {
        let timestamp = chrono::Utc::now().timestamp();
        let mut mac = self.mac.clone();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_over_timestamp_dot_payload() {
        let signer = WebhookSigner::new("whsec_test").unwrap();
        let header = signer.header(b"{}");
        let (t, v1) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(format!("{t}.{{}}").as_bytes());
        assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
    }
}
