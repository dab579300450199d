//! The staff dashboard against a real analytics service fed by the real
//! seating and payments: a booking paid through the simulated provider
//! moves the figures, shows up in the activity and the CSV export; bad
//! ranges are refused; only staff get in; analytics down leaves a page that
//! says so.

use reqwest::Method;
use serde_json::Value;

use crate::checkout::{hold_and_checkout, payment_page, session_id_of};
use crate::harness::{Gateway, Session, classic_showtime, header};

/// Pays for `seats` through the simulated provider as `user`; the booking
/// reference and the checkout's total.
async fn book(gateway: &Gateway, user: &str, seats: &[&str]) -> (String, Value) {
    let (showtime, _) = classic_showtime(gateway).await;
    let buyer = gateway.session_of(user).await;
    let (_, response) = hold_and_checkout(gateway, &showtime, &buyer, user, seats).await;
    let pay_page = payment_page(response).await;
    let paid = gateway
        .http
        .post(format!("{pay_page}/pay"))
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), 303);
    let session_id = session_id_of(&header(&paid, "location"));
    let path = format!("/api/v1/checkouts/{session_id}");
    let checkout = || async {
        gateway
            .with_session(Method::GET, &path, &buyer)
            .send()
            .await
            .expect("GET checkout")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    test_support::eventually("the checkout has its booking", || async {
        checkout().await["booking_reference"].is_string()
    })
    .await;
    let checkout = checkout().await;
    let reference = checkout["booking_reference"]
        .as_str()
        .expect("a reference")
        .to_owned();
    (reference, checkout["total"].clone())
}

/// GET `path` as `session`: status, headers and body.
async fn get_as(
    gateway: &Gateway,
    path: &str,
    session: &Session,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = gateway
        .with_session(Method::GET, path, session)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

#[tokio::test]
async fn a_paid_booking_moves_the_figures_and_is_in_the_activity_and_the_export() {
    let gateway = Gateway::with_payments().await;
    let staff = gateway.staff_session("wanda").await;
    let (reference, total) = book(&gateway, "yara", &["E5", "E6"]).await;
    let amount = total["amount_minor"].as_i64().expect("amount_minor");
    let currency = total["currency"].as_str().expect("currency").to_owned();
    assert!(amount > 0, "{total}");

    // Analytics learns of the booking from the events; the JSON shows it.
    let stats = || async {
        let (status, _, body) = get_as(&gateway, "/api/v1/admin/stats", &staff).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    test_support::eventually("the figures count the booking", || async {
        stats().await["totals"]["bookings"] == 1
    })
    .await;
    let stats = stats().await;
    let totals = &stats["totals"];
    assert_eq!(totals["seats_sold"], 2);
    assert_eq!(
        totals["revenue"],
        serde_json::json!([{ "amount_minor": amount, "currency": currency }]),
        "revenue is the checkout's total"
    );
    assert!(totals["occupancy"].as_f64().expect("occupancy") > 0.0);
    let days = stats["revenue_by_day"].as_array().expect("days");
    assert_eq!(days.len(), 14, "the last fourteen days by default");
    assert_eq!(days.last().expect("today")["date"], today());
    assert_eq!(days.last().expect("today")["bookings"], 1);
    assert_eq!(stats["top_films"][0]["seats_sold"], 2);
    assert_eq!(stats["occupancy"][0]["seats_sold"], 2);
    assert_eq!(stats["activity"][0]["reference"], reference.as_str());
    assert_eq!(stats["activity"][0]["kind"], "booking.confirmed");

    // The page shows the same figures, charted and tabled.
    let (status, html) = gateway.page_as("/admin/dashboard", &staff).await;
    assert_eq!(status, 200, "{html}");
    let formatted = gateway::money::format(amount, &currency);
    assert!(html.contains("data-figure=\"Bookings\""), "{html}");
    assert!(html.contains(&formatted), "revenue {formatted} is shown");
    assert!(
        html.contains(&format!("data-chart=\"revenue-{currency}\"")),
        "a revenue chart per currency"
    );
    assert!(
        html.contains("<svg") && html.contains("<title>"),
        "bars have titles"
    );
    assert!(html.contains("data-chart=\"films\""));
    assert!(html.contains(&format!("data-activity=\"{reference}\"")));
    assert!(
        html.split("<script")
            .skip(1)
            .all(|tag| tag.starts_with(" src=")),
        "no inline scripts (the CSP forbids them): the charts are plain SVG"
    );
    assert_eq!(html.matches("<script").count(), 1, "only the site's app.js");
    assert!(!html.contains("data-figures-unavailable"));

    // The export of today has a header row and the booking.
    let path = format!("/admin/bookings.csv?from={}&to={}", today(), today());
    let (status, headers, csv) = get_as(&gateway, &path, &staff).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!(
            "attachment; filename=\"bookings-{}-{}.csv\"",
            today(),
            today()
        )
        .as_str()
    );
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(gateway::dashboard::EXPORT_COLUMNS.join(",").as_str())
    );
    let row = lines.next().expect("the booking's row");
    assert!(row.contains(&reference), "{csv}");
    let film = stats["top_films"][0]["film_title"].as_str().expect("title");
    assert!(row.contains(film), "the film is named: {row}");
    assert!(
        row.ends_with(&format!(
            ",2,{},{amount},{currency},0",
            gateway::money::major_units(amount, &currency)
        )),
        "two seats, the amount both ways, nothing refunded: {row}"
    );
    assert_eq!(lines.next(), Some(""), "one booking, then the end: {csv}");

    // A range without the booking exports only the header row.
    let (status, _, empty) = get_as(
        &gateway,
        "/admin/bookings.csv?from=2020-01-01&to=2020-01-31",
        &staff,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        format!("{}\r\n", gateway::dashboard::EXPORT_COLUMNS.join(","))
    );
}

#[tokio::test]
async fn bad_date_ranges_are_refused_with_400_and_a_reason() {
    let gateway = Gateway::with_seating().await;
    let staff = gateway.staff_session("wanda").await;
    let cases = [
        ("from=2026-13-01&to=2026-12-01", "YYYY-MM-DD"),
        ("from=22%2F11%2F2026", "YYYY-MM-DD"),
        ("from=2026-11-22&to=2026-11-01", "after it ends"),
        ("from=2025-01-01&to=2026-02-01", "at most 366"),
    ];
    for base in [
        "/admin/bookings.csv",
        "/api/v1/admin/stats",
        "/admin/dashboard",
    ] {
        for (query, reason) in cases {
            let path = format!("{base}?{query}");
            let (status, _, body) = get_as(&gateway, &path, &staff).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains(reason), "{path} says why: {body}");
        }
    }
}

#[tokio::test]
async fn customers_are_refused_the_dashboard_the_export_and_the_stats() {
    let gateway = Gateway::with_seating().await;
    let customer = gateway.session_of("uma").await;
    for path in [
        "/admin/dashboard",
        "/admin/bookings.csv",
        "/api/v1/admin/stats",
    ] {
        let (status, _, body) = get_as(&gateway, path, &customer).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("booked_at_utc"), "{path}");
    }
    let (_, admin) = gateway
        .page_as("/admin", &gateway.staff_session("wanda").await)
        .await;
    assert!(
        admin.contains("href=\"/admin/dashboard\""),
        "linked from the staff area"
    );
}

#[tokio::test]
async fn with_analytics_down_the_page_says_figures_are_unavailable_and_data_answers_503() {
    // This gateway's analytics address has nobody listening.
    let gateway = Gateway::with_seating().await;
    let staff = gateway.staff_session("wanda").await;
    let (status, html) = gateway.page_as("/admin/dashboard", &staff).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-figures-unavailable"), "{html}");
    assert!(html.contains("figures are unavailable"), "{html}");
    assert!(html.contains("try again"), "{html}");
    for path in ["/api/v1/admin/stats", "/admin/bookings.csv"] {
        let (status, _, body) = get_as(&gateway, path, &staff).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(!body.contains("booked_at_utc"), "no half-empty export");
    }
}
