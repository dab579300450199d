//! The `bookmyseat.seating.v1.SeatingService` server: parses requests into
//! domain values, asks the store, publishes committed seat changes, and turns
//! records into protobuf messages. Errors become `tonic::Status` in one place
//! (`From<SeatingError> for Status`).

use std::sync::Arc;

use chrono::Duration;
use platform::permits::Permits;
use prost::Message as _;
use proto::seating::v1 as pb;
use proto::time::{from_timestamp, to_timestamp};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::catalog::Inventory;
use crate::clock::Clock;
use crate::domain::{
    HoldStatus, SeatState, SeatingError, parse_id, parse_seat_selection, parse_user_id,
};
use crate::live::SeatNotifier;
use crate::store::{self, HoldOutcome};

/// The most seats staff may block or unblock in one call (a whole hall).
const MAX_SEATS_PER_STAFF_CALL: usize = 1_200;

/// The seating gRPC service.
#[derive(Clone, Debug)]
pub struct SeatingService {
    pool: PgPool,
    inventory: Inventory,
    clock: Arc<dyn Clock>,
    notifier: SeatNotifier,
    hold_duration: Duration,
    max_seats_per_hold: usize,
    /// Permits for seat-map queries (`SEATING_MAP_READS`): a crowd of
    /// readers waits here, first come first served, and never takes the
    /// pool's other connections from holds and bookings. A queue that
    /// stays long on `bookmyseat_seat_map_reads_waiting` says raise
    /// `SEATING_MAP_READS` or add replicas.
    map_reads: Permits,
}

impl SeatingService {
    pub fn new(
        pool: PgPool,
        inventory: Inventory,
        clock: Arc<dyn Clock>,
        notifier: SeatNotifier,
        hold_duration: Duration,
        max_seats_per_hold: usize,
        map_reads: usize,
    ) -> Self {
        Self {
            pool,
            inventory,
            clock,
            notifier,
            hold_duration,
            max_seats_per_hold,
            map_reads: Permits::new(map_reads, "bookmyseat_seat_map_reads_waiting"),
        }
    }

    /// Seats named in a request, all of them in the showtime's layout.
    async fn known_seats(
        &self,
        showtime_id: Uuid,
        raw: &[String],
        max: usize,
    ) -> Result<Vec<String>, SeatingError> {
        let labels = parse_seat_selection(raw, max)?;
        let known = self.inventory.known(showtime_id).await?;
        let unknown = known.unknown(&labels);
        if !unknown.is_empty() {
            return Err(SeatingError::InvalidArgument(format!(
                "no such seats in this showtime's hall: {}",
                unknown.join(", ")
            )));
        }
        Ok(labels)
    }

    /// Every seat of the hall from memory, with the state of those the
    /// database says are taken.
    async fn seat_map(
        &self,
        showtime_id: Uuid,
        caller: Option<&str>,
    ) -> Result<pb::SeatMap, SeatingError> {
        let hall = self.inventory.known(showtime_id).await?;
        let (version, taken) = {
            let _permit = self.map_reads.acquire().await;
            // The clock is read once the permit is granted, so a map that
            // waited in the queue is as of its query, not of its arrival.
            store::seat_map(&self.pool, showtime_id, caller, self.clock.now()).await?
        };
        let mut states = vec![(pb::SeatState::Available, false); hall.seats.len()];
        for seat in taken {
            let position = hall.position(seat.sort_order).ok_or_else(|| {
                // Seats are stored once, with their layout; this cannot
                // happen unless someone edited the table by hand.
                SeatingError::Database(sqlx::Error::Protocol(format!(
                    "showtime {showtime_id} has a seat (sort order {}) its layout lacks",
                    seat.sort_order
                )))
            })?;
            states[position] = (seat_state(seat.state), seat.held_by_caller);
        }
        Ok(pb::SeatMap {
            showtime_id: showtime_id.to_string(),
            seats: hall
                .seats
                .iter()
                .zip(states)
                .map(|(seat, (state, held_by_caller))| pb::Seat {
                    label: seat.label.clone(),
                    row: seat.row_label.clone(),
                    number: seat.number.max(0) as u32,
                    category: seat.category.clone(),
                    state: state as i32,
                    held_by_caller,
                })
                .collect(),
            version: version.max(0) as u64,
        })
    }

    fn hold_message(&self, hold: store::Hold) -> pb::Hold {
        let status = match hold.status_at(self.clock.now()) {
            HoldStatus::Active => pb::HoldStatus::Active,
            HoldStatus::Expired => pb::HoldStatus::Expired,
            HoldStatus::Released => pb::HoldStatus::Released,
            HoldStatus::Converted => pb::HoldStatus::Converted,
        };
        pb::Hold {
            id: hold.id.to_string(),
            showtime_id: hold.showtime_id.to_string(),
            user_id: hold.user_id,
            seats: held_seats(hold.seats),
            held_until: Some(to_timestamp(hold.held_until)),
            status: status as i32,
            created_at: Some(to_timestamp(hold.created_at)),
        }
    }
}

/// Records how long one part of a hold took
/// (`bookmyseat_hold_phase_duration_seconds{phase}`).
fn hold_phase(phase: &'static str, took: std::time::Duration) {
    metrics::histogram!("bookmyseat_hold_phase_duration_seconds", "phase" => phase)
        .record(took.as_secs_f64());
}

fn seat_state(state: SeatState) -> pb::SeatState {
    match state {
        SeatState::Available => pb::SeatState::Available,
        SeatState::Held => pb::SeatState::Held,
        SeatState::Booked => pb::SeatState::Booked,
        SeatState::Blocked => pb::SeatState::Blocked,
    }
}

fn held_seats(seats: Vec<(String, String)>) -> Vec<pb::HeldSeat> {
    seats
        .into_iter()
        .map(|(label, category)| pb::HeldSeat { label, category })
        .collect()
}

fn booking_message(booking: store::Booking) -> pb::Booking {
    let showtime = booking.showtime;
    pb::Booking {
        id: booking.id.to_string(),
        reference: booking.reference,
        user_id: booking.user_id,
        showtime_id: showtime.id.to_string(),
        film_id: showtime.film_id.to_string(),
        film_title: showtime.film_title,
        cinema_name: showtime.cinema_name,
        cinema_time_zone: showtime.cinema_time_zone,
        screen_name: showtime.screen_name,
        starts_at: Some(to_timestamp(showtime.starts_at)),
        seats: held_seats(booking.seats),
        amount_minor: booking.amount_minor,
        currency: booking.currency,
        status: if booking.refunded {
            pb::BookingStatus::Refunded
        } else {
            pb::BookingStatus::Confirmed
        } as i32,
        booked_at: Some(to_timestamp(booking.booked_at)),
        checkout_id: booking.checkout_id,
        poster_url: showtime.poster_url,
    }
}

/// An optional user id: empty means "no caller".
fn optional_user(value: &str) -> Result<Option<String>, SeatingError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        parse_user_id(value).map(Some)
    }
}

#[tonic::async_trait]
impl pb::seating_service_server::SeatingService for SeatingService {
    async fn get_seat_map(
        &self,
        request: Request<pb::GetSeatMapRequest>,
    ) -> Result<Response<pb::SeatMap>, Status> {
        let request = request.into_inner();
        let showtime_id = parse_id("showtime_id", &request.showtime_id)?;
        let caller = optional_user(&request.user_id)?;
        Ok(Response::new(
            self.seat_map(showtime_id, caller.as_deref()).await?,
        ))
    }

    async fn hold_seats(
        &self,
        request: Request<pb::HoldSeatsRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let request = request.into_inner();
        let showtime_id = parse_id("showtime_id", &request.showtime_id)?;
        let user_id = parse_user_id(&request.user_id)?;
        // Shape first (count, duplicates): no catalog call for nonsense.
        parse_seat_selection(&request.seats, self.max_seats_per_hold)?;
        let showtime = self.inventory.known(showtime_id).await?;
        let now = self.clock.now();
        if showtime.starts_at <= now {
            return Err(SeatingError::FailedPrecondition(
                "this showtime has started; seats can no longer be held".into(),
            )
            .into());
        }
        let labels = self
            .known_seats(showtime_id, &request.seats, self.max_seats_per_hold)
            .await?;
        // A hold never outlives the start of the film it is for.
        let held_until = (now + self.hold_duration).min(showtime.starts_at);
        let categories = showtime.categories_of(&labels);
        // Timed in two parts, because a slow hold is slow for one of two
        // reasons an operator fixes differently: waiting for a pooled
        // connection (raise SEATING_DB_POOL_SIZE), or in the database, where
        // a crowd of holds on one showtime queues for its row lock (the
        // rush benchmark's tail; see docs/benchmarks.md).
        let asked = std::time::Instant::now();
        let mut connection = self.pool.acquire().await.map_err(SeatingError::from)?;
        let connected = std::time::Instant::now();
        hold_phase("connection", connected - asked);
        let outcome = store::hold_seats(
            &mut *connection,
            showtime_id,
            &user_id,
            &labels,
            categories,
            now,
            held_until,
        )
        .await;
        drop(connection);
        hold_phase("database", connected.elapsed());
        match outcome? {
            HoldOutcome::Held { hold, changes } => {
                metrics::counter!("bookmyseat_holds_total", "outcome" => "granted").increment(1);
                tracing::info!(showtime = %showtime_id, hold = %hold.id, seats = labels.len(), "seats held");
                self.notifier.publish(&changes).await;
                Ok(Response::new(self.hold_message(hold)))
            }
            HoldOutcome::Unavailable(seats) => {
                metrics::counter!("bookmyseat_holds_total", "outcome" => "refused").increment(1);
                Err(SeatingError::SeatsUnavailable(seats).into())
            }
        }
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::ReleaseHoldResponse>, Status> {
        let request = request.into_inner();
        let hold_id = parse_id("hold_id", &request.hold_id)?;
        let user_id = parse_user_id(&request.user_id)?;
        let mut connection = self.pool.acquire().await.map_err(SeatingError::from)?;
        let released =
            store::release_hold(&mut connection, hold_id, Some(&user_id), self.clock.now()).await?;
        if let Some(changes) = released {
            tracing::info!(hold = %hold_id, "hold released");
            self.notifier.publish(&changes).await;
        }
        Ok(Response::new(pb::ReleaseHoldResponse {}))
    }

    async fn extend_hold(
        &self,
        request: Request<pb::ExtendHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let request = request.into_inner();
        let hold_id = parse_id("hold_id", &request.hold_id)?;
        let user_id = parse_user_id(&request.user_id)?;
        let until = request
            .held_until
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| SeatingError::InvalidArgument("held_until is required".into()))?;
        let hold =
            store::extend_hold(&self.pool, hold_id, &user_id, until, self.clock.now()).await?;
        tracing::info!(hold = %hold_id, held_until = %hold.held_until, "hold extended");
        Ok(Response::new(self.hold_message(hold)))
    }

    async fn get_hold(
        &self,
        request: Request<pb::GetHoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        let hold_id = parse_id("hold_id", &request.into_inner().hold_id)?;
        let hold = store::get_hold(&self.pool, hold_id)
            .await?
            .ok_or_else(|| SeatingError::not_found("hold", hold_id))?;
        Ok(Response::new(self.hold_message(hold)))
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let user_id = parse_user_id(&request.into_inner().user_id)?;
        let bookings = store::list_bookings(&self.pool, &user_id).await?;
        Ok(Response::new(pb::ListBookingsResponse {
            bookings: bookings.into_iter().map(booking_message).collect(),
        }))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let request = request.into_inner();
        let reference = request.reference.trim().to_ascii_uppercase();
        let caller = optional_user(&request.user_id)?;
        let not_found = || SeatingError::not_found("booking", &reference);
        let booking = store::get_booking_by_reference(&self.pool, &reference)
            .await?
            .ok_or_else(not_found)?;
        // Someone else's booking is indistinguishable from no booking.
        if caller.is_some_and(|caller| caller != booking.user_id) {
            return Err(not_found().into());
        }
        Ok(Response::new(booking_message(booking)))
    }

    async fn block_seats(
        &self,
        request: Request<pb::BlockSeatsRequest>,
    ) -> Result<Response<pb::SeatMap>, Status> {
        let request = request.into_inner();
        let showtime_id = parse_id("showtime_id", &request.showtime_id)?;
        let reason: String = request.reason.trim().chars().take(200).collect();
        // PostgreSQL refuses NUL in text; other control characters have no
        // place in a reason shown to staff either.
        if reason.chars().any(char::is_control) {
            return Err(Status::invalid_argument(
                "reason: control characters are not allowed",
            ));
        }
        let labels = self
            .known_seats(showtime_id, &request.seats, MAX_SEATS_PER_STAFF_CALL)
            .await?;
        match store::block_seats(&self.pool, showtime_id, &labels, &reason, self.clock.now())
            .await?
        {
            Ok(changes) => {
                tracing::info!(showtime = %showtime_id, seats = labels.len(), "seats blocked");
                self.notifier.publish(&changes).await;
            }
            Err(unavailable) => return Err(SeatingError::SeatsUnavailable(unavailable).into()),
        }
        Ok(Response::new(self.seat_map(showtime_id, None).await?))
    }

    async fn unblock_seats(
        &self,
        request: Request<pb::UnblockSeatsRequest>,
    ) -> Result<Response<pb::SeatMap>, Status> {
        let request = request.into_inner();
        let showtime_id = parse_id("showtime_id", &request.showtime_id)?;
        let labels = self
            .known_seats(showtime_id, &request.seats, MAX_SEATS_PER_STAFF_CALL)
            .await?;
        let changes = store::unblock_seats(&self.pool, showtime_id, &labels).await?;
        tracing::info!(showtime = %showtime_id, seats = changes.seats.len(), "seats unblocked");
        self.notifier.publish(&changes).await;
        Ok(Response::new(self.seat_map(showtime_id, None).await?))
    }
}

/// The one mapping from seating errors to gRPC statuses. Seats that were
/// taken travel in the details as `bookmyseat.seating.v1.SeatsUnavailable`.
impl From<SeatingError> for Status {
    fn from(error: SeatingError) -> Self {
        match error {
            SeatingError::NotFound { .. } => Status::not_found(error.to_string()),
            SeatingError::InvalidArgument(message) => Status::invalid_argument(message),
            SeatingError::NotHoldOwner => Status::permission_denied(error.to_string()),
            SeatingError::FailedPrecondition(message) => Status::failed_precondition(message),
            SeatingError::SeatsUnavailable(seats) => {
                let message = format!(
                    "these seats were just taken: {}; choose others",
                    seats.join(", ")
                );
                let details = pb::SeatsUnavailable { seats }.encode_to_vec();
                Status::with_details(tonic::Code::FailedPrecondition, message, details.into())
            }
            SeatingError::CatalogUnavailable(message) => {
                tracing::warn!(%message, "catalog unavailable");
                Status::unavailable("the programme cannot be read right now; try again shortly")
            }
            SeatingError::Database(error) => {
                tracing::error!(%error, "seating database error");
                match error {
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => Status::unavailable(
                        "the seating database is unreachable; try again shortly",
                    ),
                    _ => Status::internal("seating failed to answer; the error is logged"),
                }
            }
        }
    }
}
