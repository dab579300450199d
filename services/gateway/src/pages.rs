//! The HTML pages: home (films with filters), film, showtime, and the
//! generated posters they show.
//!
//! Handlers only parse the request, ask [`crate::catalog_client`], and hand
//! the answer to a [`crate::views`] template; every failure becomes a
//! [`PageError`], so visitors always get a page that says what went wrong.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};

use crate::AppState;
use crate::error::{Error, PageError};
use crate::film_filter::{FilmFilter, FilmListQuery, HOME_PAGE_SIZE};
use crate::poster;
use crate::views::{ChosenFilter, FilmDetailsPage, HomePage, ShowtimePage};

/// The page routes, for [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home))
        .route("/films/{slug}", get(film))
        .route("/showtimes/{id}", get(showtime))
        .route("/posters/{file}", get(poster))
}

/// `GET /`: films, filtered by genre, language and text, a page at a time.
async fn home(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FilmListQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(raw) = query.map_err(Error::from)?;
    let mut filter = FilmFilter::parse(raw)?;
    let chosen_page_size = filter.page_size;
    filter.page_size.get_or_insert(HOME_PAGE_SIZE);
    let (page, facets) =
        tokio::try_join!(state.catalog.list_films(&filter), state.catalog.facets())?;
    let chosen = ChosenFilter {
        genre: filter.genre.unwrap_or_default(),
        language: filter.language.unwrap_or_default(),
        query: filter.query.unwrap_or_default(),
        is_later_page: filter.page_token.is_some(),
        page_size: chosen_page_size,
    };
    render(&HomePage::new(
        &page,
        &facets,
        chosen,
        &state.public_base_url,
    ))
}

/// `GET /films/{slug}`: a film and its showtimes by day and cinema.
async fn film(
    State(state): State<Arc<AppState>>,
    slug: Result<Path<String>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let Path(slug) = slug.map_err(Error::from)?;
    let listing = state.catalog.film_showtimes(&slug).await?;
    render(&FilmDetailsPage::new(&listing, &state.public_base_url))
}

/// `GET /showtimes/{id}`: a showtime's details and its screen's seat plan.
async fn showtime(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let detail = state.catalog.showtime(&id).await?;
    render(&ShowtimePage::new(&detail, &state.public_base_url))
}

/// `GET /posters/{slug}.svg`: the generated poster of a film.
async fn poster(
    State(state): State<Arc<AppState>>,
    file: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(file) = file.map_err(Error::from)?;
    let slug = poster::slug_from_file_name(&file)
        .ok_or_else(|| Error::NotFound("There is no such poster.".to_owned()))?;
    let film = state.catalog.film_by_id_or_slug(slug).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        poster::svg(&film.slug, &film.title),
    )
        .into_response())
}

/// Any address no route claims: an HTML 404 page.
pub async fn not_found() -> PageError {
    PageError(Error::NotFound(
        "There is no page at this address. The film list is a good place to start.".to_owned(),
    ))
}

fn render(page: &impl Template) -> Result<Html<String>, PageError> {
    page.render().map(Html).map_err(|error| {
        tracing::error!(%error, "cannot render a page");
        PageError(Error::internal())
    })
}
