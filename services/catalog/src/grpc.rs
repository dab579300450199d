//! The `bookmyseat.catalog.v1.CatalogService` server: parses requests into
//! domain values, calls the store, and turns records into protobuf messages.
//! Errors become `tonic::Status` in one place ([`status`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use prost::Message as _;
use proto::catalog::v1 as pb;
use proto::time::{from_timestamp, to_timestamp};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cache::ReadCache;
use crate::domain::{
    CatalogError, CinemaDraft, CinemaInput, FilmDraft, FilmFilter, FilmInput, SeatLayout, SeatRow,
    ShowtimeInput, ShowtimeRequest, Vocabulary, parse_slug,
};
use crate::store::{self, CinemaRecord, FilmRecord, ScreenRecord, ShowtimeRecord};

/// How far ahead a film's schedule reaches when the caller gives no range.
const DEFAULT_SCHEDULE_DAYS: i64 = 14;
/// The widest schedule range one call may ask for.
const MAX_SCHEDULE_DAYS: i64 = 62;

/// Keys of the cached read calls.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ReadKey {
    Films(FilmFilter),
    Facets,
    Film(String),
    Showtime(uuid::Uuid),
}

#[derive(Clone)]
enum ReadValue {
    Films(Arc<pb::ListFilmsResponse>),
    Facets(Arc<pb::GetFacetsResponse>),
    Film(Arc<pb::Film>),
    Showtime(Arc<pb::ShowtimeDetail>),
}

/// The catalog gRPC service.
pub struct CatalogService {
    pool: PgPool,
    vocabulary: Arc<Vocabulary>,
    cache: ReadCache<ReadKey, ReadValue>,
}

impl CatalogService {
    pub fn new(pool: PgPool, vocabulary: Vocabulary, cache_ttl: std::time::Duration) -> Self {
        Self {
            pool,
            vocabulary: Arc::new(vocabulary),
            cache: ReadCache::new(cache_ttl),
        }
    }

    fn film_message(&self, film: FilmRecord) -> pb::Film {
        let vocabulary = &self.vocabulary;
        pb::Film {
            id: film.id.to_string(),
            genres: film
                .genres
                .iter()
                .map(|slug| pb::Genre {
                    slug: slug.clone(),
                    name: vocabulary.genre_name(slug).to_owned(),
                })
                .collect(),
            language: Some(pb::Language {
                name: vocabulary.language_name(&film.language).to_owned(),
                code: film.language,
            }),
            slug: film.slug,
            title: film.title,
            synopsis: film.synopsis,
            duration_minutes: film.duration_minutes,
            certificate: film.certificate,
            poster_url: film.poster_url,
            trailer_url: film.trailer_url,
            trailer_youtube_id: film.trailer_youtube_id,
        }
    }

    async fn film(&self, id_or_slug: &str) -> Result<pb::Film, CatalogError> {
        let key = id_or_slug.trim();
        let record = if let Ok(id) = Uuid::parse_str(key) {
            store::get_film(&self.pool, id).await?
        } else if parse_slug(key).is_ok() {
            store::get_film_by_slug(&self.pool, key).await?
        } else {
            return Err(CatalogError::invalid_field(
                "id_or_slug",
                "a film is named by its UUID or its slug (lowercase words joined by dashes)",
            ));
        };
        record
            .map(|film| self.film_message(film))
            .ok_or_else(|| CatalogError::not_found("film", key))
    }

    /// Validates a showtime's input against its film and screen; shared by
    /// create and update.
    async fn showtime_draft(
        &self,
        input: Option<pb::ShowtimeInput>,
    ) -> Result<crate::domain::ShowtimeDraft, CatalogError> {
        let input = input.unwrap_or_default();
        let request = ShowtimeRequest::parse(
            ShowtimeInput {
                film_id: input.film_id,
                screen_id: input.screen_id,
                starts_at: input.starts_at.as_ref().and_then(from_timestamp),
                currency: input.currency,
                prices: input
                    .prices
                    .into_iter()
                    .map(|p| (p.category, p.amount_minor))
                    .collect(),
            },
            Utc::now(),
        )?;
        let film = store::get_film(&self.pool, request.film_id)
            .await?
            .ok_or_else(|| CatalogError::invalid_field("film_id", "no such film"))?;
        let screen = store::get_screen(&self.pool, request.screen_id)
            .await?
            .ok_or_else(|| CatalogError::invalid_field("screen_id", "no such screen"))?;
        request.resolve(film.duration_minutes, &screen.layout)
    }

    async fn showtime_message(&self, id: Uuid) -> Result<pb::Showtime, CatalogError> {
        store::get_showtime(&self.pool, id)
            .await?
            .map(showtime_message)
            .ok_or_else(|| CatalogError::not_found("showtime", id))
    }

    async fn cinema_message(&self, id: Uuid) -> Result<pb::Cinema, CatalogError> {
        store::get_cinema(&self.pool, id)
            .await?
            .map(|c| cinema_message(c, Vec::new()))
            .ok_or_else(|| CatalogError::not_found("cinema", id))
    }

    async fn screen_by_id(&self, id: Uuid) -> Result<pb::Screen, CatalogError> {
        store::get_screen(&self.pool, id)
            .await?
            .map(screen_message)
            .ok_or_else(|| CatalogError::not_found("screen", id))
    }

    /// Every write ends here: cached reads may now be stale.
    fn written<T>(&self, value: T) -> T {
        self.cache.clear();
        value
    }
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, CatalogError> {
    Uuid::parse_str(value.trim()).map_err(|_| CatalogError::invalid_field(field, "must be a UUID"))
}

fn cinema_message(cinema: CinemaRecord, screens: Vec<pb::Screen>) -> pb::Cinema {
    pb::Cinema {
        id: cinema.id.to_string(),
        name: cinema.name,
        city: cinema.city,
        address: cinema.address,
        time_zone: cinema.time_zone,
        screens,
    }
}

fn layout_message(layout: &SeatLayout) -> pb::SeatLayout {
    pb::SeatLayout {
        rows: layout
            .rows
            .iter()
            .map(|row| pb::SeatRow {
                label: row.label.clone(),
                seats: row.seats,
                category: row.category.clone(),
            })
            .collect(),
        aisles_after: layout.aisles_after.clone(),
    }
}

fn layout_input(layout: Option<pb::SeatLayout>) -> SeatLayout {
    let layout = layout.unwrap_or_default();
    SeatLayout {
        rows: layout
            .rows
            .into_iter()
            .map(|row| SeatRow {
                label: row.label.trim().to_owned(),
                seats: row.seats,
                category: row.category.trim().to_owned(),
            })
            .collect(),
        aisles_after: layout.aisles_after,
    }
}

fn screen_message(screen: ScreenRecord) -> pb::Screen {
    pb::Screen {
        id: screen.id.to_string(),
        cinema_id: screen.cinema_id.to_string(),
        name: screen.name,
        capacity: screen.layout.capacity(),
        layout: Some(layout_message(&screen.layout)),
    }
}

fn showtime_message(showtime: ShowtimeRecord) -> pb::Showtime {
    pb::Showtime {
        id: showtime.id.to_string(),
        film_id: showtime.film_id.to_string(),
        screen_id: showtime.screen_id.to_string(),
        starts_at: Some(to_timestamp(showtime.starts_at)),
        ends_at: Some(to_timestamp(showtime.ends_at)),
        currency: showtime.currency,
        prices: showtime
            .prices
            .into_iter()
            .map(|(category, amount_minor)| pb::Price {
                category,
                amount_minor,
            })
            .collect(),
    }
}

fn film_input(input: Option<pb::FilmInput>) -> FilmInput {
    let input = input.unwrap_or_default();
    FilmInput {
        title: input.title,
        slug: input.slug,
        synopsis: input.synopsis,
        genres: input.genres,
        language: input.language,
        duration_minutes: input.duration_minutes,
        certificate: input.certificate,
        poster_url: input.poster_url,
        trailer_url: input.trailer_url,
    }
}

fn cinema_input(input: Option<pb::CinemaInput>) -> CinemaInput {
    let input = input.unwrap_or_default();
    CinemaInput {
        name: input.name,
        city: input.city,
        address: input.address,
        time_zone: input.time_zone,
    }
}

fn screen_name(name: &str) -> Result<String, CatalogError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        Err(CatalogError::invalid_field(
            "name",
            "a screen needs a name of at most 60 characters",
        ))
    } else {
        Ok(name.to_owned())
    }
}

/// Groups a schedule by local day (in each cinema's time zone), then cinema.
fn schedule_days(slots: Vec<store::ScheduleSlot>) -> Vec<pb::ShowtimeDay> {
    // Cinemas within a day are ordered by name (the id keeps namesakes apart).
    type CinemaDay = BTreeMap<(String, Uuid), (CinemaRecord, Vec<pb::ShowtimeSlot>)>;
    let mut days: BTreeMap<NaiveDate, CinemaDay> = BTreeMap::new();
    for slot in slots {
        let zone: chrono_tz::Tz = slot.cinema.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let day = slot.starts_at.with_timezone(&zone).date_naive();
        let entry = days
            .entry(day)
            .or_default()
            .entry((slot.cinema.name.clone(), slot.cinema.id))
            .or_insert_with(|| (slot.cinema.clone(), Vec::new()));
        entry.1.push(pb::ShowtimeSlot {
            showtime_id: slot.showtime_id.to_string(),
            starts_at: Some(to_timestamp(slot.starts_at)),
            screen_name: slot.screen_name,
            currency: slot.currency,
            from_amount_minor: slot.from_amount_minor,
        });
    }
    days.into_iter()
        .map(|(day, cinemas)| pb::ShowtimeDay {
            date: day.format("%Y-%m-%d").to_string(),
            cinemas: cinemas
                .into_values()
                .map(|(cinema, showtimes)| pb::CinemaShowtimes {
                    cinema: Some(cinema_message(cinema, Vec::new())),
                    showtimes,
                })
                .collect(),
        })
        .collect()
}

/// The one mapping from catalog errors to gRPC statuses. Field violations
/// travel in the status details as `FieldViolations`.
pub fn status(error: CatalogError) -> Status {
    use tonic::Code;
    let with_fields =
        |code: Code, message: String, violations: Vec<crate::domain::FieldViolation>| {
            let details = pb::FieldViolations {
                violations: violations
                    .into_iter()
                    .map(|v| pb::FieldViolation {
                        field: v.field,
                        message: v.message,
                    })
                    .collect(),
            };
            Status::with_details(code, message, details.encode_to_vec().into())
        };
    match error {
        CatalogError::NotFound { .. } => Status::not_found(error.to_string()),
        CatalogError::InvalidArgument {
            message,
            violations,
        } => with_fields(Code::InvalidArgument, message, violations),
        CatalogError::Conflict {
            message,
            violations,
        } => with_fields(Code::FailedPrecondition, message, violations),
        CatalogError::Database(error) => {
            tracing::error!(%error, "catalog database call failed");
            match error {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                    Status::unavailable("the catalog database is unreachable; try again shortly")
                }
                _ => Status::internal("the catalog failed to answer; the error is logged"),
            }
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Names an answer by its content: a digest of its encoding, so that every
/// replica, and this one after a restart, gives the same answer the same
/// version, and a changed answer a different one. Made once per cache fill.
fn content_version(message: &impl prost::Message) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(message.encode_to_vec());
    // 128 bits are plenty to tell one film page from another.
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogService {
    async fn list_films(
        &self,
        request: Request<pb::ListFilmsRequest>,
    ) -> Reply<pb::ListFilmsResponse> {
        let r = request.into_inner();
        let filter = FilmFilter::parse(
            &r.genre,
            &r.language,
            &r.query,
            r.page_size,
            &r.page_token,
            &self.vocabulary,
        )
        .map_err(status)?;
        let key = ReadKey::Films(filter.clone());
        let answer = match self.cache.get(&key) {
            Some(ReadValue::Films(cached)) => cached,
            _ => {
                let page = store::list_films(&self.pool, &filter)
                    .await
                    .map_err(status)?;
                let mut response = pb::ListFilmsResponse {
                    films: page
                        .films
                        .into_iter()
                        .map(|f| self.film_message(f))
                        .collect(),
                    next_page_token: page.next.map(|c| c.encode()).unwrap_or_default(),
                    total_count: page.total_count,
                    ..Default::default()
                };
                response.version = content_version(&response);
                let answer = Arc::new(response);
                self.cache.put(key, ReadValue::Films(answer.clone()));
                answer
            }
        };
        if !r.if_none_match.is_empty() && r.if_none_match == answer.version {
            return Ok(Response::new(pb::ListFilmsResponse {
                version: answer.version.clone(),
                not_modified: true,
                ..Default::default()
            }));
        }
        Ok(Response::new((*answer).clone()))
    }

    async fn get_facets(&self, _: Request<pb::GetFacetsRequest>) -> Reply<pb::GetFacetsResponse> {
        if let Some(ReadValue::Facets(cached)) = self.cache.get(&ReadKey::Facets) {
            return Ok(Response::new((*cached).clone()));
        }
        let (genres, languages) = store::facets(&self.pool).await.map_err(status)?;
        let response = pb::GetFacetsResponse {
            genres: genres
                .into_iter()
                .map(|(slug, film_count)| pb::GenreFacet {
                    genre: Some(pb::Genre {
                        name: self.vocabulary.genre_name(&slug).to_owned(),
                        slug,
                    }),
                    film_count,
                })
                .collect(),
            languages: languages
                .into_iter()
                .map(|(code, film_count)| pb::LanguageFacet {
                    language: Some(pb::Language {
                        name: self.vocabulary.language_name(&code).to_owned(),
                        code,
                    }),
                    film_count,
                })
                .collect(),
        };
        self.cache.put(
            ReadKey::Facets,
            ReadValue::Facets(Arc::new(response.clone())),
        );
        Ok(Response::new(response))
    }

    async fn get_film(&self, request: Request<pb::GetFilmRequest>) -> Reply<pb::Film> {
        let key = ReadKey::Film(request.get_ref().id_or_slug.clone());
        if let Some(ReadValue::Film(cached)) = self.cache.get(&key) {
            return Ok(Response::new((*cached).clone()));
        }
        let film = self
            .film(&request.into_inner().id_or_slug)
            .await
            .map_err(status)?;
        self.cache.put(key, ReadValue::Film(Arc::new(film.clone())));
        Ok(Response::new(film))
    }

    async fn list_film_showtimes(
        &self,
        request: Request<pb::ListFilmShowtimesRequest>,
    ) -> Reply<pb::ListFilmShowtimesResponse> {
        let r = request.into_inner();
        let film = self.film(&r.film_id).await.map_err(status)?;
        let now = Utc::now();
        let bound =
            |field: &str, at: &Option<prost_types::Timestamp>, default: DateTime<Utc>| match at {
                None => Ok(default),
                Some(at) => from_timestamp(at)
                    .ok_or_else(|| CatalogError::invalid_field(field, "is not a valid timestamp")),
            };
        let from = bound("from", &r.from, now).map_err(status)?;
        let until = bound(
            "until",
            &r.until,
            from + Duration::days(DEFAULT_SCHEDULE_DAYS),
        )
        .map_err(status)?;
        if until <= from || until - from > Duration::days(MAX_SCHEDULE_DAYS) {
            return Err(status(CatalogError::invalid_field(
                "until",
                format!("must be after `from` and at most {MAX_SCHEDULE_DAYS} days later"),
            )));
        }
        let film_id = parse_uuid("film_id", &film.id).map_err(status)?;
        let slots = store::film_schedule(&self.pool, film_id, from, until)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListFilmShowtimesResponse {
            film: Some(film),
            days: schedule_days(slots),
        }))
    }

    async fn get_showtime(
        &self,
        request: Request<pb::GetShowtimeRequest>,
    ) -> Reply<pb::ShowtimeDetail> {
        let id = parse_uuid("showtime_id", &request.get_ref().showtime_id).map_err(status)?;
        // Every checkout prices its seats from here, and every showtime page
        // shows it: five queries saved per call, at the cache's usual
        // staleness (none in this replica after a write, the TTL elsewhere).
        let key = ReadKey::Showtime(id);
        if let Some(ReadValue::Showtime(cached)) = self.cache.get(&key) {
            return Ok(Response::new((*cached).clone()));
        }
        let showtime = store::get_showtime(&self.pool, id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(CatalogError::not_found("showtime", id)))?;
        let film = self
            .film(&showtime.film_id.to_string())
            .await
            .map_err(status)?;
        let screen = store::get_screen(&self.pool, showtime.screen_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(CatalogError::not_found("screen", showtime.screen_id)))?;
        let cinema = self
            .cinema_message(screen.cinema_id)
            .await
            .map_err(status)?;
        let detail = pb::ShowtimeDetail {
            showtime: Some(showtime_message(showtime)),
            film: Some(film),
            cinema: Some(cinema),
            screen: Some(screen_message(screen)),
        };
        self.cache
            .put(key, ReadValue::Showtime(Arc::new(detail.clone())));
        Ok(Response::new(detail))
    }

    async fn create_film(&self, request: Request<pb::CreateFilmRequest>) -> Reply<pb::Film> {
        let draft = FilmDraft::parse(film_input(request.into_inner().film), &self.vocabulary)
            .map_err(status)?;
        let id = store::create_film(&self.pool, &draft)
            .await
            .map_err(status)?;
        self.written(());
        let film = self.film(&id.to_string()).await.map_err(status)?;
        Ok(Response::new(film))
    }

    async fn update_film(&self, request: Request<pb::UpdateFilmRequest>) -> Reply<pb::Film> {
        let r = request.into_inner();
        let id = parse_uuid("film_id", &r.film_id).map_err(status)?;
        let draft = FilmDraft::parse(film_input(r.film), &self.vocabulary).map_err(status)?;
        store::update_film(&self.pool, id, &draft)
            .await
            .map_err(status)?;
        self.written(());
        let film = self.film(&id.to_string()).await.map_err(status)?;
        Ok(Response::new(film))
    }

    async fn list_cinemas(
        &self,
        _: Request<pb::ListCinemasRequest>,
    ) -> Reply<pb::ListCinemasResponse> {
        let cinemas = store::list_cinemas(&self.pool).await.map_err(status)?;
        Ok(Response::new(pb::ListCinemasResponse {
            cinemas: cinemas
                .into_iter()
                .map(|(cinema, screens)| {
                    cinema_message(cinema, screens.into_iter().map(screen_message).collect())
                })
                .collect(),
        }))
    }

    async fn create_cinema(&self, request: Request<pb::CreateCinemaRequest>) -> Reply<pb::Cinema> {
        let draft =
            CinemaDraft::parse(cinema_input(request.into_inner().cinema)).map_err(status)?;
        let id = store::create_cinema(&self.pool, &draft)
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(
            self.cinema_message(id).await.map_err(status)?,
        ))
    }

    async fn update_cinema(&self, request: Request<pb::UpdateCinemaRequest>) -> Reply<pb::Cinema> {
        let r = request.into_inner();
        let id = parse_uuid("cinema_id", &r.cinema_id).map_err(status)?;
        let draft = CinemaDraft::parse(cinema_input(r.cinema)).map_err(status)?;
        store::update_cinema(&self.pool, id, &draft)
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(
            self.cinema_message(id).await.map_err(status)?,
        ))
    }

    async fn create_screen(&self, request: Request<pb::CreateScreenRequest>) -> Reply<pb::Screen> {
        let r = request.into_inner();
        let cinema_id = parse_uuid("cinema_id", &r.cinema_id).map_err(status)?;
        let name = screen_name(&r.name).map_err(status)?;
        let layout = SeatLayout::parse(layout_input(r.layout), "layout").map_err(status)?;
        let id = store::create_screen(&self.pool, cinema_id, &name, &layout)
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(self.screen_by_id(id).await.map_err(status)?))
    }

    async fn update_screen(&self, request: Request<pb::UpdateScreenRequest>) -> Reply<pb::Screen> {
        let r = request.into_inner();
        let id = parse_uuid("screen_id", &r.screen_id).map_err(status)?;
        let name = screen_name(&r.name).map_err(status)?;
        let layout = SeatLayout::parse(layout_input(r.layout), "layout").map_err(status)?;
        store::update_screen(&self.pool, id, &name, &layout, Utc::now())
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(self.screen_by_id(id).await.map_err(status)?))
    }

    async fn create_showtime(
        &self,
        request: Request<pb::CreateShowtimeRequest>,
    ) -> Reply<pb::Showtime> {
        let draft = self
            .showtime_draft(request.into_inner().showtime)
            .await
            .map_err(status)?;
        let id = store::create_showtime(&self.pool, &draft)
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(
            self.showtime_message(id).await.map_err(status)?,
        ))
    }

    async fn update_showtime(
        &self,
        request: Request<pb::UpdateShowtimeRequest>,
    ) -> Reply<pb::Showtime> {
        let r = request.into_inner();
        let id = parse_uuid("showtime_id", &r.showtime_id).map_err(status)?;
        let existing = store::get_showtime(&self.pool, id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(CatalogError::not_found("showtime", id)))?;
        if existing.starts_at <= Utc::now() {
            return Err(status(CatalogError::conflict(
                "starts_at",
                "this showtime has started; it can no longer be changed",
            )));
        }
        let draft = self.showtime_draft(r.showtime).await.map_err(status)?;
        store::update_showtime(&self.pool, id, &draft)
            .await
            .map_err(status)?;
        self.written(());
        Ok(Response::new(
            self.showtime_message(id).await.map_err(status)?,
        ))
    }
}
