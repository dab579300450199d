//! Live seat changes for open seat pages: NATS core in, Server-Sent Events
//! out.
//!
//! Seating publishes an `events.v1.SeatsChanged` on
//! `seating.showtimes.<id>.seats` (NATS core) whenever seats of a showtime
//! change state. `GET /api/v1/showtimes/{id}/events` answers with an SSE
//! stream that starts with a `snapshot` event (the whole seat map, as
//! `GET /seats` gives it) and then sends a `seats` event per change:
//! `{"version":N,"changes":[{"label":"E6","state":"held","hold_id":"…"}]}`.
//!
//! **One NATS subscription per open stream.** The subscription lives exactly
//! as long as the response body: when the browser goes away the body is
//! dropped and so is the subscription (async-nats unsubscribes). NATS does the
//! fan-out it is built for; the gateway keeps no registry, no locks and no
//! per-showtime task that must be torn down when its last viewer leaves, and a
//! slow browser only ever delays its own stream. The cost is one copy of each
//! change per viewer on the gateway's NATS connection: small messages, and a
//! showtime has at most a few hundred people looking at it. If a very popular
//! showtime ever makes that matter, one wildcard subscription
//! (`seating.showtimes.*.seats`) fanned out through a `tokio::sync::broadcast`
//! per showtime is the next step, behind the same handler.
//!
//! **No gap between snapshot and changes.** The stream subscribes (and
//! flushes, so the server has the subscription) *before* it reads the seat
//! map, so a change made while the snapshot is read arrives afterwards as an
//! event; events whose version the snapshot already includes are dropped.
//! NATS core may still lose a message (a slow consumer); the browser's
//! `EventSource` reconnects on any error and a reconnect starts with a fresh
//! snapshot, which repairs everything.
//!
//! A comment is sent every 15 seconds so proxies keep the connection open, and
//! every stream ends when the gateway shuts down, so graceful shutdown is not
//! held up by pages left open.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive};
use futures::{Stream, StreamExt as _, stream};
use prost::Message as _;

use crate::error::Error;
use crate::resources::{SeatChange, SeatChanges, SeatMap, SeatState};
use crate::seating_client::seat_state_word;

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long subscribing may take before the stream is refused with a 503.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where seat changes come from: a NATS connection and the subject prefix
/// (empty in production; tests use their own so they run side by side).
#[derive(Clone, Debug)]
pub struct SeatEvents {
    nats: async_nats::Client,
    subject_prefix: String,
}

impl SeatEvents {
    /// Whether the NATS connection is up (for readiness).
    pub fn connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    pub fn new(nats: async_nats::Client, subject_prefix: String) -> Self {
        Self {
            nats,
            subject_prefix,
        }
    }

    /// The subject seating publishes a showtime's seat changes on.
    pub fn subject(&self, showtime_id: uuid::Uuid) -> String {
        platform::nats::subject(
            &self.subject_prefix,
            &format!("seating.showtimes.{showtime_id}.seats"),
        )
    }

    /// Subscribes to a showtime's changes; when this returns, the NATS
    /// server knows about the subscription, so nothing published afterwards
    /// is missed.
    pub async fn subscribe(
        &self,
        showtime_id: uuid::Uuid,
    ) -> Result<async_nats::Subscriber, Error> {
        let subject = self.subject(showtime_id);
        let subscribed = async {
            let subscriber = self.nats.subscribe(subject.clone()).await?;
            self.nats.flush().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(subscriber)
        };
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed).await {
            Ok(Ok(subscriber)) => Ok(subscriber),
            Ok(Err(error)) => {
                tracing::warn!(%error, %subject, "cannot subscribe to seat changes");
                Err(live_updates_unavailable())
            }
            Err(_) => {
                tracing::warn!(%subject, "subscribing to seat changes timed out");
                Err(live_updates_unavailable())
            }
        }
    }
}

fn live_updates_unavailable() -> Error {
    Error::Unavailable(
        "Live seat updates are not available right now. Please try again in a moment.".to_owned(),
    )
}

/// The SSE stream of one showtime: the snapshot, then every change newer
/// than it, until the subscription or the gateway stops.
pub fn stream(
    snapshot: SeatMap,
    subscriber: async_nats::Subscriber,
    shutdown: platform::Shutdown,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let covered = snapshot.version;
    let first = Event::default()
        .event("snapshot")
        .json_data(&snapshot)
        .unwrap_or_else(|_| Event::default().comment("snapshot unavailable"));
    let changes = subscriber.filter_map(move |message| async move {
        let changes = decode(&message.payload)?;
        (changes.version > covered).then(|| {
            Event::default()
                .event("seats")
                .json_data(&changes)
                .unwrap_or_else(|_| Event::default().comment("change unavailable"))
        })
    });
    stream::once(async move { first })
        .chain(changes)
        .map(Ok)
        .take_until(async move { shutdown.fired().await })
}

/// `KeepAlive` for [`stream`].
pub fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")
}

/// A `SeatsChanged` message as the browser gets it; `None` (logged) for
/// something that is not one.
fn decode(payload: &[u8]) -> Option<SeatChanges> {
    let event = match proto::events::v1::SeatsChanged::decode(payload) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "ignoring a seat-change message that does not decode");
            return None;
        }
    };
    let changes = event
        .changes
        .into_iter()
        .filter_map(|change| {
            let Some(state) = seat_state_word(&change.state) else {
                tracing::warn!(state = %change.state, "ignoring a seat change to an unknown state");
                return None;
            };
            let hold_id =
                (state == SeatState::Held && !change.hold_id.is_empty()).then_some(change.hold_id);
            Some(SeatChange {
                label: change.label,
                state,
                hold_id,
            })
        })
        .collect();
    Some(SeatChanges {
        version: event.version,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::events::v1 as events;

    #[test]
    fn seat_changes_decode_into_what_the_page_reads() {
        let event = events::SeatsChanged {
            showtime_id: "s".to_owned(),
            version: 7,
            changes: vec![
                events::SeatChange {
                    label: "E6".to_owned(),
                    state: "held".to_owned(),
                    hold_id: "h1".to_owned(),
                },
                events::SeatChange {
                    label: "E7".to_owned(),
                    state: "available".to_owned(),
                    hold_id: String::new(),
                },
                events::SeatChange {
                    label: "E8".to_owned(),
                    state: "teleported".to_owned(),
                    hold_id: String::new(),
                },
            ],
        };
        let changes = decode(&event.encode_to_vec()).expect("decodes");
        assert_eq!(changes.version, 7);
        let json = serde_json::to_value(&changes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 7,
                "changes": [
                    {"label": "E6", "state": "held", "hold_id": "h1"},
                    {"label": "E7", "state": "available"},
                ]
            })
        );
        assert!(decode(b"\xff\xff\xff").is_none());
    }
}
