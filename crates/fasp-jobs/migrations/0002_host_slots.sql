-- fasp-jobs schema, version 2: one row per remote host, locked (by an UPDATE) by a claim that
-- enforces a cap of running jobs per host across all workers, so that two such claims for
-- one host run one after the other and the second counts the first.
CREATE TABLE IF NOT EXISTS fasp_host_slots (
    host       TEXT PRIMARY KEY,
    claimed_ms BIGINT NOT NULL
);
