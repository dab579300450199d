-- Payments' own records: checkouts (one per hold), the payment that settled
-- a checkout (at most one, whoever saw it first: webhook, direct check or the
-- simulated provider), the provider events already handled, and refunds.
--
-- Convergence is enforced here, not in code: a hold has one checkout, a
-- checkout one payment, a payment one refund, a provider event id one row.

CREATE TABLE checkouts (
    id                uuid PRIMARY KEY,
    hold_id           uuid NOT NULL UNIQUE,
    user_id           text NOT NULL,
    user_email        text NOT NULL,
    showtime_id       uuid NOT NULL,
    -- What the buyer sees on the simulated page and Stripe's line items.
    summary           text NOT NULL,
    line_items        text NOT NULL,  -- JSON: [{category, unit_amount_minor, quantity}]
    provider          text NOT NULL CHECK (provider IN ('stripe', 'simulated')),
    -- The provider's session; NULL until the provider has answered.
    session_id        text UNIQUE,
    url               text,
    status            text NOT NULL CHECK (status IN ('open', 'processing', 'paid', 'expired', 'failed', 'refunded')),
    amount_minor      bigint NOT NULL CHECK (amount_minor > 0),
    currency          text NOT NULL,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- Learnt from bookings.confirmed.
    booking_reference text UNIQUE
);

CREATE TABLE payments (
    id             uuid PRIMARY KEY,
    checkout_id    uuid NOT NULL UNIQUE REFERENCES checkouts (id),
    payment_intent text,
    amount_minor   bigint NOT NULL,
    currency       text NOT NULL,
    -- Who recorded it first: 'webhook', 'direct' or 'simulated'.
    source         text NOT NULL,
    paid_at        timestamptz NOT NULL
);

-- Every Stripe event id seen, with what became of it.
CREATE TABLE provider_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    checkout_id uuid,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refunds (
    id                 uuid PRIMARY KEY,
    payment_id         uuid NOT NULL UNIQUE REFERENCES payments (id),
    checkout_id        uuid NOT NULL REFERENCES checkouts (id),
    amount_minor       bigint NOT NULL,
    currency           text NOT NULL,
    reason             text NOT NULL,
    -- requested: not yet accepted by the provider (the refund worker sends it);
    -- pending: accepted, outcome to follow (refund.updated).
    status             text NOT NULL CHECK (status IN ('requested', 'pending', 'succeeded', 'failed')),
    provider_refund_id text UNIQUE,
    failure            text,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_to_send ON refunds (next_attempt_at) WHERE status = 'requested';
