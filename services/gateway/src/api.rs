//! The public JSON API under `/api/v1`, and its OpenAPI document.
//!
//! The same catalog answers as the pages, in the [`crate::resources`] shapes;
//! every failure is an [`ApiError`] with a `{"error":{"code","message"}}`
//! body. Each handler carries a `#[utoipa::path]` description, and [`ApiDoc`]
//! gathers them into the OpenAPI 3.1 document at `/api/openapi.json`, so the
//! document is generated from the code it describes.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;
use crate::error::{ApiError, Error, ErrorBody};
use crate::film_filter::{FilmFilter, FilmListQuery};
use crate::resources::{Facets, Film, FilmPage, FilmShowtimes, ShowtimeDetail};

/// The OpenAPI description of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "BookMySeat API",
        description = "Browse the cinema programme: films, filters, showtimes, seat layouts \
                       and prices. Errors are always `{\"error\":{\"code\":…,\"message\":…}}` \
                       with the matching HTTP status."
    ),
    paths(list_movies, get_movie, get_movie_showtimes, get_showtime, get_facets),
    components(schemas(ErrorBody)),
    tags((name = "films", description = "Films and their showtimes"))
)]
pub struct ApiDoc;

/// The API routes, mounted under `/api/v1` by [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/movies", get(list_movies))
        .route("/movies/{id_or_slug}", get(get_movie))
        .route("/movies/{id_or_slug}/showtimes", get(get_movie_showtimes))
        .route("/showtimes/{id}", get(get_showtime))
        .route("/facets", get(get_facets))
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
        (status = 200, description = "One page of films", body = FilmPage),
        (status = 400, description = "Unknown genre or language, search text over 100 \
                                      characters, page_size outside 1–100, or a bad page_token",
         body = ErrorBody),
        (status = 503, description = "The catalog is not answering; try again", body = ErrorBody),
    )
)]
async fn list_movies(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FilmListQuery>, QueryRejection>,
) -> Result<Json<FilmPage>, ApiError> {
    let Query(raw) = query.map_err(Error::from)?;
    let filter = FilmFilter::parse(raw)?;
    Ok(Json(state.catalog.list_films(&filter).await?))
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
