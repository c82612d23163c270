-- Projection snapshots kept before retention deletes entries; retention
-- records commit to their digests, so they are checked, not trusted.
CREATE TABLE snapshots (
    trail    TEXT   COLLATE "C" NOT NULL,
    name     TEXT   COLLATE "C" NOT NULL,
    -- The last seq the state covers.
    upto_seq BIGINT NOT NULL CHECK (upto_seq >= 0),
    state    TEXT   NOT NULL,
    PRIMARY KEY (trail, name, upto_seq)
);
