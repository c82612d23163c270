-- Projection snapshots kept before retention deletes entries; retention
-- records commit to their digests, so they are checked, not trusted.
CREATE TABLE snapshots (
    trail    TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    -- The last seq the state covers.
    upto_seq INTEGER NOT NULL CHECK (upto_seq >= 0),
    state    TEXT    NOT NULL,
    PRIMARY KEY (trail, name, upto_seq)
) STRICT;
