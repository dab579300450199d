-- The seating functions plan their statements once per connection.
--
-- Every statement here looks seats up by the showtime and a few labels
-- (`label = ANY (labels)`) or by a primary key. PostgreSQL's plan cache
-- cannot tell that the array holds one to a few labels, so it judged its
-- one generic plan costlier than a plan made for each call's values and
-- planned those statements again at every call: pg_stat_statements counted
-- a plan per call for the seat lookups of a hold, a booking and an
-- extension, and planning took six times as long as running the lookup
-- (2.3 s against 0.4 s over a benchmark run; in all about a sixth of
-- PostgreSQL's CPU a booking). The generic plan is the same index lookup.
--
-- A generic plan is made from the statistics of the moment and kept until
-- the table's statistics change (ANALYZE, which autovacuum runs as the
-- tables grow, invalidates it), as for any prepared statement; see
-- docs/architecture.md (Seating).
--
-- A function's SET clause confines only a SET LOCAL of the same setting to
-- the function: seating_hold's own `synchronous_commit = off` still holds
-- for its transaction after it returns.

ALTER FUNCTION seating_hold(uuid, text, text[], uuid, timestamptz, timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seating_unavailable(uuid, text, text[], timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seating_free_seats(uuid, uuid[])
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seating_release(uuid, text, timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seating_book(uuid, text, uuid, text, bigint, text, text[], timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seating_extend(uuid, text, timestamptz, timestamptz)
    SET plan_cache_mode = force_generic_plan;
