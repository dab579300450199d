//! The JSON API under /api/v1 and its OpenAPI document.

use std::collections::HashSet;

use serde_json::Value;

use crate::harness::{Gateway, has, header};

/// A genre (or language) that some but not all films have.
async fn narrowing_facet(gateway: &Gateway, facets_key: &str, value_key: &str) -> (String, u64) {
    let total = gateway.all_films().await.len() as u64;
    let facets = gateway.json("/api/v1/facets", 200).await;
    facets[facets_key]
        .as_array()
        .expect("facets")
        .iter()
        .map(|f| {
            (
                f[value_key].as_str().expect("value").to_owned(),
                f["film_count"].as_u64().expect("count"),
            )
        })
        .find(|(_, count)| *count > 0 && *count < total)
        .expect("the demo programme has a facet that narrows the list")
}

#[tokio::test]
async fn pagination_visits_every_film_exactly_once() {
    let gateway = Gateway::with_demo_programme().await;
    let everything = gateway.all_films().await;
    assert!(everything.len() >= 12, "the demo has a dozen films");

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(token) => format!("/api/v1/movies?page_size=5&page_token={token}"),
            None => "/api/v1/movies?page_size=5".to_owned(),
        };
        let page = gateway.json(&path, 200).await;
        assert_eq!(page["total_count"].as_u64(), Some(everything.len() as u64));
        let films = page["films"].as_array().expect("films");
        assert!(films.len() <= 5);
        seen.extend(
            films
                .iter()
                .map(|f| f["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        assert!(pages <= everything.len(), "pagination never ends");
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a film appeared twice: {seen:?}");
    let all: HashSet<String> = everything
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

#[tokio::test]
async fn the_film_list_is_revalidated_with_its_etag_and_follows_every_change() {
    let gateway = Gateway::with_demo_programme().await;
    let path = "/api/v1/movies?page_size=100";
    let first = gateway.get(path).await;
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag");
    assert!(etag.starts_with("W/\""), "a weak ETag: {etag:?}");
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let body: Value = first.json().await.expect("JSON");

    // Asked again, the unchanged list is the same, under the same ETag.
    let again = gateway.get(path).await;
    assert_eq!(header(&again, "etag"), etag);
    assert_eq!(again.json::<Value>().await.expect("JSON"), body);

    let conditional = |etag: String| {
        let request = gateway.http.get(format!("{}{path}", gateway.url));
        async move {
            let response = request
                .header("if-none-match", etag)
                .send()
                .await
                .expect("GET");
            let status = response.status().as_u16();
            let etag = header(&response, "etag");
            (status, etag, response.text().await.expect("body"))
        }
    };
    assert_eq!(
        conditional(etag.clone()).await,
        (304, etag.clone(), String::new())
    );
    let genre = gateway.get("/api/v1/movies?genre=drama").await;
    assert_ne!(header(&genre, "etag"), etag, "another page, another ETag");

    // Staff add a film: the very next list has it, under a new ETag, even
    // for a client that offers the old one.
    let staff = gateway.staff_session("sofia").await;
    let film = [
        ("title", "Zzyzx Road"),
        ("slug", ""),
        ("synopsis", "A film that sorts last."),
        ("genres", "drama"),
        ("language", "en"),
        ("duration_minutes", "90"),
        ("certificate", "U"),
        ("poster_url", ""),
        ("trailer_url", ""),
    ];
    let (status, _, page) = gateway.post_form("/admin/films/new", &staff, &film).await;
    assert_eq!(status, 303, "{page}");
    let (status, new_etag, after) = conditional(etag.clone()).await;
    assert_eq!(status, 200, "the old ETag no longer matches");
    assert_ne!(new_etag, etag);
    let after: Value = serde_json::from_str(&after).expect("JSON");
    assert!(
        after["films"]
            .as_array()
            .expect("films")
            .iter()
            .any(|f| f["slug"] == "zzyzx-road")
    );
    assert_eq!(
        after["total_count"],
        body["total_count"].as_u64().unwrap() + 1
    );
}

#[tokio::test]
async fn genre_filter_lists_only_films_of_that_genre() {
    let gateway = Gateway::with_demo_programme().await;
    let total = gateway.all_films().await.len();
    let (genre, count) = narrowing_facet(&gateway, "genres", "slug").await;

    let page = gateway
        .json(&format!("/api/v1/movies?genre={genre}&page_size=100"), 200)
        .await;
    let films = page["films"].as_array().expect("films");
    assert!(!films.is_empty());
    assert!(films.len() < total);
    assert_eq!(
        films.len() as u64,
        count,
        "the facet count matches the list"
    );
    assert_eq!(page["total_count"].as_u64(), Some(count));
    for film in films {
        assert!(
            has(film, "genre", &genre),
            "{} is not {genre}",
            film["title"]
        );
    }
}

#[tokio::test]
async fn language_filter_lists_only_films_in_that_language() {
    let gateway = Gateway::with_demo_programme().await;
    let total = gateway.all_films().await.len();
    let (language, count) = narrowing_facet(&gateway, "languages", "code").await;

    let page = gateway
        .json(
            &format!("/api/v1/movies?language={language}&page_size=100"),
            200,
        )
        .await;
    let films = page["films"].as_array().expect("films");
    assert_eq!(films.len() as u64, count);
    assert!(films.len() < total);
    for film in films {
        assert_eq!(film["language"]["code"], language.as_str());
    }
}

#[tokio::test]
async fn text_search_finds_a_film_by_a_word_of_its_title() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    // The longest word of some title is distinctive enough to search for.
    let film = &films[films.len() / 2];
    let title = film["title"].as_str().expect("title");
    let word = title
        .split(|c: char| !c.is_alphanumeric())
        .max_by_key(|w| w.len())
        .expect("a word");

    let page = gateway
        .json(&format!("/api/v1/movies?q={word}&page_size=100"), 200)
        .await;
    let found = page["films"].as_array().expect("films");
    assert!(
        found.iter().any(|f| f["id"] == film["id"]),
        "searching {word:?} did not find {title:?}"
    );
    assert!(found.len() < films.len());
}

#[tokio::test]
async fn unknown_genre_is_a_bad_request_with_an_error_code() {
    let gateway = Gateway::with_demo_programme().await;
    for path in [
        "/api/v1/movies?genre=no-such-genre",
        "/api/v1/movies?language=zz",
        "/api/v1/movies?genre=%3Cscript%3E",
    ] {
        let body = gateway.json(path, 400).await;
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("There is no "), "{path}: {message}");
    }
}

#[tokio::test]
async fn overlong_search_text_is_a_bad_request() {
    let gateway = Gateway::with_demo_programme().await;
    let body = gateway
        .json(&format!("/api/v1/movies?q={}", "a".repeat(101)), 400)
        .await;
    assert_eq!(body["error"]["code"], "bad_request");
    // Exactly the limit is fine.
    gateway
        .json(&format!("/api/v1/movies?q={}", "a".repeat(100)), 200)
        .await;
}

/// Found by fuzzing: a NUL in the search text reached the catalog's
/// database, which refuses such text, and the answer was a 500.
#[tokio::test]
async fn search_text_with_control_characters_is_a_bad_request() {
    let gateway = Gateway::with_demo_programme().await;
    for q in ["met%00ropolis", "a%0Ab", "%1B"] {
        let body = gateway.json(&format!("/api/v1/movies?q={q}"), 400).await;
        assert_eq!(body["error"]["code"], "bad_request", "q={q}");
    }
}

#[tokio::test]
async fn absurd_page_size_is_a_bad_request() {
    let gateway = Gateway::with_demo_programme().await;
    for size in ["1000", "0", "-3", "lots"] {
        let body = gateway
            .json(&format!("/api/v1/movies?page_size={size}"), 400)
            .await;
        assert_eq!(body["error"]["code"], "bad_request", "page_size={size}");
    }
}

#[tokio::test]
async fn forged_page_token_is_a_bad_request() {
    let gateway = Gateway::with_demo_programme().await;
    let body = gateway
        .json("/api/v1/movies?page_token=not-a-token-we-issued", 400)
        .await;
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn film_is_found_by_id_and_by_slug() {
    let gateway = Gateway::with_demo_programme().await;
    let film = gateway.all_films().await.remove(0);
    let id = film["id"].as_str().expect("id");
    let slug = film["slug"].as_str().expect("slug");
    assert_eq!(
        gateway.json(&format!("/api/v1/movies/{id}"), 200).await,
        film
    );
    assert_eq!(
        gateway.json(&format!("/api/v1/movies/{slug}"), 200).await,
        film
    );
}

#[tokio::test]
async fn unknown_film_is_not_found_as_json() {
    let gateway = Gateway::with_demo_programme().await;
    for path in [
        "/api/v1/movies/no-such-film",
        "/api/v1/movies/no-such-film/showtimes",
        "/api/v1/movies/00000000-0000-4000-8000-000000000000",
    ] {
        let body = gateway.json(path, 404).await;
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn malformed_showtime_id_is_a_bad_request_and_unknown_one_not_found() {
    let gateway = Gateway::with_demo_programme().await;
    let body = gateway.json("/api/v1/showtimes/not-a-uuid", 400).await;
    assert_eq!(body["error"]["code"], "bad_request");
    let body = gateway
        .json(
            "/api/v1/showtimes/6f1c2b9e-8f3a-4c1d-9b7e-2a5d4c3b2a10",
            404,
        )
        .await;
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn unknown_api_address_is_a_json_not_found() {
    let gateway = Gateway::with_demo_programme().await;
    let body = gateway.json("/api/v1/no-such-thing", 404).await;
    assert_eq!(body["error"]["code"], "not_found");
    let body = gateway.json("/api/v2/movies", 404).await;
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn showtimes_come_by_day_and_cinema_with_local_times_and_prices() {
    let gateway = Gateway::with_demo_programme().await;
    let film = gateway.all_films().await.remove(0);
    let slug = film["slug"].as_str().expect("slug");
    let listing = gateway
        .json(&format!("/api/v1/movies/{slug}/showtimes"), 200)
        .await;
    assert_eq!(listing["film"]["id"], film["id"]);
    let days = listing["days"].as_array().expect("days");
    assert!(!days.is_empty(), "the demo has a week of showtimes");
    let dates: Vec<&str> = days
        .iter()
        .map(|d| d["date"].as_str().expect("date"))
        .collect();
    let mut sorted = dates.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(dates, sorted, "one entry per day, in order");

    let slot = &days[0]["cinemas"][0]["showtimes"][0];
    let starts_at = slot["starts_at"].as_str().expect("starts_at");
    let local = slot["starts_at_local"].as_str().expect("starts_at_local");
    assert!(starts_at.ends_with('Z'), "UTC on the wire: {starts_at}");
    assert!(
        local.ends_with("+05:30"),
        "the demo cinemas are in India: {local}"
    );
    assert!(
        local.starts_with(dates[0]),
        "the day is the local day: {local}"
    );
    assert_eq!(slot["from_price"]["currency"], "INR");
    assert!(slot["from_price"]["amount_minor"].as_i64().expect("amount") > 0);
}

#[tokio::test]
async fn showtime_detail_has_layout_and_prices_per_category() {
    let gateway = Gateway::with_demo_programme().await;
    let (id, _) = crate::harness::classic_showtime(&gateway).await;
    let detail = gateway.json(&format!("/api/v1/showtimes/{id}"), 200).await;
    assert_eq!(detail["id"], id.as_str());
    let rows = detail["screen"]["layout"]["rows"].as_array().expect("rows");
    let capacity: u64 = rows
        .iter()
        .map(|r| r["seats"].as_u64().expect("seats"))
        .sum();
    assert_eq!(detail["screen"]["capacity"].as_u64(), Some(capacity));
    let categories: HashSet<&str> = rows
        .iter()
        .map(|r| r["category"].as_str().expect("category"))
        .collect();
    let prices = detail["prices"].as_array().expect("prices");
    for category in categories {
        assert!(
            prices.iter().any(|p| p["category"] == category),
            "no price for {category}"
        );
    }
    let amounts: Vec<i64> = prices
        .iter()
        .map(|p| p["price"]["amount_minor"].as_i64().expect("amount"))
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] <= w[1]), "cheapest first");
}

#[tokio::test]
async fn facets_count_the_films_of_each_genre_and_language() {
    let gateway = Gateway::with_demo_programme().await;
    let films = gateway.all_films().await;
    let facets = gateway.json("/api/v1/facets", 200).await;
    let genres = facets["genres"].as_array().expect("genres");
    let languages = facets["languages"].as_array().expect("languages");
    assert!(genres.len() >= 5 && languages.len() >= 3);
    for genre in genres {
        let slug = genre["slug"].as_str().expect("slug");
        let count = films.iter().filter(|f| has(f, "genre", slug)).count();
        assert_eq!(genre["film_count"].as_u64(), Some(count as u64), "{slug}");
    }
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let gateway = Gateway::with_demo_programme().await;
    let document: Value = gateway.json("/api/openapi.json", 200).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        document["openapi"]
    );
    for path in [
        "/api/v1/movies",
        "/api/v1/movies/{id_or_slug}",
        "/api/v1/movies/{id_or_slug}/showtimes",
        "/api/v1/showtimes/{id}",
        "/api/v1/facets",
    ] {
        let operation = &document["paths"][path]["get"];
        assert!(operation.is_object(), "{path} is not documented");
        assert!(operation["responses"]["200"].is_object(), "{path} 200");
        assert!(operation["responses"]["503"].is_object(), "{path} 503");
    }
    let list_params: Vec<&str> = document["paths"]["/api/v1/movies"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    for name in ["genre", "language", "q", "page_size", "page_token"] {
        assert!(list_params.contains(&name), "{name} is not documented");
    }
    for schema in ["Film", "FilmPage", "ShowtimeDetail", "Money", "ErrorBody"] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
}

/// The refusals every operation can meet whatever it does are documented, so
/// a client (and the API fuzzing test, which checks every status against
/// the document) never meets an undocumented one: a JSON body that does not
/// parse is a 400, a state-changing call without the CSRF token a 403, and
/// an operation that needs a session a 401 without one.
#[test]
fn openapi_documents_the_refusals_every_operation_can_meet() {
    let document = serde_json::to_value(<gateway::api::ApiDoc as utoipa::OpenApi>::openapi())
        .expect("the document serialises");
    let mut missing = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let documents = |status: &str| operation["responses"][status].is_object();
            let takes_body = operation.get("requestBody").is_some();
            let unsafe_method = matches!(method.as_str(), "post" | "patch" | "put" | "delete");
            let needs_session = operation.get("security").is_some();
            for (applies, status) in [
                (takes_body, "400"),
                (unsafe_method, "403"),
                (needs_session, "401"),
            ] {
                if applies && !documents(status) {
                    missing.push(format!("{} {path}: {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented answers: {missing:#?}");
}

/// The limits the document gives request bodies are the ones the API
/// applies, so requests made from the document get past validation.
#[test]
fn openapi_limits_are_the_ones_the_api_applies() {
    use gateway::accounts::{MAX_DISPLAY_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
    use gateway::seat_selection::{MAX_LABELS, SEAT_LABEL_PATTERN, SeatLabel};

    let document = serde_json::to_value(<gateway::api::ApiDoc as utoipa::OpenApi>::openapi())
        .expect("the document serialises");
    let schemas = &document["components"]["schemas"];
    for (schema, field) in [
        ("Registration", "password"),
        ("ResetConfirmation", "password"),
        ("PasswordChange", "new_password"),
    ] {
        let field = &schemas[schema]["properties"][field];
        assert_eq!(field["minLength"], MIN_PASSWORD_CHARS, "{schema}: {field}");
        assert_eq!(field["maxLength"], MAX_PASSWORD_CHARS, "{schema}: {field}");
    }
    for schema in ["Registration", "ProfileUpdate"] {
        let field = &schemas[schema]["properties"]["display_name"];
        assert_eq!(
            field["maxLength"], MAX_DISPLAY_NAME_CHARS,
            "{schema}: {field}"
        );
    }
    for schema in ["HoldRequest", "SeatBlock"] {
        let seats = &schemas[schema]["properties"]["seats"];
        assert_eq!(seats["maxItems"], MAX_LABELS, "{schema}: {seats}");
        assert_eq!(
            seats["items"]["pattern"], SEAT_LABEL_PATTERN,
            "{schema}: {seats}"
        );
    }
    // The pattern's rows are one or two letters and its numbers 1 to 60.
    for row in ["A", "z", "AB"] {
        for number in 1..=60 {
            let label = format!("{row}{number}");
            assert!(SeatLabel::parse(&label).is_some(), "{label}");
        }
        for number in ["0", "61", "01"] {
            assert!(SeatLabel::parse(&format!("{row}{number}")).is_none());
        }
    }
    assert!(SeatLabel::parse("ABC1").is_none());
}
