//! The staff pages that manage the programme: an overview of films and
//! cinemas with their screens, and one form each for a film, a cinema, a
//! screen (with its layout) and a showtime.
//!
//! Every route here sits behind [`crate::session::require_staff`]. The forms
//! are drawn by one template (`admin_form.html`) from a list of
//! [`FormField`]s, so a new field is one line here. A rejected form comes
//! back with what was typed and each message next to its field (400); a
//! saved one redirects to the overview (post/redirect/get).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::StatusCode;
use serde::Deserialize;

use crate::AppState;
use crate::error::{Error, PageError};
use crate::programme::{
    CinemaEntry, CinemaForm, FieldError, FilmForm, ProgrammeError, ScreenForm, ShowtimeForm,
};
use crate::session::Staff;
use crate::views::{FilterOption, Nav, Notice, respond};

/// The programme routes, for [`crate::router`] (staff only there).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/programme", get(overview))
        .route("/admin/films/new", get(new_film).post(create_film))
        .route("/admin/films/{id}", get(edit_film).post(update_film))
        .route("/admin/films/{id}/showtimes", get(film_showtimes))
        .route("/admin/cinemas/new", get(new_cinema).post(create_cinema))
        .route("/admin/cinemas/{id}", get(edit_cinema).post(update_cinema))
        .route(
            "/admin/cinemas/{id}/screens/new",
            get(new_screen).post(create_screen),
        )
        .route(
            "/admin/cinemas/{cinema}/screens/{id}",
            get(edit_screen).post(update_screen),
        )
        .route(
            "/admin/showtimes/new",
            get(new_showtime).post(create_showtime),
        )
        .route(
            "/admin/showtimes/{id}",
            get(edit_showtime).post(update_showtime),
        )
}

/// The staff pages an overview test walks (GET, `{id}` filled in).
pub const PAGES: &[&str] = &[
    "/admin/programme",
    "/admin/films/new",
    "/admin/cinemas/new",
    "/admin/showtimes/new",
];

/// One input of a staff form.
#[derive(Clone, Debug, Default)]
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `textarea`, `select`, `number`, `url`, `datetime-local`.
    pub kind: &'static str,
    pub value: String,
    pub hint: String,
    pub error: String,
    pub options: Vec<FilterOption>,
    pub required: bool,
}

impl FormField {
    fn new(name: &'static str, label: &'static str, kind: &'static str, value: &str) -> Self {
        FormField {
            name,
            label,
            kind,
            value: value.to_owned(),
            required: true,
            ..Default::default()
        }
    }

    fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    fn select(mut self, options: Vec<(String, String)>) -> Self {
        self.kind = "select";
        self.options = options
            .into_iter()
            .map(|(value, label)| FilterOption {
                selected: value == self.value,
                value,
                label,
            })
            .collect();
        self
    }
}

/// A staff form page.
#[derive(Template)]
#[template(path = "admin_form.html")]
pub struct AdminFormPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub heading: String,
    pub intro: String,
    pub action: String,
    pub submit: &'static str,
    pub back_href: String,
    pub notice: Option<Notice>,
    pub fields: Vec<FormField>,
}

/// An overview row: a film.
#[derive(Clone, Debug)]
pub struct FilmRow {
    pub id: String,
    pub title: String,
    pub details: String,
}

/// `GET /admin/programme`.
#[derive(Template)]
#[template(path = "admin_programme.html")]
pub struct ProgrammePage {
    pub nav: Nav,
    pub csrf_token: String,
    pub films: Vec<FilmRow>,
    pub cinemas: Vec<CinemaEntry>,
    pub notice: Option<Notice>,
}

/// `GET /admin/films/{id}/showtimes`.
#[derive(Template)]
#[template(path = "admin_showtimes.html")]
pub struct FilmShowtimesPage {
    pub nav: Nav,
    pub csrf_token: String,
    pub film_id: String,
    pub title: String,
    pub slots: Vec<(String, String)>,
}

fn form_error(rejection: FormRejection) -> Error {
    Error::BadRequest(format!(
        "The form could not be read: {}",
        rejection.body_text()
    ))
}

/// Puts each error next to its field; errors about no field in particular
/// go into the notice.
fn with_errors(
    mut fields: Vec<FormField>,
    message: &str,
    errors: &[FieldError],
) -> (Vec<FormField>, Notice) {
    let mut general = vec![message.to_owned()];
    for error in errors {
        match fields.iter_mut().find(|f| f.name == error.field) {
            Some(field) => {
                if !field.error.is_empty() {
                    field.error.push(' ');
                }
                field.error.push_str(&error.message);
            }
            None => general.push(error.message.clone()),
        }
    }
    (
        fields,
        Notice {
            is_error: true,
            message: general.join(" "),
        },
    )
}

struct FormSpec {
    heading: String,
    intro: String,
    action: String,
    submit: &'static str,
    back_href: String,
}

fn form_page(
    staff: &Staff,
    spec: FormSpec,
    fields: Vec<FormField>,
    notice: Option<Notice>,
) -> AdminFormPage {
    AdminFormPage {
        nav: staff.0.visitor.nav(),
        csrf_token: staff.0.visitor.csrf_token(),
        heading: spec.heading,
        intro: spec.intro,
        action: spec.action,
        submit: spec.submit,
        back_href: spec.back_href,
        notice,
        fields,
    }
}

/// Back to the overview, which says what was saved (`saved`: film, cinema,
/// screen, showtime); or the form again after a failed save; or the error
/// page for anything that is not the staff member's to fix.
fn saved_or_form(
    staff: &Staff,
    result: Result<String, ProgrammeError>,
    spec: FormSpec,
    fields: Vec<FormField>,
    saved: &str,
) -> Result<Response, PageError> {
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/admin/programme?saved={saved}")).into_response()),
        Err(ProgrammeError::Invalid {
            message,
            fields: errors,
        }) => {
            let (fields, notice) = with_errors(fields, &message, &errors);
            respond(
                StatusCode::BAD_REQUEST,
                &form_page(staff, spec, fields, Some(notice)),
            )
        }
        Err(ProgrammeError::Other(error)) => Err(error.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

/// `GET /admin/programme`: every film and cinema, with links to edit them.
async fn overview(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    query: Result<Query<SavedQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (films, cinemas) = tokio::try_join!(
        state.catalog.all_films(),
        state.catalog.cinemas_for_editing()
    )?;
    let notice = query.ok().and_then(|q| q.0.saved).map(|what| Notice {
        is_error: false,
        message: match what.as_str() {
            "film" => "The film was saved.",
            "cinema" => "The cinema was saved.",
            "screen" => "The screen was saved.",
            "showtime" => "The showtime was saved.",
            _ => "Saved.",
        }
        .to_owned(),
    });
    respond(
        StatusCode::OK,
        &ProgrammePage {
            nav: staff.0.visitor.nav(),
            csrf_token: staff.0.visitor.csrf_token(),
            films: films
                .into_iter()
                .map(|film| FilmRow {
                    details: format!(
                        "{} min · {} · {}",
                        film.form.duration_minutes, film.form.language, film.form.genres
                    ),
                    id: film.id,
                    title: film.title,
                })
                .collect(),
            cinemas,
            notice,
        },
    )
}

fn film_fields(form: &FilmForm) -> Vec<FormField> {
    vec![
        FormField::new("title", "Title", "text", &form.title),
        FormField::new("slug", "Address name", "text", &form.slug)
            .optional()
            .hint("Used in the film's address (/films/…); left empty, it is made from the title."),
        FormField::new("synopsis", "Synopsis", "textarea", &form.synopsis),
        FormField::new("genres", "Genres", "text", &form.genres)
            .hint("Genre slugs, comma-separated: drama, sci-fi, horror, …"),
        FormField::new("language", "Language", "text", &form.language)
            .hint("ISO 639-1 code: en, hi, ta, …"),
        FormField::new(
            "duration_minutes",
            "Running time (minutes)",
            "number",
            &form.duration_minutes,
        ),
        FormField::new("certificate", "Certificate", "text", &form.certificate)
            .optional()
            .hint("U, UA, A, PG-13, …"),
        FormField::new("poster_url", "Poster URL", "url", &form.poster_url)
            .optional()
            .hint("Empty: a poster is drawn from the title."),
        FormField::new(
            "trailer_url",
            "Trailer (YouTube link)",
            "url",
            &form.trailer_url,
        )
        .optional(),
    ]
}

fn film_spec(id: Option<&str>, title: &str) -> FormSpec {
    FormSpec {
        heading: id.map_or("New film".to_owned(), |_| format!("Edit “{title}”")),
        intro: String::new(),
        action: id.map_or("/admin/films/new".to_owned(), |id| {
            format!("/admin/films/{id}")
        }),
        submit: if id.is_some() {
            "Save film"
        } else {
            "Add film"
        },
        back_href: "/admin/programme".to_owned(),
    }
}

async fn new_film(staff: Staff) -> Result<Response, PageError> {
    let page = form_page(
        &staff,
        film_spec(None, ""),
        film_fields(&FilmForm::default()),
        None,
    );
    respond(StatusCode::OK, &page)
}

async fn create_film(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    form: Result<Form<FilmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let result = state.catalog.save_film(None, &form).await;
    saved_or_form(
        &staff,
        result,
        film_spec(None, ""),
        film_fields(&form),
        "film",
    )
}

async fn edit_film(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let film = state.catalog.film_for_editing(&id).await?;
    let page = form_page(
        &staff,
        film_spec(Some(&film.id), &film.title),
        film_fields(&film.form),
        None,
    );
    respond(StatusCode::OK, &page)
}

async fn update_film(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<FilmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Form(form) = form.map_err(form_error)?;
    let result = state.catalog.save_film(Some(&id), &form).await;
    saved_or_form(
        &staff,
        result,
        film_spec(Some(&id), &form.title),
        film_fields(&form),
        "film",
    )
}

/// `GET /admin/films/{id}/showtimes`: the film's upcoming showtimes, each
/// with an edit link.
async fn film_showtimes(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let listing = state.catalog.film_showtimes(&id).await?;
    let slots = listing
        .days
        .iter()
        .flat_map(|day| {
            day.cinemas.iter().flat_map(move |entry| {
                entry.showtimes.iter().map(move |slot| {
                    (
                        slot.id.clone(),
                        format!(
                            "{} · {} · {}",
                            crate::local_time::day_and_time(&slot.starts_at_local),
                            entry.cinema.name,
                            slot.screen_name
                        ),
                    )
                })
            })
        })
        .collect();
    respond(
        StatusCode::OK,
        &FilmShowtimesPage {
            nav: staff.0.visitor.nav(),
            csrf_token: staff.0.visitor.csrf_token(),
            film_id: listing.film.id.clone(),
            title: listing.film.title.clone(),
            slots,
        },
    )
}

fn cinema_fields(form: &CinemaForm) -> Vec<FormField> {
    vec![
        FormField::new("name", "Name", "text", &form.name),
        FormField::new("city", "City", "text", &form.city),
        FormField::new("address", "Address", "text", &form.address).optional(),
        FormField::new("time_zone", "Time zone", "text", &form.time_zone)
            .hint("IANA name, like Asia/Kolkata: showtimes are typed and shown on this clock."),
    ]
}

fn cinema_spec(id: Option<&str>, name: &str) -> FormSpec {
    FormSpec {
        heading: id.map_or("New cinema".to_owned(), |_| format!("Edit {name}")),
        intro: String::new(),
        action: id.map_or("/admin/cinemas/new".to_owned(), |id| {
            format!("/admin/cinemas/{id}")
        }),
        submit: if id.is_some() {
            "Save cinema"
        } else {
            "Add cinema"
        },
        back_href: "/admin/programme".to_owned(),
    }
}

async fn new_cinema(staff: Staff) -> Result<Response, PageError> {
    let form = CinemaForm {
        time_zone: "Asia/Kolkata".to_owned(),
        ..Default::default()
    };
    let page = form_page(&staff, cinema_spec(None, ""), cinema_fields(&form), None);
    respond(StatusCode::OK, &page)
}

async fn create_cinema(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    form: Result<Form<CinemaForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let result = state.catalog.save_cinema(None, &form).await;
    saved_or_form(
        &staff,
        result,
        cinema_spec(None, ""),
        cinema_fields(&form),
        "cinema",
    )
}

async fn find_cinema(state: &AppState, id: &str) -> Result<CinemaEntry, Error> {
    state
        .catalog
        .cinemas_for_editing()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| Error::NotFound("There is no such cinema.".to_owned()))
}

async fn edit_cinema(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let cinema = find_cinema(&state, &id).await?;
    let page = form_page(
        &staff,
        cinema_spec(Some(&cinema.id), &cinema.name),
        cinema_fields(&cinema.form),
        None,
    );
    respond(StatusCode::OK, &page)
}

async fn update_cinema(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<CinemaForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Form(form) = form.map_err(form_error)?;
    let result = state.catalog.save_cinema(Some(&id), &form).await;
    saved_or_form(
        &staff,
        result,
        cinema_spec(Some(&id), &form.name),
        cinema_fields(&form),
        "cinema",
    )
}

fn screen_fields(form: &ScreenForm) -> Vec<FormField> {
    vec![
        FormField::new("name", "Name", "text", &form.name),
        FormField::new("rows", "Rows", "textarea", &form.rows).hint(
            "One row per line, front row first: label, number of seats, category — \
             like \"A 12 standard\". Prices are set per category on each showtime.",
        ),
        FormField::new("aisles", "Aisles after seat", "text", &form.aisles)
            .optional()
            .hint("Seat numbers after which an aisle runs through every row: 4, 8"),
    ]
}

fn screen_spec(cinema: &CinemaEntry, id: Option<&str>, name: &str) -> FormSpec {
    FormSpec {
        heading: id.map_or(format!("New screen at {}", cinema.name), |_| {
            format!("Edit {name} at {}", cinema.name)
        }),
        intro: String::new(),
        action: id.map_or(format!("/admin/cinemas/{}/screens/new", cinema.id), |id| {
            format!("/admin/cinemas/{}/screens/{id}", cinema.id)
        }),
        submit: if id.is_some() {
            "Save screen"
        } else {
            "Add screen"
        },
        back_href: "/admin/programme".to_owned(),
    }
}

async fn new_screen(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let cinema = find_cinema(&state, &id).await?;
    let page = form_page(
        &staff,
        screen_spec(&cinema, None, ""),
        screen_fields(&ScreenForm::default()),
        None,
    );
    respond(StatusCode::OK, &page)
}

async fn create_screen(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<ScreenForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Form(form) = form.map_err(form_error)?;
    let cinema = find_cinema(&state, &id).await?;
    let result = state.catalog.save_screen(&cinema.id, None, &form).await;
    saved_or_form(
        &staff,
        result,
        screen_spec(&cinema, None, ""),
        screen_fields(&form),
        "screen",
    )
}

async fn edit_screen(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, PageError> {
    let Path((cinema_id, id)) = ids.map_err(Error::from)?;
    let cinema = find_cinema(&state, &cinema_id).await?;
    let screen = cinema
        .screens
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or_else(|| Error::NotFound("There is no such screen.".to_owned()))?;
    let page = form_page(
        &staff,
        screen_spec(&cinema, Some(&screen.id), &screen.name),
        screen_fields(&screen.form),
        None,
    );
    respond(StatusCode::OK, &page)
}

async fn update_screen(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    ids: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<ScreenForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path((cinema_id, id)) = ids.map_err(Error::from)?;
    let Form(form) = form.map_err(form_error)?;
    let cinema = find_cinema(&state, &cinema_id).await?;
    let result = state
        .catalog
        .save_screen(&cinema.id, Some(&id), &form)
        .await;
    saved_or_form(
        &staff,
        result,
        screen_spec(&cinema, Some(&id), &form.name),
        screen_fields(&form),
        "screen",
    )
}

async fn showtime_fields(state: &AppState, form: &ShowtimeForm) -> Result<Vec<FormField>, Error> {
    let (films, screens) =
        tokio::try_join!(state.catalog.all_films(), state.catalog.screen_choices())?;
    let categories = screens
        .iter()
        .find(|s| s.id == form.screen_id)
        .map(|s| s.categories.join(", "));
    Ok(vec![
        FormField::new("film_id", "Film", "select", &form.film_id)
            .select(films.into_iter().map(|f| (f.id, f.title)).collect()),
        FormField::new("screen_id", "Screen", "select", &form.screen_id)
            .select(screens.into_iter().map(|s| (s.id, s.label)).collect()),
        FormField::new(
            "starts_local",
            "Starts",
            "datetime-local",
            &form.starts_local,
        )
        .hint("On the cinema's own clock."),
        FormField::new("currency", "Currency", "text", &form.currency)
            .hint("ISO 4217: INR, USD, …"),
        FormField::new("prices", "Prices", "textarea", &form.prices).hint(match categories {
            Some(categories) => format!(
                "One line per seat category of the screen ({categories}): \"standard 250.00\"."
            ),
            None => "One line per seat category of the screen: \"standard 250.00\".".to_owned(),
        }),
    ])
}

fn showtime_spec(id: Option<&str>, film_title: &str) -> FormSpec {
    FormSpec {
        heading: id.map_or("New showtime".to_owned(), |_| {
            format!("Edit a showtime of “{film_title}”")
        }),
        intro: "A showtime may not overlap another on the same screen (the film's length \
                plus changeover time)."
            .to_owned(),
        action: id.map_or("/admin/showtimes/new".to_owned(), |id| {
            format!("/admin/showtimes/{id}")
        }),
        submit: if id.is_some() {
            "Save showtime"
        } else {
            "Schedule showtime"
        },
        back_href: "/admin/programme".to_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NewShowtimeQuery {
    film: Option<String>,
}

async fn new_showtime(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    query: Result<Query<NewShowtimeQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let form = ShowtimeForm {
        film_id: query.ok().and_then(|q| q.0.film).unwrap_or_default(),
        currency: "INR".to_owned(),
        ..Default::default()
    };
    let fields = showtime_fields(&state, &form).await?;
    respond(
        StatusCode::OK,
        &form_page(&staff, showtime_spec(None, ""), fields, None),
    )
}

/// The time zone of the chosen screen's cinema (the form's start is on
/// that clock); unknown screens are left for catalog to name.
async fn zone_of_screen(state: &AppState, screen_id: &str) -> Result<String, Error> {
    Ok(state
        .catalog
        .screen_choices()
        .await?
        .into_iter()
        .find(|s| s.id == screen_id.trim())
        .map(|s| s.time_zone)
        .unwrap_or_else(|| "UTC".to_owned()))
}

async fn create_showtime(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    form: Result<Form<ShowtimeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let zone = zone_of_screen(&state, &form.screen_id).await?;
    let result = state.catalog.save_showtime(None, &form, &zone).await;
    let fields = showtime_fields(&state, &form).await?;
    saved_or_form(&staff, result, showtime_spec(None, ""), fields, "showtime")
}

async fn edit_showtime(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let showtime = state.catalog.showtime_for_editing(&id).await?;
    let fields = showtime_fields(&state, &showtime.form).await?;
    respond(
        StatusCode::OK,
        &form_page(
            &staff,
            showtime_spec(Some(&id), &showtime.film_title),
            fields,
            None,
        ),
    )
}

async fn update_showtime(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<ShowtimeForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(id) = id.map_err(Error::from)?;
    let Form(form) = form.map_err(form_error)?;
    let zone = zone_of_screen(&state, &form.screen_id).await?;
    let result = state.catalog.save_showtime(Some(&id), &form, &zone).await;
    let fields = showtime_fields(&state, &form).await?;
    saved_or_form(
        &staff,
        result,
        showtime_spec(Some(&id), ""),
        fields,
        "showtime",
    )
}
