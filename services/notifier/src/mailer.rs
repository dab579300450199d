//! Where emails go: an SMTP server, or a folder of `.eml` files.
//!
//! With `SMTP_URL` set the notifier speaks SMTP through `lettre`
//! (`smtp://user:pass@host:587?tls=required` for STARTTLS,
//! `smtps://…:465` for TLS from the first byte, plain `smtp://host:port` for
//! a local sink such as Mailpit). Connections are pooled (lettre's pool, one
//! per concurrent send, `NOTIFIER_CONCURRENCY`, kept open for a minute): a
//! send reuses one after a `NOOP` says it still works, which saves the
//! connect, greeting, TLS and login of each email.
//! Each send is bounded by a timeout.
//! A relay whose certificate comes from a private CA is trusted through
//! `SMTP_CA_FILE` (PEM) instead of the public web roots.
//!
//! Without `SMTP_URL` each email is written to the outbox folder as
//! `<event id>.eml` (written to a temporary name, then renamed, so a reader
//! never sees half a file) and logged, so a developer sees every email with
//! no mail server. A resend overwrites the same file.
//!
//! Failures are sorted for the retry loop ([`SendError`]): the server's 5xx
//! answers are permanent (retrying the same message cannot help), everything
//! else (refused connection, timeout, 4xx, TLS trouble) is worth retrying.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

/// Why an email was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused this message for good (a 5xx answer).
    #[error("the mail server rejected the message: {0}")]
    Rejected(String),
    /// The server could not be reached or asked us to try later.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
}

/// The transport every email leaves through.
#[derive(Clone, Debug)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// Upper bound for one whole send (connect, TLS, dialogue).
        timeout: Duration,
    },
    Outbox {
        dir: PathBuf,
    },
}

impl Mailer {
    /// SMTP when `smtp_url` is given, the outbox folder otherwise. The URL
    /// is never echoed back: it may carry a password.
    pub fn new(
        smtp_url: Option<&str>,
        smtp_ca_file: Option<&Path>,
        outbox_dir: PathBuf,
        settings: &crate::Settings,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(settings.notifier_smtp_timeout_ms);
        match smtp_url.map(str::trim).filter(|url| !url.is_empty()) {
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "SMTP_URL is not a usable SMTP URL ({e}); expected e.g. \
                             smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465"
                        )
                    })?
                    .timeout(Some(timeout))
                    // One idle connection kept per concurrent send.
                    .pool_config(PoolConfig::new().max_size(settings.notifier_concurrency));
                if let Some(ca_file) = smtp_ca_file {
                    builder = builder.tls(private_ca_tls(url, ca_file)?);
                }
                Ok(Mailer::Smtp {
                    transport: builder.build(),
                    timeout,
                })
            }
            None => {
                std::fs::create_dir_all(&outbox_dir).with_context(|| {
                    format!(
                        "cannot create the mail outbox folder {} (NOTIFIER_OUTBOX_DIR)",
                        outbox_dir.display()
                    )
                })?;
                Ok(Mailer::Outbox { dir: outbox_dir })
            }
        }
    }

    /// `smtp` or `file`: what the deliveries table records.
    pub fn transport_name(&self) -> &'static str {
        match self {
            Mailer::Smtp { .. } => "smtp",
            Mailer::Outbox { .. } => "file",
        }
    }

    /// Hands one message to the transport. `name` names the outbox file
    /// (the event id).
    pub async fn send(&self, message: &lettre::Message, name: &str) -> Result<Sent, SendError> {
        match self {
            Mailer::Smtp { transport, timeout } => {
                let bytes = message.formatted();
                let sent =
                    tokio::time::timeout(*timeout, transport.send_raw(message.envelope(), &bytes))
                        .await;
                match sent {
                    Ok(Ok(_response)) => Ok(Sent::Smtp),
                    Ok(Err(error)) if error.is_permanent() => {
                        Err(SendError::Rejected(error.to_string()))
                    }
                    Ok(Err(error)) => Err(SendError::Unavailable(error.to_string())),
                    Err(_) => Err(SendError::Unavailable(format!(
                        "no answer within {} ms",
                        timeout.as_millis()
                    ))),
                }
            }
            Mailer::Outbox { dir } => {
                let path = dir.join(format!("{name}.eml"));
                let partial = dir.join(format!(".{name}.eml.partial"));
                let bytes = message.formatted();
                let written = async {
                    tokio::fs::write(&partial, &bytes).await?;
                    tokio::fs::rename(&partial, &path).await
                }
                .await;
                match written {
                    Ok(()) => Ok(Sent::File(path)),
                    Err(error) => Err(SendError::Unavailable(format!(
                        "cannot write {}: {error}",
                        path.display()
                    ))),
                }
            }
        }
    }
}

/// The TLS mode `url` asks for, trusting only the CA in `ca_file` for the
/// URL's host.
fn private_ca_tls(url: &str, ca_file: &Path) -> anyhow::Result<Tls> {
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("cannot read SMTP_CA_FILE {}", ca_file.display()))?;
    let ca = Certificate::from_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "SMTP_CA_FILE {} is not a PEM certificate ({e})",
            ca_file.display()
        )
    })?;
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before.split('/').next().unwrap_or(before), query),
        None => (rest.split('/').next().unwrap_or(rest), ""),
    };
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    let parameters = TlsParameters::builder(host.trim_matches(['[', ']']).to_owned())
        .add_root_certificate(ca)
        .build_rustls()
        .map_err(|e| anyhow::anyhow!("cannot set up TLS for the SMTP server {host} ({e})"))?;
    let asks = |mode: &str| query.split('&').any(|pair| pair == format!("tls={mode}"));
    Ok(match scheme {
        "smtps" => Tls::Wrapper(parameters),
        _ if asks("required") => Tls::Required(parameters),
        _ if asks("opportunistic") => Tls::Opportunistic(parameters),
        _ => anyhow::bail!(
            "SMTP_CA_FILE is set but SMTP_URL asks for no TLS: use smtps://…:465 or add \
             ?tls=required"
        ),
    })
}

/// Where an accepted email went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    Smtp,
    File(PathBuf),
}
