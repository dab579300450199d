//! The gateway's view of the payments service: starting a checkout for a
//! hold and asking how one stands.
//!
//! As with the other clients, handlers see [`crate::resources::Checkout`],
//! never prost types, and payments' failures become [`Error`]s here. Amounts
//! always come from payments (which took them from catalog), never from the
//! browser. `GetCheckout` is the success page's direct verification: payments
//! asks Stripe when it does not yet know the session is paid, so the page
//! does not wait for the webhook. It can also wait a moment for the booking
//! of a paid checkout, so the page shows it without reloading.

use std::time::Duration;

use platform::grpc::TracedChannel;
use proto::payments::v1 as pb;
use proto::payments::v1::payments_service_client::PaymentsServiceClient;

use crate::error::Error;
use crate::money::Money;
use crate::resources::{Checkout, CheckoutLine, CheckoutStatus};

/// A cheap-to-clone handle on the payments service.
#[derive(Clone, Debug)]
pub struct PaymentsClient {
    client: PaymentsServiceClient<TracedChannel>,
    /// Half the gRPC request timeout: a waiting `GetCheckout` must answer
    /// well before the call's own deadline turns it into a 503.
    longest_wait: Duration,
}

impl PaymentsClient {
    /// `request_timeout` is the channel's (GRPC_REQUEST_TIMEOUT_MS).
    pub fn new(channel: TracedChannel, request_timeout: Duration) -> Self {
        Self {
            client: PaymentsServiceClient::new(channel),
            longest_wait: request_timeout / 2,
        }
    }

    /// Starts (or, for the same hold, finds again) the checkout of a hold.
    pub async fn create_checkout(
        &self,
        hold_id: &str,
        user_id: &str,
        customer_email: &str,
    ) -> Result<Checkout, Error> {
        let hold_id = uuid::Uuid::parse_str(hold_id.trim())
            .map_err(|_| Error::BadRequest("That is not a hold id; hold ids are UUIDs.".into()))?;
        let checkout = self
            .client
            .clone()
            .create_checkout(pb::CreateCheckoutRequest {
                hold_id: hold_id.to_string(),
                user_id: user_id.to_owned(),
                customer_email: customer_email.to_owned(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound("That hold no longer exists; pick your seats again.".to_owned())
                }
                tonic::Code::FailedPrecondition => Error::Conflict(format!(
                    "{} Pick your seats again.",
                    status.message().trim_end_matches('.')
                )),
                tonic::Code::Unavailable => Error::Unavailable(
                    "The payment provider is not answering right now. Your seats stay held; \
                     please try Checkout again in a moment."
                        .to_owned(),
                ),
                _ => status.into(),
            })?
            .into_inner();
        checkout_resource(checkout)
    }

    /// The caller's checkout behind a provider session; anyone else's is
    /// "not found". When it is paid but not yet booked, payments waits up to
    /// `wait` (capped at half the request timeout) for the booking.
    pub async fn checkout(
        &self,
        session_id: &str,
        user_id: &str,
        wait: Duration,
    ) -> Result<Checkout, Error> {
        let session_id = session_id.trim();
        let well_formed = !session_id.is_empty()
            && session_id.len() <= 255
            && session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !well_formed {
            return Err(Error::BadRequest(
                "That is not a checkout session id.".to_owned(),
            ));
        }
        let checkout = self
            .client
            .clone()
            .get_checkout(pb::GetCheckoutRequest {
                session_id: session_id.to_owned(),
                user_id: user_id.to_owned(),
                wait_for_booking_ms: wait.min(self.longest_wait).as_millis() as u32,
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound("You have no checkout with that session.".to_owned())
                }
                _ => status.into(),
            })?
            .into_inner();
        checkout_resource(checkout)
    }
}

fn checkout_resource(checkout: pb::Checkout) -> Result<Checkout, Error> {
    let status = match checkout.status() {
        pb::CheckoutStatus::Open => CheckoutStatus::Open,
        pb::CheckoutStatus::Processing => CheckoutStatus::Processing,
        pb::CheckoutStatus::Paid => CheckoutStatus::Paid,
        pb::CheckoutStatus::Expired => CheckoutStatus::Expired,
        pb::CheckoutStatus::Failed => CheckoutStatus::Failed,
        pb::CheckoutStatus::Refunded => CheckoutStatus::Refunded,
        pb::CheckoutStatus::Unspecified => {
            tracing::error!("payments sent a checkout without a status");
            return Err(Error::internal());
        }
    };
    let currency = checkout.currency.clone();
    Ok(Checkout {
        expires_at: checkout
            .expires_at
            .as_ref()
            .and_then(proto::time::from_timestamp),
        booking_reference: Some(checkout.booking_reference).filter(|r| !r.is_empty()),
        lines: checkout
            .line_items
            .into_iter()
            .map(|line| CheckoutLine {
                category: line.category,
                quantity: line.quantity,
                unit_price: Money::new(line.unit_amount_minor, currency.clone()),
            })
            .collect(),
        total: Money::new(checkout.amount_minor, currency),
        id: checkout.id,
        session_id: checkout.session_id,
        hold_id: checkout.hold_id,
        url: checkout.url,
        status,
        simulated: checkout.simulated,
    })
}
