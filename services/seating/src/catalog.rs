//! Where seating's inventory comes from: the first time a showtime is used,
//! its film, cinema, screen and layout are read from catalog
//! (`GetShowtime`) and stored as seating's own snapshot ([`Inventory::showtime`]).
//!
//! A snapshot, not a live view: seating must answer (and keep its seats
//! consistent) while catalog is down, and catalog forbids changing a layout
//! while showtimes are scheduled on the screen, so the seats cannot drift.
//! Materialising is idempotent (`INSERT … ON CONFLICT DO NOTHING`), so two
//! replicas racing on a new showtime both end with the same rows.
//!
//! Because the snapshot never changes once stored, its immutable part (the
//! start time and the hall's seats: labels, rows, numbers, categories) is
//! also kept in memory ([`Inventory::known`]): the hot path of a hold then
//! checks the start and the labels without a database round trip, and a
//! seat map asks the database only which seats are taken. Each replica keeps
//! its own copy; being immutable, copies cannot disagree. The map is bounded
//! and simply starts over when full.

use proto::catalog::v1 as catalog_pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use platform::grpc::TracedChannel;
use proto::time::from_timestamp;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::SeatingError;
use crate::store::{self, SeatSpec, Showtime};

/// Most showtimes whose immutable facts are kept in memory at once.
const KNOWN_CAPACITY: usize = 4096;

/// What never changes about a materialised showtime.
#[derive(Clone, Debug)]
pub struct KnownShowtime {
    pub starts_at: DateTime<Utc>,
    /// Every seat of the hall, in the seat map's order.
    pub seats: Vec<SeatSpec>,
    /// Each seat's `sort_order` in the database, ascending, beside `seats`.
    sort_orders: Vec<i32>,
    /// Where each label is in `seats`.
    positions: HashMap<String, usize>,
}

impl KnownShowtime {
    /// The hall as [`store::seat_layout`] reads it.
    pub fn new(starts_at: DateTime<Utc>, layout: Vec<(i32, SeatSpec)>) -> Self {
        let (sort_orders, seats): (Vec<i32>, Vec<SeatSpec>) = layout.into_iter().unzip();
        let positions = seats
            .iter()
            .enumerate()
            .map(|(i, seat)| (seat.label.clone(), i))
            .collect();
        Self {
            starts_at,
            seats,
            sort_orders,
            positions,
        }
    }

    /// The labels of `labels` that are not seats of this hall, in order.
    pub fn unknown<'a>(&self, labels: &'a [String]) -> Vec<&'a str> {
        labels
            .iter()
            .filter(|l| !self.positions.contains_key(l.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// The categories of `labels`, in order (empty for an unknown label).
    pub fn categories_of(&self, labels: &[String]) -> Vec<String> {
        labels
            .iter()
            .map(|l| {
                self.positions
                    .get(l)
                    .map(|&i| self.seats[i].category.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Where the seat with this `sort_order` is in `seats`.
    pub fn position(&self, sort_order: i32) -> Option<usize> {
        self.sort_orders.binary_search(&sort_order).ok()
    }
}

/// Showtimes as seating knows them, materialised on first use.
#[derive(Clone, Debug)]
pub struct Inventory {
    pool: PgPool,
    catalog: CatalogServiceClient<TracedChannel>,
    known: Arc<RwLock<HashMap<Uuid, Arc<KnownShowtime>>>>,
}

impl Inventory {
    pub fn new(pool: PgPool, catalog: TracedChannel) -> Self {
        Self {
            pool,
            catalog: CatalogServiceClient::new(catalog),
            known: Arc::default(),
        }
    }

    /// The showtime's start and seats, from memory after the first
    /// call (materialising the showtime if seating has not seen it yet).
    pub async fn known(&self, id: Uuid) -> Result<Arc<KnownShowtime>, SeatingError> {
        if let Some(known) = self.cached(id) {
            return Ok(known);
        }
        let showtime = self.showtime(id).await?;
        let known = Arc::new(KnownShowtime::new(
            showtime.starts_at,
            store::seat_layout(&self.pool, id).await?,
        ));
        if let Ok(mut map) = self.known.write() {
            if map.len() >= KNOWN_CAPACITY {
                map.clear();
            }
            map.insert(id, known.clone());
        }
        Ok(known)
    }

    fn cached(&self, id: Uuid) -> Option<Arc<KnownShowtime>> {
        self.known.read().ok()?.get(&id).cloned()
    }

    /// The showtime, fetched from catalog and stored if seating has not seen
    /// it yet.
    pub async fn showtime(&self, id: Uuid) -> Result<Showtime, SeatingError> {
        if let Some(showtime) = store::get_showtime(&self.pool, id).await? {
            return Ok(showtime);
        }
        let detail = self
            .catalog
            .clone()
            .get_showtime(catalog_pb::GetShowtimeRequest {
                showtime_id: id.to_string(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                    SeatingError::not_found("showtime", id)
                }
                _ => SeatingError::CatalogUnavailable(status.message().to_owned()),
            })?
            .into_inner();
        let (showtime, seats) = snapshot(id, detail)?;
        store::materialise(&self.pool, &showtime, &seats).await?;
        store::get_showtime(&self.pool, id)
            .await?
            .ok_or_else(|| SeatingError::not_found("showtime", id))
    }
}

/// Seating's copy of a showtime and its seats, front row first.
fn snapshot(
    id: Uuid,
    detail: catalog_pb::ShowtimeDetail,
) -> Result<(Showtime, Vec<SeatSpec>), SeatingError> {
    let incomplete = |what: &str| {
        SeatingError::CatalogUnavailable(format!("catalog's showtime {id} has no {what}"))
    };
    let showtime = detail.showtime.ok_or_else(|| incomplete("showtime"))?;
    let film = detail.film.ok_or_else(|| incomplete("film"))?;
    let cinema = detail.cinema.ok_or_else(|| incomplete("cinema"))?;
    let screen = detail.screen.ok_or_else(|| incomplete("screen"))?;
    let layout = screen.layout.ok_or_else(|| incomplete("layout"))?;
    let starts_at = showtime
        .starts_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| incomplete("start time"))?;
    let film_id = Uuid::parse_str(&film.id).map_err(|_| incomplete("film id"))?;
    let seats: Vec<SeatSpec> = layout
        .rows
        .iter()
        .flat_map(|row| {
            (1..=row.seats).map(move |number| SeatSpec {
                label: format!("{}{number}", row.label),
                row_label: row.label.clone(),
                number: number as i32,
                category: row.category.clone(),
            })
        })
        .collect();
    if seats.is_empty() {
        return Err(incomplete("seats"));
    }
    let showtime = Showtime {
        id,
        film_id,
        film_title: film.title,
        poster_url: film.poster_url,
        cinema_name: cinema.name,
        cinema_time_zone: cinema.time_zone,
        screen_name: screen.name,
        starts_at,
        currency: showtime.currency,
        capacity: seats.len() as i32,
        version: 0,
    };
    Ok((showtime, seats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(label: &str, category: &str) -> SeatSpec {
        SeatSpec {
            label: label.to_owned(),
            row_label: label[..1].to_owned(),
            number: label[1..].parse().unwrap(),
            category: category.to_owned(),
        }
    }

    #[test]
    fn a_known_hall_finds_seats_by_label_and_by_sort_order() {
        // Sort orders need not start at 1 or be contiguous.
        let hall = KnownShowtime::new(
            Utc::now(),
            vec![
                (3, seat("A1", "standard")),
                (4, seat("A2", "standard")),
                (9, seat("B1", "premium")),
            ],
        );
        assert_eq!(hall.position(3), Some(0));
        assert_eq!(hall.position(9), Some(2));
        assert_eq!(hall.position(5), None);
        let asked = ["B1".to_owned(), "C7".to_owned(), "A2".to_owned()];
        assert_eq!(hall.unknown(&asked), ["C7"]);
        assert_eq!(hall.categories_of(&asked), ["premium", "", "standard"]);
    }
}
