-- The trailseal PostgreSQL schema, version 1.
--
-- `entries` holds every sealed entry exactly as it was sealed: the header
-- columns and the body (the JSON text of `Body`, never jsonb: jsonb
-- reorders keys) reconstruct the entry; the body commitment is recomputed
-- from the typed fields, so the JSON text itself is never hashed.
--
-- The query columns after `mac` are copies of body values, kept only so
-- that lookups by tenant, actor, IP and so on can use an index. They are
-- never read back into an entry, so tampering with them cannot change what
-- the verifier sees; erasing a personal field must clear its copy too.
--
-- `entries` is partitioned by day on `recorded_at`, so that retention drops
-- whole partitions instead of deleting row by row. Partitions are created
-- ahead by `trailseal_ensure_day` (see docs/OPERATIONS.md).
--
-- Trail names compare byte by byte (COLLATE "C"), as they do in Rust and
-- in SQLite, so every backend lists and pages in the same order.

CREATE TABLE entries (
    trail           TEXT COLLATE "C" NOT NULL,
    seq             BIGINT      NOT NULL CHECK (seq >= 0),
    epoch           BIGINT      NOT NULL CHECK (epoch >= 0),
    key_id          TEXT        NOT NULL,
    -- Microseconds, the precision that is sealed.
    recorded_at     TIMESTAMPTZ NOT NULL,
    -- The kind's stable name (`event`, `epoch_seal`, ...).
    kind            TEXT        NOT NULL,
    body            TEXT        NOT NULL,
    prev_mac        BYTEA       NOT NULL,
    body_commitment BYTEA       NOT NULL,
    mac             BYTEA       NOT NULL,
    action          TEXT,
    tenant          TEXT,
    actor           TEXT,
    target_type     TEXT,
    target_id       TEXT,
    ip              TEXT,
    outcome         TEXT,
    request_id      TEXT,
    -- A unique constraint on a partitioned table must contain the partition
    -- key, so this key cannot stop a second row with the same seq at another
    -- time: that is `trail_heads`' job. The key gives every partition its
    -- (trail, seq) index for scans.
    PRIMARY KEY (trail, seq, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- Query order is (recorded_at, trail, seq); every filter index ends with
-- it, so a page is an index range scan whatever the filter. Indexes on the
-- partitioned table are created on every partition, present and future.
CREATE INDEX entries_by_time ON entries (recorded_at, trail, seq);
CREATE INDEX entries_by_trail_time ON entries (trail, recorded_at, seq);
CREATE INDEX entries_by_action ON entries (action, recorded_at, trail, seq)
    WHERE action IS NOT NULL;
CREATE INDEX entries_by_tenant ON entries (tenant, recorded_at, trail, seq)
    WHERE tenant IS NOT NULL;
CREATE INDEX entries_by_actor ON entries (actor, recorded_at, trail, seq)
    WHERE actor IS NOT NULL;
-- Target ids are specific enough on their own; a filter on the target type
-- alone walks the time index.
CREATE INDEX entries_by_target ON entries (target_id, recorded_at, trail, seq)
    WHERE target_id IS NOT NULL;
CREATE INDEX entries_by_ip ON entries (ip, recorded_at, trail, seq)
    WHERE ip IS NOT NULL;
CREATE INDEX entries_by_outcome ON entries (outcome, recorded_at, trail, seq)
    WHERE outcome IS NOT NULL;
CREATE INDEX entries_by_request ON entries (request_id, recorded_at, trail, seq)
    WHERE request_id IS NOT NULL;

-- Covers the epoch seal's summary (count and time span of an epoch's
-- entries) without touching the table.
CREATE INDEX entries_by_epoch ON entries (trail, epoch, kind, recorded_at);

-- One row per trail: its head, moved by every append in the same statement
-- that inserts the entries. An append succeeds only if it finds the head it
-- expects (compare and swap under the row lock), so two writers, on any
-- number of connections and machines, can never both store a seq: the
-- loser's update matches no row and it is told of the conflict. `seq` is
-- NULL while the trail is still empty.
CREATE TABLE trail_heads (
    trail       TEXT COLLATE "C" PRIMARY KEY,
    seq         BIGINT CHECK (seq >= 0),
    epoch       BIGINT,
    kind        TEXT,
    recorded_at TIMESTAMPTZ,
    mac         BYTEA
);

-- Creates the partition of `entries` for one UTC day, if it is missing.
-- The name (`entries_YYYYMMDD`) is derived from the date alone, never from
-- text a caller passes. Several processes may call it at once: an advisory
-- lock makes them take turns, and the loser finds the partition there.
CREATE FUNCTION trailseal_ensure_day(day DATE) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    name TEXT := 'entries_' || to_char(day, 'YYYYMMDD');
    low  TIMESTAMPTZ := (day::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF to_regclass(format('%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- "tspt": trailseal partition
    PERFORM pg_advisory_xact_lock(1953722484);
    IF to_regclass(format('%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF entries FOR VALUES FROM (%L) TO (%L)',
        name, low, low + interval '1 day');
END
$$;
