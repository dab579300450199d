//! End to end: the built `bookmyseat` binary, each role as its own process
//! with its own database, against real PostgreSQL and NATS JetStream — the
//! topology operators run, driven over HTTP as a browser would, and (in
//! `browser.rs`) by a real headless Chromium.

mod browser;
mod faults;
mod fuzz;
mod processes;
mod stripe;
mod trace_propagation;
mod webdriver;

use std::time::Duration;

use processes::{Readiness, Role, free_port, run_to_completion};

/// The roles a deployment runs, each as its own process (the order they
/// start in; the gateway last, as it calls the others).
const SERVICES: [&str; 6] = [
    "catalog",
    "seating",
    "payments",
    "notifier",
    "analytics",
    "gateway",
];

/// Everything one run of the system needs: a database per service, its own
/// ports, and its own NATS stream names (so runs never share a stream).
struct Environment {
    catalog_db: test_support::TestDb,
    seating_db: test_support::TestDb,
    _gateway_db: test_support::TestDb,
    payments_db: test_support::TestDb,
    notifier_db: test_support::TestDb,
    analytics_db: test_support::TestDb,
    /// Where the notifier writes emails (no SMTP_URL in these runs).
    mail_dir: std::path::PathBuf,
    _streams: test_support::TestStreams,
    vars: Vec<(String, String)>,
    gateway_url: String,
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.mail_dir);
    }
}

impl Environment {
    async fn new() -> Environment {
        let catalog_db = test_support::TestDb::create("e2e_catalog").await;
        let seating_db = test_support::TestDb::create("e2e_seating").await;
        let gateway_db = test_support::TestDb::create("e2e_gateway").await;
        let payments_db = test_support::TestDb::create("e2e_payments").await;
        let notifier_db = test_support::TestDb::create("e2e_notifier").await;
        let analytics_db = test_support::TestDb::create("e2e_analytics").await;
        let analytics_address = format!("127.0.0.1:{}", free_port());
        let mail_dir =
            std::env::temp_dir().join(format!("bookmyseat-e2e-mail-{}", uuid::Uuid::new_v4()));
        let payments_address = format!("127.0.0.1:{}", free_port());
        let payments_http = format!("127.0.0.1:{}", free_port());
        let catalog_address = format!("127.0.0.1:{}", free_port());
        let seating_address = format!("127.0.0.1:{}", free_port());
        let gateway_address = format!("127.0.0.1:{}", free_port());
        let gateway_url = format!("http://{gateway_address}");
        let streams = test_support::TestStreams::adopt(&test_support::events_prefix()).await;
        let vars = [
            ("CATALOG_DATABASE_URL", catalog_db.url.clone()),
            ("SEATING_DATABASE_URL", seating_db.url.clone()),
            ("GATEWAY_DATABASE_URL", gateway_db.url.clone()),
            ("PAYMENTS_DATABASE_URL", payments_db.url.clone()),
            ("NOTIFIER_DATABASE_URL", notifier_db.url.clone()),
            ("ANALYTICS_DATABASE_URL", analytics_db.url.clone()),
            ("ANALYTICS_GRPC_ADDR", analytics_address.clone()),
            ("ANALYTICS_URL", format!("http://{analytics_address}")),
            ("NOTIFIER_OUTBOX_DIR", mail_dir.display().to_string()),
            ("PAYMENTS_GRPC_ADDR", payments_address.clone()),
            ("PAYMENTS_HTTP_ADDR", payments_http.clone()),
            ("PAYMENTS_PUBLIC_URL", format!("http://{payments_http}")),
            ("PAYMENTS_URL", format!("http://{payments_address}")),
            ("PAYMENTS_CATALOG_URL", format!("http://{catalog_address}")),
            ("PAYMENTS_SEATING_URL", format!("http://{seating_address}")),
            ("CATALOG_GRPC_ADDR", catalog_address.clone()),
            ("SEATING_GRPC_ADDR", seating_address.clone()),
            ("GATEWAY_HTTP_ADDR", gateway_address),
            ("CATALOG_URL", format!("http://{catalog_address}")),
            ("SEATING_CATALOG_URL", format!("http://{catalog_address}")),
            ("SEATING_URL", format!("http://{seating_address}")),
            ("PUBLIC_BASE_URL", gateway_url.clone()),
            ("NATS_URL", test_support::nats_url()),
            ("EVENTS_PREFIX", streams.prefix.clone()),
            // Small pools: two systems under load run side by side on one
            // PostgreSQL (max_connections 100 by default), each of six
            // processes with a pool of its own.
            ("CATALOG_DB_POOL_SIZE", "4".to_owned()),
            ("SEATING_DB_POOL_SIZE", "8".to_owned()),
            ("PAYMENTS_DB_POOL_SIZE", "5".to_owned()),
            ("NOTIFIER_CONCURRENCY", "2".to_owned()),
            ("NOTIFIER_DB_POOL_SIZE", "5".to_owned()),
            ("ANALYTICS_DB_POOL_SIZE", "5".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Environment {
            catalog_db,
            seating_db,
            _gateway_db: gateway_db,
            payments_db,
            notifier_db,
            analytics_db,
            mail_dir,
            _streams: streams,
            vars,
            gateway_url,
        }
    }

    /// Sets (or replaces) one variable every role started afterwards gets.
    fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_owned(), value)),
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

    /// Signs in through the API as a script would: a CSRF token first, then
    /// the credentials; returns the session.
    async fn sign_in(&self, http: &reqwest::Client, email: &str, password: &str) -> Session {
        self.start_session(
            http,
            "/api/v1/auth/login",
            serde_json::json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Creates an account through the API; returns its session.
    async fn sign_up(&self, http: &reqwest::Client, email: &str, name: &str) -> Session {
        self.start_session(
            http,
            "/api/v1/auth/register",
            serde_json::json!({ "email": email, "display_name": name, "password": "e2e password 1" }),
        )
        .await
    }

    async fn start_session(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: serde_json::Value,
    ) -> Session {
        let response = self.anonymous_post(http, path, body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let cookie = cookie_of(&response, "bms_session");
        let body: serde_json::Value = response.json().await.expect("a session");
        Session {
            cookie,
            csrf_token: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
        }
    }

    fn start(&self, role: &str) -> Role {
        Role::start(role, &self.vars())
    }

    /// Starts every service as its own process, as operators run them, and
    /// waits (bounded) until each one serves: the gRPC listeners accept, the
    /// gateway and the payments pages answer `/readyz`, and every process
    /// answers `/metrics` (the notifier has nothing else to ask).
    async fn start_services(&self) -> System {
        let mut roles: Vec<Role> = SERVICES.iter().map(|role| self.start(role)).collect();
        let checks: Vec<Readiness> = roles.iter().flat_map(|r| self.readiness(r)).collect();
        processes::wait_until_serving(&mut roles, &checks).await;
        System { roles }
    }

    /// What `role` answers once it serves: its gRPC listener, `/readyz` of
    /// the gateway and of the payments pages, and `/metrics` (all the
    /// notifier has to ask).
    fn readiness(&self, role: &Role) -> Vec<Readiness> {
        let mut checks = vec![Readiness::Answers(role.metrics_url.clone())];
        let listener = match role.name() {
            "catalog" => Some("CATALOG_GRPC_ADDR"),
            "seating" => Some("SEATING_GRPC_ADDR"),
            "payments" => Some("PAYMENTS_GRPC_ADDR"),
            "analytics" => Some("ANALYTICS_GRPC_ADDR"),
            _ => None,
        };
        if let Some(variable) = listener {
            checks.push(Readiness::Listening(self.var(variable).to_owned()));
        }
        match role.name() {
            "gateway" => checks.push(Readiness::Answers(self.url("/readyz"))),
            "payments" => checks.push(Readiness::Answers(format!(
                "{}/readyz",
                self.var("PAYMENTS_PUBLIC_URL")
            ))),
            _ => {}
        }
        checks
    }

    /// The id of the film's first upcoming showtime (the API lists them by
    /// day, cinema and time).
    async fn first_showtime(&self, http: &reqwest::Client, film: &str) -> String {
        let url = self.url(&format!("/api/v1/movies/{film}/showtimes"));
        let schedule = get_json(http, &url, None).await;
        schedule["days"][0]["cinemas"][0]["showtimes"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{film} has an upcoming showtime: {schedule}"))
            .to_owned()
    }

    /// The value this environment gives `name`.
    fn var(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the environment sets no {name}"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    /// The `.eml` files the notifier has written, once there is at least
    /// one (bounded: 10 s).
    async fn emails(&self) -> Vec<std::path::PathBuf> {
        let mut emails = Vec::new();
        for _ in 0..100 {
            emails = std::fs::read_dir(&self.mail_dir)
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if !emails.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        emails
    }

    /// A JSON call without a session, carrying the anonymous CSRF pair
    /// (cookie and header) as a browser's script would.
    async fn anonymous_post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let csrf = http
            .get(self.url("/api/v1/auth/csrf"))
            .send()
            .await
            .expect("the gateway answers");
        let cookie = cookie_of(&csrf, "bms_csrf");
        let token: serde_json::Value = csrf.json().await.expect("a token");
        http.post(self.url(path))
            .header("cookie", cookie)
            .header(
                "x-csrf-token",
                token["csrf_token"].as_str().unwrap_or_default(),
            )
            .json(&body)
            .send()
            .await
            .expect("the gateway answers")
    }
}

/// Every service running, each in its own process (see
/// [`Environment::start_services`]).
struct System {
    roles: Vec<Role>,
}

impl System {
    fn role(&self, name: &str) -> &Role {
        self.roles
            .iter()
            .find(|role| role.name() == name)
            .unwrap_or_else(|| panic!("no {name} role is running"))
    }

    /// Stops `name` (SIGTERM, asserting a clean exit; or SIGKILL, a crash),
    /// starts it again with the same settings, and waits until it serves.
    async fn restart(&mut self, env: &Environment, name: &str, crash: bool) {
        let at = self
            .roles
            .iter()
            .position(|role| role.name() == name)
            .unwrap_or_else(|| panic!("no {name} role is running"));
        let old = self.roles.remove(at);
        if crash {
            old.kill().await;
        } else {
            assert!(
                old.terminate().await.success(),
                "{name} exits cleanly on SIGTERM"
            );
        }
        let role = env.start(name);
        let checks = env.readiness(&role);
        self.roles.insert(at, role);
        processes::wait_until_serving(&mut self.roles, &checks).await;
    }

    /// Stops every service with SIGTERM, the gateway first (as a rollout
    /// drains it), and asserts that each exits cleanly.
    async fn stop(self) {
        for role in self.roles.into_iter().rev() {
            let name = role.name().to_owned();
            assert!(
                role.terminate().await.success(),
                "{name} exits cleanly on SIGTERM"
            );
        }
    }
}

/// A signed-in script's credentials.
struct Session {
    cookie: String,
    csrf_token: String,
}

impl Session {
    fn on(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf_token)
    }
}

/// `name=value` of the cookie a response sets.
fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// `bookmyseat migrate` and `seed` prepare fresh databases (seeding twice
/// changes nothing), then every service runs as its own process, the
/// programme can be browsed from the home page to a seat map, and every role
/// stops cleanly on SIGTERM.
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

    let system = env.start_services().await;
    let http = reqwest::Client::new();

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

    // Every role answers /metrics on its own port, with its request counts.
    for (role, family) in [
        ("catalog", "bookmyseat_grpc_requests_total"),
        ("seating", "bookmyseat_grpc_requests_total"),
        ("gateway", "bookmyseat_http_requests_total"),
    ] {
        let role = system.role(role);
        let text = http
            .get(&role.metrics_url)
            .send()
            .await
            .expect("the metrics endpoint answers")
            .text()
            .await
            .expect("metrics text");
        assert!(text.contains(family), "{}: {text}", role.name());
    }

    system.stop().await;
}

/// `bookmyseat all` (what `make up` runs) serves the whole system from one
/// process: the seeded demo customer holds seats through the gateway, a new
/// customer sees them taken and cannot hold them, and releasing frees them
/// again. `bookmyseat admin create-staff` makes a staff account that reaches
/// the staff API, which the demo customer cannot, and promotes a signed-in
/// account in the session it has.
#[tokio::test]
async fn seats_held_by_one_visitor_are_taken_for_another_across_the_system() {
    let mut env = Environment::new().await;
    // Sessions stay in the gateway's cache far longer than this test runs,
    // so a promotion reaches a signed-in account only by being announced.
    env.set("SESSION_CACHE_SECS", "300");
    env.migrate_and_seed().await;
    let all = env.start("all");
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &env.url("/healthz")).await;

    let showtime_id = env.first_showtime(&http, "big-buck-bunny").await;
    let seats_url = env.url(&format!("/api/v1/showtimes/{showtime_id}/seats"));
    let holds_url = env.url(&format!("/api/v1/showtimes/{showtime_id}/holds"));
    // The demo account the README lists, and a new one.
    let alice = env
        .sign_in(&http, "customer@bookmyseat.test", "demo-customer-pass")
        .await;
    let bob = env.sign_up(&http, "bob@example.com", "Bob").await;

    let hold = alice
        .on(http.post(&holds_url))
        .json(&serde_json::json!({ "seats": ["C5", "C6"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let hold_id = hold["id"].as_str().expect("hold id").to_owned();

    let map = get_json(&http, &seats_url, Some(&bob)).await;
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

    let refused = bob
        .on(http.post(&holds_url))
        .json(&serde_json::json!({ "seats": ["C6", "C7"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(refused.status(), 409);
    let refused: serde_json::Value = refused.json().await.expect("an error body");
    assert_eq!(refused["error"]["seats"], serde_json::json!(["C6"]));

    let released = alice
        .on(http.delete(env.url(&format!("/api/v1/holds/{hold_id}"))))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(released.status(), 204);
    let map = get_json(&http, &seats_url, Some(&bob)).await;
    assert_eq!(state(&map, "C5"), "available");
    assert_eq!(
        count(
            &env.seating_db,
            "SELECT count(*) FROM holds WHERE status = 'active'"
        )
        .await,
        0
    );

    // The process's metrics counted the holds and the gateway's requests.
    let metrics = http
        .get(&all.metrics_url)
        .send()
        .await
        .expect("the metrics endpoint answers")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("bookmyseat_holds_total{outcome=\"granted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bookmyseat_holds_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/v1/showtimes/{id}/holds\""),
        "{metrics}"
    );
    assert!(metrics.contains("bookmyseat_grpc_requests_total{method=\"/bookmyseat.seating.v1.SeatingService/HoldSeats\""), "{metrics}");
    // Both holds that reached the database were timed in their two parts.
    for phase in ["connection", "database"] {
        assert!(
            metrics.contains(&format!(
                "bookmyseat_hold_phase_duration_seconds_count{{phase=\"{phase}\"}} 2\n"
            )),
            "{metrics}"
        );
    }
    // The seat maps read above waited for their permits, in seating and in
    // the gateway, and stopped counting once they had one.
    for waiting in [
        "bookmyseat_seat_map_reads_waiting 0\n",
        "bookmyseat_gateway_seat_map_reads_waiting 0\n",
    ] {
        assert!(metrics.contains(waiting), "{waiting}: {metrics}");
    }

    // Staff: the CLI makes an account that the staff API lets in.
    let whoami = env.url("/api/v1/admin/whoami");
    let refused = alice.on(http.get(&whoami)).send().await.expect("answers");
    assert_eq!(refused.status(), 403);
    let printed = run_to_completion(
        &["admin", "create-staff", "--email", "boss@example.com"],
        &env.vars(),
    )
    .await;
    let password = printed
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a generated password is printed once");
    let boss = env.sign_in(&http, "boss@example.com", password).await;
    let me = boss.on(http.get(&whoami)).send().await.expect("answers");
    assert_eq!(me.status(), 200);
    // Promoting an existing account keeps its password, and reaches the
    // session it is signed in with: the command announces it on NATS, and
    // the gateway forgets its copy (kept since sign-up) on hearing it.
    let refused = bob.on(http.get(&whoami)).send().await.expect("answers");
    assert_eq!(refused.status(), 403);
    run_to_completion(
        &["admin", "create-staff", "--email", "bob@example.com"],
        &env.vars(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let me = bob.on(http.get(&whoami)).send().await.expect("answers");
        if me.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's session is still refused the staff API ({})",
            me.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bob = env
        .sign_in(&http, "bob@example.com", "e2e password 1")
        .await;
    let me = bob.on(http.get(&whoami)).send().await.expect("answers");
    assert_eq!(me.status(), 200);

    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(
            all.terminate().await.success(),
            "`all` exits cleanly on SIGTERM"
        );
    })
    .await
    .expect("`all` stops");
}

/// The whole purchase over HTTP, as a browser makes it, against `bookmyseat
/// all`: sign up, browse to a showtime, hold seats, check out with the
/// simulated provider, land on the success page, and find the booking on the
/// profile and in the confirmation email the notifier wrote.
#[tokio::test]
async fn a_visitor_signs_up_books_seats_and_gets_the_confirmation_email() {
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let all = env.start("all");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    processes::wait_until_ready(&http, &env.url("/readyz")).await;

    let buyer = env.sign_up(&http, "frida@example.com", "Frida").await;
    let film = get_json(&http, &env.url("/api/v1/movies/metropolis"), None).await;
    let showtime_id = env.first_showtime(&http, "metropolis").await;
    let hold = buyer
        .on(http.post(env.url(&format!("/api/v1/showtimes/{showtime_id}/holds"))))
        .json(&serde_json::json!({ "seats": ["D4", "D5"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(hold.status(), 201);
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let hold_id = hold["id"].as_str().expect("hold id");

    // Checkout: payments prices the seats from catalog and hands out its
    // simulated page (no Stripe key here).
    let checkout = buyer
        .on(http.post(env.url(&format!("/api/v1/holds/{hold_id}/checkout"))))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(checkout.status(), 201);
    let checkout: serde_json::Value = checkout.json().await.expect("a checkout");
    assert_eq!(checkout["simulated"], true);
    let total = checkout["total"]["amount_minor"].as_i64().expect("a total");
    assert!(total > 0);
    let pay_page = checkout["url"].as_str().expect("a url").to_owned();
    let page = http
        .get(&pay_page)
        .send()
        .await
        .expect("the simulated page");
    assert_eq!(page.status(), 200);
    let paid = http
        .post(format!("{pay_page}/pay"))
        .send()
        .await
        .expect("paying");
    assert_eq!(paid.status(), 303);
    let success = paid
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned();
    assert!(
        success.starts_with(&env.url("/checkout/success?session_id=")),
        "{success}"
    );

    // The success page confirms within moments.
    let reference = confirmed_reference(&http, &buyer, &success).await;

    // The booking is the buyer's, on the profile and in the API.
    let bookings = get_json(&http, &env.url("/api/v1/bookings"), Some(&buyer)).await;
    assert_eq!(bookings["count"], 1);
    assert_eq!(bookings["bookings"][0]["reference"], reference.as_str());
    assert_eq!(bookings["bookings"][0]["amount_minor"], total);
    let profile = buyer
        .on(http.get(env.url("/profile")))
        .send()
        .await
        .expect("the profile")
        .text()
        .await
        .expect("html");
    assert!(profile.contains(&reference));

    // The confirmation email, once, with the facts.
    let emails = env.emails().await;
    assert_eq!(emails.len(), 1, "exactly one email: {emails:?}");
    let raw = std::fs::read(&emails[0]).expect("the email");
    let email = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a parsable email");
    let to = recipient(&email);
    assert_eq!(to, "frida@example.com");
    let text = email.body_text(0).expect("a text part").into_owned();
    assert!(text.contains(&reference), "{text}");
    assert!(
        text.contains(film["title"].as_str().expect("title")),
        "{text}"
    );
    assert!(text.contains("D4") && text.contains("D5"), "{text}");

    // The staff dashboard's figures moved: one booking, two seats, the total.
    let staff = env
        .sign_in(&http, "staff@bookmyseat.test", "demo-staff-pass")
        .await;
    let mut stats = serde_json::Value::Null;
    for _ in 0..100 {
        stats = get_json(&http, &env.url("/api/v1/admin/stats"), Some(&staff)).await;
        if stats["totals"]["bookings"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["totals"]["bookings"], 1, "{stats}");
    assert_eq!(stats["totals"]["seats_sold"], 2, "{stats}");
    assert_eq!(
        stats["totals"]["revenue"][0]["amount_minor"], total,
        "{stats}"
    );
    let dashboard = staff
        .on(http.get(env.url("/admin/dashboard")))
        .send()
        .await
        .expect("the dashboard");
    assert_eq!(dashboard.status(), 200);
    let refused = buyer
        .on(http.get(env.url("/admin/dashboard")))
        .send()
        .await
        .expect("the dashboard");
    assert_eq!(refused.status(), 403, "customers never see the dashboard");

    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(all.terminate().await.success(), "`all` exits cleanly");
    })
    .await
    .expect("`all` stops");
}

/// A forgotten password, across the system: the gateway's reset event
/// reaches the notifier over JetStream, the email carries the link, its
/// token sets a new password once, and the old password and the old
/// session stop working. An unknown address gets the same answer and no
/// email.
#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_emailed_link() {
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let all = env.start("all");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    processes::wait_until_ready(&http, &env.url("/readyz")).await;
    let before = env.sign_up(&http, "gus@example.com", "Gus").await;

    let ask = |email: &'static str| {
        env.anonymous_post(
            &http,
            "/api/v1/auth/password-reset",
            serde_json::json!({ "email": email }),
        )
    };
    let unknown = ask("nobody@example.com").await;
    assert_eq!(unknown.status(), 202);
    let unknown = unknown.text().await.expect("a body");
    let known = ask("GUS@example.com").await;
    assert_eq!(known.status(), 202);
    assert_eq!(
        known.text().await.expect("a body"),
        unknown,
        "the same answer whether the account exists or not"
    );

    let emails = env.emails().await;
    assert_eq!(
        emails.len(),
        1,
        "one email, to the account only: {emails:?}"
    );
    let raw = std::fs::read(&emails[0]).expect("the email");
    let email = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a parsable email");
    let to = recipient(&email);
    assert_eq!(to, "gus@example.com");
    let text = email.body_text(0).expect("a text part").into_owned();
    let link = text
        .split_whitespace()
        .find(|word| word.starts_with(&env.url("/reset-password?token=")))
        .unwrap_or_else(|| panic!("a reset link to the gateway: {text}"));
    let token = link.split("token=").nth(1).expect("a token").to_owned();

    let confirm = || {
        env.anonymous_post(
            &http,
            "/api/v1/auth/password-reset/confirm",
            serde_json::json!({ "token": token, "password": "a brand new password" }),
        )
    };
    assert_eq!(confirm().await.status(), 200);
    assert_eq!(confirm().await.status(), 400, "the link works once");

    let old_password = env
        .anonymous_post(
            &http,
            "/api/v1/auth/login",
            serde_json::json!({ "email": "gus@example.com", "password": "e2e password 1" }),
        )
        .await;
    assert_eq!(old_password.status(), 401, "the old password is gone");
    let after = env
        .sign_in(&http, "gus@example.com", "a brand new password")
        .await;
    let me = get_json(&http, &env.url("/api/v1/me"), Some(&after)).await;
    assert_eq!(me["email"], "gus@example.com");
    let old_session = before
        .on(http.get(env.url("/api/v1/me")))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(old_session.status(), 401, "the reset ended every session");

    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(all.terminate().await.success(), "`all` exits cleanly");
    })
    .await
    .expect("`all` stops");
}

/// The first `To:` address of an email ("" when it has none).
fn recipient(email: &mail_parser::Message<'_>) -> String {
    email
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned()
}

/// The booking reference the buyer's success page shows, once it does
/// (bounded: 10 s).
async fn confirmed_reference(http: &reqwest::Client, buyer: &Session, success: &str) -> String {
    for _ in 0..100 {
        let html = buyer
            .on(http.get(success))
            .send()
            .await
            .expect("the success page")
            .text()
            .await
            .expect("html");
        if let Some(found) = html
            .split("data-booking-reference>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .filter(|found| found.starts_with("BMS-"))
        {
            return found.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no booking on the success page {success} within 10 s");
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

async fn get_json(http: &reqwest::Client, url: &str, user: Option<&Session>) -> serde_json::Value {
    let mut request = http.get(url);
    if let Some(user) = user {
        request = user.on(request);
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.expect("a JSON body")
}
