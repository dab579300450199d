//! Money as the services carry it (integer minor units plus an ISO 4217
//! code) and the one way it is written for people, shared by the gateway's
//! pages, the notifier's emails and payments' simulated checkout page so they
//! always agree.
//!
//! Amounts never become floats: the decimal point is placed by integer
//! division using the currency's number of minor digits. Rupees are written
//! the Indian way (`₹1,25,000`), other currencies with their code in front
//! (`USD 12.50`). Whole amounts drop their `.00`, which is how cinemas print
//! ticket prices (`₹250`).

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

/// `amount_minor` as staff type it, without grouping or symbol: `250`,
/// `400.50` (for editing forms).
pub fn major_units(amount_minor: i64, currency: &str) -> String {
    let digits = minor_digits(&currency.trim().to_ascii_uppercase());
    let scale = 10i64.pow(digits);
    let (major, minor) = (amount_minor / scale, (amount_minor % scale).abs());
    if minor == 0 {
        major.to_string()
    } else {
        format!("{major}.{minor:0width$}", width = digits as usize)
    }
}

/// Parses an amount typed in major units (`250`, `250.5`, `400.50`) into
/// minor units of `currency`; `None` for anything else (negative, too many
/// decimals, not a number).
pub fn parse_major_units(text: &str, currency: &str) -> Option<i64> {
    let digits = minor_digits(&currency.trim().to_ascii_uppercase()) as usize;
    let (major, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if major.is_empty() || !all_digits(major) || !all_digits(fraction) || fraction.len() > digits {
        return None;
    }
    let major: i64 = major.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<digits$}").parse().ok()?
    };
    major
        .checked_mul(10i64.pow(digits as u32))?
        .checked_add(fraction)
}

/// How many minor-unit digits a currency has (ISO 4217); two unless listed.
pub fn minor_digits(currency: &str) -> u32 {
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
    fn staff_amounts_round_trip_in_major_units() {
        assert_eq!(parse_major_units("250", "INR"), Some(25_000));
        assert_eq!(parse_major_units("400.5", "INR"), Some(40_050));
        assert_eq!(parse_major_units("400.50", "inr"), Some(40_050));
        assert_eq!(parse_major_units("1200", "JPY"), Some(1_200));
        for bad in ["", "-1", "1.234", "1,000", "abc", ".5", "1.2.3"] {
            assert_eq!(parse_major_units(bad, "INR"), None, "{bad:?}");
        }
        assert_eq!(parse_major_units("1.5", "JPY"), None);
        assert_eq!(major_units(25_000, "INR"), "250");
        assert_eq!(major_units(40_050, "INR"), "400.50");
        assert_eq!(major_units(1_200, "JPY"), "1200");
    }

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
