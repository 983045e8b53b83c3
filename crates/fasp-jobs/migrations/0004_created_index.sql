-- fasp-jobs schema, version 4: an index on the submission time, so that a submission finds the
-- last one (MAX(created_ms)) without reading the table: jobs are kept in submission order even
-- when several are submitted within one millisecond.
CREATE INDEX IF NOT EXISTS fasp_jobs_created ON fasp_jobs (created_ms);
