//! What the HTML pages show, and the askama templates that show it.
//!
//! Each page is a template struct holding display-ready values (formatted
//! money and times, relative links, CSS class names), built from
//! [`crate::resources`] by the functions here, so templates stay free of logic
//! and everything they print is auto-escaped. The templates themselves live in
//! `templates/`; `base.html` carries the layout, the stylesheet and the script.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;

use chrono::SecondsFormat;

use crate::error::{Error, PageError};
use crate::local_time;
use crate::money::Money;
use crate::resources::{
    Facets, Film, FilmPage, FilmShowtimes, Hold, HoldStatus, SeatMap, ShowtimeDetail,
};

/// What the page header shows about the visitor: their name and the
/// sign-out form (which needs the session's CSRF token), or the sign-in link.
#[derive(Clone, Debug, Default)]
pub struct Nav {
    pub signed_in: bool,
    pub display_name: String,
    pub is_staff: bool,
    pub csrf_token: String,
}

/// A film as a card in a list.
#[derive(Clone, Debug)]
pub struct FilmCard {
    pub href: String,
    pub title: String,
    pub poster_src: String,
    /// The generated poster, used by the page script when `poster_src` fails.
    pub poster_fallback: String,
    pub certificate: String,
    pub duration: String,
    pub language: String,
    pub genres: String,
}

/// A film's facts, as the film and showtime pages show them.
#[derive(Clone, Debug)]
pub struct FilmSummary {
    pub href: String,
    pub title: String,
    pub poster_src: String,
    pub poster_fallback: String,
    pub synopsis: String,
    pub genres: Vec<String>,
    pub language: String,
    pub duration: String,
    pub certificate: String,
}

/// An option of a filter `<select>`.
#[derive(Clone, Debug)]
pub struct FilterOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The home page's filter form as the visitor left it.
#[derive(Clone, Debug, Default)]
pub struct ChosenFilter {
    pub genre: String,
    pub language: String,
    pub query: String,
    /// Whether this is a page after the first.
    pub is_later_page: bool,
    /// A page size the visitor asked for (kept on the "Next" link).
    pub page_size: Option<u32>,
}

/// `GET /`: the film list with its filters.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub films: Vec<FilmCard>,
    pub count_text: String,
    pub genres: Vec<FilterOption>,
    pub languages: Vec<FilterOption>,
    pub query: String,
    pub is_filtered: bool,
    pub is_later_page: bool,
    pub next_page_href: Option<String>,
    pub nav: Nav,
}

impl HomePage {
    pub fn new(page: &FilmPage, facets: &Facets, chosen: ChosenFilter, base_url: &str) -> Self {
        let genres = facets
            .genres
            .iter()
            .map(|facet| FilterOption {
                value: facet.slug.clone(),
                label: format!("{} ({})", facet.name, facet.film_count),
                selected: facet.slug == chosen.genre,
            })
            .collect();
        let languages = facets
            .languages
            .iter()
            .map(|facet| FilterOption {
                value: facet.code.clone(),
                label: format!("{} ({})", facet.name, facet.film_count),
                selected: facet.code == chosen.language,
            })
            .collect();
        let page_size = chosen.page_size.map(|size| size.to_string());
        let next_page_href = page.next_page_token.as_ref().map(|token| {
            let pairs = [
                ("genre", chosen.genre.as_str()),
                ("language", chosen.language.as_str()),
                ("q", chosen.query.as_str()),
                ("page_size", page_size.as_deref().unwrap_or_default()),
                ("page_token", token.as_str()),
            ];
            format!("/?{}", query_string(&pairs))
        });
        HomePage {
            films: page.films.iter().map(|f| film_card(f, base_url)).collect(),
            count_text: plural(page.total_count, "film", "films"),
            genres,
            languages,
            is_filtered: !(chosen.genre.is_empty()
                && chosen.language.is_empty()
                && chosen.query.is_empty()),
            query: chosen.query,
            is_later_page: chosen.is_later_page,
            next_page_href,
            nav: Nav::default(),
        }
    }
}

/// A trailer the film page can play.
#[derive(Clone, Debug)]
pub struct Trailer {
    /// The YouTube page: what the button opens without JavaScript.
    pub watch_url: String,
    /// The privacy-enhanced player the modal loads when opened.
    pub embed_url: String,
}

/// A showtime link on the film page.
#[derive(Clone, Debug)]
pub struct SlotView {
    pub href: String,
    pub time: String,
    pub datetime: String,
    pub screen_name: String,
    pub from_price: String,
}

/// A cinema's showtimes on one day.
#[derive(Clone, Debug)]
pub struct CinemaSlots {
    pub name: String,
    pub place: String,
    pub slots: Vec<SlotView>,
}

/// One day of showtimes.
#[derive(Clone, Debug)]
pub struct DaySlots {
    pub heading: String,
    pub date: String,
    pub cinemas: Vec<CinemaSlots>,
}

/// `GET /films/{slug}`.
#[derive(Template)]
#[template(path = "film.html")]
pub struct FilmDetailsPage {
    pub film: FilmSummary,
    pub trailer: Option<Trailer>,
    pub days: Vec<DaySlots>,
    pub nav: Nav,
}

impl FilmDetailsPage {
    pub fn new(listing: &FilmShowtimes, base_url: &str) -> Self {
        let film = &listing.film;
        let trailer = film.trailer_youtube_id.as_ref().map(|id| Trailer {
            watch_url: format!("https://www.youtube.com/watch?v={id}"),
            embed_url: format!("https://www.youtube-nocookie.com/embed/{id}?autoplay=1"),
        });
        let days = listing
            .days
            .iter()
            .map(|day| DaySlots {
                heading: local_time::long_day(day.date),
                date: day.date.to_string(),
                cinemas: day
                    .cinemas
                    .iter()
                    .map(|entry| CinemaSlots {
                        name: entry.cinema.name.clone(),
                        place: join_present(&[&entry.cinema.address, &entry.cinema.city]),
                        slots: entry
                            .showtimes
                            .iter()
                            .map(|slot| SlotView {
                                href: format!("/showtimes/{}", slot.id),
                                time: local_time::time_of_day(&slot.starts_at_local),
                                datetime: slot.starts_at_local.to_rfc3339(),
                                screen_name: slot.screen_name.clone(),
                                from_price: slot.from_price.to_string(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        FilmDetailsPage {
            film: film_summary(film, base_url),
            trailer,
            days,
            nav: Nav::default(),
        }
    }
}

/// A seat category with its price and colour.
#[derive(Clone, Debug)]
pub struct CategoryView {
    pub name: String,
    pub class: String,
    pub price: String,
}

/// One place in a row of the seat plan: a seat or an aisle gap.
#[derive(Clone, Debug)]
pub struct SeatCell {
    pub is_aisle: bool,
    /// "A1"
    pub label: String,
    pub number: u32,
    /// The category's colour class, "cat-1".
    pub class: String,
    pub category: String,
    /// "₹250", or "not on sale".
    pub price: String,
    /// Minor units, for the page script's running total; 0 when not on sale.
    pub price_minor: i64,
    /// `available`, `mine`, `held`, `booked`, `blocked` or `unpriced`.
    pub state: &'static str,
    /// "Seat A1, Standard, ₹250": what a screen reader says before the state.
    pub name: String,
    /// The state in words: "available", "held by you", "sold", …
    pub state_text: &'static str,
    pub checked: bool,
    pub disabled: bool,
}

/// One row of the seat plan.
#[derive(Clone, Debug)]
pub struct RowView {
    pub label: String,
    pub cells: Vec<SeatCell>,
}

/// The caller's live hold, as the seat page shows it.
#[derive(Clone, Debug)]
pub struct HoldView {
    pub id: String,
    pub seats: String,
    pub total: String,
    /// RFC 3339 UTC, for the countdown.
    pub held_until: String,
    /// "18:42" on the cinema's clock.
    pub held_until_local: String,
}

/// Something the seat page must tell the visitor first.
#[derive(Clone, Debug)]
pub struct Notice {
    pub is_error: bool,
    pub message: String,
}

/// What the seat page knows about seats, beyond the layout.
#[derive(Clone, Debug, Default)]
pub struct SeatPageState<'a> {
    /// The live seat map; `None` when seating could not be asked.
    pub seats: Option<&'a SeatMap>,
    /// The caller's hold, active or not, when the page was asked to show it.
    pub hold: Option<&'a Hold>,
    /// Seats to show as selected (a form sent back with an error).
    pub selected: &'a [String],
    pub notice: Option<Notice>,
}

/// `GET /showtimes/{id}`: the showtime and its live seat plan.
#[derive(Template)]
#[template(path = "showtime.html")]
pub struct ShowtimePage {
    pub showtime_id: String,
    pub film: FilmSummary,
    pub cinema_name: String,
    pub cinema_place: String,
    pub screen_name: String,
    pub capacity: u32,
    pub starts: String,
    pub starts_datetime: String,
    pub ends: String,
    pub time_zone: String,
    pub categories: Vec<CategoryView>,
    pub rows: Vec<RowView>,
    pub first_row: String,
    pub last_row: String,
    /// Seats can be picked (seating answered).
    pub live: bool,
    pub version: u64,
    pub currency: String,
    pub hold: Option<HoldView>,
    pub notice: Option<Notice>,
    /// "2 seats: E6, E7" or the prompt when nothing is selected.
    pub selection_text: String,
    pub selection_total: String,
    pub hold_button: &'static str,
    /// Holding seats needs an account; visitors are invited to sign in.
    pub signed_in: bool,
    pub csrf_token: String,
    pub nav: Nav,
}

/// How many colours the stylesheet has for seat categories.
const CATEGORY_COLOURS: usize = 6;

impl ShowtimePage {
    pub fn new(detail: &ShowtimeDetail, seat_state: SeatPageState<'_>, base_url: &str) -> Self {
        // Colours follow price order (cheapest first); a category in the
        // layout without a price still gets a colour of its own.
        let mut order: Vec<&str> = detail.prices.iter().map(|p| p.category.as_str()).collect();
        for row in &detail.screen.layout.rows {
            if !order.contains(&row.category.as_str()) {
                order.push(&row.category);
            }
        }
        let class_of = |category: &str| {
            let index = order.iter().position(|c| *c == category).unwrap_or(0);
            format!("cat-{}", index % CATEGORY_COLOURS + 1)
        };
        let price_of = |category: &str| detail.prices.iter().find(|p| p.category == category);
        let currency = detail
            .prices
            .first()
            .map(|p| p.price.currency.clone())
            .unwrap_or_else(|| "INR".to_owned());
        let categories = order
            .iter()
            .map(|category| CategoryView {
                name: category_name(category),
                class: class_of(category),
                price: price_of(category)
                    .map(|p| p.price.to_string())
                    .unwrap_or_else(|| "not on sale".to_owned()),
            })
            .collect();

        let live_seats = seat_state.seats;
        let hold = seat_state
            .hold
            .filter(|hold| hold.status == HoldStatus::Active);
        let mut selected_total = 0i64;
        let mut selected_labels = Vec::new();
        let aisles = &detail.screen.layout.aisles_after;
        let rows = detail
            .screen
            .layout
            .rows
            .iter()
            .map(|row| {
                let class = class_of(&row.category);
                let category = category_name(&row.category);
                let price = price_of(&row.category);
                let mut cells = Vec::with_capacity(row.seats as usize + aisles.len());
                for number in 1..=row.seats {
                    let label = format!("{}{number}", row.label);
                    let live =
                        live_seats.and_then(|map| map.seats.iter().find(|s| s.label == label));
                    let state = match (live, price) {
                        (_, None) => "unpriced",
                        (None, _) => "unknown",
                        (Some(seat), _) if seat.mine => "mine",
                        (Some(seat), _) => seat.state.as_str(),
                    };
                    let checked = state == "mine"
                        || (state == "available" && seat_state.selected.contains(&label));
                    let price_minor = price.map(|p| p.price.amount_minor).unwrap_or(0);
                    if checked {
                        selected_total += price_minor;
                        selected_labels.push(label.clone());
                    }
                    let price_text = price
                        .map(|p| p.price.to_string())
                        .unwrap_or_else(|| "not on sale".to_owned());
                    cells.push(SeatCell {
                        is_aisle: false,
                        name: format!("Seat {label}, {category}, {price_text}"),
                        label,
                        number,
                        class: class.clone(),
                        category: category.clone(),
                        price: price_text,
                        price_minor,
                        state,
                        state_text: state_text(state),
                        checked,
                        disabled: !matches!(state, "available" | "mine"),
                    });
                    if number < row.seats && aisles.contains(&number) {
                        cells.push(SeatCell {
                            is_aisle: true,
                            label: String::new(),
                            number: 0,
                            class: String::new(),
                            category: String::new(),
                            price: String::new(),
                            price_minor: 0,
                            state: "",
                            name: String::new(),
                            state_text: "",
                            checked: false,
                            disabled: true,
                        });
                    }
                }
                RowView {
                    label: row.label.clone(),
                    cells,
                }
            })
            .collect();
        let zone = local_time::zone(&detail.cinema.time_zone);
        let hold_view = hold.map(|hold| HoldView {
            id: hold.id.clone(),
            seats: hold
                .seats
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            total: Money::new(
                hold.seats
                    .iter()
                    .filter_map(|s| price_of(&s.category))
                    .map(|p| p.price.amount_minor)
                    .sum(),
                currency.clone(),
            )
            .to_string(),
            held_until: hold.held_until.to_rfc3339_opts(SecondsFormat::Secs, true),
            held_until_local: local_time::time_of_day(&local_time::in_zone(hold.held_until, zone)),
        });
        let notice = seat_state.notice.or_else(|| match seat_state.hold {
            Some(hold) if hold.status != HoldStatus::Active => Some(Notice {
                is_error: false,
                message: "Your hold has ended and its seats went back on sale. Pick seats to \
                          hold them again."
                    .to_owned(),
            }),
            _ => None,
        });
        let selection_text = match selected_labels.len() {
            0 => "No seats selected yet.".to_owned(),
            1 => format!("1 seat: {}", selected_labels[0]),
            n => format!("{n} seats: {}", selected_labels.join(", ")),
        };
        ShowtimePage {
            showtime_id: detail.id.clone(),
            film: film_summary(&detail.film, base_url),
            cinema_name: detail.cinema.name.clone(),
            cinema_place: join_present(&[&detail.cinema.address, &detail.cinema.city]),
            screen_name: detail.screen.name.clone(),
            capacity: detail.screen.capacity,
            starts: local_time::day_and_time(&detail.starts_at_local),
            starts_datetime: detail.starts_at_local.to_rfc3339(),
            ends: local_time::time_of_day(&detail.ends_at_local),
            time_zone: detail.cinema.time_zone.clone(),
            categories,
            rows,
            first_row: detail
                .screen
                .layout
                .rows
                .first()
                .map(|r| r.label.clone())
                .unwrap_or_default(),
            last_row: detail
                .screen
                .layout
                .rows
                .last()
                .map(|r| r.label.clone())
                .unwrap_or_default(),
            live: live_seats.is_some(),
            version: live_seats.map(|map| map.version).unwrap_or(0),
            selection_total: Money::new(selected_total, currency.clone()).to_string(),
            currency,
            hold_button: if hold_view.is_some() {
                "Hold these seats instead"
            } else {
                "Hold seats"
            },
            hold: hold_view,
            notice,
            selection_text,
            signed_in: false,
            csrf_token: String::new(),
            nav: Nav::default(),
        }
    }

    /// Draws the page for this visitor: their header, their form token, and
    /// an invitation to sign in when they have no account yet.
    pub fn for_visitor(mut self, visitor: &crate::session::Visitor) -> Self {
        self.nav = visitor.nav();
        self.signed_in = visitor.session.is_some();
        self.csrf_token = visitor.csrf_token();
        if !self.signed_in {
            self.hold_button = "Sign in to hold seats";
        }
        self
    }
}

/// What a screen reader says about a seat's state.
fn state_text(state: &str) -> &'static str {
    match state {
        "available" => "available",
        "mine" => "held by you",
        "held" => "held by someone else",
        "booked" => "sold",
        "blocked" => "not on sale",
        "unpriced" => "not on sale",
        _ => "availability unknown",
    }
}

/// Any failure, as a page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
    pub try_again: bool,
    /// Error pages are drawn without the request, so as for a visitor.
    pub nav: Nav,
}

fn film_card(film: &Film, base_url: &str) -> FilmCard {
    FilmCard {
        href: format!("/films/{}", film.slug),
        title: film.title.clone(),
        poster_src: local_link(&film.poster_url, base_url).to_owned(),
        poster_fallback: crate::poster::fallback_path(&film.slug),
        certificate: film.certificate.clone(),
        duration: duration(film.duration_minutes),
        language: film
            .language
            .as_ref()
            .map(|l| l.name.clone())
            .unwrap_or_default(),
        genres: film
            .genres
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn film_summary(film: &Film, base_url: &str) -> FilmSummary {
    FilmSummary {
        href: format!("/films/{}", film.slug),
        title: film.title.clone(),
        poster_src: local_link(&film.poster_url, base_url).to_owned(),
        poster_fallback: crate::poster::fallback_path(&film.slug),
        synopsis: film.synopsis.clone(),
        genres: film.genres.iter().map(|g| g.name.clone()).collect(),
        language: film
            .language
            .as_ref()
            .map(|l| l.name.clone())
            .unwrap_or_default(),
        duration: duration(film.duration_minutes),
        certificate: film.certificate.clone(),
    }
}

/// Links to this gateway become relative, so pages work on whatever host
/// they were reached at; other URLs pass through.
fn local_link<'a>(url: &'a str, base_url: &str) -> &'a str {
    match url.strip_prefix(base_url) {
        Some(path) if path.starts_with('/') => path,
        _ => url,
    }
}

/// `148` → "2h 28m".
pub fn duration(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// "1 film", "12 films".
fn plural(count: u32, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// "premium-plus" → "Premium plus".
fn category_name(category: &str) -> String {
    let spaced = category.replace(['-', '_'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Seats".to_owned(),
    }
}

fn join_present(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `key=value&…` with empty values left out and everything percent-encoded.
fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration(148), "2h 28m");
        assert_eq!(duration(120), "2h");
        assert_eq!(duration(45), "45m");
    }

    #[test]
    fn next_page_links_keep_the_filters_and_encode_them() {
        assert_eq!(
            query_string(&[("genre", "drama"), ("q", "café & co"), ("language", "")]),
            "genre=drama&q=caf%C3%A9%20%26%20co"
        );
    }

    #[test]
    fn own_links_become_relative() {
        assert_eq!(
            local_link(
                "http://127.0.0.1:8080/posters/x.svg",
                "http://127.0.0.1:8080"
            ),
            "/posters/x.svg"
        );
        assert_eq!(
            local_link("https://img.example/x.jpg", "http://127.0.0.1:8080"),
            "https://img.example/x.jpg"
        );
    }

    #[test]
    fn categories_read_as_words() {
        assert_eq!(category_name("premium-plus"), "Premium plus");
        assert_eq!(category_name("recliner"), "Recliner");
    }
}

/// `GET /login`.
#[derive(Template, Default)]
#[template(path = "login.html")]
pub struct SignInPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub email: String,
    /// Where to go after signing in (a local path).
    pub next: String,
    pub notice: Option<Notice>,
}

/// `GET /signup`.
#[derive(Template, Default)]
#[template(path = "signup.html")]
pub struct SignUpPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub email: String,
    pub display_name: String,
    pub next: String,
    pub min_password: usize,
    pub notice: Option<Notice>,
}

/// `GET /password-reset`: ask for a reset link.
#[derive(Template, Default)]
#[template(path = "forgot_password.html")]
pub struct ForgotPasswordPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub email: String,
    pub notice: Option<Notice>,
}

/// `GET /reset-password?token=…`: choose a new password.
#[derive(Template, Default)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub token: String,
    /// The link works (unused, unexpired); otherwise the page says so.
    pub usable: bool,
    pub min_password: usize,
    pub notice: Option<Notice>,
}

/// A booking drawn as a ticket stub.
#[derive(Clone, Debug)]
pub struct TicketStub {
    pub reference: String,
    pub film_title: String,
    pub poster_src: String,
    pub poster_fallback: String,
    pub cinema_name: String,
    pub screen_name: String,
    pub when: String,
    pub datetime: String,
    pub seats: String,
    pub amount: String,
    pub status: &'static str,
    pub status_class: &'static str,
}

impl TicketStub {
    pub fn new(booking: &crate::resources::Booking, base_url: &str) -> Self {
        let local = local_time::in_zone(
            booking.starts_at,
            local_time::zone(&booking.cinema_time_zone),
        );
        let fallback = crate::poster::fallback_path(&booking.film_id);
        let poster_src = if booking.poster_url.is_empty() {
            fallback.clone()
        } else {
            local_link(&booking.poster_url, base_url).to_owned()
        };
        let (status, status_class) = match booking.status {
            crate::resources::BookingStatus::Confirmed => ("Confirmed", "stub--confirmed"),
            crate::resources::BookingStatus::Refunded => ("Refunded", "stub--refunded"),
        };
        TicketStub {
            reference: booking.reference.clone(),
            film_title: booking.film_title.clone(),
            poster_src,
            poster_fallback: fallback,
            cinema_name: booking.cinema_name.clone(),
            screen_name: booking.screen_name.clone(),
            when: local_time::day_and_time(&local),
            datetime: local.to_rfc3339(),
            seats: booking
                .seats
                .iter()
                .map(|seat| seat.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            amount: Money::new(booking.amount_minor, booking.currency.clone()).to_string(),
            status,
            status_class,
        }
    }
}

/// `GET /profile`: the account and its bookings.
#[derive(Template, Default)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    pub nav: Nav,
    pub csrf_token: String,
    pub email: String,
    pub display_name: String,
    pub member_since: String,
    pub is_staff: bool,
    pub min_password: usize,
    pub bookings: Vec<TicketStub>,
    pub count_text: String,
    /// Seating did not answer: the history cannot be shown right now.
    pub bookings_unavailable: bool,
    pub notice: Option<Notice>,
}

impl ProfilePage {
    pub fn count_text(count: usize) -> String {
        plural(
            u32::try_from(count).unwrap_or(u32::MAX),
            "booking",
            "bookings",
        )
    }
}

/// `GET /admin`: the staff area's front page.
#[derive(Template, Default)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub display_name: String,
    pub notice: Option<Notice>,
}

/// A page's HTML. A template that cannot render is a bug: it is logged with
/// the template's name and the visitor gets the error page.
pub fn render(page: &impl Template) -> Result<Html<String>, PageError> {
    page.render().map(Html).map_err(|error| {
        let template = std::any::type_name_of_val(page);
        tracing::error!(%error, template, "cannot render a page");
        PageError(Error::internal())
    })
}

/// [`render`], answered with `status`.
pub fn respond(status: StatusCode, page: &impl Template) -> Result<Response, PageError> {
    Ok((status, render(page)?).into_response())
}
