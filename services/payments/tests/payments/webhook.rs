//! The Stripe webhook: signatures verified on the raw body, each event id
//! handled once, the webhook and the direct check converging on one
//! payment, async payments, expiry, and news that disagrees with the
//! checkout.

use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::payments::v1 as pb;
use proto::seating::v1 as seating_pb;
use serde_json::json;
use test_support::stripe::{WebhookSigner, deliver, event};

use crate::harness::{Fixture, Provider, eventually, fixture, fixture_with};

/// A checkout for ann's fresh hold, with its Stripe session.
async fn open_checkout(f: &Fixture) -> (seating_pb::Hold, pb::Checkout) {
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.expect("a checkout");
    (hold, checkout)
}

#[tokio::test]
async fn one_event_delivered_five_times_at_once_is_applied_and_recorded_once() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);
    let payload = event("checkout.session.completed", &session);
    let send = || f.send_payload(&payload);
    let answers = tokio::join!(send(), send(), send(), send(), send());
    for (status, body) in [answers.0, answers.1, answers.2, answers.3, answers.4] {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        f.count("SELECT count(*) FROM provider_events WHERE outcome = 'paid'")
            .await,
        1,
        "the event is recorded once, with what it did"
    );
    assert_eq!(f.count("SELECT count(*) FROM provider_events").await, 1);
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
}

#[tokio::test]
async fn a_valid_webhook_replayed_three_times_makes_one_payment_one_event_and_one_booking() {
    let f = fixture(Provider::Stripe).await;
    let (hold, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);
    let payload = event("checkout.session.completed", &session);
    for _ in 0..3 {
        let (status, body) = f.send_payload(&payload).await;
        assert_eq!(status, 200, "{body}");
    }
    // A different event id about the same paid session changes nothing either.
    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);

    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(f.count("SELECT count(*) FROM provider_events").await, 2);
    assert_eq!(
        f.count("SELECT count(*) FROM provider_events WHERE outcome = 'already paid'")
            .await,
        1,
        "the second event id is recorded as news of a payment already made"
    );
    let completed = f.events_on("payments.checkout.completed").await;
    assert_eq!(completed.len(), 1, "one payments.checkout.completed");
    let event = events_pb::CheckoutCompleted::decode(completed[0].as_slice()).unwrap();
    assert_eq!(event.checkout_id, checkout.id);
    assert_eq!(event.hold_id, hold.id);
    assert_eq!(event.user_id, "ann");
    assert_eq!(event.user_email, "ann@example.com");
    assert_eq!(event.amount_minor, checkout.amount_minor);

    let reference = f.booking_reference(&checkout.id).await;
    assert_eq!(f.seating_bookings().await, 1, "one booking in seating");
    for seat in &hold.seats {
        assert_eq!(
            f.seat_state(&seat.label).await,
            seating_pb::SeatState::Booked
        );
    }
    // Payments learns the reference from bookings.confirmed.
    eventually("payments knows the booking reference", || async {
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .is_ok_and(|c| c.booking_reference == reference)
    })
    .await;
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Paid
    );
}

#[tokio::test]
async fn forged_stale_and_missing_signatures_are_refused_and_nothing_is_recorded() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);
    let payload = event("checkout.session.completed", &session);
    let url = f.payments.webhook_url();

    let forged = WebhookSigner::new("whsec_attacker").header(&payload);
    assert_eq!(deliver(&url, Some(&forged), &payload).await.0, 400);
    let stale = f
        .signer
        .header_at(&payload, chrono::Utc::now().timestamp() - 6 * 60);
    assert_eq!(deliver(&url, Some(&stale), &payload).await.0, 400);
    assert_eq!(deliver(&url, None, &payload).await.0, 400);
    assert_eq!(deliver(&url, Some("t=1,v1=zz"), &payload).await.0, 400);
    // A valid signature of another body does not carry over.
    let other = event("checkout.session.completed", &json!({"id": "cs_other"}));
    let signature = f.signer.header(&other);
    assert_eq!(deliver(&url, Some(&signature), &payload).await.0, 400);

    assert_eq!(f.count("SELECT count(*) FROM provider_events").await, 0);
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Paid,
        "the direct check still finds the payment at Stripe"
    );
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_stripe_event_is_refused() {
    let f = fixture(Provider::Stripe).await;
    for body in [
        "not json",
        r#"{"hello":"world"}"#,
        r#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"unexpected":true}}}"#,
    ] {
        let (status, answer) = f.send_payload(body).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert_eq!(f.count("SELECT count(*) FROM provider_events").await, 0);
}

#[tokio::test]
async fn the_webhook_accepts_every_secret_of_a_rotation() {
    let f = fixture_with(Provider::Stripe, |settings| {
        settings.stripe_webhook_secret = "whsec_old, whsec_test_current".into();
    })
    .await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);
    let payload = event("checkout.session.completed", &session);
    let old = WebhookSigner::new("whsec_old").header(&payload);
    let (status, body) = deliver(&f.payments.webhook_url(), Some(&old), &payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
}

#[tokio::test]
async fn metadata_naming_an_unknown_checkout_is_acknowledged_recorded_and_changes_nothing() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let mut session = f.stripe().pay(&checkout.session_id);
    let stranger = uuid::Uuid::new_v4().to_string();
    session["metadata"]["checkout_id"] = json!(stranger);
    session["client_reference_id"] = json!(stranger);
    let (status, body) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200, "acknowledged: {body}");
    assert!(body.contains("unknown checkout"), "{body}");
    assert_eq!(
        f.count("SELECT count(*) FROM provider_events WHERE outcome = 'unknown checkout'")
            .await,
        1
    );
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert!(f.events_on("payments.checkout.completed").await.is_empty());
}

#[tokio::test]
async fn an_amount_or_currency_that_disagrees_with_the_checkout_is_refused() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);

    let mut cheaper = session.clone();
    cheaper["amount_total"] = json!(checkout.amount_minor - 1);
    let (status, body) = f.send_event("checkout.session.completed", &cheaper).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refused"), "{body}");

    let mut foreign = session.clone();
    foreign["currency"] = json!("usd");
    let (status, body) = f.send_event("checkout.session.completed", &foreign).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("refused"), "{body}");

    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert_eq!(
        f.count("SELECT count(*) FROM provider_events WHERE outcome LIKE 'refused:%'")
            .await,
        2
    );
    assert!(f.events_on("payments.checkout.completed").await.is_empty());
    assert_eq!(
        f.count("SELECT count(*) FROM checkouts WHERE status = 'open'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_direct_check_before_the_webhook_records_one_payment() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);

    // The buyer lands on the success page before Stripe's webhook arrives.
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Paid
    );
    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);

    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        f.count("SELECT count(*) FROM payments WHERE source = 'direct'")
            .await,
        1
    );
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
    f.booking_reference(&checkout.id).await;
    assert_eq!(f.seating_bookings().await, 1);
}

#[tokio::test]
async fn the_webhook_before_the_direct_check_records_one_payment() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);

    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);
    let gets_before = f
        .stripe()
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Paid
    );
    let gets_after = f
        .stripe()
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        gets_before, gets_after,
        "a known payment needs no question to Stripe"
    );

    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        f.count("SELECT count(*) FROM payments WHERE source = 'webhook'")
            .await,
        1
    );
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
}

#[tokio::test]
async fn the_webhook_and_the_direct_check_at_the_same_moment_record_one_payment() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().pay(&checkout.session_id);
    let payload = event("checkout.session.completed", &session);
    let (webhook, direct, again) = tokio::join!(
        f.send_payload(&payload),
        f.get_checkout(&checkout.session_id, "ann"),
        f.get_checkout(&checkout.session_id, "ann"),
    );
    assert_eq!(webhook.0, 200);
    assert!(direct.is_ok() && again.is_ok());
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
    f.booking_reference(&checkout.id).await;
    assert_eq!(f.seating_bookings().await, 1);
}

#[tokio::test]
async fn an_async_payment_that_succeeds_is_booked() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    let session = f.stripe().complete_unpaid(&checkout.session_id);
    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Processing
    );
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert!(f.events_on("payments.checkout.completed").await.is_empty());

    let session = f.stripe().async_succeeded(&checkout.session_id);
    let (status, _) = f
        .send_event("checkout.session.async_payment_succeeded", &session)
        .await;
    assert_eq!(status, 200);
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 1);
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
    f.booking_reference(&checkout.id).await;
}

#[tokio::test]
async fn an_async_payment_that_fails_ends_the_checkout_and_releases_the_hold() {
    let f = fixture(Provider::Stripe).await;
    let (hold, checkout) = open_checkout(&f).await;
    let session = f.stripe().complete_unpaid(&checkout.session_id);
    f.send_event("checkout.session.completed", &session).await;
    let session = f.stripe().async_failed(&checkout.session_id);
    let (status, _) = f
        .send_event("checkout.session.async_payment_failed", &session)
        .await;
    assert_eq!(status, 200);

    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Failed
    );
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert_eq!(f.events_on("payments.checkout.expired").await.len(), 1);
    let label = hold.seats[0].label.clone();
    eventually("the failed payment's seats are free again", || async {
        f.seat_state(&label).await == seating_pb::SeatState::Available
    })
    .await;
}

#[tokio::test]
async fn an_expired_session_releases_the_hold() {
    let f = fixture(Provider::Stripe).await;
    let (hold, checkout) = open_checkout(&f).await;
    let session = f.stripe().expire(&checkout.session_id);
    let (status, _) = f.send_event("checkout.session.expired", &session).await;
    assert_eq!(status, 200);

    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Expired
    );
    let expired = f.events_on("payments.checkout.expired").await;
    assert_eq!(expired.len(), 1);
    let event = events_pb::CheckoutExpired::decode(expired[0].as_slice()).unwrap();
    assert_eq!(
        (event.checkout_id.as_str(), event.hold_id.as_str()),
        (checkout.id.as_str(), hold.id.as_str())
    );
    for seat in &hold.seats {
        let label = seat.label.clone();
        eventually("the expired checkout's seats are free again", || async {
            f.seat_state(&label).await == seating_pb::SeatState::Available
        })
        .await;
    }
    // Someone else can take them now.
    let labels: Vec<&str> = hold.seats.iter().map(|s| s.label.as_str()).collect();
    f.hold_seats("bob", &labels).await;
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged() {
    let f = fixture(Provider::Stripe).await;
    let (status, body) = f
        .send_event(
            "customer.created",
            &json!({"id": "cus_1", "object": "customer"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        f.count("SELECT count(*) FROM provider_events WHERE outcome = 'ignored'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_get_checkout_asked_to_wait_answers_with_the_booking_once_it_is_made() {
    let f = fixture(Provider::Stripe).await;
    let (_, checkout) = open_checkout(&f).await;
    // Seating cannot book while the test holds the showtime's row lock.
    let mut blocker = f.seating.pool().begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM showtimes WHERE id = $1::uuid FOR UPDATE")
        .bind(&f.showtime_id)
        .execute(&mut *blocker)
        .await
        .expect("the showtime's row lock");
    let session = f.stripe().pay(&checkout.session_id);
    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);

    let ask = |wait_for_booking_ms: u32| {
        let mut client = f.client.clone();
        let session_id = checkout.session_id.clone();
        async move {
            client
                .get_checkout(pb::GetCheckoutRequest {
                    session_id,
                    user_id: "ann".into(),
                    wait_for_booking_ms,
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    // A short wait that ends before the booking answers the paid checkout.
    let early = ask(300).await.expect("the checkout");
    assert_eq!(early.status, pb::CheckoutStatus::Paid as i32);
    assert_eq!(early.booking_reference, "", "seating cannot book yet");

    let waiting = tokio::spawn(ask(20_000));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "it waits for the booking");
    blocker.rollback().await.expect("the lock let go");
    let answered = tokio::time::timeout(std::time::Duration::from_secs(15), waiting)
        .await
        .expect("answered within its wait")
        .expect("the call ran")
        .expect("the checkout");
    assert_eq!(
        answered.booking_reference,
        f.booking_reference(&checkout.id).await,
        "the answer carries the booking made while it waited"
    );
}
