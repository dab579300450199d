-- Seating's inventory: a snapshot of each showtime taken from catalog the
-- first time the showtime is used, its seats, holds and bookings.
--
-- Who owns a seat is decided by conditional updates of `seats` rows (see
-- store.rs); the constraints below are the last line of defence.

CREATE TABLE showtimes (
    id               uuid PRIMARY KEY,
    film_id          uuid NOT NULL,
    film_title       text NOT NULL,
    poster_url       text NOT NULL,
    cinema_name      text NOT NULL,
    cinema_time_zone text NOT NULL,
    screen_name      text NOT NULL,
    starts_at        timestamptz NOT NULL,
    currency         text NOT NULL,
    capacity         integer NOT NULL CHECK (capacity > 0),
    -- Grows with every change of this showtime's seats. Every writing
    -- transaction bumps it first, which also serialises writers per showtime.
    version          bigint NOT NULL DEFAULT 0,
    materialised_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE holds (
    id          uuid PRIMARY KEY,
    showtime_id uuid NOT NULL REFERENCES showtimes (id),
    user_id     text NOT NULL,
    -- The labels asked for, in request order; kept after the hold ends so
    -- GetHold and the booking consumer still know them.
    labels      text[] NOT NULL CHECK (cardinality(labels) > 0),
    held_until  timestamptz NOT NULL,
    -- 'active' past held_until means expired: availability is computed from
    -- the time, the sweeper only tidies the status.
    status      text NOT NULL CHECK (status IN ('active', 'expired', 'released', 'converted')),
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
-- A user has at most one active hold per showtime (a new one replaces it).
CREATE UNIQUE INDEX holds_one_active_per_user ON holds (showtime_id, user_id) WHERE status = 'active';
CREATE INDEX holds_active_by_expiry ON holds (held_until) WHERE status = 'active';

CREATE TABLE bookings (
    id          uuid PRIMARY KEY,
    reference   text NOT NULL UNIQUE,
    checkout_id text NOT NULL UNIQUE,
    hold_id     uuid NOT NULL UNIQUE REFERENCES holds (id),
    user_id     text NOT NULL,
    user_email  text NOT NULL,
    showtime_id uuid NOT NULL REFERENCES showtimes (id),
    amount_minor bigint NOT NULL,
    currency    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('confirmed', 'refunded')),
    booked_at   timestamptz NOT NULL
);
CREATE INDEX bookings_by_user ON bookings (user_id, booked_at DESC);

CREATE TABLE seats (
    showtime_id  uuid NOT NULL REFERENCES showtimes (id),
    label        text NOT NULL,
    row_label    text NOT NULL,
    number       integer NOT NULL,
    category     text NOT NULL,
    sort_order   integer NOT NULL,
    blocked      boolean NOT NULL DEFAULT false,
    block_reason text NOT NULL DEFAULT '',
    -- The hold that last took the seat; it holds it only while
    -- held_until is in the future.
    hold_id      uuid REFERENCES holds (id),
    held_until   timestamptz,
    booking_id   uuid REFERENCES bookings (id),
    PRIMARY KEY (showtime_id, label),
    CHECK ((hold_id IS NULL) = (held_until IS NULL))
);
CREATE INDEX seats_by_hold ON seats (hold_id) WHERE hold_id IS NOT NULL;

-- A seat belongs to at most one booking, whatever the code above does.
CREATE TABLE booking_seats (
    booking_id  uuid NOT NULL REFERENCES bookings (id),
    showtime_id uuid NOT NULL,
    label       text NOT NULL,
    category    text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (showtime_id, label),
    FOREIGN KEY (showtime_id, label) REFERENCES seats (showtime_id, label)
);
CREATE INDEX booking_seats_by_booking ON booking_seats (booking_id);
