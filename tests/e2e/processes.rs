//! Running `bookmyseat` roles as child processes for end-to-end tests.
//!
//! Each child is killed when its handle drops (a failing test leaves no
//! stray servers), and [`Role::terminate`] sends SIGTERM to check the
//! graceful shutdown path operators rely on.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_bookmyseat");

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs a one-shot subcommand (`migrate`, `seed`) and asserts it succeeded.
pub async fn run_to_completion(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), command(args, env).output())
        .await
        .unwrap_or_else(|_| panic!("bookmyseat {args:?} did not finish within 60 s"))
        .expect("starting bookmyseat");
    assert!(
        output.status.success(),
        "bookmyseat {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A long-running role (`catalog`, `gateway`, …) in its own process.
pub struct Role {
    name: String,
    child: Child,
    /// `http://127.0.0.1:PORT/metrics` of this process.
    pub metrics_url: String,
}

impl Role {
    /// Starts `bookmyseat <role>` with `env`, and a metrics port of its own
    /// (several roles run side by side).
    pub fn start(role: &str, env: &[(&str, &str)]) -> Role {
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = command(&[role], env)
            .env("METRICS_ADDR", &metrics)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting bookmyseat {role}: {e}"));
        Role {
            name: role.to_owned(),
            child,
            metrics_url: format!("http://{metrics}/metrics"),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the process ended, if it has (it should not have, while serving).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits (at most 15 s) for the process to exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the role is still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "could not signal {}", self.name);
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 15 s of SIGTERM", self.name))
            .expect("waiting for the role")
    }

    /// Kills the process outright (SIGKILL), as a crash or an OOM kill would.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("killing the role");
    }
}

pub use test_support::free_port;

/// Polls `url` until it answers 200 (at most 30 s).
pub async fn wait_until_ready(http: &reqwest::Client, url: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not become ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Something a started system must answer before a test uses it.
pub enum Readiness {
    /// A server accepts TCP connections here (a gRPC listener).
    Listening(String),
    /// This URL answers 2xx (`/readyz`, `/metrics`).
    Answers(String),
}

impl Readiness {
    async fn holds(&self, http: &reqwest::Client) -> bool {
        match self {
            Readiness::Listening(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
            Readiness::Answers(url) => http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::Listening(address) => write!(f, "a listener at {address}"),
            Readiness::Answers(url) => write!(f, "{url} answering"),
        }
    }
}

/// Waits until every check holds (at most 60 s for all). Fails at once,
/// naming the role, when one of `roles` exits meanwhile (a port taken, a
/// crash: its log is in the test's output above).
pub async fn wait_until_serving(roles: &mut [Role], checks: &[Readiness]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for check in checks {
        while !check.holds(&http).await {
            for role in roles.iter_mut() {
                if let Some(status) = role.exit_status() {
                    panic!(
                        "bookmyseat {} exited while starting ({status}); see its log above",
                        role.name
                    );
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the system did not start within 60 s: no {check}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
