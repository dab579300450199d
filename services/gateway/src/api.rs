//! The public JSON API under `/api/v1`, and its OpenAPI document.
//!
//! The same catalog and seating answers as the pages, in the
//! [`crate::resources`] shapes; every failure is an [`ApiError`] with a
//! `{"error":{"code","message"}}` body (plus `seats` when seats were taken).
//! Seat maps are public (a signed-in caller's own held seats are marked);
//! holds need a signed-in session ([`SignedIn`]), and every state-changing
//! call carries the session's CSRF token (checked in [`crate::session`]).
//! Each handler carries a `#[utoipa::path]` description, and [`ApiDoc`]
//! gathers them into the OpenAPI 3.1 document at `/api/openapi.json`, so the
//! document is generated from the code it describes.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::{HeaderValue, StatusCode, header};
use utoipa::OpenApi;

use crate::AppState;
use crate::catalog_client::parse_showtime_id;
use crate::error::{ApiError, Error, ErrorBody};
use crate::film_filter::{FilmFilter, FilmListQuery};
use crate::resources::{
    Facets, Film, FilmPage, FilmShowtimes, Hold, HoldRequest, SeatChanges, SeatMap, ShowtimeDetail,
};
use crate::seat_events;
use crate::seat_selection::SeatSelection;
use crate::session::{SignedIn, Visitor};

/// The OpenAPI description of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "BookMySeat API",
        description = "Browse the cinema programme (films, filters, showtimes, seat layouts \
                       and prices), see a showtime's seats live, and hold seats. Errors are \
                       always `{\"error\":{\"code\":…,\"message\":…}}` with the matching \
                       HTTP status.\n\n**Sessions.** Sign in with `POST /api/v1/auth/login` (or \
                       register); the answer sets the `bms_session` cookie and gives the \
                       session's `csrf_token`. Every POST, PATCH and DELETE must send that \
                       token in the `X-CSRF-Token` header (before signing in, take one from \
                       `GET /api/v1/auth/csrf`, which also sets its cookie). Holds, bookings \
                       and `/api/v1/me` need a session; `/api/v1/admin/*` needs a staff one."
    ),
    paths(
        list_movies,
        get_movie,
        get_movie_showtimes,
        get_showtime,
        get_facets,
        get_seat_map,
        showtime_events,
        create_hold,
        get_hold,
        release_hold,
        crate::account_api::csrf,
        crate::account_api::register,
        crate::account_api::login,
        crate::account_api::logout,
        crate::account_api::request_reset,
        crate::account_api::confirm_reset,
        crate::account_api::me,
        crate::account_api::update_me,
        crate::account_api::change_password,
        crate::account_api::list_bookings,
        crate::account_api::get_booking,
        crate::account_api::block_seats,
        crate::account_api::unblock_seats,
        crate::account_api::admin_whoami,
        crate::account_api::admin_stats,
        crate::checkout_pages::api_create_checkout,
        crate::checkout_pages::api_get_checkout
    ),
    components(schemas(ErrorBody, SeatChanges)),
    modifiers(&SessionCookie),
    tags(
        (name = "films", description = "Films and their showtimes"),
        (name = "seats", description = "Seat maps, live seat changes and holds"),
        (name = "accounts", description = "Sign-up, sign-in, the caller's account and bookings"),
        (name = "checkout", description = "Paying for held seats"),
        (name = "staff", description = "Staff only")
    )
)]
pub struct ApiDoc;

/// Declares the `session` security scheme: the `bms_session` cookie.
struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::session::SESSION_COOKIE,
            ))),
        );
    }
}

/// The API routes, mounted under `/api/v1` by [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/movies", get(list_movies))
        .route("/movies/{id_or_slug}", get(get_movie))
        .route("/movies/{id_or_slug}/showtimes", get(get_movie_showtimes))
        .route("/showtimes/{id}", get(get_showtime))
        .route("/facets", get(get_facets))
        .route("/showtimes/{id}/seats", get(get_seat_map))
        .route("/showtimes/{id}/events", get(showtime_events))
        .route("/showtimes/{id}/holds", post(create_hold))
        .route("/holds/{id}", get(get_hold))
        .route("/holds/{id}", delete(release_hold))
        .merge(crate::account_api::routes())
}

/// Whose holds a seat map marks as "mine": nobody's for a visitor who has
/// not signed in.
pub fn caller_id(visitor: &Visitor) -> String {
    visitor.user().map(|u| u.id.to_string()).unwrap_or_default()
}

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Any `/api/...` address no route claims.
pub async fn not_found() -> ApiError {
    ApiError(Error::NotFound(
        "There is no API endpoint at this address; see /api/openapi.json.".to_owned(),
    ))
}

/// Films matching the filters, ordered by title, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/movies",
    tag = "films",
    params(FilmListQuery),
    responses(
        (status = 200, description = "One page of films, with an `ETag`", body = FilmPage),
        (status = 304, description = "The page is unchanged since the `ETag` sent in \
                                      `If-None-Match`"),
        (status = 400, description = "Unknown genre or language, search text over 100 \
                                      characters, page_size outside 1–100, or a bad page_token",
         body = ErrorBody),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn list_movies(
    State(state): State<Arc<AppState>>,
    request_headers: http::HeaderMap,
    query: Result<Query<FilmListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(raw) = query.map_err(Error::from)?;
    let filter = FilmFilter::parse(raw)?;
    let list = state.catalog.list_films(&filter).await?;
    if list.version.is_empty() {
        return Ok(Json(&list.page).into_response());
    }
    // Weak: the compression layer may send the same JSON in other bytes.
    // The gateway's own version is part of it, so a new gateway that writes
    // the JSON differently never answers an old copy with 304.
    let etag = format!("W/\"{}-{}\"", env!("CARGO_PKG_VERSION"), list.version);
    let etag = HeaderValue::try_from(etag).map_err(|_| Error::internal())?;
    // Clients may keep the page, but must ask again before using it.
    let cache_control = HeaderValue::from_static("no-cache");
    if request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|sent| etag_matches(sent, &etag))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        list.json(),
    )
        .into_response())
}

/// Whether an `If-None-Match` value names `etag`, by the weak comparison
/// that RFC 9110 prescribes for it (`W/` ignored; `*` matches anything).
fn etag_matches(sent: &HeaderValue, etag: &HeaderValue) -> bool {
    fn opaque(tag: &str) -> &str {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag)
    }
    let (Ok(sent), Ok(ours)) = (sent.to_str(), etag.to_str()) else {
        return false;
    };
    let ours = opaque(ours);
    sent.split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == ours)
}

/// One film, by id or slug.
#[utoipa::path(
    get,
    path = "/api/v1/movies/{id_or_slug}",
    tag = "films",
    params(("id_or_slug" = String, Path, description = "The film's UUID or its slug")),
    responses(
        (status = 200, description = "The film", body = Film),
        (status = 404, description = "No such film", body = ErrorBody),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn get_movie(
    State(state): State<Arc<AppState>>,
    id_or_slug: Result<Path<String>, PathRejection>,
) -> Result<Json<Film>, ApiError> {
    let Path(id_or_slug) = id_or_slug.map_err(Error::from)?;
    Ok(Json(state.catalog.film_by_id_or_slug(&id_or_slug).await?))
}

/// A film's upcoming showtimes (the next 14 days) by day and cinema.
#[utoipa::path(
    get,
    path = "/api/v1/movies/{id_or_slug}/showtimes",
    tag = "films",
    params(("id_or_slug" = String, Path, description = "The film's UUID or its slug")),
    responses(
        (status = 200, description = "The film and its showtimes", body = FilmShowtimes),
        (status = 404, description = "No such film", body = ErrorBody),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn get_movie_showtimes(
    State(state): State<Arc<AppState>>,
    id_or_slug: Result<Path<String>, PathRejection>,
) -> Result<Json<FilmShowtimes>, ApiError> {
    let Path(id_or_slug) = id_or_slug.map_err(Error::from)?;
    Ok(Json(state.catalog.film_showtimes(&id_or_slug).await?))
}

/// One showtime with its film, cinema, screen layout and prices.
#[utoipa::path(
    get,
    path = "/api/v1/showtimes/{id}",
    tag = "films",
    params(("id" = String, Path, format = Uuid, description = "The showtime's UUID")),
    responses(
        (status = 200, description = "The showtime", body = ShowtimeDetail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn get_showtime(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ShowtimeDetail>, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    Ok(Json(state.catalog.showtime(&id).await?))
}

/// The genres and languages films can be filtered by, with film counts.
#[utoipa::path(
    get,
    path = "/api/v1/facets",
    tag = "films",
    responses(
        (status = 200, description = "Genres and languages that have films", body = Facets),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn get_facets(State(state): State<Arc<AppState>>) -> Result<Json<Facets>, ApiError> {
    Ok(Json(state.catalog.facets().await?))
}

/// Every seat of a showtime with its state; the caller's own held seats
/// have `mine: true`.
#[utoipa::path(
    get,
    path = "/api/v1/showtimes/{id}/seats",
    tag = "seats",
    params(
        ("id" = String, Path, format = Uuid, description = "The showtime's UUID"),
    ),
    responses(
        (status = 200, description = "The seat map", body = SeatMap),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    )
)]
async fn get_seat_map(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SeatMap>, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    Ok(Json(
        state.seating.seat_map(&id, &caller_id(&visitor)).await?,
    ))
}

/// Live seat changes of a showtime, as Server-Sent Events.
///
/// The stream starts with a `snapshot` event whose data is the seat map (as
/// `GET /seats` gives it), then sends a `seats` event (data: `SeatChanges`)
/// whenever seats change state, newer than the snapshot only. Comments keep
/// an idle stream open. After a reconnect, a new snapshot comes first.
#[utoipa::path(
    get,
    path = "/api/v1/showtimes/{id}/events",
    tag = "seats",
    params(
        ("id" = String, Path, format = Uuid, description = "The showtime's UUID"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: a `snapshot` event (SeatMap), then \
                                      `seats` events (SeatChanges); the schema describes one \
                                      event",
         content_type = "text/event-stream", body = SeatEvent),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 503, description = "Seating or live updates are not available; try again",
         body = ErrorBody),
    )
)]
async fn showtime_events(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    let showtime_id = parse_showtime_id(&id)?;
    // Subscribe first: a change made while the snapshot is read still
    // arrives (see seat_events).
    let subscriber = state.seat_events.subscribe(showtime_id).await?;
    let snapshot = state.seating.seat_map(&id, &caller_id(&visitor)).await?;
    let events = seat_events::stream(snapshot, subscriber, state.shutdown.clone());
    let mut response = Sse::new(events)
        .keep_alive(seat_events::keep_alive())
        .into_response();
    // Reverse proxies that buffer (nginx) must pass events on at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One event of `GET /api/v1/showtimes/{id}/events` as an event-stream
/// parser hands it over. OpenAPI 3.1 describes each event of a stream with
/// the response's schema: an event is its name and its data, text that here
/// is always JSON. Only the document uses this type; the stream itself is
/// written by [`seat_events::stream`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SeatEvent {
    /// `snapshot` (the first event) or `seats`.
    event: SeatEventName,
    /// `snapshot`: a `SeatMap` (as `GET /seats` gives it); `seats`: a
    /// `SeatChanges`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The names of the events of a seat stream.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum SeatEventName {
    Snapshot,
    Seats,
}

/// Holds seats for the caller: every seat asked for, or none.
///
/// A new hold replaces the caller's previous hold on the same showtime.
#[utoipa::path(
    post,
    path = "/api/v1/showtimes/{id}/holds",
    tag = "seats",
    params(
        ("id" = String, Path, format = Uuid, description = "The showtime's UUID"),
    ),
    request_body = HoldRequest,
    security(("session" = [])),
    responses(
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
        (status = 201, description = "The seats are held until `held_until`", body = Hold,
         headers(("Location" = String, description = "/api/v1/holds/{hold id}"))),
        (status = 400, description = "No seats, too many seats, the same seat twice, a seat \
                                      that is not in this screen's layout, or a malformed body",
         body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 409, description = "`seats_unavailable`: some seats are held or sold; \
                                      `error.seats` lists them. `conflict`: the showtime has \
                                      started", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    )
)]
async fn create_hold(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    let Json(request) = body.map_err(|rejection| {
        Error::BadRequest(format!(
            "The body must be JSON like {{\"seats\": [\"E6\", \"E7\"]}}: {}",
            rejection.body_text()
        ))
    })?;
    // A malformed showtime id is reported before the seats are looked at.
    parse_showtime_id(&id)?;
    let seats = SeatSelection::parse(&request.seats)?;
    let hold = state.seating.hold(&id, &seats, &user.user_id()).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/holds/{}", hold.id))
        .map_err(|_| Error::internal())?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(hold),
    )
        .into_response())
}

/// One of the caller's holds.
#[utoipa::path(
    get,
    path = "/api/v1/holds/{id}",
    tag = "seats",
    security(("session" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The hold's UUID"),
    ),
    responses(
        (status = 200, description = "The hold", body = Hold),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Someone else's hold", body = ErrorBody),
        (status = 404, description = "No such hold", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    )
)]
async fn get_hold(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Hold>, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    Ok(Json(state.seating.hold_of(&id, &user.user_id()).await?))
}

/// Lets the seats of one of the caller's holds go, at once.
#[utoipa::path(
    delete,
    path = "/api/v1/holds/{id}",
    tag = "seats",
    security(("session" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The hold's UUID"),
    ),
    responses(
        (status = 204, description = "Released; its seats are available again"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Someone else's hold, or a missing or wrong CSRF token",
         body = ErrorBody),
        (status = 404, description = "No such hold", body = ErrorBody),
        (status = 409, description = "The hold is already paid for", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    )
)]
async fn release_hold(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    state.seating.release(&id, &user.user_id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists_and_the_wildcard() {
        let ours = HeaderValue::from_static(r#"W/"0.1.0-abc""#);
        let matches = |sent: &'static str| etag_matches(&HeaderValue::from_static(sent), &ours);
        assert!(matches(r#"W/"0.1.0-abc""#));
        assert!(matches(r#""0.1.0-abc""#));
        assert!(matches(r#"W/"old", W/"0.1.0-abc""#));
        assert!(matches("*"));
        assert!(!matches(r#"W/"0.1.0-abd""#));
        assert!(!matches(r#"W/"0.0.9-abc""#));
        assert!(!matches(""));
    }
}
