//! What every response carries, the files the gateway serves itself, and
//! how it behaves when catalog is down.

use crate::harness::{Gateway, header};

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let gateway = Gateway::with_demo_programme().await;
    for path in [
        "/",
        "/api/v1/movies",
        "/static/app.css",
        "/films/no-such-film",
        "/api/v1/movies/no-such-film",
        "/showtimes/not-a-uuid",
    ] {
        let response = gateway.get(path).await;
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(
            csp.contains("frame-src https://www.youtube-nocookie.com"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(csp.contains("object-src 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(
            header(&response, "referrer-policy"),
            "strict-origin-when-cross-origin",
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
    }
}

#[tokio::test]
async fn pages_load_scripts_and_styles_only_from_the_gateway() {
    let gateway = Gateway::with_demo_programme().await;
    let film = gateway.all_films().await.remove(0);
    let (showtime, _) = crate::harness::classic_showtime(&gateway).await;
    for path in [
        "/".to_owned(),
        format!("/films/{}", film["slug"].as_str().expect("slug")),
        format!("/showtimes/{showtime}"),
        "/films/no-such-film".to_owned(),
    ] {
        let html = gateway
            .text(&path, if path.contains("no-such") { 404 } else { 200 })
            .await;
        // Every script is a file of ours; no inline code, no inline styles.
        for script in html.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src=\"/static/"),
                "{path}: <script{script}"
            );
        }
        assert!(!html.contains("<style"), "{path}: inline stylesheet");
        assert!(
            !html.contains(" style=\""),
            "{path}: inline style attribute"
        );
        assert!(!html.contains(" onclick="), "{path}: inline handler");
        for link in html.split("<link").skip(1) {
            let href = link.split("href=\"").nth(1).expect("href");
            assert!(href.starts_with("/static/"), "{path}: <link{link}");
        }
    }
}

#[tokio::test]
async fn static_assets_are_served_with_their_content_types() {
    let gateway = Gateway::with_demo_programme().await;
    let html = gateway.page("/", 200).await;
    for (name, content_type) in [
        ("app.css", "text/css"),
        ("app.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        // The page links a versioned URL, which may be cached for long.
        let versioned = html
            .split(&format!("\"/static/{name}?v="))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the page does not link {name}"));
        let response = gateway.get(&format!("/static/{name}?v={versioned}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(
            header(&response, "content-type").starts_with(content_type),
            "{name}"
        );
        assert!(
            header(&response, "cache-control").contains("immutable"),
            "{name}"
        );
        assert!(!response.bytes().await.expect("body").is_empty());

        let response = gateway.get(&format!("/static/{name}")).await;
        assert!(
            header(&response, "cache-control").contains("max-age"),
            "{name}"
        );
    }
    let response = gateway.get("/static/nothing.js").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn films_without_posters_get_a_generated_svg() {
    let gateway = Gateway::with_demo_programme().await;
    // A film with a plain title, so the SVG's escaping does not matter here.
    let film = gateway
        .all_films()
        .await
        .into_iter()
        .find(|f| {
            f["title"]
                .as_str()
                .is_some_and(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
        })
        .expect("a demo film with a plain title");
    let slug = film["slug"].as_str().expect("slug");
    let poster_url = film["poster_url"].as_str().expect("poster_url");
    assert_eq!(poster_url, format!("{}/posters/{slug}.svg", gateway.url));

    let response = gateway.get(&format!("/posters/{slug}.svg")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/svg+xml");
    let svg = response.text().await.expect("body");
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("linearGradient"));
    let first_word = film["title"]
        .as_str()
        .expect("title")
        .split(' ')
        .next()
        .expect("a word");
    assert!(svg.contains(first_word), "the poster shows the title");

    // The home page shows it, by a link relative to wherever it was reached.
    let html = gateway.page("/", 200).await;
    assert!(html.contains(&format!("src=\"/posters/{slug}.svg\"")));

    assert_eq!(gateway.get("/posters/no-such-film.svg").await.status(), 404);
    assert_eq!(
        gateway.get(&format!("/posters/{slug}.png")).await.status(),
        404
    );
}

#[tokio::test]
async fn responses_are_gzip_compressed_when_the_client_accepts_it() {
    let gateway = Gateway::with_demo_programme().await;
    let response = gateway
        .http
        .get(format!("{}/", gateway.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-encoding"), "gzip");
}

#[tokio::test]
async fn request_bodies_over_64_kib_are_refused() {
    let gateway = Gateway::with_demo_programme().await;
    let response = gateway
        .http
        .post(format!("{}/api/v1/movies", gateway.url))
        .body(vec![b'x'; 65 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn healthz_answers_ok() {
    let gateway = Gateway::with_demo_programme().await;
    assert_eq!(gateway.text("/healthz", 200).await, "ok");
}

#[tokio::test]
async fn catalog_outage_is_a_503_that_says_try_again() {
    let gateway = Gateway::without_catalog().await;
    let html = gateway.page("/", 503).await;
    assert!(html.contains("try again"));
    let body = gateway.json("/api/v1/movies", 503).await;
    assert_eq!(body["error"]["code"], "unavailable");
    let response = gateway.get("/api/v1/facets").await;
    assert_eq!(header(&response, "retry-after"), "5");
    // Liveness does not depend on catalog.
    assert_eq!(gateway.text("/healthz", 200).await, "ok");
}

#[tokio::test]
async fn readiness_follows_the_gateways_own_database() {
    let gateway = Gateway::with_demo_programme().await;
    test_support::eventually("the gateway is ready", || async {
        gateway.get("/readyz").await.status() == 200
    })
    .await;
    let ready: serde_json::Value = gateway.json("/readyz", 200).await;
    assert_eq!(ready["database"], true);
    assert_eq!(ready["nats"], true);

    // Its database gone: not ready (503), while still alive.
    gateway.db.pool.close().await;
    let response = gateway.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["database"], false);
    assert_eq!(gateway.text("/healthz", 200).await, "ok");
}

/// `GATEWAY_DB_POOL_SIZE` bounds the gateway's connections to its database,
/// as each other service's `*_DB_POOL_SIZE` does.
#[tokio::test]
async fn the_database_pool_opens_at_most_gateway_db_pool_size_connections() {
    let database = test_support::TestDb::create("gateway_pool").await;
    let config = gateway::Config {
        gateway_database_url: database.url.clone(),
        gateway_db_pool_size: 3,
        ..Default::default()
    };
    let pool = config.pool().await.expect("the gateway's pool");
    assert_eq!(pool.options().get_max_connections(), 3);
    // A fourth caller waits for one of the three to come back.
    let held: Vec<_> = futures::future::join_all((0..3).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(|connection| connection.expect("one of the three connections"))
        .collect();
    assert!(
        pool.try_acquire().is_none(),
        "a fourth connection was opened"
    );
    drop(held);
}
