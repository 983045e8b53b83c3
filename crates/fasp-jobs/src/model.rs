//! The job model: what is submitted, what is stored, what a worker holds.

use std::fmt;
use std::time::Duration;

use fasp_spec::{RatePolicy, TransferSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::JobError;

/// A job's id: 32 hexadecimal digits drawn at random when it is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub(crate) String);

impl JobId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id.
    pub(crate) fn random() -> Result<JobId, JobError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| JobError::Invalid {
            reason: format!("cannot draw a random job id: {e}"),
        })?;
        Ok(JobId(hex::encode(bytes)))
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> JobId {
        JobId(s.to_owned())
    }
}

impl From<String> for JobId {
    fn from(s: String) -> JobId {
        JobId(s)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a worker (or for its retry backoff to pass).
    Queued,
    /// A worker holds it and runs ascp.
    Running,
    /// Paused: a queued job is not claimed until resumed; a running one keeps its worker and
    /// its ascp, at rate 0.
    Paused,
    /// Done, with one completion record.
    Completed,
    /// Failed for good (a permanent error, or no attempt left).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Every state, in order.
    pub const ALL: &'static [JobState] = &[
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The word stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named by `word`.
    pub fn parse(word: &str) -> Option<JobState> {
        JobState::ALL.iter().copied().find(|s| s.as_str() == word)
    }

    /// Completed, failed or cancelled: nothing will change it any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The spec keys that hold secrets (`fasp_spec::Secret` fields).
pub const SECRET_KEYS: &[&str] = &[
    "token",
    "remote_password",
    "ssh_private_key",
    "ssh_private_key_passphrase",
    "cookie",
    "proxy",
    "content_protection_password",
];

/// What a job transfers.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobPayload {
    /// A transfer spec, run as it is.
    Spec {
        /// The spec as JSON (secrets removed, unless the submitter allowed them).
        spec: Value,
        /// Secrets to fill in when the job starts: spec key → name of an environment variable
        /// of the worker.
        #[serde(default)]
        secret_env: Vec<(String, String)>,
    },
    /// A node API setup request: the worker asks the node for a spec (and so a fresh token)
    /// each time the job starts.
    Node(NodeRequest),
}

impl fmt::Debug for JobPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobPayload::Spec { spec, secret_env } => {
                let mut keys: Vec<&str> = spec
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                keys.retain(|k| !SECRET_KEYS.contains(k));
                f.debug_struct("Spec")
                    .field("keys", &keys)
                    .field("secret_env", secret_env)
                    .finish()
            }
            JobPayload::Node(n) => f.debug_tuple("Node").field(n).finish(),
        }
    }
}

/// Which way a node job moves files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeDirection {
    /// `upload_setup`, then `sources` are sent.
    Upload,
    /// `download_setup`, then the files land in `destination`.
    Download,
}

/// A node API setup request kept in a job. The node password is never stored: only the name
/// of the worker's environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeRequest {
    /// The node API URL (`https://node:9092`).
    pub url: String,
    /// The node API user (or access key id).
    pub user: String,
    /// The environment variable of the worker that holds the node password.
    pub password_env: String,
    /// Upload or download.
    pub direction: NodeDirection,
    /// The `transfer_request` object (`paths` and the other members), as JSON.
    pub request: Value,
    /// Upload: the local sources.
    pub sources: Vec<String>,
    /// Download: the local destination folder.
    pub destination: Option<String>,
    /// Accept a node certificate that does not verify (test nodes only).
    #[serde(default)]
    pub insecure: bool,
    /// CA certificates (PEM files on the worker's machine) to trust for the node, beside the
    /// usual roots.
    #[serde(default)]
    pub cacert: Vec<String>,
    /// How long to wait for the node's answer, in milliseconds (`None`: the node client's
    /// default).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl NodeRequest {
    /// An upload of `sources` through the node at `url`, into `destination` on the node.
    pub fn upload(
        url: impl Into<String>,
        user: impl Into<String>,
        password_env: impl Into<String>,
        destination: impl Into<String>,
        sources: impl IntoIterator<Item = impl Into<String>>,
    ) -> NodeRequest {
        NodeRequest {
            url: url.into(),
            user: user.into(),
            password_env: password_env.into(),
            direction: NodeDirection::Upload,
            request: serde_json::json!({"paths": [{"destination": destination.into()}]}),
            sources: sources.into_iter().map(Into::into).collect(),
            destination: None,
            insecure: false,
            cacert: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A download of `sources` from the node at `url` into the local folder `destination`.
    pub fn download(
        url: impl Into<String>,
        user: impl Into<String>,
        password_env: impl Into<String>,
        sources: impl IntoIterator<Item = impl Into<String>>,
        destination: impl Into<String>,
    ) -> NodeRequest {
        let paths: Vec<Value> = sources
            .into_iter()
            .map(|s| serde_json::json!({"source": s.into()}))
            .collect();
        NodeRequest {
            url: url.into(),
            user: user.into(),
            password_env: password_env.into(),
            direction: NodeDirection::Download,
            request: serde_json::json!({ "paths": paths }),
            sources: Vec::new(),
            destination: Some(destination.into()),
            insecure: false,
            cacert: Vec::new(),
            timeout_ms: None,
        }
    }
}

/// How failed attempts are retried: up to `max_attempts` attempts in all, waiting
/// `initial_backoff`, doubled each time up to `max_backoff`, between them. Only failures
/// ascp calls transient are retried (and, for node jobs, authentication failures: the retry
/// gets a fresh token). A worker that dies is not a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// Up to `n` attempts, with the default waits.
    pub fn attempts(n: u32) -> Retry {
        Retry {
            max_attempts: n.max(1),
            ..Retry::default()
        }
    }

    /// With these waits.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Retry {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The wait after `failures` failed attempts (1, 2, ...).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// A job to submit: built with [`NewJob::transfer`] or [`NewJob::node`], then options.
#[derive(Debug, Clone)]
#[must_use]
pub struct NewJob {
    pub(crate) payload: JobPayload,
    pub(crate) host: String,
    pub(crate) priority: i64,
    pub(crate) tags: Vec<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) retry: Retry,
    pub(crate) target_rate_kbps: Option<u64>,
    pub(crate) min_rate_kbps: Option<u64>,
    pub(crate) rate_policy: Option<RatePolicy>,
    pub(crate) store_secrets: bool,
    pub(crate) secret_in_spec: Option<String>,
    pub(crate) persistent: bool,
}

impl NewJob {
    /// A job that runs `spec`. Its secrets (token, passwords...) are not stored: the submit
    /// fails with [`JobError::SecretInSpec`] unless each is removed and named with
    /// [`NewJob::secret_from_env`], or [`NewJob::store_secrets`] allows them.
    pub fn transfer(spec: &TransferSpec) -> NewJob {
        let value = spec.to_json_value();
        let host = spec.remote_host.clone().unwrap_or_default();
        let secret_in_spec = value.as_object().and_then(|o| {
            SECRET_KEYS
                .iter()
                .find(|k| o.contains_key(**k))
                .map(|k| (*k).to_owned())
        });
        NewJob {
            payload: JobPayload::Spec {
                spec: value,
                secret_env: Vec::new(),
            },
            host,
            priority: 0,
            tags: Vec::new(),
            idempotency_key: None,
            retry: Retry::default(),
            target_rate_kbps: spec.target_rate_kbps,
            min_rate_kbps: spec.min_rate_kbps,
            rate_policy: spec.rate_policy,
            store_secrets: false,
            secret_in_spec,
            persistent: spec.keepalive == Some(true),
        }
    }

    /// A job that asks a node for its spec when it starts.
    pub fn node(request: NodeRequest) -> NewJob {
        let host = node_host(&request.url);
        NewJob {
            payload: JobPayload::Node(request),
            host,
            priority: 0,
            tags: Vec::new(),
            idempotency_key: None,
            retry: Retry::default(),
            target_rate_kbps: None,
            min_rate_kbps: None,
            rate_policy: None,
            store_secrets: false,
            secret_in_spec: None,
            persistent: false,
        }
    }

    /// Fill the spec key `key` (one of [`SECRET_KEYS`]) from the worker's environment variable
    /// `env_var` when the job starts; the value the spec holds, if any, is not stored.
    pub fn secret_from_env(mut self, key: impl Into<String>, env_var: impl Into<String>) -> Self {
        let key = key.into();
        if let JobPayload::Spec { spec, secret_env } = &mut self.payload {
            if let Some(o) = spec.as_object_mut() {
                o.remove(&key);
            }
            secret_env.push((key, env_var.into()));
            self.secret_in_spec = spec.as_object().and_then(|o| {
                SECRET_KEYS
                    .iter()
                    .find(|k| o.contains_key(**k))
                    .map(|k| (*k).to_owned())
            });
        }
        self
    }

    /// Store the spec's secrets in the database as they are. Anyone who can read the database
    /// (its file, its backups) can then read them: prefer [`NewJob::secret_from_env`].
    pub fn store_secrets(mut self, allow: bool) -> Self {
        self.store_secrets = allow;
        self
    }

    /// A persistent job (the default for a spec with `keepalive`): one persistent ascp session
    /// that waits for paths, added while the job lives with
    /// [`JobStore::add_paths`](crate::JobStore::add_paths) and kept in the store until done,
    /// and ended by [`JobStore::finish_job`](crate::JobStore::finish_job) once every path is done. The
    /// spec's own paths are its first paths. Only spec jobs can be persistent (the submit of
    /// a persistent node job is refused).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        if let JobPayload::Spec { spec, .. } = &mut self.payload {
            if let Some(o) = spec.as_object_mut() {
                if persistent {
                    o.insert("keepalive".into(), Value::Bool(true));
                } else {
                    o.remove("keepalive");
                }
            }
        }
        self
    }

    /// Higher runs first (default 0).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Add a tag (for [`ListFilter::tag`]).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// A second submission with the same key returns the first job instead of adding one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Target and minimum rates (Kbps), applied when the job starts and changeable while it
    /// runs with [`JobStore::set_rate`](crate::JobStore::set_rate).
    pub fn rates(mut self, target_kbps: u64, min_kbps: u64) -> Self {
        self.target_rate_kbps = Some(target_kbps);
        self.min_rate_kbps = Some(min_kbps);
        self
    }

    /// The rate policy, applied when the job starts and changeable while it runs with
    /// [`JobStore::set_policy`](crate::JobStore::set_policy).
    pub fn policy(mut self, policy: RatePolicy) -> Self {
        self.rate_policy = Some(policy);
        self
    }

    /// The admission control key: the remote host (default: the spec's `remote_host`, or the
    /// node URL's host).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
}

/// The host part of a URL (`https://user@node:9092/x` → `node`).
fn node_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default().to_owned();
    }
    host_port.split(':').next().unwrap_or_default().to_owned()
}

/// What a submit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The job.
    pub id: JobId,
    /// False when the idempotency key named a job submitted before (returned instead).
    pub created: bool,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Where it is.
    pub state: JobState,
    /// `spec` or `node`.
    pub kind: String,
    /// The admission control key.
    pub host: String,
    /// Higher runs first.
    pub priority: i64,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Times a worker claimed it (first run, retries, rescues).
    pub claims: u32,
    /// Failed attempts.
    pub failures: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The current lease epoch (raised by every claim).
    pub epoch: i64,
    /// The worker that holds it, if any.
    pub lease_owner: Option<String>,
    /// A cancel was asked and the worker has not yet acted on it.
    pub cancel_requested: bool,
    /// Target rate (Kbps), if set.
    pub target_rate_kbps: Option<u64>,
    /// Minimum rate (Kbps), if set.
    pub min_rate_kbps: Option<u64>,
    /// Rate policy, if set.
    pub rate_policy: Option<RatePolicy>,
    /// Progress as last persisted.
    pub progress: JobProgress,
    /// The last failure.
    pub last_error: Option<String>,
    /// Submitted (ms since the Unix epoch).
    pub created_ms: i64,
    /// Last changed (ms since the Unix epoch).
    pub updated_ms: i64,
    /// Last claimed (ms since the Unix epoch).
    pub started_ms: Option<i64>,
    /// Ended (ms since the Unix epoch).
    pub finished_ms: Option<i64>,
    /// A persistent job: paths are added while it lives ([`NewJob::persistent`]).
    pub persistent: bool,
    /// A persistent job whose close was asked: it takes no more paths, and completes once
    /// every path is done.
    pub closing: bool,
    /// Paths added to a persistent job so far (its spec's included).
    pub paths_added: u64,
}

/// Progress as persisted by the worker (at a bounded rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JobProgress {
    /// Bytes written.
    pub bytes_done: u64,
    /// Bytes to write, when known.
    pub bytes_expected: Option<u64>,
    /// Files done.
    pub files_done: u64,
    /// Files skipped.
    pub files_skipped: u64,
    /// Files failed.
    pub files_failed: u64,
}

impl JobProgress {
    /// Progress with these figures.
    pub fn new(
        bytes_done: u64,
        bytes_expected: Option<u64>,
        files_done: u64,
        files_skipped: u64,
        files_failed: u64,
    ) -> JobProgress {
        JobProgress {
            bytes_done,
            bytes_expected,
            files_done,
            files_skipped,
            files_failed,
        }
    }
}

/// How a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Transferred.
    Done,
    /// Left alone (already there, overwrite policy).
    Skipped,
    /// Failed.
    Failed,
}

impl FileOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileOutcome::Done => "done",
            FileOutcome::Skipped => "skipped",
            FileOutcome::Failed => "failed",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<FileOutcome> {
        match word {
            "done" => Some(FileOutcome::Done),
            "skipped" => Some(FileOutcome::Skipped),
            "failed" => Some(FileOutcome::Failed),
            _ => None,
        }
    }
}

/// One file's result (the latest, across attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileResult {
    /// The file, as ascp reported it.
    pub path: String,
    /// How it ended.
    pub outcome: FileOutcome,
    /// Bytes written.
    pub bytes: u64,
    /// Its size, if known.
    pub size: Option<u64>,
    /// The FASP code of a failure.
    pub code: Option<u64>,
    /// ascp's description of a failure.
    pub description: Option<String>,
}

impl FileResult {
    /// A result.
    pub fn new(path: impl Into<String>, outcome: FileOutcome, bytes: u64) -> FileResult {
        FileResult {
            path: path.into(),
            outcome,
            bytes,
            size: None,
            code: None,
            description: None,
        }
    }
}

/// The completion record of a job (there is at most one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completion {
    /// The job.
    pub job_id: JobId,
    /// The epoch of the lease under which it completed.
    pub epoch: i64,
    /// The worker that completed it.
    pub worker: String,
    /// When (ms since the Unix epoch).
    pub completed_ms: i64,
    /// Bytes written (all attempts).
    pub bytes: u64,
    /// Files done.
    pub files_done: u64,
}

/// Which jobs [`JobStore::list`](crate::JobStore::list) returns.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ListFilter {
    pub(crate) states: Vec<JobState>,
    pub(crate) tag: Option<String>,
    pub(crate) limit: Option<u32>,
}

impl ListFilter {
    /// Every job.
    pub fn all() -> ListFilter {
        ListFilter::default()
    }

    /// Only jobs in this state (several calls: any of them).
    pub fn state(mut self, state: JobState) -> Self {
        self.states.push(state);
        self
    }

    /// Only jobs with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// At most `n` jobs.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A worker's hold on a job: every write it makes names the epoch, and is refused once another
/// claim raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The epoch of this claim.
    pub epoch: i64,
    /// The worker.
    pub worker: String,
}

/// A claimed job: the lease and what to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claim {
    /// The lease.
    pub lease: Lease,
    /// What to transfer.
    pub payload: JobPayload,
    /// The admission control key.
    pub host: String,
    /// The job is paused: start ascp paused.
    pub paused: bool,
    /// Target rate (Kbps).
    pub target_rate_kbps: Option<u64>,
    /// Minimum rate (Kbps).
    pub min_rate_kbps: Option<u64>,
    /// Rate policy.
    pub rate_policy: Option<RatePolicy>,
    /// Claims so far, this one included.
    pub claims: u32,
    /// Failed attempts so far.
    pub failures: u32,
    /// The retry policy.
    pub retry: Retry,
    /// A persistent job: the spec runs a keepalive session, and the worker adds the job's
    /// paths ([`JobStore::paths`](crate::JobStore::paths)).
    pub persistent: bool,
}

/// What the store asks of the worker that holds a job, read at each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Controls {
    /// Paused (true) or running.
    pub paused: bool,
    /// Cancel asked.
    pub cancel: bool,
    /// Target rate (Kbps).
    pub target_rate_kbps: Option<u64>,
    /// Minimum rate (Kbps).
    pub min_rate_kbps: Option<u64>,
    /// Rate policy.
    pub policy: Option<RatePolicy>,
    /// A persistent job: the sequence number of the last path added.
    pub paths_added: u64,
    /// A persistent job: close asked (no more paths will come).
    pub closing: bool,
}

/// A path of a persistent job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddedPath {
    /// Its sequence number in the job (1, 2, ...: the order of addition).
    pub seq: u64,
    /// The source.
    pub source: String,
    /// The destination (relative to the spec's destination root, or absolute).
    pub destination: String,
    /// How it ended, once a worker saw it end (`Done` or `Failed`); `None` before.
    pub outcome: Option<FileOutcome>,
}

impl AddedPath {
    /// A path to add: `source` to `destination` (empty: the source's file name, in the spec's
    /// destination root).
    pub fn new(source: impl Into<String>, destination: impl Into<String>) -> AddedPath {
        AddedPath {
            seq: 0,
            source: source.into(),
            destination: destination.into(),
            outcome: None,
        }
    }
}

/// What [`JobStore::add_paths`](crate::JobStore::add_paths) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathsAdded {
    /// Paths added by this request (0 when its key names a request applied before).
    pub added: u64,
    /// The job's paths now, in all.
    pub total: u64,
    /// False when the request key names a request applied before (nothing was done again).
    pub applied: bool,
    /// The job is closing (this request or an earlier one asked it).
    pub closing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_node_urls() {
        assert_eq!(
            node_host("https://node.example.com:9092"),
            "node.example.com"
        );
        assert_eq!(node_host("http://u:p@127.0.0.1:1234/x"), "127.0.0.1");
        assert_eq!(node_host("https://[::1]:9092/"), "::1");
        assert_eq!(node_host("node"), "node");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r =
            Retry::attempts(6).with_backoff(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (1..=5).map(|n| r.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(r.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    #[test]
    fn secrets_are_found_and_removed() {
        let spec = TransferSpec::builder()
            .upload()
            .host("h")
            .user("u")
            .token("ATM3_secret")
            .source("/a")
            .destination_root("/in")
            .build()
            .unwrap();
        let job = NewJob::transfer(&spec);
        assert_eq!(job.secret_in_spec.as_deref(), Some("token"));
        let job = job.secret_from_env("token", "MY_TOKEN");
        assert_eq!(job.secret_in_spec, None);
        let shown = format!("{:?}", job.payload);
        assert!(!shown.contains("ATM3_secret"), "{shown}");
    }
}
