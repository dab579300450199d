//! The programme's rules, independent of storage and transport.
//!
//! Staff input is parsed here once into validated drafts (`FilmDraft`,
//! `CinemaDraft`, `SeatLayout`, `ShowtimeDraft`); the store and the gRPC layer
//! never re-validate. Every failure names the field it concerns, so the staff
//! forms can show each message next to its input.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Time after a film ends before the next showing may start on that screen
/// (cleaning, adverts, doors). Part of every showtime's occupied range.
pub const CHANGEOVER_MINUTES: i64 = 15;

/// Showtimes may be scheduled at most this far ahead.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 366;

/// Bounds that keep layouts drawable and seat maps small.
pub const MAX_ROWS: usize = 30;
pub const MAX_SEATS_PER_ROW: u32 = 60;
pub const MAX_CAPACITY: u32 = 1_200;

/// One amount in minor units: ₹10,000,000.00 is far above any ticket.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;

pub const DEFAULT_PAGE_SIZE: u32 = 24;
pub const MAX_PAGE_SIZE: u32 = 100;
pub const MAX_QUERY_CHARS: usize = 100;

/// A problem with one input field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub message: String,
}

/// Collects every problem in one input before answering, so a form shows
/// them all at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was wrong, otherwise the invalid-argument error.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, CatalogError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(CatalogError::invalid(self.0))
        }
    }
}

/// What can go wrong in catalog, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// The input is well-formed but clashes with what exists (an overlapping
    /// showtime, a slug in use, a layout change under scheduled showtimes).
    #[error("{message}")]
    Conflict {
        message: String,
        violations: Vec<FieldViolation>,
    },
    #[error("the catalog database failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl CatalogError {
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ");
        CatalogError::InvalidArgument {
            message,
            violations,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        CatalogError::Conflict {
            violations: vec![FieldViolation {
                field: field.to_owned(),
                message: message.clone(),
            }],
            message,
        }
    }

    pub fn not_found(what: &'static str, id: impl std::fmt::Display) -> Self {
        CatalogError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// The fixed genre and language vocabularies (defined by migrations), loaded
/// once at start-up.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    pub genres: BTreeMap<String, String>,
    pub languages: BTreeMap<String, String>,
}

impl Vocabulary {
    pub fn genre_name<'a>(&'a self, slug: &'a str) -> &'a str {
        self.genres.get(slug).map(String::as_str).unwrap_or(slug)
    }

    pub fn language_name<'a>(&'a self, code: &'a str) -> &'a str {
        self.languages.get(code).map(String::as_str).unwrap_or(code)
    }
}

/// A URL-safe film name: lowercase ASCII letters and digits in dash-separated
/// words, at most 100 characters.
pub fn parse_slug(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 100
        && value.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err("use lowercase letters, digits and single dashes (at most 100 characters), e.g. \"the-general\"".into())
    }
}

/// A slug derived from a title: "Le Voyage dans la Lune!" → "le-voyage-dans-la-lune".
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_end_matches('-').to_owned();
    slug.truncate(100);
    slug.trim_end_matches('-').to_owned()
}

/// The video id of a YouTube link (watch, short, embed, youtu.be and
/// youtube-nocookie forms). Anything else is refused: the trailer modal embeds
/// only YouTube.
pub fn youtube_video_id(url: &str) -> Result<String, String> {
    const REFUSAL: &str = "must be a YouTube link such as https://www.youtube.com/watch?v=VIDEO_ID";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(REFUSAL)?;
    let (host, path) = rest.split_once('/').ok_or(REFUSAL)?;
    let host = host.to_ascii_lowercase();
    let candidate = match host.as_str() {
        "youtu.be" => path.split(['?', '#', '/']).next().unwrap_or(""),
        "youtube.com"
        | "www.youtube.com"
        | "m.youtube.com"
        | "www.youtube-nocookie.com"
        | "youtube-nocookie.com" => {
            if let Some(query) = path.strip_prefix("watch?") {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("v="))
                    .unwrap_or("")
                    .split('#')
                    .next()
                    .unwrap_or("")
            } else if let Some(id) = path
                .strip_prefix("embed/")
                .or_else(|| path.strip_prefix("shorts/"))
                .or_else(|| path.strip_prefix("v/"))
            {
                id.split(['?', '#', '/']).next().unwrap_or("")
            } else {
                ""
            }
        }
        _ => "",
    };
    let is_video_id = candidate.len() == 11
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if is_video_id {
        Ok(candidate.to_owned())
    } else {
        Err(REFUSAL.into())
    }
}

fn check_text(
    violations: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max_chars: usize,
) -> String {
    let value = value.trim();
    if required && value.is_empty() {
        violations.add(field, "is required");
    } else if value.chars().count() > max_chars {
        violations.add(field, format!("must be at most {max_chars} characters"));
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        violations.add(field, "must not contain control characters");
    }
    value.to_owned()
}

fn check_image_url(violations: &mut Violations, field: &str, value: &str) -> String {
    let value = value.trim();
    let ok = value.is_empty()
        || ((value.starts_with("https://")
            || value.starts_with("http://")
            || value.starts_with('/'))
            && value.len() <= 500
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '<' || c == '>'));
    if !ok {
        violations.add(
            field,
            "must be empty, a path on this site, or an http(s) URL",
        );
    }
    value.to_owned()
}

/// Staff input for a film, before validation.
#[derive(Clone, Debug, Default)]
pub struct FilmInput {
    pub title: String,
    pub slug: String,
    pub synopsis: String,
    pub genres: Vec<String>,
    pub language: String,
    pub duration_minutes: u32,
    pub certificate: String,
    pub poster_url: String,
    pub trailer_url: String,
}

/// A film that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilmDraft {
    pub title: String,
    pub slug: String,
    pub synopsis: String,
    pub genres: Vec<String>,
    pub language: String,
    pub duration_minutes: u32,
    pub certificate: String,
    pub poster_url: String,
    pub trailer_url: String,
    pub trailer_youtube_id: String,
}

impl FilmDraft {
    pub fn parse(input: FilmInput, vocabulary: &Vocabulary) -> Result<FilmDraft, CatalogError> {
        let mut v = Violations::default();
        let title = check_text(&mut v, "title", &input.title, true, 200);
        let slug_source = if input.slug.trim().is_empty() {
            slugify(&title)
        } else {
            input.slug.trim().to_owned()
        };
        let slug = match parse_slug(&slug_source) {
            Ok(slug) => slug,
            Err(message) => {
                // An untypeable title (all punctuation) leaves no slug: ask for one.
                if !title.is_empty() {
                    v.add("slug", message);
                }
                String::new()
            }
        };
        let synopsis = check_text(&mut v, "synopsis", &input.synopsis, false, 5_000);

        let mut genres = Vec::new();
        if input.genres.is_empty() {
            v.add("genres", "choose at least one genre");
        } else if input.genres.len() > 5 {
            v.add("genres", "choose at most five genres");
        }
        for genre in &input.genres {
            let genre = genre.trim();
            if !vocabulary.genres.contains_key(genre) {
                v.add("genres", format!("unknown genre \"{genre}\""));
            } else if genres.iter().any(|g| g == genre) {
                v.add("genres", format!("\"{genre}\" is listed twice"));
            } else {
                genres.push(genre.to_owned());
            }
        }

        let language = input.language.trim().to_owned();
        if !vocabulary.languages.contains_key(&language) {
            v.add("language", format!("unknown language \"{language}\""));
        }
        if !(1..=600).contains(&input.duration_minutes) {
            v.add("duration_minutes", "must be between 1 and 600 minutes");
        }
        let certificate = input.certificate.trim().to_owned();
        if certificate.is_empty()
            || certificate.len() > 10
            || !certificate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-/ ".contains(&b))
        {
            v.add(
                "certificate",
                "use a short rating such as U, UA, A, PG-13 or 15 (letters, digits, + - /)",
            );
        }
        let poster_url = check_image_url(&mut v, "poster_url", &input.poster_url);
        let trailer_url = input.trailer_url.trim().to_owned();
        let trailer_youtube_id = if trailer_url.is_empty() {
            String::new()
        } else {
            youtube_video_id(&trailer_url).unwrap_or_else(|message| {
                v.add("trailer_url", message);
                String::new()
            })
        };

        v.finish(|| FilmDraft {
            title,
            slug,
            synopsis,
            genres,
            language,
            duration_minutes: input.duration_minutes,
            certificate,
            poster_url,
            trailer_url,
            trailer_youtube_id,
        })
    }
}

/// Staff input for a cinema, before validation.
#[derive(Clone, Debug, Default)]
pub struct CinemaInput {
    pub name: String,
    pub city: String,
    pub address: String,
    pub time_zone: String,
}

/// A cinema that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CinemaDraft {
    pub name: String,
    pub city: String,
    pub address: String,
    pub time_zone: String,
}

impl CinemaDraft {
    pub fn parse(input: CinemaInput) -> Result<CinemaDraft, CatalogError> {
        let mut v = Violations::default();
        let name = check_text(&mut v, "name", &input.name, true, 100);
        let city = check_text(&mut v, "city", &input.city, true, 100);
        let address = check_text(&mut v, "address", &input.address, false, 300);
        let time_zone = input.time_zone.trim().to_owned();
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            v.add(
                "time_zone",
                "must be an IANA time zone such as Asia/Kolkata or Europe/London",
            );
        }
        v.finish(|| CinemaDraft {
            name,
            city,
            address,
            time_zone,
        })
    }
}

/// A screen's hall, front row first. Stored as JSON in `screens.layout`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatLayout {
    pub rows: Vec<SeatRow>,
    /// Seat numbers after which an aisle runs through the hall.
    #[serde(default)]
    pub aisles_after: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatRow {
    pub label: String,
    pub seats: u32,
    pub category: String,
}

impl SeatLayout {
    /// Validates a layout; field names are relative to `field` ("layout").
    pub fn parse(layout: SeatLayout, field: &str) -> Result<SeatLayout, CatalogError> {
        let mut v = Violations::default();
        if layout.rows.is_empty() || layout.rows.len() > MAX_ROWS {
            v.add(
                format!("{field}.rows"),
                format!("a screen has between 1 and {MAX_ROWS} rows"),
            );
        }
        let mut labels = BTreeSet::new();
        let mut widest = 0;
        for (i, row) in layout.rows.iter().enumerate() {
            let at = format!("{field}.rows[{i}]");
            let label_ok = (1..=2).contains(&row.label.len())
                && row.label.bytes().all(|b| b.is_ascii_uppercase());
            if !label_ok {
                v.add(
                    format!("{at}.label"),
                    "use one or two capital letters (A, B, …, AA)",
                );
            } else if !labels.insert(row.label.as_str()) {
                v.add(
                    format!("{at}.label"),
                    format!("row {} appears twice", row.label),
                );
            }
            if !(1..=MAX_SEATS_PER_ROW).contains(&row.seats) {
                v.add(
                    format!("{at}.seats"),
                    format!("a row has between 1 and {MAX_SEATS_PER_ROW} seats"),
                );
            }
            widest = widest.max(row.seats);
            if !is_category_name(&row.category) {
                v.add(
                    format!("{at}.category"),
                    "use a lowercase name such as standard, premium or recliner",
                );
            }
        }
        let capacity: u32 = layout.rows.iter().map(|r| r.seats).sum();
        if capacity > MAX_CAPACITY {
            v.add(
                format!("{field}.rows"),
                format!("at most {MAX_CAPACITY} seats per screen (this layout has {capacity})"),
            );
        }
        let mut aisles = layout.aisles_after.clone();
        aisles.sort_unstable();
        aisles.dedup();
        if aisles.len() != layout.aisles_after.len() {
            v.add(format!("{field}.aisles_after"), "an aisle is listed twice");
        }
        if aisles.iter().any(|&a| a == 0 || a >= widest.max(1)) {
            v.add(
                format!("{field}.aisles_after"),
                "an aisle runs between two seats: after seat 1 up to one before the widest row",
            );
        }
        v.finish(|| SeatLayout {
            rows: layout.rows,
            aisles_after: aisles,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.rows.iter().map(|r| r.seats).sum()
    }

    /// The seat categories this layout uses, each once.
    pub fn categories(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|r| r.category.as_str()).collect()
    }

    /// The classic hall: rows A–J of 12 seats (A1–J12), the back three premium.
    pub fn classic() -> SeatLayout {
        SeatLayout {
            rows: ('A'..='J')
                .map(|label| SeatRow {
                    label: label.to_string(),
                    seats: 12,
                    category: if label >= 'H' { "premium" } else { "standard" }.into(),
                })
                .collect(),
            aisles_after: vec![],
        }
    }
}

fn is_category_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 30
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Staff input for a showtime, before validation.
#[derive(Clone, Debug, Default)]
pub struct ShowtimeInput {
    pub film_id: String,
    pub screen_id: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub currency: String,
    pub prices: Vec<(String, i64)>,
}

/// The showtime fields that need no lookup, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowtimeRequest {
    pub film_id: Uuid,
    pub screen_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub currency: String,
    pub prices: BTreeMap<String, i64>,
}

/// A showtime checked against its film and screen, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowtimeDraft {
    pub film_id: Uuid,
    pub screen_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub currency: String,
    pub prices: BTreeMap<String, i64>,
}

impl ShowtimeRequest {
    pub fn parse(
        input: ShowtimeInput,
        now: DateTime<Utc>,
    ) -> Result<ShowtimeRequest, CatalogError> {
        let mut v = Violations::default();
        let film_id = Uuid::parse_str(input.film_id.trim()).unwrap_or_else(|_| {
            v.add("film_id", "choose a film");
            Uuid::nil()
        });
        let screen_id = Uuid::parse_str(input.screen_id.trim()).unwrap_or_else(|_| {
            v.add("screen_id", "choose a screen");
            Uuid::nil()
        });
        let starts_at = match input.starts_at {
            None => {
                v.add("starts_at", "is required");
                now
            }
            Some(at) if at <= now => {
                v.add("starts_at", "must be in the future");
                at
            }
            Some(at) if at > now + Duration::days(MAX_SCHEDULE_AHEAD_DAYS) => {
                v.add("starts_at", "can be at most a year ahead");
                at
            }
            Some(at) => at,
        };
        let currency = input.currency.trim().to_owned();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            v.add("currency", "use a three-letter ISO 4217 code such as INR");
        }
        let mut prices = BTreeMap::new();
        for (category, amount) in input.prices {
            if !is_category_name(&category) {
                v.add(
                    "prices",
                    format!("\"{category}\" is not a seat category name"),
                );
            } else if !(1..=MAX_PRICE_MINOR).contains(&amount) {
                v.add(
                    format!("prices.{category}"),
                    "must be a positive amount in minor units (paise, cents)",
                );
            } else if prices.insert(category.clone(), amount).is_some() {
                v.add("prices", format!("{category} is priced twice"));
            }
        }
        v.finish(|| ShowtimeRequest {
            film_id,
            screen_id,
            starts_at,
            currency,
            prices,
        })
    }

    /// Checks the prices against the screen's categories and fixes the end
    /// from the film's running time.
    pub fn resolve(
        self,
        duration_minutes: u32,
        layout: &SeatLayout,
    ) -> Result<ShowtimeDraft, CatalogError> {
        let mut v = Violations::default();
        let categories = layout.categories();
        for missing in categories.iter().filter(|c| !self.prices.contains_key(**c)) {
            v.add(
                format!("prices.{missing}"),
                format!("the screen has {missing} seats: give them a price"),
            );
        }
        for extra in self
            .prices
            .keys()
            .filter(|c| !categories.contains(c.as_str()))
        {
            v.add(
                format!("prices.{extra}"),
                format!("the screen has no {extra} seats"),
            );
        }
        let ends_at =
            self.starts_at + Duration::minutes(i64::from(duration_minutes) + CHANGEOVER_MINUTES);
        v.finish(|| ShowtimeDraft {
            film_id: self.film_id,
            screen_id: self.screen_id,
            starts_at: self.starts_at,
            ends_at,
            currency: self.currency,
            prices: self.prices,
        })
    }
}

/// The listing filters, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FilmFilter {
    pub genre: Option<String>,
    pub language: Option<String>,
    /// Lower-cased, trimmed free text.
    pub query: Option<String>,
    pub page_size: u32,
    pub after: Option<PageCursor>,
}

/// Where the previous page ended, in the listing order (lower(title), id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageCursor {
    pub sort_key: String,
    pub id: Uuid,
}

impl PageCursor {
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}\n{}", self.id, self.sort_key))
    }

    pub fn decode(token: &str) -> Option<PageCursor> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (id, sort_key) = text.split_once('\n')?;
        Some(PageCursor {
            sort_key: sort_key.to_owned(),
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

impl FilmFilter {
    pub fn parse(
        genre: &str,
        language: &str,
        query: &str,
        page_size: u32,
        page_token: &str,
        vocabulary: &Vocabulary,
    ) -> Result<FilmFilter, CatalogError> {
        let mut v = Violations::default();
        let genre = Some(genre.trim())
            .filter(|g| !g.is_empty())
            .map(str::to_owned);
        if let Some(g) = genre
            .as_ref()
            .filter(|g| !vocabulary.genres.contains_key(*g))
        {
            v.add("genre", format!("unknown genre \"{}\"", truncate(g, 40)));
        }
        let language = Some(language.trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        if let Some(l) = language
            .as_ref()
            .filter(|l| !vocabulary.languages.contains_key(*l))
        {
            v.add(
                "language",
                format!("unknown language \"{}\"", truncate(l, 40)),
            );
        }
        let query = query.trim();
        if query.chars().count() > MAX_QUERY_CHARS {
            v.add(
                "query",
                format!("search text is limited to {MAX_QUERY_CHARS} characters"),
            );
        }
        // PostgreSQL refuses NUL in text: a clear error rather than a 500.
        if query.chars().any(char::is_control) {
            v.add("query", "search text may not contain control characters");
        }
        let query = Some(query.to_lowercase()).filter(|q| !q.is_empty());
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            _ => {
                v.add(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                );
                DEFAULT_PAGE_SIZE
            }
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let cursor = PageCursor::decode(page_token);
            if cursor.is_none() {
                v.add(
                    "page_token",
                    "is not a token from a previous page; start from the first page",
                );
            }
            cursor
        };
        v.finish(|| FilmFilter {
            genre,
            language,
            query,
            page_size,
            after,
        })
    }
}

fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            genres: [("drama", "Drama"), ("sci-fi", "Sci-Fi")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            languages: [("en", "English")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
        }
    }

    fn film_input() -> FilmInput {
        FilmInput {
            title: "Metropolis".into(),
            genres: vec!["sci-fi".into()],
            language: "en".into(),
            duration_minutes: 153,
            certificate: "U".into(),
            ..Default::default()
        }
    }

    #[test]
    fn youtube_links_of_every_form_give_the_video_id() {
        for url in [
            "https://www.youtube.com/watch?v=aqz-KE-bpKQ",
            "https://www.youtube.com/watch?feature=share&v=aqz-KE-bpKQ#t=10",
            "https://youtu.be/aqz-KE-bpKQ?si=abc",
            "https://www.youtube.com/embed/aqz-KE-bpKQ",
            "https://www.youtube-nocookie.com/embed/aqz-KE-bpKQ",
            "https://m.youtube.com/shorts/aqz-KE-bpKQ",
        ] {
            assert_eq!(youtube_video_id(url).as_deref(), Ok("aqz-KE-bpKQ"), "{url}");
        }
    }

    #[test]
    fn non_youtube_trailer_links_are_refused() {
        for url in [
            "https://vimeo.com/123456",
            "https://www.youtube.com.evil.example/watch?v=aqz-KE-bpKQ",
            "https://www.youtube.com/watch?v=short",
            "javascript:alert(1)",
            "https://www.youtube.com/watch?v=aqz-KE-bpKQ\"><script>",
        ] {
            assert!(youtube_video_id(url).is_err(), "{url}");
        }
    }

    #[test]
    fn slugify_makes_url_safe_names() {
        assert_eq!(slugify("Le Voyage dans la Lune!"), "le-voyage-dans-la-lune");
        assert_eq!(slugify("  Sherlock Jr.  "), "sherlock-jr");
        assert_eq!(slugify("???"), "");
    }

    #[test]
    fn film_without_slug_gets_one_from_its_title() {
        let film = FilmDraft::parse(film_input(), &vocabulary()).unwrap();
        assert_eq!(film.slug, "metropolis");
        assert_eq!(film.trailer_youtube_id, "");
    }

    #[test]
    fn film_validation_names_every_bad_field() {
        let input = FilmInput {
            title: " ".into(),
            genres: vec!["western".into()],
            language: "xx-unknown".into(),
            duration_minutes: 0,
            certificate: "<b>".into(),
            trailer_url: "https://vimeo.com/1".into(),
            poster_url: "ftp://x".into(),
            ..Default::default()
        };
        let Err(CatalogError::InvalidArgument { violations, .. }) =
            FilmDraft::parse(input, &vocabulary())
        else {
            panic!("expected invalid argument");
        };
        let fields: BTreeSet<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        for field in [
            "title",
            "genres",
            "language",
            "duration_minutes",
            "certificate",
            "trailer_url",
            "poster_url",
        ] {
            assert!(fields.contains(field), "{field} missing from {fields:?}");
        }
    }

    #[test]
    fn classic_layout_is_a1_to_j12() {
        let layout = SeatLayout::parse(SeatLayout::classic(), "layout").unwrap();
        assert_eq!(layout.capacity(), 120);
        assert_eq!(layout.rows.first().unwrap().label, "A");
        assert_eq!(layout.rows.last().unwrap().label, "J");
        assert_eq!(
            layout.categories().into_iter().collect::<Vec<_>>(),
            ["premium", "standard"]
        );
    }

    #[test]
    fn layouts_out_of_bounds_are_refused() {
        let mut layout = SeatLayout::classic();
        layout.rows[1].label = "A".into();
        layout.rows[2].seats = 0;
        layout.rows[3].category = "VIP!".into();
        layout.aisles_after = vec![12];
        let Err(CatalogError::InvalidArgument { violations, .. }) =
            SeatLayout::parse(layout, "layout")
        else {
            panic!("expected invalid argument");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"layout.rows[1].label"));
        assert!(fields.contains(&"layout.rows[2].seats"));
        assert!(fields.contains(&"layout.rows[3].category"));
        assert!(fields.contains(&"layout.aisles_after"));

        let huge = SeatLayout {
            rows: (0..26)
                .map(|i| SeatRow {
                    label: ((b'A' + i) as char).to_string(),
                    seats: 60,
                    category: "standard".into(),
                })
                .collect(),
            aisles_after: vec![],
        };
        assert!(SeatLayout::parse(huge, "layout").is_err());
    }

    #[test]
    fn showtime_prices_must_cover_exactly_the_screen_categories() {
        let now = Utc::now();
        let request = ShowtimeRequest::parse(
            ShowtimeInput {
                film_id: Uuid::new_v4().to_string(),
                screen_id: Uuid::new_v4().to_string(),
                starts_at: Some(now + Duration::hours(2)),
                currency: "INR".into(),
                prices: vec![("standard".into(), 25_000), ("recliner".into(), 60_000)],
            },
            now,
        )
        .unwrap();
        let Err(CatalogError::InvalidArgument { violations, .. }) =
            request.clone().resolve(120, &SeatLayout::classic())
        else {
            panic!("expected invalid argument");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["prices.premium", "prices.recliner"]);

        let mut fixed = request;
        fixed.prices.remove("recliner");
        fixed.prices.insert("premium".into(), 40_000);
        let draft = fixed.resolve(120, &SeatLayout::classic()).unwrap();
        assert_eq!(
            draft.ends_at - draft.starts_at,
            Duration::minutes(120 + CHANGEOVER_MINUTES)
        );
    }

    #[test]
    fn showtimes_in_the_past_or_with_bad_prices_are_refused() {
        let now = Utc::now();
        let result = ShowtimeRequest::parse(
            ShowtimeInput {
                film_id: "not-a-uuid".into(),
                screen_id: Uuid::new_v4().to_string(),
                starts_at: Some(now - Duration::minutes(1)),
                currency: "rupees".into(),
                prices: vec![("standard".into(), 0)],
            },
            now,
        );
        let Err(CatalogError::InvalidArgument { violations, .. }) = result else {
            panic!("expected invalid argument");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["film_id", "starts_at", "currency", "prices.standard"]
        );
    }

    #[test]
    fn filter_refuses_unknown_genres_long_queries_and_absurd_pages() {
        let vocabulary = vocabulary();
        assert!(FilmFilter::parse("horror", "", "", 0, "", &vocabulary).is_err());
        assert!(FilmFilter::parse("", "tlh", "", 0, "", &vocabulary).is_err());
        assert!(FilmFilter::parse("", "", &"x".repeat(101), 0, "", &vocabulary).is_err());
        assert!(
            FilmFilter::parse("", "", "met\0ro", 0, "", &vocabulary).is_err(),
            "NUL, which PostgreSQL refuses, is a clear error"
        );
        assert!(FilmFilter::parse("", "", "", 1_000, "", &vocabulary).is_err());
        assert!(FilmFilter::parse("", "", "", 0, "garbage!", &vocabulary).is_err());
        let filter = FilmFilter::parse("drama", "en", "  MeTRO ", 0, "", &vocabulary).unwrap();
        assert_eq!(filter.query.as_deref(), Some("metro"));
        assert_eq!(filter.page_size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn page_cursor_round_trips() {
        let cursor = PageCursor {
            sort_key: "le voyage\ndans".into(),
            id: Uuid::new_v4(),
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
    }
}
