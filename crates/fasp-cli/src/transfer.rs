//! `fasp transfer --spec FILE [--ascp PATH] [--json] [--retries N]`: run a transfer spec.
//!
//! On a terminal: a progress bar. With `--json`: one JSON object per line on stdout, every
//! event with a `"type"` (and `"session_id"` when it belongs to a session), the last line the
//! outcome `{"type":"outcome","ok":..,"code":..,"message":..,...}`; control lines on stdin
//! (`{"type":"rate","target_kbps":..,"min_kbps":..,"policy":..}`, `{"type":"pause"}`,
//! `{"type":"resume"}`, `{"type":"cancel"}`). Ctrl-C and SIGTERM cancel cleanly. Exit status 0
//! on success, 1 when the transfer fails (or is cancelled), 2 for a bad spec or command line.
//!
//! Nothing waits on stdout but its own thread: lines go there through a bounded queue, and
//! when it is full the events wait in the transfer's queue, where progress samples are
//! coalesced (lifecycle events never are). So a reader that does not read holds up neither
//! the transfer, nor the signals, nor the control lines. A closed stdout (EPIPE) cancels the
//! transfer.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fasp_manager::{
    Controller, Event, EventKind, Manager, Policy, RetryPolicy, Summary, TransferError,
    TransferOptions,
};
use fasp_spec::TransferSpec;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// Arguments of `fasp transfer`.
#[derive(clap::Args)]
pub struct Args {
    /// The transfer spec (JSON: a bare spec, or a node answer with `transfer_specs`).
    #[arg(long)]
    spec: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

/// How to run a transfer: shared by `fasp transfer`, `fasp upload` and `fasp download`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The ascp binary (default: $FASP_ASCP, then PATH, then the usual install folders).
    #[arg(long)]
    ascp: Option<PathBuf>,
    /// JSON events on stdout and JSON control lines on stdin, instead of a progress bar.
    #[arg(long)]
    json: bool,
    /// Retry transient failures this many times, resuming each time.
    #[arg(long, default_value_t = 0)]
    retries: u32,
}

impl RunArgs {
    /// Run `spec` to its end with the `fasp transfer` output.
    pub(crate) fn run(&self, spec: &TransferSpec) -> ExitCode {
        let mut options = TransferOptions::default()
            .with_retry(RetryPolicy::attempts(self.retries.saturating_add(1)));
        // ascp gets a minimal environment; `FASP_ASCP_ENV` names more variables to pass on
        // (comma-separated, `NAME*` for a prefix).
        if let Ok(names) = std::env::var("FASP_ASCP_ENV") {
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                options = options.with_inherited_env(name);
            }
        }
        run_spec(spec, self.ascp.as_deref(), self.json, options)
    }
}

/// A multi-threaded runtime for one command, or its exit status with a message on stderr.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("fasp {command}: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

pub(crate) fn run(args: Args) -> ExitCode {
    let spec = match read_spec(&args.spec) {
        Ok(spec) => spec,
        Err(msg) => {
            eprintln!("fasp transfer: {msg}");
            return ExitCode::from(2);
        }
    };
    args.run.run(&spec)
}

/// Read a spec file (a bare spec, `{"transfer_spec": ...}` or a node answer).
pub(crate) fn read_spec(path: &Path) -> Result<TransferSpec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    TransferSpec::from_document(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run a transfer to its end with the `fasp transfer` output; shared with `fasp upload` and
/// `fasp download`.
pub(crate) fn run_spec(
    spec: &TransferSpec,
    ascp: Option<&Path>,
    json: bool,
    options: TransferOptions,
) -> ExitCode {
    let runtime = match runtime("transfer") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(drive(spec, ascp, json, options));
    // The stdin reader may still be blocked in a read, and the stdout writer in a write to a
    // reader that does not read: wait for neither (exiting ends them).
    runtime.shutdown_background();
    code
}

/// After a signal, once the transfer has ended, fasp waits for the lines still queued for
/// stdout only while stdout takes at least one line per this period; then it exits without
/// them.
const FLUSH_GRACE_AFTER_SIGNAL: Duration = Duration::from_millis(500);

/// Lines queued between the event stream and the stdout thread. When they are all waiting,
/// events wait in the transfer's own queue, where progress samples are coalesced.
const STDOUT_QUEUE: usize = 64;

async fn drive(
    spec: &TransferSpec,
    ascp: Option<&Path>,
    json: bool,
    options: TransferOptions,
) -> ExitCode {
    // Signals first: from here on SIGINT and SIGTERM cancel instead of killing fasp.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fasp transfer: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    // JSON lines go to stdout from a thread of their own: a reader that does not read never
    // holds up signals, controls or the transfer.
    let mut out = json.then(|| StdoutLines::start(STDOUT_QUEUE));
    let manager = match ascp {
        Some(p) => Manager::with_ascp(p),
        None => Manager::new(),
    };
    let mut transfer = match manager.start(spec, options) {
        Ok(t) => t,
        Err(e) => {
            let code = if matches!(e, TransferError::Spec(_)) {
                2
            } else {
                1
            };
            match out {
                Some(out) => {
                    let (_, signalled) = signals.spawn(None);
                    out.finish(None, &outcome_json(&Err(e)), signalled).await;
                }
                None => eprintln!("fasp transfer: {e}"),
            }
            return ExitCode::from(code);
        }
    };
    let mut events = transfer.events();
    let printer = match &out {
        Some(out) => {
            let lines = out.sender();
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    if let Some(line) = event_json(&event) {
                        // Waits while the stdout thread is behind: meanwhile the transfer's
                        // queue holds the events, coalescing progress samples. Fails once
                        // stdout is broken.
                        if lines.send(line.to_string()).await.is_err() {
                            return;
                        }
                    }
                }
            })
        }
        None => {
            let progress = transfer.progress();
            tokio::spawn(async move { human(&mut events, progress).await })
        }
    };
    let controls = json.then(|| tokio::spawn(read_controls(transfer.controller())));
    let (signal_task, signalled) = signals.spawn(Some(transfer.controller()));
    let controller = transfer.controller();
    let wait = transfer.wait();
    tokio::pin!(wait);
    let result = match out.as_mut() {
        Some(out) => {
            tokio::select! {
                result = &mut wait => result,
                error = out.broken() => {
                    eprintln!("fasp transfer: cannot write to stdout ({error}): cancelling");
                    let _ = controller.cancel().await;
                    wait.await
                }
            }
        }
        None => wait.await,
    };
    drop(controller);
    if let Some(c) = controls {
        c.abort();
    }
    match out {
        Some(out) => {
            out.finish(Some(printer), &outcome_json(&result), signalled)
                .await;
        }
        None => {
            let _ = printer.await;
            match &result {
                Ok(s) => eprintln!(
                    "done: {} bytes, {} files ({} skipped) in {:.1} s",
                    s.bytes,
                    s.files_done,
                    s.files_skipped,
                    s.elapsed.as_secs_f64()
                ),
                Err(e) => eprintln!("fasp transfer: {e}"),
            }
        }
    }
    signal_task.abort();
    drop(manager);
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// SIGINT and SIGTERM, caught from before the transfer starts to the very end.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// A task that cancels the transfer (if any) at each signal, and a count of the signals.
    /// It never touches stdout, so a stalled reader cannot hold it up.
    fn spawn(
        mut self,
        transfer: Option<Controller>,
    ) -> (tokio::task::JoinHandle<()>, watch::Receiver<u32>) {
        let (count, signalled) = watch::channel(0u32);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = self.interrupt.recv() => {}
                    Some(()) = self.terminate.recv() => {}
                    else => return,
                }
                if let Some(t) = &transfer {
                    // Never waits: the escalation (CANCEL, SIGTERM, SIGKILL) runs in the
                    // transfer's own tasks.
                    let _ = t.cancel().await;
                }
                count.send_modify(|n| *n += 1);
                if *count.borrow() == 1 {
                    eprintln!("fasp transfer: cancelling");
                }
            }
        });
        (task, signalled)
    }
}

/// What the stdout thread is doing.
#[derive(Debug, Clone)]
enum WriterState {
    Writing,
    /// Every line was written and the queue is closed.
    Done,
    /// A write failed (EPIPE: the reader went away); later lines are not written.
    Broken(String),
}

/// JSON lines to stdout, written by a thread of their own from a bounded queue.
struct StdoutLines {
    lines: mpsc::Sender<String>,
    state: watch::Receiver<WriterState>,
    /// Lines written so far.
    written: Arc<AtomicU64>,
}

impl StdoutLines {
    fn start(capacity: usize) -> StdoutLines {
        let (lines, mut rx) = mpsc::channel::<String>(capacity);
        let (tx_state, state) = watch::channel(WriterState::Writing);
        let written = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&written);
        // Write to a duplicate of fd 1, not through `std::io::stdout()`: a write blocked on a
        // full pipe then holds no lock that exiting (which flushes stdout) would wait for.
        let mut out: Box<dyn Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Box::new(std::fs::File::from(fd)),
            Err(_) => Box::new(std::io::stdout()),
        };
        let spawned = std::thread::Builder::new()
            .name("fasp-stdout".into())
            .spawn(move || {
                while let Some(mut line) = rx.blocking_recv() {
                    line.push('\n');
                    // One write per line: a line (shorter than PIPE_BUF) is never cut by a
                    // reader that stops reading.
                    if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                        tx_state.send_replace(WriterState::Broken(e.to_string()));
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                tx_state.send_replace(WriterState::Done);
            });
        if let Err(e) = spawned {
            // Nothing can be written: say so, as a broken stdout would.
            let (tx_state, state) = watch::channel(WriterState::Broken(format!(
                "cannot start the stdout thread: {e}"
            )));
            drop(tx_state);
            return StdoutLines {
                lines,
                state,
                written,
            };
        }
        StdoutLines {
            lines,
            state,
            written,
        }
    }

    fn sender(&self) -> mpsc::Sender<String> {
        self.lines.clone()
    }

    /// Resolves when stdout is broken, with the error.
    async fn broken(&mut self) -> String {
        // `wait_for` looks at the current state first, even once the thread is gone.
        let state = self
            .state
            .wait_for(|s| matches!(s, WriterState::Broken(_)))
            .await
            .map(|s| s.clone());
        match state {
            Ok(WriterState::Broken(e)) => e,
            // The thread ended without a failure: stdout is never "broken" then.
            _ => std::future::pending().await,
        }
    }

    /// The transfer has ended: let the event printer forward what is left, queue the outcome
    /// line, and wait until stdout has taken every line. After a signal (before or during
    /// this), give up as soon as stdout takes no line for [`FLUSH_GRACE_AFTER_SIGNAL`], and
    /// say so on stderr.
    async fn finish(
        self,
        printer: Option<tokio::task::JoinHandle<()>>,
        outcome: &Value,
        mut signalled: watch::Receiver<u32>,
    ) {
        let StdoutLines {
            lines,
            mut state,
            written,
        } = self;
        let outcome = outcome.to_string();
        let flush = async move {
            if let Some(p) = printer {
                let _ = p.await;
            }
            let _ = lines.send(outcome).await;
            drop(lines);
            let _ = state.wait_for(|s| !matches!(s, WriterState::Writing)).await;
        };
        let give_up = async move {
            if signalled.wait_for(|n| *n > 0).await.is_err() {
                std::future::pending::<()>().await;
            }
            let mut seen = written.load(Ordering::Relaxed);
            loop {
                tokio::time::sleep(FLUSH_GRACE_AFTER_SIGNAL).await;
                let now = written.load(Ordering::Relaxed);
                if now == seen {
                    return;
                }
                seen = now;
            }
        };
        tokio::select! {
            () = flush => {}
            () = give_up => eprintln!(
                "fasp transfer: stdout is not being read: exiting without the last lines \
                 (the outcome among them)"
            ),
        }
    }
}

/// Control lines on stdin (JSON mode). Bad lines are reported on stderr and ignored.
async fn read_controls(transfer: Controller) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        match parse_control(&line) {
            Ok(ctl) => {
                let sent = match ctl {
                    ControlLine::Rate {
                        target,
                        min,
                        policy,
                    } => transfer.set_rates_and_policy(target, min, policy).await,
                    ControlLine::Pause => transfer.pause().await,
                    ControlLine::Resume => transfer.resume().await,
                    ControlLine::Cancel => transfer.cancel().await,
                };
                if sent.is_err() {
                    return;
                }
            }
            Err(msg) => eprintln!("fasp transfer: ignored control line: {msg}"),
        }
    }
    // Standard input closed: nothing more to do (the transfer goes on).
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
enum ControlLine {
    Rate {
        target: Option<u64>,
        min: Option<u64>,
        policy: Option<Policy>,
    },
    Pause,
    Resume,
    Cancel,
}

fn parse_control(line: &str) -> Result<ControlLine, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing \"type\"")?;
    let num = |key: &str| -> Result<Option<u64>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("\"{key}\" must be a non-negative integer, not {x}")),
        }
    };
    match ty {
        "rate" => {
            let policy = match v.get("policy") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(
                    Policy::parse(p)
                        .ok_or_else(|| format!("unknown policy {p:?} (fixed, high, fair, low)"))?,
                ),
                Some(x) => return Err(format!("\"policy\" must be a string, not {x}")),
            };
            let (target, min) = (num("target_kbps")?, num("min_kbps")?);
            if target.is_none() && min.is_none() && policy.is_none() {
                return Err("a rate line needs target_kbps, min_kbps or policy".into());
            }
            Ok(ControlLine::Rate {
                target,
                min,
                policy,
            })
        }
        "pause" => Ok(ControlLine::Pause),
        "resume" => Ok(ControlLine::Resume),
        "cancel" => Ok(ControlLine::Cancel),
        other => Err(format!(
            "unknown control type {other:?} (rate, pause, resume, cancel)"
        )),
    }
}

/// One event as a JSON line (secrets are never part of events).
pub fn event_json(event: &Event) -> Option<Value> {
    let file = |f: &fasp_manager::FileInfo| {
        json!({"file": f.file, "size": f.size, "written": f.written, "start_byte": f.start_byte,
               "session_bytes": f.session_bytes, "arg_index": f.arg_index})
    };
    let (ty, mut body) = match &event.kind {
        EventKind::Queued => ("queued", json!({})),
        EventKind::Spawned { pid } => ("spawned", json!({"pid": pid})),
        EventKind::Connected => ("connected", json!({})),
        EventKind::ForeignConnectionRejected { peer } => (
            "foreign_connection_rejected",
            json!({"peer": peer.to_string()}),
        ),
        EventKind::SessionInit {
            direction,
            operation,
        } => (
            "session_init",
            json!({"direction": direction, "operation": operation}),
        ),
        EventKind::SessionStarted(s) => (
            "session_started",
            json!({"direction": s.direction, "host": s.host, "user": s.user, "tcp_port": s.tcp_port,
                   "udp_port": s.udp_port, "target_kbps": s.rates.target_kbps, "min_kbps": s.rates.min_kbps,
                   "adaptive": s.rates.adaptive, "priority": s.rates.priority, "cipher": s.cipher,
                   "sources": s.sources, "destination": s.destination, "keepalive": s.keepalive,
                   "fallback_protocol": s.fallback_protocol}),
        ),
        EventKind::RateChanged(r) => (
            "rate_changed",
            json!({"target_kbps": r.target_kbps, "min_kbps": r.min_kbps, "adaptive": r.adaptive, "priority": r.priority}),
        ),
        EventKind::JobSize { files, bytes } => {
            ("job_size", json!({"files": files, "bytes": bytes}))
        }
        EventKind::FileStarted(f) => ("file_started", file(f)),
        EventKind::FileProgress(f) => {
            let mut v = file(f);
            if event.coalesced > 0 {
                // Earlier samples of this file that were skipped while the reader was behind.
                v["coalesced"] = json!(event.coalesced);
            }
            ("file_progress", v)
        }
        EventKind::FileDone(f) => {
            let mut v = file(f);
            if let Some((kind, sum)) = &f.checksum {
                v["checksum_type"] = json!(kind);
                v["checksum"] = json!(sum);
            }
            ("file_done", v)
        }
        EventKind::FileSkipped(f) => ("file_skipped", file(f)),
        EventKind::FileFailed {
            file: f,
            code,
            description,
        } => {
            let mut v = file(f);
            v["code"] = json!(code);
            v["description"] = json!(description);
            ("file_failed", v)
        }
        EventKind::ArgDone {
            source,
            attempted,
            passed,
            skipped,
            failed,
        } => (
            "arg_done",
            json!({"source": source, "attempted": attempted, "passed": passed, "skipped": skipped, "failed": failed}),
        ),
        EventKind::SessionDone(t) => (
            "session_done",
            json!({"file_bytes": t.file_bytes, "transfer_bytes": t.transfer_bytes,
                   "elapsed_ms": t.elapsed.map(|d| d.as_millis() as u64),
                   "transfers_passed": t.transfers_passed, "transfers_failed": t.transfers_failed,
                   "transfers_skipped": t.transfers_skipped}),
        ),
        EventKind::SessionFailed {
            code,
            description,
            retryable,
        } => (
            "session_failed",
            json!({"code": code, "description": description, "retryable": retryable}),
        ),
        EventKind::Query { query, allowed } => {
            ("query", json!({"query": query, "allowed": allowed}))
        }
        EventKind::Unknown => (
            "unknown_frame",
            json!({"frame_type": event.frame.as_ref().and_then(|f| f.type_name())}),
        ),
        EventKind::InvalidFrame(e) => ("invalid_frame", json!({"error": e.to_string()})),
        EventKind::Malformed(e) => (
            "malformed",
            json!({"offset": e.offset, "error": e.kind.to_string()}),
        ),
        EventKind::Retrying {
            next_attempt,
            after,
            reason,
        } => (
            "retrying",
            json!({"next_attempt": next_attempt, "after_ms": after.as_millis() as u64, "reason": reason}),
        ),
        EventKind::ControlSent(what) => ("control_sent", json!({"control": what.type_name()})),
        EventKind::Exited { status } => {
            use std::os::unix::process::ExitStatusExt;
            (
                "exited",
                json!({"code": status.code(), "signal": status.signal()}),
            )
        }
        EventKind::Lagged { missed } => ("lagged", json!({"missed": missed})),
        _ => return None,
    };
    let obj = body.as_object_mut()?;
    obj.insert("type".into(), json!(ty));
    if let Some(sid) = &event.session_id {
        obj.insert("session_id".into(), json!(&**sid));
    }
    obj.insert("attempt".into(), json!(event.attempt));
    if event.part > 0 {
        obj.insert("part".into(), json!(event.part));
    }
    Some(body)
}

fn outcome_json(result: &Result<Summary, TransferError>) -> Value {
    match result {
        Ok(s) => json!({
            "type": "outcome", "ok": true, "code": null, "message": "transfer complete",
            "bytes": s.bytes, "files_done": s.files_done, "files_skipped": s.files_skipped,
            "files_failed": s.failed_files.len(), "attempts": s.attempts,
            "elapsed_ms": s.elapsed.as_millis() as u64, "sessions": s.sessions.len(),
        }),
        Err(e) => {
            let mut v = json!({
                "type": "outcome", "ok": false, "code": e.code(), "message": e.to_string(),
                "retryable": e.is_retryable(),
            });
            if let TransferError::Fasp {
                meaning,
                failed_files,
                session_id,
                ..
            } = e
            {
                v["meaning"] = json!(meaning);
                v["session_id"] = json!(session_id);
                v["failed_files"] = json!(failed_files
                    .iter()
                    .map(|f| json!({"file": f.file, "code": f.code, "description": f.description}))
                    .collect::<Vec<_>>());
            }
            v
        }
    }
}

/// Terminal output: a progress bar when stderr is a terminal, otherwise a line per file.
async fn human(
    events: &mut fasp_manager::EventStream,
    progress: tokio::sync::watch::Receiver<fasp_manager::Progress>,
) {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    while let Some(event) = events.next().await {
        let p = progress.borrow().clone();
        if let Some(bar) = &bar {
            bar.set_length(p.bytes_expected.unwrap_or(p.bytes_done));
            bar.set_position(p.bytes_done);
            let rate = p
                .target_rate_kbps
                .map(|r| format!(" @{r} Kbps"))
                .unwrap_or_default();
            bar.set_message(format!("{}{rate}", p.current_file.as_deref().unwrap_or("")));
        }
        let line = match &event.kind {
            EventKind::FileDone(f) => Some(format!(
                "done     {} ({} bytes)",
                f.file,
                f.size.unwrap_or(f.written)
            )),
            EventKind::FileSkipped(f) => Some(format!("skipped  {}", f.file)),
            EventKind::FileFailed {
                file,
                code,
                description,
            } => Some(format!(
                "failed   {} (code {}): {description}",
                file.file,
                code.unwrap_or(0)
            )),
            EventKind::SessionFailed {
                code, description, ..
            } => Some(format!("session error {code}: {description}")),
            EventKind::Retrying {
                next_attempt,
                after,
                reason,
            } => Some(format!(
                "retrying (attempt {next_attempt} in {:.1} s): {reason}",
                after.as_secs_f64()
            )),
            _ => None,
        };
        if let Some(line) = line {
            match &bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        assert_eq!(
            parse_control(r#"{"type":"rate","target_kbps":5000,"min_kbps":10,"policy":"high"}"#),
            Ok(ControlLine::Rate {
                target: Some(5000),
                min: Some(10),
                policy: Some(Policy::High)
            })
        );
        assert_eq!(
            parse_control(r#"{"type":"rate","target_kbps":100}"#),
            Ok(ControlLine::Rate {
                target: Some(100),
                min: None,
                policy: None
            })
        );
        assert_eq!(parse_control(r#"{"type":"pause"}"#), Ok(ControlLine::Pause));
        assert_eq!(
            parse_control(r#"{"type":"resume"}"#),
            Ok(ControlLine::Resume)
        );
        assert_eq!(
            parse_control(r#"{"type":"cancel"}"#),
            Ok(ControlLine::Cancel)
        );
        assert!(parse_control(r#"{"type":"rate"}"#).is_err());
        assert!(
            parse_control(r#"{"type":"rate","target_kbps":-1}"#)
                .unwrap_err()
                .contains("target_kbps")
        );
        assert!(
            parse_control(r#"{"type":"rate","policy":"turbo"}"#)
                .unwrap_err()
                .contains("turbo")
        );
        assert!(parse_control(r#"{"type":"warp"}"#).is_err());
        assert!(parse_control("not json").is_err());
    }

    #[test]
    fn failure_outcome_carries_the_code() {
        let e = TransferError::Cancelled { forced: false };
        let v = outcome_json(&Err(e));
        assert_eq!(v["type"], "outcome");
        assert_eq!(v["ok"], false);
        assert_eq!(v["code"], 28);
    }
}
