//! The gateway's browse slice over real HTTP, against a real catalog service
//! on a fresh PostgreSQL database seeded with the demo programme.
//!
//! Every test starts its own catalog and gateway on port 0 (see [`harness`]),
//! so tests run in parallel and never share rows.

mod api;
mod harness;
mod pages;
mod plumbing;
