-- Extending a hold in one round trip, like holding, releasing and booking
-- (see 20261201000003): from Rust it took nine, four of them under the
-- showtime's row lock.

-- Moves live hold `p_hold` of `p_owner` to expire at `p_until`, capped at
-- the showtime's start and never earlier than it already does. Answers
-- `outcome`:
--   'extended'      extended_until is the hold's expiry now;
--   'unknown_hold'  no such hold;
--   'not_owner'     the hold is someone else's;
--   'started'       the showtime has started (checked before the hold's own
--                   state: past the start the hold has expired too, but this
--                   is the reason the caller needs);
--   'ended'         the hold has expired or ended: it cannot be revived.
-- Only 'extended' changes anything (and bumps the showtime's version, as
-- every writer does); the other answers leave even the version alone.
CREATE FUNCTION seating_extend(
    p_hold uuid, p_owner text, p_until timestamptz, p_now timestamptz,
    OUT outcome text, OUT extended_until timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_showtime uuid;
    v_starts timestamptz;
    v_user text;
    v_status text;
    v_until timestamptz;
BEGIN
    SELECT h.showtime_id INTO v_showtime FROM holds h WHERE h.id = p_hold;
    IF NOT FOUND THEN
        outcome := 'unknown_hold';
        RETURN;
    END IF;
    -- Writers of a showtime take its row lock first; under it the hold's
    -- state cannot change.
    SELECT t.starts_at INTO v_starts FROM showtimes t WHERE t.id = v_showtime FOR UPDATE;
    SELECT h.user_id, h.status, h.held_until INTO v_user, v_status, v_until
    FROM holds h WHERE h.id = p_hold;
    IF v_user <> p_owner THEN
        outcome := 'not_owner';
        RETURN;
    END IF;
    IF v_starts <= p_now THEN
        outcome := 'started';
        RETURN;
    END IF;
    IF v_status <> 'active' OR v_until <= p_now THEN
        outcome := 'ended';
        RETURN;
    END IF;
    -- The hold was capped at the start when it was made, so this stays at
    -- or before the start.
    extended_until := greatest(least(p_until, v_starts), v_until);
    UPDATE showtimes t SET version = t.version + 1 WHERE t.id = v_showtime;
    UPDATE holds h SET held_until = extended_until WHERE h.id = p_hold;
    UPDATE seats s SET held_until = extended_until
    WHERE s.showtime_id = v_showtime AND s.hold_id = p_hold AND s.booking_id IS NULL;
    outcome := 'extended';
END
$$;
