//! End to end: the built `bookmyseat` binary, each role as its own process
//! with its own database, against real PostgreSQL and NATS JetStream — the
//! topology operators run, driven over HTTP as a browser would.

mod processes;

use std::time::Duration;

use processes::{Role, free_port, run_to_completion};

/// Everything one run of the system needs: a database per service, its own
/// ports, and its own NATS stream names (so runs never share a stream).
struct Environment {
    catalog_db: test_support::TestDb,
    seating_db: test_support::TestDb,
    _streams: test_support::TestStreams,
    vars: Vec<(String, String)>,
    gateway_url: String,
}

impl Environment {
    async fn new() -> Environment {
        let catalog_db = test_support::TestDb::create("e2e_catalog").await;
        let seating_db = test_support::TestDb::create("e2e_seating").await;
        let catalog_address = format!("127.0.0.1:{}", free_port());
        let seating_address = format!("127.0.0.1:{}", free_port());
        let gateway_address = format!("127.0.0.1:{}", free_port());
        let gateway_url = format!("http://{gateway_address}");
        let streams = test_support::TestStreams::adopt(&test_support::events_prefix()).await;
        let vars = [
            ("CATALOG_DATABASE_URL", catalog_db.url.clone()),
            ("SEATING_DATABASE_URL", seating_db.url.clone()),
            ("CATALOG_GRPC_ADDR", catalog_address.clone()),
            ("SEATING_GRPC_ADDR", seating_address.clone()),
            ("GATEWAY_HTTP_ADDR", gateway_address),
            ("CATALOG_URL", format!("http://{catalog_address}")),
            ("SEATING_CATALOG_URL", format!("http://{catalog_address}")),
            ("SEATING_URL", format!("http://{seating_address}")),
            ("PUBLIC_BASE_URL", gateway_url.clone()),
            ("NATS_URL", test_support::nats_url()),
            ("EVENTS_PREFIX", streams.prefix.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Environment {
            catalog_db,
            seating_db,
            _streams: streams,
            vars,
            gateway_url,
        }
    }

    fn vars(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn migrate_and_seed(&self) {
        run_to_completion(&["migrate"], &self.vars()).await;
        run_to_completion(&["seed"], &self.vars()).await;
    }

    fn start(&self, role: &str) -> Role {
        Role::start(role, &self.vars())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }
}

/// `bookmyseat migrate` and `seed` prepare fresh databases (seeding twice
/// changes nothing), then catalog, seating and gateway run as separate
/// processes, the programme can be browsed from the home page to a seat map,
/// and every role stops cleanly on SIGTERM.
#[tokio::test]
async fn browse_the_seeded_programme_across_separate_processes() {
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let films = count(&env.catalog_db, "SELECT count(*) FROM films").await;
    let showtimes = count(&env.catalog_db, "SELECT count(*) FROM showtimes").await;
    run_to_completion(&["seed"], &env.vars()).await;
    assert_eq!(
        count(&env.catalog_db, "SELECT count(*) FROM films").await,
        films
    );
    assert_eq!(
        count(&env.catalog_db, "SELECT count(*) FROM showtimes").await,
        showtimes
    );

    let catalog = env.start("catalog");
    let seating = env.start("seating");
    let gateway = env.start("gateway");
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &env.url("/healthz")).await;

    // The API lists the whole programme.
    let listing = get_json(&http, &env.url("/api/v1/movies?page_size=100"), None).await;
    assert_eq!(listing["total_count"].as_i64(), Some(films));

    // Home page → film page → seat page, as a visitor clicks through.
    let home = get_text(&http, &env.url("/")).await;
    assert!(
        home.contains("href=\"/films/metropolis\""),
        "home lists the seeded films"
    );
    let film_page = get_text(&http, &env.url("/films/metropolis")).await;
    assert!(film_page.contains("Metropolis"));
    let showtime_id = film_page
        .split("href=\"/showtimes/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the film page links at least one upcoming showtime")
        .to_owned();
    let seat_page = get_text(&http, &env.url(&format!("/showtimes/{showtime_id}"))).await;
    assert!(seat_page.contains("Metropolis"));
    assert!(
        seat_page.contains("Seat A1"),
        "the seat page draws the hall"
    );

    // A filter narrows the list in the page too.
    let horror = get_text(&http, &env.url("/?genre=horror")).await;
    assert!(horror.contains("Nosferatu"));
    assert!(!horror.contains("href=\"/films/metropolis\""));

    for role in [gateway, seating, catalog] {
        let name = role.name().to_owned();
        assert!(
            role.terminate().await.success(),
            "{name} exits cleanly on SIGTERM"
        );
    }
}

/// `bookmyseat all` (what `make up` runs) serves the whole system from one
/// process: one visitor holds seats through the gateway, another sees them
/// taken and cannot hold them, and releasing frees them again.
#[tokio::test]
async fn seats_held_by_one_visitor_are_taken_for_another_across_the_system() {
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let all = env.start("all");
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &env.url("/healthz")).await;

    let schedule = get_json(
        &http,
        &env.url("/api/v1/movies/big-buck-bunny/showtimes"),
        None,
    )
    .await;
    let showtime_id = schedule["days"][0]["cinemas"][0]["showtimes"][0]["id"]
        .as_str()
        .expect("Big Buck Bunny has an upcoming showtime")
        .to_owned();
    let seats_url = env.url(&format!("/api/v1/showtimes/{showtime_id}/seats"));
    let holds_url = env.url(&format!("/api/v1/showtimes/{showtime_id}/holds"));

    let hold = http
        .post(&holds_url)
        .header("X-Dev-User", "alice")
        .json(&serde_json::json!({ "seats": ["C5", "C6"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let hold_id = hold["id"].as_str().expect("hold id").to_owned();

    let map = get_json(&http, &seats_url, Some("bob")).await;
    let state = |map: &serde_json::Value, label: &str| {
        map["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .find(|s| s["label"] == label)
            .map(|s| s["state"].as_str().unwrap_or_default().to_owned())
            .expect("the seat exists")
    };
    assert_eq!(state(&map, "C5"), "held");

    let refused = http
        .post(&holds_url)
        .header("X-Dev-User", "bob")
        .json(&serde_json::json!({ "seats": ["C6", "C7"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(refused.status(), 409);
    let refused: serde_json::Value = refused.json().await.expect("an error body");
    assert_eq!(refused["error"]["seats"], serde_json::json!(["C6"]));

    let released = http
        .delete(env.url(&format!("/api/v1/holds/{hold_id}")))
        .header("X-Dev-User", "alice")
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(released.status(), 204);
    let map = get_json(&http, &seats_url, Some("bob")).await;
    assert_eq!(state(&map, "C5"), "available");
    assert_eq!(
        count(
            &env.seating_db,
            "SELECT count(*) FROM holds WHERE status = 'active'"
        )
        .await,
        0
    );

    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(
            all.terminate().await.success(),
            "`all` exits cleanly on SIGTERM"
        );
    })
    .await
    .expect("`all` stops");
}

async fn count(db: &test_support::TestDb, sql: &str) -> i64 {
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

async fn get_json(http: &reqwest::Client, url: &str, user: Option<&str>) -> serde_json::Value {
    let mut request = http.get(url);
    if let Some(user) = user {
        request = request.header("X-Dev-User", user);
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.expect("a JSON body")
}
