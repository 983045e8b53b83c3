//! The sans-IO core of one transfer: every decision, none of the IO.
//!
//! [`Core`] is a deterministic state machine in the manner of quinn-proto. It is fed inputs
//! (a slot granted, a child spawned or exited, a connection offered with its ownership
//! verdict, a frame, damaged bytes, a closed socket, stderr bytes, a control request, the
//! time passing) and answers with [`Output`]s (spawn an attempt, write this control, signal
//! this process group, emit this event, the attempt is over, the transfer finished). It holds
//! no socket, no process, no task and no clock: time is a [`Duration`] since the transfer was
//! created, given with every input, and [`Core::poll_timeout`] says when it next wants to be
//! woken. The driver (`driver.rs`) only moves bytes, signals and timers.
//!
//! Rules it enforces (docs/architecture.md has the full list):
//! * a frame is interpreted only from a connection adopted for the running attempt: one the
//!   kernel shows held by the child's process group, or whose first frame is an `INIT`
//!   echoing the secret cookie given to the child in its environment;
//! * a `DONE` received beats a later cancel; a management connection lost without an
//!   outcome is retryable; nothing is counted twice across retries;
//! * pause, resume and rate changes compose: a rate set while paused is what resume
//!   restores, and the transfer stays paused until then;
//! * rates are split over the parts still running;
//! * a queued transfer that is cancelled never spawns; cancel answers at once.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use fasp_mgmt_proto::{
    Control, DecodeError, DoneOperation, FieldError, Frame, Message, QueryAnswer, RateChange,
    StartFile, StatsView, StopFile, codes,
};
use fasp_spec::{Direction, RatePolicy};

use crate::error::{FileFailure, TransferError};
use crate::event::{Event, EventKind, FileInfo, Rates, SessionInfo, SessionTotals};
use crate::options::RetryPolicy;
use crate::progress::{Progress, Tracker, TransferState};
use crate::transfer::{ControlError, SessionSummary, Summary, rate_change};

/// Time since the transfer was created.
pub(crate) type Time = Duration;

/// Bytes of stderr kept for error reports.
const STDERR_TAIL: usize = 8 * 1024;

/// Rejected connections reported per attempt (more are refused silently: a hostile local
/// process must not be able to grow a subscriber's queue).
const FOREIGN_REPORTS: u32 = 16;

/// What the kernel says about who holds the other end of a management connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// A socket of the child or of a process in its process group.
    Owned,
    /// The kernel can no longer tell (the peer already closed: inode 0), or no `/proc`.
    Unknown,
    /// Held by a process outside the child's group, as far as a racy look can tell.
    Foreign,
}

/// A signal for the child's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    Term,
    Kill,
}

/// Whether a connection is adopted as the attempt's management connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Adopt,
    Reject,
}

/// A caller's request.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// Any of target rate, minimum rate (totals, Kbps) and policy.
    Rate {
        target: Option<u64>,
        min: Option<u64>,
        policy: Option<RatePolicy>,
    },
    Pause,
    Resume,
    Cancel,
    AddFile(StartFile),
    StopFile(StopFile),
    Finish(DoneOperation),
}

/// What the core asks of its driver.
#[derive(Debug)]
// Outputs are drained as soon as they are made (a short VecDeque), never stored in bulk: the
// size of `Emit` (an event holding its frame inline) costs nothing worth a box per event.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// Start attempt `attempt` of `part` with these rates (the part's share).
    Spawn {
        part: u32,
        attempt: u32,
        target_kbps: Option<u64>,
        min_kbps: Option<u64>,
    },
    /// Write this control on the attempt's management connection.
    Write {
        part: u32,
        attempt: u32,
        msg: Control,
    },
    /// Signal the attempt's process group and the processes descending from the child.
    Signal {
        part: u32,
        attempt: u32,
        pid: u32,
        sig: Sig,
    },
    /// Hand this event to listeners and subscribers.
    Emit(Event),
    /// The attempt is over: its child is reaped; close its connection, listener and files.
    AttemptEnded { part: u32, attempt: u32 },
    /// The transfer is over.
    Finished(Result<Summary, TransferError>),
}

/// Fixed settings of one transfer. Its `Debug` redacts the cookie.
#[derive(Clone)]
pub(crate) struct CoreConfig {
    pub(crate) parts: u32,
    pub(crate) retry: RetryPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) inactivity_timeout: Option<Duration>,
    pub(crate) cancel_grace: Duration,
    pub(crate) term_grace: Duration,
    pub(crate) exit_grace: Duration,
    pub(crate) query_answer: QueryAnswer,
    /// A persistent (`keepalive`) session: files come through `add_file`.
    pub(crate) persistent: bool,
    /// Target and minimum rate of the spec (totals), used until the caller sets others.
    pub(crate) spec_rates: (Option<u64>, Option<u64>),
    /// The cookie the child was given (`ASPERA_SCP_COOKIE`) and echoes in `INIT`.
    pub(crate) cookie: String,
}

impl std::fmt::Debug for CoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreConfig")
            .field("parts", &self.parts)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("inactivity_timeout", &self.inactivity_timeout)
            .field("persistent", &self.persistent)
            .field("spec_rates", &self.spec_rates)
            .field("cookie", &fasp_spec::REDACTED)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    None,
    /// CANCEL written.
    Asked,
    /// SIGTERM sent.
    Termed,
    /// SIGKILL sent.
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not started (waiting for a slot, or not yet begun).
    Idle,
    /// A spawn was asked of the driver.
    Spawning,
    /// A child is running (or being reaped).
    Running,
    /// Waiting before the next attempt.
    Backoff(Time),
    /// Finished, with `Part::result`.
    Ended,
}

/// One attempt's state (reset for each attempt).
#[derive(Debug, Default)]
struct Attempt {
    pid: Option<u32>,
    connect_deadline: Option<Time>,
    exited: Option<ExitStatus>,
    /// `Exited` was emitted (after what the connection still held: the last frames come
    /// first).
    exit_reported: bool,
    /// A connection was adopted.
    connected: bool,
    /// The adopted connection has not reached its end.
    conn_open: bool,
    write_ok: bool,
    listener_closed: bool,
    candidates: u32,
    stderr: VecDeque<u8>,
    stderr_closed: bool,
    stop: Option<Stop>,
    stop_at: Option<Time>,
    /// After the connection ended without an exit: when to stop ascp.
    linger_at: Option<Time>,
    /// After the exit: the longest wait for the connection, stderr and the listener.
    drain_at: Option<Time>,
    last_activity: Time,
    hung: bool,
    connect_timed_out: bool,
    seen_init: bool,
    seen_session: bool,
    keepalive: bool,
    open_sessions: Vec<String>,
    any_done: bool,
    last_error: Option<(u64, String, Option<String>)>,
    protocol_error: Option<String>,
    read_error: Option<String>,
    files_in_flight: HashSet<String>,
    foreign_reported: u32,
}

impl Attempt {
    fn stop(&self) -> Stop {
        self.stop.unwrap_or(Stop::None)
    }

    /// DONE received and no session left open: the outcome is success, whatever comes after.
    fn succeeded(&self) -> bool {
        self.any_done && self.open_sessions.is_empty() && self.protocol_error.is_none()
    }

    fn writable(&self) -> bool {
        self.connected && self.conn_open && self.write_ok && self.stop() == Stop::None
    }

    /// Everything of the attempt is settled: the child reaped, the connection read to its
    /// end, stderr closed, the listener closed with no connection left unexamined.
    fn settled(&self) -> bool {
        self.exited.is_some()
            && !self.conn_open
            && self.stderr_closed
            && self.listener_closed
            && self.candidates == 0
    }

    fn stderr_text(&self) -> String {
        let (a, b) = self.stderr.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).trim_end().to_string()
    }
}

#[derive(Debug)]
struct Part {
    index: u32,
    stage: Stage,
    attempt: u32,
    a: Attempt,
    /// The rates ascp last reported while not paused.
    last_rates: Option<(u64, u64)>,
    /// This part must stop: the caller cancelled, or another part failed for good.
    cancel: bool,
    /// Controls asked while no connection was up (before the first spawn, while spawning or
    /// connecting, between attempts), written in order once one is adopted.
    pending: Vec<Control>,
    result: Option<Result<(), TransferError>>,
}

/// The state machine of one transfer. See the module documentation.
#[derive(Debug)]
pub(crate) struct Core {
    cfg: CoreConfig,
    parts: Vec<Part>,
    out: VecDeque<Output>,
    tracker: Tracker,
    progress: Progress,
    progress_dirty: bool,
    queued: bool,
    cancelled: bool,
    paused: bool,
    /// The caller's totals (None: the spec's).
    want_target: Option<u64>,
    want_min: Option<u64>,
    sessions: Vec<SessionSummary>,
    failed_files: Vec<FileFailure>,
    finished: bool,
    /// The root cause when a part failed for good (other parts are then stopped).
    failure: Option<usize>,
}

/// Part `i` of `n` of a total (the remainder goes to the first parts).
pub(crate) fn share(total: u64, i: usize, n: usize) -> u64 {
    let n = n.max(1) as u64;
    total / n + u64::from((i as u64) < total % n)
}

impl Core {
    pub(crate) fn new(cfg: CoreConfig) -> Core {
        let parts = (0..cfg.parts.max(1))
            .map(|index| Part {
                index,
                stage: Stage::Idle,
                attempt: 0,
                a: Attempt::default(),
                last_rates: None,
                cancel: false,
                pending: Vec::new(),
                result: None,
            })
            .collect();
        let count = cfg.parts.max(1) as usize;
        Core {
            cfg,
            parts,
            out: VecDeque::new(),
            tracker: Tracker::new(count),
            progress: Progress::default(),
            progress_dirty: true,
            queued: false,
            cancelled: false,
            paused: false,
            want_target: None,
            want_min: None,
            sessions: Vec::new(),
            failed_files: Vec::new(),
            finished: false,
            failure: None,
        }
    }

    // ----- what the driver reads -----

    /// The next thing to do, in order.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The progress snapshot, when it changed since the last call.
    pub(crate) fn take_progress(&mut self) -> Option<&Progress> {
        if self.progress_dirty {
            self.progress_dirty = false;
            Some(&self.progress)
        } else {
            None
        }
    }

    #[cfg(test)]
    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Whether the driver may still spawn this attempt (checked right before spawning).
    pub(crate) fn spawn_allowed(&self, part: u32, attempt: u32) -> bool {
        self.part(part, attempt)
            .is_some_and(|p| p.stage == Stage::Spawning && !p.cancel)
    }

    /// The earliest time the core wants [`Core::handle_timeout`] called.
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut at = |t: Option<Time>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for p in &self.parts {
            match p.stage {
                Stage::Backoff(until) => at(Some(until)),
                Stage::Running => {
                    let a = &p.a;
                    if a.exited.is_none() {
                        if !a.connected && a.stop() == Stop::None {
                            at(a.connect_deadline);
                        }
                        at(a.stop_at);
                        at(a.linger_at);
                        at(self.idle_deadline(a));
                    }
                    at(a.drain_at);
                }
                _ => {}
            }
        }
        next
    }

    fn idle_deadline(&self, a: &Attempt) -> Option<Time> {
        let timeout = self.cfg.inactivity_timeout?;
        let waiting_for_files =
            (a.keepalive || self.cfg.persistent) && a.seen_session && a.files_in_flight.is_empty();
        (a.connected && a.conn_open && a.stop() == Stop::None && !waiting_for_files)
            .then_some(a.last_activity + timeout)
    }

    // ----- inputs -----

    /// Begin: all parts start, or the transfer waits in line for a slot.
    pub(crate) fn begin(&mut self, now: Time, have_slot: bool) {
        if self.finished {
            // Cancelled before the transfer's task began: nothing to start.
            return;
        }
        if have_slot {
            self.start_parts(now);
        } else {
            self.queued = true;
            self.set_state(now, TransferState::Queued);
            self.emit(now, 0, 0, None, EventKind::Queued, None);
        }
    }

    /// The concurrency limit let the transfer run.
    pub(crate) fn slot_granted(&mut self, now: Time) {
        if self.queued && !self.finished {
            self.queued = false;
            self.start_parts(now);
        }
    }

    fn start_parts(&mut self, now: Time) {
        self.set_state(now, TransferState::Starting);
        for i in 0..self.parts.len() {
            if self.parts[i].stage == Stage::Idle {
                self.start_attempt(now, i);
            }
        }
    }

    fn start_attempt(&mut self, now: Time, i: usize) {
        let (target, min) = self.rates_for(i);
        let p = &mut self.parts[i];
        p.attempt += 1;
        p.a = Attempt::default();
        p.stage = Stage::Spawning;
        let (part, attempt) = (p.index, p.attempt);
        self.out.push_back(Output::Spawn {
            part,
            attempt,
            target_kbps: target,
            min_kbps: min,
        });
        let _ = now;
    }

    /// The driver gave up spawning because [`Core::spawn_allowed`] said no.
    pub(crate) fn spawn_aborted(&mut self, now: Time, part: u32, attempt: u32) {
        if let Some(i) = self.index(part, attempt) {
            if self.parts[i].stage == Stage::Spawning {
                self.end_part(now, i, Err(TransferError::Cancelled { forced: false }));
            }
        }
    }

    pub(crate) fn spawned(&mut self, now: Time, part: u32, attempt: u32, pid: u32) {
        let Some(i) = self.index(part, attempt) else {
            return;
        };
        let p = &mut self.parts[i];
        if p.stage != Stage::Spawning {
            return;
        }
        p.stage = Stage::Running;
        p.a.pid = Some(pid);
        p.a.connect_deadline = Some(now + self.cfg.connect_timeout);
        p.a.last_activity = now;
        if self.paused {
            p.pending.push(Control::Rate(RateChange::pause()));
        }
        let cancel = p.cancel;
        self.emit(now, part, attempt, None, EventKind::Spawned { pid }, None);
        if self.progress.state == TransferState::Retrying {
            self.set_state(now, TransferState::Starting);
        }
        if cancel {
            // Cancelled between the check and the spawn: stop it at once.
            self.begin_stop(now, i, false);
        }
    }

    pub(crate) fn spawn_failed(&mut self, now: Time, part: u32, attempt: u32, e: TransferError) {
        if let Some(i) = self.index(part, attempt) {
            if self.parts[i].stage == Stage::Spawning {
                self.end_part(now, i, Err(e));
            }
        }
    }

    /// A connection reached the attempt's listener; [`Core::connection`] follows.
    pub(crate) fn candidate_opened(&mut self, part: u32, attempt: u32) {
        if let Some(i) = self.index(part, attempt) {
            self.parts[i].a.candidates += 1;
        }
    }

    /// The listener is closed and no connection is left in its backlog.
    pub(crate) fn listener_closed(&mut self, now: Time, part: u32, attempt: u32) {
        if let Some(i) = self.index(part, attempt) {
            self.parts[i].a.listener_closed = true;
            self.check_settled(now, i);
        }
    }

    /// A connection to examine. `first` is its first frame when the driver had to read it
    /// (the kernel did not show it as the child's). The answer says whether to keep it; when
    /// adopted, `first` has been interpreted already.
    pub(crate) fn connection(
        &mut self,
        now: Time,
        part: u32,
        attempt: u32,
        peer: SocketAddr,
        verdict: Ownership,
        first: Option<Frame>,
    ) -> Admit {
        let Some(i) = self.index(part, attempt) else {
            return Admit::Reject;
        };
        let a = &mut self.parts[i].a;
        a.candidates = a.candidates.saturating_sub(1);
        let running = self.parts[i].stage == Stage::Running;
        let proven = match &first {
            Some(frame) => self.cookie_proven(frame),
            None => false,
        };
        let admit =
            running && !self.parts[i].a.connected && (verdict == Ownership::Owned || proven);
        if !admit {
            let a = &mut self.parts[i].a;
            if a.foreign_reported < FOREIGN_REPORTS {
                a.foreign_reported += 1;
                self.emit(
                    now,
                    part,
                    attempt,
                    None,
                    EventKind::ForeignConnectionRejected { peer },
                    None,
                );
            }
            self.check_settled(now, i);
            return Admit::Reject;
        }
        let a = &mut self.parts[i].a;
        a.connected = true;
        a.conn_open = true;
        a.write_ok = true;
        a.last_activity = now;
        self.emit(now, part, attempt, None, EventKind::Connected, None);
        let pending = std::mem::take(&mut self.parts[i].pending);
        if self.parts[i].a.stop() == Stop::None {
            for msg in pending {
                self.write(now, i, msg);
            }
        }
        if let Some(frame) = first {
            self.frame(now, part, attempt, frame);
        }
        Admit::Adopt
    }

    fn cookie_proven(&self, frame: &Frame) -> bool {
        match Message::from_frame(frame) {
            Ok(Message::Init(init)) => init
                .cookie
                .is_some_and(|c| constant_time_eq(c.expose(), &self.cfg.cookie)),
            _ => false,
        }
    }

    pub(crate) fn malformed(&mut self, now: Time, part: u32, attempt: u32, e: DecodeError) {
        if let Some(i) = self.index(part, attempt) {
            self.parts[i].a.last_activity = now;
            self.emit(now, part, attempt, None, EventKind::Malformed(e), None);
        }
    }

    /// The adopted connection reached its end (`error`: how it broke, if it did).
    pub(crate) fn conn_closed(
        &mut self,
        now: Time,
        part: u32,
        attempt: u32,
        error: Option<String>,
    ) {
        let Some(i) = self.index(part, attempt) else {
            return;
        };
        let grace = self.cfg.exit_grace;
        let a = &mut self.parts[i].a;
        if !a.conn_open {
            return;
        }
        a.conn_open = false;
        if error.is_some() {
            a.read_error = error;
        }
        if a.exited.is_none() {
            a.linger_at = Some(now + grace);
        }
        self.report_exit(now, i);
        self.check_settled(now, i);
    }

    pub(crate) fn write_failed(&mut self, part: u32, attempt: u32) {
        if let Some(i) = self.index(part, attempt) {
            self.parts[i].a.write_ok = false;
        }
    }

    pub(crate) fn stderr(&mut self, part: u32, attempt: u32, bytes: &[u8]) {
        if let Some(i) = self.index(part, attempt) {
            let buf = &mut self.parts[i].a.stderr;
            buf.extend(bytes);
            let excess = buf.len().saturating_sub(STDERR_TAIL);
            buf.drain(..excess);
        }
    }

    pub(crate) fn stderr_closed(&mut self, now: Time, part: u32, attempt: u32) {
        if let Some(i) = self.index(part, attempt) {
            self.parts[i].a.stderr_closed = true;
            self.check_settled(now, i);
        }
    }

    /// The child was reaped.
    pub(crate) fn exited(&mut self, now: Time, part: u32, attempt: u32, status: ExitStatus) {
        let Some(i) = self.index(part, attempt) else {
            return;
        };
        let grace = self.cfg.exit_grace;
        let a = &mut self.parts[i].a;
        if a.exited.is_some() {
            return;
        }
        a.exited = Some(status);
        a.stop_at = None;
        a.linger_at = None;
        a.drain_at = Some(now + grace);
        self.report_exit(now, i);
        self.check_settled(now, i);
    }

    /// Emit `Exited` once the child is reaped and its connection read to the end (so the
    /// frames it wrote before exiting come first).
    fn report_exit(&mut self, now: Time, i: usize) {
        let p = &mut self.parts[i];
        let (part, attempt) = (p.index, p.attempt);
        match p.a.exited {
            Some(status) if !p.a.exit_reported && !p.a.conn_open => {
                p.a.exit_reported = true;
                self.emit(now, part, attempt, None, EventKind::Exited { status }, None);
            }
            _ => {}
        }
    }

    /// Time passed: act on every deadline that is due.
    pub(crate) fn handle_timeout(&mut self, now: Time) {
        for i in 0..self.parts.len() {
            match self.parts[i].stage {
                Stage::Backoff(until) if until <= now => {
                    if self.parts[i].cancel || self.cancelled {
                        self.end_part(now, i, Err(TransferError::Cancelled { forced: false }));
                    } else {
                        self.start_attempt(now, i);
                    }
                }
                Stage::Running => self.running_timeouts(now, i),
                _ => {}
            }
        }
    }

    fn running_timeouts(&mut self, now: Time, i: usize) {
        let due = |t: Option<Time>| t.is_some_and(|t| t <= now);
        let a = &self.parts[i].a;
        if a.exited.is_none() {
            if !a.connected && a.stop() == Stop::None && due(a.connect_deadline) {
                self.parts[i].a.connect_timed_out = true;
                self.signal(now, i, Sig::Kill);
                return;
            }
            if due(a.stop_at) {
                self.escalate(now, i);
            }
            let a = &self.parts[i].a;
            if due(a.linger_at) {
                self.parts[i].a.linger_at = None;
                // The connection ended but ascp stays: stop it.
                self.begin_stop(now, i, false);
            }
            if due(self.idle_deadline(&self.parts[i].a)) {
                let a = &self.parts[i].a;
                let _ = a;
                self.parts[i].a.hung = true;
                self.begin_stop(now, i, true);
            }
        }
        let a = &mut self.parts[i].a;
        if due(a.drain_at) {
            // Stop waiting for what the exited child left behind.
            a.drain_at = None;
            a.conn_open = false;
            a.stderr_closed = true;
            a.listener_closed = true;
            a.candidates = 0;
            self.report_exit(now, i);
            self.check_settled(now, i);
        }
    }

    /// A frame from the adopted connection.
    pub(crate) fn frame(&mut self, now: Time, part: u32, attempt: u32, frame: Frame) {
        let Some(i) = self.index(part, attempt) else {
            return;
        };
        if !self.parts[i].a.connected {
            return;
        }
        self.parts[i].a.last_activity = now;
        if let Some((sid, kind)) = self.file_event(i, &frame) {
            // A per-file message, read through the lazy view (it sets no rates).
            let protocol_error = self.parts[i].a.protocol_error.is_some();
            self.emit(now, part, attempt, sid, kind, Some(frame));
            if protocol_error && self.parts[i].a.stop() == Stop::None {
                self.begin_stop(now, i, false);
            }
            return;
        }
        let message = match Message::from_frame(&frame) {
            Ok(m) => m,
            Err(e) => {
                let sid = frame.get("SessionId").map(Arc::from);
                self.emit(
                    now,
                    part,
                    attempt,
                    sid,
                    EventKind::InvalidFrame(e),
                    Some(frame),
                );
                return;
            }
        };
        let sid: Option<Arc<str>> = message.session_id().map(Arc::from);
        let a = &mut self.parts[i].a;
        let kind = match &message {
            Message::Init(init) => {
                if let Some(c) = &init.cookie {
                    if !constant_time_eq(c.expose(), &self.cfg.cookie) {
                        a.protocol_error = Some(
                            "INIT carried a cookie other than the one this manager gave its ascp"
                                .into(),
                        );
                    }
                }
                a.seen_init = true;
                if let Some(s) = &sid {
                    if !a.open_sessions.iter().any(|o| **o == **s) {
                        a.open_sessions.push(s.to_string());
                    }
                }
                EventKind::SessionInit {
                    direction: init.direction.and_then(Direction::from_wire),
                    operation: init.operation.map(|o| o.to_string()),
                }
            }
            Message::Session(s) => {
                a.seen_session = true;
                if s.keepalive == Some(true) {
                    a.keepalive = true;
                }
                let rates = Rates {
                    target_kbps: s.rate_kbps,
                    min_kbps: s.min_rate_kbps,
                    policy: RatePolicy::from_wire(s.adaptive, s.priority),
                };
                EventKind::SessionStarted(Box::new(SessionInfo {
                    direction: s.direction.and_then(Direction::from_wire),
                    host: s.host.map(str::to_owned),
                    user: s.user.map(str::to_owned),
                    tcp_port: s.tcp_port,
                    udp_port: s.port,
                    rates,
                    encryption: s.encryption,
                    cipher: s.cipher.map(str::to_owned),
                    sources: s.sources().map(|c| c.into_owned()).collect(),
                    destination: s.destination.as_deref().map(str::to_owned),
                    keepalive: s.keepalive,
                    rate_lock: s.rate_lock,
                    min_rate_lock: s.min_rate_lock,
                    policy_lock: s.policy_lock,
                    rate_cap_kbps: s.rate_cap_kbps,
                    fallback_protocol: s.fallback_protocol.map(str::to_owned),
                }))
            }
            Message::Notification(n) => match n.pre_transfer {
                Some(pre) => EventKind::JobSize {
                    files: pre.files,
                    bytes: pre.bytes,
                },
                None => EventKind::RateChanged(Rates {
                    target_kbps: n.rate_kbps,
                    min_kbps: n.min_rate_kbps,
                    policy: RatePolicy::from_wire(n.adaptive, n.priority),
                }),
            },
            Message::Stats(st) => {
                let info = file_info_eager(st);
                if a.files_in_flight.contains(&info.file) {
                    EventKind::FileProgress(info)
                } else {
                    a.files_in_flight.insert(info.file.clone());
                    EventKind::FileStarted(info)
                }
            }
            Message::Stop(st) => {
                let info = file_info_eager(st);
                a.files_in_flight.remove(&info.file);
                EventKind::FileDone(info)
            }
            Message::Skip(st) => {
                let info = file_info_eager(st);
                a.files_in_flight.remove(&info.file);
                EventKind::FileSkipped(info)
            }
            Message::FileError(fe) => {
                let info = file_info_eager(&fe.stats);
                a.files_in_flight.remove(&info.file);
                let description = fe.description.unwrap_or("").to_owned();
                self.failed_files.push(FileFailure {
                    file: info.file.clone(),
                    code: fe.code,
                    description: description.clone(),
                });
                EventKind::FileFailed {
                    file: info,
                    code: fe.code,
                    description,
                }
            }
            Message::ArgStop(x) => EventKind::ArgDone {
                source: x.file.as_deref().unwrap_or("").to_owned(),
                attempted: x.attempted.unwrap_or(0),
                passed: x.passed.unwrap_or(0),
                skipped: x.skipped.unwrap_or(0),
                failed: x.failed.unwrap_or(0),
            },
            Message::Done(d) => {
                let totals = totals(d);
                if let Some(s) = &sid {
                    a.open_sessions.retain(|o| **o != **s);
                }
                a.any_done = true;
                self.sessions.push(SessionSummary {
                    session_id: sid.as_deref().unwrap_or("").to_owned(),
                    part,
                    attempt,
                    error_code: None,
                    lost: false,
                    totals: totals.clone(),
                });
                EventKind::SessionDone(totals)
            }
            Message::Error(e) => {
                let code = e.code.unwrap_or(1);
                let description = e.description.unwrap_or("").trim_end().to_owned();
                if let Some(s) = &sid {
                    a.open_sessions.retain(|o| **o != **s);
                }
                self.sessions.push(SessionSummary {
                    session_id: sid.as_deref().unwrap_or("").to_owned(),
                    part,
                    attempt,
                    error_code: Some(code),
                    lost: false,
                    totals: totals(&e.end),
                });
                a.last_error = Some((code, description.clone(), sid.as_deref().map(str::to_owned)));
                EventKind::SessionFailed {
                    code,
                    description,
                    retryable: codes::is_retryable(code),
                }
            }
            Message::Query(q) => {
                let answer = self.cfg.query_answer;
                let kind = EventKind::Query {
                    query: q.query.unwrap_or("").to_owned(),
                    allowed: answer == QueryAnswer::Allowed,
                };
                // The answer is written whatever the stop state: ascp waits for it.
                if a.connected && a.conn_open && a.write_ok {
                    self.out.push_back(Output::Write {
                        part,
                        attempt,
                        msg: Control::QueryResponse(answer),
                    });
                }
                kind
            }
            _ => EventKind::Unknown,
        };
        // Rates in force, remembered for resume (not those of a pause).
        if let EventKind::SessionStarted(s) = &kind {
            self.note_rates(i, &s.rates);
        } else if let EventKind::RateChanged(r) = &kind {
            self.note_rates(i, r);
        }
        let protocol_error = self.parts[i].a.protocol_error.is_some();
        self.emit(now, part, attempt, sid, kind, Some(frame));
        if protocol_error && self.parts[i].a.stop() == Stop::None {
            // Not talking to our ascp as agreed: stop it.
            self.begin_stop(now, i, false);
        }
    }

    /// `STATS`, `STOP` and `SKIP`, nearly every frame of a transfer, read through the lazy
    /// [`StatsView`]: only the figures a [`FileInfo`] holds (and the session id) are parsed, not
    /// every field as [`Message::from_frame`] does. `None` for any other message, and when a
    /// figure read here does not parse: the eager path then reports the frame as
    /// [`EventKind::InvalidFrame`]. A bad figure in a field the manager does not read no longer
    /// makes the frame invalid.
    fn file_event(&mut self, i: usize, frame: &Frame) -> Option<(Option<Arc<str>>, EventKind)> {
        let view = StatsView::from_frame(frame).ok()?;
        let message = view.message();
        if message == "FILEERROR" {
            return None;
        }
        let info = file_info(&view).ok()?;
        let sid = view.session_id().map(Arc::from);
        let a = &mut self.parts[i].a;
        let kind = if message == "STATS" {
            if a.files_in_flight.contains(&info.file) {
                EventKind::FileProgress(info)
            } else {
                a.files_in_flight.insert(info.file.clone());
                EventKind::FileStarted(info)
            }
        } else {
            a.files_in_flight.remove(&info.file);
            if message == "STOP" {
                EventKind::FileDone(info)
            } else {
                EventKind::FileSkipped(info)
            }
        };
        Some((sid, kind))
    }

    fn note_rates(&mut self, i: usize, rates: &Rates) {
        if let (Some(t), Some(m)) = (rates.target_kbps, rates.min_kbps) {
            let p = &mut self.parts[i];
            if t > 0 && (!self.paused || p.last_rates.is_none()) {
                p.last_rates = Some((t, m));
            }
        }
    }

    /// A caller's request. Errors say why it cannot be done; nothing is half done.
    pub(crate) fn control(&mut self, now: Time, req: Request) -> Result<(), ControlError> {
        if self.finished {
            return Err(ControlError::Ended);
        }
        match req {
            Request::Cancel => {
                self.cancel(now);
                Ok(())
            }
            Request::Pause => {
                self.live_or_ended()?;
                self.pause(now);
                Ok(())
            }
            Request::Resume => {
                self.live_or_ended()?;
                self.resume(now);
                Ok(())
            }
            Request::Rate {
                target,
                min,
                policy,
            } => self.set_rate(now, target, min, policy),
            Request::AddFile(start) => {
                self.persistent_only()?;
                let msg = Control::Start(start);
                validate(&msg)?;
                let i = self.live_or_ended()?[0];
                self.write(now, i, msg);
                Ok(())
            }
            Request::StopFile(stop) => {
                self.persistent_only()?;
                self.send_to_live(now, Control::Stop(stop))
            }
            Request::Finish(how) => {
                self.persistent_only()?;
                self.send_to_live(now, Control::Done(how))
            }
        }
    }

    fn persistent_only(&self) -> Result<(), ControlError> {
        let keepalive = self.parts.iter().any(|p| p.a.keepalive);
        if self.cfg.persistent || keepalive {
            Ok(())
        } else {
            Err(ControlError::NotPersistent)
        }
    }

    /// Parts that still take controls: not ended, outcome not yet known.
    fn live(&self) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| {
                let p = &self.parts[i];
                p.stage != Stage::Ended && !p.cancel && !p.a.succeeded()
            })
            .collect()
    }

    fn live_or_ended(&self) -> Result<Vec<usize>, ControlError> {
        let live = self.live();
        if live.is_empty() {
            Err(ControlError::Ended)
        } else {
            Ok(live)
        }
    }

    fn send_to_live(&mut self, now: Time, msg: Control) -> Result<(), ControlError> {
        validate(&msg)?;
        for i in self.live_or_ended()? {
            self.write(now, i, msg.clone());
        }
        Ok(())
    }

    /// The rates part `i` is to run at: the caller's (or the spec's) totals split over the
    /// live parts.
    fn rates_for(&self, i: usize) -> (Option<u64>, Option<u64>) {
        let live = self.live();
        let n = live.len().max(1);
        let k = live.iter().position(|&j| j == i).unwrap_or(0);
        let target = self.want_target.or(self.cfg.spec_rates.0);
        let min = self.want_min.or(self.cfg.spec_rates.1);
        (target.map(|t| share(t, k, n)), min.map(|m| share(m, k, n)))
    }

    fn set_rate(
        &mut self,
        now: Time,
        target: Option<u64>,
        min: Option<u64>,
        policy: Option<RatePolicy>,
    ) -> Result<(), ControlError> {
        if target.is_none() && min.is_none() && policy.is_none() {
            return Err(ControlError::Invalid {
                reason: "a rate change needs a target rate, a minimum rate or a policy".into(),
            });
        }
        let eff_target = target.or(self.want_target).or(self.cfg.spec_rates.0);
        if let (Some(t), Some(m)) = (eff_target, min) {
            if t > 0 && m > t {
                return Err(ControlError::Invalid {
                    reason: format!("minimum rate {m} Kbps is above the target rate {t} Kbps"),
                });
            }
        }
        let live = self.live_or_ended()?;
        if target == Some(0) && min.unwrap_or(0) == 0 && policy.is_none() {
            // Rate 0: that is a pause, and resume brings back the rates before it.
            self.pause(now);
            return Ok(());
        }
        if target.is_some() {
            self.want_target = target;
        }
        if min.is_some() {
            self.want_min = min;
        }
        if self.paused && policy.is_none() {
            // Kept for resume; the transfer stays paused.
            return Ok(());
        }
        let n = live.len();
        for (k, &i) in live.iter().enumerate() {
            let mut change = policy.map(rate_change).unwrap_or_default();
            if !self.paused {
                change.rate_kbps = target.map(|t| share(t, k, n));
                change.min_rate_kbps = min.map(|m| share(m, k, n));
            }
            self.write(now, i, Control::Rate(change));
        }
        Ok(())
    }

    fn pause(&mut self, now: Time) {
        if self.paused {
            return;
        }
        self.paused = true;
        self.set_state(now, TransferState::Paused);
        let attempt = self.parts.iter().map(|p| p.attempt).max().unwrap_or(0);
        self.emit(now, 0, attempt, None, EventKind::Paused, None);
        for i in self.live() {
            self.write(now, i, Control::Rate(RateChange::pause()));
        }
    }

    fn resume(&mut self, now: Time) {
        if !self.paused {
            return;
        }
        self.paused = false;
        let state = if self.progress.files_started > 0 {
            TransferState::Transferring
        } else {
            TransferState::Starting
        };
        self.set_state(now, state);
        let attempt = self.parts.iter().map(|p| p.attempt).max().unwrap_or(0);
        self.emit(now, 0, attempt, None, EventKind::Resumed, None);
        let live = self.live();
        let n = live.len();
        for (k, &i) in live.iter().enumerate() {
            let last = self.parts[i].last_rates;
            let target = self
                .want_target
                .map(|t| share(t, k, n))
                .or(last.map(|l| l.0))
                .or(self.cfg.spec_rates.0.map(|t| share(t, k, n)));
            let min = self
                .want_min
                .map(|m| share(m, k, n))
                .or(last.map(|l| l.1))
                .or(self.cfg.spec_rates.1.map(|m| share(m, k, n)))
                .or(target.map(|_| 0));
            if let (Some(t), Some(m)) = (target, min) {
                self.write(now, i, Control::Rate(RateChange::rates(t, m.min(t))));
            }
        }
    }

    fn cancel(&mut self, now: Time) {
        self.cancelled = true;
        for i in 0..self.parts.len() {
            self.stop_part(now, i);
        }
    }

    /// Stop part `i` (cancel or another part's failure). A part whose outcome is known to be
    /// success is left to end on its own.
    fn stop_part(&mut self, now: Time, i: usize) {
        let p = &mut self.parts[i];
        if p.a.succeeded() || p.stage == Stage::Ended {
            return;
        }
        p.cancel = true;
        match p.stage {
            Stage::Idle | Stage::Backoff(_) => {
                self.end_part(now, i, Err(TransferError::Cancelled { forced: false }))
            }
            // The driver checks `spawn_allowed` before spawning.
            Stage::Spawning => {}
            Stage::Running => self.begin_stop(now, i, true),
            Stage::Ended => {}
        }
    }

    /// First step of stopping a running child: CANCEL when it can be written (and `polite`),
    /// else SIGTERM.
    fn begin_stop(&mut self, now: Time, i: usize, polite: bool) {
        let a = &self.parts[i].a;
        if a.exited.is_some() || a.stop() != Stop::None {
            return;
        }
        if polite && a.writable() {
            let (part, attempt) = (self.parts[i].index, self.parts[i].attempt);
            self.out.push_back(Output::Write {
                part,
                attempt,
                msg: Control::Cancel,
            });
            self.emit(
                now,
                part,
                attempt,
                None,
                EventKind::ControlSent(Control::Cancel),
                None,
            );
            let a = &mut self.parts[i].a;
            a.stop = Some(Stop::Asked);
            a.stop_at = Some(now + self.cfg.cancel_grace);
        } else {
            self.signal(now, i, Sig::Term);
        }
    }

    fn escalate(&mut self, now: Time, i: usize) {
        match self.parts[i].a.stop() {
            Stop::None | Stop::Asked => self.signal(now, i, Sig::Term),
            Stop::Termed => self.signal(now, i, Sig::Kill),
            Stop::Killed => self.parts[i].a.stop_at = None,
        }
    }

    fn signal(&mut self, now: Time, i: usize, sig: Sig) {
        let p = &mut self.parts[i];
        let Some(pid) = p.a.pid else { return };
        if p.a.exited.is_some() {
            return;
        }
        let (stop, next) = match sig {
            Sig::Term => (Stop::Termed, Some(now + self.cfg.term_grace)),
            Sig::Kill => (Stop::Killed, None),
        };
        p.a.stop = Some(p.a.stop().max(stop));
        p.a.stop_at = next;
        self.out.push_back(Output::Signal {
            part: p.index,
            attempt: p.attempt,
            pid,
            sig,
        });
    }

    /// Write a control to part `i`'s connection, or keep it for when it connects.
    fn write(&mut self, now: Time, i: usize, msg: Control) {
        let p = &mut self.parts[i];
        match p.stage {
            Stage::Running if p.a.writable() => {
                let (part, attempt) = (p.index, p.attempt);
                let frame = msg.to_frame().ok();
                self.out.push_back(Output::Write {
                    part,
                    attempt,
                    msg: msg.clone(),
                });
                self.emit(now, part, attempt, None, EventKind::ControlSent(msg), frame);
            }
            // Not connected (yet, or any more: a retry may follow): kept for the next
            // connection.
            Stage::Idle | Stage::Spawning | Stage::Backoff(_) | Stage::Running => {
                p.pending.push(msg)
            }
            Stage::Ended => {}
        }
    }

    /// Settled attempts end: an outcome, then a retry or the end of the part.
    fn check_settled(&mut self, now: Time, i: usize) {
        let p = &self.parts[i];
        if p.stage != Stage::Running || !p.a.settled() {
            return;
        }
        let (part, attempt) = (p.index, p.attempt);
        let result = self.attempt_outcome(i);
        // Sessions that began and never ended are listed too.
        for session_id in std::mem::take(&mut self.parts[i].a.open_sessions) {
            self.sessions.push(SessionSummary {
                session_id,
                part,
                attempt,
                error_code: None,
                lost: true,
                totals: SessionTotals::default(),
            });
        }
        self.out.push_back(Output::AttemptEnded { part, attempt });
        let retry = match &result {
            Err(e) => {
                e.is_retryable()
                    && attempt <= self.cfg.retry.max_retries
                    && !self.parts[i].cancel
                    && !self.cancelled
            }
            Ok(()) => false,
        };
        if let (true, Err(e)) = (retry, &result) {
            // Attempt n failed: this is retry n.
            let after = self.cfg.retry.backoff(attempt);
            self.parts[i].stage = Stage::Backoff(now + after);
            self.set_state(now, TransferState::Retrying);
            self.emit(
                now,
                part,
                attempt,
                None,
                EventKind::Retrying {
                    next_attempt: attempt + 1,
                    after,
                    reason: e.to_string(),
                },
                None,
            );
        } else {
            self.end_part(now, i, result);
        }
    }

    fn attempt_outcome(&mut self, i: usize) -> Result<(), TransferError> {
        use std::os::unix::process::ExitStatusExt;
        let cancel = self.parts[i].cancel;
        let a = &mut self.parts[i].a;
        let stderr_tail = a.stderr_text();
        let status = a.exited.unwrap_or_else(|| ExitStatus::from_raw(0));
        let forced = a.stop() >= Stop::Termed;
        if let Some(why) = a.protocol_error.take() {
            return Err(TransferError::Protocol(why));
        }
        if a.succeeded() {
            return Ok(());
        }
        if cancel {
            return Err(TransferError::Cancelled { forced });
        }
        if a.connect_timed_out {
            return Err(TransferError::ConnectTimeout {
                after: self.cfg.connect_timeout,
                stderr: stderr_tail,
            });
        }
        if a.hung {
            return Err(TransferError::Hung {
                idle: self.cfg.inactivity_timeout.unwrap_or_default(),
            });
        }
        if let Some((code, description, session_id)) = a.last_error.take() {
            return Err(TransferError::Fasp {
                code,
                meaning: codes::meaning(code),
                description,
                retryable: codes::is_retryable(code),
                session_id,
                stderr_tail,
                failed_files: self.failed_files.clone(),
            });
        }
        if let Some(signal) = status.signal() {
            if a.stop() < Stop::Termed {
                return Err(TransferError::Crashed {
                    signal,
                    stderr_tail,
                });
            }
        }
        if !a.connected {
            return Err(TransferError::ExitedBeforeConnecting {
                status,
                stderr: stderr_tail,
            });
        }
        // Connected, then the connection ended without DONE or ERROR: the management
        // connection was lost (ascp stops when it cannot write it). Worth another attempt.
        Err(TransferError::NoOutcome {
            status: Some(status),
            connection_error: a.read_error.take(),
            stderr_tail,
        })
    }

    fn end_part(&mut self, now: Time, i: usize, result: Result<(), TransferError>) {
        let failed_for_good =
            matches!(&result, Err(e) if !matches!(e, TransferError::Cancelled { .. }));
        self.parts[i].stage = Stage::Ended;
        self.parts[i].result = Some(result);
        self.tracker.part_ended(self.parts[i].index);
        if failed_for_good && self.failure.is_none() {
            self.failure = Some(i);
            // One part failing fails the transfer: stop the others.
            for j in 0..self.parts.len() {
                if j != i {
                    self.stop_part(now, j);
                }
            }
        }
        self.maybe_finish(now);
    }

    fn maybe_finish(&mut self, now: Time) {
        if self.finished || self.parts.iter().any(|p| p.stage != Stage::Ended) {
            return;
        }
        self.finished = true;
        let mut error: Option<TransferError> = None;
        if let Some(i) = self.failure {
            error = self.parts[i].result.take().and_then(Result::err);
        }
        if error.is_none() {
            error = self
                .parts
                .iter_mut()
                .find_map(|p| p.result.take().and_then(Result::err));
        }
        let attempts = self.parts.iter().map(|p| p.attempt).max().unwrap_or(0);
        let (state, result) = match error {
            Some(e) => {
                let state = if matches!(e, TransferError::Cancelled { .. }) {
                    TransferState::Cancelled
                } else {
                    TransferState::Failed
                };
                (state, Err(e))
            }
            None => (
                TransferState::Done,
                Ok(Summary {
                    sessions: std::mem::take(&mut self.sessions),
                    bytes: self.progress.bytes_done,
                    files_done: self.progress.files_done,
                    files_skipped: self.progress.files_skipped,
                    failed_files: std::mem::take(&mut self.failed_files),
                    attempts,
                    elapsed: now,
                }),
            ),
        };
        self.set_state(now, state);
        let code = result.as_ref().err().and_then(TransferError::code);
        self.emit(
            now,
            0,
            attempts,
            None,
            EventKind::Finished { state, code },
            None,
        );
        self.out.push_back(Output::Finished(result));
    }

    fn set_state(&mut self, now: Time, state: TransferState) {
        self.tracker.set_state(&mut self.progress, state, now);
        self.progress_dirty = true;
    }

    fn emit(
        &mut self,
        now: Time,
        part: u32,
        attempt: u32,
        session_id: Option<Arc<str>>,
        kind: EventKind,
        frame: Option<Frame>,
    ) {
        let event = Event {
            part,
            attempt,
            session_id,
            kind,
            frame,
            coalesced: 0,
        };
        let paused = self.paused;
        self.tracker.apply(&mut self.progress, &event, now);
        if paused && self.progress.state == TransferState::Transferring {
            self.progress.state = TransferState::Paused;
        }
        self.progress_dirty = true;
        self.out.push_back(Output::Emit(event));
    }

    fn index(&self, part: u32, attempt: u32) -> Option<usize> {
        let i = part as usize;
        (self.parts.get(i)?.attempt == attempt).then_some(i)
    }

    fn part(&self, part: u32, attempt: u32) -> Option<&Part> {
        self.index(part, attempt).map(|i| &self.parts[i])
    }
}

fn validate(msg: &Control) -> Result<(), ControlError> {
    msg.validate().map_err(|e| ControlError::Invalid {
        reason: e.to_string(),
    })
}

/// Compare secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a manager reports of a file, from the lazy view: each figure parsed when read.
fn file_info(v: &StatsView<'_>) -> Result<FileInfo, FieldError> {
    Ok(FileInfo {
        file: v.file().map(Cow::into_owned).unwrap_or_default(),
        size: v.size()?,
        written: v.written()?.unwrap_or(0),
        start_byte: v.start_byte()?,
        session_bytes: match v.transfer_bytes()? {
            Some(n) => Some(n),
            None => v.file_bytes()?,
        },
        arg_index: v.arg_index()?,
        checksum: match (v.checksum_type(), v.checksum()) {
            (Some(t), Some(c)) => Some((t.to_owned(), c.to_owned())),
            _ => None,
        },
    })
}

/// The same from the eager view (`FILEERROR`, whose code and description it also reads).
fn file_info_eager(st: &fasp_mgmt_proto::FileStats<'_>) -> FileInfo {
    FileInfo {
        file: st.file.as_deref().unwrap_or("").to_owned(),
        size: st.size,
        written: st.written.unwrap_or(0),
        start_byte: st.start_byte,
        session_bytes: st.transfer_bytes.or(st.file_bytes),
        arg_index: st.arg_index,
        checksum: match (st.checksum_type, st.checksum) {
            (Some(t), Some(c)) => Some((t.to_owned(), c.to_owned())),
            _ => None,
        },
    }
}

fn totals(d: &fasp_mgmt_proto::SessionEnd<'_>) -> SessionTotals {
    SessionTotals {
        file_bytes: d.file_bytes,
        transfer_bytes: d.transfer_bytes,
        elapsed: d.elapsed_usec.map(Duration::from_micros),
        transfers_passed: d.transfers_passed,
        transfers_failed: d.transfers_failed,
        transfers_skipped: d.transfers_skipped,
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
    fn cookies_compare_exactly() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
