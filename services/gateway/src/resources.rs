//! The JSON resources of the public API (`/api/v1`), and what the pages are
//! built from.
//!
//! These are our own types, not prost's: the wire format of the API is a
//! promise to browsers and scripts, and must not change when a protobuf
//! field is renamed. Ids are strings, instants RFC 3339 (UTC, plus the
//! cinema's local time where people read it), money `{amount_minor,
//! currency}`, and absent values `null` rather than empty strings.
//! [`crate::catalog_client`] fills them; `utoipa` describes them.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::money::Money;

/// A genre films are filed under.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Genre {
    #[schema(example = "sci-fi")]
    pub slug: String,
    #[schema(example = "Sci-Fi")]
    pub name: String,
}

/// The language a film is shown in.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Language {
    /// ISO 639-1.
    #[schema(example = "hi")]
    pub code: String,
    #[schema(example = "Hindi")]
    pub name: String,
}

/// A film in the programme.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Film {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(example = "the-last-projectionist")]
    pub slug: String,
    pub title: String,
    pub synopsis: String,
    pub genres: Vec<Genre>,
    pub language: Option<Language>,
    #[schema(example = 148)]
    pub duration_minutes: u32,
    /// Rating certificate: "U", "UA", "A", "PG-13", ...
    #[schema(example = "UA")]
    pub certificate: String,
    /// The poster image; a generated one from this gateway when the film
    /// has none.
    #[schema(format = "uri")]
    pub poster_url: String,
    /// The trailer's YouTube page, when the film has a trailer.
    #[schema(format = "uri")]
    pub trailer_url: Option<String>,
    /// The trailer's YouTube video id, for embedding.
    #[schema(example = "dQw4w9WgXcQ")]
    pub trailer_youtube_id: Option<String>,
}

/// One page of films matching a filter.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FilmPage {
    pub films: Vec<Film>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
    /// Films matching the filter, over all pages.
    pub total_count: u32,
}

/// A genre that has films, and how many.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GenreFacet {
    pub slug: String,
    pub name: String,
    pub film_count: u32,
}

/// A language that has films, and how many.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LanguageFacet {
    pub code: String,
    pub name: String,
    pub film_count: u32,
}

/// The values the film list can be filtered by.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Facets {
    pub genres: Vec<GenreFacet>,
    pub languages: Vec<LanguageFacet>,
}

/// A cinema.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Cinema {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    pub city: String,
    pub address: String,
    /// IANA time zone its showtimes are given in.
    #[schema(example = "Asia/Kolkata")]
    pub time_zone: String,
}

/// One showtime in a film's listing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShowtimeSlot {
    #[schema(format = "uuid")]
    pub id: String,
    pub starts_at: DateTime<Utc>,
    /// The same instant on the cinema's clock.
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T18:30:00+05:30")]
    pub starts_at_local: DateTime<FixedOffset>,
    pub screen_name: String,
    /// The cheapest seat category's price.
    pub from_price: Money,
}

/// A cinema's showtimes of a film on one day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CinemaShowtimes {
    pub cinema: Cinema,
    pub showtimes: Vec<ShowtimeSlot>,
}

/// One day of a film's showtimes, by cinema.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShowtimeDay {
    /// The day in the cinemas' local time.
    #[schema(value_type = String, format = Date, example = "2026-11-22")]
    pub date: NaiveDate,
    pub cinemas: Vec<CinemaShowtimes>,
}

/// A film and its upcoming showtimes, by day and cinema.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FilmShowtimes {
    pub film: Film,
    pub days: Vec<ShowtimeDay>,
}

/// One row of seats, front to back.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatRow {
    /// "A" is the front row.
    #[schema(example = "A")]
    pub label: String,
    /// Seats are numbered 1..=seats ("A1".."A12").
    #[schema(example = 12)]
    pub seats: u32,
    /// Seat category; prices are per category.
    #[schema(example = "standard")]
    pub category: String,
}

/// How a screen's seats are laid out.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatLayout {
    pub rows: Vec<SeatRow>,
    /// Seat numbers after which an aisle runs through every row.
    pub aisles_after: Vec<u32>,
}

/// A screen (hall) of a cinema.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Screen {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub layout: SeatLayout,
}

/// The price of one seat category at a showtime.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CategoryPrice {
    pub category: String,
    pub price: Money,
}

/// A showtime with everything needed to show it: film, cinema, screen layout
/// and prices.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShowtimeDetail {
    #[schema(format = "uuid")]
    pub id: String,
    pub starts_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T18:30:00+05:30")]
    pub starts_at_local: DateTime<FixedOffset>,
    pub ends_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T21:10:00+05:30")]
    pub ends_at_local: DateTime<FixedOffset>,
    pub film: Film,
    pub cinema: Cinema,
    pub screen: Screen,
    /// One price per seat category in the layout, cheapest first.
    pub prices: Vec<CategoryPrice>,
}

/// Where a seat stands for a showtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    /// Anyone may hold it.
    Available,
    /// In someone's live hold (maybe the caller's: see `mine`).
    Held,
    /// Sold.
    Booked,
    /// Taken out of sale by staff.
    Blocked,
}

impl SeatState {
    /// The word used on the wire and in CSS classes.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Available => "available",
            SeatState::Held => "held",
            SeatState::Booked => "booked",
            SeatState::Blocked => "blocked",
        }
    }
}

/// One seat of a showtime and its state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Seat {
    #[schema(example = "A1")]
    pub label: String,
    #[schema(example = "A")]
    pub row: String,
    #[schema(example = 1)]
    pub number: u32,
    #[schema(example = "standard")]
    pub category: String,
    pub state: SeatState,
    /// Held by the caller's own live hold.
    pub mine: bool,
}

/// Every seat of a showtime, front row first, with its state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatMap {
    #[schema(format = "uuid")]
    pub showtime_id: String,
    /// Grows with every change of this showtime's seats; live updates
    /// (`/events`) with a version at or below it are already included.
    pub version: u64,
    pub seats: Vec<Seat>,
}

/// A seat in a hold.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeldSeat {
    #[schema(example = "A1")]
    pub label: String,
    #[schema(example = "standard")]
    pub category: String,
}

/// Where a hold stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// The seats are the holder's until `held_until`.
    Active,
    /// `held_until` passed; the seats are free again.
    Expired,
    /// The holder let the seats go.
    Released,
    /// Paid for: the hold became a booking.
    Converted,
}

/// Seats kept for one user for a while, so they can pay for them.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Hold {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub showtime_id: String,
    pub seats: Vec<HeldSeat>,
    /// When the seats go back on sale unless paid for.
    pub held_until: DateTime<Utc>,
    pub status: HoldStatus,
    pub created_at: DateTime<Utc>,
}

/// Where a booking stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Paid for; the seats are the buyer's.
    Confirmed,
    /// The payment was given back; the seats are on sale again.
    Refunded,
}

/// Seats bought for a showtime: the ticket.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Booking {
    /// The short code the buyer shows at the cinema.
    #[schema(example = "BMS-7K3Q9P")]
    pub reference: String,
    #[schema(format = "uuid")]
    pub showtime_id: String,
    #[schema(format = "uuid")]
    pub film_id: String,
    pub film_title: String,
    /// The film's poster; may be empty (pages fall back to a drawn one).
    pub poster_url: String,
    pub cinema_name: String,
    /// IANA time zone the showtime is shown in.
    #[schema(example = "Asia/Kolkata")]
    pub cinema_time_zone: String,
    pub screen_name: String,
    pub starts_at: DateTime<Utc>,
    pub seats: Vec<HeldSeat>,
    /// What was paid, in minor units of `currency`.
    pub amount_minor: i64,
    #[schema(example = "INR")]
    pub currency: String,
    pub status: BookingStatus,
    pub booked_at: DateTime<Utc>,
}

/// Where a checkout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    /// Waiting for the buyer to pay.
    Open,
    /// Paid with a method that settles later (a bank transfer).
    Processing,
    /// Paid; the booking follows (or a refund, if the seats were lost).
    Paid,
    /// The buyer did not pay in time; the seats went back on sale.
    Expired,
    /// The payment failed.
    Failed,
    /// The payment was given back.
    Refunded,
}

/// One line of a checkout: seats of one category.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckoutLine {
    #[schema(example = "standard")]
    pub category: String,
    pub quantity: u32,
    pub unit_price: Money,
}

/// Paying for a hold.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Checkout {
    #[schema(format = "uuid")]
    pub id: String,
    /// The payment provider's session id (in the success page's address).
    pub session_id: String,
    #[schema(format = "uuid")]
    pub hold_id: String,
    /// Where to send the buyer to pay.
    #[schema(format = "uri")]
    pub url: String,
    pub status: CheckoutStatus,
    /// Computed by payments from catalog's prices.
    pub total: Money,
    pub lines: Vec<CheckoutLine>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Once the booking exists.
    pub booking_reference: Option<String>,
    /// A test payment through the simulated provider: no money moves.
    pub simulated: bool,
}

/// `POST /api/v1/showtimes/{id}/holds`.
#[derive(Clone, Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Seat labels from the showtime's layout, each at most once.
    #[schema(schema_with = crate::seat_selection::seat_labels_schema)]
    pub seats: Vec<String>,
}

/// A change of one seat, as sent on the live event stream.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatChange {
    #[schema(example = "E6")]
    pub label: String,
    pub state: SeatState,
    /// The hold now holding the seat, when `held`; a page compares it with
    /// its own hold to tell its seats from other people's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub hold_id: Option<String>,
}

/// The `seats` event of `/api/v1/showtimes/{id}/events`: seats that changed
/// state, and the seat map's version after the change.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatChanges {
    pub version: u64,
    pub changes: Vec<SeatChange>,
}
