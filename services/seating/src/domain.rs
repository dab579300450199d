//! Seating's domain: the values requests are parsed into once at the edge
//! (seat labels, seat selections, ids), the seat states, booking references,
//! and the one error type callers match on ([`SeatingError`]).

use std::collections::BTreeSet;

use uuid::Uuid;

/// What can go wrong in seating, as callers need to tell it apart. The gRPC
/// edge maps each variant to one status code (`grpc::status`).
#[derive(Debug, thiserror::Error)]
pub enum SeatingError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the hold belongs to another user")]
    NotHoldOwner,
    /// Well-formed, but the state does not allow it (a showtime that has
    /// started, a hold that is no longer active).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Some requested seats are held, booked or blocked; nothing changed.
    #[error("seats not available: {}", .0.join(", "))]
    SeatsUnavailable(Vec<String>),
    /// Catalog could not be asked about a showtime seating has not seen yet.
    #[error("the catalog could not be reached: {0}")]
    CatalogUnavailable(String),
    #[error("the seating database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl SeatingError {
    pub fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        SeatingError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// Parses a UUID field, naming it on failure.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, SeatingError> {
    Uuid::parse_str(value.trim())
        .map_err(|_| SeatingError::InvalidArgument(format!("{field} must be a UUID")))
}

/// A user id as the gateway sends it: opaque, non-empty, bounded.
pub fn parse_user_id(value: &str) -> Result<String, SeatingError> {
    let value = value.trim();
    if value.is_empty() || value.len() > 100 {
        return Err(SeatingError::InvalidArgument(
            "user_id must be 1 to 100 characters".into(),
        ));
    }
    Ok(value.to_owned())
}

/// A seat label as written on the ticket: a row of one or two capital
/// letters and a seat number ("A1", "AA12"). Lowercase input is accepted and
/// normalised, so "a1" and "A1" are the same seat.
pub fn parse_seat_label(value: &str) -> Option<String> {
    let label = value.trim().to_ascii_uppercase();
    let letters = label.chars().take_while(|c| c.is_ascii_uppercase()).count();
    let digits = &label[letters..];
    let valid = (1..=2).contains(&letters)
        && (1..=2).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then_some(label)
}

/// The seats of one request: 1 to `max` distinct, well-formed labels, in the
/// order asked. Whether they exist in the layout is checked against the
/// inventory (the store), which is the only place that knows.
pub fn parse_seat_selection(raw: &[String], max: usize) -> Result<Vec<String>, SeatingError> {
    if raw.is_empty() {
        return Err(SeatingError::InvalidArgument(
            "choose at least one seat".into(),
        ));
    }
    if raw.len() > max {
        return Err(SeatingError::InvalidArgument(format!(
            "at most {max} seats can be chosen at once; {} were asked for",
            raw.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut labels = Vec::with_capacity(raw.len());
    let mut malformed = Vec::new();
    let mut repeated = Vec::new();
    for value in raw {
        match parse_seat_label(value) {
            Some(label) if seen.insert(label.clone()) => labels.push(label),
            Some(label) => repeated.push(label),
            None => malformed.push(value.clone()),
        }
    }
    if !malformed.is_empty() {
        return Err(SeatingError::InvalidArgument(format!(
            "not seat labels: {} (a seat is a row letter and a number, like A1)",
            malformed.join(", ")
        )));
    }
    if !repeated.is_empty() {
        return Err(SeatingError::InvalidArgument(format!(
            "each seat may be asked for once; repeated: {}",
            repeated.join(", ")
        )));
    }
    Ok(labels)
}

/// A seat's state as the seat map shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatState {
    Available,
    Held,
    Booked,
    Blocked,
}

impl SeatState {
    /// The word used in `SeatsChanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Available => "available",
            SeatState::Held => "held",
            SeatState::Booked => "booked",
            SeatState::Blocked => "blocked",
        }
    }
}

/// A hold's lifecycle as stored (`holds.status`). An `Active` hold whose
/// `held_until` has passed is reported as expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStatus {
    Active,
    Expired,
    Released,
    Converted,
}

impl HoldStatus {
    pub fn parse(value: &str) -> HoldStatus {
        match value {
            "active" => HoldStatus::Active,
            "released" => HoldStatus::Released,
            "converted" => HoldStatus::Converted,
            _ => HoldStatus::Expired,
        }
    }
}

/// Letters and digits nobody misreads: no 0/O, 1/I/L, U/V, 5/S, 2/Z, 8/B.
const REFERENCE_ALPHABET: &[u8] = b"34679ACDEFGHJKMNPQRTWXY";
/// Characters after the "BMS-" prefix: 23^6 ≈ 148 million references.
const REFERENCE_LENGTH: usize = 6;

/// A fresh random booking reference such as `BMS-7K3Q9P`. Uniqueness is the
/// database's job (a unique constraint; the caller draws again on a clash).
pub fn new_booking_reference() -> String {
    let random = Uuid::new_v4();
    let bytes = random.as_bytes();
    let mut reference = String::from("BMS-");
    for i in 0..REFERENCE_LENGTH {
        // Two random bytes per character keep the modulo bias negligible.
        let value = u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as usize;
        reference.push(REFERENCE_ALPHABET[value % REFERENCE_ALPHABET.len()] as char);
    }
    reference
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_labels_are_normalised_and_nonsense_is_refused() {
        assert_eq!(parse_seat_label(" a1 ").as_deref(), Some("A1"));
        assert_eq!(parse_seat_label("AA12").as_deref(), Some("AA12"));
        for bad in ["", "1A", "A", "A0", "A01", "ABC1", "A123", "A-1"] {
            assert_eq!(parse_seat_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_selection_is_one_to_max_distinct_seats() {
        let labels = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_seat_selection(&labels(&["a1", "B2"]), 10).unwrap(),
            ["A1", "B2"]
        );
        assert!(parse_seat_selection(&[], 10).is_err());
        assert!(parse_seat_selection(&labels(&["A1", "A2", "A3"]), 2).is_err());
        let repeated = parse_seat_selection(&labels(&["A1", "a1"]), 10).unwrap_err();
        assert!(repeated.to_string().contains("A1"), "{repeated}");
    }

    #[test]
    fn references_use_the_unambiguous_alphabet() {
        for _ in 0..1000 {
            let reference = new_booking_reference();
            assert_eq!(reference.len(), 10);
            assert!(reference.starts_with("BMS-"));
            assert!(
                reference[4..]
                    .bytes()
                    .all(|c| REFERENCE_ALPHABET.contains(&c))
            );
        }
    }
}
