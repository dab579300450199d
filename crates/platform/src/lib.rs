//! Shared plumbing for every BookMySeat service.
//!
//! Each concern lives here once and every service uses it: configuration
//! pieces ([`config`]), logging and tracing ([`telemetry`], with the W3C
//! trace context carried across processes by [`trace_context`]), the PostgreSQL pool and
//! embedded migrations ([`db`]), gRPC servers with the health service and gRPC
//! client channels ([`grpc`]), HTTP serving ([`http`]), NATS and JetStream
//! ([`nats`]), the transactional outbox every producer publishes through
//! ([`outbox`]), the idempotent consumer every event handler runs in
//! ([`consumer`]), Prometheus metrics ([`metrics`]), money for people
//! ([`money`]), permits that make a crowd of expensive requests wait its
//! turn ([`permits`]), and the shutdown signal
//! every task listens to ([`shutdown`]).

pub mod config;
pub mod consumer;
pub mod db;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod money;
pub mod nats;
pub mod outbox;
pub mod permits;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

pub use shutdown::Shutdown;
