//! A small WebDriver client: Debian's headless Chromium driven through
//! chromedriver, for the browser tests in `browser.rs`.
//!
//! WebDriver is JSON over HTTP (W3C WebDriver), so `reqwest` and
//! `serde_json` are all it takes; a full client crate (fantoccini, thirtyfour)
//! would add a dependency tree to the e2e build for the handful of commands
//! these tests use: open a page, find an element by CSS or XPath, click, type,
//! read text and attributes, run a script, take a screenshot.
//!
//! **Processes.** [`ChromeDriver::start`] runs `chromedriver` on a free port in
//! a process group of its own; every Chromium it launches joins that group, so
//! dropping the driver (also when a test panics) kills the whole group and
//! leaves no browser behind. Each [`Browser`] is a WebDriver session with its
//! own profile directory, so two browsers are two visitors with separate
//! cookies.
//!
//! **Waiting.** Pages change on their own (a redirect, a live seat update, a
//! page that refreshes itself), so tests wait for what they expect with
//! [`Browser::wait_for`] / [`Browser::wait_until`]: poll until it holds, bounded
//! by a deadline, and fail naming what was awaited and what was last seen.
//! Nothing sleeps a fixed time to let the page "settle".

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::processes::free_port;

/// How long a wait for something on a page may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);
/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// What to run when the browser is missing.
const INSTALL_HINT: &str =
    "run `scripts/stack.sh ensure --browser` (installs Debian's chromium and chromium-driver)";

/// The Chromium binaries, found where `scripts/stack.sh` looks for them.
struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Binaries {
    /// Finds Chromium and chromedriver, or fails the test saying how to
    /// install them: a browser test never skips silently.
    fn find() -> Binaries {
        let chromium = first_of(&[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ])
        .unwrap_or_else(|| {
            panic!("no Chromium found (chromium, chromium-browser, google-chrome): {INSTALL_HINT}")
        });
        let chromedriver = first_of(&["chromedriver", "/usr/lib/chromium/chromedriver"])
            .unwrap_or_else(|| panic!("no chromedriver found: {INSTALL_HINT}"));
        Binaries {
            chromium,
            chromedriver,
        }
    }
}

/// The first of `candidates` that exists: an absolute path as is, a bare name
/// on `PATH`.
fn first_of(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|candidate| {
        let candidate = Path::new(candidate);
        if candidate.is_absolute() {
            return is_executable(candidate).then(|| candidate.to_owned());
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(candidate))
            .find(|full| is_executable(full))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running chromedriver; killed, with every browser it started, on drop.
pub struct ChromeDriver {
    child: tokio::process::Child,
    url: String,
    chromium: PathBuf,
    /// Profiles of the browsers this driver started (removed on drop).
    profiles: PathBuf,
    http: reqwest::Client,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and waits (bounded) until it says
    /// it is ready for sessions.
    pub async fn start() -> ChromeDriver {
        let binaries = Binaries::find();
        let port = free_port();
        let child = tokio::process::Command::new(&binaries.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which the browsers it launches join: one
            // kill on drop stops them all.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e}; {INSTALL_HINT}",
                    binaries.chromedriver.display()
                )
            });
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: binaries.chromium,
            profiles: std::env::temp_dir()
                .join(format!("bookmyseat-e2e-chromium-{}", uuid::Uuid::new_v4())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = driver.http.get(format!("{}/status", driver.url)).send();
            if let Ok(response) = status.await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Opens a new headless browser window (a WebDriver session) with a
    /// fresh profile: no cookies, nobody signed in.
    pub async fn new_browser(&self, name: &str) -> Browser {
        let profile = self.profiles.join(name);
        std::fs::create_dir_all(&profile).expect("creating a browser profile directory");
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    // The console (CSP violations, script errors) for failure reports.
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": {
                        "binary": self.chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,1000",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let created = command(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.url),
            Some(capabilities),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver could not start {}: {e}; {INSTALL_HINT}",
                self.chromium.display()
            )
        });
        let id = created["value"]["sessionId"]
            .as_str()
            .expect("a new WebDriver session has an id");
        Browser {
            name: name.to_owned(),
            session: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SIGKILL to the whole group (negative pid): chromedriver and every
        // Chromium process it started.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// Where a locator looks: the two strategies the tests use.
#[derive(Clone, Copy, Debug)]
pub enum By<'a> {
    /// A CSS selector: `input[aria-label^="Seat C5,"]`.
    Css(&'a str),
    /// An XPath expression, for finding by visible text:
    /// `//button[normalize-space()="Hold seats"]`.
    XPath(&'a str),
}

impl By<'_> {
    fn to_json(self) -> Value {
        match self {
            By::Css(selector) => json!({ "using": "css selector", "value": selector }),
            By::XPath(path) => json!({ "using": "xpath", "value": path }),
        }
    }

    fn describe(self) -> String {
        match self {
            By::Css(selector) => format!("css `{selector}`"),
            By::XPath(path) => format!("xpath `{path}`"),
        }
    }
}

/// A reference to an element on the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

/// One browser window (WebDriver session).
pub struct Browser {
    /// Names the browser in failure messages and screenshot files.
    name: String,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.session);
        command(&self.http, method, &url, body)
            .await
            .map(|mut v| v["value"].take())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("{}: opening {url}: {e}", self.name));
    }

    /// The address of the page now shown.
    pub async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{}: reading the current URL", self.name))
    }

    /// The element `by` finds now, if there is one.
    pub async fn find(&self, by: By<'_>) -> Option<Element> {
        let found = self.post("/element", by.to_json()).await.ok()?;
        found[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// Waits (bounded) until `by` finds an element that is displayed.
    pub async fn wait_for(&self, by: By<'_>) -> Element {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(element) = self.find(by).await
                && self.is_displayed(&element).await
            {
                return element;
            }
            if tokio::time::Instant::now() >= deadline {
                self.give_up(&format!(
                    "waited {WAIT:?} for {} to be shown",
                    by.describe()
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the test with `message`, the page's address, and a screenshot
    /// of what the browser showed (`failed-<browser>.png`).
    async fn give_up(&self, message: &str) -> ! {
        let url = self.get("/url").await.unwrap_or_default();
        let shot = format!("failed-{}", self.name);
        let saved = match self.get("/screenshot").await {
            Ok(encoded) => save_png(&shot, &encoded)
                .map(|path| format!("screenshot: {}", path.display()))
                .unwrap_or_else(|e| format!("no screenshot: {e}")),
            Err(e) => format!("no screenshot: {e}"),
        };
        let console = self
            .post("/se/log", json!({ "type": "browser" }))
            .await
            .ok()
            .and_then(|entries| entries.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|entry| format!("\n    {} {}", entry["level"], entry["message"]))
            .collect::<String>();
        panic!(
            "{}: {message}\n  page: {url}\n  {saved}\n  browser console:{console}",
            self.name
        )
    }

    async fn is_displayed(&self, element: &Element) -> bool {
        self.get(&format!("/element/{}/displayed", element.0))
            .await
            .is_ok_and(|v| v == true)
    }

    /// Clicks what `by` finds, waiting (bounded) until there is one the
    /// browser can click (found, in view, not covered by something else).
    pub async fn click(&self, by: By<'_>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let error = match self.find(by).await {
                Some(element) => match self.click_element(&element).await {
                    Ok(()) => return,
                    Err(error) => error,
                },
                None => "no such element".to_owned(),
            };
            if tokio::time::Instant::now() >= deadline {
                let what = by.describe();
                self.give_up(&format!(
                    "waited {WAIT:?} to click {what}; last error: {error}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks `element` once; the driver's refusal (not interactable,
    /// covered) as text.
    pub async fn click_element(&self, element: &Element) -> Result<(), String> {
        self.post(&format!("/element/{}/click", element.0), json!({}))
            .await
            .map(|_| ())
    }

    /// Types `text` into the field `by` finds.
    pub async fn type_into(&self, by: By<'_>, text: &str) {
        let element = self.wait_for(by).await;
        self.post(
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: typing into {}: {e}", self.name, by.describe()));
    }

    /// The visible text of what `by` finds (waiting for it to be shown).
    pub async fn text(&self, by: By<'_>) -> String {
        let element = self.wait_for(by).await;
        self.get(&format!("/element/{}/text", element.0))
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{}: reading the text of {}", self.name, by.describe()))
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the
    /// page and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
            .unwrap_or_else(|e| panic!("{}: running a script: {e}\n{script}", self.name))
    }

    /// Waits (bounded) until `script` returns something other than `null`,
    /// `false` or `""`, and returns that.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Value {
        self.wait_until_value(what, script, args, |value| {
            !matches!(value, Value::Null | Value::Bool(false)) && value != ""
        })
        .await
    }

    /// Waits (bounded) until what `script` returns satisfies `done`, and
    /// returns it. `what` names the awaited state for the failure message,
    /// which also shows the script's last answer. A script that fails (the
    /// page is between two documents) counts as "not yet".
    pub async fn wait_until_value(
        &self,
        what: &str,
        script: &str,
        args: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let body = json!({ "script": script, "args": args.clone() });
            let last = match self.post("/execute/sync", body).await {
                Ok(value) if done(&value) => return value,
                Ok(value) => value,
                Err(error) => Value::String(error),
            };
            if tokio::time::Instant::now() >= deadline {
                self.give_up(&format!("waited {WAIT:?} for {what}; last seen: {last}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (bounded) until the page's address contains `part`.
    pub async fn wait_for_url(&self, part: &str) -> String {
        let url = self
            .wait_until(
                &format!("an address containing {part:?}"),
                "return location.href.includes(arguments[0]) ? location.href : null;",
                json!([part]),
            )
            .await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the window as `<screenshot dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self
            .get("/screenshot")
            .await
            .unwrap_or_else(|e| panic!("{}: taking screenshot {name}: {e}", self.name));
        save_png(name, &encoded).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Closes the window (ends the session) cleanly.
    pub async fn quit(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}

/// Decodes WebDriver's base64 screenshot and writes it as
/// `<screenshot dir>/<name>.png`.
fn save_png(name: &str, encoded: &Value) -> Result<PathBuf, String> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().unwrap_or_default())
        .map_err(|e| format!("screenshot {name} is not base64: {e}"))?;
    if !png.starts_with(b"\x89PNG") {
        return Err(format!("screenshot {name} is not a PNG"));
    }
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// `$CARGO_TARGET_DIR/e2e-screenshots`, or `<workspace>/target/e2e-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let target = if target.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(target)
    } else {
        target
    };
    target.join("e2e-screenshots")
}

/// One WebDriver command; its `value`, or the driver's error as text.
async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!(
            "{status} {}: {}",
            body["value"]["error"].as_str().unwrap_or("error"),
            body["value"]["message"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
        ))
    }
}
