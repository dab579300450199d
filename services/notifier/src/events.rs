//! The notifier's JetStream consumers: one email per event, sent with
//! bounded retries, acknowledged only once sent or given up.
//!
//! Three durable pull consumers with explicit acks, all built on
//! [`platform::consumer`]: `notifier-bookings` (`bookings.confirmed`,
//! `bookings.rejected`), `notifier-payments` (`payments.refund.succeeded`)
//! and `notifier-accounts` (`accounts.password_reset.requested`). One stream
//! waiting on a slow email never holds up another stream's emails, and none
//! of this can hold up a booking: seating publishes through its outbox and
//! never waits for the notifier.
//!
//! Which event gets which email:
//! - `bookings.confirmed` → the confirmation (facts, QR code, `.ics`);
//! - `bookings.rejected` → an apology saying the payment is being refunded.
//!   It goes at once, because the buyer has paid and is waiting to hear;
//!   the refund itself takes a Stripe round-trip and may fail and be retried;
//! - `payments.refund.succeeded` → the refund notice with the amount, once
//!   the money has actually been returned. So a lost booking gets two
//!   emails, each true when it is sent; neither promises what has not
//!   happened yet.
//! - `accounts.password_reset.requested` → the reset link and its expiry.
//!   The link carries a one-time token and is never logged or stored here.
//!
//! # One email per event, as far as the notifier can know
//!
//! The platform consumer records the event id in `processed_events` in a
//! transaction that commits after the handler returns; a redelivered or
//! replayed event finds it and sends nothing. Beside it the `deliveries` row
//! (keyed by event id, see [`crate::store`]) follows each attempt, committed
//! on its own: *sending* (before the transport is called) → *sent* (right
//! after it accepted) or *retrying* / *failed*. (*pending*, a delivery
//! recorded before its first attempt, is what earlier versions wrote.)
//!
//! The gap, stated honestly: if the process dies (or the database becomes
//! unreachable) after the SMTP server accepted a message and before "sent"
//! is committed, the event is redelivered, finds its delivery still
//! *sending*, logs a warning, and sends again — at-least-once, like any
//! sender whose mail server and database cannot share a transaction. The
//! window is one round-trip to PostgreSQL; the resend carries the same
//! `Message-ID` (derived from the event id), which lets mail clients fold
//! the copy. The other order (record "sent" first) would lose the email
//! instead, which is worse for a ticket.
//!
//! # Retries
//!
//! A failed send is retried in place with exponential backoff
//! (`NOTIFIER_SMTP_BACKOFF_MS` doubling up to `NOTIFIER_SMTP_MAX_BACKOFF_MS`,
//! `NOTIFIER_SMTP_ATTEMPTS` attempts per delivery). Meanwhile the message
//! stays unacknowledged, and the platform's consumer tells JetStream every
//! third of the ack wait that it is still in hand, so it is not handed to
//! another replica mid-retry however long the schedule; the ack wait itself
//! (`NOTIFIER_ACK_WAIT_MS`) stays short, so an event a crashed notifier held
//! or a delivery lost while NATS went down comes back within it. After
//! the last attempt the delivery is marked
//! *failed*, an error is logged, and the handler reports a permanent failure,
//! which the platform turns into a `dead_letters` row and an ack: the stream
//! moves on, and the dead letter keeps the payload for a redrive. A 5xx
//! answer (the server refuses this message for good) gives up at once. An
//! undecodable event or one that cannot become an email (no recipient) is
//! dead-lettered without an attempt.
//!
//! The price of retrying in place: during an SMTP outage a stream's emails
//! wait behind its oldest one, in order, rather than each failing on its
//! own. All of them would fail anyway, and none is lost. Emails given up
//! after an outage longer than the schedule are in `dead_letters` and
//! `deliveries` (status `failed`) for an operator to replay.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use platform::Shutdown;
use platform::consumer::{ConsumerSpec, Delivery, Handler, HandlerError};
use proto::events::v1 as events_pb;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::emails::{self, Email, mask_email};
use crate::mailer::{Mailer, SendError, Sent};
use crate::store::{self, NewDelivery, Opened};

/// The subjects and streams the notifier reads, under the deployment's
/// prefix.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub booking_confirmed: String,
    pub booking_rejected: String,
    pub refund_succeeded: String,
    pub password_reset_requested: String,
    payments_stream: String,
    bookings_stream: String,
    accounts_stream: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        let stream = |domain: &str| {
            platform::nats::event_streams(prefix)
                .into_iter()
                .find(|s| {
                    s.subjects
                        .iter()
                        .any(|subject| subject.ends_with(&format!("{domain}.>")))
                })
                .map(|s| s.name)
                .unwrap_or_else(|| domain.to_uppercase())
        };
        let subject = |s: &str| platform::nats::subject(prefix, s);
        Self {
            booking_confirmed: subject("bookings.confirmed"),
            booking_rejected: subject("bookings.rejected"),
            refund_succeeded: subject("payments.refund.succeeded"),
            password_reset_requested: subject("accounts.password_reset.requested"),
            payments_stream: stream("payments"),
            bookings_stream: stream("bookings"),
            accounts_stream: stream("accounts"),
        }
    }

    /// The three durable consumers, with the given ack wait.
    pub fn consumer_specs(&self, ack_wait: Duration, concurrency: usize) -> Vec<ConsumerSpec> {
        let spec = |stream: &str, durable: &str, subjects: &[String]| ConsumerSpec {
            ack_wait,
            ..ConsumerSpec::new(stream, durable, subjects)
        };
        vec![
            // Confirmations are the bulk of the mail and each waits mostly on
            // SMTP, so `concurrency` go at once (NOTIFIER_CONCURRENCY). Each
            // holds a pooled database connection for its whole send (the
            // consumer's transaction) and briefly needs another for its
            // delivery record; Settings::validate keeps the pool above that.
            spec(
                &self.bookings_stream,
                BOOKINGS_CONSUMER,
                &[
                    self.booking_confirmed.clone(),
                    self.booking_rejected.clone(),
                ],
            )
            .concurrent(concurrency),
            spec(
                &self.payments_stream,
                PAYMENTS_CONSUMER,
                std::slice::from_ref(&self.refund_succeeded),
            ),
            spec(
                &self.accounts_stream,
                ACCOUNTS_CONSUMER,
                std::slice::from_ref(&self.password_reset_requested),
            ),
        ]
    }
}

/// Durable consumer names (also the `consumer` column of `processed_events`
/// and `dead_letters`).
pub const BOOKINGS_CONSUMER: &str = "notifier-bookings";
pub const PAYMENTS_CONSUMER: &str = "notifier-payments";
pub const ACCOUNTS_CONSUMER: &str = "notifier-accounts";

/// How failed sends are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per delivery of an event, the first included.
    pub attempts: u32,
    /// Pause after the first failure; doubles after each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Upper bound for one attempt.
    pub send_timeout: Duration,
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The longest one delivery can take: every attempt timing out, every
    /// pause taken.
    pub fn worst_case(&self) -> Duration {
        let pauses: Duration = (1..self.attempts).map(|a| self.backoff(a)).sum();
        self.send_timeout.saturating_mul(self.attempts) + pauses
    }
}

/// Turns events into emails and sends them (see the module comment).
#[derive(Clone, Debug)]
pub struct EmailHandler {
    pool: PgPool,
    mailer: Arc<Mailer>,
    from: Mailbox,
    retry: RetryPolicy,
    subjects: Subjects,
    shutdown: Shutdown,
}

impl EmailHandler {
    pub fn new(
        pool: PgPool,
        mailer: Arc<Mailer>,
        from: Mailbox,
        retry: RetryPolicy,
        subjects: Subjects,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            pool,
            mailer,
            from,
            retry,
            subjects,
            shutdown,
        }
    }

    /// The email an event asks for; a permanent failure when there is none.
    fn compose(&self, delivery: &Delivery<'_>) -> Result<Email, HandlerError> {
        fn decode<M: prost::Message + Default>(
            payload: &[u8],
            what: &str,
        ) -> Result<M, HandlerError> {
            M::decode(payload).map_err(|e| HandlerError::Permanent(format!("not a {what}: {e}")))
        }
        let subject = delivery.subject;
        let composed = if subject == self.subjects.booking_confirmed {
            emails::booking_confirmed(&decode::<events_pb::BookingConfirmed>(
                delivery.payload,
                "BookingConfirmed",
            )?)
        } else if subject == self.subjects.booking_rejected {
            emails::booking_rejected(&decode::<events_pb::BookingRejected>(
                delivery.payload,
                "BookingRejected",
            )?)
        } else if subject == self.subjects.refund_succeeded {
            emails::refund_succeeded(&decode::<events_pb::RefundSucceeded>(
                delivery.payload,
                "RefundSucceeded",
            )?)
        } else if subject == self.subjects.password_reset_requested {
            emails::password_reset(&decode::<events_pb::PasswordResetRequested>(
                delivery.payload,
                "PasswordResetRequested",
            )?)
        } else {
            return Err(HandlerError::Permanent(format!(
                "the notifier does not handle {subject}"
            )));
        };
        composed.map_err(|e| HandlerError::Permanent(format!("no email can be made: {e}")))
    }

    /// `<event id@sender's domain>`: stable across resends of one event.
    fn message_id(&self, event_id: Uuid) -> String {
        format!("<{event_id}@{}>", self.from.email.domain())
    }

    /// Sends `email` for `event_id` with retries; see the module comment.
    async fn deliver(&self, event_id: Uuid, email: &Email) -> Result<(), HandlerError> {
        let message_id = self.message_id(event_id);
        let recipient = email.to.email.to_string();
        let masked = mask_email(&recipient);
        let kind = email.kind.as_str();
        // Made before anything is recorded: an email that cannot be made
        // leaves no attempt behind.
        let message = email
            .to_message(&self.from, message_id.clone())
            .map_err(|e| HandlerError::Permanent(format!("no email can be made: {e}")))?;
        let (opened, mut total) = store::open(
            &self.pool,
            &NewDelivery {
                event_id,
                kind,
                recipient: &recipient,
                subject: &email.subject,
                message_id: &message_id,
            },
        )
        .await?;
        match opened {
            Opened::AlreadySent => {
                tracing::info!(kind, to = %masked, "email was sent before; not sending again");
                return Ok(());
            }
            Opened::Interrupted => tracing::warn!(kind, to = %masked,
                "an earlier attempt ended without a record; it may have been delivered, sending again (at-least-once)"),
            Opened::New | Opened::Unsent => {}
        }
        let name = event_id.to_string();
        for attempt in 1..=self.retry.attempts {
            // `open` started the first attempt.
            if attempt > 1 {
                total = store::attempt_started(&self.pool, event_id).await?;
            }
            let error = match self.mailer.send(&message, &name).await {
                Ok(sent) => {
                    store::sent(&self.pool, event_id, self.mailer.transport_name()).await?;
                    metrics::counter!("bookmyseat_emails_total", "kind" => kind.to_owned(), "outcome" => "sent")
                        .increment(1);
                    match sent {
                        Sent::Smtp => tracing::info!(kind, to = %masked, attempt, "email sent"),
                        Sent::File(path) => {
                            tracing::info!(kind, to = %masked, subject = %email.subject,
                            path = %path.display(), "email written to the outbox folder (no SMTP_URL)")
                        }
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            let gave_up = attempt == self.retry.attempts || matches!(error, SendError::Rejected(_));
            store::attempt_failed(&self.pool, event_id, &error.to_string(), gave_up).await?;
            if gave_up {
                metrics::counter!("bookmyseat_emails_total", "kind" => kind.to_owned(), "outcome" => "failed")
                    .increment(1);
                tracing::error!(kind, to = %masked, attempts = total, error = %error,
                    "email given up; dead-lettered");
                return Err(HandlerError::Permanent(format!(
                    "email not sent after {attempt} attempt(s) (this delivery): {error}"
                )));
            }
            let pause = self.retry.backoff(attempt);
            tracing::warn!(kind, to = %masked, attempt, retry_in_ms = pause.as_millis() as u64,
                error = %error, "email not sent; retrying");
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.fired() => {
                    // Unacknowledged, the event comes back to a running
                    // replica; the attempts so far stay counted.
                    return Err(HandlerError::Transient(anyhow::anyhow!(
                        "shutting down between attempts"
                    )));
                }
            }
        }
        // Only reached with zero attempts configured, which validation refuses.
        Err(HandlerError::Permanent(
            "no send attempts are configured".into(),
        ))
    }
}

impl Handler for EmailHandler {
    type Committed = ();

    /// The consumer's transaction (`_connection`) only records the event id:
    /// the delivery's own records commit on their own (see [`crate::store`]).
    async fn handle<'a>(
        &'a self,
        _connection: &'a mut PgConnection,
        delivery: &'a Delivery<'a>,
    ) -> Result<(), HandlerError> {
        let email = self.compose(delivery)?;
        self.deliver(delivery.event_id, &email).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
        };
        let pauses: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        // 5 timeouts of 10 s and pauses 1 + 2 + 4 + 5.
        assert_eq!(policy.worst_case(), Duration::from_secs(62));
    }

    #[test]
    fn subjects_follow_the_prefix() {
        let subjects = Subjects::new("t1");
        assert_eq!(subjects.booking_confirmed, "t1.bookings.confirmed");
        let specs = subjects.consumer_specs(Duration::from_secs(60), 16);
        assert_eq!(specs[0].stream, "T1_BOOKINGS");
        assert_eq!(specs[1].stream, "T1_PAYMENTS");
        assert_eq!(specs[2].stream, "T1_ACCOUNTS");
        assert_eq!(specs[2].ack_wait, Duration::from_secs(60));
    }
}
