//! [`Transfer`]: the handle of a running transfer, and the task behind it (parts, retries).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fasp_mgmt_proto::{
    ByteRange, Control, DoneOperation, Priority, RateChange, RatePolicy, StartFile, StopFile,
};
use fasp_spec::{RenderOptions, ResumePolicy, TransferSpec};
use futures::Stream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::attempt::{AttemptOk, AttemptSpec, Ctl, PartState, SessionSummary, run_attempt};
use crate::error::{FileFailure, TransferError};
use crate::event::{Event, EventKind};
use crate::options::TransferOptions;
use crate::progress::{Progress, TransferState};
use crate::sink::Sink;
use crate::wire::PartLink;

/// The rate policy words users know, mapped onto what ascp accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// `Adaptive: Fixed`: the target rate, whatever the network.
    Fixed,
    /// `Adaptive: Adaptive` + `Priority: 1`: adaptive, ahead of other traffic.
    High,
    /// `Adaptive: Adaptive` + `Priority: 2`: adaptive, sharing fairly.
    Fair,
    /// `Adaptive: Trickle`: only the bandwidth nobody else uses.
    Low,
}

impl Policy {
    /// The `RATE` fields for this policy.
    pub fn rate_change(self) -> RateChange {
        let (policy, priority) = match self {
            Policy::Fixed => (RatePolicy::Fixed, None),
            Policy::High => (RatePolicy::Adaptive, Some(Priority::High)),
            Policy::Fair => (RatePolicy::Adaptive, Some(Priority::Regular)),
            Policy::Low => (RatePolicy::Trickle, None),
        };
        RateChange {
            policy: Some(policy),
            priority,
            ..RateChange::default()
        }
    }

    /// Read `fixed`, `high`, `fair` or `low` (any case).
    pub fn parse(word: &str) -> Option<Policy> {
        match word.to_ascii_lowercase().as_str() {
            "fixed" => Some(Policy::Fixed),
            "high" => Some(Policy::High),
            "fair" => Some(Policy::Fair),
            "low" => Some(Policy::Low),
            _ => None,
        }
    }
}

/// A control request that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The transfer has ended.
    #[error("the transfer has ended")]
    Ended,
    /// The message cannot be written as a frame (a path holding a line break, say).
    #[error("invalid control message: {reason}")]
    Invalid {
        /// What is wrong with it (the encoder's error).
        reason: String,
    },
}

/// What a successful transfer did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// Every session that ended, with its outcome (several with HTTP fallback, multi-session
    /// transfers or retries).
    pub sessions: Vec<SessionSummary>,
    /// Bytes written.
    pub bytes: u64,
    /// Files done.
    pub files_done: u64,
    /// Files skipped.
    pub files_skipped: u64,
    /// Files that failed on the way (retried or not).
    pub failed_files: Vec<FileFailure>,
    /// Attempts made (the most of any part).
    pub attempts: u32,
    /// Time from start to end.
    pub elapsed: Duration,
}

/// A stream of a transfer's events (ends when the transfer has ended).
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// Steers a running transfer: rates, policy, pause, files of persistent sessions, cancel.
/// Cheap to clone, so that several tasks can steer the same transfer; [`Transfer`] derefs to
/// one.
///
/// A rate, policy or file message is written to ascp's management socket by the calling task
/// when the transfer is connected and nothing is queued ahead of it (no wait for the
/// transfer's own task to be scheduled); otherwise it is queued. Either way ascp reads the
/// messages of one caller in the order they were issued. The methods work from any executor.
#[derive(Debug, Clone)]
pub struct Controller {
    parts: Arc<[PartHandle]>,
}

/// How a controller reaches one part: its queue, and its running attempt's connection.
#[derive(Debug)]
struct PartHandle {
    tx: mpsc::Sender<Ctl>,
    link: Arc<PartLink>,
}

impl PartHandle {
    /// Deliver one request. A message to write goes straight to the socket when nothing is
    /// queued ahead of it (then the attempt is only told, to report it); otherwise, and for
    /// pause, resume and cancel, through the part's queue, in order.
    async fn deliver(&self, cmd: Ctl) -> Result<(), ControlError> {
        if let Ctl::Send(msg) = &cmd {
            // Refused here, whichever way it would go, rather than dropped by the attempt.
            msg.validate().map_err(|e| ControlError::Invalid {
                reason: e.to_string(),
            })?;
            match self.link.try_direct(msg) {
                Ok(true) => {
                    // Written; the attempt reports it (if it has ended meanwhile, no one
                    // is left to report to, and the message was written all the same).
                    if let Ctl::Send(msg) = cmd {
                        let _ = self.tx.send(Ctl::Sent(msg)).await;
                    }
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => {
                    return Err(ControlError::Invalid {
                        reason: e.to_string(),
                    });
                }
            }
        }
        let counted = !matches!(cmd, Ctl::Cancel);
        if counted {
            self.link.queued();
        }
        let sent = self.tx.send(cmd).await;
        if sent.is_err() && counted {
            self.link.dequeued();
        }
        sent.map_err(|_| ControlError::Ended)
    }
}

/// A running transfer.
///
/// Dropping it (and every [`Controller`] cloned from it) cancels the transfer: ascp is stopped
/// and reaped in the background, and the temporary files are removed. To wait for the
/// outcome, call [`Transfer::wait`]. Control methods come from [`Controller`].
#[derive(Debug)]
pub struct Transfer {
    id: u64,
    controller: Controller,
    sink: Arc<Sink>,
    first: Option<mpsc::Receiver<Event>>,
    progress: watch::Receiver<Progress>,
    task: Option<JoinHandle<Result<Summary, TransferError>>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

pub(crate) struct Plan {
    pub(crate) id: u64,
    pub(crate) spec: TransferSpec,
    pub(crate) program: PathBuf,
    pub(crate) options: TransferOptions,
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// The slot, when one was free at start (so transfers started in order run in order).
    pub(crate) permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Transfer {
    pub(crate) fn launch(plan: Plan) -> Transfer {
        let n = plan.options.sessions.max(1);
        let (sink, progress) = Sink::new(plan.options.listeners.clone(), plan.options.event_buffer);
        let first = sink.subscribe();
        let mut handles = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(64);
            let link = Arc::new(PartLink::default());
            handles.push(PartHandle {
                tx,
                link: link.clone(),
            });
            receivers.push((rx, link));
        }
        let id = plan.id;
        let task = tokio::spawn(run_transfer(
            plan,
            receivers,
            handles.iter().map(|h| h.tx.downgrade()).collect(),
            sink.clone(),
        ));
        Transfer {
            id,
            controller: Controller {
                parts: handles.into(),
            },
            sink,
            first: Some(first),
            progress,
            task: Some(task),
        }
    }

    /// This transfer's number within its manager.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The events from the very start, the first time it is called; afterwards, like
    /// [`Transfer::subscribe`].
    pub fn events(&mut self) -> EventStream {
        match self.first.take() {
            Some(rx) => EventStream { rx },
            None => self.subscribe(),
        }
    }

    /// The events from now on (any number of subscribers).
    pub fn subscribe(&self) -> EventStream {
        EventStream {
            rx: self.sink.subscribe(),
        }
    }

    /// A `watch` receiver of the progress snapshot.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// The progress now.
    pub fn snapshot(&self) -> Progress {
        self.sink.snapshot()
    }

    /// A controller that can be moved to other tasks.
    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    /// Wait for the outcome. Every ascp process has been reaped when this returns.
    pub async fn wait(mut self) -> Result<Summary, TransferError> {
        let task = self.task.take();
        // Keep the control channels open while waiting (closing them would cancel).
        match task {
            Some(task) => match task.await {
                Ok(result) => result,
                Err(join) => Err(TransferError::Io {
                    what: "run the transfer task",
                    source: std::io::Error::other(join.to_string()),
                }),
            },
            None => Err(TransferError::Cancelled { forced: false }),
        }
    }
}

impl std::ops::Deref for Transfer {
    type Target = Controller;

    fn deref(&self) -> &Controller {
        &self.controller
    }
}

impl Controller {
    async fn to_all(&self, make: impl Fn(usize, usize) -> Ctl) -> Result<(), ControlError> {
        let n = self.parts.len();
        let mut delivered = false;
        for (i, part) in self.parts.iter().enumerate() {
            match part.deliver(make(i, n)).await {
                Ok(()) => delivered = true,
                Err(ControlError::Ended) => {}
                Err(e) => return Err(e),
            }
        }
        if delivered {
            Ok(())
        } else {
            Err(ControlError::Ended)
        }
    }

    /// Change the target and minimum rates (Kbps). A multi-session transfer splits them
    /// between its processes.
    pub async fn set_rate(&self, target_kbps: u64, min_kbps: u64) -> Result<(), ControlError> {
        self.to_all(|i, n| {
            Ctl::Send(Control::Rate(RateChange::rates(
                share(target_kbps, i, n),
                share(min_kbps, i, n),
            )))
        })
        .await
    }

    /// Change only the target rate (Kbps).
    pub async fn set_target_rate(&self, target_kbps: u64) -> Result<(), ControlError> {
        self.to_all(|i, n| {
            Ctl::Send(Control::Rate(RateChange {
                rate_kbps: Some(share(target_kbps, i, n)),
                ..RateChange::default()
            }))
        })
        .await
    }

    /// Change any subset of target rate, minimum rate and policy at once.
    pub async fn set_rates_and_policy(
        &self,
        target_kbps: Option<u64>,
        min_kbps: Option<u64>,
        policy: Option<Policy>,
    ) -> Result<(), ControlError> {
        self.to_all(|i, n| {
            let mut change = policy.map(Policy::rate_change).unwrap_or_default();
            change.rate_kbps = target_kbps.map(|t| share(t, i, n));
            change.min_rate_kbps = min_kbps.map(|m| share(m, i, n));
            Ctl::Send(Control::Rate(change))
        })
        .await
    }

    /// Change the policy (sent as the exact `Adaptive`/`Priority` words ascp accepts).
    pub async fn set_policy(&self, policy: Policy) -> Result<(), ControlError> {
        self.to_all(|_, _| Ctl::Send(Control::Rate(policy.rate_change())))
            .await
    }

    /// Pause: rates to 0. [`Controller::resume`] restores the rates ascp last reported.
    pub async fn pause(&self) -> Result<(), ControlError> {
        self.to_all(|_, _| Ctl::Pause).await
    }

    /// Resume after [`Controller::pause`].
    pub async fn resume(&self) -> Result<(), ControlError> {
        self.to_all(|_, _| Ctl::Resume).await
    }

    /// Add a file to a persistent (`keepalive`) session, optionally a byte range of it.
    pub async fn add_file(
        &self,
        source: impl Into<String>,
        destination: impl Into<String>,
        range: Option<ByteRange>,
    ) -> Result<(), ControlError> {
        let mut start = StartFile::new(source, destination);
        start.range = range;
        let part = self.parts.first().ok_or(ControlError::Ended)?;
        part.deliver(Ctl::Send(Control::Start(start))).await
    }

    /// Stop one file of a persistent session.
    pub async fn stop_file(&self, source: impl Into<String>) -> Result<(), ControlError> {
        let stop = Control::Stop(StopFile::new(source));
        self.to_all(|_, _| Ctl::Send(stop.clone())).await
    }

    /// End a persistent session: `Linger` finishes the queued files first, `Shutdown` does not.
    pub async fn finish(&self, how: DoneOperation) -> Result<(), ControlError> {
        self.to_all(|_, _| Ctl::Send(Control::Done(how))).await
    }

    /// Cancel: `CANCEL` to ascp, then SIGTERM, then SIGKILL if it does not end within the
    /// grace periods (a real ascp ignores its management socket during session initiation).
    /// [`Transfer::wait`] then returns [`TransferError::Cancelled`] once ascp is reaped.
    pub async fn cancel(&self) -> Result<(), ControlError> {
        self.to_all(|_, _| Ctl::Cancel).await
    }
}

/// Part `i` of `n` of a total (the remainder goes to the first parts).
fn share(total: u64, i: usize, n: usize) -> u64 {
    let n = n.max(1) as u64;
    total / n + u64::from((i as u64) < total % n)
}

async fn run_transfer(
    plan: Plan,
    receivers: Vec<(mpsc::Receiver<Ctl>, Arc<PartLink>)>,
    siblings: Vec<mpsc::WeakSender<Ctl>>,
    sink: Arc<Sink>,
) -> Result<Summary, TransferError> {
    let started = Instant::now();
    // A slot taken when the transfer was started, or waited for here (in line).
    let _permit = match (
        plan.permit.lock().ok().and_then(|mut p| p.take()),
        &plan.limit,
    ) {
        (Some(permit), _) => Some(permit),
        (None, Some(limit)) => {
            sink.emit(Event {
                part: 0,
                attempt: 0,
                session_id: None,
                kind: EventKind::Queued,
                frame: None,
            })
            .await;
            limit.clone().acquire_owned().await.ok()
        }
        (None, None) => None,
    };
    sink.set_state(TransferState::Starting);
    // A private folder for file lists, removed when this task ends.
    let tempdir;
    let workdir = match &plan.options.workdir {
        Some(dir) => dir.clone(),
        None => {
            tempdir = tempfile::Builder::new()
                .prefix("fasp-manager-")
                .tempdir()
                .map_err(|source| TransferError::Io {
                    what: "create a work folder",
                    source,
                })?;
            tempdir.path().to_path_buf()
        }
    };
    let n = receivers.len() as u32;
    let plan = Arc::new(plan);
    let parts = receivers.into_iter().enumerate().map(|(i, (rx, link))| {
        let plan = plan.clone();
        let sink = sink.clone();
        let workdir = workdir.clone();
        let siblings = siblings.clone();
        async move {
            let result = run_part(&plan, i as u32, n, rx, &link, &sink, &workdir).await;
            if result.is_err() {
                // One part failing fails the transfer: stop the others.
                for s in siblings.iter().filter_map(mpsc::WeakSender::upgrade) {
                    let _ = s.try_send(Ctl::Cancel);
                }
            }
            result
        }
    });
    let results = futures::future::join_all(parts).await;
    let snapshot = sink.snapshot();
    let mut summary = Summary {
        sessions: Vec::new(),
        bytes: snapshot.bytes_done,
        files_done: snapshot.files_done,
        files_skipped: snapshot.files_skipped,
        failed_files: Vec::new(),
        attempts: snapshot.attempts,
        elapsed: started.elapsed(),
    };
    let mut first_error: Option<TransferError> = None;
    for r in results {
        match r {
            Ok(ok) => {
                summary.sessions.extend(ok.sessions);
                summary.failed_files.extend(ok.failed_files);
            }
            // Prefer the root cause to the cancellations it caused in other parts.
            Err(e) => match &first_error {
                None => first_error = Some(e),
                Some(TransferError::Cancelled { .. })
                    if !matches!(e, TransferError::Cancelled { .. }) =>
                {
                    first_error = Some(e)
                }
                Some(_) => {}
            },
        }
    }
    match first_error {
        Some(e) => {
            sink.set_state(if matches!(e, TransferError::Cancelled { .. }) {
                TransferState::Cancelled
            } else {
                TransferState::Failed
            });
            Err(e)
        }
        None => {
            sink.set_state(TransferState::Done);
            Ok(summary)
        }
    }
}

async fn run_part(
    plan: &Plan,
    part: u32,
    parts: u32,
    mut ctl: mpsc::Receiver<Ctl>,
    link: &PartLink,
    sink: &Sink,
    workdir: &std::path::Path,
) -> Result<AttemptOk, TransferError> {
    let mut state = PartState::default();
    let mut shutdown = plan.shutdown.clone();
    let mut attempt = 1;
    loop {
        let mut spec = plan.spec.clone();
        if parts > 1 {
            spec.target_rate_kbps = spec
                .target_rate_kbps
                .map(|t| share(t, part as usize, parts as usize));
            spec.min_rate_kbps = spec
                .min_rate_kbps
                .map(|m| share(m, part as usize, parts as usize));
        }
        if attempt > 1 && spec.resume_policy.is_none() {
            spec.resume_policy = Some(ResumePolicy::SparseChecksum);
        }
        let dir = workdir.join(format!("part{part}-attempt{attempt}"));
        std::fs::create_dir_all(&dir).map_err(|source| TransferError::Io {
            what: "create a work folder",
            source,
        })?;
        let mut render = RenderOptions::new()
            .with_program(&plan.program)
            .with_workdir(&dir);
        if parts > 1 {
            render = render.with_multi_session_part(part + 1, parts);
        }
        let command = spec.render(&render)?;
        let mut env: Vec<(String, String)> = command
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        env.extend(plan.options.env.iter().cloned());
        let attempt_spec = AttemptSpec {
            part,
            attempt,
            program: plan.program.clone(),
            args: command.args.clone(),
            env,
        };
        let result = run_attempt(
            &attempt_spec,
            &plan.options,
            sink,
            &mut state,
            &mut ctl,
            link,
            &mut shutdown,
        )
        .await;
        let _ = command.cleanup();
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(ok) => return Ok(ok),
            Err(e)
                if e.is_retryable()
                    && attempt < plan.options.retry.max_attempts
                    && !state.cancelled =>
            {
                attempt += 1;
                let after = plan.options.retry.backoff(attempt);
                sink.set_state(TransferState::Retrying);
                sink.emit(Event {
                    part,
                    attempt: attempt - 1,
                    session_id: None,
                    kind: EventKind::Retrying {
                        next_attempt: attempt,
                        after,
                        reason: e.to_string(),
                    },
                    frame: None,
                })
                .await;
                // Wait, but stay cancellable (and keep pause/resume state meanwhile).
                let until = tokio::time::Instant::now() + after;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        cmd = ctl.recv() => match cmd {
                            None | Some(Ctl::Cancel) => return Err(TransferError::Cancelled { forced: false }),
                            Some(Ctl::Pause) => {
                                state.paused = true;
                                link.dequeued();
                            }
                            Some(Ctl::Resume) => {
                                state.paused = false;
                                link.dequeued();
                            }
                            // Nothing to send it to between attempts.
                            Some(Ctl::Send(_)) => link.dequeued(),
                            Some(Ctl::Sent(_)) => {}
                        },
                        _ = shutdown.changed() => return Err(TransferError::Cancelled { forced: false }),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in [0u64, 1, 7, 100_000, 99_999] {
            for n in 1..6 {
                let sum: u64 = (0..n).map(|i| share(total, i, n)).sum();
                assert_eq!(sum, total, "{total} in {n}");
            }
        }
    }

    #[test]
    fn policies_map_to_words_ascp_accepts() {
        let words = |p: Policy| {
            let r = p.rate_change();
            (r.policy.map(RatePolicy::as_str), r.priority)
        };
        assert_eq!(words(Policy::Fixed), (Some("Fixed"), None));
        assert_eq!(
            words(Policy::High),
            (Some("Adaptive"), Some(Priority::High))
        );
        assert_eq!(
            words(Policy::Fair),
            (Some("Adaptive"), Some(Priority::Regular))
        );
        assert_eq!(words(Policy::Low), (Some("Trickle"), None));
        assert_eq!(Policy::parse("HIGH"), Some(Policy::High));
        assert_eq!(Policy::parse("turbo"), None);
    }
}
