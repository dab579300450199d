//! What each email says, as received by a real SMTP server.

use proto::events::v1 as events_pb;
use proto::time::to_timestamp;
use test_support::smtp::SmtpSink;
use uuid::Uuid;

use crate::harness::{self, booking_confirmed, meta, quick_settings, wait_for_mail};

#[tokio::test]
async fn confirmation_states_the_booking_in_the_cinemas_time_with_qr_code_and_calendar() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let event = booking_confirmed("BMS7Q2");
    let event_id = notifier.publish_confirmed(&event).await;

    let mail = wait_for_mail(&sink, 1).await;
    let email = &mail[0];
    assert_eq!(email.to(), "ada@example.com");
    assert!(email.subject().contains("BMS7Q2"), "{}", email.subject());
    let raw = email.raw_text();
    assert!(
        raw.contains("multipart/alternative"),
        "text and html are alternatives"
    );
    assert!(
        raw.contains("multipart/related"),
        "the QR code is inline in the html"
    );
    assert!(
        raw.contains(&format!("Message-ID: <{event_id}@bookmyseat.test>")),
        "the Message-ID derives from the event id"
    );

    let text = email.text();
    let html = email.html();
    for fact in [
        "Metropolis",
        "Roxy",
        "Screen 1",
        // 18:00 UTC is 23:30 in Kolkata.
        "Saturday 28 November 2026, 23:30 IST",
        "E3, E4",
        "BMS7Q2",
        "₹800",
    ] {
        assert!(text.contains(fact), "the text part lacks {fact:?}:\n{text}");
        assert!(html.contains(fact), "the html part lacks {fact:?}:\n{html}");
    }

    let enclosures = email.enclosures();
    let (_, _, cid, png) = enclosures
        .iter()
        .find(|(content_type, ..)| content_type == "image/png")
        .expect("a QR code image");
    let cid = cid
        .clone()
        .expect("the QR code is an inline part with a content id");
    assert!(
        html.contains(&format!("cid:{}", cid.trim_matches(['<', '>']))),
        "the html shows the QR code by its content id"
    );
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the QR code is a PNG"
    );
    let (_, name, _, ics) = enclosures
        .iter()
        .find(|(content_type, ..)| content_type == "text/calendar")
        .expect("a calendar attachment");
    assert_eq!(name, "booking.ics");
    let ics = String::from_utf8_lossy(ics);
    assert!(ics.contains("BEGIN:VEVENT"), "{ics}");
    assert!(ics.contains("DTSTART:20261128T180000Z"), "{ics}");
    assert!(ics.contains("Metropolis"), "{ics}");
    assert!(ics.contains("LOCATION:Roxy\\, Screen 1"), "{ics}");

    let delivery = notifier.sent_delivery(event_id).await;
    assert_eq!(delivery.status, "sent");
    assert_eq!(delivery.kind, "booking_confirmed");
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.transport.as_deref(), Some("smtp"));
}

#[tokio::test]
async fn refund_notice_states_the_amount_and_the_booking() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let id = Uuid::new_v4();
    let event = events_pb::RefundSucceeded {
        meta: meta(id),
        refund_id: "re_123".into(),
        checkout_id: "chk_1".into(),
        booking_reference: String::new(),
        user_id: "u1".into(),
        user_email: "grace@example.com".into(),
        amount_minor: 125_050,
        currency: "INR".into(),
        reason: "the seats were taken before the payment arrived".into(),
    };
    notifier
        .publish(
            "payments.refund.succeeded",
            id,
            "bookmyseat.events.v1.RefundSucceeded",
            prost::Message::encode_to_vec(&event),
        )
        .await;

    let mail = wait_for_mail(&sink, 1).await;
    let email = &mail[0];
    assert_eq!(email.to(), "grace@example.com");
    assert_eq!(email.subject(), "Your refund of ₹1,250.50 is on its way");
    let text = email.text();
    for fact in ["₹1,250.50", "re_123", "the seats were taken"] {
        assert!(text.contains(fact), "the text lacks {fact:?}:\n{text}");
        assert!(email.html().contains(fact), "the html lacks {fact:?}");
    }
    assert_eq!(
        notifier.delivery(id).await.expect("recorded").kind,
        "refund_succeeded"
    );
}

#[tokio::test]
async fn rejected_booking_gets_an_apology_that_promises_the_refund() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let id = Uuid::new_v4();
    let event = events_pb::BookingRejected {
        meta: meta(id),
        checkout_id: "chk_9".into(),
        hold_id: Uuid::new_v4().to_string(),
        user_id: "u2".into(),
        user_email: "linus@example.com".into(),
        reason: "the hold expired".into(),
        unavailable_seats: vec!["C5".into()],
    };
    notifier
        .publish(
            "bookings.rejected",
            id,
            "bookmyseat.events.v1.BookingRejected",
            prost::Message::encode_to_vec(&event),
        )
        .await;

    let mail = wait_for_mail(&sink, 1).await;
    let email = &mail[0];
    assert_eq!(email.to(), "linus@example.com");
    assert!(email.subject().contains("refunded"), "{}", email.subject());
    let text = email.text();
    assert!(text.contains("sorry"), "{text}");
    assert!(text.contains("C5"), "{text}");
    assert!(text.contains("refunding your payment in full"), "{text}");
    assert!(text.contains("chk_9"), "{text}");
    assert!(email.html().contains("refunding your payment in full"));
}

#[tokio::test]
async fn password_reset_carries_the_link_and_its_expiry() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let id = Uuid::new_v4();
    let requested_at = harness::showtime();
    let url = "https://bookmyseat.test/reset?token=s3cr3t-t0ken&x=1";
    let event = events_pb::PasswordResetRequested {
        meta: Some(events_pb::EventMeta {
            event_id: id.to_string(),
            occurred_at: Some(to_timestamp(requested_at)),
        }),
        user_id: "u3".into(),
        email: "barbara@example.com".into(),
        display_name: "Barbara".into(),
        reset_url: url.into(),
        expires_at: Some(to_timestamp(requested_at + chrono::Duration::minutes(30))),
    };
    notifier
        .publish(
            "accounts.password_reset.requested",
            id,
            "bookmyseat.events.v1.PasswordResetRequested",
            prost::Message::encode_to_vec(&event),
        )
        .await;

    let mail = wait_for_mail(&sink, 1).await;
    let email = &mail[0];
    assert_eq!(email.to(), "barbara@example.com");
    assert_eq!(email.subject(), "Reset your BookMySeat password");
    let text = email.text();
    assert!(text.contains("Hello Barbara"), "{text}");
    assert!(
        text.contains(url),
        "the text carries the link as it is:\n{text}"
    );
    assert!(
        text.contains("Saturday 28 November 2026, 18:30 UTC (valid for 30 minutes)"),
        "{text}"
    );
    // In the html the link's & is escaped, as an attribute must be.
    assert!(
        email
            .html()
            .contains("href=\"https://bookmyseat.test/reset?token=s3cr3t-t0ken&amp;x=1\"")
    );
    let delivery = notifier.sent_delivery(id).await;
    assert_eq!(delivery.kind, "password_reset");
    assert_eq!(delivery.status, "sent");
}
