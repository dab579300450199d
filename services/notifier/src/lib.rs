//! The notifier service: booking, refund and password-reset emails, exactly
//! once per event.
//!
//! Not built yet (issue #6). The events it consumes are drafted in
//! `proto/bookmyseat/events/v1/events.proto`; nothing here pretends to work.
