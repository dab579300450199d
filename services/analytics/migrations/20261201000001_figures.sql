-- The analytics read model: one row per fact the events state. Figures are
-- computed from these at query time (GROUP BY), so applying an event is one
-- insert and a rebuild is a replay; see the crate's doc comment.

-- A showtime, known from its first confirmed booking.
CREATE TABLE showtimes (
    showtime_id   uuid PRIMARY KEY,
    film_id       text NOT NULL,
    film_title    text NOT NULL,
    cinema_name   text NOT NULL,
    starts_at     timestamptz NOT NULL,
    -- The showtime's capacity as of its latest booking.
    seats_offered integer NOT NULL CHECK (seats_offered >= 0)
);
CREATE INDEX showtimes_starts_at ON showtimes (starts_at);

-- A confirmed booking.
CREATE TABLE bookings (
    booking_id   uuid PRIMARY KEY,
    reference    text NOT NULL,
    checkout_id  text NOT NULL,
    showtime_id  uuid NOT NULL REFERENCES showtimes,
    film_id      text NOT NULL,
    film_title   text NOT NULL,
    seats        integer NOT NULL CHECK (seats > 0),
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    booked_at    timestamptz NOT NULL
);
CREATE INDEX bookings_booked_at ON bookings (booked_at);
CREATE INDEX bookings_film ON bookings (film_id);
CREATE INDEX bookings_checkout ON bookings (checkout_id);
CREATE INDEX bookings_showtime ON bookings (showtime_id);

-- A refund that went through; of a booking (checkout_id matches one) or of a
-- checkout whose seats were lost (no booking: never counted as revenue).
CREATE TABLE refunds (
    refund_id    text PRIMARY KEY,
    checkout_id  text NOT NULL,
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    refunded_at  timestamptz NOT NULL
);
CREATE INDEX refunds_checkout ON refunds (checkout_id);
CREATE INDEX refunds_refunded_at ON refunds (refunded_at);

-- The recent-activity log: one entry per event, never an email address.
CREATE TABLE activity (
    event_id  uuid PRIMARY KEY,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    summary   text NOT NULL,
    reference text NOT NULL DEFAULT '',
    -- The money the event moved, if any (the dashboard formats it).
    amount_minor bigint,
    currency     text
);
CREATE INDEX activity_at ON activity (at DESC);
