//! The gateway over real HTTP, against a real catalog service on a fresh
//! PostgreSQL database seeded with the demo programme, and (for seats) a real
//! seating service with its own database and NATS subjects.
//!
//! Every test starts its own services and gateway on port 0 (see
//! [`harness`]), so tests run in parallel and never share rows or events.

mod accounts;
mod api;
mod checkout;
mod dashboard;
mod harness;
mod pages;
mod plumbing;
mod programme;
mod seats;
