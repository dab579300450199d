-- One row per email the notifier was asked to send: what, to whom, how many
-- attempts, and how it ended. Keyed by the event that asked for it, so an
-- event can never produce two rows (and, once 'sent', never a second email).
CREATE TABLE deliveries (
    event_id    uuid PRIMARY KEY,
    -- booking_confirmed, booking_rejected, refund_succeeded, password_reset
    kind        text NOT NULL,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    -- The Message-ID header, derived from the event id: a resend in the
    -- at-least-once gap carries the same id, so mail clients can fold it.
    message_id  text NOT NULL,
    -- pending: recorded, no attempt made yet;
    -- sending: an attempt is under way (or its process died mid-attempt);
    -- retrying: the last attempt failed, another will follow;
    -- sent: the SMTP server (or the outbox folder) accepted it;
    -- failed: given up, dead-lettered.
    status      text NOT NULL CHECK (status IN ('pending', 'sending', 'retrying', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    -- smtp or file, once sent
    transport   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

-- What an operator looks at: deliveries not settled yet, and given-up ones.
CREATE INDEX deliveries_unsettled ON deliveries (updated_at) WHERE status IN ('pending', 'sending', 'retrying');
CREATE INDEX deliveries_failed ON deliveries (updated_at) WHERE status = 'failed';
