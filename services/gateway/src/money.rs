//! Money as the catalog sends it (integer minor units plus an ISO 4217 code)
//! and the one function that turns it into text for people.
//!
//! Amounts never become floats: the decimal point is placed by integer
//! division using the currency's number of minor digits. Rupees are written
//! the Indian way (`₹1,25,000`), other currencies with their code in front
//! (`USD 12.50`). Whole amounts drop their `.00`, which is how cinemas print
//! ticket prices (`₹250`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// Formats `amount_minor` of `currency` for display: `₹250`, `₹1,25,000.50`,
/// `USD 12.50`, `JPY 1,200`.
pub fn format(amount_minor: i64, currency: &str) -> String {
    let currency = currency.trim().to_ascii_uppercase();
    let digits = minor_digits(&currency);
    let scale = 10u64.pow(digits);
    let magnitude = amount_minor.unsigned_abs();
    let (major, minor) = (magnitude / scale, magnitude % scale);
    let sign = if amount_minor < 0 { "-" } else { "" };

    let is_rupee = currency == "INR";
    let major = if is_rupee {
        group_indian(major)
    } else {
        group_thousands(major)
    };
    let fraction = if minor == 0 {
        String::new()
    } else {
        format!(".{minor:0width$}", width = digits as usize)
    };
    if is_rupee {
        format!("{sign}₹{major}{fraction}")
    } else {
        format!("{sign}{currency} {major}{fraction}")
    }
}

/// How many minor-unit digits a currency has (ISO 4217); two unless listed.
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `1234567` → `1,234,567`.
fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1234567` → `12,34,567`: the last three digits, then groups of two.
fn group_indian(value: u64) -> String {
    let digits = value.to_string();
    if digits.len() <= 3 {
        return digits;
    }
    let (head, tail) = digits.split_at(digits.len() - 3);
    let mut out = String::with_capacity(digits.len() + digits.len() / 2);
    for (i, c) in head.chars().enumerate() {
        if i > 0 && (head.len() - i).is_multiple_of(2) {
            out.push(',');
        }
        out.push(c);
    }
    out.push(',');
    out.push_str(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_rupees_drop_the_paise() {
        assert_eq!(format(25_000, "INR"), "₹250");
        assert_eq!(format(0, "INR"), "₹0");
    }

    #[test]
    fn rupees_with_paise_keep_two_digits() {
        assert_eq!(format(25_050, "INR"), "₹250.50");
        assert_eq!(format(25_005, "INR"), "₹250.05");
    }

    #[test]
    fn rupees_group_in_lakhs() {
        assert_eq!(format(12_500_000, "INR"), "₹1,25,000");
        assert_eq!(format(12_345_678_900, "INR"), "₹12,34,56,789");
    }

    #[test]
    fn other_currencies_are_written_with_their_code() {
        assert_eq!(format(1_250, "USD"), "USD 12.50");
        assert_eq!(format(12_345_678, "eur"), "EUR 123,456.78");
        assert_eq!(format(1_200, "JPY"), "JPY 1,200");
        assert_eq!(format(1_500, "KWD"), "KWD 1.500");
    }

    #[test]
    fn negative_amounts_keep_their_sign() {
        assert_eq!(format(-25_000, "INR"), "-₹250");
        assert_eq!(format(i64::MIN, "USD"), "-USD 92,233,720,368,547,758.08");
    }
}
