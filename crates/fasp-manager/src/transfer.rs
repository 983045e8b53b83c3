//! [`Transfer`]: the handle of a running transfer; [`Controller`]: steering it.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use fasp_mgmt_proto::{ByteRange, DoneOperation, RateChange, StartFile, StopFile};
use fasp_spec::RatePolicy;
use futures::Stream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::Request;
use crate::driver::Shared;
use crate::error::{FileFailure, TransferError};
use crate::event::{Event, SessionTotals};
use crate::hub::Queue;
use crate::progress::Progress;

/// The `RATE` fields for a policy (its words: [`RatePolicy::to_wire`]).
pub(crate) fn rate_change(policy: RatePolicy) -> RateChange {
    let (wire, priority) = policy.to_wire();
    RateChange {
        policy: Some(wire),
        priority,
        ..RateChange::default()
    }
}

/// A control request that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The transfer has ended (or every part of it has: nothing is left to steer).
    #[error("the transfer has ended")]
    Ended,
    /// File controls (`add_file`, `stop_file`, `finish`) need a persistent session: a spec
    /// with `keepalive`.
    #[error(
        "this transfer is not a persistent session: add_file, stop_file and finish need a spec with keepalive"
    )]
    NotPersistent,
    /// The request makes no sense (a minimum rate above the target) or cannot be written as
    /// a frame (a path holding a line break, say).
    #[error("invalid control request: {reason}")]
    Invalid {
        /// What is wrong with it (the encoder's error).
        reason: String,
    },
}

/// What a successful transfer did.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    #[cfg_attr(
        feature = "serde",
        serde(rename = "elapsed_ms", serialize_with = "crate::ser::millis")
    )]
    pub elapsed: Duration,
}

/// One session that ended, with its outcome: every session of every attempt of every part
/// is listed, failed ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session.
    pub session_id: String,
    /// Which part of a multi-session transfer.
    pub part: u32,
    /// Which attempt.
    pub attempt: u32,
    /// `None` for `DONE` (or a lost session), the code for `ERROR`.
    pub error_code: Option<u64>,
    /// The session ended with neither `DONE` nor `ERROR`: ascp crashed, was stopped, or lost
    /// its management connection after the session's `INIT`.
    pub lost: bool,
    /// The totals `DONE` (or `ERROR`) reported (empty for a lost session).
    pub totals: SessionTotals,
}

/// A stream of a transfer's events. It ends when the transfer ends, whatever handles are
/// alive. Lifecycle events are never lost; progress samples are coalesced (newest per file,
/// see [`Event::coalesced`]) while the reader is behind. Reading slowly, or not at all, never
/// slows the transfer.
#[derive(Debug)]
pub struct EventStream {
    queue: Arc<Queue>,
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.queue.poll_next(cx)
    }
}

impl EventStream {
    /// Events waiting to be read.
    pub fn backlog(&self) -> usize {
        self.queue.len()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.queue.drop_receiver();
    }
}

/// Steers a running transfer: rates, policy, pause, files of persistent sessions, cancel.
/// Cheap to clone, so that several tasks can steer the same transfer; [`Transfer`] derefs to
/// one.
///
/// Each call feeds the transfer's state machine and writes the resulting control to ascp's
/// socket from the calling task, without waiting for anything: controls reach ascp in the
/// order they were issued. The methods work from any executor (or none: they never wait).
///
/// The transfer is cancelled when the [`Transfer`] and every `Controller` cloned from it are
/// dropped.
#[derive(Debug, Clone)]
pub struct Controller {
    shared: Arc<Shared>,
    _alive: Arc<CancelOnDrop>,
}

/// Cancels the transfer when the last handle goes.
#[derive(Debug)]
struct CancelOnDrop(Weak<Shared>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            tracing::debug!("the last handle of the transfer was dropped: cancel it if it runs");
            let _ = shared.with(|c, now| c.core.control(now, Request::Cancel));
        }
    }
}

/// A running transfer.
///
/// Dropping it (and every [`Controller`] cloned from it) cancels the transfer: ascp is stopped
/// and reaped in the background, and the temporary files are removed. So does dropping the
/// future of [`Transfer::wait`] (as `tokio::time::timeout(d, transfer.wait())` does when the
/// time is up): keep a [`Controller`] to let it run on. Control methods come from
/// [`Controller`].
#[derive(Debug)]
pub struct Transfer {
    id: u64,
    controller: Controller,
    first: Option<EventStream>,
    progress: watch::Receiver<Progress>,
    task: Option<JoinHandle<Result<Summary, TransferError>>>,
}

impl Transfer {
    pub(crate) fn new(
        id: u64,
        shared: Arc<Shared>,
        progress: watch::Receiver<Progress>,
        task: JoinHandle<Result<Summary, TransferError>>,
        first: EventStream,
    ) -> Transfer {
        let alive = Arc::new(CancelOnDrop(Arc::downgrade(&shared)));
        Transfer {
            id,
            controller: Controller {
                shared,
                _alive: alive,
            },
            first: Some(first),
            progress,
            task: Some(task),
        }
    }

    pub(crate) fn subscribe_queue(shared: &Shared) -> EventStream {
        EventStream {
            queue: shared.hub.subscribe(),
        }
    }

    /// This transfer's number within its manager (unique per manager and its clones).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The events from the very start, the first time it is called; afterwards, like
    /// [`Transfer::subscribe`].
    pub fn events(&mut self) -> EventStream {
        match self.first.take() {
            Some(stream) => stream,
            None => self.subscribe(),
        }
    }

    /// The events from now on (any number of subscribers).
    pub fn subscribe(&self) -> EventStream {
        Transfer::subscribe_queue(&self.controller.shared)
    }

    /// A `watch` receiver of the progress snapshot.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// The progress now.
    pub fn snapshot(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// A controller that can be moved to other tasks (it keeps the transfer alive).
    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    /// This transfer's controller, borrowed: `transfer.control().pause().await`.
    pub fn control(&self) -> &Controller {
        &self.controller
    }

    /// Wait for the outcome. Every ascp process has been reaped when this returns. The events
    /// from the start that [`Transfer::events`] was never asked for are dropped here.
    pub async fn wait(mut self) -> Result<Summary, TransferError> {
        drop(self.first.take());
        let task = self.task.take();
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

impl Controller {
    fn request(&self, req: Request) -> Result<(), ControlError> {
        // A request holds rates, a policy or file paths: nothing secret.
        tracing::debug!(request = ?req, "control requested");
        let result = self.shared.with(|c, now| c.core.control(now, req));
        if let Err(e) = &result {
            tracing::debug!(error = %e, "control refused");
        }
        result
    }

    /// Change the target and minimum rates (Kbps, totals: a multi-session transfer splits
    /// them over the parts still running). While paused they are kept for
    /// [`Controller::resume`] and the transfer stays paused. `set_rate(0, 0)` is a pause. A
    /// minimum above the target is refused.
    pub async fn set_rate(&self, target_kbps: u64, min_kbps: u64) -> Result<(), ControlError> {
        self.request(Request::Rate {
            target: Some(target_kbps),
            min: Some(min_kbps),
            policy: None,
        })
    }

    /// Change only the target rate (Kbps).
    pub async fn set_target_rate(&self, target_kbps: u64) -> Result<(), ControlError> {
        self.request(Request::Rate {
            target: Some(target_kbps),
            min: None,
            policy: None,
        })
    }

    /// Change any subset of target rate, minimum rate and policy at once.
    pub async fn set_rates_and_policy(
        &self,
        target_kbps: Option<u64>,
        min_kbps: Option<u64>,
        policy: Option<RatePolicy>,
    ) -> Result<(), ControlError> {
        self.request(Request::Rate {
            target: target_kbps,
            min: min_kbps,
            policy,
        })
    }

    /// Change the policy (sent as the exact `Adaptive`/`Priority` words ascp accepts).
    pub async fn set_policy(&self, policy: RatePolicy) -> Result<(), ControlError> {
        self.request(Request::Rate {
            target: None,
            min: None,
            policy: Some(policy),
        })
    }

    /// Pause: rates to 0. [`Controller::resume`] restores the rates last set by the caller,
    /// or else those ascp last reported. Pausing twice is pausing once.
    pub async fn pause(&self) -> Result<(), ControlError> {
        self.request(Request::Pause)
    }

    /// Resume after [`Controller::pause`].
    pub async fn resume(&self) -> Result<(), ControlError> {
        self.request(Request::Resume)
    }

    /// Add a file to a persistent (`keepalive`) session, optionally a byte range of it
    /// ([`ControlError::NotPersistent`] otherwise).
    pub async fn add_file(
        &self,
        source: impl Into<String>,
        destination: impl Into<String>,
        range: Option<ByteRange>,
    ) -> Result<(), ControlError> {
        let mut start = StartFile::new(source, destination);
        start.range = range;
        self.request(Request::AddFile(start))
    }

    /// Stop one file of a persistent session.
    pub async fn stop_file(&self, source: impl Into<String>) -> Result<(), ControlError> {
        self.request(Request::StopFile(StopFile::new(source)))
    }

    /// End a persistent session: `Linger` finishes the queued files first, `Shutdown` does not.
    pub async fn finish(&self, how: DoneOperation) -> Result<(), ControlError> {
        self.request(Request::Finish(how))
    }

    /// Cancel, and return at once: a transfer waiting for a slot ends without ever spawning
    /// ascp; a running ascp gets `CANCEL` when its connection is up, then SIGTERM, then
    /// SIGKILL if it does not end within the grace periods (a real ascp ignores its
    /// management socket during session initiation). A part whose `DONE` has arrived is left
    /// to end well. [`Transfer::wait`] returns once every ascp is reaped.
    pub async fn cancel(&self) -> Result<(), ControlError> {
        self.request(Request::Cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_one_rate_message() {
        for p in RatePolicy::ALL {
            let r = rate_change(*p);
            assert_eq!((r.policy, r.priority), {
                let (a, pr) = p.to_wire();
                (Some(a), pr)
            });
            assert_eq!((r.rate_kbps, r.min_rate_kbps), (None, None));
        }
    }
}
