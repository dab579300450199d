//! The gateway's view of the seating service: seat maps and holds.
//!
//! As with [`crate::catalog_client`], handlers never see prost types: the
//! calls here turn seating's answers into [`crate::resources`] once, and its
//! failures into [`Error`]s (a FAILED_PRECONDITION carrying
//! `SeatsUnavailable` becomes [`Error::SeatsUnavailable`] in
//! [`crate::error`]). Every call names the caller (the signed-in user's id,
//! from [`crate::session`]), because seating decides who owns a hold and a
//! booking.

use chrono::{DateTime, Utc};
use platform::grpc::TracedChannel;
use platform::permits::Permits;
use proto::seating::v1 as pb;
use proto::seating::v1::seating_service_client::SeatingServiceClient;

use crate::catalog_client::parse_showtime_id;
use crate::error::Error;
use crate::resources::{
    Booking, BookingStatus, HeldSeat, Hold, HoldStatus, Seat, SeatMap, SeatState,
};
use crate::seat_selection::SeatSelection;

/// A cheap-to-clone handle on the seating service.
#[derive(Clone, Debug)]
pub struct SeatingClient {
    client: SeatingServiceClient<TracedChannel>,
    /// Seat maps fetched at once (`GATEWAY_MAP_READS`). When a premiere
    /// opens, a thousand buyers load its map together; fetched all at once,
    /// their answers filled this replica's task queues, and every hold sent
    /// meanwhile waited behind them (see docs/architecture.md).
    map_reads: Permits,
}

impl SeatingClient {
    pub fn new(channel: TracedChannel, map_reads: usize) -> Self {
        Self {
            client: SeatingServiceClient::new(channel),
            map_reads: Permits::new(map_reads, "bookmyseat_gateway_seat_map_reads_waiting"),
        }
    }

    /// The same client over another channel, sharing this one's map permits
    /// (they count the replica's map reads, whichever thread makes them).
    pub fn with_channel(&self, channel: TracedChannel) -> Self {
        Self {
            client: SeatingServiceClient::new(channel),
            map_reads: self.map_reads.clone(),
        }
    }

    /// Every seat of a showtime with its state, the caller's own held seats
    /// marked.
    pub async fn seat_map(&self, showtime_id: &str, user_id: &str) -> Result<SeatMap, Error> {
        let showtime_id = parse_showtime_id(showtime_id)?;
        let _permit = self.map_reads.acquire().await;
        let map = self
            .client
            .clone()
            .get_seat_map(pb::GetSeatMapRequest {
                showtime_id: showtime_id.to_string(),
                user_id: user_id.to_owned(),
            })
            .await
            .map_err(showtime_error)?
            .into_inner();
        seat_map_resource(map)
    }

    /// Holds every seat of `seats` for `user`, or none of them.
    pub async fn hold(
        &self,
        showtime_id: &str,
        seats: &SeatSelection,
        user_id: &str,
    ) -> Result<Hold, Error> {
        let showtime_id = parse_showtime_id(showtime_id)?;
        let hold = self
            .client
            .clone()
            .hold_seats(pb::HoldSeatsRequest {
                showtime_id: showtime_id.to_string(),
                seats: seats.labels().map(str::to_owned).collect(),
                user_id: user_id.to_owned(),
            })
            .await
            .map_err(showtime_error)?
            .into_inner();
        hold_resource(hold)
    }

    /// Lets the seats of the caller's hold go.
    pub async fn release(&self, hold_id: &str, user_id: &str) -> Result<(), Error> {
        let hold_id = parse_hold_id(hold_id)?;
        self.client
            .clone()
            .release_hold(pb::ReleaseHoldRequest {
                hold_id: hold_id.to_string(),
                user_id: user_id.to_owned(),
            })
            .await
            .map_err(hold_error)?;
        Ok(())
    }

    /// One of the caller's holds; someone else's is refused.
    pub async fn hold_of(&self, hold_id: &str, user_id: &str) -> Result<Hold, Error> {
        let hold_id = parse_hold_id(hold_id)?;
        let hold = self
            .client
            .clone()
            .get_hold(pb::GetHoldRequest {
                hold_id: hold_id.to_string(),
            })
            .await
            .map_err(hold_error)?
            .into_inner();
        if hold.user_id != user_id {
            return Err(not_your_hold());
        }
        hold_resource(hold)
    }

    /// The user's bookings, newest first.
    pub async fn bookings(&self, user_id: &str) -> Result<Vec<Booking>, Error> {
        let list = self
            .client
            .clone()
            .list_bookings(pb::ListBookingsRequest {
                user_id: user_id.to_owned(),
            })
            .await?
            .into_inner();
        list.bookings.into_iter().map(booking_resource).collect()
    }

    /// One of the user's bookings by reference; another user's is "not
    /// found", exactly like one that does not exist.
    pub async fn booking(&self, reference: &str, user_id: &str) -> Result<Booking, Error> {
        let reference = reference.trim();
        let well_formed = (4..=32).contains(&reference.len())
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !well_formed {
            return Err(Error::BadRequest(
                "That is not a booking reference; they look like BMS-7K3Q9P.".to_owned(),
            ));
        }
        let booking = self
            .client
            .clone()
            .get_booking(pb::GetBookingRequest {
                reference: reference.to_uppercase(),
                user_id: user_id.to_owned(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound(format!("You have no booking with reference {reference}."))
                }
                _ => status.into(),
            })?
            .into_inner();
        // Seating checks the owner; this is a second lock on the same door.
        if booking.user_id != user_id {
            return Err(Error::NotFound(format!(
                "You have no booking with reference {reference}."
            )));
        }
        booking_resource(booking)
    }

    /// Staff: takes seats out of sale.
    pub async fn block(
        &self,
        showtime_id: &str,
        seats: &SeatSelection,
        reason: &str,
    ) -> Result<SeatMap, Error> {
        let showtime_id = parse_showtime_id(showtime_id)?;
        let map = self
            .client
            .clone()
            .block_seats(pb::BlockSeatsRequest {
                showtime_id: showtime_id.to_string(),
                seats: seats.labels().map(str::to_owned).collect(),
                reason: reason.to_owned(),
            })
            .await
            .map_err(showtime_error)?
            .into_inner();
        seat_map_resource(map)
    }

    /// Staff: puts blocked seats back on sale.
    pub async fn unblock(
        &self,
        showtime_id: &str,
        seats: &SeatSelection,
    ) -> Result<SeatMap, Error> {
        let showtime_id = parse_showtime_id(showtime_id)?;
        let map = self
            .client
            .clone()
            .unblock_seats(pb::UnblockSeatsRequest {
                showtime_id: showtime_id.to_string(),
                seats: seats.labels().map(str::to_owned).collect(),
            })
            .await
            .map_err(showtime_error)?
            .into_inner();
        seat_map_resource(map)
    }
}

fn seat_map_resource(map: pb::SeatMap) -> Result<SeatMap, Error> {
    Ok(SeatMap {
        showtime_id: map.showtime_id,
        version: map.version,
        seats: map
            .seats
            .into_iter()
            .map(|seat| {
                Ok(Seat {
                    state: seat_state(seat.state())?,
                    label: seat.label,
                    row: seat.row,
                    number: seat.number,
                    category: seat.category,
                    mine: seat.held_by_caller,
                })
            })
            .collect::<Result<_, Error>>()?,
    })
}

fn booking_resource(booking: pb::Booking) -> Result<Booking, Error> {
    let status = match booking.status() {
        pb::BookingStatus::Confirmed => BookingStatus::Confirmed,
        pb::BookingStatus::Refunded => BookingStatus::Refunded,
        pb::BookingStatus::Unspecified => return Err(malformed("booking.status")),
    };
    Ok(Booking {
        starts_at: instant(booking.starts_at, "booking.starts_at")?,
        booked_at: instant(booking.booked_at, "booking.booked_at")?,
        reference: booking.reference,
        showtime_id: booking.showtime_id,
        film_id: booking.film_id,
        film_title: booking.film_title,
        poster_url: booking.poster_url,
        cinema_name: booking.cinema_name,
        cinema_time_zone: booking.cinema_time_zone,
        screen_name: booking.screen_name,
        seats: booking
            .seats
            .into_iter()
            .map(|seat| HeldSeat {
                label: seat.label,
                category: seat.category,
            })
            .collect(),
        amount_minor: booking.amount_minor,
        currency: booking.currency,
        status,
    })
}

fn parse_hold_id(text: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(text.trim())
        .map_err(|_| Error::BadRequest("That is not a hold id; hold ids are UUIDs.".to_owned()))
}

fn not_your_hold() -> Error {
    Error::Forbidden("That hold belongs to someone else.".to_owned())
}

fn showtime_error(status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::NotFound => {
            Error::NotFound("There is no such showtime; it may have been withdrawn.".to_owned())
        }
        _ => status.into(),
    }
}

fn hold_error(status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::NotFound => Error::NotFound("There is no such hold.".to_owned()),
        tonic::Code::PermissionDenied => not_your_hold(),
        _ => status.into(),
    }
}

fn seat_state(state: pb::SeatState) -> Result<SeatState, Error> {
    match state {
        pb::SeatState::Available => Ok(SeatState::Available),
        pb::SeatState::Held => Ok(SeatState::Held),
        pb::SeatState::Booked => Ok(SeatState::Booked),
        pb::SeatState::Blocked => Ok(SeatState::Blocked),
        pb::SeatState::Unspecified => Err(malformed("seat.state")),
    }
}

/// A seat state as `events.v1.SeatChange` spells it.
pub fn seat_state_word(word: &str) -> Option<SeatState> {
    match word {
        "available" => Some(SeatState::Available),
        "held" => Some(SeatState::Held),
        "booked" => Some(SeatState::Booked),
        "blocked" => Some(SeatState::Blocked),
        _ => None,
    }
}

fn hold_resource(hold: pb::Hold) -> Result<Hold, Error> {
    let status = match hold.status() {
        pb::HoldStatus::Active => HoldStatus::Active,
        pb::HoldStatus::Expired => HoldStatus::Expired,
        pb::HoldStatus::Released => HoldStatus::Released,
        pb::HoldStatus::Converted => HoldStatus::Converted,
        pb::HoldStatus::Unspecified => return Err(malformed("hold.status")),
    };
    Ok(Hold {
        held_until: instant(hold.held_until, "hold.held_until")?,
        created_at: instant(hold.created_at, "hold.created_at")?,
        id: hold.id,
        showtime_id: hold.showtime_id,
        seats: hold
            .seats
            .into_iter()
            .map(|seat| HeldSeat {
                label: seat.label,
                category: seat.category,
            })
            .collect(),
        status,
    })
}

fn instant(timestamp: Option<prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>, Error> {
    timestamp
        .as_ref()
        .and_then(proto::time::from_timestamp)
        .ok_or_else(|| malformed(field))
}

fn malformed(field: &str) -> Error {
    tracing::error!(field, "seating sent a message without a required field");
    Error::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_become_resources_and_nonsense_is_refused() {
        let now = Utc::now();
        let hold = pb::Hold {
            id: "h1".to_owned(),
            showtime_id: "s1".to_owned(),
            user_id: "u1".to_owned(),
            seats: vec![pb::HeldSeat {
                label: "A1".to_owned(),
                category: "standard".to_owned(),
            }],
            held_until: Some(proto::time::to_timestamp(now)),
            status: pb::HoldStatus::Active as i32,
            created_at: Some(proto::time::to_timestamp(now)),
        };
        let resource = hold_resource(hold.clone()).unwrap();
        assert_eq!(resource.status, HoldStatus::Active);
        assert_eq!(resource.held_until, now);
        assert_eq!(resource.seats[0].label, "A1");

        let undated = pb::Hold {
            held_until: None,
            ..hold.clone()
        };
        assert!(matches!(hold_resource(undated), Err(Error::Internal(_))));
        let unspecified = pb::Hold { status: 0, ..hold };
        assert!(matches!(
            hold_resource(unspecified),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn event_state_words_are_understood() {
        for state in [
            SeatState::Available,
            SeatState::Held,
            SeatState::Booked,
            SeatState::Blocked,
        ] {
            assert_eq!(seat_state_word(state.as_str()), Some(state));
        }
        assert_eq!(seat_state_word("sold"), None);
    }

    #[test]
    fn malformed_hold_ids_are_bad_requests() {
        assert!(matches!(parse_hold_id("42"), Err(Error::BadRequest(_))));
        assert!(parse_hold_id("6f1c2b9e-8f3a-4c1d-9b7e-2a5d4c3b2a10").is_ok());
    }
}
