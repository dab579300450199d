//! How often an email is sent: once per event, whatever is replayed, broken
//! or down.

use notifier::events::BOOKINGS_CONSUMER;
use test_support::eventually;
use test_support::smtp::{Certificates, Relay, SmtpSink};

use crate::harness::{self, booking_confirmed, quick_settings, received, wait_for_mail};

#[tokio::test]
async fn a_replayed_event_sends_one_email() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let event = booking_confirmed("REPLAY1");
    let event_id = notifier.publish_confirmed(&event).await;
    wait_for_mail(&sink, 1).await;

    // Past the test stream's 100 ms duplicate window, the same event id is
    // stored again: the notifier sees it a second time, as after a replay.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    notifier.publish_confirmed(&event).await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;

    assert_eq!(sink.count(), 1, "the replay sent nothing");
    let delivery = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(delivery.status, "sent");
    assert_eq!(delivery.attempts, 1);
    assert!(notifier.dead_letters(BOOKINGS_CONSUMER).await.is_empty());
}

#[tokio::test]
async fn a_malformed_event_is_dead_lettered_and_the_next_one_still_delivered() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let broken = uuid::Uuid::new_v4();
    notifier
        .publish(
            "bookings.confirmed",
            broken,
            "bookmyseat.events.v1.BookingConfirmed",
            b"\xff\xff\xff not protobuf".to_vec(),
        )
        .await;
    let good = notifier
        .publish_confirmed(&booking_confirmed("AFTER1"))
        .await;

    let mail = wait_for_mail(&sink, 1).await;
    assert!(mail[0].subject().contains("AFTER1"));
    let dead = notifier.dead_letters(BOOKINGS_CONSUMER).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0.as_deref(), Some(broken.to_string().as_str()));
    assert!(
        dead[0].1.contains("not a BookingConfirmed"),
        "{}",
        dead[0].1
    );
    assert!(
        notifier.delivery(broken).await.is_none(),
        "no email was attempted"
    );
    assert_eq!(notifier.sent_delivery(good).await.status, "sent");
}

#[tokio::test]
async fn an_event_without_a_usable_recipient_is_dead_lettered_without_an_attempt() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let mut event = booking_confirmed("NOADDR");
    event.user_email = "not-an-address".into();
    let id = notifier.publish_confirmed(&event).await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;
    let dead = notifier.dead_letters(BOOKINGS_CONSUMER).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("not a valid email address"),
        "{}",
        dead[0].1
    );
    assert!(
        !dead[0].1.contains("not-an-address"),
        "the address is not repeated"
    );
    assert!(notifier.delivery(id).await.is_none());
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn an_smtp_outage_is_retried_and_the_email_delivered_once_when_it_ends() {
    let mut sink = SmtpSink::start().await;
    sink.stop();
    let notifier = harness::start(Some(sink.url()), quick_settings(100)).await;
    let event_id = notifier
        .publish_confirmed(&booking_confirmed("OUTAGE1"))
        .await;

    eventually("several failed attempts while SMTP is down", || async {
        notifier
            .delivery(event_id)
            .await
            .is_some_and(|d| d.attempts >= 3 && d.last_error.is_some())
    })
    .await;
    let during = notifier.delivery(event_id).await.expect("recorded");
    assert_ne!(during.status, "sent");
    assert_ne!(during.status, "failed");

    sink.restart().await;
    let mail = wait_for_mail(&sink, 1).await;
    assert!(mail[0].subject().contains("OUTAGE1"));
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;
    assert_eq!(received(&sink).len(), 1, "delivered exactly once");
    let delivery = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(delivery.status, "sent");
    assert!(delivery.attempts >= 4, "attempts: {}", delivery.attempts);
    assert!(notifier.dead_letters(BOOKINGS_CONSUMER).await.is_empty());
}

#[tokio::test]
async fn smtp_down_past_the_last_attempt_dead_letters_the_email() {
    let mut sink = SmtpSink::start().await;
    sink.stop();
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let event_id = notifier
        .publish_confirmed(&booking_confirmed("GIVEUP1"))
        .await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;

    let delivery = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(delivery.status, "failed");
    assert_eq!(delivery.attempts, 3);
    assert!(
        delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("unavailable")),
        "{:?}",
        delivery.last_error
    );
    let dead = notifier.dead_letters(BOOKINGS_CONSUMER).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.as_deref(), Some(event_id.to_string().as_str()));
    assert!(dead[0].1.contains("3 attempt"), "{}", dead[0].1);
    assert_eq!(
        notifier::store::failed_count(&notifier.db.pool)
            .await
            .unwrap(),
        1
    );

    // The server coming back later sends nothing by itself: the dead letter
    // is an operator's to replay.
    sink.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn without_smtp_url_the_email_is_written_as_an_eml_file() {
    let notifier = harness::start(None, quick_settings(3)).await;
    let event_id = notifier
        .publish_confirmed(&booking_confirmed("FILE1"))
        .await;
    eventually("the email recorded as sent", || async {
        notifier
            .delivery(event_id)
            .await
            .is_some_and(|d| d.status == "sent")
    })
    .await;
    let files = notifier.outbox_files();
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].file_name().and_then(|n| n.to_str()),
        Some(format!("{event_id}.eml").as_str())
    );
    let email = harness::Received {
        raw: std::fs::read(&files[0]).expect("reading the .eml file"),
    };
    assert!(email.subject().contains("FILE1"));
    assert!(email.text().contains("Metropolis"));
    let delivery = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(delivery.status, "sent");
    assert_eq!(delivery.transport.as_deref(), Some("file"));
}

#[tokio::test]
async fn an_attempt_that_died_before_its_record_is_sent_again_at_least_once() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let event = booking_confirmed("GAP1");
    let event_id = uuid::Uuid::parse_str(&event.meta.as_ref().unwrap().event_id).unwrap();
    // What a process that died between the SMTP server's acceptance and the
    // "sent" commit leaves behind: the delivery still "sending" (opening a
    // delivery starts its first attempt).
    notifier::store::open(
        &notifier.db.pool,
        &notifier::store::NewDelivery {
            event_id,
            kind: "booking_confirmed",
            recipient: "ada@example.com",
            subject: "earlier attempt",
            message_id: "<earlier@bookmyseat.test>",
        },
    )
    .await
    .unwrap();

    notifier.publish_confirmed(&event).await;
    wait_for_mail(&sink, 1).await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;
    let delivery = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(delivery.status, "sent");
    assert_eq!(
        delivery.attempts, 2,
        "the interrupted attempt stays counted"
    );
}

#[tokio::test]
async fn a_recipient_the_server_refuses_for_good_is_dead_lettered_without_retrying() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(5)).await;
    let mut event = booking_confirmed("REFUSED1");
    event.user_email = test_support::smtp::REJECTED_RECIPIENT.into();
    let refused = notifier.publish_confirmed(&event).await;
    let fine = notifier
        .publish_confirmed(&booking_confirmed("FINE1"))
        .await;
    wait_for_mail(&sink, 1).await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;

    let delivery = notifier.delivery(refused).await.expect("recorded");
    assert_eq!(delivery.status, "failed");
    assert_eq!(delivery.attempts, 1, "a 5xx answer is not retried");
    assert!(
        delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("rejected the message")),
        "{:?}",
        delivery.last_error
    );
    let dead = notifier.dead_letters(BOOKINGS_CONSUMER).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.as_deref(), Some(refused.to_string().as_str()));
    assert_eq!(notifier.sent_delivery(fine).await.status, "sent");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn a_notifier_restarted_mid_stream_loses_nothing_and_doubles_nothing() {
    let sink = SmtpSink::start().await;
    // An ack wait longer than any wait below: an email that only came back
    // through it, rather than handed back by the stopping process, would
    // fail the test.
    let settings = notifier::Settings {
        notifier_ack_wait_ms: 120_000,
        ..quick_settings(5)
    };
    let mut notifier = harness::start(Some(sink.url()), settings).await;
    let batch = 100;
    // Published all at once (acknowledgements awaited together): published
    // one by one, a fast notifier could send each as it came and be done
    // before the restart.
    let first: Vec<_> = (0..batch)
        .map(|i| booking_confirmed(&format!("RST{i:03}")))
        .collect();
    futures::future::join_all(first.iter().map(|event| notifier.publish_confirmed(event))).await;
    eventually("the first emails arriving", || async { sink.count() >= 5 }).await;
    notifier.restart().await;
    let at_restart = sink.count();
    assert!(
        at_restart < batch,
        "the restart came mid-stream ({at_restart} of {batch} sent)"
    );
    // More arrive while the new process takes over.
    for i in batch..2 * batch {
        notifier
            .publish_confirmed(&booking_confirmed(&format!("RST{i:03}")))
            .await;
    }
    wait_for_mail(&sink, 2 * batch).await;
    notifier
        .wait_until_consumed("bookings", BOOKINGS_CONSUMER)
        .await;
    let mut subjects: Vec<String> = received(&sink).iter().map(|m| m.subject()).collect();
    assert_eq!(subjects.len(), 2 * batch, "no email sent twice");
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 2 * batch, "every booking has its own email");
    for i in 0..2 * batch {
        let reference = format!("RST{i:03}");
        assert!(
            subjects.iter().any(|s| s.contains(&reference)),
            "{reference} was emailed"
        );
    }
    assert!(notifier.dead_letters(BOOKINGS_CONSUMER).await.is_empty());
}

#[tokio::test]
async fn a_relay_demanding_starttls_and_credentials_gets_the_email_over_tls_with_them() {
    let certificates = Certificates::generate();
    let relay = |password: &str| Relay {
        certificates: certificates.clone(),
        user: "notifier".into(),
        password: password.into(),
    };
    let sink = SmtpSink::start_tls(relay("s3cret-relay")).await;
    let notifier = harness::start_trusting(
        Some(sink.url()),
        Some(certificates.ca.clone()),
        quick_settings(3),
    )
    .await;
    let event_id = notifier
        .publish_confirmed(&booking_confirmed("TLS0001"))
        .await;
    let mail = wait_for_mail(&sink, 1).await;
    let raw = mail[0].raw_text();
    assert!(mail[0].subject().contains("TLS0001"));
    assert!(
        raw.contains("X-Sink-TLS: yes"),
        "sent after STARTTLS: {raw}"
    );
    assert!(
        raw.contains("X-Sink-Login: notifier"),
        "authenticated: {raw}"
    );
    assert_eq!(
        notifier.sent_delivery(event_id).await.transport.as_deref(),
        Some("smtp")
    );

    // The same relay with a password the notifier does not have: the server
    // refuses the login for good (535), so the email is dead-lettered with
    // the reason instead of being retried forever, and nothing is sent.
    let strict = SmtpSink::start_tls(relay("another-password")).await;
    let url = sink
        .url()
        .replace(&sink.port().to_string(), &strict.port().to_string());
    let refused =
        harness::start_trusting(Some(url), Some(certificates.ca.clone()), quick_settings(3)).await;
    let event_id = refused
        .publish_confirmed(&booking_confirmed("TLS0002"))
        .await;
    eventually("the refused login ends the delivery", || async {
        refused
            .delivery(event_id)
            .await
            .is_some_and(|d| d.status == "failed")
    })
    .await;
    let delivery = refused.delivery(event_id).await.expect("recorded");
    assert!(
        delivery
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("535")),
        "{:?}",
        delivery.last_error
    );
    assert_eq!(strict.count(), 0);
    assert_eq!(refused.dead_letters(BOOKINGS_CONSUMER).await.len(), 1);
}

#[tokio::test]
async fn opening_a_delivery_says_where_it_stood_and_never_reopens_a_sent_one() {
    let sink = SmtpSink::start().await;
    let notifier = harness::start(Some(sink.url()), quick_settings(3)).await;
    let pool = &notifier.db.pool;
    let event_id = uuid::Uuid::now_v7();
    let delivery = notifier::store::NewDelivery {
        event_id,
        kind: "booking_confirmed",
        recipient: "ada@example.com",
        subject: "Your booking",
        message_id: "<open@bookmyseat.test>",
    };
    use notifier::store::{Opened, attempt_failed, open, sent};

    assert_eq!(open(pool, &delivery).await.unwrap(), (Opened::New, 1));
    attempt_failed(pool, event_id, "421 try later", false)
        .await
        .unwrap();
    assert_eq!(open(pool, &delivery).await.unwrap(), (Opened::Unsent, 2));
    assert_eq!(
        open(pool, &delivery).await.unwrap(),
        (Opened::Interrupted, 3),
        "an attempt that recorded no end"
    );
    sent(pool, event_id, "smtp").await.unwrap();
    assert_eq!(
        open(pool, &delivery).await.unwrap(),
        (Opened::AlreadySent, 0)
    );
    let record = notifier.delivery(event_id).await.expect("recorded");
    assert_eq!(record.status, "sent", "a sent delivery stays sent");
    assert_eq!(record.attempts, 3, "opening a sent delivery counts nothing");
}
