//! Seating over real gRPC, against a real catalog, a fresh PostgreSQL
//! database per test and real NATS JetStream with streams of the test's own.

mod bookings;
mod concurrency;
mod harness;
mod holds;
mod pool;
mod refunds;
mod schema;
