//! End to end: the built `bookmyseat` binary, each role as its own process
//! with its own database, against real PostgreSQL — the topology operators
//! run, driven over HTTP as a browser would.

mod processes;

use processes::{Role, free_port, run_to_completion};

/// `bookmyseat migrate` and `seed` prepare a fresh database (seeding twice
/// changes nothing), then catalog and gateway run as separate processes, the
/// programme can be browsed from the home page to a showtime, and both stop
/// cleanly on SIGTERM.
#[tokio::test]
async fn browse_the_seeded_programme_across_separate_processes() {
    let db = test_support::TestDb::create("e2e_catalog").await;
    let env = [("CATALOG_DATABASE_URL", db.url.as_str())];
    run_to_completion(&["migrate"], &env).await;
    run_to_completion(&["seed"], &env).await;
    let films_after_first_seed: i64 = sqlx_count(&db, "SELECT count(*) FROM films").await;
    let showtimes_after_first_seed = sqlx_count(&db, "SELECT count(*) FROM showtimes").await;
    run_to_completion(&["seed"], &env).await;
    assert_eq!(
        sqlx_count(&db, "SELECT count(*) FROM films").await,
        films_after_first_seed
    );
    assert_eq!(
        sqlx_count(&db, "SELECT count(*) FROM showtimes").await,
        showtimes_after_first_seed
    );

    let catalog_address = format!("127.0.0.1:{}", free_port());
    let catalog = Role::start(
        "catalog",
        &[
            ("CATALOG_DATABASE_URL", db.url.as_str()),
            ("CATALOG_GRPC_ADDR", catalog_address.as_str()),
        ],
    );
    let gateway_address = format!("127.0.0.1:{}", free_port());
    let gateway_url = format!("http://{gateway_address}");
    let catalog_url = format!("http://{catalog_address}");
    let gateway = Role::start(
        "gateway",
        &[
            ("GATEWAY_HTTP_ADDR", gateway_address.as_str()),
            ("CATALOG_URL", catalog_url.as_str()),
            ("PUBLIC_BASE_URL", gateway_url.as_str()),
        ],
    );
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &format!("{gateway_url}/healthz")).await;

    // The API lists the whole programme.
    let films: serde_json::Value =
        get_json(&http, &format!("{gateway_url}/api/v1/movies?page_size=100")).await;
    assert_eq!(films["total_count"].as_i64(), Some(films_after_first_seed));
    let film = films["films"]
        .as_array()
        .expect("films")
        .iter()
        .find(|f| f["slug"] == "metropolis")
        .expect("the demo programme has Metropolis")
        .clone();

    // Home page → film page → showtime page, as a visitor clicks through.
    let home = get_text(&http, &gateway_url).await;
    assert!(
        home.contains("Metropolis"),
        "home page lists the seeded films"
    );
    assert!(home.contains("href=\"/films/metropolis\""));
    let film_page = get_text(&http, &format!("{gateway_url}/films/metropolis")).await;
    assert!(film_page.contains(film["title"].as_str().unwrap()));
    let showtime_path = film_page
        .split("href=\"/showtimes/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|id| format!("/showtimes/{id}"))
        .expect("the film page links at least one upcoming showtime");
    let showtime_page = get_text(&http, &format!("{gateway_url}{showtime_path}")).await;
    assert!(showtime_page.contains("Metropolis"));

    // A filter narrows the list in the page too.
    let horror = get_text(&http, &format!("{gateway_url}/?genre=horror")).await;
    assert!(horror.contains("Nosferatu"));
    assert!(!horror.contains("href=\"/films/metropolis\""));

    assert!(
        gateway.terminate().await.success(),
        "gateway exits cleanly on SIGTERM"
    );
    assert!(
        catalog.terminate().await.success(),
        "catalog exits cleanly on SIGTERM"
    );
}

/// `bookmyseat all` (what `make up` runs) serves the whole system from one
/// process, each role on its own port, and stops cleanly on SIGTERM.
#[tokio::test]
async fn all_roles_in_one_process_serve_the_programme() {
    let db = test_support::TestDb::create("e2e_all_catalog").await;
    let env = [("CATALOG_DATABASE_URL", db.url.as_str())];
    run_to_completion(&["migrate"], &env).await;
    run_to_completion(&["seed"], &env).await;

    let catalog_address = format!("127.0.0.1:{}", free_port());
    let catalog_url = format!("http://{catalog_address}");
    let gateway_address = format!("127.0.0.1:{}", free_port());
    let gateway_url = format!("http://{gateway_address}");
    let all = Role::start(
        "all",
        &[
            ("CATALOG_DATABASE_URL", db.url.as_str()),
            ("CATALOG_GRPC_ADDR", catalog_address.as_str()),
            ("CATALOG_URL", catalog_url.as_str()),
            ("GATEWAY_HTTP_ADDR", gateway_address.as_str()),
            ("PUBLIC_BASE_URL", gateway_url.as_str()),
        ],
    );
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &format!("{gateway_url}/healthz")).await;
    let home = get_text(&http, &gateway_url).await;
    assert!(
        home.contains("Big Buck Bunny"),
        "home page lists the seeded films"
    );
    assert!(
        all.terminate().await.success(),
        "`all` exits cleanly on SIGTERM"
    );
}

async fn sqlx_count(db: &test_support::TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect("counting rows")
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.expect("a body")
}

async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http.get(url).send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.expect("a JSON body")
}
