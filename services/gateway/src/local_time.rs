//! Showtimes in the cinema's own clock.
//!
//! Catalog sends UTC timestamps and each cinema's IANA time zone; people want
//! "Sun 22 Nov, 18:30" as printed on the cinema's wall, wherever their own
//! device is. The conversion happens once, in [`crate::catalog_client`], into
//! a `DateTime<FixedOffset>` that the JSON API serialises (RFC 3339 with the
//! cinema's offset) and the pages format with the functions here.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;

/// The cinema's zone; an unknown name (a catalog bug) falls back to UTC so a
/// page still renders, and is logged.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::warn!(time_zone = %name, "cinema has an unknown time zone; showing UTC");
        Tz::UTC
    })
}

/// `instant` on the wall clock of `zone`, keeping its offset.
pub fn in_zone(instant: DateTime<Utc>, zone: Tz) -> DateTime<FixedOffset> {
    instant.with_timezone(&zone).fixed_offset()
}

/// "Sun 22 Nov, 18:30".
pub fn day_and_time(local: &DateTime<FixedOffset>) -> String {
    local.format("%a %-d %b, %H:%M").to_string()
}

/// "18:30".
pub fn time_of_day(local: &DateTime<FixedOffset>) -> String {
    local.format("%H:%M").to_string()
}

/// "Sunday 22 November".
pub fn long_day(date: NaiveDate) -> String {
    date.format("%A %-d %B").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn utc_instant_is_shown_on_the_cinema_clock() {
        let instant = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();
        let local = in_zone(instant, zone("Asia/Kolkata"));
        assert_eq!(day_and_time(&local), "Sun 22 Nov, 18:30");
        assert_eq!(time_of_day(&local), "18:30");
        assert_eq!(local.to_rfc3339(), "2026-11-22T18:30:00+05:30");
    }

    #[test]
    fn unknown_zone_falls_back_to_utc() {
        let instant = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();
        assert_eq!(
            time_of_day(&in_zone(instant, zone("Mars/Olympus"))),
            "13:00"
        );
    }

    #[test]
    fn long_day_names_weekday_and_month() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(long_day(date), "Sunday 22 November");
    }
}
