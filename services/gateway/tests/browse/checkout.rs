//! Paying through the gateway against real payments, seating and catalog:
//! the simulated provider end to end into a booking, cancelling, someone
//! else's session, a double submit, and Stripe down at checkout.

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Gateway, Session, classic_showtime, header};

/// Holds `seats` for `user` and starts its checkout through the seat page's
/// form: the hold id and where the form sent the buyer.
pub(crate) async fn hold_and_checkout(
    gateway: &Gateway,
    showtime: &str,
    session: &Session,
    user: &str,
    seats: &[&str],
) -> (String, reqwest::Response) {
    let (status, hold) = gateway.hold(showtime, user, seats).await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().expect("hold id").to_owned();
    let response = gateway
        .http
        .post(format!("{}/showtimes/{showtime}/checkout", gateway.url))
        .header("cookie", &session.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "hold_id={hold_id}&csrf_token={}",
            session.csrf_token
        ))
        .send()
        .await
        .expect("POST checkout");
    (hold_id, response)
}

/// Where the checkout form's answer sends the buyer: a page of the
/// gateway's (200) that refreshes to the provider's page at once.
pub(crate) async fn payment_page(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("data-checkout-state=\"paying\""), "{html}");
    let marker = "data-pay-url href=\"";
    let start = html.find(marker).expect("a link to the payment page") + marker.len();
    let escaped = &html[start..start + html[start..].find('"').expect("the link's end")];
    assert!(
        html.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0;url={escaped}\">"
        )),
        "the page moves on by itself: {html}"
    );
    escaped.replace("&amp;", "&")
}

pub(crate) fn session_id_of(url: &str) -> String {
    url.split("session_id=")
        .nth(1)
        .map(|rest| rest.split('&').next().unwrap_or(rest).to_owned())
        .unwrap_or_else(|| {
            url.rsplit('/')
                .next()
                .expect("a session id at the end")
                .to_owned()
        })
}

#[tokio::test]
async fn paying_with_the_simulated_provider_ends_in_a_booking_on_the_success_page() {
    let gateway = Gateway::with_payments().await;
    let (showtime, film) = classic_showtime(&gateway).await;
    let buyer = gateway.session_of("yara").await;
    let (_, response) = hold_and_checkout(&gateway, &showtime, &buyer, "yara", &["E5", "E6"]).await;
    let pay_page = payment_page(response).await;
    assert!(pay_page.contains("/simulated-checkout/"), "{pay_page}");

    // The provider's page says plainly that it is a test payment.
    let page = gateway
        .http
        .get(&pay_page)
        .send()
        .await
        .expect("the simulated page")
        .text()
        .await
        .expect("html");
    assert!(page.to_lowercase().contains("test payment"), "{page}");
    let paid = gateway
        .http
        .post(format!("{pay_page}/pay"))
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), 303);
    let success = header(&paid, "location");
    assert!(
        success.starts_with(&format!("{}/checkout/success?session_id=", gateway.url)),
        "{success}"
    );
    let session_id = session_id_of(&success);

    // Asked to wait, the API answers with the booking in one call, as soon
    // as payments has it; a wait over the limit is refused.
    let waited: Value = gateway
        .with_session(
            Method::GET,
            &format!("/api/v1/checkouts/{session_id}?wait_ms=2000"),
            &buyer,
        )
        .send()
        .await
        .expect("GET checkout, waiting")
        .json()
        .await
        .expect("JSON");
    assert!(waited["booking_reference"].is_string(), "{waited}");
    for bad in ["wait_ms=5001", "wait_ms=soon", "wait_ms=-1"] {
        let refused = gateway
            .with_session(
                Method::GET,
                &format!("/api/v1/checkouts/{session_id}?{bad}"),
                &buyer,
            )
            .send()
            .await
            .expect("GET checkout");
        assert_eq!(refused.status(), 400, "{bad}");
    }

    // The success page confirms (perhaps after a "confirming" moment).
    let path = success.trim_start_matches(&gateway.url).to_owned();
    test_support::eventually("the success page shows the booking", || async {
        let (status, html) = gateway.page_as(&path, &buyer).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("data-checkout-state=\"confirmed\"")
                || html.contains("data-checkout-state=\"confirming\""),
            "{html}"
        );
        html.contains("data-booking-reference")
    })
    .await;
    let (_, html) = gateway.page_as(&path, &buyer).await;
    assert!(html.contains("E5, E6"), "the seats are shown");
    assert!(html.contains(film["title"].as_str().expect("title")));
    assert!(
        html.contains("no money moved"),
        "the simulated payment is named"
    );

    // The API agrees, and the booking is on the profile.
    let checkout: Value = gateway
        .with_session(
            Method::GET,
            &format!("/api/v1/checkouts/{session_id}"),
            &buyer,
        )
        .send()
        .await
        .expect("GET checkout")
        .json()
        .await
        .expect("JSON");
    assert_eq!(checkout["status"], "paid");
    assert_eq!(checkout["simulated"], true);
    let reference = checkout["booking_reference"]
        .as_str()
        .expect("a reference")
        .to_owned();
    let (_, profile) = gateway.page_as("/profile", &buyer).await;
    assert!(profile.contains(&reference));

    // The seats are sold for everyone else.
    let map = gateway.seat_map(&showtime, "zane").await;
    let e5 = map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "E5")
        .expect("E5");
    assert_eq!(e5["state"], "booked");
}

#[tokio::test]
async fn cancelling_at_the_payment_page_releases_the_seats_and_returns_to_the_map() {
    let gateway = Gateway::with_payments().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let buyer = gateway.session_of("abel").await;
    let (_, response) = hold_and_checkout(&gateway, &showtime, &buyer, "abel", &["F1"]).await;
    let pay_page = payment_page(response).await;
    let cancelled = gateway
        .http
        .post(format!("{pay_page}/cancel"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), 303);
    let back = header(&cancelled, "location");
    assert!(back.contains("/checkout/cancel?session_id="), "{back}");
    let path = back.trim_start_matches(&gateway.url).to_owned();
    let response = gateway
        .with_session(Method::GET, &path, &buyer)
        .send()
        .await
        .expect("GET cancel");
    assert_eq!(response.status(), 303);
    let seat_page = header(&response, "location");
    assert_eq!(seat_page, format!("/showtimes/{showtime}?cancelled=1"));
    let (_, html) = gateway.page_as(&seat_page, &buyer).await;
    assert!(html.contains("Checkout cancelled"));
    let map = gateway.seat_map(&showtime, "abel").await;
    let f1 = map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "F1")
        .expect("F1");
    assert_eq!(f1["state"], "available");
}

#[tokio::test]
async fn a_checkout_is_only_ever_its_buyers() {
    let gateway = Gateway::with_payments().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let buyer = gateway.session_of("bea").await;
    let other = gateway.session_of("cyd").await;
    let (hold_id, response) = hold_and_checkout(&gateway, &showtime, &buyer, "bea", &["G2"]).await;
    let session_id = session_id_of(&payment_page(response).await);

    // Someone else: not found on the page and in the API.
    let (status, _) = gateway
        .page_as(
            &format!("/checkout/success?session_id={session_id}"),
            &other,
        )
        .await;
    assert_eq!(status, 404);
    let api = gateway
        .with_session(
            Method::GET,
            &format!("/api/v1/checkouts/{session_id}"),
            &other,
        )
        .send()
        .await
        .expect("GET checkout");
    assert_eq!(api.status(), 404);
    // Nobody signed in: sent to sign in.
    let anonymous = gateway
        .get(&format!("/checkout/success?session_id={session_id}"))
        .await;
    assert_eq!(anonymous.status(), 303);
    // Another user cannot start a checkout of this hold.
    let stolen = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/holds/{hold_id}/checkout"),
            &other,
        )
        .send()
        .await
        .expect("POST checkout");
    assert!(
        [403, 404].contains(&stolen.status().as_u16()),
        "{}",
        stolen.status()
    );

    // The buyer's double submit finds the same checkout.
    let first: Value = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/holds/{hold_id}/checkout"),
            &buyer,
        )
        .send()
        .await
        .expect("POST checkout")
        .json()
        .await
        .expect("JSON");
    let second: Value = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/holds/{hold_id}/checkout"),
            &buyer,
        )
        .send()
        .await
        .expect("POST checkout")
        .json()
        .await
        .expect("JSON");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["session_id"], session_id);
    assert_eq!(first["status"], "open");
    // The amount is catalog's price for G2, whatever the browser thinks.
    assert!(first["total"]["amount_minor"].as_i64().expect("amount") > 0);

    // A malformed session id is a bad request.
    let (status, _) = gateway
        .page_as("/checkout/success?session_id=%3Cscript%3E", &buyer)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn stripe_down_at_checkout_keeps_the_seats_and_says_to_try_again() {
    let stripe = test_support::stripe::FakeStripe::start().await;
    let gateway = Gateway::with_payments_settings(test_support::payments::stripe_settings(
        &stripe.url,
        "whsec_test",
    ))
    .await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let buyer = gateway.session_of("dora").await;
    stripe.fail_next(10);
    let (hold_id, response) = hold_and_checkout(&gateway, &showtime, &buyer, "dora", &["H3"]).await;
    assert_eq!(response.status(), 303);
    let back = header(&response, "location");
    assert!(back.contains("checkout_error=unavailable"), "{back}");
    let (_, html) = gateway.page_as(&back, &buyer).await;
    assert!(html.contains("not answering"), "the buyer is told");
    // The hold survived.
    let hold: Value = gateway
        .with_session(Method::GET, &format!("/api/v1/holds/{hold_id}"), &buyer)
        .send()
        .await
        .expect("GET hold")
        .json()
        .await
        .expect("JSON");
    assert_eq!(hold["status"], "active");

    // Stripe back: the retry goes to Stripe's page, one session.
    stripe.fail_next(0);
    let retry = gateway
        .with_session(
            Method::POST,
            &format!("/api/v1/holds/{hold_id}/checkout"),
            &buyer,
        )
        .send()
        .await
        .expect("POST checkout");
    assert_eq!(retry.status(), 201);
    let checkout: Value = retry.json().await.expect("JSON");
    assert_eq!(checkout["simulated"], false);
    assert_eq!(stripe.sessions().len(), 1);
}
