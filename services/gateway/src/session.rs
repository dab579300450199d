//! Who is asking, and whether their request is really theirs: the session
//! cookie, CSRF protection, and the extractors handlers take.
//!
//! [`authenticate`] runs on every route. It looks up the `bms_session` cookie
//! (one indexed query, only when the cookie is present, so anonymous browsing
//! never touches the database), and puts a [`Visitor`] into the request's
//! extensions. A cookie naming no live session is cleared.
//!
//! **CSRF.** Every request with an unsafe method must carry a token, in the
//! `X-CSRF-Token` header (scripts, API clients) or a `csrf_token` form field
//! (HTML forms), and it must match:
//! - for a signed-in visitor, the token stored with their session
//!   (synchronizer token: a cross-site page can neither read nor guess it);
//! - for an anonymous one (the sign-in, sign-up and reset forms), the
//!   `bms_csrf` cookie, minted on the first page that shows a form
//!   (double-submit: a cross-site page cannot read that cookie to copy it).
//!
//! A mismatch is refused with 403 before any handler runs. Both cookies are
//! `HttpOnly` and `SameSite=Lax`, and `Secure` when `PUBLIC_BASE_URL` is https.
//!
//! Handlers take [`Visitor`] (anyone), [`SignedIn`] (401 for the API, a
//! redirect to the sign-in page for pages) or [`Staff`] (403 for signed-in
//! customers). No query string, header or other cookie can stand in for them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};

use crate::AppState;
use crate::accounts::{Token, constant_time_eq};
use crate::auth::{LiveSession, NewSession};
use crate::error::{ApiError, Error, PageError};
use crate::store::User;

/// The session cookie.
pub const SESSION_COOKIE: &str = "bms_session";
/// The anonymous visitor's CSRF cookie.
pub const CSRF_COOKIE: &str = "bms_csrf";
/// Where scripts and API clients put the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where HTML forms put the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// How the gateway's cookies are set and client addresses found.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    /// Add `Secure` (the public base URL is https).
    pub secure: bool,
    /// Take the client address from the last `X-Forwarded-For` entry (set
    /// by our own ingress) instead of the TCP peer.
    pub trust_forwarded_for: bool,
}

/// Who is asking. Always present on requests that passed [`authenticate`].
#[derive(Clone, Debug)]
pub struct Visitor {
    pub session: Option<LiveSession>,
    /// The client's address, for throttling.
    pub address: IpAddr,
    anonymous_csrf: Arc<AnonymousCsrf>,
}

#[derive(Debug)]
enum AnonymousCsrf {
    /// The token the browser's cookie carried.
    Sent(String),
    /// The browser had none: one is minted when a form first needs it (most
    /// requests never do, and minting reads the OS random generator), and
    /// the response then sets the cookie.
    Minted(OnceLock<String>),
}

impl Visitor {
    pub fn user(&self) -> Option<&User> {
        self.session.as_ref().map(|s| &s.user)
    }

    /// The token this visitor's forms must carry.
    pub fn csrf_token(&self) -> String {
        match &self.session {
            Some(session) => session.csrf_token.clone(),
            None => match self.anonymous_csrf.as_ref() {
                AnonymousCsrf::Sent(token) => token.clone(),
                AnonymousCsrf::Minted(cell) => cell
                    .get_or_init(|| Token::generate().as_str().to_owned())
                    .clone(),
            },
        }
    }

    /// What the page header shows about the visitor.
    pub fn nav(&self) -> crate::views::Nav {
        match &self.session {
            Some(session) => crate::views::Nav {
                signed_in: true,
                display_name: session.user.display_name.clone(),
                is_staff: session.user.is_staff,
                csrf_token: session.csrf_token.clone(),
            },
            None => crate::views::Nav::default(),
        }
    }

    /// Whether the token a request carried is this visitor's.
    fn csrf_matches(&self, provided: &str) -> bool {
        let expected = match &self.session {
            Some(session) => session.csrf_token.as_str(),
            None => match self.anonymous_csrf.as_ref() {
                AnonymousCsrf::Sent(token) => token.as_str(),
                // A token minted during this request was never given to anybody.
                AnonymousCsrf::Minted(_) => return false,
            },
        };
        !provided.is_empty() && constant_time_eq(provided.as_bytes(), expected.as_bytes())
    }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl CookiePolicy {
    fn cookie(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        // Names and values are our own constants and base64url tokens.
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("bms_invalid=; Path=/; Max-Age=0"))
    }

    /// The cookie that carries a new session.
    pub fn session_cookie(&self, session: &NewSession) -> HeaderValue {
        let max_age = (session.expires_at - chrono::Utc::now())
            .num_seconds()
            .max(0);
        self.cookie(SESSION_COOKIE, session.token.as_str(), max_age)
    }

    /// The cookie that removes the session cookie.
    pub fn clear_session_cookie(&self) -> HeaderValue {
        self.cookie(SESSION_COOKIE, "", 0)
    }

    fn csrf_cookie(&self, token: &str) -> HeaderValue {
        // A day: long enough for a form left open, short enough to rotate.
        self.cookie(CSRF_COOKIE, token, 24 * 60 * 60)
    }

    fn client_address(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        if !self.trust_forwarded_for {
            return peer;
        }
        // The rightmost entry is the one our proxy appended; what comes
        // before it is whatever the client claimed.
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        entries
            .last()
            .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
            .unwrap_or(peer)
    }
}

/// Middleware: finds the visitor's session, checks the CSRF token of unsafe
/// requests, and sets or clears cookies on the way out.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // Assets and probes never need to know who is asking; skipping them
    // keeps a page load to one session lookup.
    let path = request.uri().path();
    if request.method() == Method::GET
        && (path.starts_with("/static/") || path == "/healthz" || path == "/readyz")
    {
        return next.run(request).await;
    }
    let is_api = path.starts_with("/api/");
    let refuse = |error: Error| {
        if is_api {
            ApiError(error).into_response()
        } else {
            PageError(error).into_response()
        }
    };
    let policy = state.cookies;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
    let address = policy.client_address(request.headers(), peer);

    let session_cookie = cookie(request.headers(), SESSION_COOKIE).map(str::to_owned);
    let session = match session_cookie.as_deref().and_then(Token::parse) {
        Some(token) => match state.accounts.session(&token).await {
            Ok(session) => session,
            Err(error) => return refuse(error),
        },
        None => None,
    };
    let stale_cookie = session_cookie.is_some() && session.is_none();

    let anonymous_csrf = match cookie(request.headers(), CSRF_COOKIE).and_then(Token::parse) {
        Some(token) => AnonymousCsrf::Sent(token.as_str().to_owned()),
        None => AnonymousCsrf::Minted(OnceLock::new()),
    };
    let visitor = Visitor {
        session,
        address,
        anonymous_csrf: Arc::new(anonymous_csrf),
    };

    let request = if is_safe(request.method()) {
        request
    } else {
        match check_csrf(&visitor, request).await {
            Ok(request) => request,
            Err(error) => return refuse(error),
        }
    };

    let mut request = request;
    request.extensions_mut().insert(visitor.clone());
    let mut response = next.run(request).await;

    let headers = response.headers_mut();
    if visitor.session.is_none()
        && let AnonymousCsrf::Minted(cell) = visitor.anonymous_csrf.as_ref()
        && let Some(token) = cell.get()
    {
        headers.append(header::SET_COOKIE, policy.csrf_cookie(token));
    }
    // Unless the handler itself set a new session (a sign-in), tell the
    // browser to forget a cookie that opens nothing.
    if stale_cookie && !sets_session_cookie(headers) {
        headers.append(header::SET_COOKIE, policy.clear_session_cookie());
    }
    response
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn sets_session_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.as_bytes().starts_with(SESSION_COOKIE.as_bytes()))
}

/// Refuses an unsafe request whose CSRF token is missing or wrong. A form
/// body is read (it is small: the body limit applies) to find the field,
/// and handed on unchanged.
async fn check_csrf(visitor: &Visitor, request: Request) -> Result<Request, Error> {
    let refused = || {
        Error::Forbidden(
            "This form has expired or did not come from BookMySeat (missing or wrong CSRF \
             token). Reload the page and try again; API clients send the token from \
             GET /api/v1/auth/csrf in the X-CSRF-Token header."
                .to_owned(),
        )
    };
    if let Some(provided) = request.headers().get(CSRF_HEADER) {
        let provided = provided.to_str().unwrap_or_default();
        return if visitor.csrf_matches(provided) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, crate::REQUEST_BODY_LIMIT)
        .await
        .map_err(|_| {
            Error::BadRequest(format!(
                "The form is larger than {} KiB.",
                crate::REQUEST_BODY_LIMIT / 1024
            ))
        })?;
    let provided = form_field(&bytes, CSRF_FIELD).unwrap_or_default();
    if !visitor.csrf_matches(&provided) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The first value of `name` in a urlencoded form.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Visitor>().cloned().ok_or_else(|| {
            tracing::error!("a route is not behind session::authenticate");
            ApiError(Error::internal())
        })
    }
}

/// A signed-in visitor.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub session: LiveSession,
    pub visitor: Visitor,
}

impl SignedIn {
    pub fn user(&self) -> &User {
        &self.session.user
    }

    /// The id other services know the user by.
    pub fn user_id(&self) -> String {
        self.session.user.id.to_string()
    }
}

/// Why a route that needs a user refused: the API answers 401 (or 403), a
/// page sends the visitor to sign in and back.
#[derive(Debug)]
pub enum AccessRefused {
    Api(Error),
    SignInFirst { back_to: String },
    Page(Error),
}

impl IntoResponse for AccessRefused {
    fn into_response(self) -> Response {
        match self {
            AccessRefused::Api(error) => ApiError(error).into_response(),
            AccessRefused::Page(error) => PageError(error).into_response(),
            AccessRefused::SignInFirst { back_to } => {
                let next = serde_urlencoded::to_string([("next", back_to)]).unwrap_or_default();
                Redirect::to(&format!("/login?{next}")).into_response()
            }
        }
    }
}

/// The request's full URI: inside a nested router (`/api/v1`), `parts.uri`
/// has lost its prefix.
fn full_uri(parts: &Parts) -> &http::Uri {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0)
}

fn is_api(parts: &Parts) -> bool {
    full_uri(parts).path().starts_with("/api/")
}

fn sign_in_required(parts: &Parts) -> AccessRefused {
    let uri = full_uri(parts);
    let path = uri.path();
    if is_api(parts) {
        return AccessRefused::Api(Error::Unauthorized(
            "Sign in to do this (POST /api/v1/auth/login).".to_owned(),
        ));
    }
    // Come back to the page after signing in; a form post comes back to the
    // page it was on, which is the same address without the action.
    let back_to = if parts.method == Method::GET {
        uri.path_and_query()
            .map_or(path.to_owned(), |pq| pq.as_str().to_owned())
    } else {
        path.rsplit_once('/')
            .map_or("/".to_owned(), |(page, _)| page.to_owned())
    };
    AccessRefused::SignInFirst { back_to }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AccessRefused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let visitor = parts.extensions.get::<Visitor>().cloned().ok_or_else(|| {
            tracing::error!("a route is not behind session::authenticate");
            AccessRefused::Api(Error::internal())
        })?;
        match visitor.session.clone() {
            Some(session) => Ok(SignedIn { session, visitor }),
            None => Err(sign_in_required(parts)),
        }
    }
}

/// A signed-in staff member.
#[derive(Clone, Debug)]
pub struct Staff(pub SignedIn);

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = AccessRefused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        if signed_in.user().is_staff {
            return Ok(Staff(signed_in));
        }
        tracing::warn!(user = %signed_in.user().id, path = full_uri(parts).path(), "non-staff refused from a staff route");
        let error = Error::Forbidden("This part of BookMySeat is for staff only.".to_owned());
        Err(if is_api(parts) {
            AccessRefused::Api(error)
        } else {
            AccessRefused::Page(error)
        })
    }
}

/// Middleware for a whole router of staff routes: nothing in it runs for
/// anyone else.
pub async fn require_staff(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Staff::from_request_parts(&mut parts, &()).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cookies_are_found_among_others() {
        let found = headers(&[("cookie", "theme=dark; bms_session=abc; x=1")]);
        assert_eq!(cookie(&found, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&found, CSRF_COOKIE), None);
    }

    #[test]
    fn cookies_carry_the_security_flags() {
        let plain = CookiePolicy {
            secure: false,
            trust_forwarded_for: false,
        };
        let value = plain.csrf_cookie("t");
        let value = value.to_str().unwrap();
        assert!(
            value.contains("HttpOnly") && value.contains("SameSite=Lax"),
            "{value}"
        );
        assert!(!value.contains("Secure"), "{value}");
        let secure = CookiePolicy {
            secure: true,
            ..plain
        };
        assert!(
            secure
                .clear_session_cookie()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }

    #[test]
    fn forwarded_for_is_trusted_only_when_configured() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        let direct = CookiePolicy {
            secure: false,
            trust_forwarded_for: false,
        };
        assert_eq!(direct.client_address(&forwarded, peer), peer);
        let behind_ingress = CookiePolicy {
            trust_forwarded_for: true,
            ..direct
        };
        // The entry our ingress appended, not what the client claimed.
        assert_eq!(
            behind_ingress.client_address(&forwarded, peer),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(behind_ingress.client_address(&HeaderMap::new(), peer), peer);
    }

    #[test]
    fn form_fields_are_read_from_urlencoded_bodies() {
        assert_eq!(
            form_field(b"seats=A1&csrf_token=abc%2Bd&seats=A2", CSRF_FIELD).as_deref(),
            Some("abc+d")
        );
        assert_eq!(form_field(b"seats=A1", CSRF_FIELD), None);
    }
}
