//! The HTML pages: home (films with filters), film, the seat page, and the
//! generated posters they show.
//!
//! Handlers only parse the request, ask [`crate::catalog_client`] and
//! [`crate::seating_client`], and hand the answers to a [`crate::views`]
//! template; every failure becomes a [`PageError`], so visitors always get a
//! page that says what went wrong.
//!
//! The seat page works without JavaScript: its seats are checkboxes in a
//! form that posts to `/showtimes/{id}/hold`, which holds them and redirects
//! back to `/showtimes/{id}?hold=<hold id>` (post/redirect/get), where the
//! hold is shown with a "Release seats" form. A hold that fails (seats
//! taken, a bad selection) shows the seat page again with the reason and the
//! still-free seats kept selected. `static/seatmap.js` does the same over the
//! JSON API and keeps the map live.

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::AppState;
use crate::error::{Error, PageError};
use crate::film_filter::{FilmFilter, FilmListQuery, HOME_PAGE_SIZE};
use crate::poster;
use crate::seat_selection::SeatSelection;
use crate::session::{SignedIn, Visitor};
use crate::views::{
    ChosenFilter, FilmDetailsPage, HomePage, Notice, SeatPageState, ShowtimePage, render,
};

/// The page routes, for [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home))
        .route("/films/{slug}", get(film))
        .route("/posters/{file}", get(poster))
        .route("/showtimes/{id}", get(showtime))
        .route("/showtimes/{id}/hold", post(hold_seats))
        .route("/showtimes/{id}/release", post(release_hold))
}

/// `GET /`: films, filtered by genre, language and text, a page at a time.
async fn home(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
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
    let mut home = HomePage::new(&page.page, &facets, chosen, &state.public_base_url);
    home.nav = visitor.nav();
    render(&home)
}

/// `GET /films/{slug}`: a film and its showtimes by day and cinema.
async fn film(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    slug: Result<Path<String>, PathRejection>,
) -> Result<Html<String>, PageError> {
    let Path(slug) = slug.map_err(Error::from)?;
    let listing = state.catalog.film_showtimes(&slug).await?;
    let mut page = FilmDetailsPage::new(&listing, &state.public_base_url);
    page.nav = visitor.nav();
    render(&page)
}

/// The seat page's query: which hold to show (after a no-JS hold).
#[derive(Debug, Default, Deserialize)]
pub struct SeatPageQuery {
    hold: Option<String>,
    /// Why the last checkout could not start (a code from
    /// [`crate::checkout_pages`]).
    checkout_error: Option<String>,
    /// The buyer came back from the payment page without paying.
    cancelled: Option<String>,
}

impl SeatPageQuery {
    /// The notice the page opens with, worded here (never taken from the
    /// address).
    fn notice(&self) -> Option<Notice> {
        let error = |message: &str| {
            Some(Notice {
                is_error: true,
                message: message.to_owned(),
            })
        };
        match self.checkout_error.as_deref() {
            Some("unavailable") => {
                return error(
                    "The payment provider is not answering right now. Your seats stay held; \
                     please try Checkout again in a moment.",
                );
            }
            Some("ended") => {
                return error("That hold has ended; pick your seats again.");
            }
            Some(_) => return error("That checkout could not be started; pick your seats again."),
            None => {}
        }
        self.cancelled.as_ref().map(|_| Notice {
            is_error: false,
            message: "Checkout cancelled: your seats were released.".to_owned(),
        })
    }
}

/// `GET /showtimes/{id}`: a showtime's details and its live seat plan.
async fn showtime(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<SeatPageQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Query(query) = query.map_err(Error::from)?;
    let notice = query.notice();
    seat_page(&state, &id, &visitor, query.hold.as_deref(), &[], notice)
        .await
        .map(|(_, html)| html)
}

/// `POST /showtimes/{id}/hold` (form field `seats`, repeated): holds the
/// seats and shows them on the seat page, or shows why not.
async fn hold_seats(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Form(fields) = form.map_err(form_error)?;
    let chosen: Vec<String> = fields
        .into_iter()
        .filter(|(name, _)| name == "seats")
        .map(|(_, value)| value)
        .collect();
    let held = match SeatSelection::parse(&chosen) {
        Ok(seats) => state.seating.hold(&id, &seats, &user.user_id()).await,
        Err(error) => Err(error),
    };
    match held {
        Ok(hold) => Ok(
            Redirect::to(&format!("/showtimes/{id}?hold={}#your-hold", hold.id)).into_response(),
        ),
        // Mistakes the visitor can fix on the same page: show it again.
        Err(
            error @ (Error::BadRequest(_) | Error::Conflict(_) | Error::SeatsUnavailable { .. }),
        ) => {
            let status = error.status();
            let notice = Notice {
                is_error: true,
                message: error.message().to_owned(),
            };
            let (_, html) =
                seat_page(&state, &id, &user.visitor, None, &chosen, Some(notice)).await?;
            Ok((status, html).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// The release form's field.
#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    hold_id: String,
}

/// `POST /showtimes/{id}/release`: lets the visitor's hold go.
async fn release_hold(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<ReleaseForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let showtime_id = crate::catalog_client::parse_showtime_id(&id)?;
    let Form(form) = form.map_err(form_error)?;
    state
        .seating
        .release(&form.hold_id, &user.user_id())
        .await?;
    Ok(Redirect::to(&format!("/showtimes/{showtime_id}")))
}

fn form_error(rejection: FormRejection) -> Error {
    Error::BadRequest(format!(
        "The form could not be read: {}",
        rejection.body_text()
    ))
}

/// Renders the seat page: catalog's showtime (required) and seating's map
/// (optional: without it the plan is drawn without availability).
async fn seat_page(
    state: &AppState,
    id: &str,
    visitor: &Visitor,
    hold_id: Option<&str>,
    selected: &[String],
    notice: Option<Notice>,
) -> Result<(StatusCode, Html<String>), PageError> {
    let caller = crate::api::caller_id(visitor);
    let (detail, seats) = tokio::join!(
        state.catalog.showtime(id),
        state.seating.seat_map(id, &caller)
    );
    let detail = detail?;
    let seats = seats
        .inspect_err(|error| {
            tracing::warn!(%error, showtime = %id, "drawing the seat page without availability");
        })
        .ok();
    // Only the visitor's own hold of this showtime is shown; anything else
    // in `?hold=` is ignored rather than explained.
    let hold = match hold_id {
        Some(hold_id) if seats.is_some() && visitor.session.is_some() => state
            .seating
            .hold_of(hold_id, &caller)
            .await
            .ok()
            .filter(|hold| hold.showtime_id == detail.id),
        _ => None,
    };
    let page = ShowtimePage::new(
        &detail,
        SeatPageState {
            seats: seats.as_ref(),
            hold: hold.as_ref(),
            selected,
            notice,
        },
        &state.public_base_url,
    )
    .for_visitor(visitor);
    Ok((StatusCode::OK, render(&page)?))
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
