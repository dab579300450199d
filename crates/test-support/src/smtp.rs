//! A real SMTP server for tests: Python's `aiosmtpd`, storing what it
//! receives in a maildir the test reads.
//!
//! Tests that send email talk to a real SMTP server, never a mock, so the
//! bytes a mail server would see are the bytes the test checks.
//! [`SmtpSink::start`] runs `<repo>/.stack/venv/bin/python -m aiosmtpd -n
//! -l 127.0.0.1:PORT -c smtp_sink.Sink <dir>` on a port of the test's own
//! and waits until it accepts connections. `smtp_sink.Sink` (beside this
//! crate's `Cargo.toml`) is aiosmtpd's `Mailbox` handler, which writes every
//! message to a maildir, except that it refuses recipients whose address
//! starts with `rejected` with a permanent `550` — [`REJECTED_RECIPIENT`]. The maildir lives in a
//! temporary folder of its own, removed on drop.
//!
//! An outage is a real one: [`SmtpSink::stop`] kills the server (the port then
//! refuses connections) and [`SmtpSink::restart`] starts it again on the same
//! port with the same maildir, so mail that arrives after a restart is added
//! to what arrived before.
//!
//! The virtualenv is made by `scripts/stack.sh ensure --smtp`. When it is
//! missing the sink panics with that instruction: a test that needs SMTP
//! never skips silently.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A recipient the sink refuses for good (`550`), as a real server refuses an
/// address that does not exist.
pub const REJECTED_RECIPIENT: &str = "rejected@example.com";

/// This crate's folder (it holds `smtp_sink.py`).
fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root (this crate lives in `crates/test-support`).
fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

/// The Python interpreter of the project's virtualenv that has `aiosmtpd`.
pub fn python() -> PathBuf {
    repo_root().join(".stack/venv/bin/python")
}

/// A running (or stopped) `aiosmtpd` with a maildir of its own.
pub struct SmtpSink {
    port: u16,
    maildir: PathBuf,
    child: Option<Child>,
    relay: Option<Relay>,
}

/// What a sink started by [`SmtpSink::start_tls`] demands: STARTTLS with
/// this certificate, then these credentials.
#[derive(Clone, Debug)]
pub struct Relay {
    pub certificates: Certificates,
    pub user: String,
    pub password: String,
}

/// A private CA and a server certificate it signed for `localhost`, as PEM
/// files in a folder of their own (removed on drop). Made with the
/// `openssl` command (`scripts/stack.sh ensure --smtp` installs it).
#[derive(Clone, Debug)]
pub struct Certificates {
    dir: PathBuf,
    /// The CA a client must trust (the notifier's `SMTP_CA_FILE`).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Certificates {
    pub fn generate() -> Certificates {
        let dir = std::env::temp_dir().join(format!("bookmyseat-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a folder for the test certificates");
        let path = |name: &str| dir.join(name);
        std::fs::write(
            path("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("writing the certificate extensions");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "tests need the openssl command to make certificates ({e}); \
                         run `scripts/stack.sh ensure --smtp`"
                    )
                });
            assert!(
                output.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=BookMySeat Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Certificates {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            dir,
        }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SmtpSink {
    /// Starts the server on a free port and waits until it accepts
    /// connections (bounded: 30 s).
    pub async fn start() -> SmtpSink {
        Self::launch(None).await
    }

    /// A sink that behaves as a production relay: STARTTLS with `relay`'s
    /// certificate before anything else, then AUTH with its credentials
    /// (`smtp_tls_sink.py`). Each stored message carries `X-Sink-TLS` and
    /// `X-Sink-Login` headers saying how it came.
    pub async fn start_tls(relay: Relay) -> SmtpSink {
        Self::launch(Some(relay)).await
    }

    async fn launch(relay: Option<Relay>) -> SmtpSink {
        let python = python();
        assert!(
            python.exists(),
            "tests need Python's aiosmtpd in {} for a real SMTP server; \
             run `scripts/stack.sh ensure --smtp` (or `make test STACK_FLAGS=--smtp`) once",
            python.display()
        );
        let port = crate::free_port();
        let maildir =
            std::env::temp_dir().join(format!("bookmyseat-smtp-{}", uuid::Uuid::new_v4()));
        // Python's Maildir makes its folders only when the root is missing;
        // the root exists (it holds the server's log), so make them here.
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("creating the SMTP sink's maildir");
        }
        let mut sink = SmtpSink {
            port,
            maildir,
            child: None,
            relay,
        };
        sink.restart().await;
        sink
    }

    /// What `SMTP_URL` should be: `smtp://127.0.0.1:PORT` (plain SMTP, no
    /// credentials), or for a relay `smtp://USER:PASSWORD@localhost:PORT?tls=required`
    /// (STARTTLS, the name its certificate is for).
    pub fn url(&self) -> String {
        match &self.relay {
            None => format!("smtp://127.0.0.1:{}", self.port),
            Some(relay) => format!(
                "smtp://{}:{}@localhost:{}?tls=required",
                relay.user, relay.password, self.port
            ),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server: connections to its port are refused until
    /// [`SmtpSink::restart`]. Mail received so far stays readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and maildir, and waits until
    /// it accepts connections. Does nothing when it is running.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let python = python();
        let mut last_error = String::new();
        // The port was just released by a killed server (or by `free_port`);
        // the kernel may need a moment before it can be bound again.
        for _ in 0..50 {
            let mut command = Command::new(&python);
            match &self.relay {
                None => command
                    .args(["-m", "aiosmtpd", "-n", "-l"])
                    .arg(format!("127.0.0.1:{}", self.port))
                    .args(["-c", "smtp_sink.Sink"]),
                Some(relay) => command
                    .arg(crate_dir().join("smtp_tls_sink.py"))
                    .args(["--port", &self.port.to_string()])
                    .arg("--cert")
                    .arg(&relay.certificates.server_cert)
                    .arg("--key")
                    .arg(&relay.certificates.server_key)
                    .args(["--user", &relay.user, "--password", &relay.password]),
            };
            let mut child = command
                .env("PYTHONPATH", crate_dir())
                .arg(&self.maildir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(self.log_file())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {} -m aiosmtpd: {e}", python.display()));
            for _ in 0..100 {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "aiosmtpd exited with {status}: {}",
                        std::fs::read_to_string(self.maildir.join(LOG_FILE)).unwrap_or_default()
                    );
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    self.child = Some(child);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if self.child.is_none() {
                let _ = child.kill();
                let _ = child.wait();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!(
            "the SMTP sink did not accept connections on port {}: {last_error}",
            self.port
        );
    }

    /// The server's stderr goes to a file beside the maildir's folders (a
    /// pipe nobody reads could fill up and stall it).
    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.maildir.join(LOG_FILE))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    }

    /// Every message received so far, oldest first, as raw RFC 5322 bytes.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(|entry| entry.ok())
            .map(|entry| {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, entry.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .collect()
    }

    /// How many messages arrived so far.
    pub fn count(&self) -> usize {
        self.messages().len()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// aiosmtpd's stderr, inside the maildir folder (Maildir ignores files there).
const LOG_FILE: &str = "aiosmtpd.log";
