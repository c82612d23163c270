-- trailseal_ensure_day, safe when several sessions create the same day's
-- partition at the same moment.
--
-- The first version checked for the partition again after taking the
-- advisory lock, with to_regclass. That answers from the session's catalog
-- cache, which granting an advisory lock does not refresh: a session that
-- had waited for another to create the partition still missed it, created
-- it again and failed with 42P07 (duplicate_table), failing the append
-- that needed the day.
--
-- The check under the lock now reads pg_inherits with the statement's own
-- snapshot, which (in READ COMMITTED) includes every creation committed
-- before the lock was granted. What that check cannot see, a partition
-- created by a session that does not take the lock (an operator by hand)
-- or committed after the snapshot of a REPEATABLE READ caller, makes
-- CREATE TABLE fail once it gets the lock on `entries`: with
-- duplicate_table, or with unique_violation when the two creations meet in
-- the catalog's unique indexes. Either way the partition is there, which
-- is all this function promises, so both count as success. Every other
-- error (a lock or statement timeout, a deadlock) still reaches the
-- caller: the partition may be missing then.

CREATE OR REPLACE FUNCTION trailseal_ensure_day(day DATE) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    name TEXT := 'entries_' || to_char(day, 'YYYYMMDD');
    low  TIMESTAMPTZ := (day::timestamp AT TIME ZONE 'UTC');
BEGIN
    -- The usual case: the partition exists. The cache is fresh enough for
    -- that, since it is brought up to date when a transaction starts.
    IF to_regclass(format('%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Creators take turns ("tspt": trailseal partition), so at most one
    -- session at a time queues for the lock on `entries` that creating a
    -- partition takes; appends queue behind that request. The others wait
    -- here, where they block nobody, and then find the partition made.
    PERFORM pg_advisory_xact_lock(1953722484);
    IF EXISTS (
        SELECT FROM pg_catalog.pg_inherits AS child
        JOIN pg_catalog.pg_class AS class ON class.oid = child.inhrelid
        WHERE child.inhparent = 'entries'::regclass AND class.relname = name
    ) THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF entries FOR VALUES FROM (%L) TO (%L)',
            name, low, low + interval '1 day');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        -- Created by another session meanwhile: there, as it should be.
        RETURN;
    END;
END
$$;
