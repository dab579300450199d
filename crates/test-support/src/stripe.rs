//! A Stripe-shaped HTTP server for tests, and a webhook signer.
//!
//! Stripe cannot be reached from tests, so payments runs against this
//! server instead: the same production code, only `STRIPE_API_BASE`
//! differs. It answers the paths payments uses with Stripe-shaped JSON
//! (every field `async-stripe` requires of a session or refund is there) —
//! `POST /v1/checkout/sessions` (form-encoded like Stripe, honouring
//! `Idempotency-Key`: the same key answers with the same session),
//! `GET /v1/checkout/sessions/{id}` and `POST /v1/refunds` — and lets the
//! test drive what Stripe would decide: mark a session paid, completed but
//! unpaid (an async method), async-succeeded or -failed, expired; make the
//! next calls fail with 500 or hang past the client's timeout. Every request
//! is recorded with its idempotency key.
//!
//! [`WebhookSigner`] signs a payload exactly as Stripe does
//! (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`)
//! and [`deliver`] posts it to a webhook URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct Inner {
    sessions: Vec<Value>,
    refunds: Vec<Value>,
    idempotent: HashMap<String, Value>,
    requests: Vec<RecordedRequest>,
    fail_next: usize,
    hang_next: usize,
    refund_status: Option<String>,
    counter: u64,
}

impl Inner {
    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!(
            "{prefix}_test_{:06}{}",
            self.counter,
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        )
    }

    fn session_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.sessions.iter_mut().find(|s| s["id"] == id)
    }
}

/// The running server; stops when dropped.
pub struct FakeStripe {
    /// `http://127.0.0.1:PORT`, what `STRIPE_API_BASE` is set to.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    shutdown: platform::Shutdown,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

/// Records the request and applies injected failures: `Some` is the answer.
async fn before(inner: &Shared, method: &str, path: &str, headers: &HeaderMap) -> Option<Response> {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_"));
    let (hang, fail) = {
        let mut state = lock(inner);
        state.requests.push(RecordedRequest {
            method: method.into(),
            path: path.into(),
            idempotency_key: headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        let hang = state.hang_next > 0;
        if hang {
            state.hang_next -= 1;
        }
        let fail = !hang && state.fail_next > 0;
        if fail {
            state.fail_next -= 1;
        }
        (hang, fail)
    };
    if !authorised {
        return Some(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        ));
    }
    if hang {
        // Longer than any client timeout a test sets.
        tokio::time::sleep(Duration::from_secs(30)).await;
        return Some(stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "hung",
        ));
    }
    if fail {
        return Some(stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred (injected by the test)",
        ));
    }
    None
}

fn form_map(form: &[(String, String)]) -> HashMap<String, String> {
    form.iter().cloned().collect()
}

async fn create_session(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(answer) = before(&inner, "POST", "/v1/checkout/sessions", &headers).await {
        return answer;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("sessions:{k}"));
    let mut state = lock(&inner);
    if let Some(previous) = key.as_ref().and_then(|k| state.idempotent.get(k)) {
        return Json(previous.clone()).into_response();
    }
    let fields = form_map(&form);
    let mut amount_total = 0i64;
    let mut currency = None;
    let mut line_items = Vec::new();
    for i in 0.. {
        let Some(quantity) = fields.get(&format!("line_items[{i}][quantity]")) else {
            break;
        };
        let quantity: i64 = quantity.parse().unwrap_or(0);
        let unit: i64 = fields
            .get(&format!("line_items[{i}][price_data][unit_amount]"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        currency = currency.or_else(|| {
            fields
                .get(&format!("line_items[{i}][price_data][currency]"))
                .cloned()
        });
        amount_total += quantity * unit;
        line_items.push(json!({
            "quantity": quantity,
            "unit_amount": unit,
            "name": fields.get(&format!("line_items[{i}][price_data][product_data][name]")),
        }));
    }
    if line_items.is_empty() || fields.get("mode").map(String::as_str) != Some("payment") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
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
    let id = state.next_id("cs");
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
        "x_line_items": line_items,
    });
    state.sessions.push(session.clone());
    if let Some(key) = key {
        state.idempotent.insert(key, session.clone());
    }
    Json(session).into_response()
}

async fn retrieve_session(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v1/checkout/sessions/{id}");
    if let Some(answer) = before(&inner, "GET", &path, &headers).await {
        return answer;
    }
    match lock(&inner)
        .sessions
        .iter()
        .find(|s| s["id"] == id.as_str())
    {
        Some(session) => Json(session.clone()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such checkout.session: '{id}'"),
        ),
    }
}

async fn create_refund(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(answer) = before(&inner, "POST", "/v1/refunds", &headers).await {
        return answer;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("refunds:{k}"));
    let mut state = lock(&inner);
    if let Some(previous) = key.as_ref().and_then(|k| state.idempotent.get(k)) {
        return Json(previous.clone()).into_response();
    }
    let fields = form_map(&form);
    let payment_intent = fields.get("payment_intent").cloned().unwrap_or_default();
    let Some(session) = state
        .sessions
        .iter()
        .find(|s| s["payment_intent"] == payment_intent.as_str() && !payment_intent.is_empty())
        .cloned()
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("No such payment_intent: '{payment_intent}'"),
        );
    };
    let amount = fields
        .get("amount")
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| session["amount_total"].as_i64())
        .unwrap_or(0);
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), Value::String(v.clone())))
        })
        .collect();
    let id = state.next_id("re");
    let status = state
        .refund_status
        .clone()
        .unwrap_or_else(|| "succeeded".into());
    let refund = json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "currency": session["currency"],
        "payment_intent": payment_intent,
        "created": chrono::Utc::now().timestamp(),
        "status": status,
        "metadata": metadata,
        "failure_reason": null,
    });
    state.refunds.push(refund.clone());
    if let Some(key) = key {
        state.idempotent.insert(key, refund.clone());
    }
    Json(refund).into_response()
}

impl FakeStripe {
    /// Starts the server on 127.0.0.1, port 0.
    pub async fn start() -> FakeStripe {
        let inner: Shared = Arc::default();
        let router = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .route("/v1/refunds", post(create_refund))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let address = listener.local_addr().expect("bound address");
        let shutdown = platform::Shutdown::new();
        tokio::spawn(platform::http::serve(
            listener,
            router,
            shutdown.clone(),
            "fake-stripe",
        ));
        FakeStripe {
            url: format!("http://{address}"),
            inner,
            shutdown,
        }
    }

    /// Every session created, oldest first.
    pub fn sessions(&self) -> Vec<Value> {
        lock(&self.inner).sessions.clone()
    }

    pub fn session(&self, id: &str) -> Value {
        lock(&self.inner)
            .sessions
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("the fake Stripe has no session {id}"))
    }

    /// Every refund created, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        lock(&self.inner).refunds.clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner).requests.clone()
    }

    /// The next `n` calls answer 500.
    pub fn fail_next(&self, n: usize) {
        lock(&self.inner).fail_next = n;
    }

    /// The next `n` calls do not answer (for 30 s).
    pub fn hang_next(&self, n: usize) {
        lock(&self.inner).hang_next = n;
    }

    /// The status new refunds get ("succeeded" unless set).
    pub fn set_refund_status(&self, status: &str) {
        lock(&self.inner).refund_status = Some(status.into());
    }

    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Inner) -> Vec<(&'static str, Value)>,
    ) -> Value {
        let mut state = lock(&self.inner);
        let pairs = change(&mut state);
        let session = state
            .session_mut(id)
            .unwrap_or_else(|| panic!("the fake Stripe has no session {id}"));
        for (key, value) in pairs {
            session[key] = value;
        }
        session.clone()
    }

    /// The buyer paid by card: complete and paid, with a payment intent.
    pub fn pay(&self, id: &str) -> Value {
        self.update(id, |state| {
            let intent = state.next_id("pi");
            vec![
                ("status", json!("complete")),
                ("payment_status", json!("paid")),
                ("payment_intent", json!(intent)),
            ]
        })
    }

    /// The buyer chose a delayed method: complete, not yet paid.
    pub fn complete_unpaid(&self, id: &str) -> Value {
        self.update(id, |state| {
            let intent = state.next_id("pi");
            vec![
                ("status", json!("complete")),
                ("payment_status", json!("unpaid")),
                ("payment_intent", json!(intent)),
            ]
        })
    }

    /// The delayed payment arrived.
    pub fn async_succeeded(&self, id: &str) -> Value {
        self.update(id, |_| vec![("payment_status", json!("paid"))])
    }

    /// The delayed payment failed (the session stays complete and unpaid).
    pub fn async_failed(&self, id: &str) -> Value {
        self.update(id, |_| vec![("payment_status", json!("unpaid"))])
    }

    /// The session expired unpaid.
    pub fn expire(&self, id: &str) -> Value {
        self.update(id, |_| vec![("status", json!("expired"))])
    }

    /// Overwrites fields of a session (a tampered or odd one).
    pub fn set(&self, id: &str, key: &'static str, value: Value) -> Value {
        self.update(id, |_| vec![(key, value)])
    }
}

/// A Stripe event envelope around `object`, as Stripe posts it.
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
#[derive(Clone, Debug)]
pub struct WebhookSigner {
    pub secret: String,
}

impl WebhookSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.to_owned(),
        }
    }

    /// `t=<timestamp>,v1=<signature>` for `payload` signed at `timestamp`.
    pub fn header_at(&self, payload: &str, timestamp: i64) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("any key length works");
        mac.update(format!("{timestamp}.{payload}").as_bytes());
        format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// Signed now.
    pub fn header(&self, payload: &str) -> String {
        self.header_at(payload, chrono::Utc::now().timestamp())
    }
}

/// Posts `payload` to a webhook URL with an optional `Stripe-Signature`;
/// returns the status and body.
pub async fn deliver(url: &str, signature: Option<&str>, payload: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client");
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(payload.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.send().await.expect("the webhook answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
