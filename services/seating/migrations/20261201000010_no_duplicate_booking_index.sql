-- `booking_seats_by_booking` (booking_id) was made when the primary key was
-- (showtime_id, label); since 20261201000002 the primary key is
-- (booking_id, label) and answers every lookup by booking on its own. The
-- extra index only cost an entry to write for every seat booked.

DROP INDEX booking_seats_by_booking;
