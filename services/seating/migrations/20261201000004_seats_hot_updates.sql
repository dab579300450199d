-- Seat rows change owner on every hold, release and booking: in a rush,
-- thousands of updates a second on a few pages. An update that changes no
-- indexed column and finds room on its page is a HOT update: no new index
-- entries, and the page's dead versions are pruned as it is read. The
-- `seats_by_hold` index made every change of `hold_id` a full update (two
-- index entries per seat per change, and bloat behind them); every query
-- that looks seats up by hold also names the showtime, so the primary key
-- (showtime_id, label) finds them among that showtime's few hundred rows.
-- A fill factor below 100 leaves each page the room HOT needs.
DROP INDEX seats_by_hold;
ALTER TABLE seats SET (fillfactor = 70);
