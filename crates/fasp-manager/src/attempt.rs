//! One attempt: one ascp process, from spawn to reaped, with its management connection.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fasp_mgmt_proto::{Control, Frame, Message, MgmtCodec, QueryAnswer, RateChange, codes};
use futures::StreamExt;
use nix::sys::signal::Signal;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;

use crate::error::{FileFailure, TransferError};
use crate::event::{Event, EventKind, FileInfo, Rates, SessionInfo, SessionTotals};
use crate::options::TransferOptions;
use crate::process::{self, StderrTail};
use crate::sink::Sink;
use crate::wire::{PartLink, Wire};

/// Initial read buffer of a management connection.
const READ_BUF: usize = 2048;

/// What the `Transfer` handle asks of a running part.
#[derive(Debug, Clone)]
pub(crate) enum Ctl {
    /// Send this control message (rate, policy, start/stop file, end of persistent session).
    Send(Control),
    /// A controller wrote this message itself: report it ([`EventKind::ControlSent`]).
    Sent(Control),
    /// Rates to 0, remembering the current ones.
    Pause,
    /// Back to the rates in force before the pause.
    Resume,
    /// CANCEL, then signals.
    Cancel,
}

/// State of one part that outlives its attempts.
#[derive(Debug, Default)]
pub(crate) struct PartState {
    /// The rates ascp last reported while not paused.
    pub(crate) last_rates: Option<(u64, u64)>,
    pub(crate) paused: bool,
    pub(crate) cancelled: bool,
}

/// One finished session of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session.
    pub session_id: String,
    /// Which part of a multi-session transfer.
    pub part: u32,
    /// Which attempt.
    pub attempt: u32,
    /// `None` for `DONE`, the code for `ERROR`.
    pub error_code: Option<u64>,
    /// The totals `DONE` reported.
    pub totals: SessionTotals,
}

/// A successful attempt.
#[derive(Debug, Default)]
pub(crate) struct AttemptOk {
    pub(crate) sessions: Vec<SessionSummary>,
    pub(crate) failed_files: Vec<FileFailure>,
}

pub(crate) struct AttemptSpec {
    pub(crate) part: u32,
    pub(crate) attempt: u32,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
}

/// Escalation of a cancel (or of a stop the manager decided on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    /// CANCEL was sent at this time.
    Asked,
    /// SIGTERM was sent.
    Termed,
    /// SIGKILL was sent.
    Killed,
}

struct Run<'a> {
    spec: &'a AttemptSpec,
    opts: &'a TransferOptions,
    sink: &'a Sink,
    state: &'a mut PartState,
    nonce: String,
    pid: u32,
    tail: StderrTail,
    seen_init: bool,
    files_started: HashSet<String>,
    sessions: Vec<SessionSummary>,
    open_sessions: HashSet<String>,
    last_error: Option<(u64, String, Option<String>)>,
    failed_files: Vec<FileFailure>,
    protocol_error: Option<String>,
    read_error: Option<std::io::Error>,
    outgoing: Outgoing<'a>,
    link: &'a PartLink,
}

/// Controls to write, each with whether it came through the part's queue (and so is counted
/// in [`PartLink`]).
struct Outgoing<'a> {
    items: Vec<(Control, bool)>,
    link: &'a PartLink,
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        // Queued requests this attempt will never write no longer hold controllers back.
        for (_, counted) in self.items.drain(..) {
            if counted {
                self.link.dequeued();
            }
        }
    }
}

/// Removes the attempt's connection from its part when the attempt ends, however it ends.
struct WireInstalled<'a>(&'a PartLink);

impl Drop for WireInstalled<'_> {
    fn drop(&mut self) {
        self.0.set_wire(None);
    }
}

fn event(
    spec: &AttemptSpec,
    session_id: Option<&str>,
    kind: EventKind,
    frame: Option<Frame>,
) -> Event {
    Event {
        part: spec.part,
        attempt: spec.attempt,
        session_id: session_id.map(Arc::from),
        kind,
        frame,
    }
}

/// Run one attempt to its end. The child is always reaped before this returns.
pub(crate) async fn run_attempt(
    spec: &AttemptSpec,
    opts: &TransferOptions,
    sink: &Sink,
    state: &mut PartState,
    ctl: &mut mpsc::Receiver<Ctl>,
    link: &PartLink,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<AttemptOk, TransferError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| TransferError::Io {
            what: "bind the management port on 127.0.0.1",
            source,
        })?;
    let ours = listener.local_addr().map_err(|source| TransferError::Io {
        what: "read the management port",
        source,
    })?;
    let nonce = process::nonce();
    let tail = StderrTail::default();
    let mut child = process::spawn(
        &spec.program,
        &spec.args,
        &spec.env,
        ours.port(),
        &nonce,
        &tail,
    )
    .map_err(|source| TransferError::Spawn {
        program: spec.program.display().to_string(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    sink.emit(event(spec, None, EventKind::Spawned { pid }, None))
        .await;

    let mut run = Run {
        spec,
        opts,
        sink,
        state,
        nonce,
        pid,
        tail,
        seen_init: false,
        files_started: HashSet::new(),
        sessions: Vec::new(),
        open_sessions: HashSet::new(),
        last_error: None,
        failed_files: Vec::new(),
        protocol_error: None,
        read_error: None,
        outgoing: Outgoing {
            items: Vec::new(),
            link,
        },
        link,
    };

    // Phase 1: wait for our child's connection, watching the child and the caller meanwhile.
    let connect_deadline = Instant::now() + opts.connect_timeout;
    let mut stop = Stop::None;
    let mut stop_deadline = Instant::now();
    let mut exited_early: Option<std::process::ExitStatus> = None;
    let stream = loop {
        tokio::select! {
            // A connection waiting in the backlog wins over the child's exit: a fast ascp can
            // connect, report and exit before this task looks.
            biased;
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                if process::connection_is_from(pid, peer, ours) == Some(false) {
                    // A child that already exited holds no sockets any more: it cannot be
                    // checked this way, and the INIT nonce will tell.
                    if let Ok(Some(status)) = child.try_wait() {
                        exited_early = Some(status);
                        break stream;
                    }
                    drop(stream);
                    sink.emit(event(spec, None, EventKind::ForeignConnectionRejected { peer }, None)).await;
                    continue;
                }
                break stream;
            }
            status = child.wait() => {
                let status = status.map_err(|source| TransferError::Io { what: "wait for ascp", source })?;
                // Did it connect just before exiting? Then read what it said.
                if let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await {
                    exited_early = Some(status);
                    break stream;
                }
                run.settle_stderr().await;
                sink.emit(event(spec, None, EventKind::Exited { status: status.to_string() }, None)).await;
                if run.state.cancelled {
                    return Err(TransferError::Cancelled { forced: stop != Stop::None });
                }
                return Err(TransferError::ExitedBeforeConnecting { status, stderr: run.tail.text() });
            }
            _ = sleep_until(connect_deadline), if stop == Stop::None => {
                process::signal_group(pid, Signal::SIGKILL);
                let _ = child.wait().await;
                run.settle_stderr().await;
                return Err(TransferError::ConnectTimeout { after: opts.connect_timeout, stderr: run.tail.text() });
            }
            _ = sleep_until(stop_deadline), if stop != Stop::None && stop != Stop::Killed => {
                stop = run.escalate(stop);
                stop_deadline = Instant::now() + opts.term_grace;
            }
            cmd = ctl.recv(), if stop == Stop::None => {
                match cmd {
                    Some(Ctl::Cancel) | None => {
                        // Nothing to send CANCEL on yet: straight to signals.
                        run.state.cancelled = true;
                        stop = run.escalate(Stop::Asked);
                        stop_deadline = Instant::now() + opts.term_grace;
                    }
                    Some(Ctl::Sent(msg)) => run.report_sent(&msg).await,
                    Some(other) => run.queue(other),
                }
            }
            _ = shutdown.changed(), if stop == Stop::None => {
                run.state.cancelled = true;
                stop = run.escalate(Stop::Asked);
                stop_deadline = Instant::now() + opts.term_grace;
            }
        }
    };
    drop(listener);
    sink.emit(event(spec, None, EventKind::Connected, None))
        .await;
    // A small read buffer to start with (it grows when needed): a STATS frame is ~400 bytes,
    // and a manager may hold thousands of connections.
    let (read_half, write_half) = stream.into_split();
    let mut framed = FramedRead::with_capacity(read_half, MgmtCodec::new(), READ_BUF);
    let wire = Wire::new(write_half);
    let mut wire_broken = false;
    if run.state.paused {
        run.queue_counted(Ctl::Pause, false);
    }

    // Phase 2: read frames, send controls, watch the child, until EOF and exit.
    let mut exit: Option<std::process::ExitStatus> = exited_early;
    if let Some(status) = exit {
        sink.emit(event(
            spec,
            None,
            EventKind::Exited {
                status: status.to_string(),
            },
            None,
        ))
        .await;
    }
    let mut eof = false;
    let mut hung = false;
    // The watchdog: one timer for the whole attempt. A frame only notes the time; when the
    // timer fires it is moved to the last frame + the timeout, or ascp is declared hung.
    // (Re-arming a timer on every frame cost a timer-wheel insert and removal per event.)
    let mut last_activity = Instant::now();
    let idle_timer = sleep_until(
        opts.inactivity_timeout
            .map_or(last_activity + Duration::from_secs(86_400), |d| {
                last_activity + d
            }),
    );
    tokio::pin!(idle_timer);
    let mut drain_deadline: Option<Instant> = None;
    let mut ctl_open = true;
    if stop == Stop::Asked {
        // Cancelled while connecting: ask politely now that we can, keep escalating.
        wire.close_controls();
        let _ = wire.send(&Control::Cancel);
    }
    // What was asked before the connection (and the pause a retry re-applies) is written
    // before controllers may write themselves, so nothing of theirs overtakes it.
    let early = run.write_outgoing(&wire, eof);
    link.set_wire(Some(wire.clone()));
    let _installed = WireInstalled(link);
    for msg in early {
        run.report_sent(&msg).await;
    }
    loop {
        for msg in run.write_outgoing(&wire, eof) {
            run.report_sent(&msg).await;
        }
        if eof && exit.is_some() {
            break;
        }
        if eof || stop != Stop::None {
            wire.close_controls();
        }
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            item = framed.next(), if !eof => {
                last_activity = Instant::now();
                match item {
                    None => eof = true,
                    Some(Err(e)) => {
                        run.read_error = Some(e);
                        eof = true;
                    }
                    Some(Ok(Err(damage))) => {
                        sink.emit(event(spec, None, EventKind::Malformed(damage), None)).await;
                    }
                    Some(Ok(Ok(frame))) => {
                        if let Some(answer) = run.on_frame(frame).await {
                            let _ = wire.send(&answer);
                        }
                        if run.protocol_error.is_some() && stop == Stop::None {
                            // Not our ascp, or not talking to us: stop it.
                            stop = run.escalate(Stop::Asked);
                            stop_deadline = Instant::now() + opts.term_grace;
                        }
                    }
                }
                if eof && exit.is_none() {
                    drain_deadline = Some(Instant::now() + opts.exit_grace);
                }
            }
            status = child.wait(), if exit.is_none() => {
                let status = status.map_err(|source| TransferError::Io { what: "wait for ascp", source })?;
                sink.emit(event(spec, None, EventKind::Exited { status: status.to_string() }, None)).await;
                exit = Some(status);
                if !eof {
                    // Read what it wrote before exiting, but do not wait for ever.
                    drain_deadline = Some(Instant::now() + opts.exit_grace);
                }
            }
            cmd = ctl.recv(), if ctl_open && stop == Stop::None => {
                match cmd {
                    Some(Ctl::Cancel) | None => {
                        if cmd.is_none() {
                            ctl_open = false;
                        }
                        run.state.cancelled = true;
                        wire.close_controls();
                        let _ = wire.send(&Control::Cancel);
                        sink.emit(event(spec, None, EventKind::ControlSent("CANCEL".into()), None)).await;
                        stop = Stop::Asked;
                        stop_deadline = Instant::now() + opts.cancel_grace;
                    }
                    Some(Ctl::Sent(msg)) => run.report_sent(&msg).await,
                    Some(other) => run.queue(other),
                }
            }
            _ = wire.drain(), if !wire_broken && !eof => {
                // A write failed: ascp is gone or closed its side; the read side tells how.
                wire_broken = true;
            }
            _ = shutdown.changed(), if stop == Stop::None => {
                run.state.cancelled = true;
                stop = run.escalate(Stop::Asked);
                stop_deadline = Instant::now() + opts.term_grace;
            }
            _ = sleep_until(stop_deadline), if stop != Stop::None && stop != Stop::Killed && exit.is_none() => {
                stop = run.escalate(stop);
                stop_deadline = Instant::now() + opts.term_grace;
            }
            _ = &mut idle_timer, if opts.inactivity_timeout.is_some() && !eof && stop == Stop::None => {
                let timeout = opts.inactivity_timeout.unwrap_or_default();
                let due = last_activity + timeout;
                if due > Instant::now() {
                    idle_timer.as_mut().reset(due);
                } else {
                    hung = true;
                    stop = run.escalate(Stop::Asked);
                    stop_deadline = Instant::now() + opts.term_grace;
                }
            }
            _ = sleep_until(drain_deadline.unwrap_or(far)), if drain_deadline.is_some() => {
                drain_deadline = None;
                if exit.is_none() {
                    // EOF, but ascp lingers: stop it.
                    if stop == Stop::None {
                        stop = run.escalate(Stop::Asked);
                        stop_deadline = Instant::now() + opts.term_grace;
                    }
                } else {
                    eof = true;
                }
            }
        }
    }
    run.settle_stderr().await;
    let status = exit.unwrap_or_default();
    run.outcome(status, stop, hung)
}

impl Run<'_> {
    /// Take a request from the part's queue (every one but `Sent` and `Cancel` was counted
    /// there; the automatic pause at connection time was not).
    fn queue(&mut self, cmd: Ctl) {
        self.queue_counted(cmd, true);
    }

    fn queue_counted(&mut self, cmd: Ctl, counted: bool) {
        match cmd {
            Ctl::Send(msg) => self.outgoing.items.push((msg, counted)),
            Ctl::Pause => {
                self.state.paused = true;
                self.sink.set_state(crate::progress::TransferState::Paused);
                self.outgoing
                    .items
                    .push((Control::Rate(RateChange::pause()), counted));
            }
            Ctl::Resume => {
                self.state.paused = false;
                self.sink
                    .set_state(crate::progress::TransferState::Transferring);
                match self.state.last_rates {
                    Some((target, min)) => self
                        .outgoing
                        .items
                        .push((Control::Rate(RateChange::rates(target, min)), counted)),
                    None if counted => self.link.dequeued(),
                    None => {}
                }
            }
            Ctl::Sent(_) | Ctl::Cancel => {}
        }
    }

    /// Write the queued controls (unless the connection reached its end), in order; returns
    /// those written, to be reported. Each counted one stops holding controllers back.
    fn write_outgoing(&mut self, wire: &Wire, eof: bool) -> Vec<Control> {
        let outgoing = std::mem::take(&mut self.outgoing.items);
        let mut sent = Vec::with_capacity(outgoing.len());
        for (msg, counted) in outgoing {
            if !eof && wire.send(&msg).is_ok() {
                sent.push(msg);
            }
            if counted {
                self.link.dequeued();
            }
        }
        sent
    }

    /// Report a control message that went out.
    async fn report_sent(&self, msg: &Control) {
        let kind = EventKind::ControlSent(msg.type_name().to_string());
        self.sink
            .emit(event(self.spec, None, kind, msg.to_frame().ok()))
            .await;
    }

    /// Next step of stopping ascp: SIGTERM to its group, then SIGKILL.
    fn escalate(&mut self, from: Stop) -> Stop {
        match from {
            Stop::None | Stop::Asked => {
                process::signal_group(self.pid, Signal::SIGTERM);
                Stop::Termed
            }
            Stop::Termed | Stop::Killed => {
                process::signal_group(self.pid, Signal::SIGKILL);
                Stop::Killed
            }
        }
    }

    /// Let the stderr reader catch the last bytes (it ends when ascp's stderr closes).
    async fn settle_stderr(&self) {
        let until = Instant::now() + Duration::from_millis(300);
        while !self.tail.closed() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn emit_kind(&self, session: Option<&str>, kind: EventKind, frame: &Frame) -> Event {
        event(self.spec, session, kind, Some(frame.clone()))
    }

    /// Interpret one frame; returns an answer to send (QUERYRSP) if any.
    async fn on_frame(&mut self, frame: Frame) -> Option<Control> {
        let message = match Message::from_frame(&frame) {
            Ok(m) => m,
            Err(e) => {
                let sid = frame.get("SessionId").map(str::to_owned);
                let ev = self.emit_kind(sid.as_deref(), EventKind::InvalidFrame(e), &frame);
                self.sink.emit(ev).await;
                return None;
            }
        };
        let sid = message.session_id().map(str::to_owned);
        let sid = sid.as_deref();
        let mut answer = None;
        let kind = match &message {
            Message::Init(init) => {
                let matches = init.user_str == Some(self.nonce.as_str());
                if !self.seen_init && !matches {
                    self.protocol_error = Some(format!(
                        "INIT carried UserStr {:?}, not the nonce this manager gave its ascp",
                        init.user_str.unwrap_or("")
                    ));
                } else if init.user_str.is_some() && !matches {
                    self.protocol_error = Some("a later INIT carried a foreign UserStr".into());
                }
                self.seen_init = true;
                if let Some(s) = sid {
                    self.open_sessions.insert(s.to_owned());
                }
                EventKind::SessionInit {
                    direction: init.direction.map(|d| d.to_string()),
                    operation: init.operation.map(|o| o.to_string()),
                }
            }
            Message::Session(s) => {
                let rates = Rates {
                    target_kbps: s.rate_kbps,
                    min_kbps: s.min_rate_kbps,
                    adaptive: s.adaptive.map(|a| a.to_string()),
                    priority: s.priority,
                };
                self.note_rates(&rates);
                EventKind::SessionStarted(Box::new(SessionInfo {
                    direction: s.direction.map(|d| d.to_string()),
                    host: s.host.map(str::to_owned),
                    user: s.user.map(str::to_owned),
                    tcp_port: s.tcp_port,
                    udp_port: s.port,
                    rates,
                    encryption: s.encryption,
                    cipher: s.cipher.map(str::to_owned),
                    sources: s.sources().map(Cow::into_owned).collect(),
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
                None => {
                    let rates = Rates {
                        target_kbps: n.rate_kbps,
                        min_kbps: n.min_rate_kbps,
                        adaptive: n.adaptive.map(|a| a.to_string()),
                        priority: n.priority,
                    };
                    self.note_rates(&rates);
                    EventKind::RateChanged(rates)
                }
            },
            Message::Stats(st) => {
                let info = file_info(st);
                // Copy the path only for a file seen the first time, not on every STATS.
                if !self.files_started.contains(&info.file) {
                    self.files_started.insert(info.file.clone());
                    EventKind::FileStarted(info)
                } else {
                    EventKind::FileProgress(info)
                }
            }
            Message::Stop(st) => {
                let info = file_info(st);
                self.files_started.remove(&info.file);
                EventKind::FileDone(info)
            }
            Message::Skip(st) => EventKind::FileSkipped(file_info(st)),
            Message::FileError(fe) => {
                let info = file_info(&fe.stats);
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
            Message::ArgStop(a) => EventKind::ArgDone {
                source: a.file.as_deref().unwrap_or("").to_owned(),
                attempted: a.attempted.unwrap_or(0),
                passed: a.passed.unwrap_or(0),
                skipped: a.skipped.unwrap_or(0),
                failed: a.failed.unwrap_or(0),
            },
            Message::Done(d) => {
                let totals = totals(d);
                if let Some(s) = sid {
                    self.open_sessions.remove(s);
                }
                self.sessions.push(SessionSummary {
                    session_id: sid.unwrap_or("").to_owned(),
                    part: self.spec.part,
                    attempt: self.spec.attempt,
                    error_code: None,
                    totals: totals.clone(),
                });
                EventKind::SessionDone(totals)
            }
            Message::Error(e) => {
                let code = e.code.unwrap_or(1);
                let description = e.description.unwrap_or("").trim_end().to_owned();
                if let Some(s) = sid {
                    self.open_sessions.remove(s);
                }
                self.sessions.push(SessionSummary {
                    session_id: sid.unwrap_or("").to_owned(),
                    part: self.spec.part,
                    attempt: self.spec.attempt,
                    error_code: Some(code),
                    totals: totals(&e.end),
                });
                self.last_error = Some((code, description.clone(), sid.map(str::to_owned)));
                EventKind::SessionFailed {
                    code,
                    description,
                    retryable: codes::is_retryable(code),
                }
            }
            Message::Query(q) => {
                let allowed = self.opts.query_answer == QueryAnswer::Allowed;
                answer = Some(Control::QueryResponse(self.opts.query_answer));
                EventKind::Query {
                    query: q.query.unwrap_or("").to_owned(),
                    allowed,
                }
            }
            _ => EventKind::Unknown,
        };
        let ev = self.emit_kind(sid, kind, &frame);
        self.sink.emit(ev).await;
        answer
    }

    fn note_rates(&mut self, rates: &Rates) {
        if let (Some(t), Some(m)) = (rates.target_kbps, rates.min_kbps) {
            if t > 0 && !self.state.paused {
                self.state.last_rates = Some((t, m));
            }
        }
    }

    fn outcome(
        self,
        status: std::process::ExitStatus,
        stop: Stop,
        hung: bool,
    ) -> Result<AttemptOk, TransferError> {
        use std::os::unix::process::ExitStatusExt;
        let stderr_tail = self.tail.text();
        if let Some(why) = self.protocol_error {
            return Err(TransferError::Protocol(why));
        }
        if self.state.cancelled {
            return Err(TransferError::Cancelled {
                forced: matches!(stop, Stop::Termed | Stop::Killed),
            });
        }
        if hung {
            return Err(TransferError::Hung {
                idle: self.opts.inactivity_timeout.unwrap_or_default(),
            });
        }
        let any_done = self.sessions.iter().any(|s| s.error_code.is_none());
        // With HTTP fallback one connection carries two sessions: the transfer succeeded if a
        // session ended with DONE and ascp exited cleanly.
        if any_done && status.success() {
            return Ok(AttemptOk {
                sessions: self.sessions,
                failed_files: self.failed_files,
            });
        }
        if let Some((code, description, session_id)) = self.last_error {
            return Err(TransferError::Fasp {
                code,
                meaning: codes::meaning(code),
                description,
                retryable: codes::is_retryable(code),
                session_id,
                stderr_tail,
                failed_files: self.failed_files,
            });
        }
        if let Some(signal) = status.signal() {
            return Err(TransferError::Crashed {
                signal,
                stderr_tail,
            });
        }
        if let Some(e) = self.read_error {
            return Err(TransferError::Connection(e));
        }
        if !status.success() {
            return Err(TransferError::ExitWithoutCode {
                status,
                stderr_tail,
            });
        }
        Err(TransferError::NoOutcome {
            status: Some(status),
            stderr_tail,
        })
    }
}

fn file_info(st: &fasp_mgmt_proto::FileStats<'_>) -> FileInfo {
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
