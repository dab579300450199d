//! The simulated provider: payments' own checkout page when no Stripe key
//! is set, the same redirects and the same booking path; refused when a key
//! is set.

use proto::payments::v1 as pb;
use proto::seating::v1 as seating_pb;

use crate::harness::{Provider, eventually, fixture};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_simulated_provider_pays_end_to_end_into_a_booking() {
    let f = fixture(Provider::Simulated).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    assert!(checkout.simulated);
    assert_eq!(
        checkout.url,
        format!(
            "{}/simulated-checkout/{}",
            f.payments.http_url, checkout.session_id
        )
    );

    let http = no_redirects();
    let page = http.get(&checkout.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Test payment — no money moves"));
    assert!(html.contains(&format!(
        "action=\"/simulated-checkout/{}/pay\"",
        checkout.session_id
    )));
    assert!(html.contains(&format!(
        "action=\"/simulated-checkout/{}/cancel\"",
        checkout.session_id
    )));
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("https://"), "no external assets");
    for seat in &hold.seats {
        assert!(
            html.contains(&seat.label),
            "the summary names seat {}",
            seat.label
        );
    }

    let paid = http
        .post(format!("{}/pay", checkout.url))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(
        paid.headers()["location"],
        format!(
            "http://gateway.test/checkout/success?session_id={}",
            checkout.session_id
        )
        .as_str()
    );
    // Pressing Pay again (the back button) pays nothing twice.
    http.post(format!("{}/pay", checkout.url))
        .send()
        .await
        .unwrap();

    let reference = f.booking_reference(&checkout.id).await;
    for seat in &hold.seats {
        assert_eq!(
            f.seat_state(&seat.label).await,
            seating_pb::SeatState::Booked
        );
    }
    assert_eq!(
        f.count("SELECT count(*) FROM payments WHERE source = 'simulated'")
            .await,
        1
    );
    assert_eq!(f.events_on("payments.checkout.completed").await.len(), 1);
    eventually("payments knows the booking reference", || async {
        f.get_checkout(&checkout.session_id, "ann")
            .await
            .is_ok_and(|c| {
                c.booking_reference == reference && c.status == pb::CheckoutStatus::Paid as i32
            })
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_simulated_checkout_releases_the_hold() {
    let f = fixture(Provider::Simulated).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    let cancelled = no_redirects()
        .post(format!("{}/cancel", checkout.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 303);
    assert_eq!(
        cancelled.headers()["location"],
        format!(
            "http://gateway.test/checkout/cancel?session_id={}",
            checkout.session_id
        )
        .as_str()
    );
    let label = hold.seats[0].label.clone();
    eventually("the cancelled checkout's seats are free again", || async {
        f.seat_state(&label).await == seating_pb::SeatState::Available
    })
    .await;
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Expired
    );
}

#[tokio::test]
async fn the_simulated_provider_is_refused_when_a_stripe_key_is_set() {
    let f = fixture(Provider::Stripe).await;
    let hold = f.hold("ann").await;
    let checkout = f.checkout(&hold, "ann").await.unwrap();
    assert!(!checkout.simulated);
    let http = no_redirects();
    for session in [checkout.session_id.as_str(), "sim_anything"] {
        let url = format!("{}/simulated-checkout/{session}", f.payments.http_url);
        let page = http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 404);
        let text = page.text().await.unwrap();
        assert!(text.contains("real payments"), "says why: {text}");
        let pay = http.post(format!("{url}/pay")).send().await.unwrap();
        assert_eq!(pay.status(), 404);
    }
    assert_eq!(f.count("SELECT count(*) FROM payments").await, 0);
    assert_eq!(
        f.checkout_status(&checkout.session_id, "ann").await,
        pb::CheckoutStatus::Open
    );
}
