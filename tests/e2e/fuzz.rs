//! API fuzzing: Schemathesis (from PyPI) sends generated requests — valid
//! ones and deliberately malformed ones — to every operation the gateway's
//! OpenAPI document (`/api/openapi.json`) describes, as the seeded demo
//! customer (and the staff operations again as the demo staff account), and
//! checks that no answer is a server error and that every answer is one the
//! document promises: a documented status code, the documented content
//! type, headers and a body matching the schema. Half the time an operation
//! that takes a film, showtime or hold id gets a real one, so requests reach
//! the code behind "not found".
//!
//! The system is the real one (`bookmyseat all` over fresh databases), so
//! the generated holds, seat blocks, profile changes and sign-ups land in
//! this test's own databases only. Schemathesis runs as a subprocess from the project's
//! virtualenv (`scripts/stack.sh ensure --fuzz`, which `make test` runs);
//! when it is missing the test fails saying so — it never skips.
//!
//! The run is bounded twice: a modest number of examples per operation
//! (`FUZZ_MAX_EXAMPLES`, default 60) keeps the two runs to about a minute
//! on two cores, and a hard time limit kills a run that hangs. A failure prints
//! Schemathesis's report, which names the operation, the failing check and
//! a `curl` command that reproduces it; the run's seed is in that report,
//! and `FUZZ_SEED=<seed>` replays it.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{Environment, Session, get_json, processes};

/// The longest one Schemathesis run may take before the test gives up on it.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// The Schemathesis version `scripts/stack.sh ensure --fuzz` installs (its
/// command-line flags change between releases, so the pin lives in both).
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// `python -m schemathesis.cli` from the project's virtualenv, after
/// checking that it is the pinned version; fails the test with what to run
/// when it is not installed.
fn schemathesis() -> Command {
    let python = test_support::smtp::python();
    let version = std::process::Command::new(&python)
        .args(["-m", "schemathesis.cli", "--version"])
        .stdin(Stdio::null())
        .output();
    let installed = match &version {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    assert_eq!(
        installed,
        SCHEMATHESIS_VERSION,
        "the API fuzzing test needs schemathesis {SCHEMATHESIS_VERSION} in {} ({version:?}); \
         run `scripts/stack.sh ensure --fuzz` (or `make test`, which does) once",
        python.display()
    );
    let mut command = Command::new(python);
    command.args(["-m", "schemathesis.cli"]);
    command
}

/// Every documented operation, fuzzed with the demo customer's session, and
/// the staff operations again with the demo staff account's: no 5xx, and
/// every answer as the OpenAPI document describes it.
#[tokio::test]
async fn fuzzed_api_requests_get_no_server_errors_and_documented_answers() {
    // Before anything starts: fail at once when schemathesis is missing.
    schemathesis();
    let env = Environment::new().await;
    env.migrate_and_seed().await;
    let all = env.start("all");
    let http = reqwest::Client::new();
    processes::wait_until_ready(&http, &env.url("/readyz")).await;
    let customer = env
        .sign_in(&http, "customer@bookmyseat.test", "demo-customer-pass")
        .await;
    let staff = env
        .sign_in(&http, "staff@bookmyseat.test", "demo-staff-pass")
        .await;

    // Ids that exist, so that requests get past "no such film" to the
    // code behind it: half the generated requests of an operation that
    // takes one of these ids use a real one, the rest a generated one.
    let film = get_json(&http, &env.url("/api/v1/movies/metropolis"), None).await;
    let showtime = env.first_showtime(&http, "metropolis").await;
    let hold = customer
        .on(http.post(env.url(&format!("/api/v1/showtimes/{showtime}/holds"))))
        .json(&serde_json::json!({ "seats": ["A1", "A2"] }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(hold.status(), 201, "holding seats to fuzz holds with");
    let hold: serde_json::Value = hold.json().await.expect("a hold");
    let config = format!(
        r#"
# A seat stream never ends by itself: its first event (the snapshot) is
# what there is to check.
max-stream-events = 1

[dictionaries.films]
values = ["metropolis", "{film}"]
[dictionaries.showtimes]
values = ["{showtime}"]
[dictionaries.holds]
values = ["{hold}"]

[[operations]]
include-path-regex = "^/api/v1/movies/"
parameters = {{ "path.id_or_slug" = {{ dictionary = "films", probability = 0.5 }} }}
[[operations]]
include-path-regex = "^/api/v1/(admin/)?showtimes/"
parameters = {{ "path.id" = {{ dictionary = "showtimes", probability = 0.5 }} }}
[[operations]]
include-path-regex = "^/api/v1/holds/"
parameters = {{ "path.id" = {{ dictionary = "holds", probability = 0.5 }} }}
"#,
        film = film["id"].as_str().expect("the film's id"),
        hold = hold["id"].as_str().expect("the hold's id"),
    );

    // Signing out would end the session every other operation runs with,
    // half-way through the run; signing out is covered by the gateway's
    // own tests.
    let customer_report = fuzz(
        &env,
        &customer,
        &config,
        &["--exclude-path", "/api/v1/auth/logout"],
    )
    .await;
    // A customer only ever meets refusals from the staff operations; the
    // staff account reaches the code behind them.
    let staff_report = fuzz(&env, &staff, &config, &["--include-tag", "staff"]).await;
    println!("As the customer:\n{customer_report}\nAs staff:\n{staff_report}");

    tokio::time::timeout(Duration::from_secs(20), async {
        assert!(all.terminate().await.success(), "`all` exits cleanly");
    })
    .await
    .expect("`all` stops");
}

/// Runs schemathesis against the environment's gateway as `session`, with
/// the configuration `config` (a `schemathesis.toml`) and `extra` flags
/// (which operations); asserts it found nothing and returns its report.
async fn fuzz(env: &Environment, session: &Session, config: &str, extra: &[&str]) -> String {
    let max_examples = std::env::var("FUZZ_MAX_EXAMPLES").unwrap_or_else(|_| "60".to_owned());
    // Schemathesis keeps nothing: it runs in a folder of its own, which
    // holds only its configuration and its report.
    let scratch = std::env::temp_dir().join(format!("bookmyseat-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).expect("a scratch folder for schemathesis");
    let config_file = scratch.join("schemathesis.toml");
    std::fs::write(&config_file, config).expect("writing schemathesis.toml");
    let mut schemathesis = schemathesis();
    schemathesis
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(env.url("/api/openapi.json"))
        .args(["--url", &env.gateway_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", &max_examples])
        .args(extra)
        // The session goes in as headers: Schemathesis must not replace it
        // with cookies it generates for the `session` security scheme.
        .args(["--header", &format!("Cookie: {}", session.cookie)])
        .args(["--header", &format!("X-CSRF-Token: {}", session.csrf_token)])
        .args(["--generation-with-security-parameters", "false"])
        // No request may wait longer than this (a seat stream that sent
        // nothing would otherwise hold the run).
        .args(["--request-timeout", "10"])
        .args(["--workers", "2"])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--output-truncate", "false"])
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Ok(seed) = std::env::var("FUZZ_SEED") {
        schemathesis.args(["--seed", &seed]);
    }
    // Its report goes to a file, so that a run cut short by the time limit
    // still shows how far it got.
    let report_file = scratch.join("report.txt");
    let report_out = std::fs::File::create(&report_file).expect("creating the report file");
    let report_err = report_out.try_clone().expect("sharing the report file");
    schemathesis.stdout(report_out).stderr(report_err);
    let mut child = schemathesis.spawn().expect("starting schemathesis");
    let status = tokio::time::timeout(TIME_LIMIT, child.wait()).await;
    if status.is_err() {
        let _ = child.kill().await;
    }
    let report = std::fs::read_to_string(&report_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&scratch);
    let status = status
        .unwrap_or_else(|_| {
            panic!("schemathesis {extra:?} did not finish within {TIME_LIMIT:?}; its report so far:\n{report}")
        })
        .expect("running schemathesis");
    assert!(
        status.success(),
        "schemathesis {extra:?} found problems ({status}):\n{report}"
    );
    report
}
