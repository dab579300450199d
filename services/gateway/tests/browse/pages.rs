//! The HTML pages: what a visitor without JavaScript sees.

use crate::harness::{Gateway, count_line, escaped, film_links, slugs_with, unescaped};

#[tokio::test]
async fn home_page_lists_the_seeded_films() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let html = gateway.page("/", 200).await;
    assert!(html.contains(&count_line(films.len())), "no film count");
    for film in films.iter().take(24) {
        let title = film["title"].as_str().expect("title");
        assert!(
            html.contains(&escaped(title)),
            "{title} is not on the home page"
        );
    }
    // Filter options come from the facets, with counts.
    let facets = gateway.json("/api/v1/facets", 200).await;
    let genre = &facets["genres"][0];
    assert!(html.contains(&format!(
        "<option value=\"{}\">{} ({})</option>",
        genre["slug"].as_str().expect("slug"),
        escaped(genre["name"].as_str().expect("name")),
        genre["film_count"]
    )));
}

#[tokio::test]
async fn home_page_genre_filter_narrows_the_list() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let facets = gateway.json("/api/v1/facets", 200).await;
    let genre = facets["genres"]
        .as_array()
        .expect("genres")
        .iter()
        .find(|g| {
            g["film_count"]
                .as_u64()
                .is_some_and(|c| c < films.len() as u64)
        })
        .expect("a genre that narrows")["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    let expected = slugs_with(&films, "genre", &genre);

    let html = gateway.page(&format!("/?genre={genre}"), 200).await;
    assert!(html.contains(&count_line(expected.len())));
    let listed = film_links(&html);
    assert_eq!(listed.len(), expected.len());
    for link in &listed {
        let slug = link.trim_start_matches("/films/");
        assert!(expected.iter().any(|s| s == slug), "{slug} is not {genre}");
    }
    // The chosen genre stays selected in the form.
    assert!(html.contains(&format!("<option value=\"{genre}\" selected>")));
}

#[tokio::test]
async fn home_page_language_filter_and_search_narrow_the_list() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let language = films[0]["language"]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let expected = slugs_with(&films, "language", &language);
    let html = gateway.page(&format!("/?language={language}"), 200).await;
    assert_eq!(film_links(&html).len(), expected.len());

    let title = films[0]["title"].as_str().expect("title");
    let html = gateway
        .page(&format!("/?q={}", title.replace(' ', "+")), 200)
        .await;
    let slug = films[0]["slug"].as_str().expect("slug");
    assert!(film_links(&html).contains(&format!("/films/{slug}")));
    assert!(
        html.contains(&format!("value=\"{}\"", escaped(title))),
        "search kept"
    );
}

#[tokio::test]
async fn home_page_next_link_leads_through_every_film() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let mut path = "/?page_size=5".to_owned();
    let mut seen = Vec::new();
    loop {
        let html = gateway.page(&path, 200).await;
        seen.extend(film_links(&html));
        let Some(rest) = html.split("rel=\"next\" href=\"").nth(1) else {
            break;
        };
        let href = unescaped(rest.split('"').next().expect("href"));
        assert!(href.starts_with("/?"), "{href}");
        assert!(href.contains("page_size=5"), "the chosen page size is kept");
        path = href;
        assert!(seen.len() <= films.len(), "the pages never end");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a film was listed twice");
    assert_eq!(seen.len(), films.len());
}

#[tokio::test]
async fn home_page_without_matches_shows_a_friendly_empty_state() {
    let gateway = Gateway::with_demo_programme().await;
    let html = gateway.page("/?q=zzqqxxnothingatall", 200).await;
    assert!(html.contains("0 films"));
    assert!(html.contains("No films match"));
    assert!(film_links(&html).is_empty());
}

#[tokio::test]
async fn home_page_bad_filters_are_a_friendly_400_page() {
    let gateway = Gateway::with_demo_programme().await;
    for path in [
        "/?genre=no-such-genre".to_owned(),
        "/?language=zz".to_owned(),
        format!("/?q={}", "a".repeat(101)),
        "/?page_size=1000".to_owned(),
    ] {
        let html = gateway.page(&path, 400).await;
        assert!(html.contains("Browse films"), "{path}: no way back");
    }
}

#[tokio::test]
async fn unknown_film_is_a_404_page() {
    let gateway = Gateway::with_demo_programme().await;
    let html = gateway.page("/films/no-such-film", 404).await;
    assert!(html.contains("no film called"));
    gateway.page("/no/such/page", 404).await;
}

#[tokio::test]
async fn malformed_showtime_id_is_a_400_page_and_unknown_one_a_404() {
    let gateway = Gateway::with_demo_programme().await;
    gateway.page("/showtimes/not-a-uuid", 400).await;
    gateway.page("/showtimes/42", 400).await;
    gateway
        .page("/showtimes/6f1c2b9e-8f3a-4c1d-9b7e-2a5d4c3b2a10", 404)
        .await;
}

#[tokio::test]
async fn film_page_groups_showtimes_by_day_and_cinema() {
    let gateway = Gateway::with_demo_programme().await;
    let film = gateway.all_films().await.remove(0);
    let slug = film["slug"].as_str().expect("slug");
    let listing = gateway
        .json(&format!("/api/v1/movies/{slug}/showtimes"), 200)
        .await;
    let html = gateway.page(&format!("/films/{slug}"), 200).await;
    assert!(html.contains(&escaped(film["title"].as_str().expect("title"))));
    assert!(html.contains(&escaped(film["synopsis"].as_str().expect("synopsis"))));

    let days = listing["days"].as_array().expect("days");
    assert!(days.len() >= 2, "a week of showtimes spans several days");
    let mut last_position = 0;
    for day in days {
        let date = day["date"].as_str().expect("date");
        let marker = format!("<time datetime=\"{date}\">");
        let position = html
            .find(&marker)
            .unwrap_or_else(|| panic!("no day {date}"));
        assert!(position > last_position, "days are in order");
        last_position = position;
        for cinema in day["cinemas"].as_array().expect("cinemas") {
            let name = escaped(cinema["cinema"]["name"].as_str().expect("name"));
            assert!(html[position..].contains(&name));
            for slot in cinema["showtimes"].as_array().expect("showtimes") {
                let id = slot["id"].as_str().expect("id");
                assert!(html.contains(&format!("href=\"/showtimes/{id}\"")));
                // The local time, e.g. 18:30 from 2026-11-22T18:30:00+05:30.
                let local = slot["starts_at_local"].as_str().expect("local");
                assert!(html.contains(&format!(">{}</time>", &local[11..16])));
            }
        }
    }
    assert!(html.contains("from ₹"), "prices are shown in rupees");
}

#[tokio::test]
async fn trailer_button_appears_only_for_films_with_a_trailer() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let with = films
        .iter()
        .find(|f| f["trailer_youtube_id"].is_string())
        .expect("a demo film with a trailer");
    let without = films
        .iter()
        .find(|f| f["trailer_youtube_id"].is_null())
        .expect("a demo film without a trailer");

    let id = with["trailer_youtube_id"].as_str().expect("id");
    let html = gateway
        .page(
            &format!("/films/{}", with["slug"].as_str().expect("slug")),
            200,
        )
        .await;
    assert!(html.contains("Watch trailer"));
    // Without JavaScript the button is a plain link to YouTube...
    assert!(html.contains(&format!("href=\"https://www.youtube.com/watch?v={id}\"")));
    // ...and the modal's player is the privacy-enhanced one, loaded on open.
    assert!(html.contains(&format!(
        "data-embed=\"https://www.youtube-nocookie.com/embed/{id}?autoplay=1\""
    )));
    assert!(html.contains("<dialog"));
    assert!(html.contains("src=\"about:blank\""));

    let html = gateway
        .page(
            &format!("/films/{}", without["slug"].as_str().expect("slug")),
            200,
        )
        .await;
    assert!(!html.contains("Watch trailer"));
    assert!(!html.contains("<dialog"));
    assert!(!html.contains("youtube"));
}

#[tokio::test]
async fn showtime_page_draws_the_plan_even_when_seating_is_down() {
    let gateway = Gateway::with_demo_programme().await;
    let (id, film) = crate::harness::classic_showtime(&gateway).await;
    let html = gateway.page(&format!("/showtimes/{id}"), 200).await;
    assert!(html.contains(&escaped(film["title"].as_str().expect("title"))));
    for seat in ["A1", "A12", "E6", "J1", "J12"] {
        assert!(
            html.contains(&format!("title=\"{seat} ")),
            "seat {seat} missing"
        );
    }
    assert!(!html.contains("title=\"A13 "), "row A has 12 seats");
    assert!(!html.contains("title=\"K1 "), "there is no row K");
    assert_eq!(html.matches("class=\"plan__row\"").count(), 10);
    assert!(html.contains("class=\"swatch cat-1\""), "a legend");
    assert!(html.contains("₹"));
    assert!(
        html.contains("Seat availability can't be shown right now"),
        "the page says seats cannot be picked at the moment"
    );
    assert!(!html.contains("type=\"checkbox\""), "no seat can be picked");
}
