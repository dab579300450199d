//! Payments' domain: checkout states, line items and their total in integer
//! minor units, the parsing of request fields at the edge, and the one error
//! type callers match on ([`PaymentsError`], mapped to gRPC statuses in
//! [`crate::grpc`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can go wrong in payments, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// Well-formed, but the state does not allow it (an expired hold, a
    /// checkout that ended, a booking without a payment).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The payment provider did not answer (5xx, timeout, connection). The
    /// message is for the buyer; the detail is logged where it happened.
    #[error("{0}")]
    ProviderUnavailable(String),
    /// The provider refused the request (4xx): our request was wrong.
    #[error("the payment provider refused the request: {0}")]
    ProviderRejected(String),
    /// Seating or catalog could not be asked.
    #[error("{0}")]
    PeerUnavailable(String),
    #[error("the payments database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl PaymentsError {
    pub fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        PaymentsError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// Where a checkout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutStatus {
    Open,
    /// Completed at the provider, money not yet arrived (async methods).
    Processing,
    Paid,
    Expired,
    Failed,
    Refunded,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Open => "open",
            CheckoutStatus::Processing => "processing",
            CheckoutStatus::Paid => "paid",
            CheckoutStatus::Expired => "expired",
            CheckoutStatus::Failed => "failed",
            CheckoutStatus::Refunded => "refunded",
        }
    }

    /// Unknown text (a schema the code does not know) reads as failed, the
    /// state that promises nothing.
    pub fn parse(value: &str) -> CheckoutStatus {
        match value {
            "open" => CheckoutStatus::Open,
            "processing" => CheckoutStatus::Processing,
            "paid" => CheckoutStatus::Paid,
            "expired" => CheckoutStatus::Expired,
            "refunded" => CheckoutStatus::Refunded,
            _ => CheckoutStatus::Failed,
        }
    }

    /// Whether money may still arrive for this checkout.
    pub fn awaiting_payment(self) -> bool {
        matches!(self, CheckoutStatus::Open | CheckoutStatus::Processing)
    }
}

/// Which provider a checkout runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Stripe,
    /// Payments' own page; no money moves. Only when no Stripe key is set.
    Simulated,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Simulated => "simulated",
        }
    }
}

/// One line of a checkout: the seats of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub category: String,
    pub unit_amount_minor: i64,
    pub quantity: u32,
}

/// Prices the held seats: one line per category (in first-seen order), each
/// at catalog's price. A category without a price is a catalog error the
/// buyer cannot fix.
pub fn price_seats(
    seat_categories: &[String],
    prices: &[(String, i64)],
) -> Result<(Vec<LineItem>, i64), PaymentsError> {
    let mut lines: Vec<LineItem> = Vec::new();
    for category in seat_categories {
        if let Some(line) = lines.iter_mut().find(|l| &l.category == category) {
            line.quantity += 1;
            continue;
        }
        let unit = prices
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, amount)| *amount)
            .ok_or_else(|| {
                PaymentsError::FailedPrecondition(format!(
                    "the showtime has no price for {category} seats; ask the cinema"
                ))
            })?;
        if unit <= 0 {
            return Err(PaymentsError::FailedPrecondition(format!(
                "the price of {category} seats is not positive"
            )));
        }
        lines.push(LineItem {
            category: category.clone(),
            unit_amount_minor: unit,
            quantity: 1,
        });
    }
    let total = lines.iter().try_fold(0i64, |sum, line| {
        line.unit_amount_minor
            .checked_mul(i64::from(line.quantity))
            .and_then(|amount| sum.checked_add(amount))
    });
    match total {
        Some(total) if total > 0 => Ok((lines, total)),
        _ => Err(PaymentsError::InvalidArgument(
            "the hold has no seats to pay for".into(),
        )),
    }
}

/// Parses a UUID field, naming it on failure.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, PaymentsError> {
    Uuid::parse_str(value.trim())
        .map_err(|_| PaymentsError::InvalidArgument(format!("{field} must be a UUID")))
}

/// A user id as the gateway sends it: opaque, non-empty, bounded.
pub fn parse_user_id(value: &str) -> Result<String, PaymentsError> {
    let value = value.trim();
    if value.is_empty() || value.len() > 100 {
        return Err(PaymentsError::InvalidArgument(
            "user_id must be 1 to 100 characters".into(),
        ));
    }
    Ok(value.to_owned())
}

/// An email address, checked for shape only (the gateway verified it).
pub fn parse_email(value: &str) -> Result<String, PaymentsError> {
    let value = value.trim();
    let valid = value.len() <= 254
        && value
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid {
        return Err(PaymentsError::InvalidArgument(
            "customer_email must be an email address".into(),
        ));
    }
    Ok(value.to_owned())
}

/// An email address fit for logs: the domain only.
pub fn redact_email(email: &str) -> String {
    match email.split_once('@') {
        Some((_, domain)) => format!("***@{domain}"),
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_priced_per_category_in_minor_units() {
        let seats = ["standard", "premium", "standard"].map(String::from);
        let prices = [("standard".into(), 25_000), ("premium".into(), 40_000)];
        let (lines, total) = price_seats(&seats, &prices).unwrap();
        assert_eq!(total, 90_000);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].category.as_str(), lines[0].quantity),
            ("standard", 2)
        );
    }

    #[test]
    fn a_category_without_a_price_is_refused() {
        let seats = ["recliner".to_owned()];
        let error = price_seats(&seats, &[("standard".into(), 100)]).unwrap_err();
        assert!(matches!(error, PaymentsError::FailedPrecondition(_)));
    }

    #[test]
    fn emails_are_checked_and_redacted() {
        assert!(parse_email("ann@example.com").is_ok());
        assert!(parse_email("ann").is_err());
        assert_eq!(redact_email("ann@example.com"), "***@example.com");
    }
}
