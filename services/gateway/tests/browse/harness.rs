//! Starting a gateway for a test, and small helpers for reading its answers.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::Value;
use test_support::{CatalogHandle, SeatingHandle, TestDb, TestStreams};

/// The password every test account is created with.
pub const PASSWORD: &str = "correct horse battery";

/// A gateway on port 0 in front of a real catalog with the demo programme
/// (and, for seat tests, a real seating service).
pub struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub http: reqwest::Client,
    /// The gateway's own database (accounts, sessions).
    pub db: TestDb,
    /// The prefix of the gateway's event subjects (reset emails).
    pub prefix: String,
    /// Signed-in test users by name: their session cookie and CSRF token.
    sessions: tokio::sync::Mutex<HashMap<String, Session>>,
    shutdown: platform::Shutdown,
    _streams: Option<TestStreams>,
    pub _payments: Option<test_support::payments::PaymentsHandle>,
    /// Analytics on the same streams (with payments), for the dashboard.
    pub _analytics: Option<test_support::analytics::AnalyticsHandle>,
    // Kept alive for the test's duration; dropping them stops the services.
    _catalog: Option<CatalogHandle>,
    pub seating: Option<SeatingHandle>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Gateway {
    /// The demo programme, served through a fresh gateway; seating is not
    /// running, so seat pages show the plan without availability.
    pub async fn with_demo_programme() -> Gateway {
        let catalog = test_support::spawn_catalog_with_demo_programme(Utc::now()).await;
        let url = catalog.url.clone();
        Self::start(url, Some(catalog), None).await
    }

    /// The demo programme and a real seating service with subjects of its
    /// own, served through a fresh gateway.
    pub async fn with_seating() -> Gateway {
        Self::with_seating_configured(|_| {}).await
    }

    /// [`Self::with_seating`], the gateway's configuration changed by
    /// `adjust`.
    pub async fn with_seating_configured(adjust: impl FnOnce(&mut gateway::Config)) -> Gateway {
        let catalog = test_support::spawn_catalog_with_demo_programme(Utc::now()).await;
        let seating =
            test_support::spawn_seating(&catalog.url, &test_support::events_prefix()).await;
        let url = catalog.url.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        Self::start_on(
            listener,
            url,
            Some(catalog),
            Some(seating),
            None,
            None,
            adjust,
        )
        .await
    }

    /// A gateway whose catalog is not running at all.
    pub async fn without_catalog() -> Gateway {
        Self::start(dead_url(), None, None).await
    }

    /// The demo programme, seating, payments with its simulated provider
    /// (no Stripe key) and analytics, all on one test's streams, behind a
    /// fresh gateway.
    pub async fn with_payments() -> Gateway {
        Self::with_payments_settings(payments::Settings::default()).await
    }

    /// [`Self::with_payments`] with payments configured by `settings` (a
    /// Stripe-shaped server, say).
    pub async fn with_payments_settings(settings: payments::Settings) -> Gateway {
        let catalog = test_support::spawn_catalog_with_demo_programme(Utc::now()).await;
        let seating =
            test_support::spawn_seating(&catalog.url, &test_support::events_prefix()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let gateway_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let payments = test_support::payments::spawn_payments_for(
            &catalog.url,
            &seating,
            settings,
            &gateway_url,
        )
        .await;
        let analytics = test_support::analytics::spawn_analytics(&seating.prefix).await;
        let url = catalog.url.clone();
        let mut gateway = Self::start_on(
            listener,
            url,
            Some(catalog),
            Some(seating),
            Some(&payments),
            Some(&analytics),
            |_| {},
        )
        .await;
        gateway._payments = Some(payments);
        gateway._analytics = Some(analytics);
        gateway
    }

    async fn start(
        catalog_url: String,
        catalog: Option<CatalogHandle>,
        seating: Option<SeatingHandle>,
    ) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        Self::start_on(listener, catalog_url, catalog, seating, None, None, |_| {}).await
    }

    async fn start_on(
        listener: tokio::net::TcpListener,
        catalog_url: String,
        catalog: Option<CatalogHandle>,
        seating: Option<SeatingHandle>,
        payments: Option<&test_support::payments::PaymentsHandle>,
        analytics: Option<&test_support::analytics::AnalyticsHandle>,
        adjust: impl FnOnce(&mut gateway::Config),
    ) -> Gateway {
        let address = listener.local_addr().expect("bound address");
        let url = format!("http://{address}");
        let mut config = gateway::Config {
            catalog_url,
            seating_url: seating.as_ref().map_or_else(dead_url, |s| s.url.clone()),
            payments_url: payments.map_or_else(dead_url, |p| p.grpc_url.clone()),
            analytics_url: analytics.map_or_else(dead_url, |a| a.url.clone()),
            public_base_url: url.clone(),
            ..Default::default()
        };
        adjust(&mut config);
        let (prefix, streams) = match &seating {
            Some(seating) => (seating.prefix.clone(), None),
            None => {
                let prefix = test_support::events_prefix();
                let streams = TestStreams::adopt(&prefix).await;
                (prefix, Some(streams))
            }
        };
        let deps = gateway::Deps {
            nats_url: test_support::nats_url(),
            subject_prefix: prefix.clone(),
        };
        let db = TestDb::create("gateway").await;
        gateway::migrate(&db.pool)
            .await
            .expect("migrating the gateway's database");
        let shutdown = platform::Shutdown::new();
        tokio::spawn(gateway::serve(
            listener,
            config,
            deps,
            db.pool.clone(),
            shutdown.clone(),
        ));
        Gateway {
            url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("building an HTTP client"),
            db,
            prefix,
            sessions: Default::default(),
            shutdown,
            _streams: streams,
            _payments: None,
            _analytics: None,
            _catalog: catalog,
            seating,
        }
    }

    /// Another gateway replica over this one's database and subjects, as a
    /// deployment with two gateways has, keeping session lookups for
    /// `session_cache_secs`; its URL. It stops with this gateway.
    pub async fn replica(&self, session_cache_secs: u64) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let config = gateway::Config {
            catalog_url: dead_url(),
            seating_url: dead_url(),
            payments_url: dead_url(),
            analytics_url: dead_url(),
            public_base_url: url.clone(),
            session_cache_secs,
            ..Default::default()
        };
        let deps = gateway::Deps {
            nats_url: test_support::nats_url(),
            subject_prefix: self.prefix.clone(),
        };
        let (pool, shutdown) = (self.db.pool.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = gateway::serve(listener, config, deps, pool, shutdown).await {
                eprintln!("the replica gateway stopped: {error:#}");
            }
        });
        url
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// GET `path`, expecting `status`, returning the body as text.
    pub async fn text(&self, path: &str, status: u16) -> String {
        let response = self.get(path).await;
        let actual = response.status().as_u16();
        let body = response.text().await.expect("reading the body");
        assert_eq!(actual, status, "GET {path}: {body}");
        body
    }

    /// GET an HTML page, expecting `status`.
    pub async fn page(&self, path: &str, status: u16) -> String {
        let response = self.get(path).await;
        let content_type = header(&response, "content-type");
        assert!(
            content_type.starts_with("text/html"),
            "GET {path} answered {content_type}, not HTML"
        );
        let actual = response.status().as_u16();
        let body = response.text().await.expect("reading the body");
        assert_eq!(actual, status, "GET {path}: {body}");
        body
    }

    /// GET a JSON resource, expecting `status`.
    pub async fn json(&self, path: &str, status: u16) -> Value {
        let response = self.get(path).await;
        let content_type = header(&response, "content-type");
        assert!(
            content_type.starts_with("application/json"),
            "GET {path} answered {content_type}, not JSON"
        );
        let actual = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(actual, status, "GET {path}: {body}");
        body
    }

    /// Every film of the programme, from the API, in one page.
    pub async fn all_films(&self) -> Vec<Value> {
        let page = self.json("/api/v1/movies?page_size=100", 200).await;
        assert!(page["next_page_token"].is_null(), "the demo fits one page");
        page["films"].as_array().expect("films").clone()
    }
}

/// A signed-in test user's credentials, as a browser would hold them.
#[derive(Clone, Debug)]
pub struct Session {
    /// `bms_session=…`, for the Cookie header.
    pub cookie: String,
    pub csrf_token: String,
    pub user_id: String,
}

/// The `name=value` part of the `Set-Cookie` header for cookie `name`.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The full `Set-Cookie` header for cookie `name` (with its attributes).
pub fn set_cookie_header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl Gateway {
    /// An anonymous visitor's CSRF cookie (`bms_csrf=…`) and token, as the
    /// API hands them out.
    pub async fn anonymous_csrf(&self) -> (String, String) {
        let response = self.get("/api/v1/auth/csrf").await;
        assert_eq!(response.status(), 200);
        let cookie = set_cookie(&response, "bms_csrf").expect("a bms_csrf cookie");
        let body: Value = response.json().await.expect("a JSON body");
        let token = body["csrf_token"].as_str().expect("csrf_token").to_owned();
        (cookie, token)
    }

    /// Registers `email` through the API: status, body and the session (on
    /// success).
    pub async fn register(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
    ) -> (u16, Value, Option<Session>) {
        let (cookie, token) = self.anonymous_csrf().await;
        let response = self
            .http
            .post(format!("{}/api/v1/auth/register", self.url))
            .header("cookie", cookie)
            .header("x-csrf-token", token)
            .json(&serde_json::json!({
                "email": email, "display_name": display_name, "password": password
            }))
            .send()
            .await
            .expect("POST register");
        session_from(response).await
    }

    /// Signs `email` in through the API: status, body and the session.
    pub async fn login(&self, email: &str, password: &str) -> (u16, Value, Option<Session>) {
        let (cookie, token) = self.anonymous_csrf().await;
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .header("cookie", cookie)
            .header("x-csrf-token", token)
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("POST login");
        session_from(response).await
    }

    /// The session of test user `user` (`user@example.com`), registering
    /// them on first use.
    pub async fn session_of(&self, user: &str) -> Session {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(user) {
            return session.clone();
        }
        let (status, body, session) = self
            .register(&format!("{user}@example.com"), user, PASSWORD)
            .await;
        assert_eq!(status, 201, "registering {user}: {body}");
        let session = session.expect("a session");
        sessions.insert(user.to_owned(), session.clone());
        session
    }

    /// A session of staff member `user`: registered, promoted, then signed
    /// in afresh. A session the gateway started keeps what it knew of its
    /// account for `SESSION_CACHE_SECS` unless a gateway made the change, as
    /// after `bookmyseat admin create-staff`, so the promotion shows in a
    /// new session; it also becomes `session_of(user)`.
    pub async fn staff_session(&self, user: &str) -> Session {
        let email = format!("{user}@example.com");
        self.session_of(user).await;
        gateway::store::promote_to_staff(&self.db.pool, &email)
            .await
            .expect("promoting")
            .expect("an account to promote");
        let (status, body, session) = self.login(&email, PASSWORD).await;
        assert_eq!(status, 200, "signing {user} in: {body}");
        let session = session.expect("a session");
        self.sessions
            .lock()
            .await
            .insert(user.to_owned(), session.clone());
        session
    }

    /// Posts an HTML form as `session` (with the CSRF field, as the page's
    /// form would): status, Location and body.
    pub async fn post_form(
        &self,
        path: &str,
        session: &Session,
        fields: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        pairs.push(("csrf_token", &session.csrf_token));
        let body = serde_urlencoded::to_string(&pairs).expect("a form");
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", &session.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let location = header(&response, "location");
        (status, location, response.text().await.expect("a body"))
    }

    /// An HTML page as `session`: status and body.
    pub async fn page_as(&self, path: &str, session: &Session) -> (u16, String) {
        let response = self
            .with_session(reqwest::Method::GET, path, session)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// A request to `path` as test user `user`, signed in, with the CSRF
    /// token a browser's script would send.
    pub async fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
    ) -> reqwest::RequestBuilder {
        let session = self.session_of(user).await;
        self.with_session(method, path, &session)
    }

    /// A request carrying `session`'s cookie and CSRF token.
    pub fn with_session(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &Session,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("cookie", &session.cookie)
            .header("x-csrf-token", &session.csrf_token)
    }

    /// `POST /api/v1/showtimes/{showtime}/holds` as `user`: status and body.
    pub async fn hold(&self, showtime: &str, user: &str, seats: &[&str]) -> (u16, Value) {
        let response = self
            .as_user(
                reqwest::Method::POST,
                &format!("/api/v1/showtimes/{showtime}/holds"),
                user,
            )
            .await
            .json(&serde_json::json!({ "seats": seats }))
            .send()
            .await
            .expect("POST holds");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// `GET /api/v1/showtimes/{showtime}/seats` as `user`.
    pub async fn seat_map(&self, showtime: &str, user: &str) -> Value {
        let response = self
            .as_user(
                reqwest::Method::GET,
                &format!("/api/v1/showtimes/{showtime}/seats"),
                user,
            )
            .await
            .send()
            .await
            .expect("GET seats");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON body")
    }
}

/// Status, body and session of a sign-in or registration answer.
async fn session_from(response: reqwest::Response) -> (u16, Value, Option<Session>) {
    let status = response.status().as_u16();
    let cookie = set_cookie(&response, "bms_session");
    let body: Value = response.json().await.expect("a JSON body");
    let session = cookie
        .filter(|c| c.len() > "bms_session=".len())
        .map(|cookie| Session {
            cookie,
            csrf_token: body["csrf_token"].as_str().unwrap_or_default().to_owned(),
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_owned(),
        });
    (status, body, session)
}

/// The seat `label` of a seat map.
pub fn seat<'a>(map: &'a Value, label: &str) -> &'a Value {
    map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|seat| seat["label"] == label)
        .unwrap_or_else(|| panic!("no seat {label}"))
}

/// A URL where nobody listens: a port that was free a moment ago.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    let address = listener.local_addr().expect("bound address");
    drop(listener);
    format!("http://{address}")
}

/// A response header as text ("" when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `text` as an askama template prints it.
pub fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// An attribute value as printed by askama, back to text.
pub fn unescaped(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

/// The "N films" line of the home page.
pub fn count_line(count: usize) -> String {
    if count == 1 {
        "1 film".to_owned()
    } else {
        format!("{count} films")
    }
}

/// The film-card links (`/films/<slug>`) of a page, in order.
pub fn film_links(html: &str) -> Vec<String> {
    html.split("class=\"film-card__link\" href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The slugs of films whose genres include `genre`.
pub fn slugs_with(films: &[Value], field: &str, value: &str) -> Vec<String> {
    films
        .iter()
        .filter(|film| has(film, field, value))
        .map(|film| film["slug"].as_str().expect("slug").to_owned())
        .collect()
}

/// Whether a film JSON has genre slug / language code `value`.
pub fn has(film: &Value, field: &str, value: &str) -> bool {
    match field {
        "genre" => film["genres"]
            .as_array()
            .expect("genres")
            .iter()
            .any(|g| g["slug"] == value),
        "language" => film["language"]["code"] == value,
        other => panic!("no filter {other}"),
    }
}

/// A showtime in a classic 10×12 hall (rows A–J, 12 seats each), and its film.
pub async fn classic_showtime(gateway: &Gateway) -> (String, Value) {
    for film in gateway.all_films().await {
        let slug = film["slug"].as_str().expect("slug");
        let listing = gateway
            .json(&format!("/api/v1/movies/{slug}/showtimes"), 200)
            .await;
        let ids: Vec<String> = listing["days"]
            .as_array()
            .expect("days")
            .iter()
            .flat_map(|day| day["cinemas"].as_array().expect("cinemas").clone())
            .flat_map(|cinema| cinema["showtimes"].as_array().expect("showtimes").clone())
            .map(|slot| slot["id"].as_str().expect("id").to_owned())
            .collect();
        for id in ids {
            let detail = gateway.json(&format!("/api/v1/showtimes/{id}"), 200).await;
            let rows = detail["screen"]["layout"]["rows"].as_array().expect("rows");
            let classic = rows.len() == 10
                && rows.first().is_some_and(|r| r["label"] == "A")
                && rows.last().is_some_and(|r| r["label"] == "J")
                && rows.iter().all(|r| r["seats"] == 12);
            if classic {
                return (id, film);
            }
        }
    }
    panic!("the demo programme has no showtime in a classic 10×12 hall");
}
