//! Stripe's REST API: the three calls payments makes (create a Checkout
//! Session, retrieve one, create a refund) and the shapes of the objects it
//! reads back (also the `data.object` of webhook events).
//!
//! The calls go through `async-stripe` (1.0 rc: `async-stripe-checkout` for
//! sessions, `async-stripe-core` for refunds) with lean features (rustls
//! with the ring provider, webpki roots). `ClientBuilder::url` points the
//! client at `STRIPE_API_BASE` (tests use a local Stripe-shaped server),
//! every POST carries `RequestStrategy::Idempotent(key)`, and every attempt
//! has the client's timeout. The answers are mapped into the small read
//! models below ([`Session`], [`Refund`]), which are also what webhook events
//! are parsed into, so the rest of the service never sees the crate's types.
//! Webhook signatures are verified by [`crate::signature`] (several secrets
//! during a rotation), not by `async-stripe-webhook`.
//!
//! Errors are split the way callers need them: [`StripeError::Unavailable`]
//! (timeout, connection, 5xx, 429: retry with the same idempotency key) and
//! [`StripeError::Rejected`] (other 4xx: our request was wrong, retrying the
//! same request cannot help).

use std::collections::HashMap;
use std::time::Duration;

use std::str::FromStr as _;

use async_stripe::{IdempotencyKey, RequestStrategy, StripeRequest as _};
use serde::Deserialize;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSession, CheckoutSessionMode};
use stripe_core::refund::CreateRefund;
use stripe_core::refund::CreateRefundReason;
use stripe_types::Currency;

use crate::domain::LineItem;

/// Why a Stripe call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    #[error("Stripe refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

/// A client for one Stripe account.
#[derive(Clone)]
pub struct StripeClient {
    client: async_stripe::Client,
    base: String,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A Checkout Session as payments reads it (a subset of Stripe's object).
#[derive(Clone, Debug, Deserialize)]
pub struct Session {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
    /// "open", "complete" or "expired".
    #[serde(default)]
    pub status: Option<String>,
    /// "paid", "unpaid" or "no_payment_required".
    pub payment_status: String,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub client_reference_id: Option<String>,
}

/// A Refund as payments reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Refund {
    pub id: String,
    /// "pending", "requires_action", "succeeded", "failed" or "canceled".
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// What a new Checkout Session is made of. Every field comes from the stored
/// checkout, so a retry sends exactly the same parameters (Stripe refuses an
/// idempotency key reused with different ones).
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    pub checkout_id: &'a str,
    pub hold_id: &'a str,
    pub user_id: &'a str,
    pub customer_email: &'a str,
    pub summary: &'a str,
    pub currency: &'a str,
    pub line_items: &'a [LineItem],
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub expires_at: i64,
    pub idempotency_key: &'a str,
}

/// Stripe expands `payment_intent` into an object when asked; payments
/// only needs the id either way.
fn expandable_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(
        Option::<Expandable>::deserialize(deserializer)?.map(|e| match e {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }),
    )
}

impl StripeClient {
    /// A client for `base` with `timeout` on every attempt.
    pub fn new(base: &str, secret_key: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = format!("{}/", base.trim_end_matches('/'));
        let client = async_stripe::ClientBuilder::new(secret_key)
            .url(base.clone())
            .timeout(timeout)
            .app_info("bookmyseat-payments", None, None)
            .build()
            .map_err(|e| {
                anyhow::anyhow!("STRIPE_API_BASE or STRIPE_SECRET_KEY is unusable: {e}")
            })?;
        Ok(Self { client, base })
    }

    /// `POST /v1/checkout/sessions`.
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<Session, StripeError> {
        let currency = Currency::from_str(&new.currency.to_ascii_lowercase())
            .unwrap_or(Currency::Unknown(new.currency.to_owned()));
        let line_items: Vec<CreateCheckoutSessionLineItems> = new
            .line_items
            .iter()
            .map(|line| {
                let mut product = ProductData::new(format!("{} seat", capitalise(&line.category)));
                product.description = Some(new.summary.to_owned());
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency.clone());
                price.unit_amount = Some(line.unit_amount_minor);
                price.product_data = Some(product);
                let mut item = CreateCheckoutSessionLineItems::new();
                item.price_data = Some(price);
                item.quantity = Some(u64::from(line.quantity));
                item
            })
            .collect();
        let metadata = HashMap::from([
            ("checkout_id".to_owned(), new.checkout_id.to_owned()),
            ("hold_id".to_owned(), new.hold_id.to_owned()),
            ("user_id".to_owned(), new.user_id.to_owned()),
        ]);
        let mut payment_intent = CreateCheckoutSessionPaymentIntentData::new();
        payment_intent.metadata = Some(HashMap::from([(
            "checkout_id".to_owned(),
            new.checkout_id.to_owned(),
        )]));
        let request = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(line_items)
            .success_url(new.success_url)
            .cancel_url(new.cancel_url)
            .client_reference_id(new.checkout_id)
            .customer_email(new.customer_email)
            .expires_at(new.expires_at)
            .metadata(metadata)
            .payment_intent_data(payment_intent);
        let session = request
            .customize()
            .request_strategy(idempotent(new.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Session::from_api(&session))
    }

    /// `GET /v1/checkout/sessions/{id}`.
    pub async fn retrieve_session(&self, session_id: &str) -> Result<Session, StripeError> {
        if session_id.is_empty()
            || !session_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StripeError::Rejected {
                status: 400,
                message: "not a checkout session id".into(),
            });
        }
        let session = RetrieveCheckoutSession::new(session_id)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Session::from_api(&session))
    }

    /// `POST /v1/refunds`: refunds a payment in full.
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount_minor: i64,
        refund_id: &str,
        checkout_id: &str,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let refund = CreateRefund::new()
            .payment_intent(payment_intent)
            .amount(amount_minor)
            .reason(CreateRefundReason::RequestedByCustomer)
            .metadata(HashMap::from([
                ("refund_id".to_owned(), refund_id.to_owned()),
                ("checkout_id".to_owned(), checkout_id.to_owned()),
            ]))
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Refund {
            id: refund.id.as_str().to_owned(),
            status: refund.status.clone().unwrap_or_else(|| "pending".into()),
            amount: refund.amount,
            currency: refund.currency.to_string(),
            failure_reason: refund.failure_reason.clone(),
            metadata: refund.metadata.clone().unwrap_or_default(),
        })
    }
}

impl Session {
    fn from_api(session: &CheckoutSession) -> Session {
        Session {
            id: session.id.as_str().to_owned(),
            url: session.url.clone(),
            status: session.status.as_ref().map(|s| s.as_str().to_owned()),
            payment_status: session.payment_status.as_str().to_owned(),
            amount_total: session.amount_total,
            currency: session.currency.as_ref().map(|c| c.to_string()),
            payment_intent: session
                .payment_intent
                .as_ref()
                .map(|p| p.id().as_str().to_owned()),
            metadata: session.metadata.clone().unwrap_or_default(),
            client_reference_id: session.client_reference_id.clone(),
        }
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, StripeError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeError::Rejected {
            status: 0,
            message: format!("unusable idempotency key: {e}"),
        })
}

/// Timeouts, connection failures, 5xx and 429 may pass; other answers will
/// not.
fn classify(error: async_stripe::StripeError) -> StripeError {
    match error {
        async_stripe::StripeError::Stripe(details, status) if status >= 500 || status == 429 => {
            StripeError::Unavailable(format!(
                "Stripe answered {status}: {}",
                details.message.as_deref().unwrap_or("no message")
            ))
        }
        async_stripe::StripeError::Stripe(details, status) => StripeError::Rejected {
            status,
            message: details
                .message
                .clone()
                .unwrap_or_else(|| "no message".into()),
        },
        async_stripe::StripeError::Timeout => StripeError::Unavailable("no answer in time".into()),
        async_stripe::StripeError::ClientError(message) => {
            StripeError::Unavailable(format!("cannot reach Stripe: {message}"))
        }
        // An answer we cannot read (an HTML error page from a proxy, a body
        // cut short): nothing says the request was wrong, so it may pass.
        async_stripe::StripeError::JSONDeserialize(message) => {
            StripeError::Unavailable(format!("Stripe's answer could not be read: {message}"))
        }
        async_stripe::StripeError::ConfigError(message) => {
            StripeError::Rejected { status: 0, message }
        }
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_with_an_expanded_or_plain_payment_intent() {
        let plain: Session = serde_json::from_str(
            r#"{"id":"cs_1","payment_status":"paid","payment_intent":"pi_1","metadata":{"checkout_id":"x"}}"#,
        )
        .unwrap();
        assert_eq!(plain.payment_intent.as_deref(), Some("pi_1"));
        let expanded: Session = serde_json::from_str(
            r#"{"id":"cs_1","payment_status":"paid","payment_intent":{"id":"pi_2","object":"payment_intent"}}"#,
        )
        .unwrap();
        assert_eq!(expanded.payment_intent.as_deref(), Some("pi_2"));
        let none: Session = serde_json::from_str(
            r#"{"id":"cs_1","payment_status":"unpaid","payment_intent":null}"#,
        )
        .unwrap();
        assert_eq!(none.payment_intent, None);
    }
}
