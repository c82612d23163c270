-- The trailseal SQLite schema, version 1.
--
-- `entries` holds every sealed entry exactly as it was sealed: the header
-- columns and the body (the JSON form of `Body`) reconstruct the entry; the
-- body commitment is recomputed from the typed fields, so the JSON text
-- itself is never hashed.
--
-- The query columns after `mac` are copies of body values, kept only so
-- that lookups by tenant, actor, IP and so on can use an index. They are
-- never read back into an entry, so tampering with them cannot change what
-- the verifier sees; erasing a personal field must clear its copy too.

-- Marks the file as a trailseal store, so that a store never writes into
-- another application's SQLite database ("tsl1").
PRAGMA application_id = 1953721393;

CREATE TABLE entries (
    trail           TEXT    NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 0),
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    key_id          TEXT    NOT NULL,
    -- Microseconds since 1970-01-01 UTC, the precision that is sealed.
    recorded_at     INTEGER NOT NULL,
    -- The kind's stable name (`event`, `epoch_seal`, ...).
    kind            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    prev_mac        BLOB    NOT NULL,
    body_commitment BLOB    NOT NULL,
    mac             BLOB    NOT NULL,
    action          TEXT,
    tenant          TEXT,
    actor           TEXT,
    target_type     TEXT,
    target_id       TEXT,
    ip              TEXT,
    outcome         TEXT,
    request_id      TEXT,
    -- Two writers can never both store a seq: the loser of a race gets a
    -- unique violation instead of forking the trail.
    PRIMARY KEY (trail, seq)
) STRICT;

-- Query order is (recorded_at, trail, seq); every filter index ends with
-- it, so a page is an index range scan whatever the filter.
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

-- One row per trail, so listing trails does not scan every entry.
CREATE TABLE trails (
    name TEXT PRIMARY KEY NOT NULL
) STRICT, WITHOUT ROWID;
