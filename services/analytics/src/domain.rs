//! What analytics knows, in the product's words: facts taken from events
//! ([`BookingFact`], [`RefundFact`], [`ActivityEntry`]) and the figures the
//! dashboard asks for ([`Totals`], [`DayFigures`], [`FilmFigures`],
//! [`Occupancy`]). Money stays integer minor units per currency; amounts in
//! different currencies are never added together.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// Why a query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<AnalyticsError> for tonic::Status {
    fn from(error: AnalyticsError) -> Self {
        match error {
            AnalyticsError::InvalidArgument(message) => tonic::Status::invalid_argument(message),
            AnalyticsError::Database(error) => {
                tracing::error!(%error, "analytics query failed");
                tonic::Status::unavailable("analytics cannot reach its database; try again")
            }
        }
    }
}

/// An amount in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Money {
    pub currency: String,
    pub amount_minor: i64,
}

impl Money {
    /// `gross` minus `refunded`, per currency (a currency only refunded
    /// shows as negative), sorted by currency.
    pub fn net(gross: &[Money], refunded: &[Money]) -> Vec<Money> {
        let mut net: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for money in gross {
            *net.entry(&money.currency).or_default() += money.amount_minor;
        }
        for money in refunded {
            *net.entry(&money.currency).or_default() -= money.amount_minor;
        }
        net.into_iter()
            .map(|(currency, amount_minor)| Money {
                currency: currency.to_owned(),
                amount_minor,
            })
            .collect()
    }
}

/// A confirmed booking, from `bookings.confirmed`.
#[derive(Clone, Debug)]
pub struct BookingFact {
    pub booking_id: Uuid,
    pub reference: String,
    pub checkout_id: String,
    pub showtime_id: Uuid,
    pub film_id: String,
    pub film_title: String,
    pub cinema_name: String,
    pub starts_at: DateTime<Utc>,
    pub seats_offered: i32,
    pub seats: i32,
    pub amount_minor: i64,
    pub currency: String,
    pub booked_at: DateTime<Utc>,
}

/// A refund that went through, from `payments.refund.succeeded`.
#[derive(Clone, Debug)]
pub struct RefundFact {
    pub refund_id: String,
    pub checkout_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub refunded_at: DateTime<Utc>,
}

/// One line of the recent-activity log.
#[derive(Clone, Debug)]
pub struct ActivityEntry {
    pub at: DateTime<Utc>,
    /// `booking.confirmed`, `booking.rejected`, `refund.succeeded`.
    pub kind: String,
    /// For staff; never an email address.
    pub summary: String,
    pub reference: String,
    pub amount: Option<Money>,
}

/// What a batch of events states, in event order: read whole before any of
/// it is written, so that the batch goes into the read model with one
/// statement per table (see `store::record`).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub bookings: Vec<BookingFact>,
    pub refunds: Vec<RefundFact>,
    /// Each entry with the id of the event it records (one entry per event).
    pub activity: Vec<(Uuid, ActivityEntry)>,
}

/// One confirmed booking, as the bookings export lists it.
#[derive(Clone, Debug)]
pub struct BookingLine {
    pub booking_id: Uuid,
    pub reference: String,
    pub booked_at: DateTime<Utc>,
    pub film_title: String,
    pub cinema_name: String,
    pub starts_at: DateTime<Utc>,
    pub seats: i32,
    pub amount: Money,
    /// Refunded of it so far, in `amount`'s currency.
    pub refunded_minor: i64,
}

/// Everything so far.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub bookings: i64,
    pub seats_sold: i64,
    pub seats_offered: i64,
    pub gross: Vec<Money>,
    pub refunded: Vec<Money>,
    pub revenue: Vec<Money>,
    pub refunds: i64,
    pub rejected: i64,
}

/// One UTC day.
#[derive(Clone, Debug, Default)]
pub struct DayFigures {
    pub date: NaiveDate,
    pub bookings: i64,
    pub seats_sold: i64,
    pub refunded: Vec<Money>,
    pub revenue: Vec<Money>,
}

/// One film.
#[derive(Clone, Debug)]
pub struct FilmFigures {
    pub film_id: String,
    pub film_title: String,
    pub bookings: i64,
    pub seats_sold: i64,
    pub revenue: Vec<Money>,
}

/// One showtime's seats.
#[derive(Clone, Debug)]
pub struct ShowtimeFigures {
    pub showtime_id: Uuid,
    pub film_title: String,
    pub cinema_name: String,
    pub starts_at: DateTime<Utc>,
    pub seats_offered: i64,
    pub seats_sold: i64,
}

/// Seats sold against seats offered.
#[derive(Clone, Debug)]
pub struct Occupancy {
    pub showtimes: Vec<ShowtimeFigures>,
    pub seats_offered: i64,
    pub seats_sold: i64,
}

/// `sold / offered` in 0..1 (0 when nothing was offered).
pub fn ratio(sold: i64, offered: i64) -> f64 {
    if offered <= 0 {
        0.0
    } else {
        sold as f64 / offered as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(currency: &str, amount_minor: i64) -> Money {
        Money {
            currency: currency.into(),
            amount_minor,
        }
    }

    #[test]
    fn net_subtracts_per_currency_and_never_mixes_them() {
        let net = Money::net(
            &[m("INR", 1000), m("USD", 500)],
            &[m("INR", 250), m("EUR", 100)],
        );
        assert_eq!(net, vec![m("EUR", -100), m("INR", 750), m("USD", 500)]);
    }

    #[test]
    fn ratio_of_nothing_offered_is_zero() {
        assert_eq!(ratio(3, 0), 0.0);
        assert_eq!(ratio(10, 40), 0.25);
    }
}
