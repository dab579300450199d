//! **Temporary, development-only** user identity, until accounts exist.
//!
//! Holding seats needs to know who is holding them, and BookMySeat has no
//! accounts yet (issue #4 brings registration, login and sessions, and
//! replaces this module entirely). Until then the caller says who they are:
//!
//! - the `X-Dev-User` request header (scripts, tests, `curl`), or
//! - the `dev_user` cookie (browsers).
//!
//! A request with neither gets a fresh random id (a UUID) and a `dev_user`
//! cookie carrying it, so a browser keeps one identity across pages and can
//! release the seats it held. Nothing here is authentication: anyone can claim
//! any id. That is acceptable only while there is nothing to protect (no
//! payments, no personal data), which is why the README marks it as a
//! development stand-in.
//!
//! [`identify`] is a middleware on the routes that need a user (seat page,
//! holds, live seat events); handlers take the [`DevUser`] it leaves in the
//! request's extensions.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};

use crate::error::{ApiError, Error, PageError};

/// The header a script names its user with.
pub const HEADER: &str = "x-dev-user";
/// The cookie a browser carries its user in.
pub const COOKIE: &str = "dev_user";
/// Longest user id accepted.
const MAX_LEN: usize = 64;
/// How long a browser keeps its development identity: a year.
const COOKIE_MAX_AGE_SECS: u32 = 365 * 24 * 60 * 60;

/// Who is asking, as far as the development stand-in can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevUser(String);

impl DevUser {
    /// A user id worth passing on: 1–64 characters of letters, digits and
    /// `-_.@`, so it can be logged and put in a cookie safely.
    pub fn parse(id: &str) -> Option<DevUser> {
        let id = id.trim();
        let ok = !id.is_empty()
            && id.len() <= MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        ok.then(|| DevUser(id.to_owned()))
    }

    /// A new random identity for a first-time visitor.
    pub fn fresh() -> DevUser {
        DevUser(uuid::Uuid::new_v4().to_string())
    }

    pub fn id(&self) -> &str {
        &self.0
    }

    /// The `Set-Cookie` value that gives a browser this identity.
    fn cookie(&self) -> HeaderValue {
        // The id is restricted to cookie-safe characters by `parse`/`fresh`.
        HeaderValue::from_str(&format!(
            "{COOKIE}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax",
            self.0
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("dev_user=; Path=/; Max-Age=0"))
    }
}

/// What the request says about its user: `Ok(None)` when nothing, an error
/// when the header is present but unusable (a script should hear about its
/// mistake; a bad cookie is simply replaced).
fn claimed_user(headers: &HeaderMap) -> Result<Option<DevUser>, Error> {
    if let Some(value) = headers.get(HEADER) {
        return value
            .to_str()
            .ok()
            .and_then(DevUser::parse)
            .map(Some)
            .ok_or_else(|| {
                Error::BadRequest(
                    "X-Dev-User must be 1 to 64 letters, digits or -_.@ characters.".to_owned(),
                )
            });
    }
    Ok(headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| DevUser::parse(value)))
}

/// Middleware: puts the caller's [`DevUser`] into the request's extensions,
/// minting one (and its cookie) for a caller who has none.
pub async fn identify(mut request: Request, next: Next) -> Response {
    let claimed = match claimed_user(request.headers()) {
        Ok(claimed) => claimed,
        Err(error) if request.uri().path().starts_with("/api/") => {
            return ApiError(error).into_response();
        }
        Err(error) => return PageError(error).into_response(),
    };
    match claimed {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => {
            let user = DevUser::fresh();
            let cookie = user.cookie();
            request.extensions_mut().insert(user);
            let mut response = next.run(request).await;
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DevUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<DevUser>().cloned().ok_or_else(|| {
            tracing::error!("a route that needs a user is not behind dev_identity::identify");
            ApiError(Error::internal())
        })
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
    fn the_header_wins_over_the_cookie() {
        let found = claimed_user(&headers(&[
            ("x-dev-user", "alice"),
            ("cookie", "dev_user=bob"),
        ]));
        assert_eq!(found.unwrap(), Some(DevUser("alice".to_owned())));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let found = claimed_user(&headers(&[("cookie", "theme=dark; dev_user=bob; x=1")]));
        assert_eq!(found.unwrap(), Some(DevUser("bob".to_owned())));
        assert_eq!(claimed_user(&headers(&[])).unwrap(), None);
    }

    #[test]
    fn unusable_ids_are_refused_or_replaced() {
        assert!(claimed_user(&headers(&[("x-dev-user", "a b")])).is_err());
        assert!(DevUser::parse(&"x".repeat(65)).is_none());
        assert!(DevUser::parse("").is_none());
        // A cookie nobody could have been given is treated as no cookie.
        let found = claimed_user(&headers(&[("cookie", "dev_user=<script>")]));
        assert_eq!(found.unwrap(), None);
    }

    #[test]
    fn fresh_identities_make_valid_cookies() {
        let user = DevUser::fresh();
        assert!(DevUser::parse(user.id()).is_some());
        let cookie = user.cookie();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with(&format!("dev_user={}", user.id())));
        assert!(cookie.contains("HttpOnly"));
        assert!(cookie.contains("SameSite=Lax"));
    }
}
