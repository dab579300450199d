//! The notifier against real parts: a fresh PostgreSQL database per test,
//! real NATS JetStream with streams of the test's own, and a real SMTP
//! server (aiosmtpd, see `test_support::smtp`) on a port of the test's own.

mod delivery;
mod emails;
mod harness;
