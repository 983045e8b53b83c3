//! The `fasp.jobs.v1.Jobs` service over a [`JobStore`].

use std::pin::Pin;
use std::time::Duration;

use fasp_jobs::{
    AddedPath, FileOutcome, FileResult, Job, JobError, JobEvent, JobId, JobState, JobStore,
    ListFilter, NewJob, NodeRequest, Retry,
};
use fasp_spec::{RatePolicy, TransferSpec};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::pb;

/// The shortest period at which a Watch reads the job store.
pub const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest period at which a Watch reads the job store.
pub const WATCH_MAX_INTERVAL: Duration = Duration::from_secs(10);
/// The period a Watch uses when the request leaves it at 0.
pub const WATCH_DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// The service: each call is one or two job store requests; Watch polls the store (the
/// worker persists progress at its heartbeat's pace, so reading faster shows nothing new);
/// Events relays the in-process worker's live feed, when there is one.
#[derive(Debug)]
pub struct JobsService {
    store: JobStore,
    stopping: watch::Receiver<bool>,
    events: Option<broadcast::Receiver<JobEvent>>,
    streams: Arc<Semaphore>,
}

/// Watch and Events streams open at once, by default: each holds a task, and a Watch reads
/// the store at its pace.
pub const DEFAULT_MAX_STREAMS: usize = 256;

impl JobsService {
    /// The service over `store`. Its Watch streams end with `UNAVAILABLE` once `stopping`
    /// turns true (the server is shutting down), so that they do not hold it up.
    pub fn new(store: JobStore, stopping: watch::Receiver<bool>) -> JobsService {
        JobsService {
            store,
            stopping,
            events: None,
            streams: Arc::new(Semaphore::new(DEFAULT_MAX_STREAMS)),
        }
    }

    /// At most `n` Watch and Events streams open at once (at least 1); one more is refused
    /// with `RESOURCE_EXHAUSTED`.
    pub fn max_streams(mut self, n: usize) -> JobsService {
        self.streams = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// A place for one more stream, or `RESOURCE_EXHAUSTED`.
    fn stream_permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(
                "too many Watch and Events streams are open on this server: close one, or \
                 poll with Get",
            )
        })
    }

    /// Serve Events from this feed ([`fasp_jobs::Worker::subscribe`] of the worker running
    /// in this process).
    pub fn with_events(mut self, events: broadcast::Receiver<JobEvent>) -> JobsService {
        self.events = Some(events);
        self
    }

    async fn job(&self, id: &JobId) -> Result<Job, Status> {
        self.store
            .get(id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("no job {id}")))
    }
}

/// A job id from a request (its text, checked for being non-empty).
fn job_id(text: &str) -> Result<JobId, Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument("the job id is empty"));
    }
    Ok(JobId::from(text))
}

/// The gRPC status for a job store error.
pub fn status(e: JobError) -> Status {
    let message = e.to_string();
    match e {
        JobError::NotFound { .. } => Status::not_found(message),
        JobError::InvalidState { .. } | JobError::NotAccepting { .. } => {
            Status::failed_precondition(message)
        }
        JobError::SecretInSpec { .. } | JobError::Invalid { .. } => {
            Status::invalid_argument(message)
        }
        JobError::LeaseLost { .. } => Status::aborted(message),
        _ => {
            tracing::warn!(error = %message, "job store request failed");
            Status::internal(message)
        }
    }
}

/// The wire form of a state.
pub fn state_to_pb(state: JobState) -> pb::JobState {
    match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Paused => pb::JobState::Paused,
        JobState::Completed => pb::JobState::Completed,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
        _ => pb::JobState::Unspecified,
    }
}

/// The state of a wire value (`None` for UNSPECIFIED or an unknown number).
pub fn state_from_pb(value: i32) -> Option<JobState> {
    match pb::JobState::try_from(value).ok()? {
        pb::JobState::Queued => Some(JobState::Queued),
        pb::JobState::Running => Some(JobState::Running),
        pb::JobState::Paused => Some(JobState::Paused),
        pb::JobState::Completed => Some(JobState::Completed),
        pb::JobState::Failed => Some(JobState::Failed),
        pb::JobState::Cancelled => Some(JobState::Cancelled),
        pb::JobState::Unspecified => None,
    }
}

/// The wire form of a job.
pub fn job_to_pb(job: &Job) -> pb::Job {
    let p = &job.progress;
    pb::Job {
        id: job.id.to_string(),
        state: state_to_pb(job.state) as i32,
        kind: job.kind.clone(),
        host: job.host.clone(),
        priority: job.priority,
        tags: job.tags.clone(),
        idempotency_key: job.idempotency_key.clone(),
        claims: job.claims,
        failures: job.failures,
        max_attempts: job.max_attempts,
        cancel_requested: job.cancel_requested,
        target_rate_kbps: job.target_rate_kbps,
        min_rate_kbps: job.min_rate_kbps,
        progress: Some(pb::Progress {
            bytes_done: p.bytes_done,
            bytes_expected: p.bytes_expected,
            files_done: p.files_done,
            files_skipped: p.files_skipped,
            files_failed: p.files_failed,
        }),
        last_error: job.last_error.clone(),
        created_ms: job.created_ms,
        updated_ms: job.updated_ms,
        started_ms: job.started_ms,
        finished_ms: job.finished_ms,
        lease_owner: job.lease_owner.clone(),
        rate_policy: job.rate_policy.map(|p| p.as_str().to_owned()),
        persistent: job.persistent,
        closing: job.closing,
        paths_added: job.paths_added,
    }
}

fn outcome_to_pb(outcome: FileOutcome) -> pb::FileOutcome {
    match outcome {
        FileOutcome::Done => pb::FileOutcome::Done,
        FileOutcome::Skipped => pb::FileOutcome::Skipped,
        FileOutcome::Failed => pb::FileOutcome::Failed,
    }
}

fn path_to_pb(p: &AddedPath) -> pb::AddedPath {
    pb::AddedPath {
        seq: p.seq,
        source: p.source.clone(),
        destination: p.destination.clone(),
        outcome: p
            .outcome
            .map_or(pb::FileOutcome::Unspecified, outcome_to_pb) as i32,
    }
}

fn file_to_pb(f: &FileResult) -> pb::FileResult {
    pb::FileResult {
        path: f.path.clone(),
        outcome: outcome_to_pb(f.outcome) as i32,
        bytes: f.bytes,
        size: f.size,
        code: f.code,
        description: f.description.clone(),
    }
}

/// The rate policy a word names.
fn policy(word: &str) -> Result<RatePolicy, Status> {
    RatePolicy::parse(word).ok_or_else(|| {
        Status::invalid_argument(format!(
            "rate policy {word:?}: give fixed, high, fair or low"
        ))
    })
}

/// The job a submit request describes.
fn new_job(r: pb::SubmitRequest) -> Result<NewJob, Status> {
    let mut job = match r.payload {
        Some(pb::submit_request::Payload::SpecJson(text)) => {
            let spec = TransferSpec::from_document(&text)
                .map_err(|e| Status::invalid_argument(format!("spec_json: {e}")))?;
            NewJob::transfer(&spec)
        }
        Some(pb::submit_request::Payload::Node(n)) => {
            if n.url.is_empty() || n.password_env.is_empty() || n.sources.is_empty() {
                return Err(Status::invalid_argument(
                    "node: url, password_env and at least one source are required",
                ));
            }
            let mut request = if n.upload {
                NodeRequest::upload(n.url, n.user, n.password_env, n.destination, n.sources)
            } else {
                NodeRequest::download(n.url, n.user, n.password_env, n.sources, n.destination)
            };
            request.insecure = n.insecure;
            request.cacert = n.cacert;
            request.timeout_ms = (n.timeout_ms > 0).then_some(n.timeout_ms);
            NewJob::node(request)
        }
        None => {
            return Err(Status::invalid_argument(
                "the request has no payload: give spec_json or node",
            ));
        }
    };
    let mut secrets: Vec<(String, String)> = r.secret_env.into_iter().collect();
    secrets.sort();
    for (key, env) in secrets {
        if !fasp_jobs::SECRET_KEYS.contains(&key.as_str()) {
            return Err(Status::invalid_argument(format!(
                "secret_env: {key:?} is not a secret of a spec (one of {})",
                fasp_jobs::SECRET_KEYS.join(", ")
            )));
        }
        job = job.secret_from_env(key, env);
    }
    job = job.store_secrets(r.store_secrets);
    for tag in r.tags {
        job = job.tag(tag);
    }
    if !r.idempotency_key.is_empty() {
        job = job.idempotency_key(r.idempotency_key);
    }
    job = job.priority(r.priority);
    if r.max_attempts > 0 {
        job = job.retry(Retry::attempts(r.max_attempts));
    }
    match (r.target_rate_kbps, r.min_rate_kbps) {
        (Some(target), Some(min)) => job = job.rates(target, min),
        (Some(target), None) => job = job.rates(target, 0),
        (None, Some(_)) => {
            return Err(Status::invalid_argument(
                "min_rate_kbps without target_rate_kbps",
            ));
        }
        (None, None) => {}
    }
    if !r.host.is_empty() {
        job = job.host(r.host);
    }
    if let Some(word) = &r.rate_policy {
        job = job.policy(policy(word)?);
    }
    if r.persistent {
        job = job.persistent(true);
    }
    Ok(job)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;
type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::TransferEvent, Status>> + Send + 'static>>;

/// The wire form of a worker's event, or `None` when it cannot be put in JSON.
fn transfer_event(e: &JobEvent, skipped: u64) -> Option<pb::TransferEvent> {
    let mut value = serde_json::to_value(&e.event).ok()?;
    if matches!(e.event.kind, fasp_manager::EventKind::Unknown) {
        // The frame is not part of the serde form; its type is what a reader can show.
        let frame_type = e.event.frame.as_ref().and_then(|f| f.type_name());
        if let Some(o) = value.as_object_mut() {
            o.insert("frame_type".to_owned(), serde_json::json!(frame_type));
        }
    }
    let kind = value.get("type").and_then(|t| t.as_str())?.to_owned();
    Some(pb::TransferEvent {
        job_id: e.job_id.to_string(),
        epoch: e.epoch,
        kind,
        json: value.to_string(),
        skipped,
    })
}

#[tonic::async_trait]
impl pb::jobs_server::Jobs for JobsService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let job = new_job(request.into_inner())?;
        let submitted = self.store.submit(&job).await.map_err(status)?;
        let job = self.job(&submitted.id).await?;
        tracing::info!(job = %job.id, created = submitted.created, "job submitted");
        Ok(Response::new(pb::SubmitResponse {
            job: Some(job_to_pb(&job)),
            created: submitted.created,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let id = job_id(&request.get_ref().id)?;
        let job = self.job(&id).await?;
        let files = self.store.files(&id).await.map_err(status)?;
        let paths = if job.persistent {
            self.store.paths(&id, 0).await.map_err(status)?
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::GetResponse {
            job: Some(job_to_pb(&job)),
            files: files.iter().map(file_to_pb).collect(),
            paths: paths.iter().map(path_to_pb).collect(),
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = request.into_inner();
        let mut filter = ListFilter::all();
        for value in r.states {
            let state = state_from_pb(value).ok_or_else(|| {
                Status::invalid_argument(format!("states: {value} is not a job state"))
            })?;
            filter = filter.state(state);
        }
        if !r.tag.is_empty() {
            filter = filter.tag(r.tag);
        }
        if r.limit > 0 {
            filter = filter.limit(r.limit);
        }
        let jobs = self.store.list(&filter).await.map_err(status)?;
        Ok(Response::new(pb::ListResponse {
            jobs: jobs.iter().map(job_to_pb).collect(),
        }))
    }

    async fn modify(
        &self,
        request: Request<pb::ModifyRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let r = request.into_inner();
        let id = job_id(&r.id)?;
        if r.pause && r.resume {
            return Err(Status::invalid_argument("pause and resume both asked"));
        }
        let policy = r.policy.as_deref().map(policy).transpose()?;
        if r.target_rate_kbps.is_some() || r.min_rate_kbps.is_some() {
            let job = self.job(&id).await?;
            let target = r.target_rate_kbps.or(job.target_rate_kbps).ok_or_else(|| {
                Status::invalid_argument(
                    "the job has no target rate: give target_rate_kbps with min_rate_kbps",
                )
            })?;
            let mut min = r.min_rate_kbps.or(job.min_rate_kbps).unwrap_or(0);
            if r.min_rate_kbps.is_none() {
                // A lower target drags the kept minimum down with it rather than failing.
                min = min.min(target);
            }
            self.store
                .set_rate(&id, target, min)
                .await
                .map_err(status)?;
        }
        if let Some(policy) = policy {
            self.store.set_policy(&id, policy).await.map_err(status)?;
        }
        if r.pause {
            self.store.pause(&id).await.map_err(status)?;
        }
        if r.resume {
            self.store.resume(&id).await.map_err(status)?;
        }
        Ok(Response::new(job_to_pb(&self.job(&id).await?)))
    }

    async fn add_paths(
        &self,
        request: Request<pb::AddPathsRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let r = request.into_inner();
        let id = job_id(&r.id)?;
        if r.paths.is_empty() && !r.last {
            return Err(Status::invalid_argument(
                "no paths: give at least one (source, destination), or last to close the job",
            ));
        }
        let paths: Vec<AddedPath> = r
            .paths
            .into_iter()
            .map(|p| AddedPath::new(p.source, p.destination))
            .collect();
        let key = (!r.request_key.is_empty()).then_some(r.request_key.as_str());
        let added = self
            .store
            .add_paths(&id, &paths, key, r.last)
            .await
            .map_err(status)?;
        tracing::info!(job = %id, added = added.added, applied = added.applied, "paths added");
        Ok(Response::new(job_to_pb(&self.job(&id).await?)))
    }

    async fn finish(
        &self,
        request: Request<pb::FinishRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = job_id(&request.get_ref().id)?;
        self.store.finish_job(&id).await.map_err(status)?;
        Ok(Response::new(job_to_pb(&self.job(&id).await?)))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = job_id(&request.get_ref().id)?;
        self.store.cancel(&id).await.map_err(status)?;
        Ok(Response::new(job_to_pb(&self.job(&id).await?)))
    }

    type WatchStream = WatchStream;
    type EventsStream = EventsStream;

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<EventsStream>, Status> {
        let Some(feed) = &self.events else {
            return Err(Status::failed_precondition(
                "this server runs no worker, and the events of other workers are not shared: \
                 use Watch",
            ));
        };
        let job_id = request.into_inner().job_id;
        let job = if job_id.is_empty() {
            None
        } else {
            // An unknown job is NOT_FOUND rather than a stream that never says anything.
            self.job(&JobId::from(job_id.as_str())).await?;
            Some(job_id)
        };
        let permit = self.stream_permit()?;
        let (tx, rx) = mpsc::channel(64);
        let (feed, stopping) = (feed.resubscribe(), self.stopping.clone());
        tokio::spawn(async move {
            relay_events(feed, job, tx, stopping).await;
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let r = request.into_inner();
        let id = job_id(&r.id)?;
        let first = self.job(&id).await?;
        let permit = self.stream_permit()?;
        let interval = match r.interval_ms {
            0 => WATCH_DEFAULT_INTERVAL,
            ms => {
                Duration::from_millis(u64::from(ms)).clamp(WATCH_MIN_INTERVAL, WATCH_MAX_INTERVAL)
            }
        };
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            // Held until the stream ends, whichever way.
            let _permit = permit;
            let mut last = first;
            if tx.send(Ok(event(&last))).await.is_err() {
                return;
            }
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            while !last.state.is_terminal() {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = tx.closed() => return,
                    () = shutting_down(&mut stopping, &tx) => return,
                }
                let now = match store.get(&id).await {
                    Ok(Some(job)) => job,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(Status::not_found(format!("job {id} was removed"))))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                if now != last {
                    last = now;
                    if tx.send(Ok(event(&last))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Resolves once the server starts shutting down, after telling the stream's reader so
/// (`UNAVAILABLE`): the streams end then, so that they do not hold the shutdown up.
async fn shutting_down<T>(
    stopping: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Result<T, Status>>,
) {
    let _ = stopping.wait_for(|s| *s).await;
    let _ = tx
        .send(Err(Status::unavailable("the server is shutting down")))
        .await;
}

/// Relay `feed` into `tx` (only `job`'s events when set) until the feed closes, the reader
/// goes, or the server stops.
async fn relay_events(
    mut feed: broadcast::Receiver<JobEvent>,
    job: Option<String>,
    tx: mpsc::Sender<Result<pb::TransferEvent, Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut skipped = 0u64;
    loop {
        let received = tokio::select! {
            r = feed.recv() => r,
            () = tx.closed() => return,
            () = shutting_down(&mut stopping, &tx) => return,
        };
        match received {
            Ok(e) => {
                if job.as_deref().is_some_and(|j| j != e.job_id.as_str()) {
                    continue;
                }
                if let Some(event) = transfer_event(&e, skipped) {
                    skipped = 0;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => skipped = skipped.saturating_add(n),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn event(job: &Job) -> pb::WatchEvent {
    pb::WatchEvent {
        job: Some(job_to_pb(job)),
    }
}
