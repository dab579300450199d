-- A refunded booking gives its seats back.
--
-- The booking stays (the customer's history shows it as refunded, with the
-- seats it had), but its seats return to sale: `seats.booking_id` is cleared
-- and its `booking_seats` rows are marked released. The rule "a seat belongs
-- to at most one booking" therefore becomes "to at most one *live* booking":
-- the primary key moves to (booking_id, label) and a partial unique index
-- keeps the database refusing a second sale of a seat that is still sold.

ALTER TABLE bookings ADD COLUMN refunded_at timestamptz;
-- No code wrote 'refunded' before this migration; a row set by hand gets a
-- time so the constraint below holds.
UPDATE bookings SET refunded_at = booked_at WHERE status = 'refunded' AND refunded_at IS NULL;
ALTER TABLE bookings ADD CONSTRAINT bookings_refunded_at_with_status
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL));

ALTER TABLE booking_seats ADD COLUMN released_at timestamptz;
ALTER TABLE booking_seats DROP CONSTRAINT booking_seats_pkey;
ALTER TABLE booking_seats ADD PRIMARY KEY (booking_id, label);
CREATE UNIQUE INDEX booking_seats_one_live_sale_per_seat
    ON booking_seats (showtime_id, label) WHERE released_at IS NULL;
