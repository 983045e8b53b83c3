//! [`JobStore`]: the jobs in SQLite or PostgreSQL, through one code path (sqlx's `Any`
//! driver) and one schema.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fasp_spec::RatePolicy;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::error::{JobError, redact_url};
use crate::model::{
    AddedPath, Claim, Completion, Controls, FileOutcome, FileResult, Job, JobId, JobPayload,
    JobProgress, JobState, Lease, ListFilter, NewJob, PathsAdded, Retry, Submitted,
};

/// The schema's migrations, embedded in the library (no files at run time).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "jobs", include_str!("../migrations/0001_jobs.sql")),
    (
        2,
        "host slots",
        include_str!("../migrations/0002_host_slots.sql"),
    ),
    (
        3,
        "rate policy",
        include_str!("../migrations/0003_rate_policy.sql"),
    ),
    (
        4,
        "created index",
        include_str!("../migrations/0004_created_index.sql"),
    ),
    (
        5,
        "persistent jobs",
        include_str!("../migrations/0005_persistent_jobs.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures::future::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Which database a store is on. The SQL is the same for both, except the row lock of a
/// claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer at a time, which
/// makes the claim's single `UPDATE ... RETURNING` atomic by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The jobs, in a SQLite file or a PostgreSQL database. Cheap to clone (the connection pool
/// is shared).
///
/// Client side: [`submit`](JobStore::submit), [`get`](JobStore::get),
/// [`list`](JobStore::list), [`files`](JobStore::files), [`cancel`](JobStore::cancel),
/// [`pause`](JobStore::pause), [`resume`](JobStore::resume),
/// [`set_rate`](JobStore::set_rate). Worker side (what [`crate::Worker`] does; public so that
/// other runtimes and tests can drive it): [`claim`](JobStore::claim),
/// [`heartbeat`](JobStore::heartbeat), [`record_files`](JobStore::record_files),
/// [`complete`](JobStore::complete), [`retry_later`](JobStore::retry_later),
/// [`fail`](JobStore::fail), [`mark_cancelled`](JobStore::mark_cancelled),
/// [`release`](JobStore::release), [`sweep`](JobStore::sweep). Every worker-side write
/// names its [`Lease`] and is refused ([`JobError::LeaseLost`]) once the job's epoch has
/// moved on: a worker that lost its lease can record nothing.
#[derive(Debug, Clone)]
pub struct JobStore {
    pool: AnyPool,
    backend: Backend,
    /// Raised by every `add_paths` and `finish_job` through this store or its clones: the
    /// workers of this process that run persistent jobs wake at once rather than at their
    /// next heartbeat (those of other processes learn it at their heartbeat).
    paths_changed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Raised by every submission, resume of a queued job and release through this store or
    /// its clones: the idle workers of this process claim at once rather than at their next
    /// poll. Those of other processes learn it by `NOTIFY fasp_jobs` on PostgreSQL, at their
    /// next poll on SQLite.
    work_ready: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// PostgreSQL: where a worker's listener for `NOTIFY fasp_jobs` connects.
    listen_url: Option<ListenUrl>,
}

/// The channel of the `NOTIFY` sent when a job becomes claimable (PostgreSQL).
const WORK_CHANNEL: &str = "fasp_jobs";

/// A database URL kept for the listener's connection; it may hold a password, so `Debug`
/// never shows it.
#[derive(Clone)]
struct ListenUrl(std::sync::Arc<str>);

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenUrl(<redacted>)")
    }
}

const JOB_COLUMNS: &str = "id, idempotency_key, kind, host, priority, state, max_attempts, \
     failures, claims, epoch, lease_owner, cancel_requested, target_rate_kbps, min_rate_kbps, \
     rate_policy, \
     bytes_done, bytes_expected, files_done, files_skipped, files_failed, last_error, \
     created_ms, updated_ms, started_ms, finished_ms, persistent, closing, paths_added";

impl JobStore {
    /// Open (creating it if needed) the store at `url`: a SQLite file (`sqlite:PATH`,
    /// `sqlite://PATH`, or a plain path) or a PostgreSQL database (`postgres://...`,
    /// `postgresql://...`; a Unix socket folder goes in `?host=/path`). The schema is
    /// created or migrated before this returns.
    pub async fn open(url: &str) -> Result<JobStore, JobError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            (Backend::Sqlite, sqlite_url(Path::new(path)))
        } else if !url.contains("://") && !url.is_empty() {
            (Backend::Sqlite, sqlite_url(Path::new(url)))
        } else {
            return Err(JobError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
        let shown = redact_url(&url);
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .connect(&url)
            .await
            .map_err(|source| JobError::Open {
                url: shown.clone(),
                source,
            })?;
        if backend == Backend::Sqlite {
            // Readers do not block the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|source| JobError::Open {
                    url: shown.clone(),
                    source,
                })?;
        }
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|source| JobError::Migrate {
                url: shown.clone(),
                source,
            })?;
        // Two processes opening a new SQLite file at once: the loser of the race on the
        // migrations table sees an error; the schema is there after a second try.
        let mut tries = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(_) if tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(source) => {
                    return Err(JobError::Migrate {
                        url: shown.clone(),
                        source,
                    });
                }
            }
        }
        let listen_url = (backend == Backend::Postgres).then(|| ListenUrl(url.as_str().into()));
        Ok(JobStore {
            pool,
            backend,
            paths_changed: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            work_ready: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            listen_url,
        })
    }

    /// Open the SQLite file at `path` (created, mode 0600, if missing).
    pub async fn open_sqlite(path: &Path) -> Result<JobStore, JobError> {
        if !path.exists() {
            create_private_file(path).map_err(|e| JobError::Open {
                url: path.display().to_string(),
                source: sqlx::Error::Io(e),
            })?;
        }
        JobStore::open(&format!("sqlite:{}", path.display())).await
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Close the connections (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- client side -----

    /// Add a job. With an idempotency key already used, nothing is added and the first job
    /// is returned (`created: false`).
    pub async fn submit(&self, job: &NewJob) -> Result<Submitted, JobError> {
        if let (Some(key), false) = (&job.secret_in_spec, job.store_secrets) {
            return Err(JobError::SecretInSpec { key: key.clone() });
        }
        if job.host.is_empty() {
            return Err(JobError::Invalid {
                reason: "the job names no remote host (the spec's remote_host, or NewJob::host)"
                    .into(),
            });
        }
        if let (Some(t), Some(m)) = (job.target_rate_kbps, job.min_rate_kbps) {
            if m > t {
                return Err(JobError::Invalid {
                    reason: format!("minimum rate {m} Kbps above the target {t} Kbps"),
                });
            }
        }
        let (payload, paths) = persistent_payload(job)?;
        let payload = serde_json::to_string(&payload).map_err(|e| JobError::Invalid {
            reason: format!("cannot serialise the job: {e}"),
        })?;
        let kind = match job.payload {
            JobPayload::Spec { .. } => "spec",
            JobPayload::Node(_) => "node",
        };
        let id = JobId::random()?;
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(JobError::db("begin submit"))?;
        if self.backend == Backend::Sqlite {
            // Take the writer lock first (waiting for it as long as the busy timeout): a
            // transaction that reads, then writes, is refused its write at once ("database
            // is locked") when another connection wrote in between, such as a heartbeat.
            sqlx::query("UPDATE fasp_host_slots SET claimed_ms = claimed_ms WHERE host = ''")
                .execute(&mut *tx)
                .await
                .map_err(JobError::db("begin submit"))?;
        }
        // Submission order is the queue's order among equal priorities: a job is always
        // younger than the last one submitted before it, even within one millisecond (then it
        // takes the next millisecond; only submissions racing on different connections can
        // share one, and go in id order).
        let last: Option<i64> = sqlx::query("SELECT MAX(created_ms) AS last FROM fasp_jobs")
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get("last"))
            .map_err(JobError::db("read the last submission time"))?;
        let created = last.map_or(now, |last| now.max(last.saturating_add(1)));
        let inserted = sqlx::query(
            "INSERT INTO fasp_jobs (id, idempotency_key, kind, payload, host, priority, state, \
             max_attempts, backoff_initial_ms, backoff_max_ms, run_after_ms, target_rate_kbps, \
             min_rate_kbps, rate_policy, created_ms, updated_ms, persistent, paths_added) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13, $14, $10, \
               $15, $16) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(job.idempotency_key.as_deref())
        .bind(kind)
        .bind(&payload)
        .bind(&job.host)
        .bind(job.priority)
        .bind(i64::from(job.retry.max_attempts.max(1)))
        .bind(ms(job.retry.initial_backoff))
        .bind(ms(job.retry.max_backoff))
        .bind(now)
        .bind(job.target_rate_kbps.map(to_i64))
        .bind(job.min_rate_kbps.map(to_i64))
        .bind(job.rate_policy.map(RatePolicy::as_str))
        .bind(created)
        .bind(i64::from(job.persistent))
        .bind(i64::try_from(paths.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("insert a job"))?;
        if inserted.rows_affected() == 0 {
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            let row = sqlx::query("SELECT id FROM fasp_jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(JobError::db("find the job of an idempotency key"))?;
            let id: String = row.try_get("id").map_err(JobError::db("read a job id"))?;
            tx.commit().await.map_err(JobError::db("commit submit"))?;
            return Ok(Submitted {
                id: JobId(id),
                created: false,
            });
        }
        let mut tags = job.tags.clone();
        tags.sort();
        tags.dedup();
        for tag in &tags {
            sqlx::query("INSERT INTO fasp_job_tags (job_id, tag) VALUES ($1, $2)")
                .bind(id.as_str())
                .bind(tag)
                .execute(&mut *tx)
                .await
                .map_err(JobError::db("insert a tag"))?;
        }
        insert_paths(&mut tx, &id, 0, &paths, now).await?;
        self.notify_work(&mut tx).await?;
        tx.commit().await.map_err(JobError::db("commit submit"))?;
        self.raise_work_signal();
        tracing::info!(job = %id, kind, host = %job.host, "job submitted");
        Ok(Submitted { id, created: true })
    }

    /// The job, or `None`.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>, JobError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM fasp_jobs WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("read a job"))?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut job = job_from_row(&row)?;
                job.tags = self.tags(id).await?;
                Ok(Some(job))
            }
        }
    }

    async fn tags(&self, id: &JobId) -> Result<Vec<String>, JobError> {
        let rows = sqlx::query("SELECT tag FROM fasp_job_tags WHERE job_id = $1 ORDER BY tag")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(JobError::db("read tags"))?;
        rows.iter()
            .map(|r| {
                r.try_get::<String, _>("tag")
                    .map_err(JobError::db("read a tag"))
            })
            .collect()
    }

    /// The jobs that pass `filter`, oldest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        // The selection, used twice: for the jobs, and for their tags (one query each, however
        // many jobs).
        let mut selection = String::from("FROM fasp_jobs WHERE 1 = 1");
        let mut n = 0;
        if !filter.states.is_empty() {
            let marks: Vec<String> = filter
                .states
                .iter()
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            selection.push_str(&format!(" AND state IN ({})", marks.join(", ")));
        }
        if filter.tag.is_some() {
            n += 1;
            selection.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM fasp_job_tags t WHERE t.job_id = fasp_jobs.id AND t.tag = ${n})"
            ));
        }
        selection.push_str(" ORDER BY created_ms, id");
        if let Some(limit) = filter.limit {
            selection.push_str(&format!(" LIMIT {limit}"));
        }
        let jobs_sql = format!("SELECT {JOB_COLUMNS} {selection}");
        let rows = bind_filter(&jobs_sql, filter)
            .fetch_all(&self.pool)
            .await
            .map_err(JobError::db("list jobs"))?;
        let tags_sql = format!(
            "SELECT job_id, tag FROM fasp_job_tags WHERE job_id IN (SELECT id {selection}) \
             ORDER BY job_id, tag"
        );
        let tag_rows = bind_filter(&tags_sql, filter)
            .fetch_all(&self.pool)
            .await
            .map_err(JobError::db("list tags"))?;
        let mut tags: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for r in &tag_rows {
            let id: String = r.try_get("job_id").map_err(JobError::db("read a tag"))?;
            let tag: String = r.try_get("tag").map_err(JobError::db("read a tag"))?;
            tags.entry(id).or_default().push(tag);
        }
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut job = job_from_row(row)?;
            job.tags = tags.remove(job.id.as_str()).unwrap_or_default();
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// The per-file results of a job, by path.
    pub async fn files(&self, id: &JobId) -> Result<Vec<FileResult>, JobError> {
        let rows = sqlx::query(
            "SELECT path, outcome, bytes, size, code, description FROM fasp_job_files \
             WHERE job_id = $1 ORDER BY path",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(JobError::db("read file results"))?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome").map_err(JobError::db("read a file"))?;
                Ok(FileResult {
                    path: r.try_get("path").map_err(JobError::db("read a file"))?,
                    outcome: FileOutcome::parse(&outcome).ok_or_else(|| JobError::Corrupt {
                        id: id.to_string(),
                        reason: format!("file outcome {outcome:?}"),
                    })?,
                    bytes: to_u64(r.try_get("bytes").map_err(JobError::db("read a file"))?),
                    size: r
                        .try_get::<Option<i64>, _>("size")
                        .map_err(JobError::db("read a file"))?
                        .map(to_u64),
                    code: r
                        .try_get::<Option<i64>, _>("code")
                        .map_err(JobError::db("read a file"))?
                        .map(to_u64),
                    description: r
                        .try_get("description")
                        .map_err(JobError::db("read a file"))?,
                })
            })
            .collect()
    }

    /// The completion records of a job: none, or one (the schema allows no second).
    pub async fn completions(&self, id: &JobId) -> Result<Vec<Completion>, JobError> {
        let rows = sqlx::query(
            "SELECT job_id, epoch, worker, completed_ms, bytes, files_done \
             FROM fasp_job_completions WHERE job_id = $1",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(JobError::db("read completions"))?;
        rows.iter()
            .map(|r| {
                let e = JobError::db("read a completion");
                let get = |r: &AnyRow| -> Result<Completion, sqlx::Error> {
                    Ok(Completion {
                        job_id: JobId(r.try_get("job_id")?),
                        epoch: r.try_get("epoch")?,
                        worker: r.try_get("worker")?,
                        completed_ms: r.try_get("completed_ms")?,
                        bytes: to_u64(r.try_get("bytes")?),
                        files_done: to_u64(r.try_get("files_done")?),
                    })
                };
                get(r).map_err(e)
            })
            .collect()
    }

    /// Cancel: a job no worker holds ends `cancelled` at once; a held one is cancelled by its
    /// worker at its next heartbeat (or by [`JobStore::sweep`] once its lease has expired).
    /// Returns the state after the request; a job already ended keeps its state.
    pub async fn cancel(&self, id: &JobId) -> Result<JobState, JobError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE fasp_jobs SET \
               state = CASE WHEN lease_owner IS NULL THEN 'cancelled' ELSE state END, \
               finished_ms = CASE WHEN lease_owner IS NULL THEN $2 ELSE finished_ms END, \
               cancel_requested = 1, updated_ms = $2 \
             WHERE id = $1 AND state IN ('queued', 'running', 'paused') RETURNING state",
        )
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("cancel a job"))?;
        match row {
            Some(row) => state_of(&row, id),
            None => Ok(self.require(id).await?.state),
        }
    }

    /// Pause: a queued job is not claimed until resumed; a running one is paused by its
    /// worker at its next heartbeat (ascp at rate 0, the lease kept).
    pub async fn pause(&self, id: &JobId) -> Result<JobState, JobError> {
        let row = sqlx::query(
            "UPDATE fasp_jobs SET state = 'paused', updated_ms = $2 \
             WHERE id = $1 AND state IN ('queued', 'running', 'paused') RETURNING state",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("pause a job"))?;
        match row {
            Some(row) => state_of(&row, id),
            None => {
                let job = self.require(id).await?;
                Err(JobError::InvalidState {
                    id: id.clone(),
                    state: job.state,
                    action: "pause",
                })
            }
        }
    }

    /// Resume a paused job.
    pub async fn resume(&self, id: &JobId) -> Result<JobState, JobError> {
        let row = sqlx::query(
            "UPDATE fasp_jobs SET \
               state = CASE WHEN state = 'paused' AND lease_owner IS NULL THEN 'queued' \
                            WHEN state = 'paused' THEN 'running' ELSE state END, \
               updated_ms = $2 \
             WHERE id = $1 AND state IN ('queued', 'running', 'paused') RETURNING state",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("resume a job"))?;
        match row {
            Some(row) => {
                let state = state_of(&row, id)?;
                if state == JobState::Queued {
                    // Claimable again: wake the idle workers. The resume is done: a failed
                    // notification only leaves the job to the other processes' poll.
                    if self.backend == Backend::Postgres {
                        let notified = match self.pool.acquire().await {
                            Ok(mut conn) => self.notify_work(&mut conn).await,
                            Err(e) => Err(JobError::db("notify the workers")(e)),
                        };
                        if let Err(e) = notified {
                            tracing::warn!(job = %id, error = %e, "resumed, but cannot notify the workers; they find it at their next poll");
                        }
                    }
                    self.raise_work_signal();
                }
                Ok(state)
            }
            None => {
                let job = self.require(id).await?;
                Err(JobError::InvalidState {
                    id: id.clone(),
                    state: job.state,
                    action: "resume",
                })
            }
        }
    }

    /// Change the rates (Kbps): kept for the next start, and applied by the worker of a
    /// running job at its next heartbeat.
    pub async fn set_rate(
        &self,
        id: &JobId,
        target_kbps: u64,
        min_kbps: u64,
    ) -> Result<(), JobError> {
        if min_kbps > target_kbps {
            return Err(JobError::Invalid {
                reason: format!("minimum rate {min_kbps} Kbps above the target {target_kbps} Kbps"),
            });
        }
        let done = sqlx::query(
            "UPDATE fasp_jobs SET target_rate_kbps = $2, min_rate_kbps = $3, updated_ms = $4 \
             WHERE id = $1 AND state IN ('queued', 'running', 'paused')",
        )
        .bind(id.as_str())
        .bind(to_i64(target_kbps))
        .bind(to_i64(min_kbps))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(JobError::db("set a job's rates"))?;
        if done.rows_affected() == 0 {
            let job = self.require(id).await?;
            return Err(JobError::InvalidState {
                id: id.clone(),
                state: job.state,
                action: "set the rate",
            });
        }
        Ok(())
    }

    /// Change the rate policy: kept for the next start, and applied by the worker of a
    /// running job at its next heartbeat.
    pub async fn set_policy(&self, id: &JobId, policy: RatePolicy) -> Result<(), JobError> {
        let done = sqlx::query(
            "UPDATE fasp_jobs SET rate_policy = $2, updated_ms = $3 \
             WHERE id = $1 AND state IN ('queued', 'running', 'paused')",
        )
        .bind(id.as_str())
        .bind(policy.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(JobError::db("set a job's rate policy"))?;
        if done.rows_affected() == 0 {
            let job = self.require(id).await?;
            return Err(JobError::InvalidState {
                id: id.clone(),
                state: job.state,
                action: "set the rate policy",
            });
        }
        Ok(())
    }

    /// Add paths to a persistent job (queued, running or paused, its close not asked): they
    /// are kept in the store, numbered in order, until a worker records them done; the worker
    /// that runs the job adds them to its session at its next heartbeat, and a worker that
    /// starts the job (first run, retry, rescue) adds every path not yet done. With
    /// `request_key`, a retried request (same key) adds nothing twice: it returns
    /// `applied: false`. With `last`, the job is closed in the same transaction (see
    /// [`JobStore::finish_job`]). [`JobError::NotAccepting`] when the job is not persistent, ended,
    /// or closing.
    pub async fn add_paths(
        &self,
        id: &JobId,
        paths: &[AddedPath],
        request_key: Option<&str>,
        last: bool,
    ) -> Result<PathsAdded, JobError> {
        if let Some(p) = paths.iter().find(|p| p.source.is_empty()) {
            return Err(JobError::Invalid {
                reason: format!(
                    "a path with an empty source (destination {:?})",
                    p.destination
                ),
            });
        }
        // The management protocol is line-based: such a path could never be sent to ascp.
        let unsendable = |t: &str| t.contains(['\n', '\r', '\0']);
        if let Some(p) = paths
            .iter()
            .find(|p| unsendable(&p.source) || unsendable(&p.destination))
        {
            return Err(JobError::Invalid {
                reason: format!(
                    "the path {:?} -> {:?} holds a line break or NUL, which ascp cannot be sent",
                    p.source, p.destination
                ),
            });
        }
        let n = i64::try_from(paths.len()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(JobError::db("begin adding paths"))?;
        // The job's row first: its write lock orders this request with the worker's writes
        // and with other requests, and the condition refuses an ended or closing job.
        let row = sqlx::query(
            "UPDATE fasp_jobs SET paths_added = paths_added + $2, \
               closing = CASE WHEN $3 = 1 THEN 1 ELSE closing END, updated_ms = $4 \
             WHERE id = $1 AND persistent = 1 AND closing = 0 \
               AND state IN ('queued', 'running', 'paused') RETURNING paths_added",
        )
        .bind(id.as_str())
        .bind(n)
        .bind(i64::from(last))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(JobError::db("add paths"))?;
        let Some(row) = row else {
            drop(tx);
            if let Some(key) = request_key {
                if self.request_applied(id, key).await? {
                    return self.replayed(id).await;
                }
            }
            let job = self.require(id).await?;
            return Err(refusal(&job));
        };
        let total: i64 = row
            .try_get("paths_added")
            .map_err(JobError::db("add paths"))?;
        if let Some(key) = request_key {
            let fresh = sqlx::query(
                "INSERT INTO fasp_job_path_requests (job_id, request_key, created_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT (job_id, request_key) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(JobError::db("record an AddPaths request key"))?;
            if fresh.rows_affected() == 0 {
                // Applied before: roll this one back.
                drop(tx);
                return self.replayed(id).await;
            }
        }
        insert_paths(&mut tx, id, total.saturating_sub(n), paths, now).await?;
        tx.commit()
            .await
            .map_err(JobError::db("commit adding paths"))?;
        tracing::info!(job = %id, added = n, total, last, "paths added");
        self.raise_paths_signal();
        Ok(PathsAdded {
            added: to_u64(n),
            total: to_u64(total),
            applied: true,
            closing: last,
        })
    }

    /// A signal raised each time paths are added, or a persistent job is finished, through
    /// this store or a clone of it (in this process).
    pub(crate) fn paths_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.paths_changed.subscribe()
    }

    /// A signal raised each time a job becomes claimable (submitted, resumed, released)
    /// through this store or a clone of it, and, once [`JobStore::listen_for_work`] runs, at
    /// each `NOTIFY fasp_jobs` of any process (PostgreSQL).
    pub(crate) fn work_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.work_ready.subscribe()
    }

    fn raise_work_signal(&self) {
        self.work_ready.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// PostgreSQL: `NOTIFY fasp_jobs` on `conn` (in a transaction, sent at its commit).
    /// Nothing on SQLite.
    async fn notify_work(&self, conn: &mut sqlx::AnyConnection) -> Result<(), JobError> {
        if self.backend == Backend::Postgres {
            sqlx::query(&format!("NOTIFY {WORK_CHANNEL}"))
                .execute(conn)
                .await
                .map_err(JobError::db("notify the workers"))?;
        }
        Ok(())
    }

    /// PostgreSQL: listen for `NOTIFY fasp_jobs` (sent by every submission, resume and
    /// release, by any process) on a connection of its own, raising this store's work signal
    /// at each, until the future is dropped. When the connection cannot be made or is lost,
    /// the workers keep their poll (a warning is logged) and the listener tries again, with
    /// a backoff up to 30 s; after each (re)connection the signal is raised once, for what
    /// was sent meanwhile. Returns at once on SQLite.
    pub(crate) async fn listen_for_work(self) {
        let Some(url) = self.listen_url.clone() else {
            return;
        };
        const FIRST_BACKOFF: Duration = Duration::from_millis(500);
        let mut backoff = FIRST_BACKOFF;
        loop {
            match sqlx::postgres::PgListener::connect(&url.0).await {
                Ok(mut listener) => match listener.listen(WORK_CHANNEL).await {
                    Ok(()) => {
                        tracing::debug!(channel = WORK_CHANNEL, "listening for new jobs");
                        backoff = FIRST_BACKOFF;
                        self.raise_work_signal();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => self.raise_work_signal(),
                                Ok(None) => {
                                    // Lost; the next call reconnects and listens again.
                                    tracing::warn!(
                                        channel = WORK_CHANNEL,
                                        "the listener's connection was lost; reconnecting \
                                         (new jobs are found by polling meanwhile)"
                                    );
                                    self.raise_work_signal();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, channel = WORK_CHANNEL, "the listener failed; new jobs are found by polling until it is back");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel = WORK_CHANNEL, "cannot listen for new jobs; they are found by polling");
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, channel = WORK_CHANNEL, "cannot connect a listener for new jobs; they are found by polling");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn raise_paths_signal(&self) {
        self.paths_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A persistent job's path count and whether it is closing.
    pub(crate) async fn path_state(&self, id: &JobId) -> Result<(u64, bool), JobError> {
        let row = sqlx::query("SELECT paths_added, closing FROM fasp_jobs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(JobError::db("read a job's paths state"))?
            .ok_or_else(|| JobError::NotFound { id: id.clone() })?;
        let added: i64 = row
            .try_get("paths_added")
            .map_err(JobError::db("read a job's paths state"))?;
        let closing: i64 = row
            .try_get("closing")
            .map_err(JobError::db("read a job's paths state"))?;
        Ok((to_u64(added), closing != 0))
    }

    async fn request_applied(&self, id: &JobId, key: &str) -> Result<bool, JobError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM fasp_job_path_requests WHERE job_id = $1 AND request_key = $2",
        )
        .bind(id.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("read an AddPaths request key"))?;
        Ok(row.is_some())
    }

    async fn replayed(&self, id: &JobId) -> Result<PathsAdded, JobError> {
        let job = self.require(id).await?;
        Ok(PathsAdded {
            added: 0,
            total: job.paths_added,
            applied: false,
            closing: job.closing,
        })
    }

    /// Close a persistent job: it takes no more paths, and its worker ends the session (and
    /// the job `completed`) once every path is done; a queued job runs its paths, then ends.
    /// Closing a closing job again changes nothing. Returns the job's state.
    /// [`JobError::NotAccepting`] when the job is not persistent or ended without a close.
    pub async fn finish_job(&self, id: &JobId) -> Result<JobState, JobError> {
        let row = sqlx::query(
            "UPDATE fasp_jobs SET closing = 1, updated_ms = $2 \
             WHERE id = $1 AND persistent = 1 AND state IN ('queued', 'running', 'paused') \
             RETURNING state",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("close a job"))?;
        match row {
            Some(row) => {
                self.raise_paths_signal();
                state_of(&row, id)
            }
            None => {
                let job = self.require(id).await?;
                if job.persistent && job.closing {
                    Ok(job.state)
                } else {
                    Err(refusal(&job))
                }
            }
        }
    }

    /// The paths of a persistent job whose sequence number is above `after` (0: all), in
    /// order, with their outcome when a worker recorded one.
    pub async fn paths(&self, id: &JobId, after: u64) -> Result<Vec<AddedPath>, JobError> {
        let rows = sqlx::query(
            "SELECT seq, source, destination, outcome FROM fasp_job_paths \
             WHERE job_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id.as_str())
        .bind(to_i64(after))
        .fetch_all(&self.pool)
        .await
        .map_err(JobError::db("read a job's paths"))?;
        rows.iter()
            .map(|r| {
                let read = |r: &AnyRow| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<i64, _>("seq")?,
                        r.try_get::<String, _>("source")?,
                        r.try_get::<String, _>("destination")?,
                        r.try_get::<Option<String>, _>("outcome")?,
                    ))
                };
                let (seq, source, destination, outcome) =
                    read(r).map_err(JobError::db("read a path"))?;
                let outcome = match outcome {
                    None => None,
                    Some(word) => {
                        Some(FileOutcome::parse(&word).ok_or_else(|| JobError::Corrupt {
                            id: id.to_string(),
                            reason: format!("path outcome {word:?}"),
                        })?)
                    }
                };
                Ok(AddedPath {
                    seq: to_u64(seq),
                    source,
                    destination,
                    outcome,
                })
            })
            .collect()
    }

    async fn require(&self, id: &JobId) -> Result<Job, JobError> {
        self.get(id)
            .await?
            .ok_or_else(|| JobError::NotFound { id: id.clone() })
    }

    // ----- worker side -----

    /// Claim the next job for `worker`: the queued job of highest priority (oldest first)
    /// whose backoff has passed, or a running or paused job whose lease expired (a rescue).
    /// Jobs whose host is in `skip_hosts` are left (admission control). The claim raises the
    /// job's epoch and leases it to `worker` for `lease`.
    pub async fn claim(
        &self,
        worker: &str,
        lease: Duration,
        skip_hosts: &[String],
    ) -> Result<Option<Claim>, JobError> {
        self.claim_excluding(worker, lease, skip_hosts, &[]).await
    }

    /// [`JobStore::claim`], leaving the jobs of `skip_jobs` too: a worker passes the jobs it
    /// is running, so that it never rescues its own job from itself when one of its
    /// heartbeats came late.
    pub async fn claim_excluding(
        &self,
        worker: &str,
        lease: Duration,
        skip_hosts: &[String],
        skip_jobs: &[JobId],
    ) -> Result<Option<Claim>, JobError> {
        let now = now_ms();
        let mut n = 3;
        let skip = skip_clause(&mut n, skip_hosts.len(), skip_jobs.len());
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Rescues first (a job already started, whose worker is gone), then the queue. Two
        // statements rather than one with an OR, so that each can use its index.
        let mut row = None;
        for which in [Which::Rescue, Which::Queued] {
            let sql = format!(
                "UPDATE fasp_jobs SET {CLAIM_SET} \
                 WHERE id = (SELECT id FROM fasp_jobs WHERE {}{skip} \
                   ORDER BY priority DESC, created_ms, id LIMIT 1{lock}) \
                 RETURNING {CLAIM_RETURNING}",
                which.condition("$3")
            );
            let mut query = sqlx::query(&sql)
                .bind(worker)
                .bind(now.saturating_add(ms(lease)))
                .bind(now);
            for h in skip_hosts {
                query = query.bind(h.as_str());
            }
            for j in skip_jobs {
                query = query.bind(j.as_str());
            }
            row = query
                .fetch_optional(&self.pool)
                .await
                .map_err(JobError::db("claim a job"))?;
            if row.is_some() {
                break;
            }
        }
        match row {
            Some(row) => self.claim_of(&row, worker).await,
            None => Ok(None),
        }
    }

    /// [`JobStore::claim_excluding`] under a cap of `host_cap` running (or paused) jobs per
    /// host across **all** the workers of the store: a job whose host already has that many
    /// jobs under a live lease is left. Claims for one host take that host's row of
    /// `fasp_host_slots` (an `UPDATE`, a row lock on PostgreSQL, the writer lock on SQLite)
    /// before counting, so two of them never both see room for one.
    pub async fn claim_with_host_cap(
        &self,
        worker: &str,
        lease: Duration,
        skip_hosts: &[String],
        skip_jobs: &[JobId],
        host_cap: u32,
    ) -> Result<Option<Claim>, JobError> {
        let mut skip_hosts = skip_hosts.to_vec();
        // Each round either claims, or finds the next candidate's host full (and skips it
        // from then on), or loses its candidate to another worker.
        for _ in 0..64 {
            let now = now_ms();
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(JobError::db("begin a claim"))?;
            if self.backend == Backend::Sqlite {
                // Take the writer lock first: a transaction that reads, then writes, could be
                // refused its write by a writer that came in between.
                sqlx::query("UPDATE fasp_host_slots SET claimed_ms = claimed_ms WHERE host = ''")
                    .execute(&mut *tx)
                    .await
                    .map_err(JobError::db("claim a job"))?;
            }
            let mut candidate = None;
            for which in [Which::Rescue, Which::Queued] {
                let mut n = 1;
                let skip = skip_clause(&mut n, skip_hosts.len(), skip_jobs.len());
                let sql = format!(
                    "SELECT id, host FROM fasp_jobs WHERE {}{skip} \
                     ORDER BY priority DESC, created_ms, id LIMIT 1",
                    which.condition("$1")
                );
                let mut query = sqlx::query(&sql).bind(now);
                for h in &skip_hosts {
                    query = query.bind(h.as_str());
                }
                for j in skip_jobs {
                    query = query.bind(j.as_str());
                }
                let row = query
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(JobError::db("find a job to claim"))?;
                if let Some(row) = row {
                    let id: String = row.try_get("id").map_err(JobError::db("read a job"))?;
                    let host: String = row.try_get("host").map_err(JobError::db("read a job"))?;
                    candidate = Some((id, host, which));
                    break;
                }
            }
            let Some((id, host, which)) = candidate else {
                return Ok(None);
            };
            sqlx::query(
                "INSERT INTO fasp_host_slots (host, claimed_ms) VALUES ($1, $2) \
                 ON CONFLICT (host) DO NOTHING",
            )
            .bind(host.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(JobError::db("add a host slot"))?;
            sqlx::query("UPDATE fasp_host_slots SET claimed_ms = $2 WHERE host = $1")
                .bind(host.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(JobError::db("lock a host slot"))?;
            // The time once the lock is held: what the count and the claim's times mean.
            let now = now_ms();
            let busy: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM fasp_jobs WHERE host = $1 \
                 AND state IN ('running', 'paused') AND lease_until_ms >= $2",
            )
            .bind(host.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(JobError::db("count a host's jobs"))?
            .try_get("n")
            .map_err(JobError::db("count a host's jobs"))?;
            if busy >= i64::from(host_cap) {
                skip_hosts.push(host);
                continue;
            }
            let sql = format!(
                "UPDATE fasp_jobs SET {CLAIM_SET} WHERE id = $4 AND {} RETURNING {CLAIM_RETURNING}",
                which.condition("$3")
            );
            let row = sqlx::query(&sql)
                .bind(worker)
                .bind(now.saturating_add(ms(lease)))
                .bind(now)
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(JobError::db("claim a job"))?;
            let Some(row) = row else {
                // Another worker claimed it first: look again.
                continue;
            };
            tx.commit().await.map_err(JobError::db("commit a claim"))?;
            return self.claim_of(&row, worker).await;
        }
        Ok(None)
    }

    /// The [`Claim`] of a row returned by a claim.
    async fn claim_of(&self, row: &AnyRow, worker: &str) -> Result<Option<Claim>, JobError> {
        let read = |row: &AnyRow| -> Result<_, sqlx::Error> {
            Ok((
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("epoch")?,
                row.try_get::<String, _>("payload")?,
                row.try_get::<String, _>("host")?,
                row.try_get::<String, _>("state")?,
                row.try_get::<i64, _>("claims")?,
                row.try_get::<i64, _>("failures")?,
                row.try_get::<i64, _>("max_attempts")?,
                row.try_get::<i64, _>("backoff_initial_ms")?,
                row.try_get::<i64, _>("backoff_max_ms")?,
                row.try_get::<Option<i64>, _>("target_rate_kbps")?,
                row.try_get::<Option<i64>, _>("min_rate_kbps")?,
            ))
        };
        let (id, epoch, payload, host, state, claims, failures, max, b0, b1, target, min) =
            read(row).map_err(JobError::db("read a claimed job"))?;
        let policy: Option<String> = row
            .try_get("rate_policy")
            .map_err(JobError::db("read a claimed job"))?;
        let persistent: i64 = row
            .try_get("persistent")
            .map_err(JobError::db("read a claimed job"))?;
        let lease = Lease {
            job_id: JobId(id.clone()),
            epoch,
            worker: worker.to_owned(),
        };
        let payload: JobPayload = match serde_json::from_str(&payload) {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("the stored job cannot be read: {e}");
                // A job nobody can run must not be claimed again and again.
                self.fail(&lease, &reason).await?;
                return Err(JobError::Corrupt { id, reason });
            }
        };
        tracing::info!(job = %lease.job_id, epoch, worker, claims, "job claimed");
        Ok(Some(Claim {
            lease,
            payload,
            host,
            paused: state == "paused",
            target_rate_kbps: target.map(to_u64),
            min_rate_kbps: min.map(to_u64),
            rate_policy: policy.as_deref().and_then(RatePolicy::parse),
            claims: to_u32(claims),
            failures: to_u32(failures),
            retry: Retry {
                max_attempts: to_u32(max).max(1),
                initial_backoff: Duration::from_millis(to_u64(b0)),
                max_backoff: Duration::from_millis(to_u64(b1)),
            },
            persistent: persistent != 0,
        }))
    }

    /// Renew the lease for `lease_for` and persist `progress`; returns what the job's owner
    /// asks of the worker. [`JobError::LeaseLost`] if the epoch moved on or the job ended.
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        lease_for: Duration,
        progress: &JobProgress,
    ) -> Result<Controls, JobError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE fasp_jobs SET lease_until_ms = $3, updated_ms = $4, bytes_done = $5, \
               bytes_expected = $6, files_done = $7, files_skipped = $8, files_failed = $9 \
             WHERE id = $1 AND epoch = $2 AND state IN ('running', 'paused') \
             RETURNING state, cancel_requested, target_rate_kbps, min_rate_kbps, rate_policy, \
               paths_added, closing",
        )
        .bind(lease.job_id.as_str())
        .bind(lease.epoch)
        .bind(now.saturating_add(ms(lease_for)))
        .bind(now)
        .bind(to_i64(progress.bytes_done))
        .bind(progress.bytes_expected.map(to_i64))
        .bind(to_i64(progress.files_done))
        .bind(to_i64(progress.files_skipped))
        .bind(to_i64(progress.files_failed))
        .fetch_optional(&self.pool)
        .await
        .map_err(JobError::db("heartbeat"))?;
        let Some(row) = row else {
            return Err(lost(lease));
        };
        let read = |row: &AnyRow| -> Result<Controls, sqlx::Error> {
            Ok(Controls {
                paused: row.try_get::<String, _>("state")? == "paused",
                cancel: row.try_get::<i64, _>("cancel_requested")? != 0,
                target_rate_kbps: row
                    .try_get::<Option<i64>, _>("target_rate_kbps")?
                    .map(to_u64),
                min_rate_kbps: row.try_get::<Option<i64>, _>("min_rate_kbps")?.map(to_u64),
                policy: row
                    .try_get::<Option<String>, _>("rate_policy")?
                    .as_deref()
                    .and_then(RatePolicy::parse),
                paths_added: to_u64(row.try_get("paths_added")?),
                closing: row.try_get::<i64, _>("closing")? != 0,
            })
        };
        read(&row).map_err(JobError::db("read controls"))
    }

    /// Begin a fenced transaction: the job's row is updated first (which takes its write
    /// lock), and only if the lease still holds.
    async fn fenced(
        &self,
        lease: &Lease,
        what: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, JobError> {
        let mut tx = self.pool.begin().await.map_err(JobError::db(what))?;
        let done = sqlx::query(
            "UPDATE fasp_jobs SET updated_ms = $3 \
             WHERE id = $1 AND epoch = $2 AND state IN ('running', 'paused')",
        )
        .bind(lease.job_id.as_str())
        .bind(lease.epoch)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(JobError::db(what))?;
        if done.rows_affected() != 1 {
            // Dropping the transaction rolls it back.
            return Err(lost(lease));
        }
        Ok(tx)
    }

    async fn upsert_files(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        lease: &Lease,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        let now = now_ms();
        for f in files {
            sqlx::query(
                "INSERT INTO fasp_job_files (job_id, path, outcome, bytes, size, code, \
                   description, epoch, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (job_id, path) DO UPDATE SET outcome = excluded.outcome, \
                   bytes = excluded.bytes, size = excluded.size, code = excluded.code, \
                   description = excluded.description, epoch = excluded.epoch, \
                   updated_ms = excluded.updated_ms",
            )
            .bind(lease.job_id.as_str())
            .bind(&f.path)
            .bind(f.outcome.as_str())
            .bind(to_i64(f.bytes))
            .bind(f.size.map(to_i64))
            .bind(f.code.map(to_i64))
            .bind(f.description.as_deref())
            .bind(lease.epoch)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(JobError::db("record a file result"))?;
            crate::failpoint::hit("in_files_tx");
        }
        Ok(())
    }

    /// Record per-file results, fenced by the lease.
    pub async fn record_files(&self, lease: &Lease, files: &[FileResult]) -> Result<(), JobError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut tx = self.fenced(lease, "record file results").await?;
        JobStore::upsert_files(&mut tx, lease, files).await?;
        tx.commit()
            .await
            .map_err(JobError::db("commit file results"))
    }

    /// Record how paths of a persistent job ended (by sequence number), fenced by the lease.
    pub async fn record_paths(
        &self,
        lease: &Lease,
        ended: &[(u64, FileOutcome)],
    ) -> Result<(), JobError> {
        if ended.is_empty() {
            return Ok(());
        }
        let mut tx = self.fenced(lease, "record path outcomes").await?;
        let now = now_ms();
        for (seq, outcome) in ended {
            sqlx::query(
                "UPDATE fasp_job_paths SET outcome = $3, epoch = $4, updated_ms = $5 \
                 WHERE job_id = $1 AND seq = $2",
            )
            .bind(lease.job_id.as_str())
            .bind(to_i64(*seq))
            .bind(outcome.as_str())
            .bind(lease.epoch)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(JobError::db("record a path outcome"))?;
        }
        tx.commit()
            .await
            .map_err(JobError::db("commit path outcomes"))
    }

    /// Record the job completed, with its last file results and progress, and its one
    /// completion record, in one transaction fenced by the lease.
    pub async fn complete(
        &self,
        lease: &Lease,
        files: &[FileResult],
        progress: &JobProgress,
    ) -> Result<(), JobError> {
        let mut tx = self.fenced(lease, "complete a job").await?;
        JobStore::upsert_files(&mut tx, lease, files).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE fasp_jobs SET state = 'completed', lease_owner = NULL, lease_until_ms = NULL, \
               finished_ms = $2, updated_ms = $2, bytes_done = $3, bytes_expected = $4, \
               files_done = $5, files_skipped = $6, files_failed = $7, last_error = NULL \
             WHERE id = $1",
        )
        .bind(lease.job_id.as_str())
        .bind(now)
        .bind(to_i64(progress.bytes_done))
        .bind(progress.bytes_expected.map(to_i64))
        .bind(to_i64(progress.files_done))
        .bind(to_i64(progress.files_skipped))
        .bind(to_i64(progress.files_failed))
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("complete a job"))?;
        crate::failpoint::hit("in_complete_tx");
        sqlx::query(
            "INSERT INTO fasp_job_completions (job_id, epoch, worker, completed_ms, bytes, \
               files_done) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(lease.job_id.as_str())
        .bind(lease.epoch)
        .bind(&lease.worker)
        .bind(now)
        .bind(to_i64(progress.bytes_done))
        .bind(to_i64(progress.files_done))
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("insert the completion record"))?;
        tx.commit()
            .await
            .map_err(JobError::db("commit completion"))?;
        crate::failpoint::hit("after_complete");
        tracing::info!(job = %lease.job_id, epoch = lease.epoch, "job completed");
        Ok(())
    }

    /// An attempt failed and another is allowed: back to `queued` (or `paused`, if it was),
    /// claimable after `backoff`. Fenced.
    pub async fn retry_later(
        &self,
        lease: &Lease,
        error: &str,
        backoff: Duration,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        let mut tx = self.fenced(lease, "schedule a retry").await?;
        JobStore::upsert_files(&mut tx, lease, files).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE fasp_jobs SET \
               state = CASE WHEN state = 'paused' THEN 'paused' ELSE 'queued' END, \
               lease_owner = NULL, lease_until_ms = NULL, failures = failures + 1, \
               run_after_ms = $2, last_error = $3, updated_ms = $4 WHERE id = $1",
        )
        .bind(lease.job_id.as_str())
        .bind(now.saturating_add(ms(backoff)))
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("schedule a retry"))?;
        tx.commit().await.map_err(JobError::db("commit retry"))?;
        tracing::warn!(job = %lease.job_id, ?backoff, error, "job attempt failed; retry scheduled");
        Ok(())
    }

    /// The job failed for good. Fenced.
    pub async fn fail(&self, lease: &Lease, error: &str) -> Result<(), JobError> {
        self.finish(lease, "failed", Some(error), &[]).await?;
        tracing::warn!(job = %lease.job_id, error, "job failed");
        Ok(())
    }

    /// Record the job failed for good, with its file results. Fenced.
    pub async fn fail_with_files(
        &self,
        lease: &Lease,
        error: &str,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        self.finish(lease, "failed", Some(error), files).await?;
        tracing::warn!(job = %lease.job_id, error, "job failed");
        Ok(())
    }

    /// The job was cancelled (as asked). Fenced.
    pub async fn mark_cancelled(
        &self,
        lease: &Lease,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        self.finish(lease, "cancelled", None, files).await?;
        tracing::info!(job = %lease.job_id, "job cancelled");
        Ok(())
    }

    async fn finish(
        &self,
        lease: &Lease,
        state: &'static str,
        error: Option<&str>,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        let mut tx = self.fenced(lease, "end a job").await?;
        JobStore::upsert_files(&mut tx, lease, files).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE fasp_jobs SET state = $2, lease_owner = NULL, lease_until_ms = NULL, \
               finished_ms = $3, updated_ms = $3, last_error = COALESCE($4, last_error), \
               failures = failures + $5 WHERE id = $1",
        )
        .bind(lease.job_id.as_str())
        .bind(state)
        .bind(now)
        .bind(error)
        .bind(i64::from(state == "failed"))
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("end a job"))?;
        tx.commit()
            .await
            .map_err(JobError::db("commit end of a job"))
    }

    /// Give the job back without counting a failure (a worker shutting down): `queued` (or
    /// `paused`), claimable at once. Fenced.
    pub async fn release(&self, lease: &Lease, files: &[FileResult]) -> Result<(), JobError> {
        let mut tx = self.fenced(lease, "release a job").await?;
        JobStore::upsert_files(&mut tx, lease, files).await?;
        sqlx::query(
            "UPDATE fasp_jobs SET \
               state = CASE WHEN state = 'paused' THEN 'paused' ELSE 'queued' END, \
               lease_owner = NULL, lease_until_ms = NULL, run_after_ms = $2, updated_ms = $2 \
             WHERE id = $1",
        )
        .bind(lease.job_id.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(JobError::db("release a job"))?;
        self.notify_work(&mut tx).await?;
        tx.commit().await.map_err(JobError::db("commit release"))?;
        self.raise_work_signal();
        Ok(())
    }

    /// End the jobs whose cancel was asked while a worker held them, once that worker's lease
    /// has expired (it died, or lost touch): they become `cancelled`, and their epoch is
    /// raised so that the old worker can record nothing. Returns how many.
    pub async fn sweep(&self) -> Result<u64, JobError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE fasp_jobs SET state = 'cancelled', epoch = epoch + 1, lease_owner = NULL, \
               lease_until_ms = NULL, finished_ms = $1, updated_ms = $1 \
             WHERE cancel_requested = 1 AND state IN ('running', 'paused') \
               AND lease_until_ms < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(JobError::db("sweep cancelled jobs"))?;
        Ok(done.rows_affected())
    }

    /// Jobs per state (for monitors and tests).
    pub async fn counts(&self) -> Result<Vec<(JobState, u64)>, JobError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM fasp_jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(JobError::db("count jobs"))?;
        let mut out = Vec::new();
        for r in &rows {
            let state: String = r.try_get("state").map_err(JobError::db("count jobs"))?;
            let n: i64 = r.try_get("n").map_err(JobError::db("count jobs"))?;
            if let Some(s) = JobState::parse(&state) {
                out.push((s, to_u64(n)));
            }
        }
        Ok(out)
    }
}

/// What a claim sets.
const CLAIM_SET: &str = "state = CASE WHEN state = 'paused' THEN 'paused' ELSE 'running' END, \
     epoch = epoch + 1, lease_owner = $1, lease_until_ms = $2, claims = claims + 1, \
     updated_ms = $3, started_ms = $3";

/// What a claim returns.
const CLAIM_RETURNING: &str = "id, epoch, kind, payload, host, state, claims, failures, \
     max_attempts, backoff_initial_ms, backoff_max_ms, target_rate_kbps, min_rate_kbps, \
     rate_policy, persistent";

/// The two kinds of claimable jobs.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// Running or paused, its lease expired (its worker is gone), no cancel asked.
    Rescue,
    /// Queued, its backoff passed.
    Queued,
}

impl Which {
    /// The condition, `now` being the placeholder of the current time.
    fn condition(self, now: &str) -> String {
        match self {
            Which::Rescue => format!(
                "state IN ('running', 'paused') AND lease_until_ms < {now} AND cancel_requested = 0"
            ),
            Which::Queued => format!("state = 'queued' AND run_after_ms <= {now}"),
        }
    }
}

/// ` AND host NOT IN ($..) AND id NOT IN ($..)` for `hosts` and `jobs` values, numbered after
/// `n` (which is advanced).
fn skip_clause(n: &mut usize, hosts: usize, jobs: usize) -> String {
    let mut marks = |count: usize| -> String {
        (0..count)
            .map(|_| {
                *n += 1;
                format!("${n}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut skip = String::new();
    if hosts > 0 {
        skip = format!(" AND host NOT IN ({})", marks(hosts));
    }
    if jobs > 0 {
        skip.push_str(&format!(" AND id NOT IN ({})", marks(jobs)));
    }
    skip
}

/// `sql` with the values of `filter`'s placeholders bound, in the order `list` numbers them.
fn bind_filter<'q>(
    sql: &'q str,
    filter: &'q ListFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for s in &filter.states {
        query = query.bind(s.as_str());
    }
    if let Some(tag) = &filter.tag {
        query = query.bind(tag.as_str());
    }
    query
}

fn lost(lease: &Lease) -> JobError {
    tracing::warn!(job = %lease.job_id, epoch = lease.epoch, "lease lost");
    JobError::LeaseLost {
        id: lease.job_id.clone(),
        epoch: lease.epoch,
    }
}

fn state_of(row: &AnyRow, id: &JobId) -> Result<JobState, JobError> {
    let state: String = row.try_get("state").map_err(JobError::db("read a state"))?;
    JobState::parse(&state).ok_or_else(|| JobError::Corrupt {
        id: id.to_string(),
        reason: format!("state {state:?}"),
    })
}

fn job_from_row(row: &AnyRow) -> Result<Job, JobError> {
    let read = |row: &AnyRow| -> Result<Job, sqlx::Error> {
        Ok(Job {
            id: JobId(row.try_get("id")?),
            state: JobState::Queued,
            kind: row.try_get("kind")?,
            host: row.try_get("host")?,
            priority: row.try_get("priority")?,
            tags: Vec::new(),
            idempotency_key: row.try_get("idempotency_key")?,
            claims: to_u32(row.try_get("claims")?),
            failures: to_u32(row.try_get("failures")?),
            max_attempts: to_u32(row.try_get("max_attempts")?),
            epoch: row.try_get("epoch")?,
            lease_owner: row.try_get("lease_owner")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            target_rate_kbps: row
                .try_get::<Option<i64>, _>("target_rate_kbps")?
                .map(to_u64),
            min_rate_kbps: row.try_get::<Option<i64>, _>("min_rate_kbps")?.map(to_u64),
            rate_policy: row
                .try_get::<Option<String>, _>("rate_policy")?
                .as_deref()
                .and_then(RatePolicy::parse),
            progress: JobProgress {
                bytes_done: to_u64(row.try_get("bytes_done")?),
                bytes_expected: row.try_get::<Option<i64>, _>("bytes_expected")?.map(to_u64),
                files_done: to_u64(row.try_get("files_done")?),
                files_skipped: to_u64(row.try_get("files_skipped")?),
                files_failed: to_u64(row.try_get("files_failed")?),
            },
            last_error: row.try_get("last_error")?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
            started_ms: row.try_get("started_ms")?,
            finished_ms: row.try_get("finished_ms")?,
            persistent: row.try_get::<i64, _>("persistent")? != 0,
            closing: row.try_get::<i64, _>("closing")? != 0,
            paths_added: to_u64(row.try_get("paths_added")?),
        })
    };
    let mut job = read(row).map_err(JobError::db("read a job"))?;
    let state: String = row.try_get("state").map_err(JobError::db("read a job"))?;
    job.state = JobState::parse(&state).ok_or_else(|| JobError::Corrupt {
        id: job.id.to_string(),
        reason: format!("state {state:?}"),
    })?;
    Ok(job)
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Create `path` empty, readable by its owner only (the store may hold file names, hosts,
/// and, if allowed, secrets).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
}

/// The payload to store for `job` and, for a persistent job, its first paths (the spec's,
/// taken out of it: a keepalive session gets its files from the worker).
fn persistent_payload(job: &NewJob) -> Result<(JobPayload, Vec<AddedPath>), JobError> {
    if !job.persistent {
        return Ok((job.payload.clone(), Vec::new()));
    }
    match &job.payload {
        JobPayload::Node(_) => Err(JobError::Invalid {
            reason: "a node job cannot be persistent: submit a transfer spec with keepalive \
                     (from the node's answer) instead"
                .into(),
        }),
        JobPayload::Spec { spec, secret_env } => {
            let mut spec = spec.clone();
            let Some(o) = spec.as_object_mut() else {
                return Err(JobError::Invalid {
                    reason: "the spec is not a JSON object".into(),
                });
            };
            o.insert("keepalive".into(), serde_json::Value::Bool(true));
            let mut paths = Vec::new();
            if let Some(listed) = o.remove("paths") {
                for p in listed.as_array().into_iter().flatten() {
                    let text = |key: &str| {
                        p.get(key)
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let path = AddedPath::new(text("source"), text("destination"));
                    if path.source.is_empty() {
                        return Err(JobError::Invalid {
                            reason: format!("a path of the spec has no source: {p}"),
                        });
                    }
                    paths.push(path);
                }
            }
            Ok((
                JobPayload::Spec {
                    spec,
                    secret_env: secret_env.clone(),
                },
                paths,
            ))
        }
    }
}

/// Insert `paths` for job `id`, numbered from `after + 1`.
async fn insert_paths(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &JobId,
    after: i64,
    paths: &[AddedPath],
    now: i64,
) -> Result<(), JobError> {
    for (i, p) in paths.iter().enumerate() {
        let seq = after
            .saturating_add(i64::try_from(i).unwrap_or(i64::MAX))
            .saturating_add(1);
        sqlx::query(
            "INSERT INTO fasp_job_paths (job_id, seq, source, destination, created_ms, \
               updated_ms) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_str())
        .bind(seq)
        .bind(&p.source)
        .bind(&p.destination)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(JobError::db("insert a path"))?;
    }
    Ok(())
}

/// Why `job` takes no paths, and what to do.
fn refusal(job: &Job) -> JobError {
    let reason = if !job.persistent {
        "it is not persistent (add paths only to a job submitted with a keepalive spec, \
         `fasp jobs add --persistent`): submit another job with these paths"
            .to_owned()
    } else if job.state.is_terminal() {
        format!("it is {}: submit another job with these paths", job.state)
    } else {
        "its close was asked (it completes once its paths are done): submit another job \
         with these paths"
            .to_owned()
    };
    JobError::NotAccepting {
        id: job.id.clone(),
        reason,
    }
}
