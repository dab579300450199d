//! Paying through Stripe Checkout, across the system: payments talks to the
//! Stripe-shaped local server (`test_support::stripe`), which decides what
//! Stripe would, and the test posts the webhooks Stripe would send, signed
//! as Stripe signs them. Emails go to a real SMTP server.

use std::time::Duration;

use test_support::smtp::SmtpSink;
use test_support::stripe::{self, FakeStripe, WebhookSigner};

use super::{Environment, Session, confirmed_reference, count, get_json, recipient};

const WEBHOOK_SECRET: &str = "whsec_e2e";

/// A system whose payments takes real (Stripe-shaped) payments.
async fn start(stripe: &FakeStripe, smtp: &SmtpSink) -> (Environment, super::System) {
    let mut env = Environment::new().await;
    env.set("STRIPE_SECRET_KEY", "sk_test_e2e");
    env.set("STRIPE_API_BASE", stripe.url.clone());
    env.set("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET);
    env.set("SMTP_URL", smtp.url());
    env.migrate_and_seed().await;
    let system = env.start_services().await;
    (env, system)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Holds `seats` of `showtime` for `buyer` and starts a checkout; returns
/// (hold id, Stripe session id).
async fn hold_and_check_out(
    env: &Environment,
    http: &reqwest::Client,
    buyer: &Session,
    showtime: &str,
    seats: &[&str],
) -> (String, String) {
    let hold = buyer
        .on(http.post(env.url(&format!("/api/v1/showtimes/{showtime}/holds"))))
        .json(&serde_json::json!({ "seats": seats }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let hold_id = hold["id"].as_str().expect("a hold id").to_owned();
    let checkout = buyer
        .on(http.post(env.url(&format!("/api/v1/holds/{hold_id}/checkout"))))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(checkout.status(), 201);
    let checkout: serde_json::Value = checkout.json().await.expect("a checkout");
    assert_eq!(checkout["simulated"], false, "a Stripe Checkout session");
    let session = checkout["session_id"]
        .as_str()
        .expect("a session")
        .to_owned();
    assert!(
        checkout["url"]
            .as_str()
            .unwrap_or_default()
            .contains(&session),
        "the buyer is sent to Stripe's page for the session: {checkout}"
    );
    (hold_id, session)
}

/// Posts a signed Stripe event about `session` to payments' webhook.
async fn webhook(env: &Environment, kind: &str, session: &serde_json::Value) -> (u16, String) {
    let payload = stripe::event(kind, session);
    let signature = WebhookSigner::new(WEBHOOK_SECRET).header(&payload);
    stripe::deliver(&webhook_url(env), Some(&signature), &payload).await
}

fn webhook_url(env: &Environment) -> String {
    format!("{}/webhooks/stripe", env.var("PAYMENTS_PUBLIC_URL"))
}

/// The buyer pays on Stripe's page and comes back to the success page
/// before Stripe's webhook arrives: the page confirms the booking at once
/// (payments asks Stripe directly). The webhook then arrives three times,
/// and a forged one once: still one payment, one booking, one email, and
/// the forgery is refused.
#[tokio::test]
async fn the_success_page_before_the_webhook_and_a_replayed_webhook_make_one_booking() {
    let stripe = FakeStripe::start().await;
    let smtp = SmtpSink::start().await;
    let (env, system) = start(&stripe, &smtp).await;
    let http = client();
    let buyer = env.sign_up(&http, "greta@example.com", "Greta").await;
    let showtime = env.first_showtime(&http, "metropolis").await;
    let (_, session_id) = hold_and_check_out(&env, &http, &buyer, &showtime, &["C3", "C4"]).await;

    // Paid at Stripe; no webhook yet.
    let session = stripe.pay(&session_id);
    let success = env.url(&format!("/checkout/success?session_id={session_id}"));
    // The success page confirms the booking before any webhook.
    let reference = confirmed_reference(&http, &buyer, &success).await;

    // Stripe's webhook, delivered three times (Stripe retries), and a forged
    // copy signed with the wrong secret.
    for _ in 0..3 {
        let (status, body) = webhook(&env, "checkout.session.completed", &session).await;
        assert_eq!(status, 200, "{body}");
    }
    let payload = stripe::event("checkout.session.completed", &session);
    let forged = WebhookSigner::new("whsec_someone_else").header(&payload);
    let (status, _) = stripe::deliver(&webhook_url(&env), Some(&forged), &payload).await;
    assert_eq!(status, 400, "a forged webhook is refused");

    test_support::eventually("the confirmation email arrives", || async {
        smtp.count() >= 1
    })
    .await;
    // Anything late would have arrived by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&env.payments_db, "SELECT count(*) FROM payments").await,
        1
    );
    assert_eq!(
        count(&env.seating_db, "SELECT count(*) FROM bookings").await,
        1
    );
    assert_eq!(smtp.count(), 1, "one confirmation email");
    let email = mail_parser::MessageParser::default()
        .parse(&smtp.messages()[0])
        .map(|m| m.body_text(0).unwrap_or_default().into_owned())
        .expect("a parsable email");
    assert!(email.contains(&reference), "{email}");
    let bookings = get_json(&http, &env.url("/api/v1/bookings"), Some(&buyer)).await;
    assert_eq!(bookings["count"], 1, "{bookings}");
    assert!(stripe.refunds().is_empty(), "nothing to refund");
    system.stop().await;
}

/// The buyer leaves Stripe's page through "back" (the gateway releases the
/// hold), someone else takes the seats, and then the buyer pays on the
/// still-open Stripe page after all. Nobody is charged without a seat:
/// payments refunds through Stripe, no booking exists, the seats stay the
/// other buyer's, and the buyer gets an email saying the booking could not
/// be confirmed and the money is coming back.
#[tokio::test]
async fn a_payment_for_a_lost_hold_is_refunded_and_the_buyer_told_by_email() {
    let stripe = FakeStripe::start().await;
    let smtp = SmtpSink::start().await;
    let (env, system) = start(&stripe, &smtp).await;
    let http = client();
    let late = env.sign_up(&http, "hugo@example.com", "Hugo").await;
    let quick = env.sign_up(&http, "ines@example.com", "Ines").await;
    let showtime = env.first_showtime(&http, "metropolis").await;
    let (_, session_id) = hold_and_check_out(&env, &http, &late, &showtime, &["F7", "F8"]).await;

    let cancelled = late
        .on(http.get(env.url(&format!("/checkout/cancel?session_id={session_id}"))))
        .send()
        .await
        .expect("the cancel page");
    assert_eq!(cancelled.status(), 303, "back to the seat map");
    let (_, _) = hold_and_check_out(&env, &http, &quick, &showtime, &["F7", "F8"]).await;

    let session = stripe.pay(&session_id);
    let (status, body) = webhook(&env, "checkout.session.completed", &session).await;
    assert_eq!(status, 200, "{body}");

    test_support::eventually("the refund reaches Stripe and the buyer", || async {
        !stripe.refunds().is_empty() && smtp.count() >= 1
    })
    .await;
    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 1, "one refund");
    assert_eq!(refunds[0]["payment_intent"], session["payment_intent"]);
    assert_eq!(refunds[0]["amount"], session["amount_total"]);
    assert_eq!(
        count(&env.seating_db, "SELECT count(*) FROM bookings").await,
        0,
        "no booking for seats the buyer no longer had"
    );
    assert_eq!(
        count(
            &env.payments_db,
            &format!("SELECT count(*) FROM checkouts WHERE session_id = '{session_id}' AND status = 'refunded'"),
        )
        .await,
        1
    );
    // The apology (and, with the refund settled, the refund notice): all
    // to the buyer who paid, saying the money comes back.
    for raw in smtp.messages() {
        let email = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("a parsable email");
        assert_eq!(recipient(&email), "hugo@example.com");
        let subject = email.subject().unwrap_or_default();
        assert!(subject.contains("refund"), "{subject}");
    }
    let seats = get_json(
        &http,
        &env.url(&format!("/api/v1/showtimes/{showtime}/seats")),
        Some(&quick),
    )
    .await;
    let f7 = seats["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|s| s["label"] == "F7")
        .expect("F7")
        .clone();
    assert_eq!(f7["mine"], true, "the seats stay the other buyer's: {f7}");
    system.stop().await;
}
