//! Seats and holds through the gateway, against real catalog and seating
//! services: the JSON API, the live event stream, and the seat page with and
//! without JavaScript.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Gateway, classic_showtime, header, seat};

/// How long a test waits for an event that must come.
const EVENT_WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn seat_map_lists_every_seat_of_the_layout() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let map = gateway.seat_map(&showtime, "alice").await;
    assert_eq!(map["showtime_id"], showtime.as_str());
    assert!(map["version"].is_u64());
    let seats = map["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 120, "10 rows of 12");
    assert_eq!(seats[0]["label"], "A1", "front row first");
    assert_eq!(seats[0]["row"], "A");
    assert_eq!(seats[0]["number"], 1);
    assert!(seats[0]["category"].is_string());
    for seat in seats {
        assert_eq!(seat["state"], "available", "{seat}");
        assert_eq!(seat["mine"], false);
    }
}

#[tokio::test]
async fn holding_seats_answers_201_with_the_hold_and_its_expiry() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let response = gateway
        .as_user(
            Method::POST,
            &format!("/api/v1/showtimes/{showtime}/holds"),
            "alice",
        )
        .await
        .json(&serde_json::json!({ "seats": ["E6", "e7"] }))
        .send()
        .await
        .expect("POST holds");
    assert_eq!(response.status(), 201);
    let location = header(&response, "location");
    let hold: Value = response.json().await.expect("JSON");
    let id = hold["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/v1/holds/{id}"));
    assert_eq!(hold["showtime_id"], showtime.as_str());
    assert_eq!(hold["status"], "active");
    let labels: Vec<&str> = hold["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| s["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels.len(), 2);
    assert!(
        labels.contains(&"E6") && labels.contains(&"E7"),
        "{labels:?}"
    );
    let held_until: chrono::DateTime<chrono::Utc> = hold["held_until"]
        .as_str()
        .expect("held_until")
        .parse()
        .expect("RFC 3339");
    assert!(held_until > chrono::Utc::now(), "the hold lasts a while");

    // The holder sees the seats as theirs, everyone else as held.
    let mine = gateway.seat_map(&showtime, "alice").await;
    assert_eq!(seat(&mine, "E6")["state"], "held");
    assert_eq!(seat(&mine, "E6")["mine"], true);
    let theirs = gateway.seat_map(&showtime, "bob").await;
    assert_eq!(seat(&theirs, "E6")["state"], "held");
    assert_eq!(seat(&theirs, "E6")["mine"], false);
    assert_eq!(seat(&theirs, "E8")["state"], "available");

    // The holder can read the hold back; nobody else can.
    let path = format!("/api/v1/holds/{id}");
    let response = gateway
        .as_user(Method::GET, &path, "alice")
        .await
        .send()
        .await
        .expect("GET hold");
    assert_eq!(response.status(), 200);
    let response = gateway
        .as_user(Method::GET, &path, "bob")
        .await
        .send()
        .await
        .expect("GET hold");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn holding_a_seat_someone_else_holds_is_a_409_naming_it() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let (status, _) = gateway.hold(&showtime, "alice", &["E6", "E7"]).await;
    assert_eq!(status, 201);

    let (status, body) = gateway.hold(&showtime, "bob", &["E7", "E8"]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "seats_unavailable");
    assert_eq!(body["error"]["seats"], serde_json::json!(["E7"]));
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("E7")
    );
    // All or nothing: the free seat of the refused request stays free.
    let map = gateway.seat_map(&showtime, "bob").await;
    assert_eq!(seat(&map, "E8")["state"], "available");
}

#[tokio::test]
async fn bad_seat_requests_are_400_and_unknown_showtimes_404() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let too_many: Vec<String> = (1..=11).map(|n| format!("A{n}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    for (seats, why) in [
        (vec![], "no seats"),
        (vec!["K1"], "no row K"),
        (vec!["A13"], "row A has 12 seats"),
        (vec!["E6", "E6"], "the same seat twice"),
        (vec!["E6", "e6"], "the same seat twice, in other case"),
        (vec!["front-row"], "not a seat label"),
        (too_many, "more seats than one hold may have"),
    ] {
        let (status, body) = gateway.hold(&showtime, "alice", &seats).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{why}");
    }
    // Nothing was held by any of them.
    let map = gateway.seat_map(&showtime, "alice").await;
    assert!(
        map["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .all(|s| s["state"] == "available")
    );

    let response = gateway
        .as_user(
            Method::POST,
            &format!("/api/v1/showtimes/{showtime}/holds"),
            "alice",
        )
        .await
        .header("content-type", "application/json")
        .body("{\"seats\": \"E6\"}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400, "a malformed body");

    let unknown = "6f1c2b9e-8f3a-4c1d-9b7e-2a5d4c3b2a10";
    let (status, _) = gateway.hold(unknown, "alice", &["A1"]).await;
    assert_eq!(status, 404);
    let response = gateway
        .as_user(
            Method::GET,
            &format!("/api/v1/showtimes/{unknown}/seats"),
            "alice",
        )
        .await
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    let (status, _) = gateway.hold("not-a-uuid", "alice", &["A1"]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn releasing_someone_elses_hold_is_403_and_changes_nothing() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let (_, hold) = gateway.hold(&showtime, "alice", &["C3"]).await;
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().expect("id"));
    let response = gateway
        .as_user(Method::DELETE, &path, "mallory")
        .await
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "forbidden");
    let map = gateway.seat_map(&showtime, "alice").await;
    assert_eq!(seat(&map, "C3")["mine"], true, "still alice's");
}

#[tokio::test]
async fn releasing_your_own_hold_makes_its_seats_available_again() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let (_, hold) = gateway.hold(&showtime, "alice", &["C3", "C4"]).await;
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().expect("id"));
    let response = gateway
        .as_user(Method::DELETE, &path, "alice")
        .await
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 204);
    let map = gateway.seat_map(&showtime, "bob").await;
    assert_eq!(seat(&map, "C3")["state"], "available");
    assert_eq!(seat(&map, "C4")["state"], "available");
    // ...so somebody else can have them now.
    let (status, _) = gateway.hold(&showtime, "bob", &["C3"]).await;
    assert_eq!(status, 201);

    let response = gateway
        .as_user(Method::DELETE, "/api/v1/holds/not-a-uuid", "alice")
        .await
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 400);
}

/// Reads server-sent events from `response` until one satisfies `wanted`.
async fn next_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    wanted: impl Fn(&str, &Value) -> bool,
) -> (String, Value) {
    let read = async {
        loop {
            // Events are separated by a blank line.
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                let json: Value = serde_json::from_str(&data).expect("event data is JSON");
                if wanted(&name, &json) {
                    return (name, json);
                }
            }
            let chunk = response
                .chunk()
                .await
                .expect("reading the event stream")
                .expect("the event stream ended");
            buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    };
    tokio::time::timeout(EVENT_WAIT, read)
        .await
        .expect("the expected event never came")
}

#[tokio::test]
async fn event_stream_delivers_the_change_when_another_client_holds_a_seat() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let mut stream = gateway
        .as_user(
            Method::GET,
            &format!("/api/v1/showtimes/{showtime}/events"),
            "watcher",
        )
        .await
        .send()
        .await
        .expect("GET events");
    assert_eq!(stream.status(), 200);
    assert!(header(&stream, "content-type").starts_with("text/event-stream"));
    let mut buffer = String::new();
    // The snapshot comes first; once it is here the stream is subscribed.
    let (_, snapshot) = next_event(&mut stream, &mut buffer, |name, _| name == "snapshot").await;
    assert_eq!(snapshot["seats"].as_array().expect("seats").len(), 120);
    assert_eq!(seat(&snapshot, "F9")["state"], "available");

    let (status, hold) = gateway.hold(&showtime, "someone-else", &["F9"]).await;
    assert_eq!(status, 201);

    let (_, change) = next_event(&mut stream, &mut buffer, |name, data| {
        name == "seats"
            && data["changes"]
                .as_array()
                .is_some_and(|changes| changes.iter().any(|c| c["label"] == "F9"))
    })
    .await;
    let f9 = change["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["label"] == "F9")
        .expect("F9");
    assert_eq!(f9["state"], "held");
    assert_eq!(f9["hold_id"], hold["id"]);
    assert!(
        change["version"].as_u64() > snapshot["version"].as_u64(),
        "changes come with a newer version than the snapshot"
    );

    // A release is live too.
    let path = format!("/api/v1/holds/{}", hold["id"].as_str().expect("id"));
    gateway
        .as_user(Method::DELETE, &path, "someone-else")
        .await
        .send()
        .await
        .expect("DELETE");
    let (_, change) = next_event(&mut stream, &mut buffer, |name, data| {
        name == "seats"
            && data["changes"].as_array().is_some_and(|changes| {
                changes
                    .iter()
                    .any(|c| c["label"] == "F9" && c["state"] == "available")
            })
    })
    .await;
    assert!(change["version"].is_u64());
}

#[tokio::test]
async fn event_stream_of_an_unknown_showtime_is_a_404() {
    let gateway = Gateway::with_seating().await;
    let response = gateway
        .as_user(
            Method::GET,
            "/api/v1/showtimes/6f1c2b9e-8f3a-4c1d-9b7e-2a5d4c3b2a10/events",
            "watcher",
        )
        .await
        .send()
        .await
        .expect("GET events");
    assert_eq!(response.status(), 404);
}

/// GET the seat page as `user`.
async fn seat_page(gateway: &Gateway, path: &str, user: &str) -> String {
    let response = gateway
        .as_user(Method::GET, path, user)
        .await
        .send()
        .await
        .expect("GET page");
    assert_eq!(response.status(), 200);
    response.text().await.expect("HTML")
}

/// The `<input>` tag of seat `label` on a seat page.
fn seat_input<'a>(html: &'a str, label: &str) -> &'a str {
    let marker = format!("name=\"seats\" value=\"{label}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no control for seat {label}"));
    let start = html[..at].rfind("<input").expect("<input");
    let end = at + html[at..].find('>').expect(">");
    &html[start..=end]
}

#[tokio::test]
async fn seat_page_renders_every_seat_as_an_accessible_control_with_its_state() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let (status, _) = gateway.hold(&showtime, "bob", &["D4"]).await;
    assert_eq!(status, 201);
    let (status, _) = gateway.hold(&showtime, "alice", &["D5"]).await;
    assert_eq!(status, 201);

    let html = seat_page(&gateway, &format!("/showtimes/{showtime}"), "alice").await;
    assert_eq!(
        html.matches("type=\"checkbox\" name=\"seats\"").count(),
        120,
        "every seat is a form control"
    );
    assert!(html.contains(&format!("action=\"/showtimes/{showtime}/hold\"")));
    assert!(html.contains("Screen this way"), "the screen is drawn");
    assert!(html.contains("aria-label=\"Row J\""), "rows are labelled");
    assert!(html.contains("data-hold-button"), "a hold button");
    assert!(
        html.contains("Held by you") && html.contains("Taken"),
        "a legend"
    );
    assert!(html.contains("data-selection-total"), "a running total");

    let free = seat_input(&html, "A1");
    assert!(free.contains("aria-label=\"Seat A1, "), "{free}");
    assert!(free.contains("₹"), "the price is part of the name: {free}");
    assert!(free.contains(", available\""), "{free}");
    assert!(!free.contains("disabled"), "{free}");

    let taken = seat_input(&html, "D4");
    assert!(taken.contains(", held by someone else\""), "{taken}");
    assert!(taken.contains("disabled"), "{taken}");

    let mine = seat_input(&html, "D5");
    assert!(mine.contains(", held by you\""), "{mine}");
    assert!(mine.contains("checked"), "{mine}");
    assert!(!mine.contains("disabled"), "{mine}");

    // The live behaviour is a script of our own, not inline code.
    assert!(html.contains("src=\"/static/seatmap.js?v="));
    assert!(html.contains("data-seat-form"));
}

#[tokio::test]
async fn form_hold_without_javascript_redirects_to_the_page_showing_the_hold() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let response = gateway
        .as_user(
            Method::POST,
            &format!("/showtimes/{showtime}/hold"),
            "carol",
        )
        .await
        .header("content-type", "application/x-www-form-urlencoded")
        .body("seats=G3&seats=G4")
        .send()
        .await
        .expect("POST form");
    assert_eq!(response.status(), 303);
    let location = header(&response, "location");
    assert!(
        location.starts_with(&format!("/showtimes/{showtime}?hold=")),
        "{location}"
    );
    let hold_id = location
        .split("hold=")
        .nth(1)
        .and_then(|rest| rest.split('#').next())
        .expect("hold id")
        .to_owned();

    let html = seat_page(&gateway, &location, "carol").await;
    assert!(html.contains("Your seats are held"));
    assert!(html.contains("G3, G4"));
    assert!(html.contains(&format!("name=\"hold_id\" value=\"{hold_id}\"")));
    assert!(seat_input(&html, "G3").contains("held by you"));

    // Someone else asking for one of them, also without JavaScript, is told
    // which seat went, and keeps the rest of their choice.
    let response = gateway
        .as_user(Method::POST, &format!("/showtimes/{showtime}/hold"), "dave")
        .await
        .header("content-type", "application/x-www-form-urlencoded")
        .body("seats=G4&seats=G5")
        .send()
        .await
        .expect("POST form");
    assert_eq!(response.status(), 409);
    let html = response.text().await.expect("HTML");
    assert!(
        html.contains("Seat G4 is no longer available"),
        "the reason"
    );
    assert!(
        seat_input(&html, "G5").contains("checked"),
        "G5 stays chosen"
    );
    assert!(seat_input(&html, "G4").contains("disabled"));

    // An empty choice is explained on the page too.
    let response = gateway
        .as_user(Method::POST, &format!("/showtimes/{showtime}/hold"), "dave")
        .await
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("POST form");
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("HTML")
            .contains("Pick at least one seat")
    );

    // Releasing through the form frees the seats.
    let response = gateway
        .as_user(
            Method::POST,
            &format!("/showtimes/{showtime}/release"),
            "carol",
        )
        .await
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("hold_id={hold_id}"))
        .send()
        .await
        .expect("POST release");
    assert_eq!(response.status(), 303);
    assert_eq!(
        header(&response, "location"),
        format!("/showtimes/{showtime}")
    );
    let map = gateway.seat_map(&showtime, "dave").await;
    assert_eq!(seat(&map, "G3")["state"], "available");
}

#[tokio::test]
async fn visitors_see_the_seat_map_but_must_sign_in_to_hold_seats() {
    let gateway = Gateway::with_seating().await;
    let (showtime, _) = classic_showtime(&gateway).await;

    // The page and the map are public; the page invites the visitor to sign in.
    let page = gateway.page(&format!("/showtimes/{showtime}"), 200).await;
    assert!(
        page.contains("data-sign-in-notice"),
        "no sign-in invitation"
    );
    assert!(page.contains("Sign in to hold seats"));
    let map = gateway
        .json(&format!("/api/v1/showtimes/{showtime}/seats"), 200)
        .await;
    assert_eq!(seat(&map, "B2")["state"], "available");

    // The API refuses a hold without a session: 401, even with a valid
    // anonymous CSRF token, and nothing is held.
    let (cookie, token) = gateway.anonymous_csrf().await;
    let refused = gateway
        .http
        .post(format!("{}/api/v1/showtimes/{showtime}/holds", gateway.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &token)
        .json(&serde_json::json!({ "seats": ["B2"] }))
        .send()
        .await
        .expect("POST holds");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unauthorized");

    // The no-JS form sends the visitor to sign in and back to this page.
    let form = gateway
        .http
        .post(format!("{}/showtimes/{showtime}/hold", gateway.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("seats=B2&csrf_token={token}"))
        .send()
        .await
        .expect("POST hold form");
    assert_eq!(form.status(), 303);
    assert_eq!(
        header(&form, "location"),
        format!("/login?next=%2Fshowtimes%2F{showtime}")
    );
    let map = gateway
        .json(&format!("/api/v1/showtimes/{showtime}/seats"), 200)
        .await;
    assert_eq!(seat(&map, "B2")["state"], "available");

    // A signed-in user's own held seats are marked as theirs.
    let (status, _) = gateway.hold(&showtime, "erin", &["B2"]).await;
    assert_eq!(status, 201);
    assert_eq!(
        seat(&gateway.seat_map(&showtime, "erin").await, "B2")["mine"],
        true
    );
    assert_eq!(
        seat(&gateway.seat_map(&showtime, "frank").await, "B2")["mine"],
        false
    );
}

#[tokio::test]
async fn openapi_document_describes_the_seat_endpoints() {
    let gateway = Gateway::with_demo_programme().await;
    let document: Value = gateway.json("/api/openapi.json", 200).await;
    let paths = &document["paths"];
    assert!(paths["/api/v1/showtimes/{id}/seats"]["get"]["responses"]["200"].is_object());
    assert!(paths["/api/v1/showtimes/{id}/events"]["get"]["responses"]["200"].is_object());
    let create = &paths["/api/v1/showtimes/{id}/holds"]["post"]["responses"];
    for status in ["201", "400", "404", "409"] {
        assert!(create[status].is_object(), "POST holds {status}");
    }
    let release = &paths["/api/v1/holds/{id}"]["delete"]["responses"];
    for status in ["204", "403", "404"] {
        assert!(release[status].is_object(), "DELETE hold {status}");
    }
    for schema in ["SeatMap", "Hold", "HoldRequest", "SeatChanges"] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
}

/// When a premiere opens, a crowd loads its seat map at once. The gateway
/// fetches at most `GATEWAY_MAP_READS` of those maps from seating at a time
/// (fewer than seating's own `SEATING_MAP_READS`, 4, here), so the others
/// wait in the gateway rather than filling its task queues ahead of holds;
/// every one is answered in the end. Seating's seat-map queries are held up
/// by a lock on its seats table, which shows how many reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_loading_a_seat_map_is_fetched_a_few_maps_at_a_time() {
    const MAP_READS: u16 = 2;
    const CROWD: usize = 12;
    let gateway = Gateway::with_seating_configured(|c| c.map_reads = MAP_READS).await;
    let (showtime, _) = classic_showtime(&gateway).await;
    let path = format!("/api/v1/showtimes/{showtime}/seats");
    // Seating learns the showtime before the crowd comes.
    assert_eq!(gateway.get(&path).await.status(), 200);
    let seating = gateway.seating.as_ref().expect("seating runs");
    let lock = seating.lock_seats().await;

    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..CROWD {
        let (http, url) = (gateway.http.clone(), format!("{}{path}", gateway.url));
        crowd.spawn(async move {
            let response = http.get(url).send().await.expect("GET seats");
            let status = response.status().as_u16();
            let map: Value = response.json().await.expect("a JSON body");
            (status, map)
        });
    }
    test_support::eventually(
        "the first seat-map reads reach seating's database",
        || async { seating.seat_maps_waiting().await >= i64::from(MAP_READS) },
    )
    .await;
    // Time for more reads to reach the database, were they let through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seating.seat_maps_waiting().await,
        i64::from(MAP_READS),
        "only GATEWAY_MAP_READS seat maps are fetched at once"
    );

    lock.unlock().await;
    while let Some(read) = crowd.join_next().await {
        let (status, map) = read.expect("the read's task");
        assert_eq!(status, 200, "every read is answered once the lock goes");
        assert_eq!(map["seats"].as_array().map(Vec::len), Some(120));
    }
}
