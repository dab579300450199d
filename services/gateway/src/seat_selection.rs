//! The seats a buyer asks to hold, parsed once at the edge.
//!
//! Pages and API both turn what the browser sent into a [`SeatSelection`]
//! here, so a request with no seats, a malformed label or the same seat twice
//! is refused with one message before seating is asked. Whether each label is
//! in the showtime's layout, and how many seats one hold may have, is
//! seating's to say (it owns the inventory and the limit); its
//! `INVALID_ARGUMENT` reaches the caller as a 400 too.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::Error;

/// More labels than this is not a seat selection, whatever seating's own
/// limit per hold is (which is far lower).
pub const MAX_LABELS: usize = 100;

/// A seat label in the OpenAPI document: one or two letters, then a number
/// from 1 to 60 ([`SeatLabel::parse`] also forgives case and spaces around).
pub const SEAT_LABEL_PATTERN: &str = "^[A-Za-z]{1,2}([1-9]|[1-5][0-9]|60)$";

/// The OpenAPI schema of the seats of a hold or a staff block: what
/// [`SeatSelection::parse`] accepts, so generated clients (and the API
/// fuzzing test) send seats that can get past it.
pub fn seat_labels_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SEAT_LABEL_PATTERN)),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_LABELS))
        .unique_items(true)
        .examples([serde_json::json!(["E6", "E7"])])
        .build()
}

/// A seat label: a row of one or two capital letters and a seat number from
/// 1 to 60 ("A1", "AB12"), the shape catalog's layouts allow. Lower case is
/// accepted and written in capitals.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatLabel(String);

impl SeatLabel {
    pub fn parse(text: &str) -> Option<SeatLabel> {
        let label = text.trim().to_ascii_uppercase();
        let split = label.find(|c: char| c.is_ascii_digit())?;
        let (row, number) = label.split_at(split);
        let row_ok = (1..=2).contains(&row.len()) && row.bytes().all(|b| b.is_ascii_uppercase());
        let number_ok = !number.starts_with('0')
            && number.len() <= 2
            && number.parse::<u32>().is_ok_and(|n| (1..=60).contains(&n));
        (row_ok && number_ok).then_some(SeatLabel(label))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeatLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One or more distinct seat labels, in the order they were asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatSelection(Vec<SeatLabel>);

impl SeatSelection {
    pub fn parse<S: AsRef<str>>(labels: &[S]) -> Result<SeatSelection, Error> {
        if labels.is_empty() {
            return Err(Error::BadRequest(
                "Pick at least one seat to hold.".to_owned(),
            ));
        }
        if labels.len() > MAX_LABELS {
            return Err(Error::BadRequest(format!(
                "That is too many seats for one hold ({}).",
                labels.len()
            )));
        }
        let mut seen = BTreeSet::new();
        let mut seats = Vec::with_capacity(labels.len());
        for text in labels {
            let text = text.as_ref();
            let label = SeatLabel::parse(text).ok_or_else(|| {
                let shown: String = text.chars().take(20).collect();
                Error::BadRequest(format!(
                    "\"{shown}\" is not a seat; seats are named by row and number, like E6."
                ))
            })?;
            if !seen.insert(label.clone()) {
                return Err(Error::BadRequest(format!(
                    "Seat {label} is in the request twice; name each seat once."
                )));
            }
            seats.push(label);
        }
        Ok(SeatSelection(seats))
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(SeatLabel::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_rows_and_numbers() {
        assert_eq!(SeatLabel::parse("A1").unwrap().as_str(), "A1");
        assert_eq!(SeatLabel::parse(" e12 ").unwrap().as_str(), "E12");
        assert_eq!(SeatLabel::parse("AB60").unwrap().as_str(), "AB60");
        for bad in [
            "", "A", "1", "A0", "A01", "A61", "ABC1", "A1B", "Ä1", "A-1", "A100",
        ] {
            assert!(SeatLabel::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_selection_has_distinct_seats() {
        let selection = SeatSelection::parse(&["E6", "e7"]).unwrap();
        assert_eq!(selection.labels().collect::<Vec<_>>(), ["E6", "E7"]);
        let twice = SeatSelection::parse(&["E6", "e6"]).unwrap_err();
        assert!(twice.message().contains("twice"), "{twice}");
        assert!(matches!(
            SeatSelection::parse::<&str>(&[]),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            SeatSelection::parse(&["nonsense"]),
            Err(Error::BadRequest(_))
        ));
        let many: Vec<String> = (1..=101).map(|n| format!("A{}", n % 60 + 1)).collect();
        assert!(matches!(
            SeatSelection::parse(&many),
            Err(Error::BadRequest(_))
        ));
    }
}
