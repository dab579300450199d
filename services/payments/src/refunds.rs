//! The refund worker: sends requested refunds to the provider and records
//! the outcome.
//!
//! A refund is requested in the transaction of whatever decided it (a
//! `bookings.rejected` event, a staff `RefundBooking`) as a `requested` row,
//! never by calling Stripe inside that transaction. This worker picks the
//! due rows, calls `POST /v1/refunds` with the idempotency key
//! `refund-<payment id>` (so a retry after a timeout, or two replicas
//! picking the same row, make one refund at Stripe), and in one transaction
//! moves the row to its outcome and writes `payments.refund.succeeded` or
//! `.failed` to the outbox ([`crate::ledger::settle_refund`]). Stripe being
//! down leaves the row `requested` with a growing delay; Stripe refusing
//! (already refunded, disputed) fails it. Refunds Stripe leaves `pending`
//! finish with the `refund.updated` webhook. Simulated payments are refunded
//! at once: no money moved.
//!
//! The worker sleeps until woken (a commit that requested a refund) or a
//! poll interval passes, and stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::Shutdown;
use platform::outbox::RelayWaker;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::domain::PaymentsError;
use crate::events::Subjects;
use crate::ledger::{self, RefundOutcome};
use crate::store::{self, RefundToSend};
use crate::stripe::{StripeClient, StripeError};

const POLL_INTERVAL: Duration = Duration::from_secs(2);
const BATCH: i64 = 16;

/// Sends requested refunds until shutdown.
#[derive(Clone, Debug)]
pub struct RefundWorker {
    pub pool: PgPool,
    pub stripe: Option<StripeClient>,
    pub subjects: Subjects,
    pub wake: Arc<Notify>,
    pub relay: RelayWaker,
}

impl RefundWorker {
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!("refund worker started");
        loop {
            match self.round().await {
                Ok(sent) if sent as i64 == BATCH => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "refund round failed; will retry"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.fired() => break,
            }
        }
        tracing::info!("refund worker stopped");
    }

    /// Sends every due refund once; returns how many were handled.
    pub async fn round(&self) -> Result<usize, PaymentsError> {
        let due = store::refunds_to_send(&self.pool, Utc::now(), BATCH).await?;
        let count = due.len();
        for refund in due {
            self.send(&refund).await?;
        }
        Ok(count)
    }

    async fn send(&self, refund: &RefundToSend) -> Result<(), PaymentsError> {
        let (outcome, provider_id) = if refund.provider == "simulated" {
            (
                RefundOutcome::Succeeded,
                Some(format!("sim_re_{}", refund.id.simple())),
            )
        } else {
            match self.ask_stripe(refund).await {
                Ok(answer) => answer,
                Err(error) => {
                    let delay =
                        chrono::Duration::seconds(2i64.pow(refund.attempts.clamp(0, 8) as u32));
                    tracing::warn!(refund = %refund.id, checkout = %refund.checkout_id, %error,
                        retry_in_secs = delay.num_seconds(), "refund not sent; will retry");
                    store::refund_retry_later(&self.pool, refund.id, &error, Utc::now() + delay)
                        .await?;
                    return Ok(());
                }
            }
        };
        let mut tx = self.pool.begin().await?;
        let Some(locked) = store::lock_refund(&mut tx, refund.id).await? else {
            return Ok(());
        };
        if locked.status != "requested" {
            return Ok(()); // another replica got there first
        }
        ledger::settle_refund(
            &mut tx,
            &self.subjects,
            &locked,
            &outcome,
            provider_id.as_deref(),
            Utc::now(),
        )
        .await?;
        tx.commit().await?;
        self.relay.wake();
        match &outcome {
            RefundOutcome::Failed(why) => {
                tracing::error!(refund = %refund.id, checkout = %refund.checkout_id, reason = %why, "refund failed")
            }
            other => {
                tracing::info!(refund = %refund.id, checkout = %refund.checkout_id, outcome = ?other, "refund sent")
            }
        }
        Ok(())
    }

    /// `Err` means "try again later"; a refusal is an outcome.
    async fn ask_stripe(
        &self,
        refund: &RefundToSend,
    ) -> Result<(RefundOutcome, Option<String>), String> {
        let Some(stripe) = &self.stripe else {
            return Err(
                "the payment was taken through Stripe but no STRIPE_SECRET_KEY is set".into(),
            );
        };
        let Some(payment_intent) = refund.payment_intent.as_deref() else {
            return Ok((
                RefundOutcome::Failed("no payment intent was recorded for the payment".into()),
                None,
            ));
        };
        let key = format!("refund-{}", refund.payment_id);
        match stripe
            .create_refund(
                payment_intent,
                refund.amount_minor,
                &refund.id.to_string(),
                &refund.checkout_id.to_string(),
                &key,
            )
            .await
        {
            Ok(answer) => Ok((refund_outcome(&answer), Some(answer.id))),
            Err(StripeError::Unavailable(message)) => Err(message),
            Err(StripeError::Rejected { message, .. }) => {
                Ok((RefundOutcome::Failed(message), None))
            }
        }
    }
}

/// Stripe's refund status as an outcome.
pub fn refund_outcome(refund: &crate::stripe::Refund) -> RefundOutcome {
    match refund.status.as_str() {
        "succeeded" => RefundOutcome::Succeeded,
        "failed" | "canceled" => RefundOutcome::Failed(
            refund
                .failure_reason
                .clone()
                .unwrap_or_else(|| format!("the refund was {}", refund.status)),
        ),
        _ => RefundOutcome::Pending,
    }
}
