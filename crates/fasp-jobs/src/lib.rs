//! # fasp-jobs
//!
//! Durable IBM Aspera `ascp` transfer jobs on top of [`fasp_manager`]: a queue that survives
//! crashes, kept in **SQLite** (one file, nothing to install: the embedded default) or in
//! **PostgreSQL** (shared by any number of workers on any number of machines), with one schema
//! and one code path for both (sqlx's `Any` driver, migrations embedded and run at open).
//!
//! * A job is a transfer spec, or a node API setup request whose spec (and so token) is
//!   fetched each time the job starts; with retries and backoff, rates, a priority, tags and
//!   an idempotency key ([`NewJob`]). States: queued, running, paused, completed, failed,
//!   cancelled ([`JobState`]). Per-file results ([`FileResult`]) and progress are persisted
//!   at the heartbeat's pace, never per `STATS`.
//! * [`JobStore`]: submit (an idempotency key already used returns the first job), get,
//!   list (by state, by tag), cancel, pause, resume, set the rate. Requests on a running job
//!   are picked up by its worker at its next heartbeat.
//! * Persistent jobs ([`NewJob::persistent`], or a spec with `keepalive`): one keepalive ascp
//!   session fed paths while the job lives ([`JobStore::add_paths`], idempotent with a request
//!   key), each kept in the store until its worker records it done, so that a path added
//!   while the job is queued or its worker is dead is sent by the next run; closed by
//!   [`JobStore::finish_job`], then `completed` once every path is done.
//! * [`Worker`]: claims jobs (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single atomic
//!   `UPDATE ... RETURNING` on SQLite), each claim raising the job's **epoch**; holds a
//!   **lease** renewed by heartbeat; every write it makes names the epoch and is refused once
//!   another claim raised it ([`JobError::LeaseLost`]), so a worker that lost its job can record
//!   nothing; rescues jobs whose lease expired (their worker died) and resumes them with
//!   ascp's resume (`-k 2` unless the spec says otherwise), byte-exact; records the outcome
//!   and the job's one completion record in one transaction. Admission control: a cap of
//!   concurrent ascp per worker and per remote host, a stagger between starts on a host, and
//!   optionally a cap per remote host across all the workers of the store. An idle worker
//!   claims a job the moment it becomes claimable (submitted, resumed, released) through its
//!   own store or a clone of it, and on PostgreSQL through any process's (`NOTIFY
//!   fasp_jobs`, a listener per worker); otherwise at its next poll, which stays the safety
//!   net.
//!
//! Guarantees (details in `docs/jobs.md` of the repository): execution is **at least
//! once** (a worker that dies mid-transfer leaves the job to be resumed by another);
//! the completion record is **exactly once** (a primary key, written under the lease's
//! fence); secrets are not stored unless the submitter allows it (a spec's token or password
//! is named by an environment variable of the worker; a node password always is).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fasp_jobs::{JobStore, NewJob, Worker, WorkerConfig};
//! use fasp_manager::Manager;
//! use fasp_spec::TransferSpec;
//!
//! let store = JobStore::open("jobs.db").await?; // or "postgres://user@db/fasp"
//! let spec = TransferSpec::builder()
//!     .upload()
//!     .host("ats.example.com")
//!     .user("xfer")
//!     .source("/data/report.pdf")
//!     .destination_root("/incoming")
//!     .build()?;
//! let job = NewJob::transfer(&spec)
//!     .secret_from_env("token", "ASPERA_TOKEN")
//!     .idempotency_key("report-2026-11-27")
//!     .tag("reports");
//! let submitted = store.submit(&job).await?;
//!
//! let worker = Worker::new(store.clone(), Manager::new(), WorkerConfig::default());
//! worker.run(std::future::pending()).await?; // until the process is stopped
//! println!("{:?}", store.get(&submitted.id).await?.map(|j| j.state));
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

// The README's example, compiled as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod failpoint;
mod model;
mod store;
mod worker;

pub use error::JobError;
pub use model::{
    AddedPath, Claim, Completion, Controls, FileOutcome, FileResult, Job, JobId, JobPayload,
    JobProgress, JobState, Lease, ListFilter, NewJob, NodeDirection, NodeRequest, PathsAdded,
    Retry, SECRET_KEYS, Submitted,
};
pub use store::{Backend, JobStore};
pub use worker::{JobEvent, Worker, WorkerConfig};
