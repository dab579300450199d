//! Shared plumbing for every BookMySeat service.
//!
//! Each concern lives here once and every service uses it: configuration
//! pieces ([`config`]), logging ([`telemetry`]), the PostgreSQL pool and
//! embedded migrations ([`db`]), gRPC servers with the health service and gRPC
//! client channels ([`grpc`]), HTTP serving ([`http`]), NATS and JetStream
//! ([`nats`]), and the shutdown signal every task listens to ([`shutdown`]).

pub mod config;
pub mod db;
pub mod grpc;
pub mod http;
pub mod nats;
pub mod shutdown;
pub mod telemetry;

pub use shutdown::Shutdown;
