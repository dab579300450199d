//! The account and booking endpoints of the JSON API: `/api/v1/auth/*`,
//! `/api/v1/me`, `/api/v1/bookings` and the staff endpoints under
//! `/api/v1/admin/*` (seat blocks, the dashboard's figures).
//!
//! The same flows as the pages ([`crate::auth::Accounts`]), answered as JSON.
//! Sign-in and registration set the `bms_session` cookie and return the
//! session's CSRF token, which every later POST, PATCH or DELETE sends in
//! `X-CSRF-Token`. Bookings are always the caller's own: another user's
//! reference is "not found", exactly like one that does not exist.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::account_pages::RESET_REQUESTED;
use crate::analytics_client::{Stats, StatsLimits};
use crate::auth::NewSession;
use crate::dashboard::RangeQuery;
use crate::error::{ApiError, Error, ErrorBody};
use crate::resources::{Booking, SeatMap};
use crate::seat_selection::SeatSelection;
use crate::session::{SignedIn, Staff, Visitor};
use crate::store::User;

/// The account routes, merged into `/api/v1` by [`crate::api::routes`].
pub fn routes() -> Router<Arc<AppState>> {
    let admin = Router::new()
        .route(
            "/admin/showtimes/{id}/blocked-seats",
            post(block_seats).delete(unblock_seats),
        )
        .route("/admin/whoami", get(admin_whoami))
        .route("/admin/stats", get(admin_stats))
        // Nothing under /admin runs for anyone but staff, whatever the
        // handler takes.
        .route_layer(axum::middleware::from_fn(crate::session::require_staff));
    Router::new()
        .route("/auth/csrf", get(csrf))
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/password-reset", post(request_reset))
        .route("/auth/password-reset/confirm", post(confirm_reset))
        .route("/me", get(me).patch(update_me))
        .route("/me/password", post(change_password))
        .route("/bookings", get(list_bookings))
        .route("/bookings/{reference}", get(get_booking))
        .merge(admin)
}

/// The paths of every staff endpoint, for tests that check each refuses
/// everyone else.
pub const ADMIN_PATHS: &[(&str, &str)] = &[
    ("POST", "/api/v1/admin/showtimes/{id}/blocked-seats"),
    ("DELETE", "/api/v1/admin/showtimes/{id}/blocked-seats"),
    ("GET", "/api/v1/admin/whoami"),
    ("GET", "/api/v1/admin/stats"),
];

/// The signed-in account.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "Ada")]
    pub display_name: String,
    pub is_staff: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for Me {
    fn from(user: &User) -> Self {
        Me {
            id: user.id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            is_staff: user.is_staff,
            created_at: user.created_at,
        }
    }
}

/// A session just started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStarted {
    pub user: Me,
    /// Send this in `X-CSRF-Token` with every state-changing call.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A CSRF token for a caller without a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsrfToken {
    pub csrf_token: String,
}

/// `POST /api/v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 1 to 60 characters.
    #[schema(example = "Ada", min_length = 1, max_length = 60)]
    pub display_name: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// `POST /api/v1/auth/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

/// `POST /api/v1/auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmation {
    /// The `token` of the emailed link.
    pub token: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// `PATCH /api/v1/me`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// 1 to 60 characters.
    #[schema(example = "Ada", min_length = 1, max_length = 60)]
    pub display_name: String,
}

/// `POST /api/v1/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// A plain confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// The caller's bookings.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingList {
    pub count: usize,
    /// Newest first.
    pub bookings: Vec<Booking>,
}

/// `POST`/`DELETE /api/v1/admin/showtimes/{id}/blocked-seats`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatBlock {
    #[schema(schema_with = crate::seat_selection::seat_labels_schema)]
    pub seats: Vec<String>,
    /// Why (kept with the block, one line); only when blocking.
    #[serde(default)]
    pub reason: String,
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>, example: &str) -> Result<T, Error> {
    body.map(|Json(value)| value).map_err(|rejection| {
        Error::BadRequest(format!(
            "The body must be JSON like {example}: {}",
            rejection.body_text()
        ))
    })
}

fn session_started(state: &AppState, session: NewSession, status: StatusCode) -> Response {
    let cookie = state.cookies.session_cookie(&session);
    let body = SessionStarted {
        user: Me::from(&session.user),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    };
    (status, [(header::SET_COOKIE, cookie)], Json(body)).into_response()
}

/// A CSRF token for calls made before signing in (sets its cookie).
#[utoipa::path(get, path = "/api/v1/auth/csrf", tag = "accounts",
    responses((status = 200, description = "The token; its cookie is set too", body = CsrfToken)))]
pub(crate) async fn csrf(visitor: Visitor) -> Json<CsrfToken> {
    Json(CsrfToken {
        csrf_token: visitor.csrf_token(),
    })
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts",
    request_body = Registration,
    responses(
        (status = 201, description = "Signed in; `bms_session` cookie set", body = SessionStarted),
        (status = 400, description = "Malformed email, name or password", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
        (status = 409, description = "The email address has an account already", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address", body = ErrorBody),
    ))]
pub(crate) async fn register(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    body: Result<Json<Registration>, JsonRejection>,
) -> Result<Response, ApiError> {
    let form = json_body(
        body,
        r#"{"email": "ada@example.com", "display_name": "Ada", "password": "…"}"#,
    )?;
    let session = state
        .accounts
        .register(
            &form.email,
            &form.display_name,
            &form.password,
            visitor.address,
        )
        .await?;
    if let Some(previous) = &visitor.session {
        state.accounts.sign_out(previous).await?;
    }
    Ok(session_started(&state, session, StatusCode::CREATED))
}

/// Signs in: a new session, whatever the caller had before.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in; `bms_session` cookie set", body = SessionStarted),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let form = json_body(body, r#"{"email": "ada@example.com", "password": "…"}"#)?;
    let session = state
        .accounts
        .sign_in(
            &form.email,
            &form.password,
            visitor.address,
            visitor.session.as_ref(),
        )
        .await?;
    Ok(session_started(&state, session, StatusCode::OK))
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts",
    responses(
        (status = 204, description = "Signed out (or was not signed in)"),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, ApiError> {
    if let Some(session) = &visitor.session {
        state.accounts.sign_out(session).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, state.cookies.clear_session_cookie())],
    )
        .into_response())
}

/// Asks for a password reset email. The answer is the same whether the
/// address has an account or not.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "accounts",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "If the account exists, a link is on its way", body = Message),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
        (status = 429, description = "Too many requests; see Retry-After", body = ErrorBody),
    ))]
pub(crate) async fn request_reset(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    body: Result<Json<ResetRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let form = json_body(body, r#"{"email": "ada@example.com"}"#)?;
    state
        .accounts
        .request_password_reset(&form.email, visitor.address)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Message {
            message: RESET_REQUESTED.to_owned(),
        }),
    )
        .into_response())
}

/// Sets a new password with the emailed token (once); every session of the
/// account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "accounts",
    request_body = ResetConfirmation,
    responses(
        (status = 200, description = "Password set; sign in again", body = Message),
        (status = 400, description = "Token used, expired or unknown; or a weak password",
         body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ))]
pub(crate) async fn confirm_reset(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ResetConfirmation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let form = json_body(body, r#"{"token": "…", "password": "…"}"#)?;
    state
        .accounts
        .reset_password(&form.token, &form.password)
        .await?;
    Ok((
        [(header::SET_COOKIE, state.cookies.clear_session_cookie())],
        Json(Message {
            message: "Your password has been changed; sign in with it.".to_owned(),
        }),
    )
        .into_response())
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("session" = [])),
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn me(user: SignedIn) -> Json<Me> {
    Json(Me::from(user.user()))
}

/// Changes the display name.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts", security(("session" = [])),
    request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 400, description = "Empty or over-long name", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ))]
pub(crate) async fn update_me(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    body: Result<Json<ProfileUpdate>, JsonRejection>,
) -> Result<Json<Me>, ApiError> {
    let form = json_body(body, r#"{"display_name": "Ada"}"#)?;
    let updated = state
        .accounts
        .update_profile(&user.session, &form.display_name)
        .await?;
    Ok(Json(Me::from(&updated)))
}

/// Changes the password; the account's other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "accounts", security(("session" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed", body = Message),
        (status = 400, description = "Wrong current password or a weak new one", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<Json<Message>, ApiError> {
    let form = json_body(body, r#"{"current_password": "…", "new_password": "…"}"#)?;
    state
        .accounts
        .change_password(&user.session, &form.current_password, &form.new_password)
        .await?;
    Ok(Json(Message {
        message: "Your password has been changed; your other sessions were signed out.".to_owned(),
    }))
}

/// The caller's bookings, newest first.
#[utoipa::path(get, path = "/api/v1/bookings", tag = "accounts", security(("session" = [])),
    responses(
        (status = 200, description = "The bookings", body = BookingList),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn list_bookings(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
) -> Result<Json<BookingList>, ApiError> {
    let bookings = state.seating.bookings(&user.user_id()).await?;
    Ok(Json(BookingList {
        count: bookings.len(),
        bookings,
    }))
}

/// One of the caller's bookings.
#[utoipa::path(get, path = "/api/v1/bookings/{reference}", tag = "accounts",
    security(("session" = [])),
    params(("reference" = String, Path, pattern = "^[A-Za-z0-9-]{4,32}$",
            description = "The booking reference, e.g. BMS-7K3Q9P")),
    responses(
        (status = 200, description = "The booking", body = Booking),
        (status = 400, description = "Not a booking reference", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such booking of yours", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn get_booking(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    reference: Result<Path<String>, PathRejection>,
) -> Result<Json<Booking>, ApiError> {
    let Path(reference) = reference.map_err(Error::from)?;
    Ok(Json(
        state.seating.booking(&reference, &user.user_id()).await?,
    ))
}

/// Staff: takes seats out of sale (a broken seat, a reserved row).
#[utoipa::path(post, path = "/api/v1/admin/showtimes/{id}/blocked-seats", tag = "staff",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid, description = "The showtime's UUID")),
    request_body = SeatBlock,
    responses(
        (status = 200, description = "The seat map after the change", body = SeatMap),
        (status = 400, description = "Unknown or repeated seats, a reason with control \
                                      characters, a malformed id or body", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff, or a missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 409, description = "Some seats are held or sold", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn block_seats(
    State(state): State<Arc<AppState>>,
    Staff(staff): Staff,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<SeatBlock>, JsonRejection>,
) -> Result<Json<SeatMap>, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    let form = json_body(body, r#"{"seats": ["A1"], "reason": "broken seat"}"#)?;
    let seats = SeatSelection::parse(&form.seats)?;
    // A reason is a short note on one line; seating stores it as text,
    // which PostgreSQL refuses when it holds a NUL.
    if form.reason.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "The reason may not contain control characters (line breaks included).".to_owned(),
        )
        .into());
    }
    let map = state.seating.block(&id, &seats, &form.reason).await?;
    tracing::info!(staff = %staff.user().id, showtime = %id, seats = form.seats.len(), "seats blocked");
    Ok(Json(map))
}

/// Staff: puts blocked seats back on sale.
#[utoipa::path(delete, path = "/api/v1/admin/showtimes/{id}/blocked-seats", tag = "staff",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid, description = "The showtime's UUID")),
    request_body = SeatBlock,
    responses(
        (status = 200, description = "The seat map after the change", body = SeatMap),
        (status = 400, description = "Unknown or repeated seats, a malformed id or body",
         body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff, or a missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such showtime", body = ErrorBody),
        (status = 503, description = "Seating is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn unblock_seats(
    State(state): State<Arc<AppState>>,
    Staff(staff): Staff,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<SeatBlock>, JsonRejection>,
) -> Result<Json<SeatMap>, ApiError> {
    let Path(id) = id.map_err(Error::from)?;
    let form = json_body(body, r#"{"seats": ["A1"]}"#)?;
    let seats = SeatSelection::parse(&form.seats)?;
    let map = state.seating.unblock(&id, &seats).await?;
    tracing::info!(staff = %staff.user().id, showtime = %id, seats = form.seats.len(), "seats unblocked");
    Ok(Json(map))
}

/// Staff: the signed-in staff account (lets tools check their session).
#[utoipa::path(get, path = "/api/v1/admin/whoami", tag = "staff", security(("session" = [])),
    responses(
        (status = 200, description = "The staff account", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
    ))]
pub(crate) async fn admin_whoami(Staff(staff): Staff) -> Json<Me> {
    Json(Me::from(staff.user()))
}

/// Staff: the dashboard's figures as JSON — all-time totals, revenue per
/// UTC day of the range (every day, oldest first), top films, occupancy per
/// showtime and recent activity. 503 while analytics is not answering.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "staff", security(("session" = [])),
    params(crate::dashboard::RangeQuery),
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 400, description = "A date that is not YYYY-MM-DD, `from` after `to`, or more than 366 days", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not staff", body = ErrorBody),
        (status = 503, description = "Analytics is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn admin_stats(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let range = crate::dashboard::range_of(query)?;
    let stats = state
        .analytics
        .stats(range.from, range.to, StatsLimits::default())
        .await?;
    Ok(Json(stats))
}
