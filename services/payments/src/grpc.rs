//! The `bookmyseat.payments.v1.PaymentsService` server: parses requests into
//! domain values, calls [`Checkouts`], and turns records into protobuf
//! messages. Errors become `tonic::Status` in one place
//! (`From<PaymentsError> for Status`).

use proto::payments::v1 as pb;
use proto::time::to_timestamp;
use tonic::{Request, Response, Status};

use crate::checkouts::Checkouts;
use crate::domain::{CheckoutStatus, PaymentsError, parse_email, parse_id, parse_user_id};
use crate::store::{self, Checkout, Refund};

/// The payments gRPC service.
#[derive(Clone, Debug)]
pub struct PaymentsService {
    checkouts: Checkouts,
}

impl PaymentsService {
    pub fn new(checkouts: Checkouts) -> Self {
        Self { checkouts }
    }
}

fn checkout_message(checkout: Checkout) -> pb::Checkout {
    let status = match checkout.status() {
        CheckoutStatus::Open => pb::CheckoutStatus::Open,
        CheckoutStatus::Processing => pb::CheckoutStatus::Processing,
        CheckoutStatus::Paid => pb::CheckoutStatus::Paid,
        CheckoutStatus::Expired => pb::CheckoutStatus::Expired,
        CheckoutStatus::Failed => pb::CheckoutStatus::Failed,
        CheckoutStatus::Refunded => pb::CheckoutStatus::Refunded,
    };
    pb::Checkout {
        id: checkout.id.to_string(),
        session_id: checkout.session_id.clone().unwrap_or_default(),
        hold_id: checkout.hold_id.to_string(),
        user_id: checkout.user_id.clone(),
        url: checkout.url.clone().unwrap_or_default(),
        status: status as i32,
        amount_minor: checkout.amount_minor,
        currency: checkout.currency.clone(),
        expires_at: Some(to_timestamp(checkout.expires_at)),
        booking_reference: checkout.booking_reference.clone().unwrap_or_default(),
        line_items: checkout
            .line_items()
            .into_iter()
            .map(|line| pb::LineItem {
                category: line.category,
                unit_amount_minor: line.unit_amount_minor,
                quantity: line.quantity,
            })
            .collect(),
        simulated: checkout.is_simulated(),
    }
}

fn refund_message(refund: Refund, booking_reference: &str) -> pb::Refund {
    pb::Refund {
        id: refund.id.to_string(),
        checkout_id: refund.checkout_id.to_string(),
        amount_minor: refund.amount_minor,
        currency: refund.currency,
        // "requested" is an internal step of "pending".
        status: match refund.status.as_str() {
            "requested" => "pending".into(),
            other => other.into(),
        },
        booking_reference: booking_reference.to_owned(),
    }
}

#[tonic::async_trait]
impl pb::payments_service_server::PaymentsService for PaymentsService {
    async fn create_checkout(
        &self,
        request: Request<pb::CreateCheckoutRequest>,
    ) -> Result<Response<pb::Checkout>, Status> {
        let request = request.into_inner();
        let hold_id = parse_id("hold_id", &request.hold_id)?;
        let user_id = parse_user_id(&request.user_id)?;
        let email = parse_email(&request.customer_email)?;
        let checkout = self.checkouts.create(hold_id, &user_id, &email).await?;
        Ok(Response::new(checkout_message(checkout)))
    }

    async fn get_checkout(
        &self,
        request: Request<pb::GetCheckoutRequest>,
    ) -> Result<Response<pb::Checkout>, Status> {
        let request = request.into_inner();
        let user_id = parse_user_id(&request.user_id)?;
        let session_id = request.session_id.trim();
        if session_id.is_empty() || session_id.len() > 255 {
            return Err(PaymentsError::InvalidArgument("session_id is required".into()).into());
        }
        let wait = std::time::Duration::from_millis(request.wait_for_booking_ms.into());
        let checkout = self
            .checkouts
            .get_waiting(session_id, &user_id, wait)
            .await?;
        Ok(Response::new(checkout_message(checkout)))
    }

    async fn refund_booking(
        &self,
        request: Request<pb::RefundBookingRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let request = request.into_inner();
        let reference = request.booking_reference.trim().to_ascii_uppercase();
        if reference.is_empty() {
            return Err(
                PaymentsError::InvalidArgument("booking_reference is required".into()).into(),
            );
        }
        let reason: String = request.reason.trim().chars().take(500).collect();
        let reason = if reason.is_empty() {
            "refunded by staff".to_owned()
        } else {
            reason
        };
        let pool = self.checkouts.pool();
        let checkout = store::checkout_by_reference(pool, &reference)
            .await?
            .ok_or_else(|| PaymentsError::not_found("booking", &reference))?;
        let mut tx = pool.begin().await.map_err(PaymentsError::from)?;
        store::lock_checkout(&mut tx, checkout.id).await?;
        let payment = store::payment_for_checkout(&mut tx, checkout.id)
            .await?
            .ok_or_else(|| {
                PaymentsError::FailedPrecondition("the booking has no payment to refund".into())
            })?;
        let refund = store::request_refund(&mut tx, &payment, &reason).await?;
        tx.commit().await.map_err(PaymentsError::from)?;
        self.checkouts.wake_refunds();
        tracing::info!(checkout = %checkout.id, refund = %refund.id, %reference, "staff refund requested");
        Ok(Response::new(refund_message(refund, &reference)))
    }
}

/// The one mapping from payments errors to gRPC statuses.
impl From<PaymentsError> for Status {
    fn from(error: PaymentsError) -> Self {
        match error {
            PaymentsError::NotFound { .. } => Status::not_found(error.to_string()),
            PaymentsError::InvalidArgument(message) => Status::invalid_argument(message),
            PaymentsError::PermissionDenied(message) => Status::permission_denied(message),
            PaymentsError::FailedPrecondition(message) => Status::failed_precondition(message),
            PaymentsError::ProviderUnavailable(message) => Status::unavailable(message),
            PaymentsError::ProviderRejected(_) => {
                Status::internal("the payment provider refused the checkout; the error is logged")
            }
            PaymentsError::PeerUnavailable(message) => Status::unavailable(message),
            PaymentsError::Database(error) => {
                tracing::error!(%error, "payments database error");
                match error {
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => Status::unavailable(
                        "the payments database is unreachable; try again shortly",
                    ),
                    _ => Status::internal("payments failed to answer; the error is logged"),
                }
            }
        }
    }
}
