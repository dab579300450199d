//! The account pages: sign-up, sign-in, sign-out, password reset, the
//! profile with its booking history, and the staff area's front page.
//!
//! Every form posts back to its own address and, on a mistake the person can
//! fix, the same page is drawn again with the message and what they typed
//! (never the password), with the status that fits (400, 401, 409, 429).
//! Success redirects (post/redirect/get). The flows themselves are
//! [`crate::auth::Accounts`]'; CSRF tokens were checked by
//! [`crate::session::authenticate`] before any handler here runs.

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Datelike as _;
use http::{StatusCode, header};
use serde::Deserialize;

use crate::AppState;
use crate::accounts::MIN_PASSWORD_CHARS;
use crate::auth::NewSession;
use crate::error::{Error, PageError};
use crate::session::{SignedIn, Staff, Visitor};
use crate::views::{
    AdminPage, ForgotPasswordPage, Notice, ProfilePage, ResetPasswordPage, SignInPage, SignUpPage,
    TicketStub, respond,
};

/// The account routes, for [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(sign_in_page).post(sign_in))
        .route("/signup", get(sign_up_page).post(sign_up))
        .route("/logout", axum::routing::post(sign_out))
        .route(
            "/logout-everywhere",
            axum::routing::post(sign_out_everywhere),
        )
        .route("/password-reset", get(forgot_page).post(request_reset))
        .route("/reset-password", get(reset_page).post(reset_password))
        .route("/profile", get(profile).post(update_profile))
        .route("/profile/password", axum::routing::post(change_password))
        .route("/admin", get(admin_home))
}

/// Where to go after signing in: a local path only, so a crafted link
/// cannot send someone to another site (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn error_notice(error: &Error) -> Notice {
    Notice {
        is_error: true,
        message: error.message().to_owned(),
    }
}

/// Mistakes a person can fix on the same page; anything else (a dependency
/// down) becomes the error page.
fn fixable(error: &Error) -> bool {
    matches!(
        error,
        Error::BadRequest(_)
            | Error::Unauthorized(_)
            | Error::Conflict(_)
            | Error::TooManyRequests { .. }
    )
}

fn form_error(rejection: FormRejection) -> Error {
    Error::BadRequest(format!(
        "The form could not be read: {}",
        rejection.body_text()
    ))
}

/// A redirect that also carries the new session's cookie.
fn signed_in_redirect(state: &AppState, session: &NewSession, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.cookies.session_cookie(session));
    response
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
async fn sign_in_page(
    visitor: Visitor,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let next = safe_next(query.ok().and_then(|q| q.0.next).as_deref());
    if visitor.session.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    respond(
        StatusCode::OK,
        &SignInPage {
            nav: visitor.nav(),
            csrf_token: visitor.csrf_token(),
            next,
            ..Default::default()
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`.
async fn sign_in(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let next = safe_next(form.next.as_deref());
    match state
        .accounts
        .sign_in(
            &form.email,
            &form.password,
            visitor.address,
            visitor.session.as_ref(),
        )
        .await
    {
        Ok(session) => Ok(signed_in_redirect(&state, &session, &next)),
        Err(error) if fixable(&error) => respond(
            error.status(),
            &SignInPage {
                nav: visitor.nav(),
                csrf_token: visitor.csrf_token(),
                email: form.email.trim().to_owned(),
                next,
                notice: Some(error_notice(&error)),
            },
        ),
        Err(error) => Err(error.into()),
    }
}

/// `GET /signup`.
async fn sign_up_page(
    visitor: Visitor,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let next = safe_next(query.ok().and_then(|q| q.0.next).as_deref());
    if visitor.session.is_some() {
        return Ok(Redirect::to("/profile").into_response());
    }
    respond(
        StatusCode::OK,
        &SignUpPage {
            nav: visitor.nav(),
            csrf_token: visitor.csrf_token(),
            next,
            min_password: MIN_PASSWORD_CHARS,
            ..Default::default()
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    email: String,
    display_name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /signup`.
async fn sign_up(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let next = safe_next(form.next.as_deref());
    match state
        .accounts
        .register(
            &form.email,
            &form.display_name,
            &form.password,
            visitor.address,
        )
        .await
    {
        Ok(session) => {
            if let Some(previous) = &visitor.session {
                state.accounts.sign_out(previous).await?;
            }
            Ok(signed_in_redirect(&state, &session, &next))
        }
        Err(error) if fixable(&error) => respond(
            error.status(),
            &SignUpPage {
                nav: visitor.nav(),
                csrf_token: visitor.csrf_token(),
                email: form.email.trim().to_owned(),
                display_name: form.display_name.trim().to_owned(),
                next,
                min_password: MIN_PASSWORD_CHARS,
                notice: Some(error_notice(&error)),
            },
        ),
        Err(error) => Err(error.into()),
    }
}

/// `POST /logout`: ends this session. Signed out already is fine too.
async fn sign_out(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, PageError> {
    if let Some(session) = &visitor.session {
        state.accounts.sign_out(session).await?;
    }
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.cookies.clear_session_cookie());
    Ok(response)
}

/// `POST /logout-everywhere`: ends every session of the account.
async fn sign_out_everywhere(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
) -> Result<Response, PageError> {
    state.accounts.sign_out_everywhere(&user.session).await?;
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.cookies.clear_session_cookie());
    Ok(response)
}

/// The reset request's answer, the same whether the account exists or not.
pub const RESET_REQUESTED: &str = "If an account exists for that address, we have emailed it a \
     link to choose a new password. The link works once, for an hour.";

/// `GET /password-reset`.
async fn forgot_page(visitor: Visitor) -> Result<Response, PageError> {
    respond(
        StatusCode::OK,
        &ForgotPasswordPage {
            nav: visitor.nav(),
            csrf_token: visitor.csrf_token(),
            ..Default::default()
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct ResetRequestForm {
    email: String,
}

/// `POST /password-reset`.
async fn request_reset(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    form: Result<Form<ResetRequestForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let (status, notice, email) = match state
        .accounts
        .request_password_reset(&form.email, visitor.address)
        .await
    {
        Ok(()) => (
            StatusCode::OK,
            Notice {
                is_error: false,
                message: RESET_REQUESTED.to_owned(),
            },
            String::new(),
        ),
        Err(error) if fixable(&error) => (
            error.status(),
            error_notice(&error),
            form.email.trim().to_owned(),
        ),
        Err(error) => return Err(error.into()),
    };
    respond(
        status,
        &ForgotPasswordPage {
            nav: visitor.nav(),
            csrf_token: visitor.csrf_token(),
            email,
            notice: Some(notice),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetQuery {
    token: Option<String>,
}

/// `GET /reset-password?token=…`: the link from the email.
async fn reset_page(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    query: Result<Query<ResetQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let token = query.ok().and_then(|q| q.0.token).unwrap_or_default();
    let usable = state.accounts.reset_link_is_usable(&token).await?;
    respond(
        if usable {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        &ResetPasswordPage {
            nav: visitor.nav(),
            csrf_token: visitor.csrf_token(),
            token: if usable { token } else { String::new() },
            usable,
            min_password: MIN_PASSWORD_CHARS,
            notice: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
}

/// `POST /reset-password`.
async fn reset_password(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    match state
        .accounts
        .reset_password(&form.token, &form.password)
        .await
    {
        Ok(()) => respond(
            StatusCode::OK,
            &SignInPage {
                nav: Default::default(),
                csrf_token: visitor.csrf_token(),
                notice: Some(Notice {
                    is_error: false,
                    message: "Your password has been changed and every session signed out. \
                              Sign in with the new password."
                        .to_owned(),
                }),
                next: "/profile".to_owned(),
                ..Default::default()
            },
        )
        .map(|mut response| {
            // This browser's session (if any) ended with the others.
            response
                .headers_mut()
                .append(header::SET_COOKIE, state.cookies.clear_session_cookie());
            response
        }),
        Err(error) if fixable(&error) => {
            let usable = state.accounts.reset_link_is_usable(&form.token).await?;
            respond(
                error.status(),
                &ResetPasswordPage {
                    nav: visitor.nav(),
                    csrf_token: visitor.csrf_token(),
                    token: if usable { form.token } else { String::new() },
                    usable,
                    min_password: MIN_PASSWORD_CHARS,
                    notice: Some(error_notice(&error)),
                },
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /profile`: the account's details and booking history.
async fn profile(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
) -> Result<Response, PageError> {
    respond(StatusCode::OK, &profile_page(&state, &user, None).await)
}

async fn profile_page(state: &AppState, user: &SignedIn, notice: Option<Notice>) -> ProfilePage {
    let account = user.user();
    let bookings = state.seating.bookings(&user.user_id()).await;
    let (bookings, unavailable) = match bookings {
        Ok(bookings) => (
            bookings
                .iter()
                .map(|b| TicketStub::new(b, &state.public_base_url))
                .collect::<Vec<_>>(),
            false,
        ),
        Err(error) => {
            tracing::warn!(%error, "profile drawn without the booking history");
            (Vec::new(), true)
        }
    };
    ProfilePage {
        nav: user.visitor.nav(),
        csrf_token: user.visitor.csrf_token(),
        email: account.email.clone(),
        display_name: account.display_name.clone(),
        member_since: format!(
            "{} {}",
            month_name(account.created_at.month()),
            account.created_at.year()
        ),
        is_staff: account.is_staff,
        min_password: MIN_PASSWORD_CHARS,
        count_text: ProfilePage::count_text(bookings.len()),
        bookings,
        bookings_unavailable: unavailable,
        notice,
    }
}

fn month_name(month: u32) -> &'static str {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("")
}

#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    display_name: String,
}

/// `POST /profile`: change the display name.
async fn update_profile(
    State(state): State<Arc<AppState>>,
    mut user: SignedIn,
    form: Result<Form<ProfileForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    match state
        .accounts
        .update_profile(&user.session, &form.display_name)
        .await
    {
        Ok(updated) => {
            user.session.user = updated;
            if let Some(session) = user.visitor.session.as_mut() {
                session.user = user.session.user.clone();
            }
            let notice = Notice {
                is_error: false,
                message: "Your name has been saved.".to_owned(),
            };
            respond(
                StatusCode::OK,
                &profile_page(&state, &user, Some(notice)).await,
            )
        }
        Err(error) if fixable(&error) => respond(
            error.status(),
            &profile_page(&state, &user, Some(error_notice(&error))).await,
        ),
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

/// `POST /profile/password`.
async fn change_password(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(form_error)?;
    let outcome = state
        .accounts
        .change_password(&user.session, &form.current_password, &form.new_password)
        .await;
    let (status, notice) = match outcome {
        Ok(()) => (
            StatusCode::OK,
            Notice {
                is_error: false,
                message: "Your password has been changed; your other sessions were signed out."
                    .to_owned(),
            },
        ),
        Err(error) if fixable(&error) => (error.status(), error_notice(&error)),
        Err(error) => return Err(error.into()),
    };
    respond(status, &profile_page(&state, &user, Some(notice)).await)
}

/// `GET /admin`: staff only.
async fn admin_home(Staff(staff): Staff) -> Result<Response, PageError> {
    respond(
        StatusCode::OK,
        &AdminPage {
            nav: staff.visitor.nav(),
            csrf_token: staff.visitor.csrf_token(),
            display_name: staff.user().display_name.clone(),
            notice: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/showtimes/abc?x=1")), "/showtimes/abc?x=1");
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
