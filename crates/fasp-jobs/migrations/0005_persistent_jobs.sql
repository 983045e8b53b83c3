-- fasp-jobs schema, version 5: persistent jobs. A persistent job runs one keepalive ascp
-- session that waits for paths; paths are added while the job lives (AddPaths), each kept
-- here until its worker records it done, so that a path added while the job is queued, or
-- between a worker's death and the rescue, is added by the next run. `closing` (asked by
-- finish) ends the session once every path is done; no path is accepted after it.
ALTER TABLE fasp_jobs ADD COLUMN persistent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fasp_jobs ADD COLUMN closing BIGINT NOT NULL DEFAULT 0;
-- Paths added so far: the sequence number of the last one (raised in the transaction that
-- adds them, so that a worker that reads it at its heartbeat knows what it has not seen).
ALTER TABLE fasp_jobs ADD COLUMN paths_added BIGINT NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS fasp_job_paths (
    job_id      TEXT NOT NULL,
    -- 1, 2, ...: the order of addition.
    seq         BIGINT NOT NULL,
    source      TEXT NOT NULL,
    destination TEXT NOT NULL,
    -- NULL until a worker saw the path end (its ARGSTOP): done or failed.
    outcome     TEXT,
    -- The epoch of the lease under which the outcome was recorded.
    epoch       BIGINT,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- The client keys of the AddPaths requests already applied: a retried request (same key) adds
-- nothing twice.
CREATE TABLE IF NOT EXISTS fasp_job_path_requests (
    job_id      TEXT NOT NULL,
    request_key TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (job_id, request_key)
);
