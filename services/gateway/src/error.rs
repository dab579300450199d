//! What can go wrong while answering a request, and how it reaches people.
//!
//! [`Error`] says what went wrong in the caller's terms; every failure a
//! handler meets (a bad query string, a catalog `tonic::Status`) becomes one
//! here, in one place, so the mapping from gRPC codes to HTTP statuses cannot
//! drift between pages and API. Two thin wrappers then decide the shape of the
//! answer: [`ApiError`] writes `{"error":{"code":…,"message":…}}` for the JSON
//! API, and [`PageError`] renders a friendly HTML page. Handlers return one or
//! the other and use `?` on anything that yields an [`Error`].

use axum::Json;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

/// A failure to answer a request, with a message fit for the person asking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (a malformed id, an unknown filter).
    #[error("{0}")]
    BadRequest(String),
    /// The caller must sign in first (or their credentials were wrong).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state (a showtime that has
    /// started, a hold that has expired).
    #[error("{0}")]
    Conflict(String),
    /// Some of the seats asked for are held or sold already; `seats` names
    /// them so a page can mark them and the buyer can pick others.
    #[error("{message}")]
    SeatsUnavailable { message: String, seats: Vec<String> },
    /// Too many attempts (sign-in, password reset); `retry_after_secs` says
    /// when the next one will be considered.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A service we depend on is down or slow; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault. The message is generic; details go to the log only.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The generic answer for failures we cannot explain to the caller.
    pub fn internal() -> Self {
        Error::Internal("Something went wrong on our side. Please try again later.".to_owned())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::SeatsUnavailable { .. } => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code in JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::SeatsUnavailable { .. } => "seats_unavailable",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::BadRequest(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::TooManyRequests { message: m, .. }
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Unavailable(m)
            | Error::Internal(m)
            | Error::SeatsUnavailable { message: m, .. } => m,
        }
    }

    /// A short heading for the HTML error page.
    fn title(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "That request didn't make sense",
            Error::Unauthorized(_) => "Please sign in",
            Error::Forbidden(_) => "Not allowed",
            Error::TooManyRequests { .. } => "Too many attempts",
            Error::NotFound(_) => "We couldn't find that",
            Error::Conflict(_) => "That clashed with something",
            Error::SeatsUnavailable { .. } => "Those seats were just taken",
            Error::Unavailable(_) => "We're having trouble right now",
            Error::Internal(_) => "Something went wrong",
        }
    }

    /// Whether trying again later is the advice.
    fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// The `Retry-After` an answer carries, if any.
    fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Error::Unavailable(_) => Some(HeaderValue::from_static("5")),
            Error::TooManyRequests {
                retry_after_secs, ..
            } => Some(HeaderValue::from(*retry_after_secs)),
            _ => None,
        }
    }

    /// Logs what the caller will not see.
    fn log(&self) {
        match self {
            Error::Internal(message) => tracing::error!(%message, "request failed"),
            Error::Unavailable(message) => tracing::warn!(%message, "dependency unavailable"),
            _ => {}
        }
    }
}

impl Error {
    /// The answer for a hold that lost some of its seats to someone else.
    pub fn seats_unavailable(mut seats: Vec<String>) -> Self {
        seats.dedup();
        let message = match seats.as_slice() {
            [one] => format!("Seat {one} is no longer available; please pick another."),
            many => format!(
                "Seats {} are no longer available; please pick others.",
                many.join(", ")
            ),
        };
        Error::SeatsUnavailable { message, seats }
    }
}

/// gRPC codes from other services become HTTP meanings here, once.
impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => Error::NotFound(message),
            // Seating says which seats were taken in the details of its
            // FAILED_PRECONDITION; anything else that fails a precondition
            // (a showtime that has started) is a plain conflict.
            Code::FailedPrecondition if unavailable_seats(&status).is_some() => {
                Error::seats_unavailable(unavailable_seats(&status).unwrap_or_default())
            }
            Code::InvalidArgument | Code::OutOfRange => Error::BadRequest(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                Error::Conflict(message)
            }
            Code::PermissionDenied | Code::Unauthenticated => Error::Forbidden(message),
            // Cancelled is what tonic reports when our own request timeout fires.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(code = ?status.code(), %message, "upstream call failed");
                Error::Unavailable(
                    "A part of BookMySeat is not answering right now. Please try again in a \
                     moment."
                        .to_owned(),
                )
            }
            code => {
                tracing::error!(?code, %message, "upstream call failed");
                Error::internal()
            }
        }
    }
}

/// The seats named by a `bookmyseat.seating.v1.SeatsUnavailable` in the
/// status details, when there are any.
fn unavailable_seats(status: &tonic::Status) -> Option<Vec<String>> {
    use prost::Message as _;
    let details = proto::seating::v1::SeatsUnavailable::decode(status.details()).ok()?;
    (!details.seats.is_empty()).then_some(details.seats)
}

/// A query string that does not even parse (say, a repeated parameter).
impl From<axum::extract::rejection::QueryRejection> for Error {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Error::BadRequest(format!(
            "The query string is malformed: {}",
            rejection.body_text()
        ))
    }
}

/// A path segment that does not decode (invalid percent-encoding or UTF-8).
impl From<axum::extract::rejection::PathRejection> for Error {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        Error::BadRequest(format!(
            "The address is malformed: {}",
            rejection.body_text()
        ))
    }
}

/// The JSON body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `seats_unavailable`, `too_many_requests`, `unavailable`,
    /// `internal`.
    #[schema(example = "not_found")]
    pub code: String,
    #[schema(example = "No film called \"no-such-film\".")]
    pub message: String,
    /// With `seats_unavailable` only: the seats someone else holds or has
    /// bought.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["A1", "A2"]))]
    pub seats: Option<Vec<String>>,
}

/// An [`Error`] answered as JSON (`/api/...`).
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        ApiError(status.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        error.log();
        let body = ErrorBody {
            error: ErrorDetail {
                code: error.code().to_owned(),
                message: error.message().to_owned(),
                seats: match &error {
                    Error::SeatsUnavailable { seats, .. } => Some(seats.clone()),
                    _ => None,
                },
            },
        };
        let mut response = (error.status(), Json(body)).into_response();
        if let Some(retry_after) = error.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// An [`Error`] answered as an HTML page.
#[derive(Debug)]
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(error: Error) -> Self {
        PageError(error)
    }
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        PageError(status.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        use askama::Template as _;

        let error = self.0;
        error.log();
        let status = error.status();
        let page = crate::views::ErrorPage {
            status: status.as_u16(),
            title: error.title(),
            message: error.message(),
            try_again: error.is_transient(),
            nav: Default::default(),
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(render_error) => {
                tracing::error!(%render_error, "cannot render the error page");
                (status, error.message().to_owned()).into_response()
            }
        };
        if let Some(retry_after) = error.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        let cases = [
            (tonic::Code::NotFound, StatusCode::NOT_FOUND),
            (tonic::Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (tonic::Code::FailedPrecondition, StatusCode::CONFLICT),
            (tonic::Code::PermissionDenied, StatusCode::FORBIDDEN),
            (tonic::Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (
                tonic::Code::DeadlineExceeded,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (tonic::Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
            (tonic::Code::Unknown, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (code, expected) in cases {
            let error = Error::from(tonic::Status::new(code, "details"));
            assert_eq!(error.status(), expected, "{code:?}");
        }
    }

    #[test]
    fn taken_seats_from_seating_become_a_409_naming_them() {
        use prost::Message as _;
        let details = proto::seating::v1::SeatsUnavailable {
            seats: vec!["A1".to_owned(), "B2".to_owned()],
        };
        let status = tonic::Status::with_details(
            tonic::Code::FailedPrecondition,
            "seats unavailable",
            details.encode_to_vec().into(),
        );
        let error = Error::from(status);
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert_eq!(error.code(), "seats_unavailable");
        let Error::SeatsUnavailable { seats, message } = &error else {
            panic!("not a seats-unavailable error: {error:?}");
        };
        assert_eq!(seats, &["A1", "B2"]);
        assert!(message.contains("A1, B2"), "{message}");

        // A failed precondition without seats (the showtime has started) is
        // a plain conflict.
        let started = Error::from(tonic::Status::failed_precondition("showtime has started"));
        assert_eq!(started.code(), "conflict");
        assert_eq!(started.status(), StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn seats_unavailable_json_lists_the_seats() {
        let response = ApiError(Error::seats_unavailable(vec!["C3".to_owned()])).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"]["code"], "seats_unavailable");
        assert_eq!(json["error"]["seats"], serde_json::json!(["C3"]));
        let plain = ApiError(Error::NotFound("x".to_owned())).into_response();
        let body = axum::body::to_bytes(plain.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(json["error"].get("seats").is_none(), "{json}");
    }

    #[test]
    fn internal_details_are_not_shown_to_callers() {
        let error = Error::from(tonic::Status::internal("relation \"films\" does not exist"));
        assert!(!error.message().contains("relation"));
    }
}
