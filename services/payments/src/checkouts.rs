//! Checkouts: creating one for a hold, answering "is it paid yet?", and the
//! simulated provider's Pay and Cancel. The gRPC server ([`crate::grpc`])
//! and the HTTP side ([`crate::http`]) both call this one type, and every
//! state change goes through [`crate::ledger`], so the webhook, the direct
//! check and the simulated page share one code path.
//!
//! Creating a checkout:
//! 1. the hold is read from seating (the caller's, still active) and the
//!    prices from catalog — amounts never come from the browser;
//! 2. the checkout row is stored first (unique per hold: a double click finds
//!    the first one), with everything the provider will be sent, so a retry
//!    sends identical parameters;
//! 3. seating extends the hold past the checkout's expiry, so the seats
//!    cannot be lost while the buyer is on Stripe's page;
//! 4. the provider session is created with the idempotency key
//!    `checkout-<hold id>`: Stripe answers a retried request (after a timeout
//!    or a 5xx) with the session it already made, never a second one.
//!
//! Stripe refuses a session that expires less than 30 minutes after it is
//! created; with Stripe the checkout lasts at least
//! [`STRIPE_MINIMUM_DURATION`], which leaves a retry a few minutes' slack.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use platform::grpc::TracedChannel;
use platform::outbox::RelayWaker;
use proto::catalog::v1 as catalog_pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use proto::seating::v1 as seating_pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;
use proto::time::{from_timestamp, to_timestamp};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{CheckoutStatus, PaymentsError, Provider, price_seats, redact_email};
use crate::events::Subjects;
use crate::ledger::{self, Applied, Paid};
use crate::store::{self, Checkout, NewCheckout};
use crate::stripe::{NewSession, StripeClient, StripeError};
use crate::waiters::BookingWaiters;

/// Stripe's minimum session lifetime (30 min) plus slack for retries.
pub const STRIPE_MINIMUM_DURATION: Duration = Duration::minutes(35);

/// How long the hold outlives the checkout: a payment completed in the last
/// second still finds its seats while the webhook travels.
pub const HOLD_GRACE: Duration = Duration::minutes(5);

/// The longest `GetCheckout` waits for a booking, whatever it is asked.
pub const MAX_BOOKING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a waiting `GetCheckout` reads the checkout again without a
/// wake-up: another replica may have recorded the booking.
const BOOKING_RECHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// What the buyer reads when Stripe does not answer.
const PROVIDER_DOWN: &str = "the payment provider is not answering right now; your seats stay \
     held for a while — please try again in a moment";

/// Where the checkout pages and providers send the buyer.
#[derive(Clone, Debug)]
pub struct Urls {
    /// The gateway's public URL (`PUBLIC_BASE_URL`).
    pub public_base_url: String,
    /// Where browsers reach payments' HTTP port (`PAYMENTS_PUBLIC_URL`).
    pub payments_public_url: String,
}

impl Urls {
    /// Stripe replaces `{CHECKOUT_SESSION_ID}` itself.
    pub fn success_template(&self) -> String {
        format!(
            "{}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
            self.public_base_url.trim_end_matches('/')
        )
    }

    pub fn cancel_template(&self) -> String {
        format!(
            "{}/checkout/cancel?session_id={{CHECKOUT_SESSION_ID}}",
            self.public_base_url.trim_end_matches('/')
        )
    }

    /// The success URL of one session, as a browser is redirected to it.
    pub fn success_url(&self, session_id: &str) -> String {
        self.success_template()
            .replace("{CHECKOUT_SESSION_ID}", session_id)
    }

    pub fn cancel_url(&self, session_id: &str) -> String {
        self.cancel_template()
            .replace("{CHECKOUT_SESSION_ID}", session_id)
    }
}

/// The checkout operations, shared by the gRPC and HTTP surfaces.
#[derive(Clone, Debug)]
pub struct Checkouts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    catalog: CatalogServiceClient<TracedChannel>,
    seating: SeatingServiceClient<TracedChannel>,
    stripe: Option<StripeClient>,
    subjects: Subjects,
    relay: RelayWaker,
    refunds: Arc<Notify>,
    waiters: BookingWaiters,
    urls: Urls,
    duration: Duration,
}

/// What the simulated page can be asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedAction {
    Pay,
    Cancel,
}

impl Checkouts {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        catalog: TracedChannel,
        seating: TracedChannel,
        stripe: Option<StripeClient>,
        subjects: Subjects,
        relay: RelayWaker,
        refunds: Arc<Notify>,
        waiters: BookingWaiters,
        urls: Urls,
        duration: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                catalog: CatalogServiceClient::new(catalog),
                seating: SeatingServiceClient::new(seating),
                stripe,
                subjects,
                relay,
                refunds,
                waiters,
                urls,
                duration,
            }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// Whether real payments are taken (a Stripe key is set); the simulated
    /// provider is refused then.
    pub fn takes_real_payments(&self) -> bool {
        self.inner.stripe.is_some()
    }

    pub fn urls(&self) -> &Urls {
        &self.inner.urls
    }

    /// Wakes the outbox relay after a commit that wrote events.
    pub fn wake_relay(&self) {
        self.inner.relay.wake();
    }

    /// Wakes the refund worker after a commit that requested a refund.
    pub fn wake_refunds(&self) {
        self.inner.refunds.notify_one();
    }

    /// The checkout of `hold_id` for `user_id`, created if it does not exist.
    pub async fn create(
        &self,
        hold_id: Uuid,
        user_id: &str,
        customer_email: &str,
    ) -> Result<Checkout, PaymentsError> {
        if let Some(existing) = store::checkout_by_hold(&self.inner.pool, hold_id).await? {
            return self.resume(existing, user_id).await;
        }
        let now = Utc::now();
        let provider = if self.takes_real_payments() {
            Provider::Stripe
        } else {
            Provider::Simulated
        };
        let duration = match provider {
            Provider::Stripe => self.inner.duration.max(STRIPE_MINIMUM_DURATION),
            Provider::Simulated => self.inner.duration,
        };
        let expires_at = now + duration;
        // Extending the hold first is also the check that it is this user's
        // and still live (seating refuses otherwise), and its answer is the
        // hold: no separate read. If pricing fails below, the hold merely
        // lives a little longer; no checkout exists for seats the buyer no
        // longer has.
        let hold = self
            .extend_hold(hold_id, user_id, expires_at + HOLD_GRACE)
            .await?;
        let showtime_id = Uuid::parse_str(&hold.showtime_id).map_err(|_| {
            PaymentsError::PeerUnavailable("seating named a showtime that is not a UUID".into())
        })?;
        let detail = self.showtime(showtime_id).await?;
        let showtime = detail.showtime.clone().ok_or_else(|| {
            PaymentsError::PeerUnavailable("catalog's showtime has no details".into())
        })?;
        let prices: Vec<(String, i64)> = showtime
            .prices
            .iter()
            .map(|p| (p.category.clone(), p.amount_minor))
            .collect();
        let categories: Vec<String> = hold.seats.iter().map(|s| s.category.clone()).collect();
        let (line_items, amount_minor) = price_seats(&categories, &prices)?;

        let id = Uuid::now_v7();
        // The simulated provider's session is known before the record
        // exists; Stripe's is created only once the record is safely stored.
        let simulated = (provider == Provider::Simulated).then(|| self.simulated_session(id));
        let checkout = store::insert_checkout(
            &self.inner.pool,
            &NewCheckout {
                id,
                hold_id,
                user_id: user_id.to_owned(),
                user_email: customer_email.to_owned(),
                showtime_id,
                summary: summary(&detail, &hold),
                line_items,
                provider: provider.as_str(),
                amount_minor,
                currency: showtime.currency.to_ascii_uppercase(),
                expires_at,
                now,
            },
            simulated
                .as_ref()
                .map(|(session, url)| (session.as_str(), url.as_str())),
        )
        .await?;
        tracing::info!(checkout = %checkout.id, hold = %hold_id, amount_minor, currency = %checkout.currency,
            provider = provider.as_str(), email = %redact_email(customer_email), "checkout created");
        self.resume(checkout, user_id).await
    }

    /// A stored checkout for its owner, with its provider session opened if
    /// an earlier attempt did not get that far.
    async fn resume(&self, checkout: Checkout, user_id: &str) -> Result<Checkout, PaymentsError> {
        if checkout.user_id != user_id {
            return Err(PaymentsError::PermissionDenied(
                "this hold belongs to another user".into(),
            ));
        }
        if checkout.session_id.is_some() {
            return Ok(checkout);
        }
        if !checkout.status().awaiting_payment() {
            return Err(PaymentsError::FailedPrecondition(
                "this checkout has ended; choose the seats again".into(),
            ));
        }
        self.open_session(checkout).await
    }

    async fn open_session(&self, checkout: Checkout) -> Result<Checkout, PaymentsError> {
        let (session_id, url) = if checkout.is_simulated() {
            self.simulated_session(checkout.id)
        } else {
            let stripe = self.inner.stripe.as_ref().ok_or_else(|| {
                PaymentsError::FailedPrecondition(
                    "this checkout was started with Stripe, which is no longer configured".into(),
                )
            })?;
            let line_items = checkout.line_items();
            let (checkout_id, hold_id) = (checkout.id.to_string(), checkout.hold_id.to_string());
            let (success, cancel) = (
                self.inner.urls.success_template(),
                self.inner.urls.cancel_template(),
            );
            let idempotency_key = format!("checkout-{}", checkout.hold_id);
            let new = NewSession {
                checkout_id: &checkout_id,
                hold_id: &hold_id,
                user_id: &checkout.user_id,
                customer_email: &checkout.user_email,
                summary: &checkout.summary,
                currency: &checkout.currency,
                line_items: &line_items,
                success_url: &success,
                cancel_url: &cancel,
                expires_at: checkout.expires_at.timestamp(),
                idempotency_key: &idempotency_key,
            };
            let session = stripe.create_session(&new).await.map_err(|error| {
                match error {
                    StripeError::Unavailable(detail) => {
                        tracing::warn!(checkout = %checkout.id, %detail, "Stripe did not create the session");
                        PaymentsError::ProviderUnavailable(PROVIDER_DOWN.into())
                    }
                    StripeError::Rejected { status, message } => {
                        tracing::error!(checkout = %checkout.id, status, %message, "Stripe refused the session");
                        PaymentsError::ProviderRejected(message)
                    }
                }
            })?;
            let url = session.url.clone().ok_or_else(|| {
                PaymentsError::ProviderUnavailable("Stripe returned a session without a URL".into())
            })?;
            (session.id, url)
        };
        let checkout = store::set_session(&self.inner.pool, checkout.id, &session_id, &url).await?;
        tracing::info!(checkout = %checkout.id, session = %session_id, "checkout session opened");
        Ok(checkout)
    }

    /// The simulated provider's session id and page for a checkout.
    fn simulated_session(&self, checkout: Uuid) -> (String, String) {
        let session_id = format!("sim_{}", checkout.simple());
        let url = format!(
            "{}/simulated-checkout/{session_id}",
            self.inner.urls.payments_public_url.trim_end_matches('/')
        );
        (session_id, url)
    }

    /// The checkout of a session for its owner; asks Stripe when payments
    /// does not know yet whether it was paid. Another user's session is
    /// indistinguishable from no session.
    pub async fn get(&self, session_id: &str, user_id: &str) -> Result<Checkout, PaymentsError> {
        let not_found = || PaymentsError::not_found("checkout session", session_id);
        let checkout = store::checkout_by_session(&self.inner.pool, session_id)
            .await?
            .ok_or_else(not_found)?;
        if checkout.user_id != user_id {
            return Err(not_found());
        }
        if !checkout.status().awaiting_payment() {
            return Ok(checkout);
        }
        if checkout.is_simulated() {
            if Utc::now() < checkout.expires_at {
                // Nothing to learn elsewhere: the record read is the answer.
                return Ok(checkout);
            }
            self.end(&checkout, CheckoutStatus::Expired).await?;
        } else if let Some(stripe) = &self.inner.stripe {
            match stripe.retrieve_session(session_id).await {
                Ok(session) => {
                    let mut tx = self.inner.pool.begin().await?;
                    if let Some(locked) = store::lock_checkout(&mut tx, checkout.id).await? {
                        let applied = ledger::apply_session(
                            &mut tx,
                            &self.inner.subjects,
                            &locked,
                            &session,
                            "direct",
                            Utc::now(),
                        )
                        .await?;
                        log_applied(&locked, &applied, "direct check");
                        tx.commit().await?;
                        self.wake_relay();
                    }
                }
                // The stored state is still a true answer, only older.
                Err(error) => {
                    tracing::warn!(checkout = %checkout.id, %error, "could not ask Stripe about the session")
                }
            }
        }
        store::checkout_by_id(&self.inner.pool, checkout.id)
            .await?
            .ok_or_else(not_found)
    }

    /// [`Checkouts::get`], and then, while the checkout is paid but not yet
    /// booked, waiting up to `wait` (at most [`MAX_BOOKING_WAIT`]) for the
    /// booking, so the caller learns it in this answer rather than by asking
    /// again. The answer is the record as last written: read, or handed over
    /// by the bookings consumer that booked it.
    pub async fn get_waiting(
        &self,
        session_id: &str,
        user_id: &str,
        wait: std::time::Duration,
    ) -> Result<Checkout, PaymentsError> {
        if wait.is_zero() {
            return self.get(session_id, user_id).await;
        }
        let deadline = tokio::time::Instant::now() + wait.min(MAX_BOOKING_WAIT);
        // Watching before the first read: a booking recorded between that
        // read and the wait still wakes it, and no second read is needed to
        // close that gap.
        let watch = self.inner.waiters.watch(session_id);
        let mut woken = std::pin::pin!(watch.woken());
        woken.as_mut().enable();
        let mut checkout = self.get(session_id, user_id).await?;
        loop {
            let now = tokio::time::Instant::now();
            if !checkout.awaits_booking() || now >= deadline {
                return Ok(checkout);
            }
            let _ =
                tokio::time::timeout((deadline - now).min(BOOKING_RECHECK), woken.as_mut()).await;
            woken.set(watch.woken());
            woken.as_mut().enable();
            // Woken by this replica's bookings consumer: the checkout it
            // brings is as its committed update left it. Otherwise (a timer;
            // another replica booked it) read it.
            checkout = match watch.booked() {
                Some(booked) => booked,
                None => store::checkout_by_id(&self.inner.pool, checkout.id)
                    .await?
                    .ok_or_else(|| PaymentsError::not_found("checkout session", session_id))?,
            };
        }
    }

    /// The simulated provider's Pay or Cancel; returns where to send the
    /// browser (the success or cancel URL, as Stripe would).
    pub async fn simulated(
        &self,
        session_id: &str,
        action: SimulatedAction,
    ) -> Result<String, PaymentsError> {
        if self.takes_real_payments() {
            return Err(PaymentsError::PermissionDenied(
                "the simulated checkout is disabled: this deployment takes real payments".into(),
            ));
        }
        let now = Utc::now();
        let mut tx = self.inner.pool.begin().await?;
        let locked = store::lock_checkout_by_session(&mut tx, session_id)
            .await?
            .filter(Checkout::is_simulated)
            .ok_or_else(|| PaymentsError::not_found("checkout session", session_id))?;
        let applied = match action {
            SimulatedAction::Pay if now >= locked.expires_at => {
                ledger::end_checkout(
                    &mut tx,
                    &self.inner.subjects,
                    &locked,
                    CheckoutStatus::Expired,
                    now,
                )
                .await?;
                tx.commit().await?;
                self.wake_relay();
                return Err(PaymentsError::FailedPrecondition(
                    "this checkout has expired; choose the seats again".into(),
                ));
            }
            SimulatedAction::Pay => {
                let paid = Paid {
                    payment_intent: None,
                    amount_minor: locked.amount_minor,
                    currency: &locked.currency,
                    source: "simulated",
                };
                ledger::mark_paid(&mut tx, &self.inner.subjects, &locked, &paid, now).await?
            }
            SimulatedAction::Cancel => {
                ledger::end_checkout(
                    &mut tx,
                    &self.inner.subjects,
                    &locked,
                    CheckoutStatus::Expired,
                    now,
                )
                .await?
            }
        };
        log_applied(&locked, &applied, "simulated provider");
        tx.commit().await?;
        self.wake_relay();
        Ok(match action {
            SimulatedAction::Pay => self.inner.urls.success_url(session_id),
            SimulatedAction::Cancel => self.inner.urls.cancel_url(session_id),
        })
    }

    /// A simulated session's checkout (for the page), refused when a Stripe
    /// key is set.
    pub async fn simulated_checkout(&self, session_id: &str) -> Result<Checkout, PaymentsError> {
        if self.takes_real_payments() {
            return Err(PaymentsError::PermissionDenied(
                "the simulated checkout is disabled: this deployment takes real payments".into(),
            ));
        }
        store::checkout_by_session(&self.inner.pool, session_id)
            .await?
            .filter(Checkout::is_simulated)
            .ok_or_else(|| PaymentsError::not_found("checkout session", session_id))
    }

    async fn end(&self, checkout: &Checkout, status: CheckoutStatus) -> Result<(), PaymentsError> {
        let mut tx = self.inner.pool.begin().await?;
        if let Some(locked) = store::lock_checkout(&mut tx, checkout.id).await? {
            ledger::end_checkout(&mut tx, &self.inner.subjects, &locked, status, Utc::now())
                .await?;
        }
        tx.commit().await?;
        self.wake_relay();
        Ok(())
    }

    async fn extend_hold(
        &self,
        hold_id: Uuid,
        user_id: &str,
        until: DateTime<Utc>,
    ) -> Result<seating_pb::Hold, PaymentsError> {
        self.inner
            .seating
            .clone()
            .extend_hold(seating_pb::ExtendHoldRequest {
                hold_id: hold_id.to_string(),
                user_id: user_id.to_owned(),
                held_until: Some(to_timestamp(until)),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => PaymentsError::not_found("hold", hold_id),
                tonic::Code::PermissionDenied => {
                    PaymentsError::PermissionDenied("this hold belongs to another user".into())
                }
                tonic::Code::FailedPrecondition => PaymentsError::FailedPrecondition(
                    "the seats are no longer held for you; choose them again".into(),
                ),
                _ => peer_down("seating", &status),
            })
    }

    async fn showtime(
        &self,
        showtime_id: Uuid,
    ) -> Result<catalog_pb::ShowtimeDetail, PaymentsError> {
        self.inner
            .catalog
            .clone()
            .get_showtime(catalog_pb::GetShowtimeRequest {
                showtime_id: showtime_id.to_string(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => PaymentsError::not_found("showtime", showtime_id),
                _ => peer_down("catalog", &status),
            })
    }
}

fn peer_down(peer: &str, status: &tonic::Status) -> PaymentsError {
    tracing::warn!(peer, code = ?status.code(), message = status.message(), "peer call failed");
    PaymentsError::PeerUnavailable(format!(
        "{peer} is not answering right now; please try again in a moment"
    ))
}

/// "Metropolis — Roxy, Screen 1, 24 Nov 2026 18:00 UTC (A1, A2)".
fn summary(detail: &catalog_pb::ShowtimeDetail, hold: &seating_pb::Hold) -> String {
    let film = detail
        .film
        .as_ref()
        .map(|f| f.title.as_str())
        .unwrap_or("Film");
    let cinema = detail
        .cinema
        .as_ref()
        .map(|c| c.name.as_str())
        .unwrap_or("");
    let screen = detail
        .screen
        .as_ref()
        .map(|s| s.name.as_str())
        .unwrap_or("");
    let starts = detail
        .showtime
        .as_ref()
        .and_then(|s| s.starts_at.as_ref())
        .and_then(from_timestamp)
        .map(|t| t.format("%d %b %Y %H:%M UTC").to_string())
        .unwrap_or_default();
    let seats: Vec<&str> = hold.seats.iter().map(|s| s.label.as_str()).collect();
    format!(
        "{film} — {cinema}, {screen}, {starts} ({})",
        seats.join(", ")
    )
}

/// One log line per applied piece of news; a refusal is an error an
/// operator must look at.
pub fn log_applied(checkout: &Checkout, applied: &Applied, via: &str) {
    match applied {
        Applied::Refused(why) => {
            tracing::error!(checkout = %checkout.id, via, reason = %why, "payment news refused")
        }
        other => {
            tracing::info!(checkout = %checkout.id, via, outcome = %other.outcome(), "payment news applied")
        }
    }
}
