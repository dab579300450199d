//! Analytics against real parts: a fresh PostgreSQL database per test, real
//! NATS JetStream with streams of the test's own, and its real gRPC server
//! on port 0.

mod batches;
mod figures;
mod harness;
mod replay;
