//! Payments against real PostgreSQL, NATS JetStream, catalog and seating,
//! with a Stripe-shaped local server in Stripe's place.

mod harness;

mod bookings;
mod checkout;
mod refunds;
mod simulated;
mod webhook;
