-- A hold and a release as one round trip each.
--
-- Written out in Rust these were six and seven statements, four of them
-- while holding the showtime's row lock. On two busy cores every round trip
-- under that lock could wait for a scheduler slice, so one showtime's
-- writers queued behind each other's network hops (the rush benchmark's
-- p99). Here the lock is held only for the server-side work. The rules are
-- those of store.rs: writers of a showtime take its row lock first; a seat
-- changes owner only through a conditional UPDATE.

-- Which of `labels` cannot be held by `user_id` at `now`: sold, blocked, or
-- held by a live hold that is not the user's own active one (which a new
-- hold replaces). In request order; NULL when every seat is free.
-- VOLATILE on purpose: it then reads with a snapshot of its own, taken when
-- it is called, so after the showtime lock it sees every earlier writer.
-- PL/pgSQL rather than SQL for these helpers: PL/pgSQL keeps a
-- connection's plans, an SQL function is planned again at every call.
CREATE FUNCTION seating_unavailable(
    p_showtime uuid, p_user text, p_labels text[], p_now timestamptz
) RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (
        SELECT array_agg(s.label ORDER BY array_position(p_labels, s.label))
        FROM seats s LEFT JOIN holds h ON h.id = s.hold_id
        WHERE s.showtime_id = p_showtime AND s.label = ANY (p_labels)
          AND (s.booking_id IS NOT NULL OR s.blocked
               OR (s.held_until > p_now
                   AND NOT (h.user_id = p_user AND h.status = 'active'))));
END
$$;

-- Lets go of the unsold seats of `holds`; answers their labels (NULL when
-- none). The one statement behind release, replacement, expiry and a
-- rejected booking.
CREATE FUNCTION seating_free_seats(p_showtime uuid, p_holds uuid[])
RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    freed text[];
BEGIN
    WITH released AS (
        UPDATE seats SET hold_id = NULL, held_until = NULL
         WHERE showtime_id = p_showtime AND hold_id = ANY (p_holds) AND booking_id IS NULL
        RETURNING label
    ) SELECT array_agg(label) INTO freed FROM released;
    RETURN freed;
END
$$;

-- Holds every seat of `labels` for `user_id` as hold `hold_id`, ending the
-- user's previous active hold on the showtime, or changes nothing.
-- Answers one of:
--   unavailable set          refused, nothing changed;
--   seats_version set        held; `freed` = seats of the replaced hold that
--                            the new one did not take again;
--   both NULL                no such showtime.
CREATE FUNCTION seating_hold(
    p_showtime uuid, p_user text, p_labels text[], p_hold uuid,
    p_now timestamptz, p_until timestamptz,
    OUT seats_version bigint, OUT unavailable text[], OUT freed text[]
) LANGUAGE plpgsql AS $$
DECLARE
    previous uuid[];
    taken integer;
BEGIN
    -- A refusal needs no lock: seats unavailable in this snapshot were
    -- unavailable when the request was answered. In a rush most requests
    -- end here instead of queueing behind the showtime's row lock.
    unavailable := seating_unavailable(p_showtime, p_user, p_labels, p_now);
    IF unavailable IS NOT NULL THEN
        RETURN;
    END IF;

    PERFORM 1 FROM showtimes WHERE id = p_showtime FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Under the lock no other writer changes this showtime's seats; this
    -- statement's fresh snapshot sees every writer that went before.
    unavailable := seating_unavailable(p_showtime, p_user, p_labels, p_now);
    IF unavailable IS NOT NULL THEN
        RETURN;
    END IF;

    -- A hold is soft state: it lapses by itself within minutes, and nothing
    -- durable depends on it until a later, synchronous commit (payments'
    -- ExtendHold, the booking) has flushed the WAL behind it. So this
    -- transaction does not wait for its own flush; a database crash may
    -- forget holds granted in the last moment before it, never a booking.
    PERFORM set_config('synchronous_commit', 'off', true);

    WITH ended AS (
        UPDATE holds
           SET status = CASE WHEN held_until <= p_now THEN 'expired' ELSE 'released' END,
               ended_at = p_now
         WHERE showtime_id = p_showtime AND user_id = p_user AND status = 'active'
        RETURNING id
    ) SELECT array_agg(id) INTO previous FROM ended;

    INSERT INTO holds (id, showtime_id, user_id, labels, held_until, status, created_at)
    VALUES (p_hold, p_showtime, p_user, p_labels, p_until, 'active', p_now);

    -- THE hold: the conditional update of store.rs's rule 1.
    UPDATE seats SET hold_id = p_hold, held_until = p_until
     WHERE showtime_id = p_showtime AND label = ANY (p_labels)
       AND booking_id IS NULL AND NOT blocked
       AND (hold_id IS NULL OR held_until <= p_now OR hold_id = ANY (previous));
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken <> cardinality(p_labels) THEN
        -- The check above says this cannot happen; if it does, the whole
        -- statement is undone rather than a partial hold kept.
        RAISE EXCEPTION 'seating_hold: % of % seats could be taken under the showtime lock',
            taken, cardinality(p_labels);
    END IF;

    IF previous IS NOT NULL THEN
        freed := seating_free_seats(p_showtime, previous);
    END IF;

    UPDATE showtimes SET version = version + 1 WHERE id = p_showtime
    RETURNING version INTO seats_version;
END
$$;

-- Ends an active hold and frees its unsold seats. `owner` NULL: anyone may
-- (a checkout that expired). Answers `outcome`, and the hold's showtime:
--   'released'   seats_version and freed set;
--   'inactive'   the hold had already ended: nothing changed;
--   'not_owner'  the hold is someone else's: nothing changed;
--   'not_found'  no such hold.
CREATE FUNCTION seating_release(
    p_hold uuid, p_owner text, p_now timestamptz,
    OUT outcome text, OUT showtime uuid, OUT seats_version bigint, OUT freed text[]
) LANGUAGE plpgsql AS $$
DECLARE
    holder text;
    hold_status text;
BEGIN
    SELECT showtime_id INTO showtime FROM holds WHERE id = p_hold;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    PERFORM 1 FROM showtimes WHERE id = showtime FOR UPDATE;
    SELECT user_id, status INTO holder, hold_status FROM holds WHERE id = p_hold;
    IF p_owner IS NOT NULL AND p_owner <> holder THEN
        outcome := 'not_owner';
        RETURN;
    END IF;
    IF hold_status <> 'active' THEN
        outcome := 'inactive';
        RETURN;
    END IF;

    UPDATE holds
       SET status = CASE WHEN held_until <= p_now THEN 'expired' ELSE 'released' END,
           ended_at = p_now
     WHERE id = p_hold;
    freed := seating_free_seats(showtime, ARRAY[p_hold]);
    UPDATE showtimes SET version = version + 1 WHERE id = showtime
    RETURNING version INTO seats_version;
    outcome := 'released';
END
$$;

-- Turns paid hold `p_hold` into booking `p_booking` (inside the idempotent
-- consumer's transaction), or reports the seats that were lost. The seats
-- are booked while still this hold's or, if it expired or was released
-- meanwhile, while still free: the buyer has paid, so taking free seats
-- again is better than a refund. The reference is the first of
-- `p_references` (random, drawn by the caller) not used yet. Answers
-- `outcome`:
--   'confirmed'       booking_reference set;
--   'already_booked'  the hold or the checkout became a booking before;
--   'rejected'        unavailable = seats taken by others; the hold ended and
--                     freed = its seats let go;
--   'unknown_hold'    no such hold;
--   'no_reference'    every candidate reference was taken (draw again).
CREATE FUNCTION seating_book(
    p_hold uuid, p_checkout text, p_booking uuid, p_email text,
    p_amount bigint, p_currency text, p_references text[], p_now timestamptz,
    OUT outcome text, OUT showtime uuid, OUT seats_version bigint,
    OUT booking_reference text, OUT unavailable text[], OUT freed text[]
) LANGUAGE plpgsql AS $$
DECLARE
    hold_labels text[];
    holder text;
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
    IF EXISTS (SELECT 1 FROM bookings WHERE hold_id = p_hold OR checkout_id = p_checkout) THEN
        outcome := 'already_booked';
        RETURN;
    END IF;
    SELECT labels, user_id INTO hold_labels, holder FROM holds WHERE id = p_hold;

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
    INSERT INTO booking_seats (booking_id, showtime_id, label, category, position)
    SELECT p_booking, showtime, l.label, s.category, l.i::integer
      FROM unnest(hold_labels) WITH ORDINALITY AS l(label, i)
      JOIN seats s ON s.showtime_id = showtime AND s.label = l.label;
    UPDATE holds SET status = 'converted', ended_at = p_now WHERE id = p_hold;
    outcome := 'confirmed';
END
$$;
