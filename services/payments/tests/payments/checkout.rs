//! Creating a checkout: the amount comes from catalog, a double submit makes
//! one session, the hold is extended, and Stripe being down is a clear
//! UNAVAILABLE whose retry reuses the idempotency key.

use proto::payments::v1 as pb;
use proto::time::from_timestamp;
use tonic::Code;

use crate::harness::{Provider, fixture};

#[tokio::test]
async fn the_amount_comes_from_catalog_prices_and_a_double_submit_makes_one_session() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let expected = f.expected_amount(&hold);

    let (first, second) = tokio::join!(f.checkout(&hold, "ann"), f.checkout(&hold, "ann"));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.id, second.id, "one checkout per hold");
    assert_eq!(first.session_id, second.session_id);
    let again = f.checkout(&hold, "ann").await.unwrap();
    assert_eq!(again.session_id, first.session_id);

    assert_eq!(first.amount_minor, expected);
    assert_eq!(first.currency, f.currency.to_ascii_uppercase());
    assert_eq!(first.status, pb::CheckoutStatus::Open as i32);
    assert!(!first.simulated);
    assert!(first.url.starts_with("https://checkout.stripe.test/"));

    // Stripe saw one session, with line items priced by catalog.
    let sessions = f.stripe().sessions();
    assert_eq!(sessions.len(), 1, "one Stripe session for a double submit");
    let session = &sessions[0];
    assert_eq!(session["id"], first.session_id.as_str());
    assert_eq!(session["amount_total"], expected);
    assert_eq!(
        session["currency"],
        f.currency.to_ascii_lowercase().as_str()
    );
    assert_eq!(session["metadata"]["checkout_id"], first.id.as_str());
    assert_eq!(session["metadata"]["hold_id"], hold.id.as_str());
    assert_eq!(session["metadata"]["user_id"], "ann");
    assert_eq!(session["client_reference_id"], first.id.as_str());
    assert_eq!(session["customer_email"], "ann@example.com");
    assert_eq!(
        session["success_url"],
        "http://gateway.test/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(
        session["cancel_url"],
        "http://gateway.test/checkout/cancel?session_id={CHECKOUT_SESSION_ID}"
    );
    let lines = session["x_line_items"].as_array().unwrap();
    let quantity: i64 = lines.iter().map(|l| l["quantity"].as_i64().unwrap()).sum();
    assert_eq!(quantity, hold.seats.len() as i64);

    // Every create carried the hold's idempotency key.
    let keys: Vec<_> = f
        .stripe()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/checkout/sessions")
        .map(|r| r.idempotency_key)
        .collect();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k.as_deref() == Some(&*format!("checkout-{}", hold.id)))
    );

    // Stripe's 30-minute minimum is respected and the hold covers the checkout.
    let expires_at = from_timestamp(first.expires_at.as_ref().unwrap()).unwrap();
    assert_eq!(session["expires_at"], expires_at.timestamp());
    assert!(expires_at >= chrono::Utc::now() + chrono::Duration::minutes(30));
    let extended = f
        .seating_client
        .clone()
        .get_hold(proto::seating::v1::GetHoldRequest {
            hold_id: hold.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let held_until = from_timestamp(extended.held_until.as_ref().unwrap()).unwrap();
    assert!(held_until > expires_at, "the hold outlives the checkout");
}

#[tokio::test]
async fn a_hold_of_another_user_an_unknown_hold_or_an_ended_one_gets_no_checkout() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let error = f.checkout(&hold, "bob").await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut unknown = hold.clone();
    unknown.id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        f.checkout(&unknown, "ann").await.unwrap_err().code(),
        Code::NotFound
    );
    // A hold that has ended (here released by its owner) cannot be paid.
    f.seating_client
        .clone()
        .release_hold(proto::seating::v1::ReleaseHoldRequest {
            hold_id: hold.id.clone(),
            user_id: "ann".into(),
        })
        .await
        .expect("the owner releases the hold");
    assert_eq!(
        f.checkout(&hold, "ann").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert!(f.stripe().sessions().is_empty());
}

#[tokio::test]
async fn stripe_failing_at_checkout_is_unavailable_and_the_retry_makes_one_session() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;

    f.stripe().fail_next(1);
    let error = f.checkout(&hold, "ann").await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error.message().contains("try again"),
        "a buyer-facing message: {}",
        error.message()
    );

    f.stripe().hang_next(1);
    let error = f.checkout(&hold, "ann").await.unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unavailable,
        "a timeout is UNAVAILABLE too"
    );

    let checkout = f.checkout(&hold, "ann").await.unwrap();
    assert_eq!(f.stripe().sessions().len(), 1, "no duplicate session");
    assert_eq!(f.stripe().sessions()[0]["id"], checkout.session_id.as_str());
    let keys: Vec<_> = f
        .stripe()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/checkout/sessions")
        .map(|r| r.idempotency_key.unwrap_or_default())
        .collect();
    assert_eq!(keys.len(), 3, "three attempts reached Stripe");
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one idempotency key: {keys:?}"
    );
    assert_eq!(f.count("SELECT count(*) FROM checkouts").await, 1);
}

#[tokio::test]
async fn a_session_of_another_user_is_not_found() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    let error = f
        .get_checkout(&checkout.session_id, "bob")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = f
        .get_checkout("cs_test_nonexistent", "ann")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    // The owner sees it.
    assert_eq!(
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .unwrap()
            .id,
        checkout.id
    );
}

#[tokio::test]
async fn stripe_settings_demand_a_webhook_secret() {
    let settings = payments::Settings {
        stripe_secret_key: Some("sk_test_x".into()),
        ..Default::default()
    };
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("STRIPE_WEBHOOK_SECRET"), "{error}");
}
