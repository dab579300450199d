//! The live seat map: every committed change of a showtime's seats is
//! published on NATS core, subject `seating.showtimes.<id>.seats`, as
//! `bookmyseat.events.v1.SeatsChanged` with the map's new version.
//!
//! Core NATS, not JetStream, and best effort: a page that misses a message
//! (or reconnects) re-fetches the map and ignores messages older than its
//! version. Publishing happens only *after* the commit, so a page never shows
//! a state that was rolled back. Tests prefix the subject
//! (`<prefix>.seating.showtimes.<id>.seats`) like every other subject.

use prost::Message as _;
use proto::events::v1 as events_pb;
use uuid::Uuid;

use crate::store::SeatChanges;

/// The subject a showtime's seat changes are published on.
pub fn seats_subject(prefix: &str, showtime_id: Uuid) -> String {
    platform::nats::subject(prefix, &format!("seating.showtimes.{showtime_id}.seats"))
}

/// Publishes seat changes on NATS core.
#[derive(Clone, Debug)]
pub struct SeatNotifier {
    client: async_nats::Client,
    prefix: String,
}

impl SeatNotifier {
    pub fn new(client: async_nats::Client, prefix: String) -> Self {
        Self { client, prefix }
    }

    /// Publishes `changes` (already committed). Failures are logged, never
    /// returned: the database is the truth and pages repair themselves.
    pub async fn publish(&self, changes: &SeatChanges) {
        if changes.seats.is_empty() {
            return;
        }
        let message = events_pb::SeatsChanged {
            showtime_id: changes.showtime_id.to_string(),
            changes: changes
                .seats
                .iter()
                .map(|(label, state, hold)| events_pb::SeatChange {
                    label: label.clone(),
                    state: state.as_str().to_owned(),
                    hold_id: hold.map(|h| h.to_string()).unwrap_or_default(),
                })
                .collect(),
            version: changes.version.max(0) as u64,
        };
        let subject = seats_subject(&self.prefix, changes.showtime_id);
        if let Err(error) = self
            .client
            .publish(subject, message.encode_to_vec().into())
            .await
        {
            tracing::warn!(showtime = %changes.showtime_id, %error,
                "seat change not published; pages catch up on their next fetch");
        }
    }
}
