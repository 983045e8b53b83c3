//! [`Worker`]: claims jobs, runs them through fasp-manager, keeps their leases alive, persists
//! their progress at a bounded rate and records their outcome, fenced by the lease's epoch.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use fasp_manager::{DoneOperation, Event, EventKind, Manager, TransferError, TransferOptions};
use fasp_spec::{ResumePolicy, TransferSpec};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::JobError;
use crate::model::{
    Claim, Controls, FileOutcome, FileResult, JobId, JobPayload, JobProgress, NodeDirection,
    NodeRequest,
};
use crate::store::JobStore;

/// The FASP code of an authentication failure: for a node job, the token may have expired,
/// and the retry fetches a fresh one.
const AUTH_FAILED: u64 = 19;

/// Settings of a [`Worker`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// This worker's name in leases (default: host name, pid and a random suffix). Two live
    /// workers must never share one.
    pub id: String,
    /// Jobs (ascp processes) at once on this worker. Default 4.
    pub max_concurrent: usize,
    /// Jobs at once per remote host on this worker. Default 2.
    pub per_host: usize,
    /// Least time between two starts on one host. Default 1 s.
    pub stagger: Duration,
    /// Jobs at once per remote host across **all** the workers of the store (`None`: no such
    /// cap, the default). Enforced at the claim, exactly on both backends (see
    /// [`JobStore::claim_with_host_cap`]).
    pub global_per_host: Option<u32>,
    /// How long a lease lasts without a heartbeat. Default 30 s.
    pub lease: Duration,
    /// Heartbeat interval, which is also the interval at which progress and file results are
    /// persisted (never more often). Default 2 s; keep it well under `lease`.
    pub heartbeat: Duration,
    /// How often to look for work when idle. Default 500 ms. A job submitted, resumed or
    /// released through this worker's store (or a clone of it), or on PostgreSQL through any
    /// store of the database, wakes the worker sooner; the poll is the safety net (and what
    /// finds jobs submitted by another process on SQLite).
    pub poll: Duration,
    /// Options of every transfer (environment passed on to ascp, timeouts...). The retry
    /// policy is the job's own: these options' is replaced by a single attempt.
    pub transfer: TransferOptions,
    /// Secrets this worker knows by name, looked up before its environment when a job
    /// names a secret ([`NewJob::secret_from_env`](crate::NewJob::secret_from_env), a node
    /// password): for secrets read from a file or a vault at start-up rather than from the
    /// environment. Never stored, never logged (`Debug` shows `<redacted>`).
    pub secrets: Vec<(String, fasp_spec::Secret)>,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            id: default_worker_id(),
            max_concurrent: 4,
            per_host: 2,
            stagger: Duration::from_secs(1),
            global_per_host: None,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_millis(500),
            transfer: TransferOptions::default(),
            secrets: Vec::new(),
        }
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    format!("{host}-{}-{}", std::process::id(), hex::encode(b))
}

impl WorkerConfig {
    /// The name of this worker in leases.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Jobs at once on this worker (at least 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// Jobs at once per remote host (at least 1).
    pub fn per_host(mut self, n: usize) -> Self {
        self.per_host = n.max(1);
        self
    }

    /// Least time between two starts on one host.
    pub fn stagger(mut self, d: Duration) -> Self {
        self.stagger = d;
        self
    }

    /// Jobs at once per remote host across all the workers of the store (at least 1).
    pub fn global_per_host(mut self, n: u32) -> Self {
        self.global_per_host = Some(n.max(1));
        self
    }

    /// Lease duration and heartbeat interval (the heartbeat is kept under a third of the
    /// lease).
    pub fn lease(mut self, lease: Duration, heartbeat: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = heartbeat.min(lease / 3).max(Duration::from_millis(10));
        self
    }

    /// Idle polling interval.
    pub fn poll(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(5));
        self
    }

    /// Options of every transfer.
    pub fn transfer_options(mut self, options: TransferOptions) -> Self {
        self.transfer = options;
        self
    }

    /// Know the secret `name` (looked up before the environment variable of that name).
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<fasp_spec::Secret>) -> Self {
        self.secrets.push((name.into(), value.into()));
        self
    }

    /// The secret `name`: a known one, else the environment variable.
    fn lookup(&self, name: &str) -> Option<String> {
        self.secrets
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose().to_owned())
            .or_else(|| std::env::var(name).ok())
    }
}

/// Runs jobs of a [`JobStore`]: claims them (lease and epoch), heartbeats, runs them through a
/// [`Manager`], applies the pause, resume, rate and cancel requests found at each heartbeat,
/// persists progress and per-file results at the heartbeat's pace, and records the outcome,
/// every write fenced by the lease. A lease found lost stops the transfer and records
/// nothing. Failed attempts are retried with backoff by the store (resume policy
/// `sparse_csum` unless the spec sets one, so a retry or a rescue resumes the files).
///
/// Admission control: at most [`WorkerConfig::max_concurrent`] jobs, at most
/// [`WorkerConfig::per_host`] per remote host, and starts on one host at least
/// [`WorkerConfig::stagger`] apart.
#[derive(Debug)]
pub struct Worker {
    store: JobStore,
    manager: Manager,
    config: WorkerConfig,
    events: broadcast::Sender<JobEvent>,
}

/// An event of a job's transfer on this worker (see [`Worker::subscribe`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobEvent {
    /// The job.
    pub job_id: JobId,
    /// The epoch of the lease under which it runs here.
    pub epoch: i64,
    /// fasp-manager's event.
    pub event: Event,
}

/// Events kept for a subscriber that is behind; past that it gets `Lagged` and misses some.
const EVENT_BUFFER: usize = 4096;

impl Worker {
    /// A worker of `store` that starts ascp through `manager`.
    pub fn new(store: JobStore, manager: Manager, config: WorkerConfig) -> Worker {
        let config = crate::failpoint::timing(config);
        Worker {
            store,
            manager,
            config,
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// The typed events of every transfer this worker runs from now on, each with its job
    /// (a monitor's feed; call it before [`Worker::run`]). Delivery never slows a transfer: a
    /// subscriber more than 4,096 events behind gets
    /// [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) and skips
    /// ahead. The stream ends when the worker stops.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Run until `shutdown` completes; then stop the running transfers, give their jobs back
    /// (`queued`, claimable at once, no failure counted) and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), JobError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut per_host: HashMap<String, usize> = HashMap::new();
        // The jobs this worker runs and their hosts, by task: never claimed again while they
        // run here.
        let mut running: HashMap<tokio::task::Id, (JobId, String)> = HashMap::new();
        let mut last_start: HashMap<String, Instant> = HashMap::new();
        let mut last_sweep: Option<Instant> = None;
        // Woken when a job becomes claimable through this process's store, or (PostgreSQL)
        // through any process's, by its listener; the poll stays as the safety net. Taken
        // before the first claim, so that nothing submitted after that claim goes unseen.
        let mut work = self.store.work_signal();
        let mut work_open = true;
        let listener = AbortOnDrop(tokio::spawn(self.store.clone().listen_for_work()));
        tokio::pin!(shutdown);
        tracing::info!(worker = %self.config.id, "worker started");
        loop {
            while let Some(done) = tasks.try_join_next_with_id() {
                ended(done, &mut per_host, &mut running);
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= self.config.lease / 2) {
                last_sweep = Some(Instant::now());
                if let Err(e) = self.store.sweep().await {
                    tracing::warn!(error = %e, "cannot sweep cancelled jobs");
                }
            }
            let mut claimed_any = false;
            while tasks.len() < self.config.max_concurrent {
                let mine: Vec<JobId> = running.values().map(|(j, _)| j.clone()).collect();
                let now = Instant::now();
                let skip: Vec<String> = per_host
                    .iter()
                    .filter(|(_, n)| **n >= self.config.per_host)
                    .map(|(h, _)| h.clone())
                    .chain(
                        last_start
                            .iter()
                            .filter(|(_, t)| now.duration_since(**t) < self.config.stagger)
                            .map(|(h, _)| h.clone()),
                    )
                    .collect();
                let claimed = match self.config.global_per_host {
                    Some(cap) => {
                        self.store
                            .claim_with_host_cap(
                                &self.config.id,
                                self.config.lease,
                                &skip,
                                &mine,
                                cap,
                            )
                            .await
                    }
                    None => {
                        self.store
                            .claim_excluding(&self.config.id, self.config.lease, &skip, &mine)
                            .await
                    }
                };
                let claim = match claimed {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim a job");
                        break;
                    }
                };
                claimed_any = true;
                *per_host.entry(claim.host.clone()).or_default() += 1;
                last_start.insert(claim.host.clone(), now);
                let job = JobRun {
                    store: self.store.clone(),
                    manager: self.manager.clone(),
                    config: self.config.clone(),
                    stop: stop_rx.clone(),
                    events: self.events.clone(),
                };
                let job_id = claim.lease.job_id.clone();
                let host = claim.host.clone();
                let handle = tasks.spawn(job.run(claim));
                running.insert(handle.id(), (job_id, host));
            }
            last_start.retain(|_, t| t.elapsed() < self.config.stagger);
            if claimed_any {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    ended(done, &mut per_host, &mut running);
                }
                // Only with a free slot: a wake-up while at the cap stays pending until a job
                // ends (and that end claims anyway).
                changed = work.changed(), if work_open && tasks.len() < self.config.max_concurrent => {
                    work_open = changed.is_ok();
                }
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
        drop(listener);
        tracing::info!(worker = %self.config.id, running = tasks.len(), "worker stopping");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// A task aborted when dropped (the worker's listener for new jobs).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A job's task ended (or panicked): free its host slot and forget its job.
fn ended(
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    per_host: &mut HashMap<String, usize>,
    running: &mut HashMap<tokio::task::Id, (JobId, String)>,
) {
    let task = match done {
        Ok((task, ())) => task,
        Err(join) => {
            tracing::error!(error = %join, "a job's task ended abnormally");
            join.id()
        }
    };
    if let Some((_, host)) = running.remove(&task) {
        release_host(per_host, &host);
    }
}

fn release_host(per_host: &mut HashMap<String, usize>, host: &str) {
    if let Some(n) = per_host.get_mut(host) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_host.remove(host);
        }
    }
}

/// One job's run on this worker.
struct JobRun {
    store: JobStore,
    manager: Manager,
    config: WorkerConfig,
    stop: watch::Receiver<bool>,
    events: broadcast::Sender<JobEvent>,
}

/// Why an attempt could not start, and whether a retry may help.
struct StartFailure {
    error: String,
    retryable: bool,
}

impl JobRun {
    async fn run(self, claim: Claim) {
        let lease = claim.lease.clone();
        let result = self.attempt(&claim).await;
        if let Err(e) = result {
            if e.is_lease_lost() {
                tracing::warn!(job = %lease.job_id, epoch = lease.epoch, "lease lost: the job is left to its new holder");
            } else {
                tracing::warn!(job = %lease.job_id, error = %e, "cannot record the job's outcome; its lease will expire and another claim will run it");
            }
        }
    }

    async fn attempt(&self, claim: &Claim) -> Result<(), JobError> {
        let lease = &claim.lease;
        let spec = match self.resolve(claim).await {
            Ok(spec) => spec,
            Err(f) => return self.failed_attempt(claim, &f.error, f.retryable, &[]).await,
        };
        let mut options = self.config.transfer.clone();
        options.retry = fasp_manager::RetryPolicy::attempts(1);
        crate::failpoint::hit("before_spawn");
        let mut transfer = match self.manager.start(&spec, options) {
            Ok(t) => t,
            Err(e) => {
                let retryable = e.is_retryable();
                return self
                    .failed_attempt(claim, &e.to_string(), retryable, &[])
                    .await;
            }
        };
        let ctl = transfer.controller();
        crate::failpoint::hit("after_spawn");
        let mut paused = false;
        if claim.paused {
            let _ = ctl.pause().await;
            paused = true;
        }
        // A persistent job: its paths not yet done go to the session now, the others as they
        // are added.
        let mut feed = claim.persistent.then(PathFeed::default);
        let mut paths_signal = self.store.paths_signal();
        let mut signal_open = feed.is_some();
        if let Some(feed) = feed.as_mut() {
            feed.forward_new(&self.store, &lease.job_id, &ctl).await;
        }
        let mut rates = (claim.target_rate_kbps, claim.min_rate_kbps);
        let mut policy = claim.rate_policy;
        let mut events = transfer.events();
        let progress = transfer.progress();
        let wait = transfer.wait();
        tokio::pin!(wait);
        let mut results: HashMap<String, FileResult> = HashMap::new();
        let mut pending: Vec<FileResult> = Vec::new();
        let mut tick = tokio::time::interval(self.config.heartbeat.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_ok = Instant::now();
        let mut lost = false;
        let mut cancel_asked = false;
        let mut stopping = false;
        let mut stop = self.stop.clone();
        let mut events_open = true;
        let outcome = loop {
            tokio::select! {
                outcome = &mut wait => break outcome,
                ev = events.next(), if events_open => match ev {
                    Some(ev) => {
                        if let Some(f) = file_result(&ev.kind) {
                            results.insert(f.path.clone(), f.clone());
                            pending.push(f);
                        }
                        if let Some(feed) = feed.as_mut() {
                            feed.on_event(&ev.kind);
                            feed.finish_if_done(&ctl).await;
                        }
                        self.publish(lease, ev);
                    }
                    None => events_open = false,
                },
                _ = tick.tick(), if !lost => {
                    let p = job_progress(&progress.borrow());
                    match self.store.heartbeat(lease, self.config.lease, &p).await {
                        Ok(controls) => {
                            last_ok = Instant::now();
                            crate::failpoint::hit_when(p.bytes_done > 0, "mid_file");
                            if !pending.is_empty() {
                                match self.store.record_files(lease, &pending).await {
                                    Ok(()) => pending.clear(),
                                    Err(e) if e.is_lease_lost() => {
                                        lost = true;
                                        let _ = ctl.cancel().await;
                                        continue;
                                    }
                                    Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "cannot record file results yet"),
                                }
                            }
                            cancel_asked |=
                                apply(&ctl, &controls, &mut paused, &mut rates, &mut policy).await;
                            if let Some(feed) = feed.as_mut() {
                                match feed.heartbeat(&self.store, lease, &controls, &ctl).await {
                                    Err(e) if e.is_lease_lost() => {
                                        lost = true;
                                        let _ = ctl.cancel().await;
                                        continue;
                                    }
                                    Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "cannot record path outcomes yet"),
                                    Ok(()) => {}
                                }
                            }
                        }
                        Err(e) if e.is_lease_lost() => {
                            lost = true;
                            let _ = ctl.cancel().await;
                        }
                        Err(e) => {
                            tracing::warn!(job = %lease.job_id, error = %e, "heartbeat failed");
                            // Past most of the lease without a heartbeat, another worker may
                            // take the job over: stop, and record nothing.
                            if last_ok.elapsed() > self.config.lease.mul_f32(0.8) {
                                lost = true;
                                let _ = ctl.cancel().await;
                            }
                        }
                    }
                }
                changed = paths_signal.changed(), if signal_open && !lost => {
                    // Paths added (or a finish asked) through this process's store: at once,
                    // rather than at the next heartbeat.
                    signal_open = changed.is_ok();
                    if let Some(feed) = feed.as_mut() {
                        feed.wake(&self.store, &lease.job_id, &ctl).await;
                    }
                }
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        let _ = ctl.cancel().await;
                    }
                }
            }
        };
        // The stream ends with the transfer: collect the last file results.
        if events_open {
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.next()).await {
                if let Some(f) = file_result(&ev.kind) {
                    results.insert(f.path.clone(), f.clone());
                }
                if let Some(feed) = feed.as_mut() {
                    feed.on_event(&ev.kind);
                }
                self.publish(lease, ev);
            }
        }
        if lost {
            return Err(JobError::LeaseLost {
                id: lease.job_id.clone(),
                epoch: lease.epoch,
            });
        }
        let mut files: Vec<FileResult> = results.into_values().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let p = job_progress(&progress.borrow());
        if let Some(feed) = feed.as_mut() {
            // The paths that ended are not added again by the next run, whatever this one's
            // outcome.
            match self.store.record_paths(lease, &feed.ended).await {
                Ok(()) => feed.ended.clear(),
                Err(e) if e.is_lease_lost() => return Err(e),
                Err(e) => {
                    tracing::warn!(job = %lease.job_id, error = %e, "cannot record path outcomes")
                }
            }
        }
        match outcome {
            Ok(_) if feed.as_ref().is_some_and(|f| !f.finish_sent) => {
                // A persistent session that ended without being finished: its paths may not
                // all be done, so the job is not complete.
                self.failed_attempt(
                    claim,
                    "the persistent session ended before the job was finished",
                    true,
                    &files,
                )
                .await
            }
            Ok(_summary) => {
                crate::failpoint::hit("before_complete");
                // The transfer is done: a database that fails for a moment must not make it
                // run again, so the record is tried a few times (the lease still fences it).
                let mut tries = 0u32;
                loop {
                    match self.store.complete(lease, &files, &p).await {
                        Err(JobError::Database { .. }) if tries < 4 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                        }
                        other => break other,
                    }
                }
            }
            Err(TransferError::Cancelled { .. }) if cancel_asked => {
                self.store.mark_cancelled(lease, &files).await
            }
            Err(TransferError::Cancelled { .. }) if stopping => {
                self.store.release(lease, &files).await
            }
            Err(e) => {
                let node = matches!(claim.payload, JobPayload::Node(_));
                let retryable = e.is_retryable() || (node && e.code() == Some(AUTH_FAILED));
                self.failed_attempt(claim, &e.to_string(), retryable, &files)
                    .await
            }
        }
    }

    /// Hand an event to the subscribers, if any.
    fn publish(&self, lease: &crate::model::Lease, event: Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(JobEvent {
                job_id: lease.job_id.clone(),
                epoch: lease.epoch,
                event,
            });
        }
    }

    async fn failed_attempt(
        &self,
        claim: &Claim,
        error: &str,
        retryable: bool,
        files: &[FileResult],
    ) -> Result<(), JobError> {
        let failures = claim.failures.saturating_add(1);
        if retryable && failures < claim.retry.max_attempts {
            let backoff = claim.retry.backoff(failures);
            self.store
                .retry_later(&claim.lease, error, backoff, files)
                .await
        } else {
            self.store.fail_with_files(&claim.lease, error, files).await
        }
    }

    /// The spec to run: the stored one with its secrets from the environment, or a fresh one
    /// from the node.
    async fn resolve(&self, claim: &Claim) -> Result<TransferSpec, StartFailure> {
        let mut spec = match &claim.payload {
            JobPayload::Spec { spec, secret_env } => {
                let mut value = spec.clone();
                for (key, var) in secret_env {
                    let secret = self.config.lookup(var).ok_or_else(|| StartFailure {
                        error: format!(
                            "the secret {var} (for the spec's {key}) is neither known to worker {} nor in its environment",
                            self.config.id
                        ),
                        retryable: false,
                    })?;
                    if let Some(o) = value.as_object_mut() {
                        o.insert(key.clone(), Value::String(secret));
                    }
                }
                TransferSpec::from_json_value(value).map_err(|e| StartFailure {
                    error: format!("the stored spec is invalid: {e}"),
                    retryable: false,
                })?
            }
            JobPayload::Node(node) => self.node_spec(node).await?,
        };
        if let Some(t) = claim.target_rate_kbps {
            spec.target_rate_kbps = Some(t);
        }
        if let Some(m) = claim.min_rate_kbps {
            spec.min_rate_kbps = Some(m);
        }
        if let Some(p) = claim.rate_policy {
            spec.rate_policy = Some(p);
        }
        if spec.resume_policy.is_none() {
            spec.resume_policy = Some(ResumePolicy::SparseChecksum);
        }
        Ok(spec)
    }

    async fn node_spec(&self, node: &NodeRequest) -> Result<TransferSpec, StartFailure> {
        let password = self.config.lookup(&node.password_env).ok_or_else(|| StartFailure {
            error: format!(
                "the secret {} (the node password) is neither known to worker {} nor in its environment",
                node.password_env, self.config.id
            ),
            retryable: false,
        })?;
        let mut builder = fasp_token::NodeClient::builder(node.url.clone())
            .basic_auth(node.user.clone(), password)
            .danger_accept_invalid_certs(node.insecure);
        for file in &node.cacert {
            builder = builder.add_root_certificate_pem(file);
        }
        if let Some(ms) = node.timeout_ms {
            builder = builder.timeout(Duration::from_millis(ms));
        }
        let client = builder.build().map_err(|e| StartFailure {
            error: format!("node client for {}: {e}", node.url),
            retryable: false,
        })?;
        let mut request = fasp_token::TransferRequest::new();
        if let Some(o) = node.request.as_object() {
            for (k, v) in o {
                if k == "paths" {
                    let spec = TransferSpec::from_json_value(serde_json::json!({ "paths": v }))
                        .map_err(|e| StartFailure {
                            error: format!("the stored node request's paths: {e}"),
                            retryable: false,
                        })?;
                    request.paths = spec.paths;
                } else {
                    request.extra.insert(k.clone(), v.clone());
                }
            }
        }
        let transient = |e: fasp_token::Error| StartFailure {
            retryable: e.is_transient(),
            error: format!("node {}: {e}", node.url),
        };
        let bad = |e: fasp_spec::SpecError| StartFailure {
            error: format!("the node's answer ({}): {e}", node.url),
            retryable: false,
        };
        match node.direction {
            NodeDirection::Upload => {
                let answer = client
                    .upload_setup_one_detailed(&request)
                    .await
                    .map_err(transient)?;
                fasp_token::prepare_upload(answer.spec, node.sources.clone()).map_err(bad)
            }
            NodeDirection::Download => {
                let answer = client
                    .download_setup_one_detailed(&request)
                    .await
                    .map_err(transient)?;
                let dest = node.destination.clone().unwrap_or_else(|| ".".into());
                fasp_token::prepare_download(answer.spec, dest).map_err(bad)
            }
        }
    }
}

/// The paths of a persistent job on its way to the session, and back.
#[derive(Debug, Default)]
struct PathFeed {
    /// The highest sequence number read from the store.
    seen: u64,
    /// Paths given to the session that have not ended yet, in order: (sequence, source).
    open: Vec<(u64, String)>,
    /// Paths that ended, not yet recorded.
    ended: Vec<(u64, FileOutcome)>,
    /// The job's path count, as of the last heartbeat.
    added: u64,
    /// Close asked, as of the last heartbeat.
    closing: bool,
    /// The session was told to finish.
    finish_sent: bool,
}

impl PathFeed {
    /// Give the session every path added after those seen, but those already done.
    async fn forward_new(&mut self, store: &JobStore, job: &JobId, ctl: &fasp_manager::Controller) {
        let paths = match store.paths(job, self.seen).await {
            Ok(paths) => paths,
            Err(e) => {
                // Read again at the next heartbeat.
                tracing::warn!(job = %job, error = %e, "cannot read the job's paths");
                return;
            }
        };
        for p in paths {
            self.seen = self.seen.max(p.seq);
            if p.outcome == Some(FileOutcome::Done) {
                continue;
            }
            let destination = if p.destination.is_empty() {
                p.source
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                p.destination.clone()
            };
            match ctl.add_file(p.source.clone(), destination, None).await {
                Ok(()) => self.open.push((p.seq, p.source)),
                // A path no session can take: recorded failed, not waited for.
                Err(e @ fasp_manager::ControlError::Invalid { .. }) => {
                    tracing::warn!(job = %job, seq = p.seq, error = %e, "a path cannot be added");
                    self.ended.push((p.seq, FileOutcome::Failed));
                }
                // The session is ending: the path stays in the store for the next run.
                Err(e) => tracing::warn!(job = %job, seq = p.seq, error = %e, "cannot add a path"),
            }
        }
    }

    /// Paths were added, or a finish asked, through this process's store: read the job's
    /// state now, add what is new, finish if it is time.
    async fn wake(&mut self, store: &JobStore, job: &JobId, ctl: &fasp_manager::Controller) {
        match store.path_state(job).await {
            Ok((added, closing)) => {
                self.added = self.added.max(added);
                self.closing |= closing;
            }
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "cannot read the job's paths state");
                return;
            }
        }
        if self.added > self.seen {
            self.forward_new(store, job, ctl).await;
        }
        self.finish_if_done(ctl).await;
    }

    /// A path ends with its source argument (`ARGSTOP`).
    fn on_event(&mut self, kind: &EventKind) {
        if let EventKind::ArgDone { source, failed, .. } = kind {
            let same = |s: &str| s.trim_end_matches('/') == source.trim_end_matches('/');
            if let Some(i) = self.open.iter().position(|(_, s)| same(s)) {
                let (seq, _) = self.open.remove(i);
                let outcome = if *failed == 0 {
                    FileOutcome::Done
                } else {
                    FileOutcome::Failed
                };
                self.ended.push((seq, outcome));
            }
        }
    }

    /// What a heartbeat brings: new paths to add, the close; path outcomes to record.
    async fn heartbeat(
        &mut self,
        store: &JobStore,
        lease: &crate::model::Lease,
        controls: &Controls,
        ctl: &fasp_manager::Controller,
    ) -> Result<(), JobError> {
        self.added = controls.paths_added;
        self.closing = controls.closing;
        if self.added > self.seen {
            self.forward_new(store, &lease.job_id, ctl).await;
        }
        let recorded = store.record_paths(lease, &self.ended).await;
        if recorded.is_ok() {
            self.ended.clear();
        }
        self.finish_if_done(ctl).await;
        recorded
    }

    /// Closing, every path seen and ended: finish the session (it ends well, and the job
    /// completes).
    async fn finish_if_done(&mut self, ctl: &fasp_manager::Controller) {
        if self.closing && !self.finish_sent && self.seen >= self.added && self.open.is_empty() {
            self.finish_sent = true;
            if let Err(e) = ctl.finish(DoneOperation::Linger).await {
                tracing::warn!(error = %e, "cannot finish the persistent session");
            }
        }
    }
}

/// Apply what the store asks; returns whether a cancel was asked.
async fn apply(
    ctl: &fasp_manager::Controller,
    controls: &Controls,
    paused: &mut bool,
    rates: &mut (Option<u64>, Option<u64>),
    policy: &mut Option<fasp_spec::RatePolicy>,
) -> bool {
    if controls.cancel {
        let _ = ctl.cancel().await;
        return true;
    }
    let wanted = (controls.target_rate_kbps, controls.min_rate_kbps);
    if wanted != *rates {
        if let (Some(t), m) = wanted {
            let _ = ctl.set_rate(t, m.unwrap_or(0)).await;
        }
        *rates = wanted;
    }
    if controls.policy != *policy {
        if let Some(p) = controls.policy {
            let _ = ctl.set_policy(p).await;
        }
        *policy = controls.policy;
    }
    if controls.paused != *paused {
        let _ = if controls.paused {
            ctl.pause().await
        } else {
            ctl.resume().await
        };
        *paused = controls.paused;
    }
    false
}

fn job_progress(p: &fasp_manager::Progress) -> JobProgress {
    JobProgress::new(
        p.bytes_done,
        p.bytes_expected,
        p.files_done,
        p.files_skipped,
        p.files_failed,
    )
}

fn file_result(kind: &EventKind) -> Option<FileResult> {
    let (info, outcome, code, description) = match kind {
        EventKind::FileDone(i) => (i, FileOutcome::Done, None, None),
        EventKind::FileSkipped(i) => (i, FileOutcome::Skipped, None, None),
        EventKind::FileFailed {
            file,
            code,
            description,
        } => (file, FileOutcome::Failed, *code, Some(description.clone())),
        _ => return None,
    };
    let mut r = FileResult::new(info.file.clone(), outcome, info.written);
    r.size = info.size;
    r.code = code;
    r.description = description;
    Some(r)
}
