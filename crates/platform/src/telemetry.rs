//! Logging for every role: `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info`), as human-readable lines or JSON (`LOG_FORMAT=json`, for
//! log collectors). Installed once per process, so `bookmyseat all` shares it.

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Later calls (tests starting several
/// services in one process) leave the first one in place.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
    };
    // An already-installed subscriber is fine: the first one wins.
    let _ = result;
}
