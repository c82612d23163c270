-- The trail's own records (seals, retention, redaction, holds, genesis) are
-- few among the events; retention reads the holds and records of a trail
-- by kind on every run. A partial index finds them without walking the
-- events. Queries for a record kind state `kind <> 'event'` so that the
-- planner can use it.
CREATE INDEX entries_records ON entries (trail, kind, recorded_at, seq)
    WHERE kind <> 'event';
