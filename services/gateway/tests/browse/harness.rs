//! Starting a gateway for a test, and small helpers for reading its answers.

use chrono::Utc;
use serde_json::Value;
use test_support::{CatalogHandle, SeatingHandle};

/// A gateway on port 0 in front of a real catalog with the demo programme
/// (and, for seat tests, a real seating service).
pub struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub http: reqwest::Client,
    shutdown: platform::Shutdown,
    // Kept alive for the test's duration; dropping them stops the services.
    _catalog: Option<CatalogHandle>,
    _seating: Option<SeatingHandle>,
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
        let catalog = test_support::spawn_catalog_with_demo_programme(Utc::now()).await;
        let seating =
            test_support::spawn_seating(&catalog.url, &test_support::events_prefix()).await;
        let url = catalog.url.clone();
        Self::start(url, Some(catalog), Some(seating)).await
    }

    /// A gateway whose catalog is not running at all.
    pub async fn without_catalog() -> Gateway {
        Self::start(dead_url(), None, None).await
    }

    async fn start(
        catalog_url: String,
        catalog: Option<CatalogHandle>,
        seating: Option<SeatingHandle>,
    ) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding port 0");
        let address = listener.local_addr().expect("bound address");
        let url = format!("http://{address}");
        let config = gateway::Config {
            catalog_url,
            seating_url: seating.as_ref().map_or_else(dead_url, |s| s.url.clone()),
            public_base_url: url.clone(),
            ..Default::default()
        };
        let deps = gateway::Deps {
            nats_url: test_support::nats_url(),
            subject_prefix: seating
                .as_ref()
                .map_or_else(test_support::events_prefix, |s| s.prefix.clone()),
        };
        let shutdown = platform::Shutdown::new();
        tokio::spawn(gateway::serve(listener, config, deps, shutdown.clone()));
        Gateway {
            url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("building an HTTP client"),
            shutdown,
            _catalog: catalog,
            _seating: seating,
        }
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

impl Gateway {
    /// A request to `path` as the development user `user`.
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("x-dev-user", user)
    }

    /// `POST /api/v1/showtimes/{showtime}/holds` as `user`: status and body.
    pub async fn hold(&self, showtime: &str, user: &str, seats: &[&str]) -> (u16, Value) {
        let response = self
            .as_user(
                reqwest::Method::POST,
                &format!("/api/v1/showtimes/{showtime}/holds"),
                user,
            )
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
            .send()
            .await
            .expect("GET seats");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON body")
    }
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
