//! Paying for held seats: the "Checkout" button, the pages Stripe (or the
//! simulated provider) sends the buyer back to, and their JSON equivalents.
//!
//! - `POST /showtimes/{id}/checkout` (form: `hold_id`) asks payments for a
//!   checkout of the hold and answers a page that moves on to the
//!   provider's (a redirect would break the CSP's `form-action 'self'`). Payments
//!   takes the amount from catalog's prices and extends the hold to cover the
//!   checkout; a double click finds the same checkout.
//! - `GET /checkout/success?session_id=…` verifies through
//!   `payments.GetCheckout` (which asks Stripe when the webhook has not
//!   arrived yet). When the payment is known but the booking is not, the
//!   page first waits a moment for it (payments answers as soon as the
//!   booking is recorded), so it usually shows the booking straight away;
//!   otherwise it says "confirming…" and refreshes itself every second (a
//!   plain `<meta http-equiv=refresh>`: no script needed). A failed or expired payment says so and offers to pick seats
//!   again; a payment whose seats were lost says it is refunded.
//! - `GET /checkout/cancel?session_id=…` releases the hold and returns to
//!   the seat map.
//!
//! Every one of these needs the signed-in buyer; someone else's session is
//! "not found".

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, Error, ErrorBody, PageError};
use crate::local_time;
use crate::resources::{Booking, Checkout, CheckoutStatus};
use crate::session::SignedIn;
use crate::views::{self, Nav};

/// The checkout routes (pages and API), for [`crate::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/showtimes/{id}/checkout", post(start_checkout))
        .route("/checkout/success", get(success))
        .route("/checkout/cancel", get(cancel))
        .route("/api/v1/holds/{id}/checkout", post(api_create_checkout))
        .route("/api/v1/checkouts/{session}", get(api_get_checkout))
}

#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    hold_id: String,
}

/// `POST /showtimes/{id}/checkout`: off to the payment page.
async fn start_checkout(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
    form: Result<Form<CheckoutForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Path(showtime_id) = id.map_err(Error::from)?;
    let Form(form) = form.map_err(|rejection| {
        Error::BadRequest(format!(
            "The form could not be read: {}",
            rejection.body_text()
        ))
    })?;
    let checkout = state
        .payments
        .create_checkout(&form.hold_id, &user.user_id(), &user.user().email)
        .await;
    match checkout {
        Ok(checkout) => {
            tracing::info!(checkout = %checkout.id, hold = %checkout.hold_id, "buyer sent to checkout");
            // A page that moves on by itself, not a redirect: the seat page's
            // CSP lets forms submit only to the gateway, and browsers hold a
            // redirect's target to that too (the payment page is elsewhere).
            // The seat map's script skips this page (it asks the API).
            let page = CheckoutPage {
                nav: user.visitor.nav(),
                state: "paying",
                heading: "Taking you to the payment page…".to_owned(),
                message: "If nothing happens in a moment, use the button below.".to_owned(),
                total: checkout.total.to_string(),
                simulated: checkout.simulated,
                booking: None,
                seats_href: String::new(),
                pay_href: checkout.url.clone(),
            };
            Ok((
                StatusCode::OK,
                [(http::header::CACHE_CONTROL, "no-store")],
                views::render(&page)?,
            )
                .into_response())
        }
        // Back to the seat page, which says what happened and still shows
        // the hold (when it still exists).
        Err(error) => {
            // A code, not the message: the page words it, so nobody can craft
            // a link that makes our page say something else.
            let code = match &error {
                Error::Unavailable(_) => "unavailable",
                Error::Conflict(_) | Error::NotFound(_) => "ended",
                Error::BadRequest(_) | Error::Forbidden(_) => "invalid",
                _ => return Err(error.into()),
            };
            let query = serde_urlencoded::to_string([
                ("hold", form.hold_id.as_str()),
                ("checkout_error", code),
            ])
            .unwrap_or_default();
            Ok(
                Redirect::to(&format!("/showtimes/{showtime_id}?{query}#your-hold"))
                    .into_response(),
            )
        }
    }
}

/// How long the success page waits for the booking of a paid checkout
/// before showing "confirming…": long enough for the common case, short
/// enough that a slow pipeline still gets the page quickly.
const SUCCESS_PAGE_WAIT: Duration = Duration::from_millis(1_500);

/// The most `wait_ms` the checkout API accepts.
const MAX_API_WAIT_MS: u32 = 5_000;

#[derive(Debug, Default, Deserialize)]
pub struct SessionQuery {
    session_id: Option<String>,
}

fn session_of(query: Result<Query<SessionQuery>, QueryRejection>) -> Result<String, Error> {
    query
        .ok()
        .and_then(|q| q.0.session_id)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::BadRequest("The address lacks its checkout session id.".to_owned()))
}

/// What the checkout result page shows.
#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage {
    pub nav: Nav,
    /// `paying` (on the way to the provider), `confirming`, `confirmed`,
    /// `failed`, `expired`, `refunded`, `open`.
    pub state: &'static str,
    pub heading: String,
    pub message: String,
    pub total: String,
    pub simulated: bool,
    pub booking: Option<BookingView>,
    /// Where to pick seats again (the showtime's page).
    pub seats_href: String,
    /// The provider's page, for a checkout still open or being started.
    pub pay_href: String,
}

/// A confirmed booking on the success page.
#[derive(Clone, Debug)]
pub struct BookingView {
    pub reference: String,
    pub film_title: String,
    pub cinema: String,
    pub when: String,
    pub seats: String,
    pub amount: String,
}

impl BookingView {
    fn new(booking: &Booking) -> Self {
        let local = local_time::in_zone(
            booking.starts_at,
            local_time::zone(&booking.cinema_time_zone),
        );
        BookingView {
            reference: booking.reference.clone(),
            film_title: booking.film_title.clone(),
            cinema: format!("{} · {}", booking.cinema_name, booking.screen_name),
            when: local_time::day_and_time(&local),
            seats: booking
                .seats
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            amount: crate::money::Money::new(booking.amount_minor, booking.currency.clone())
                .to_string(),
        }
    }
}

/// Where the buyer can pick seats again: the hold's showtime, or the home
/// page when the hold cannot be read.
async fn seats_href(state: &AppState, checkout: &Checkout, user: &SignedIn) -> String {
    match state
        .seating
        .hold_of(&checkout.hold_id, &user.user_id())
        .await
    {
        Ok(hold) => format!("/showtimes/{}", hold.showtime_id),
        Err(_) => "/".to_owned(),
    }
}

/// `GET /checkout/success?session_id=…`.
async fn success(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let session = session_of(query)?;
    let checkout = state
        .payments
        .checkout(&session, &user.user_id(), SUCCESS_PAGE_WAIT)
        .await?;
    let mut page = CheckoutPage {
        nav: user.visitor.nav(),
        state: "confirming",
        heading: String::new(),
        message: String::new(),
        total: checkout.total.to_string(),
        simulated: checkout.simulated,
        booking: None,
        seats_href: String::new(),
        pay_href: String::new(),
    };
    match (checkout.status, &checkout.booking_reference) {
        (CheckoutStatus::Paid, Some(reference)) => {
            let booking = state.seating.booking(reference, &user.user_id()).await?;
            page.state = "confirmed";
            page.heading = "You're booked!".to_owned();
            page.message = "Your tickets are confirmed; a confirmation email is on its way. \
                            Show the reference at the cinema."
                .to_owned();
            page.booking = Some(BookingView::new(&booking));
        }
        (CheckoutStatus::Paid | CheckoutStatus::Processing, _) => {
            page.state = "confirming";
            page.heading = "Confirming your booking…".to_owned();
            page.message = if checkout.status == CheckoutStatus::Processing {
                "Your payment is being processed by your bank. This page updates itself; \
                 we will also email you once it is confirmed."
                    .to_owned()
            } else {
                "Your payment went through. We are confirming your seats; this page updates \
                 itself in a moment."
                    .to_owned()
            };
        }
        (CheckoutStatus::Refunded, _) => {
            page.state = "refunded";
            page.heading = "Your seats were lost, so we refunded you".to_owned();
            page.message = format!(
                "The hold on your seats ran out before the payment arrived and someone else \
                 took them. {} is on its way back to you; you will get an email.",
                checkout.total
            );
            page.seats_href = seats_href(&state, &checkout, &user).await;
        }
        (CheckoutStatus::Failed, _) => {
            page.state = "failed";
            page.heading = "Your payment did not go through".to_owned();
            page.message = "Nothing was charged and your seats were released. You can pick \
                            seats and try again."
                .to_owned();
            page.seats_href = seats_href(&state, &checkout, &user).await;
        }
        (CheckoutStatus::Expired, _) => {
            page.state = "expired";
            page.heading = "The payment time ran out".to_owned();
            page.message = "Nothing was charged and your seats were released. You can pick \
                            seats and try again."
                .to_owned();
            page.seats_href = seats_href(&state, &checkout, &user).await;
        }
        (CheckoutStatus::Open, _) => {
            page.state = "open";
            page.heading = "Waiting for your payment".to_owned();
            page.message = "Your payment has not arrived yet. If you left the payment page, \
                            go back to it to pay."
                .to_owned();
            page.pay_href = checkout.url.clone();
        }
    }
    views::respond(StatusCode::OK, &page)
}

/// `GET /checkout/cancel?session_id=…`: the buyer left the payment page.
async fn cancel(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let session = session_of(query)?;
    let checkout = state
        .payments
        .checkout(&session, &user.user_id(), Duration::ZERO)
        .await?;
    let back = seats_href(&state, &checkout, &user).await;
    // An ended checkout's hold is released by seating when the payments event
    // reaches it; releasing here too (idempotent) means the map the buyer
    // returns to already shows the seats free. Already released or expired is
    // fine: the buyer wants the seats gone.
    if matches!(
        checkout.status,
        CheckoutStatus::Open | CheckoutStatus::Expired | CheckoutStatus::Failed
    ) && let Err(error) = state
        .seating
        .release(&checkout.hold_id, &user.user_id())
        .await
    {
        tracing::info!(%error, hold = %checkout.hold_id, "hold not released on cancel");
    }
    let to = if back == "/" {
        back
    } else {
        format!("{back}?cancelled=1")
    };
    Ok(Redirect::to(&to).into_response())
}

/// Starts paying for one of the caller's holds: answers the checkout, whose
/// `url` is where to send the buyer.
#[utoipa::path(post, path = "/api/v1/holds/{id}/checkout", tag = "checkout",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid, description = "The hold's UUID")),
    responses(
        (status = 201, description = "The checkout (the same one for a repeated call)", body = Checkout),
        (status = 400, description = "Not a hold id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token", body = ErrorBody),
        (status = 404, description = "No such hold of yours", body = ErrorBody),
        (status = 409, description = "The hold has ended", body = ErrorBody),
        (status = 503, description = "The payment provider is not answering; retry", body = ErrorBody),
    ))]
pub(crate) async fn api_create_checkout(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(hold_id) = id.map_err(Error::from)?;
    let checkout = state
        .payments
        .create_checkout(&hold_id, &user.user_id(), &user.user().email)
        .await?;
    Ok((StatusCode::CREATED, Json(checkout)).into_response())
}

/// `?wait_ms=` of the checkout API.
#[derive(Debug, Default, Deserialize)]
pub struct WaitQuery {
    wait_ms: Option<u32>,
}

/// One of the caller's checkouts, verified with the provider when payments
/// does not yet know it is paid. With `wait_ms`, a paid checkout whose
/// booking is not yet made is answered as soon as it is (or when the wait is
/// over), so a client need not poll.
#[utoipa::path(get, path = "/api/v1/checkouts/{session}", tag = "checkout",
    security(("session" = [])),
    params(("session" = String, Path, pattern = "^[A-Za-z0-9_-]{1,255}$",
            description = "The provider's checkout session id"),
           ("wait_ms" = Option<u32>, Query, minimum = 0, maximum = 5000,
            description = "Wait up to this long (ms) for the booking of a paid checkout \
                           (the gateway waits at most half its upstream timeout); 0 or \
                           absent answers at once")),
    responses(
        (status = 200, description = "The checkout", body = Checkout),
        (status = 400, description = "Not a session id, or wait_ms over 5000", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such checkout of yours", body = ErrorBody),
        (status = 503, description = "Payments is not answering; try again", body = ErrorBody),
    ))]
pub(crate) async fn api_get_checkout(
    State(state): State<Arc<AppState>>,
    user: SignedIn,
    session: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<Checkout>, ApiError> {
    let Path(session) = session.map_err(Error::from)?;
    let Query(wait) = wait.map_err(Error::from)?;
    let wait_ms = wait.wait_ms.unwrap_or(0);
    if wait_ms > MAX_API_WAIT_MS {
        return Err(Error::BadRequest(format!(
            "wait_ms is at most {MAX_API_WAIT_MS} (milliseconds)"
        ))
        .into());
    }
    let wait = Duration::from_millis(wait_ms.into());
    Ok(Json(
        state
            .payments
            .checkout(&session, &user.user_id(), wait)
            .await?,
    ))
}
