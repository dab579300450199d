//! Refunds: a payment whose seats were lost is refunded through Stripe and
//! announced; staff refunds by booking reference happen once.

use chrono::Duration as Span;
use prost::Message as _;
use proto::events::v1 as events_pb;
use proto::payments::v1 as pb;
use tonic::Code;

use crate::harness::{Provider, eventually, fixture};

#[tokio::test]
async fn a_payment_whose_hold_was_lost_is_refunded_through_stripe() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();

    // Ann's hold runs out (seating's clock passes the extended hold) and bob
    // takes her seats before her payment is known.
    f.clock.advance(Span::hours(1));
    let labels: Vec<&str> = hold.seats.iter().map(|s| s.label.as_str()).collect();
    f.hold_seats("bob", &labels).await;

    let session = f.stripe().pay(&checkout.session_id);
    let (status, _) = f.send_event("checkout.session.completed", &session).await;
    assert_eq!(status, 200);

    eventually("payments publishes the refund", || async {
        platform::outbox::backlog(f.payments.pool()).await.unwrap() == 0
            && f.count("SELECT count(*) FROM refunds WHERE status = 'succeeded'")
                .await
                == 1
    })
    .await;
    let refunds = f.stripe().refunds();
    assert_eq!(refunds.len(), 1, "one refund at Stripe");
    assert_eq!(refunds[0]["payment_intent"], session["payment_intent"]);
    assert_eq!(refunds[0]["amount"], checkout.amount_minor);
    let payment_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM payments")
        .fetch_one(f.payments.pool())
        .await
        .unwrap();
    let keys: Vec<_> = f
        .stripe()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/refunds")
        .map(|r| r.idempotency_key)
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.as_deref() == Some(&*format!("refund-{payment_id}")))
    );

    let succeeded = f.events_on("payments.refund.succeeded").await;
    assert_eq!(succeeded.len(), 1, "one payments.refund.succeeded");
    let event = events_pb::RefundSucceeded::decode(succeeded[0].as_slice()).unwrap();
    assert_eq!(event.checkout_id, checkout.id);
    assert_eq!(event.amount_minor, checkout.amount_minor);
    assert_eq!(event.user_email, "ann@example.com");
    assert_eq!(event.booking_reference, "", "the booking never existed");
    assert!(!event.reason.is_empty());
    assert_eq!(
        f.seating_bookings().await,
        0,
        "nobody is charged without a seat"
    );
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Refunded
    );
}

#[tokio::test]
async fn a_staff_refund_by_booking_reference_refunds_once() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    let session = f.stripe().pay(&checkout.session_id);
    f.send_event("checkout.session.completed", &session).await;
    let reference = f.booking_reference(&checkout.id).await;
    eventually("payments knows the booking reference", || async {
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .is_ok_and(|c| c.booking_reference == reference)
    })
    .await;

    let mut client = f.client.clone();
    let request = pb::RefundBookingRequest {
        booking_reference: reference.to_lowercase(),
        reason: "the screening was cancelled".into(),
    };
    let first = client
        .refund_booking(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client.refund_booking(request).await.unwrap().into_inner();
    assert_eq!(first.id, second.id, "one refund per booking");
    assert_eq!(first.amount_minor, checkout.amount_minor);
    assert_eq!(first.booking_reference, reference);

    eventually("the refund succeeds", || async {
        f.count("SELECT count(*) FROM refunds WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    assert_eq!(f.stripe().refunds().len(), 1);
    let succeeded = f.events_on("payments.refund.succeeded").await;
    assert_eq!(succeeded.len(), 1);
    let event = events_pb::RefundSucceeded::decode(succeeded[0].as_slice()).unwrap();
    assert_eq!(event.booking_reference, reference);
    assert_eq!(event.reason, "the screening was cancelled");

    let unknown = client
        .refund_booking(pb::RefundBookingRequest {
            booking_reference: "BMS-NOSUCH".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_refund_that_stripe_fails_is_published_as_failed() {
    let f = fixture(Provider::Stripe).await;
    f.stripe().set_refund_status("failed");
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    let session = f.stripe().pay(&checkout.session_id);
    f.send_event("checkout.session.completed", &session).await;
    let reference = f.booking_reference(&checkout.id).await;
    eventually("payments knows the booking reference", || async {
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .is_ok_and(|c| c.booking_reference == reference)
    })
    .await;
    f.client
        .clone()
        .refund_booking(pb::RefundBookingRequest {
            booking_reference: reference.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    eventually("the refund fails", || async {
        f.count("SELECT count(*) FROM refunds WHERE status = 'failed'")
            .await
            == 1
    })
    .await;
    let failed = f.events_on("payments.refund.failed").await;
    assert_eq!(failed.len(), 1, "one payments.refund.failed");
    let event = events_pb::RefundFailed::decode(failed[0].as_slice()).unwrap();
    assert_eq!(event.checkout_id, checkout.id);
    assert_eq!(event.booking_reference, reference);
    assert!(!event.reason.is_empty());
    assert!(f.events_on("payments.refund.succeeded").await.is_empty());
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Paid,
        "a failed refund leaves the payment in place"
    );
}

#[tokio::test]
async fn a_refund_stripe_leaves_pending_finishes_with_the_refund_updated_webhook() {
    let f = fixture(Provider::Stripe).await;
    f.stripe().set_refund_status("pending");
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    let session = f.stripe().pay(&checkout.session_id);
    f.send_event("checkout.session.completed", &session).await;
    let reference = f.booking_reference(&checkout.id).await;
    eventually("payments knows the booking reference", || async {
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .is_ok_and(|c| c.booking_reference == reference)
    })
    .await;
    let refund = f
        .client
        .clone()
        .refund_booking(pb::RefundBookingRequest {
            booking_reference: reference.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refund.status, "pending");
    eventually("Stripe accepts the refund as pending", || async {
        f.count("SELECT count(*) FROM refunds WHERE status = 'pending'")
            .await
            == 1
    })
    .await;
    assert!(f.events_on("payments.refund.succeeded").await.is_empty());

    let mut update = f.stripe().refunds()[0].clone();
    update["status"] = serde_json::json!("succeeded");
    for _ in 0..2 {
        let (status, body) = f.send_event("refund.updated", &update).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        f.count("SELECT count(*) FROM refunds WHERE status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(f.events_on("payments.refund.succeeded").await.len(), 1);
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Refunded
    );
}
