-- seating_book knows a hold is booked from the hold itself.
--
-- It asked `EXISTS (SELECT 1 FROM bookings WHERE hold_id = … OR
-- checkout_id = …)`. For an EXISTS PostgreSQL costs a plan by how soon it
-- finds the first row, and with two equality conditions ORed it expects a
-- match early in a sequential scan; the function plans once per connection
-- (20261201000007), so a plan made while the bookings table was small kept
-- scanning it as it grew. A benchmark whose statistics were taken at 300
-- bookings paid 0.41 ms a booking for it by 8,800 (0.02 ms with the index),
-- reading the whole table each time, since a new booking has no match.
--
-- A booking and its hold's `converted` status are written together, here,
-- and nothing moves a hold out of `converted`, so the hold row the function
-- reads anyway answers the question. It is read under the showtime's lock,
-- as the EXISTS was, so a booking of the same hold committed meanwhile is
-- seen. A checkout is booked only through its own hold (payments keeps one
-- checkout per hold and names that hold in the event); a checkout arriving
-- with another hold than the one it was booked with would break that, and
-- now fails on `bookings.checkout_id`'s unique constraint instead of being
-- answered `already_booked` — the consumer retries it and then dead-letters
-- it for an operator, as for any event naming records seating disagrees
-- with.
--
-- Inputs, outputs and every other rule are those of 20261201000006.

CREATE OR REPLACE FUNCTION seating_book(
    p_hold uuid, p_checkout text, p_booking uuid, p_email text,
    p_amount bigint, p_currency text, p_references text[], p_now timestamptz,
    OUT outcome text, OUT showtime uuid, OUT seats_version bigint,
    OUT booking_reference text, OUT unavailable text[], OUT freed text[],
    OUT holder text, OUT booked_labels text[], OUT booked_categories text[]
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    hold_labels text[];
    hold_status text;
    candidate text;
    claimed integer;
BEGIN
    SELECT showtime_id INTO showtime FROM holds WHERE id = p_hold;
    IF NOT FOUND THEN
        outcome := 'unknown_hold';
        RETURN;
    END IF;
    UPDATE showtimes SET version = version + 1 WHERE id = showtime
    RETURNING version INTO seats_version;
    SELECT labels, user_id, status INTO hold_labels, holder, hold_status
      FROM holds WHERE id = p_hold;
    IF hold_status = 'converted' THEN
        outcome := 'already_booked';
        RETURN;
    END IF;

    -- Under the showtime lock the seats do not change: what is claimable now
    -- is what the UPDATE below takes.
    SELECT array_agg(s.label ORDER BY array_position(hold_labels, s.label)) INTO unavailable
    FROM seats s
    WHERE s.showtime_id = showtime AND s.label = ANY (hold_labels)
      AND NOT (s.booking_id IS NULL AND NOT s.blocked
               AND (s.hold_id IS NULL OR s.hold_id = p_hold OR s.held_until <= p_now));
    IF unavailable IS NOT NULL THEN
        UPDATE holds
           SET status = CASE WHEN held_until <= p_now THEN 'expired' ELSE 'released' END,
               ended_at = COALESCE(ended_at, p_now)
         WHERE id = p_hold AND status = 'active';
        freed := seating_free_seats(showtime, ARRAY[p_hold]);
        outcome := 'rejected';
        RETURN;
    END IF;

    FOREACH candidate IN ARRAY p_references LOOP
        INSERT INTO bookings (id, reference, checkout_id, hold_id, user_id, user_email,
                              showtime_id, amount_minor, currency, status, booked_at)
        VALUES (p_booking, candidate, p_checkout, p_hold, holder, p_email,
                showtime, p_amount, p_currency, 'confirmed', p_now)
        ON CONFLICT (reference) DO NOTHING;
        IF FOUND THEN
            booking_reference := candidate;
            EXIT;
        END IF;
    END LOOP;
    IF booking_reference IS NULL THEN
        outcome := 'no_reference';
        RETURN;
    END IF;

    UPDATE seats SET booking_id = p_booking, hold_id = NULL, held_until = NULL
     WHERE showtime_id = showtime AND label = ANY (hold_labels)
       AND booking_id IS NULL AND NOT blocked
       AND (hold_id IS NULL OR hold_id = p_hold OR held_until <= p_now);
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed <> cardinality(hold_labels) THEN
        RAISE EXCEPTION 'seating_book: % of % seats could be booked under the showtime lock',
            claimed, cardinality(hold_labels);
    END IF;
    WITH booked AS (
        INSERT INTO booking_seats (booking_id, showtime_id, label, category, position)
        SELECT p_booking, showtime, l.label, s.category, l.i::integer
          FROM unnest(hold_labels) WITH ORDINALITY AS l(label, i)
          JOIN seats s ON s.showtime_id = showtime AND s.label = l.label
        RETURNING label, category, position
    ) SELECT array_agg(label ORDER BY position), array_agg(category ORDER BY position)
        INTO booked_labels, booked_categories FROM booked;
    UPDATE holds SET status = 'converted', ended_at = p_now WHERE id = p_hold;
    outcome := 'confirmed';
END
$$;
