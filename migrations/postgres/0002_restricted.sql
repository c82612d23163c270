-- Restriction of processing (GDPR Art. 18): a restricted entry is still
-- stored and verified, but left out of queries unless they ask for it.
-- The flag is not part of the sealed entry.
ALTER TABLE entries ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT false;
