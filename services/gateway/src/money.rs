//! Money in the JSON API: integer minor units plus an ISO 4217 code, shown
//! to people through [`platform::money::format`] (the one formatter the
//! emails and the payment page use too).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use platform::money::{format, major_units, parse_major_units};

/// An amount of money in a currency's minor units (paise for INR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer minor units: 25000 is ₹250.
    #[schema(example = 25000)]
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    #[schema(example = "INR")]
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: i64, currency: impl Into<String>) -> Self {
        Self {
            amount_minor,
            currency: currency.into(),
        }
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format(self.amount_minor, &self.currency))
    }
}
