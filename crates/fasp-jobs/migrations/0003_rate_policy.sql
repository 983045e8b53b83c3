-- fasp-jobs schema, version 3: the rate policy (fixed, high, fair, low) of a job, applied when
-- it starts and changeable while it runs, like its rates.
ALTER TABLE fasp_jobs ADD COLUMN rate_policy TEXT;
