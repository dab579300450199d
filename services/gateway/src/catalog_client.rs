//! The gateway's view of the catalog service.
//!
//! Handlers never touch prost types or `tonic` clients: they call the methods
//! here, which make the gRPC calls, map failures to [`Error`], and convert
//! the answers into [`crate::resources`] types once (local times computed in
//! the cinema's zone, empty strings turned into `None`, fallback posters
//! filled in). A catalog that sends something impossible (a showtime without a
//! start time) is a bug on its side, reported as an internal error and logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use platform::grpc::TracedChannel;
use proto::catalog::v1 as pb;
use proto::catalog::v1::catalog_service_client::CatalogServiceClient;

use crate::error::Error;
use crate::film_filter::{self, FilmFilter};
use crate::local_time;
use crate::money::Money;
use crate::resources::{
    CategoryPrice, Cinema, CinemaShowtimes, Facets, Film, FilmPage, FilmShowtimes, Genre,
    GenreFacet, Language, LanguageFacet, Screen, SeatLayout, SeatRow, ShowtimeDay, ShowtimeDetail,
    ShowtimeSlot,
};

/// Longest film id or slug worth asking the catalog about.
const MAX_FILM_KEY_CHARS: usize = 128;

/// Film lists held for revalidation, at most this many (free-text searches
/// make many distinct filters); past it the whole set is dropped.
const MAX_HELD_FILM_LISTS: usize = 256;

/// A cheap-to-clone handle on the catalog service.
#[derive(Clone, Debug)]
pub struct CatalogClient {
    client: CatalogServiceClient<TracedChannel>,
    /// Absolute prefix for links to this gateway (fallback posters).
    public_base_url: String,
    /// The last film list catalog sent for each filter, offered back to it
    /// with every request for that filter (see [`Self::list_films`]).
    held_film_lists: Arc<Mutex<HashMap<FilmFilter, Arc<FilmList>>>>,
}

/// One page of films as catalog last sent it, named by catalog's version of
/// it, with its JSON written at most once.
#[derive(Debug)]
pub struct FilmList {
    pub page: FilmPage,
    /// Catalog's name for this content; empty from a catalog that names none.
    pub version: String,
    json: OnceLock<Bytes>,
}

impl FilmList {
    /// The page as the API's JSON body.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                // A FilmPage holds only strings and numbers: serialising it
                // cannot fail.
                serde_json::to_vec(&self.page)
                    .expect("a film page serialises")
                    .into()
            })
            .clone()
    }
}

impl CatalogClient {
    pub fn new(channel: TracedChannel, public_base_url: String) -> Self {
        Self {
            client: CatalogServiceClient::new(channel),
            public_base_url,
            held_film_lists: Default::default(),
        }
    }

    /// The generated client, for the staff calls in [`crate::programme`].
    pub(crate) fn grpc(&self) -> CatalogServiceClient<TracedChannel> {
        self.client.clone()
    }

    /// One page of films matching `filter`.
    ///
    /// Every call asks catalog, so a list is never staler than catalog's own
    /// answer; but when this client already holds the list for `filter`, it
    /// sends that list's version, and an unchanged list comes back as a bare
    /// "not modified". The films then cost neither side any encoding,
    /// decoding or JSON: the held list, and its JSON, serve again.
    ///
    /// A genre or language the catalog does not know is the caller's mistake
    /// (400), whether the catalog says so with an error or simply finds
    /// nothing: in the latter case the facets decide.
    pub async fn list_films(&self, filter: &FilmFilter) -> Result<Arc<FilmList>, Error> {
        let held = self.held_film_list(filter);
        let request = pb::ListFilmsRequest {
            genre: filter.genre.clone().unwrap_or_default(),
            language: filter.language.clone().unwrap_or_default(),
            query: filter.query.clone().unwrap_or_default(),
            page_size: filter.page_size.unwrap_or(0),
            page_token: filter.page_token.clone().unwrap_or_default(),
            if_none_match: held
                .as_ref()
                .map(|list| list.version.clone())
                .unwrap_or_default(),
        };
        let response = match self.client.clone().list_films(request).await {
            Ok(response) => response.into_inner(),
            // A filter value that names nothing is a bad request, not a
            // missing resource.
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(Error::BadRequest(status.message().to_owned()));
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return Err(filter_error(&status, filter));
            }
            Err(status) => return Err(status.into()),
        };
        let list = match held {
            Some(held) if response.not_modified && response.version == held.version => held,
            _ if response.not_modified => return Err(malformed("films")),
            _ => {
                let list = Arc::new(FilmList {
                    page: FilmPage {
                        films: response
                            .films
                            .into_iter()
                            .map(|film| self.film(film))
                            .collect(),
                        next_page_token: non_empty(response.next_page_token),
                        total_count: response.total_count,
                    },
                    version: response.version,
                    json: OnceLock::new(),
                });
                self.hold_film_list(filter, &list);
                list
            }
        };
        if list.page.films.is_empty() && (filter.genre.is_some() || filter.language.is_some()) {
            self.check_filter_values_exist(filter).await?;
        }
        Ok(list)
    }

    fn held_film_list(&self, filter: &FilmFilter) -> Option<Arc<FilmList>> {
        let held = self
            .held_film_lists
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        held.get(filter).cloned()
    }

    fn hold_film_list(&self, filter: &FilmFilter, list: &Arc<FilmList>) {
        if list.version.is_empty() {
            return;
        }
        let mut held = self
            .held_film_lists
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if held.len() >= MAX_HELD_FILM_LISTS && !held.contains_key(filter) {
            held.clear();
        }
        held.insert(filter.clone(), list.clone());
    }

    async fn check_filter_values_exist(&self, filter: &FilmFilter) -> Result<(), Error> {
        let facets = self.facets().await?;
        if let Some(genre) = &filter.genre
            && !facets.genres.iter().any(|g| &g.slug == genre)
        {
            return Err(film_filter::unknown("genre", genre));
        }
        if let Some(language) = &filter.language
            && !facets.languages.iter().any(|l| &l.code == language)
        {
            return Err(film_filter::unknown("language", language));
        }
        Ok(())
    }

    /// The genres and languages that have films, with counts.
    pub async fn facets(&self) -> Result<Facets, Error> {
        let response = self
            .client
            .clone()
            .get_facets(pb::GetFacetsRequest {})
            .await?
            .into_inner();
        Ok(Facets {
            genres: response
                .genres
                .into_iter()
                .filter_map(|facet| {
                    let genre = facet.genre?;
                    Some(GenreFacet {
                        slug: genre.slug,
                        name: genre.name,
                        film_count: facet.film_count,
                    })
                })
                .collect(),
            languages: response
                .languages
                .into_iter()
                .filter_map(|facet| {
                    let language = facet.language?;
                    Some(LanguageFacet {
                        code: language.code,
                        name: language.name,
                        film_count: facet.film_count,
                    })
                })
                .collect(),
        })
    }

    /// One film by id or slug.
    pub async fn film_by_id_or_slug(&self, id_or_slug: &str) -> Result<Film, Error> {
        let key = film_key(id_or_slug)?;
        let film = self
            .client
            .clone()
            .get_film(pb::GetFilmRequest {
                id_or_slug: key.to_owned(),
            })
            .await
            .map_err(|status| film_error(status, key))?
            .into_inner();
        Ok(self.film(film))
    }

    /// A film with its upcoming showtimes by day and cinema.
    pub async fn film_showtimes(&self, id_or_slug: &str) -> Result<FilmShowtimes, Error> {
        // Showtimes are listed by film id; a slug is resolved first.
        let film = self.film_by_id_or_slug(id_or_slug).await?;
        let response = self
            .client
            .clone()
            .list_film_showtimes(pb::ListFilmShowtimesRequest {
                film_id: film.id.clone(),
                from: None,
                until: None,
            })
            .await
            .map_err(|status| film_error(status, id_or_slug))?
            .into_inner();
        let days = response
            .days
            .into_iter()
            .map(|day| self.showtime_day(day))
            .collect::<Result<_, _>>()?;
        Ok(FilmShowtimes { film, days })
    }

    /// One showtime with film, cinema, layout and prices. A `showtime_id`
    /// that is not a UUID is a bad request, answered without asking catalog.
    pub async fn showtime(&self, showtime_id: &str) -> Result<ShowtimeDetail, Error> {
        let showtime_id = parse_showtime_id(showtime_id)?;
        let detail = self
            .client
            .clone()
            .get_showtime(pb::GetShowtimeRequest {
                showtime_id: showtime_id.to_string(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => {
                    Error::NotFound("There is no such showtime; it may have been withdrawn.".into())
                }
                _ => status.into(),
            })?
            .into_inner();
        let showtime = detail.showtime.ok_or_else(|| malformed("showtime"))?;
        let cinema = self.cinema(detail.cinema.ok_or_else(|| malformed("cinema"))?);
        let zone = local_time::zone(&cinema.time_zone);
        let starts_at = instant(showtime.starts_at, "starts_at")?;
        let ends_at = instant(showtime.ends_at, "ends_at")?;
        let screen = detail.screen.ok_or_else(|| malformed("screen"))?;
        let mut prices: Vec<CategoryPrice> = showtime
            .prices
            .into_iter()
            .map(|price| CategoryPrice {
                category: price.category,
                price: Money::new(price.amount_minor, showtime.currency.clone()),
            })
            .collect();
        prices.sort_by_key(|price| price.price.amount_minor);
        Ok(ShowtimeDetail {
            id: showtime.id,
            starts_at,
            starts_at_local: local_time::in_zone(starts_at, zone),
            ends_at,
            ends_at_local: local_time::in_zone(ends_at, zone),
            film: self.film(detail.film.ok_or_else(|| malformed("film"))?),
            cinema,
            screen: Screen {
                id: screen.id,
                name: screen.name,
                capacity: screen.capacity,
                layout: screen
                    .layout
                    .map(|layout| SeatLayout {
                        rows: layout
                            .rows
                            .into_iter()
                            .map(|row| SeatRow {
                                label: row.label,
                                seats: row.seats,
                                category: row.category,
                            })
                            .collect(),
                        aisles_after: layout.aisles_after,
                    })
                    .unwrap_or(SeatLayout {
                        rows: Vec::new(),
                        aisles_after: Vec::new(),
                    }),
            },
            prices,
        })
    }

    fn showtime_day(&self, day: pb::ShowtimeDay) -> Result<ShowtimeDay, Error> {
        let date = day.date.parse().map_err(|_| {
            tracing::error!(date = %day.date, "catalog sent a day that is not YYYY-MM-DD");
            Error::internal()
        })?;
        let cinemas = day
            .cinemas
            .into_iter()
            .map(|entry| {
                let cinema = self.cinema(entry.cinema.ok_or_else(|| malformed("cinema"))?);
                let zone = local_time::zone(&cinema.time_zone);
                let showtimes = entry
                    .showtimes
                    .into_iter()
                    .map(|slot| {
                        let starts_at = instant(slot.starts_at, "starts_at")?;
                        Ok(ShowtimeSlot {
                            id: slot.showtime_id,
                            starts_at,
                            starts_at_local: local_time::in_zone(starts_at, zone),
                            screen_name: slot.screen_name,
                            from_price: Money::new(slot.from_amount_minor, slot.currency),
                        })
                    })
                    .collect::<Result<_, Error>>()?;
                Ok(CinemaShowtimes { cinema, showtimes })
            })
            .collect::<Result<_, Error>>()?;
        Ok(ShowtimeDay { date, cinemas })
    }

    fn film(&self, film: pb::Film) -> Film {
        let poster_url = if film.poster_url.trim().is_empty() {
            format!(
                "{}{}",
                self.public_base_url,
                crate::poster::fallback_path(&film.slug)
            )
        } else {
            film.poster_url
        };
        Film {
            id: film.id,
            slug: film.slug,
            title: film.title,
            synopsis: film.synopsis,
            genres: film
                .genres
                .into_iter()
                .map(|genre| Genre {
                    slug: genre.slug,
                    name: genre.name,
                })
                .collect(),
            language: film.language.map(|language| Language {
                code: language.code,
                name: language.name,
            }),
            duration_minutes: film.duration_minutes,
            certificate: film.certificate,
            poster_url,
            trailer_url: non_empty(film.trailer_url),
            trailer_youtube_id: non_empty(film.trailer_youtube_id).filter(|id| is_youtube_id(id)),
        }
    }

    fn cinema(&self, cinema: pb::Cinema) -> Cinema {
        Cinema {
            id: cinema.id,
            name: cinema.name,
            city: cinema.city,
            address: cinema.address,
            time_zone: cinema.time_zone,
        }
    }
}

/// Catalog's verdict on a film filter, in our words: its `FieldViolations`
/// name the offending fields, and the visitor gets the same message whether
/// the gateway or catalog caught the mistake.
fn filter_error(status: &tonic::Status, filter: &FilmFilter) -> Error {
    use prost::Message as _;
    let violations = pb::FieldViolations::decode(status.details())
        .map(|details| details.violations)
        .unwrap_or_default();
    let field_error = |violation: &pb::FieldViolation| match violation.field.as_str() {
        "genre" => Some(film_filter::unknown(
            "genre",
            filter.genre.as_deref().unwrap_or_default(),
        )),
        "language" => Some(film_filter::unknown(
            "language",
            filter.language.as_deref().unwrap_or_default(),
        )),
        "query" => Some(film_filter::query_too_long()),
        "page_token" => Some(film_filter::unknown_page_token()),
        _ => None,
    };
    violations
        .iter()
        .find_map(field_error)
        .unwrap_or_else(|| Error::BadRequest(status.message().to_owned()))
}

/// A showtime id from a path, or a 400 answered without asking anyone.
pub fn parse_showtime_id(text: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(text.trim()).map_err(|_| {
        Error::BadRequest(
            "That is not a showtime id; showtime links look like /showtimes/<uuid>.".to_owned(),
        )
    })
}

/// A film id or slug worth sending to the catalog, or a 404 (an absurd key
/// names no film; it is not worth a round trip).
fn film_key(id_or_slug: &str) -> Result<&str, Error> {
    let key = id_or_slug.trim();
    if key.is_empty() || key.chars().count() > MAX_FILM_KEY_CHARS {
        return Err(no_such_film(key));
    }
    Ok(key)
}

fn film_error(status: tonic::Status, key: &str) -> Error {
    match status.code() {
        tonic::Code::NotFound | tonic::Code::InvalidArgument => no_such_film(key),
        _ => status.into(),
    }
}

fn no_such_film(key: &str) -> Error {
    let shown: String = key.chars().take(60).collect();
    Error::NotFound(format!("There is no film called \"{shown}\"."))
}

/// YouTube video ids are 11 characters of URL-safe base64; anything else is
/// not put into an embed URL.
fn is_youtube_id(id: &str) -> bool {
    id.len() == 11
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn instant(timestamp: Option<prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>, Error> {
    timestamp
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| malformed(field))
}

fn malformed(field: &str) -> Error {
    tracing::error!(field, "catalog sent a message without a required field");
    Error::internal()
}

fn non_empty(value: String) -> Option<String> {
    if value.trim().is_empty() {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_youtube_ids_are_embedded() {
        assert!(is_youtube_id("dQw4w9WgXcQ"));
        assert!(!is_youtube_id("dQw4w9WgXcQ&x=1"));
        assert!(!is_youtube_id("\"><script>"));
    }

    #[test]
    fn catalog_filter_violations_become_our_messages() {
        use prost::Message as _;
        let details = pb::FieldViolations {
            violations: vec![pb::FieldViolation {
                field: "genre".to_owned(),
                message: "unknown genre \"noir\"".to_owned(),
            }],
        };
        let status = tonic::Status::with_details(
            tonic::Code::InvalidArgument,
            "invalid filter",
            details.encode_to_vec().into(),
        );
        let filter = FilmFilter {
            genre: Some("noir".to_owned()),
            ..Default::default()
        };
        let Error::BadRequest(message) = filter_error(&status, &filter) else {
            panic!("not a bad request");
        };
        assert!(
            message.contains("There is no genre called \"noir\""),
            "{message}"
        );

        let bare = tonic::Status::invalid_argument("page_size is too large");
        let Error::BadRequest(message) = filter_error(&bare, &filter) else {
            panic!("not a bad request");
        };
        assert_eq!(message, "page_size is too large");
    }

    #[test]
    fn absurd_film_keys_are_not_found_without_asking() {
        assert!(matches!(film_key(""), Err(Error::NotFound(_))));
        assert!(matches!(
            film_key(&"x".repeat(500)),
            Err(Error::NotFound(_))
        ));
        assert_eq!(film_key("the-film").unwrap(), "the-film");
    }
}
