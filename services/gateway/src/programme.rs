//! Programme management for staff: films, cinemas, screens with their seat
//! layouts, and showtimes, through catalog's staff calls.
//!
//! Catalog owns the rules (overlapping showtimes, layout bounds, YouTube-only
//! trailers, positive prices) and answers a rejected input with
//! `FieldViolations`; this module only turns HTML form text into catalog's
//! inputs and back, and maps each violation onto the form field it concerns,
//! so the page can show every message next to its input. What cannot even be
//! parsed here (a duration that is not a number, a malformed start time, a
//! layout line that is not "A 12 standard") becomes a violation of the same
//! shape before catalog is asked.
//!
//! Layouts and prices are edited as text, one row or category per line,
//! which works without JavaScript and stays readable for a 30-row hall:
//!
//! ```text
//! A 12 standard        prices:  standard 250.00
//! B 12 standard                 premium  400
//! J 14 premium
//! ```
//!
//! Showtime starts are typed on the cinema's clock (`datetime-local`) and
//! stored in UTC, in the screen's cinema's time zone.

use chrono::{NaiveDateTime, TimeZone as _, Utc};
use proto::catalog::v1 as pb;
use serde::Deserialize;

use crate::catalog_client::CatalogClient;
use crate::error::Error;
use crate::money;

/// A problem with one form field, from catalog or from parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The form field's name ("" when it concerns the whole form).
    pub field: String,
    pub message: String,
}

/// Why a staff change did not happen.
#[derive(Debug)]
pub enum ProgrammeError {
    /// The input broke a rule: each message belongs next to its field.
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    /// Anything else (catalog down, not found).
    Other(Error),
}

impl From<Error> for ProgrammeError {
    fn from(error: Error) -> Self {
        ProgrammeError::Other(error)
    }
}

impl ProgrammeError {
    fn invalid(fields: Vec<FieldError>) -> Self {
        ProgrammeError::Invalid {
            message: "Please correct the fields marked below.".to_owned(),
            fields,
        }
    }

    /// From a catalog status: `FieldViolations` become field errors, named
    /// after this form's fields by `field_of`.
    fn from_status(status: tonic::Status, field_of: fn(&str) -> &'static str) -> Self {
        use prost::Message as _;
        if status.code() == tonic::Code::InvalidArgument {
            let violations = pb::FieldViolations::decode(status.details())
                .map(|d| d.violations)
                .unwrap_or_default();
            let fields = violations
                .into_iter()
                .map(|v| FieldError {
                    field: field_of(&v.field).to_owned(),
                    message: v.message,
                })
                .collect::<Vec<_>>();
            return ProgrammeError::Invalid {
                message: if fields.is_empty() {
                    status.message().to_owned()
                } else {
                    "Please correct the fields marked below.".to_owned()
                },
                fields,
            };
        }
        if status.code() == tonic::Code::FailedPrecondition {
            // An overlapping showtime is a fact about the chosen time.
            return ProgrammeError::Invalid {
                message: status.message().to_owned(),
                fields: Vec::new(),
            };
        }
        ProgrammeError::Other(status.into())
    }
}

/// The first segment of a catalog field path: `layout.rows[2].seats` →
/// `layout`, `prices[1]` → `prices`.
fn head(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// The film form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilmForm {
    pub title: String,
    pub slug: String,
    pub synopsis: String,
    /// Genre slugs, comma-separated.
    pub genres: String,
    /// Language code ("en").
    pub language: String,
    pub duration_minutes: String,
    pub certificate: String,
    pub poster_url: String,
    pub trailer_url: String,
}

fn film_field(path: &str) -> &'static str {
    match head(path) {
        "title" => "title",
        "slug" => "slug",
        "synopsis" => "synopsis",
        "genres" => "genres",
        "language" => "language",
        "duration_minutes" => "duration_minutes",
        "certificate" => "certificate",
        "poster_url" => "poster_url",
        "trailer_url" => "trailer_url",
        _ => "",
    }
}

impl FilmForm {
    fn from_film(film: pb::Film) -> Self {
        FilmForm {
            title: film.title,
            slug: film.slug,
            synopsis: film.synopsis,
            genres: film
                .genres
                .iter()
                .map(|g| g.slug.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            language: film.language.map(|l| l.code).unwrap_or_default(),
            duration_minutes: film.duration_minutes.to_string(),
            certificate: film.certificate,
            poster_url: film.poster_url,
            trailer_url: film.trailer_url,
        }
    }

    fn to_input(&self) -> Result<pb::FilmInput, ProgrammeError> {
        let duration_minutes = self.duration_minutes.trim().parse::<u32>().map_err(|_| {
            ProgrammeError::invalid(vec![FieldError {
                field: "duration_minutes".to_owned(),
                message: "Enter the running time in whole minutes, like 148.".to_owned(),
            }])
        })?;
        Ok(pb::FilmInput {
            title: self.title.trim().to_owned(),
            slug: self.slug.trim().to_owned(),
            synopsis: self.synopsis.trim().to_owned(),
            genres: self
                .genres
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            language: self.language.trim().to_owned(),
            duration_minutes,
            certificate: self.certificate.trim().to_owned(),
            poster_url: self.poster_url.trim().to_owned(),
            trailer_url: self.trailer_url.trim().to_owned(),
        })
    }
}

/// The cinema form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CinemaForm {
    pub name: String,
    pub city: String,
    pub address: String,
    /// IANA time zone ("Asia/Kolkata").
    pub time_zone: String,
}

fn cinema_field(path: &str) -> &'static str {
    match head(path) {
        "name" => "name",
        "city" => "city",
        "address" => "address",
        "time_zone" => "time_zone",
        _ => "",
    }
}

impl CinemaForm {
    fn to_input(&self) -> pb::CinemaInput {
        pb::CinemaInput {
            name: self.name.trim().to_owned(),
            city: self.city.trim().to_owned(),
            address: self.address.trim().to_owned(),
            time_zone: self.time_zone.trim().to_owned(),
        }
    }
}

/// The screen form: its name and its layout as text.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScreenForm {
    pub name: String,
    /// One row per line: `label seats category`, front row first.
    pub rows: String,
    /// Seat numbers after which an aisle runs, comma-separated.
    pub aisles: String,
}

fn screen_field(path: &str) -> &'static str {
    match head(path) {
        "name" => "name",
        "layout" if path.contains("aisles") => "aisles",
        "layout" | "rows" => "rows",
        "aisles_after" => "aisles",
        _ => "",
    }
}

impl ScreenForm {
    fn from_screen(screen: &pb::Screen) -> Self {
        let layout = screen.layout.clone().unwrap_or_default();
        ScreenForm {
            name: screen.name.clone(),
            rows: layout
                .rows
                .iter()
                .map(|r| format!("{} {} {}", r.label, r.seats, r.category))
                .collect::<Vec<_>>()
                .join("\n"),
            aisles: layout
                .aisles_after
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The layout, or what is wrong with the text.
    pub fn layout(&self) -> Result<pb::SeatLayout, ProgrammeError> {
        let mut errors = Vec::new();
        let mut rows = Vec::new();
        for (n, line) in self.rows.lines().map(str::trim).enumerate() {
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [label, seats, category] => match seats.parse::<u32>() {
                    Ok(seats) => rows.push(pb::SeatRow {
                        label: (*label).to_owned(),
                        seats,
                        category: (*category).to_owned(),
                    }),
                    Err(_) => errors.push(format!(
                        "Line {}: \"{seats}\" is not a number of seats.",
                        n + 1
                    )),
                },
                _ => errors.push(format!(
                    "Line {}: write a row as \"A 12 standard\" (label, seats, category).",
                    n + 1
                )),
            }
        }
        let mut aisles = Vec::new();
        for part in self
            .aisles
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match part.parse::<u32>() {
                Ok(after) => aisles.push(after),
                Err(_) => {
                    return Err(ProgrammeError::invalid(vec![FieldError {
                        field: "aisles".to_owned(),
                        message: format!("\"{part}\" is not a seat number."),
                    }]));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ProgrammeError::invalid(vec![FieldError {
                field: "rows".to_owned(),
                message: errors.join(" "),
            }]));
        }
        Ok(pb::SeatLayout {
            rows,
            aisles_after: aisles,
        })
    }
}

/// The showtime form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ShowtimeForm {
    pub film_id: String,
    pub screen_id: String,
    /// `2026-11-22T18:30` on the cinema's clock.
    pub starts_local: String,
    pub currency: String,
    /// One category per line: `category amount` in major units.
    pub prices: String,
}

fn showtime_field(path: &str) -> &'static str {
    match head(path) {
        "film_id" | "film" => "film_id",
        "screen_id" | "screen" => "screen_id",
        "starts_at" => "starts_local",
        "currency" => "currency",
        "prices" => "prices",
        _ => "",
    }
}

impl ShowtimeForm {
    fn from_showtime(showtime: &pb::Showtime, zone: &str) -> Self {
        let zone = crate::local_time::zone(zone);
        let starts_local = showtime
            .starts_at
            .as_ref()
            .and_then(proto::time::from_timestamp)
            .map(|at| at.with_timezone(&zone).format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default();
        ShowtimeForm {
            film_id: showtime.film_id.clone(),
            screen_id: showtime.screen_id.clone(),
            starts_local,
            currency: showtime.currency.clone(),
            prices: showtime
                .prices
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.category,
                        money::major_units(p.amount_minor, &showtime.currency)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Catalog's input, with the start converted from the cinema's clock in
    /// `zone` to UTC.
    fn to_input(&self, zone: &str) -> Result<pb::ShowtimeInput, ProgrammeError> {
        let mut errors = Vec::new();
        let currency = self.currency.trim().to_uppercase();
        let starts_at = NaiveDateTime::parse_from_str(self.starts_local.trim(), "%Y-%m-%dT%H:%M")
            .ok()
            .and_then(|local| {
                crate::local_time::zone(zone)
                    .from_local_datetime(&local)
                    .earliest()
            })
            .map(|at| at.with_timezone(&Utc));
        if starts_at.is_none() {
            errors.push(FieldError {
                field: "starts_local".to_owned(),
                message: "Enter the start as a date and time on the cinema's clock, like \
                          2026-11-22T18:30."
                    .to_owned(),
            });
        }
        let mut prices = Vec::new();
        for line in self.prices.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parsed = line
                .split_once(char::is_whitespace)
                .and_then(|(category, amount)| {
                    money::parse_major_units(amount.trim(), &currency)
                        .map(|minor| (category.to_owned(), minor))
                });
            match parsed {
                Some((category, amount_minor)) => prices.push(pb::Price {
                    category,
                    amount_minor,
                }),
                None => errors.push(FieldError {
                    field: "prices".to_owned(),
                    message: format!(
                        "\"{line}\": write each price as \"standard 250.00\" (category, amount)."
                    ),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ProgrammeError::invalid(errors));
        }
        Ok(pb::ShowtimeInput {
            film_id: self.film_id.trim().to_owned(),
            screen_id: self.screen_id.trim().to_owned(),
            starts_at: starts_at.map(proto::time::to_timestamp),
            currency,
            prices,
        })
    }
}

/// A screen as the showtime form offers it.
#[derive(Clone, Debug)]
pub struct ScreenChoice {
    pub id: String,
    pub label: String,
    pub time_zone: String,
    pub categories: Vec<String>,
}

/// A cinema with its screens, for the programme overview.
#[derive(Clone, Debug)]
pub struct CinemaEntry {
    pub id: String,
    pub name: String,
    pub city: String,
    pub time_zone: String,
    pub form: CinemaForm,
    pub screens: Vec<ScreenEntry>,
}

/// A screen, for the overview and its edit form.
#[derive(Clone, Debug)]
pub struct ScreenEntry {
    pub id: String,
    pub name: String,
    pub capacity: u32,
    pub form: ScreenForm,
}

/// A film, for the overview and its edit form.
#[derive(Clone, Debug)]
pub struct FilmEntry {
    pub id: String,
    pub title: String,
    pub form: FilmForm,
}

/// A showtime as its edit form needs it.
#[derive(Clone, Debug)]
pub struct ShowtimeEntry {
    pub form: ShowtimeForm,
    pub film_title: String,
}

fn status_error(status: tonic::Status, what: &str) -> Error {
    match status.code() {
        tonic::Code::NotFound => Error::NotFound(format!("There is no such {what}.")),
        _ => status.into(),
    }
}

impl CatalogClient {
    /// Every film (staff see the whole programme, a page at a time of 100).
    pub async fn all_films(&self) -> Result<Vec<FilmEntry>, Error> {
        let mut films = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .grpc()
                .list_films(pb::ListFilmsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            films.extend(page.films.into_iter().map(|film| FilmEntry {
                id: film.id.clone(),
                title: film.title.clone(),
                form: FilmForm::from_film(film),
            }));
            if page.next_page_token.is_empty() {
                return Ok(films);
            }
            page_token = page.next_page_token;
        }
    }

    /// One film, as its edit form shows it.
    pub async fn film_for_editing(&self, id: &str) -> Result<FilmEntry, Error> {
        let film = self
            .grpc()
            .get_film(pb::GetFilmRequest {
                id_or_slug: id.to_owned(),
            })
            .await
            .map_err(|s| status_error(s, "film"))?
            .into_inner();
        Ok(FilmEntry {
            id: film.id.clone(),
            title: film.title.clone(),
            form: FilmForm::from_film(film),
        })
    }

    /// Creates a film (`id` empty) or replaces one; answers its id.
    pub async fn save_film(
        &self,
        id: Option<&str>,
        form: &FilmForm,
    ) -> Result<String, ProgrammeError> {
        let input = form.to_input()?;
        let answer = match id {
            None => {
                self.grpc()
                    .create_film(pb::CreateFilmRequest { film: Some(input) })
                    .await
            }
            Some(id) => {
                self.grpc()
                    .update_film(pb::UpdateFilmRequest {
                        film_id: id.to_owned(),
                        film: Some(input),
                    })
                    .await
            }
        };
        answer
            .map(|film| film.into_inner().id)
            .map_err(|s| ProgrammeError::from_status(s, film_field))
    }

    /// Every cinema with its screens.
    pub async fn cinemas_for_editing(&self) -> Result<Vec<CinemaEntry>, Error> {
        let cinemas = self
            .grpc()
            .list_cinemas(pb::ListCinemasRequest {})
            .await?
            .into_inner()
            .cinemas;
        Ok(cinemas
            .into_iter()
            .map(|cinema| CinemaEntry {
                form: CinemaForm {
                    name: cinema.name.clone(),
                    city: cinema.city.clone(),
                    address: cinema.address.clone(),
                    time_zone: cinema.time_zone.clone(),
                },
                screens: cinema
                    .screens
                    .iter()
                    .map(|screen| ScreenEntry {
                        id: screen.id.clone(),
                        name: screen.name.clone(),
                        capacity: screen.capacity,
                        form: ScreenForm::from_screen(screen),
                    })
                    .collect(),
                id: cinema.id,
                name: cinema.name,
                city: cinema.city,
                time_zone: cinema.time_zone,
            })
            .collect())
    }

    /// Every screen, named with its cinema, for the showtime form.
    pub async fn screen_choices(&self) -> Result<Vec<ScreenChoice>, Error> {
        Ok(self
            .cinemas_for_editing()
            .await?
            .into_iter()
            .flat_map(|cinema| {
                cinema.screens.into_iter().map(move |screen| {
                    let layout = screen.form.layout().unwrap_or_default();
                    let mut categories: Vec<String> = Vec::new();
                    for row in layout.rows {
                        if !categories.contains(&row.category) {
                            categories.push(row.category);
                        }
                    }
                    ScreenChoice {
                        id: screen.id,
                        label: format!(
                            "{} · {} ({} seats)",
                            cinema.name, screen.name, screen.capacity
                        ),
                        time_zone: cinema.time_zone.clone(),
                        categories,
                    }
                })
            })
            .collect())
    }

    /// Creates a cinema or replaces one; answers its id.
    pub async fn save_cinema(
        &self,
        id: Option<&str>,
        form: &CinemaForm,
    ) -> Result<String, ProgrammeError> {
        let input = form.to_input();
        let answer = match id {
            None => {
                self.grpc()
                    .create_cinema(pb::CreateCinemaRequest {
                        cinema: Some(input),
                    })
                    .await
            }
            Some(id) => {
                self.grpc()
                    .update_cinema(pb::UpdateCinemaRequest {
                        cinema_id: id.to_owned(),
                        cinema: Some(input),
                    })
                    .await
            }
        };
        answer
            .map(|cinema| cinema.into_inner().id)
            .map_err(|s| ProgrammeError::from_status(s, cinema_field))
    }

    /// Creates a screen in `cinema_id`, or replaces screen `id`.
    pub async fn save_screen(
        &self,
        cinema_id: &str,
        id: Option<&str>,
        form: &ScreenForm,
    ) -> Result<String, ProgrammeError> {
        let layout = form.layout()?;
        let name = form.name.trim().to_owned();
        let answer = match id {
            None => {
                self.grpc()
                    .create_screen(pb::CreateScreenRequest {
                        cinema_id: cinema_id.to_owned(),
                        name,
                        layout: Some(layout),
                    })
                    .await
            }
            Some(id) => {
                self.grpc()
                    .update_screen(pb::UpdateScreenRequest {
                        screen_id: id.to_owned(),
                        name,
                        layout: Some(layout),
                    })
                    .await
            }
        };
        answer
            .map(|screen| screen.into_inner().id)
            .map_err(|s| ProgrammeError::from_status(s, screen_field))
    }

    /// One showtime, as its edit form shows it.
    pub async fn showtime_for_editing(&self, id: &str) -> Result<ShowtimeEntry, Error> {
        let showtime_id = crate::catalog_client::parse_showtime_id(id)?;
        let detail = self
            .grpc()
            .get_showtime(pb::GetShowtimeRequest {
                showtime_id: showtime_id.to_string(),
            })
            .await
            .map_err(|s| status_error(s, "showtime"))?
            .into_inner();
        let showtime = detail.showtime.unwrap_or_default();
        let zone = detail.cinema.map(|c| c.time_zone).unwrap_or_default();
        Ok(ShowtimeEntry {
            form: ShowtimeForm::from_showtime(&showtime, &zone),
            film_title: detail.film.map(|f| f.title).unwrap_or_default(),
        })
    }

    /// Schedules a showtime or moves one; `zone` is the time zone of the
    /// chosen screen's cinema. Answers its id.
    pub async fn save_showtime(
        &self,
        id: Option<&str>,
        form: &ShowtimeForm,
        zone: &str,
    ) -> Result<String, ProgrammeError> {
        let input = form.to_input(zone)?;
        let answer = match id {
            None => {
                self.grpc()
                    .create_showtime(pb::CreateShowtimeRequest {
                        showtime: Some(input),
                    })
                    .await
            }
            Some(id) => {
                self.grpc()
                    .update_showtime(pb::UpdateShowtimeRequest {
                        showtime_id: id.to_owned(),
                        showtime: Some(input),
                    })
                    .await
            }
        };
        answer
            .map(|showtime| showtime.into_inner().id)
            .map_err(|s| ProgrammeError::from_status(s, showtime_field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_field_paths_land_on_form_fields() {
        assert_eq!(screen_field("layout.rows[2].seats"), "rows");
        assert_eq!(screen_field("layout.aisles_after"), "aisles");
        assert_eq!(showtime_field("prices[1]"), "prices");
        assert_eq!(showtime_field("starts_at"), "starts_local");
        assert_eq!(film_field("trailer_url"), "trailer_url");
        assert_eq!(film_field("something.else"), "");
    }

    #[test]
    fn layouts_are_written_one_row_per_line() {
        let form = ScreenForm {
            name: "Screen 9".into(),
            rows: "A 12 standard\n\nB 14 premium\n".into(),
            aisles: "4, 8".into(),
        };
        let layout = form.layout().unwrap();
        assert_eq!(layout.rows.len(), 2);
        assert_eq!(layout.rows[1].seats, 14);
        assert_eq!(layout.aisles_after, vec![4, 8]);
        let round_trip = ScreenForm::from_screen(&pb::Screen {
            name: "Screen 9".into(),
            layout: Some(layout),
            ..Default::default()
        });
        assert_eq!(round_trip.rows, "A 12 standard\nB 14 premium");

        let bad = ScreenForm {
            rows: "A twelve standard\nB 12".into(),
            ..Default::default()
        };
        let Err(ProgrammeError::Invalid { fields, .. }) = bad.layout() else {
            panic!("a malformed layout was accepted");
        };
        assert_eq!(fields[0].field, "rows");
        assert!(fields[0].message.contains("Line 1") && fields[0].message.contains("Line 2"));
    }

    #[test]
    fn showtime_starts_are_typed_on_the_cinemas_clock() {
        let form = ShowtimeForm {
            film_id: "f".into(),
            screen_id: "s".into(),
            starts_local: "2026-12-01T18:30".into(),
            currency: "inr".into(),
            prices: "standard 250\npremium 400.50".into(),
        };
        let input = form.to_input("Asia/Kolkata").unwrap();
        let starts = proto::time::from_timestamp(input.starts_at.as_ref().unwrap()).unwrap();
        assert_eq!(starts.to_rfc3339(), "2026-12-01T13:00:00+00:00");
        assert_eq!(input.currency, "INR");
        assert_eq!(input.prices[0].amount_minor, 25_000);
        assert_eq!(input.prices[1].amount_minor, 40_050);

        let bad = ShowtimeForm {
            starts_local: "tomorrow".into(),
            prices: "standard".into(),
            ..form
        };
        let Err(ProgrammeError::Invalid { fields, .. }) = bad.to_input("Asia/Kolkata") else {
            panic!("a malformed showtime was accepted");
        };
        let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(named, ["starts_local", "prices"]);
    }
}
