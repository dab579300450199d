-- The seat map, planned once per connection.
--
-- The seat map is seating's most frequent read (every seat page, every live
-- refresh). As a plain statement PostgreSQL planned it again at nearly every
-- call: for a given showtime it estimates the seats from the column's most
-- common values, for "any showtime" from the average, and the two differ
-- enough that its plan cache judged the one generic plan costlier and kept
-- planning (0.21 ms of planning against 0.26 ms of executing, 6,931 plans in
-- 7,552 calls in a booking benchmark). The plan is the same either way: the
-- showtime by its key, its seats by the primary key's prefix, the caller's
-- own active hold through holds_one_active_per_user. Inside a function with
-- `plan_cache_mode = force_generic_plan` (as the other seating functions,
-- migration 20261201000007) it is planned once per connection.
--
-- One statement still: the version and the seats come from one snapshot.
-- Only the caller's own active hold is looked up; joining seats to `holds`
-- made every map read scan the whole history of holds once it had grown.

CREATE FUNCTION seating_seat_map(p_showtime uuid, p_now timestamptz, p_user text)
RETURNS TABLE (version bigint, label text, row_label text, number integer,
               category text, state text, held_by_caller boolean)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.version, s.label, s.row_label, s.number, s.category,
           CASE WHEN s.booking_id IS NOT NULL THEN 'booked'
                WHEN s.blocked THEN 'blocked'
                WHEN s.held_until > p_now THEN 'held'
                ELSE 'available' END,
           COALESCE(s.booking_id IS NULL AND NOT s.blocked AND s.held_until > p_now
                    AND s.hold_id = (SELECT h.id FROM holds h
                                      WHERE h.showtime_id = p_showtime
                                        AND h.user_id = p_user AND h.status = 'active'),
                    false)
      FROM showtimes t JOIN seats s ON s.showtime_id = t.id
     WHERE t.id = p_showtime
     ORDER BY s.sort_order;
END
$$;
