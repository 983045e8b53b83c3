-- fasp-jobs schema, version 1. One text for SQLite and PostgreSQL: only TEXT and BIGINT
-- columns, ids made by the client, times in milliseconds since the Unix epoch (the workers'
-- clocks), JSON kept as TEXT. `IF NOT EXISTS` everywhere, so that two processes opening a new
-- SQLite file at the same moment cannot trip over each other.

CREATE TABLE IF NOT EXISTS fasp_jobs (
    id                 TEXT PRIMARY KEY,
    -- Two submissions with the same key are one job.
    idempotency_key    TEXT UNIQUE,
    -- 'spec' (a transfer spec) or 'node' (a node API setup request).
    kind               TEXT NOT NULL,
    -- JSON: the spec or the node request, without secrets unless the submitter allowed them.
    payload            TEXT NOT NULL,
    -- The remote host (or node) the job talks to: the key of the per-host admission control.
    host               TEXT NOT NULL,
    priority           BIGINT NOT NULL DEFAULT 0,
    -- queued, running, paused, completed, failed, cancelled.
    state              TEXT NOT NULL,
    max_attempts       BIGINT NOT NULL,
    backoff_initial_ms BIGINT NOT NULL,
    backoff_max_ms     BIGINT NOT NULL,
    -- Failed attempts so far (a worker that died is not a failure of the job).
    failures           BIGINT NOT NULL DEFAULT 0,
    -- Claims so far (first runs, retries and rescues).
    claims             BIGINT NOT NULL DEFAULT 0,
    -- Not claimable before (retry backoff).
    run_after_ms       BIGINT NOT NULL,
    -- Raised by every claim: a write that names an older epoch is refused (fencing).
    epoch              BIGINT NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_until_ms     BIGINT,
    -- Requests for the worker that holds the job.
    cancel_requested   BIGINT NOT NULL DEFAULT 0,
    target_rate_kbps   BIGINT,
    min_rate_kbps      BIGINT,
    -- Progress, written at a bounded rate by the worker.
    bytes_done         BIGINT NOT NULL DEFAULT 0,
    bytes_expected     BIGINT,
    files_done         BIGINT NOT NULL DEFAULT 0,
    files_skipped      BIGINT NOT NULL DEFAULT 0,
    files_failed       BIGINT NOT NULL DEFAULT 0,
    last_error         TEXT,
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    -- The last claim (submit-to-start latency, admission checks).
    started_ms         BIGINT,
    finished_ms        BIGINT
);

-- The claim's order within a state: the queue, and the rescue of expired leases.
CREATE INDEX IF NOT EXISTS fasp_jobs_claim ON fasp_jobs (state, priority DESC, created_ms, id);
CREATE INDEX IF NOT EXISTS fasp_jobs_lease ON fasp_jobs (state, lease_until_ms);

CREATE TABLE IF NOT EXISTS fasp_job_tags (
    job_id TEXT NOT NULL,
    tag    TEXT NOT NULL,
    PRIMARY KEY (job_id, tag)
);

CREATE INDEX IF NOT EXISTS fasp_job_tags_tag ON fasp_job_tags (tag);

-- Per-file results: one row per file, the latest outcome.
CREATE TABLE IF NOT EXISTS fasp_job_files (
    job_id      TEXT NOT NULL,
    path        TEXT NOT NULL,
    -- done, skipped, failed.
    outcome     TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    size        BIGINT,
    code        BIGINT,
    description TEXT,
    epoch       BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (job_id, path)
);

-- The completion record: its primary key makes a second one impossible.
CREATE TABLE IF NOT EXISTS fasp_job_completions (
    job_id       TEXT PRIMARY KEY,
    epoch        BIGINT NOT NULL,
    worker       TEXT NOT NULL,
    completed_ms BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    files_done   BIGINT NOT NULL
);
