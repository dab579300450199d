//! Programme management by staff through the gateway's pages, against a real
//! catalog: what is saved shows up in the public programme, and what catalog
//! refuses comes back with each message next to its field.

use serde_json::Value;

use crate::harness::Gateway;

/// The error shown next to form field `name`, if any.
fn field_error(html: &str, name: &str) -> Option<String> {
    let marker = format!("data-field-error=\"{name}\">");
    html.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .map(str::to_owned)
}

#[tokio::test]
async fn staff_add_and_edit_a_film_that_then_appears_in_the_programme() {
    let gateway = Gateway::with_demo_programme().await;
    let staff = gateway.staff_session("sofia").await;
    let (status, html) = gateway.page_as("/admin/films/new", &staff).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"trailer_url\""));

    let film = [
        ("title", "The Cabinet of Dr. Caligari"),
        ("slug", ""),
        (
            "synopsis",
            "A hypnotist and a somnambulist in a crooked town.",
        ),
        ("genres", "horror, drama"),
        ("language", "de"),
        ("duration_minutes", "76"),
        ("certificate", "U"),
        ("poster_url", ""),
        ("trailer_url", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ];
    let (status, location, body) = gateway.post_form("/admin/films/new", &staff, &film).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, "/admin/programme?saved=film");
    let saved: Value = gateway
        .json("/api/v1/movies/the-cabinet-of-dr-caligari", 200)
        .await;
    assert_eq!(saved["duration_minutes"], 76);
    let id = saved["id"].as_str().expect("id").to_owned();

    // The edit form shows what was saved; a change is saved.
    let (status, html) = gateway.page_as(&format!("/admin/films/{id}"), &staff).await;
    assert_eq!(status, 200);
    assert!(html.contains("value=\"76\""));
    let mut edited = film;
    edited[5] = ("duration_minutes", "78");
    edited[1] = ("slug", "the-cabinet-of-dr-caligari");
    let (status, _, body) = gateway
        .post_form(&format!("/admin/films/{id}"), &staff, &edited)
        .await;
    assert_eq!(status, 303, "{body}");
    // Catalog's read cache lives two seconds; the change shows after it.
    test_support::eventually("the edit reaches the programme", || async {
        let film: Value = gateway
            .json("/api/v1/movies/the-cabinet-of-dr-caligari", 200)
            .await;
        film["duration_minutes"] == 78
    })
    .await;
}

#[tokio::test]
async fn a_refused_film_comes_back_with_messages_next_to_its_fields() {
    let gateway = Gateway::with_demo_programme().await;
    let staff = gateway.staff_session("tomas").await;
    let before: Value = gateway.json("/api/v1/movies?page_size=100", 200).await;
    let bad = [
        ("title", "Vimeo Trailer"),
        ("synopsis", "x"),
        ("genres", "drama"),
        ("language", "en"),
        ("duration_minutes", "90"),
        ("trailer_url", "https://vimeo.com/12345"),
    ];
    let (status, _, html) = gateway.post_form("/admin/films/new", &staff, &bad).await;
    assert_eq!(status, 400);
    let error = field_error(&html, "trailer_url").expect("an error next to the trailer");
    assert!(error.contains("YouTube"), "{error}");
    assert!(
        html.contains("value=\"Vimeo Trailer\""),
        "what was typed is kept"
    );

    let mut not_a_number = bad;
    not_a_number[4] = ("duration_minutes", "ninety");
    let (status, _, html) = gateway
        .post_form("/admin/films/new", &staff, &not_a_number)
        .await;
    assert_eq!(status, 400);
    assert!(field_error(&html, "duration_minutes").is_some());

    let after: Value = gateway.json("/api/v1/movies?page_size=100", 200).await;
    assert_eq!(
        after["total_count"], before["total_count"],
        "nothing was added"
    );
}

#[tokio::test]
async fn staff_add_a_cinema_and_a_screen_with_its_layout() {
    let gateway = Gateway::with_demo_programme().await;
    let staff = gateway.staff_session("ulla").await;
    let (status, _, body) = gateway
        .post_form(
            "/admin/cinemas/new",
            &staff,
            &[
                ("name", "Odeon Pune"),
                ("city", "Pune"),
                ("address", "FC Road"),
                ("time_zone", "Asia/Kolkata"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, overview) = gateway.page_as("/admin/programme", &staff).await;
    assert!(overview.contains("Odeon Pune"));
    let cinema_id = overview
        .split("data-cinema=\"")
        .skip(1)
        .find(|chunk| chunk.contains("Odeon Pune"))
        .and_then(|chunk| chunk.split('"').next())
        .expect("the new cinema's id")
        .to_owned();

    // A layout line that is not "label seats category" is refused at once.
    let (status, _, html) = gateway
        .post_form(
            &format!("/admin/cinemas/{cinema_id}/screens/new"),
            &staff,
            &[
                ("name", "Screen 1"),
                ("rows", "A 10 standard\nB ten standard"),
                ("aisles", ""),
            ],
        )
        .await;
    assert_eq!(status, 400);
    let error = field_error(&html, "rows").expect("an error next to the rows");
    assert!(error.contains("Line 2"), "{error}");

    // One catalog refuses (a row beyond the bounds) names the rows too.
    let (status, _, html) = gateway
        .post_form(
            &format!("/admin/cinemas/{cinema_id}/screens/new"),
            &staff,
            &[
                ("name", "Screen 1"),
                ("rows", "A 10 standard\nB 500 standard"),
                ("aisles", ""),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        field_error(&html, "rows").is_some(),
        "catalog's message is next to the rows"
    );

    let (status, _, body) = gateway
        .post_form(
            &format!("/admin/cinemas/{cinema_id}/screens/new"),
            &staff,
            &[
                ("name", "Screen 1"),
                ("rows", "A 10 standard\nB 10 standard\nC 12 premium"),
                ("aisles", "5"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, overview) = gateway.page_as("/admin/programme", &staff).await;
    assert!(overview.contains("Screen 1 <span class=\"muted\">(32 seats)</span>"));
}

/// Adds a cinema with one 2×10 standard screen; answers the screen's id.
async fn small_screen(gateway: &Gateway, staff: &crate::harness::Session) -> String {
    let (status, _, body) = gateway
        .post_form(
            "/admin/cinemas/new",
            staff,
            &[
                ("name", "Studio Nine"),
                ("city", "Kochi"),
                ("address", ""),
                ("time_zone", "Asia/Kolkata"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, overview) = gateway.page_as("/admin/programme", staff).await;
    let cinema_id = overview
        .split("data-cinema=\"")
        .skip(1)
        .find(|chunk| chunk.contains("Studio Nine"))
        .and_then(|chunk| chunk.split('"').next())
        .expect("the new cinema")
        .to_owned();
    let (status, _, body) = gateway
        .post_form(
            &format!("/admin/cinemas/{cinema_id}/screens/new"),
            staff,
            &[
                ("name", "Nine A"),
                ("rows", "A 10 standard\nB 10 standard"),
                ("aisles", ""),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, overview) = gateway.page_as("/admin/programme", staff).await;
    overview
        .split("data-screen=\"")
        .skip(1)
        .find(|chunk| chunk.contains("Nine A"))
        .and_then(|chunk| chunk.split('"').next())
        .expect("the new screen")
        .to_owned()
}

#[tokio::test]
async fn staff_schedule_showtimes_and_overlaps_are_refused() {
    let gateway = Gateway::with_demo_programme().await;
    let staff = gateway.staff_session("vera").await;
    let screen_id = small_screen(&gateway, &staff).await;
    let film: Value = gateway.json("/api/v1/movies/metropolis", 200).await;
    let film_id = film["id"].as_str().expect("id").to_owned();
    let (status, html) = gateway
        .page_as(&format!("/admin/showtimes/new?film={film_id}"), &staff)
        .await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("<option value=\"{film_id}\" selected>")));

    let day = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let schedule = |starts: String, prices: &'static str| {
        let gateway = &gateway;
        let staff = &staff;
        let (film_id, screen_id) = (film_id.clone(), screen_id.clone());
        async move {
            gateway
                .post_form(
                    "/admin/showtimes/new",
                    staff,
                    &[
                        ("film_id", film_id.as_str()),
                        ("screen_id", screen_id.as_str()),
                        ("starts_local", starts.as_str()),
                        ("currency", "INR"),
                        ("prices", prices),
                    ],
                )
                .await
        }
    };

    let (status, location, html) = schedule(format!("{day}T18:30"), "standard 300").await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(location, "/admin/programme?saved=showtime");

    // The same screen, half an hour later: it overlaps, and nothing is added.
    let (status, _, html) = schedule(format!("{day}T19:00"), "standard 300").await;
    assert_eq!(status, 400);
    assert!(html.contains("notice--error"), "the refusal is shown");
    // A price that is not an amount, and a start that is not a time.
    let (status, _, html) = schedule("soon".to_owned(), "standard lots").await;
    assert_eq!(status, 400);
    assert!(field_error(&html, "starts_local").is_some());
    assert!(field_error(&html, "prices").is_some());
    // A category the screen does not have: catalog names the prices.
    let (status, _, html) = schedule(format!("{day}T10:00"), "standard 300\nvip 900").await;
    assert_eq!(status, 400);
    assert!(field_error(&html, "prices").is_some(), "{html}");

    // One showtime exists, at 18:30 on the cinema's clock.
    let (_, listing) = gateway
        .page_as(&format!("/admin/films/{film_id}/showtimes"), &staff)
        .await;
    let lines = listing.matches("Studio Nine").count();
    assert_eq!(lines, 1, "{listing}");
    let slot = listing
        .split("href=\"/admin/showtimes/")
        .skip(1)
        .find(|chunk| chunk.contains("Studio Nine"))
        .expect("the slot");
    assert!(slot.contains("18:30") || slot.contains("6:30"), "{slot}");
    let showtime_id = slot.split('"').next().expect("id").to_owned();

    // Editing it: the form shows the local time and prices; a new price is saved.
    let (status, html) = gateway
        .page_as(&format!("/admin/showtimes/{showtime_id}"), &staff)
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("value=\"{day}T18:30\"")),
        "local start shown"
    );
    assert!(html.contains("standard 300"));
    let (status, _, html) = gateway
        .post_form(
            &format!("/admin/showtimes/{showtime_id}"),
            &staff,
            &[
                ("film_id", film_id.as_str()),
                ("screen_id", screen_id.as_str()),
                ("starts_local", &format!("{day}T18:30")),
                ("currency", "INR"),
                ("prices", "standard 350"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{html}");
    test_support::eventually("the new price is public", || async {
        let detail: Value = gateway
            .json(&format!("/api/v1/showtimes/{showtime_id}"), 200)
            .await;
        detail["prices"][0]["price"]["amount_minor"] == 35_000
    })
    .await;
}
