//! The payments service: Stripe Checkout, the webhook, refunds and the
//! simulated provider.
//!
//! Not built yet (issue #5). The contract is drafted in
//! `proto/bookmyseat/payments/v1/payments.proto`; nothing here pretends to work.
