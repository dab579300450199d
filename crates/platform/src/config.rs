//! Configuration pieces every role shares.
//!
//! Each role has one `Config` struct (in its own crate) that flattens the
//! pieces it needs from here. Every field reads an environment variable and
//! has a matching `--flag`; defaults work on a developer machine. The README's
//! configuration table lists them all.

use std::time::Duration;

use clap::Args;

use crate::telemetry::LogFormat;

/// Logging settings (see [`crate::telemetry`]).
#[derive(Args, Clone, Debug)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint to export trace spans to (e.g.
    /// `http://jaeger:4317`). Unset or empty: tracing export is off.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// Where NATS is.
#[derive(Args, Clone, Debug)]
pub struct NatsArgs {
    /// NATS server URL (JetStream must be enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Prefix for every stream name and subject (see `nats::event_streams`),
    /// so test runs share one NATS server without sharing streams. Empty in
    /// production.
    #[arg(long, env = "EVENTS_PREFIX", default_value = "", hide = true)]
    pub events_prefix: String,
}

/// Timeouts for outgoing gRPC calls between services.
#[derive(Args, Clone, Debug)]
pub struct GrpcClientArgs {
    /// How long to wait for a TCP connection to another service, in milliseconds.
    #[arg(long, env = "GRPC_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub grpc_connect_timeout_ms: u64,
    /// How long one gRPC call to another service may take, in milliseconds.
    #[arg(long, env = "GRPC_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub grpc_request_timeout_ms: u64,
}

impl GrpcClientArgs {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc_connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc_request_timeout_ms)
    }
}

impl Default for GrpcClientArgs {
    fn default() -> Self {
        Self {
            grpc_connect_timeout_ms: 2_000,
            grpc_request_timeout_ms: 5_000,
        }
    }
}
