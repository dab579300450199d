//! The seating service: per-showtime seat inventory, holds and bookings.
//!
//! Not built yet (issue #3). The contract is drafted in
//! `proto/bookmyseat/seating/v1/seating.proto`; nothing here pretends to work.
