-- The expiry sweeper's index serves only queries that bound `held_until`.
--
-- A hold first ends the buyer's earlier hold on the showtime
-- (`WHERE showtime_id = … AND user_id = … AND status = 'active'`), which
-- `holds_one_active_per_user` answers with one entry. But the sweeper's
-- index was partial on `status = 'active'` alone, so it could answer the
-- same query by reading every active hold of every showtime; with
-- statistics taken while few holds were active (a quiet hour, a fresh
-- database) both looked equally cheap and PostgreSQL took the sweeper's.
-- In a benchmark with 5,500 active holds that made each hold's first
-- statement 1.5 ms, under the showtime's row lock, growing with every
-- active hold anywhere.
--
-- `held_until IS NOT NULL` is always true (the column is NOT NULL), but the
-- planner proves a partial index usable only from the query's own
-- conditions: `held_until <= $1` (strict) implies it, a lookup by buyer
-- does not. So the sweeper keeps its index and nothing else can use it.

DROP INDEX holds_active_by_expiry;
CREATE INDEX holds_active_by_expiry ON holds (held_until)
    WHERE status = 'active' AND held_until IS NOT NULL;
