//! `fasp transfer --spec FILE|- [options]`: run a transfer spec; the running half of
//! `fasp upload` and `fasp download` too.
//!
//! On a terminal: a progress bar on stderr. With `--json`: one JSON object per line on
//! stdout, `"type"` first, every event of the transfer, and always, last, the outcome line
//! `{"type":"outcome","ok":..,"exit":..,"code":..,"message":..,"retryable":..,"bytes":..,
//! "files":{..},"attempts":..,...}` with the same fields whatever happened (a bad spec, a
//! cancel, an interrupt included); control lines on stdin (`{"type":"rate","target_kbps":..,
//! "min_kbps":..,"policy":"fair"}`, `{"type":"pause"}`, `{"type":"resume"}`,
//! `{"type":"cancel"}`), with the words events use. Exit status: 0 success, 1 the transfer
//! failed or was cancelled, 2 a bad spec or command line, 130 interrupted (SIGINT, SIGTERM).
//! The JSON contract is docs/cli.md with its schema, docs/fasp-json.schema.json.
//!
//! Nothing waits on stdout but its own thread: lines go there through a bounded queue, and
//! when it is full the events wait in the transfer's queue, where progress samples are
//! coalesced (lifecycle events never are). So a reader that does not read holds up neither
//! the transfer, nor the signals, nor the control lines. A closed stdout (EPIPE) cancels the
//! transfer.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fasp_manager::{
    Controller, Event, EventKind, Manager, Progress, RatePolicy, RetryPolicy, Summary,
    TransferError, TransferOptions,
};
use fasp_spec::{REDACTED, TransferSpec};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::options::{Destination, SpecArgs};
use crate::terminal::{escape, escape_lines, mbits, megabytes};

/// Arguments of `fasp transfer`.
#[derive(clap::Args)]
pub struct Args {
    /// The transfer spec: a JSON file (a bare spec, {"transfer_spec": ...} or a node answer
    /// with "transfer_specs"), or - for standard input (then no control lines are read).
    #[arg(long, value_name = "FILE|-")]
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
    #[command(flatten)]
    spec: SpecArgs,
}

/// What a command failed on before any transfer ran.
pub(crate) struct Early {
    /// The exit status: 2 for a usage or spec error, 1 for anything else.
    pub(crate) exit: u8,
    /// The message (the command's name is added in front).
    pub(crate) message: String,
}

impl RunArgs {
    /// Reports a failure that came before the transfer: a line on stderr and, with --json,
    /// the outcome line. Returns the exit status.
    pub(crate) fn fail_early(&self, command: &str, early: Early) -> ExitCode {
        eprintln!("fasp {command}: {}", early.message);
        if self.json {
            let line = outcome_line(
                early.exit,
                None,
                &early.message,
                false,
                false,
                &Progress::default(),
                0,
                0,
            );
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        ExitCode::from(early.exit)
    }

    /// Applies the options to `spec` and runs it to its end with the `fasp transfer` output.
    pub(crate) fn run(
        &self,
        command: &'static str,
        spec: &TransferSpec,
        destination: Destination,
        controls: bool,
        mut warnings: Vec<String>,
    ) -> ExitCode {
        let applied = match self.spec.apply(spec, destination) {
            Ok(mut applied) => {
                warnings.append(&mut applied.warnings);
                applied.warnings = warnings;
                applied
            }
            Err(message) => return self.fail_early(command, Early { exit: 2, message }),
        };
        if let Some(key) = redacted_secret(&applied.spec) {
            return self.fail_early(
                command,
                Early {
                    exit: 2,
                    message: format!(
                        "the spec's {key} is the placeholder {REDACTED:?}: it was saved from \
                         redacted output; save the real spec with `fasp node ... --save FILE` \
                         (written 0600) or use `fasp upload` / `fasp download`"
                    ),
                },
            );
        }
        let mut options = TransferOptions::default().with_retry(RetryPolicy::retries(self.retries));
        if let Some(n) = applied.spec.multi_session.filter(|n| *n > 1) {
            options = options.with_sessions(n);
        }
        // ascp gets a minimal environment; `FASP_ASCP_ENV` names more variables to pass on
        // (comma-separated, `NAME*` for a prefix).
        if let Ok(names) = std::env::var("FASP_ASCP_ENV") {
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                options = options.with_inherited_env(name);
            }
        }
        let job = Job {
            command,
            ascp: self.ascp.as_deref(),
            json: self.json,
            controls: controls && self.json,
            warnings: applied.warnings,
        };
        run_spec(&job, &applied.spec, options)
    }
}

/// A secret of the spec that holds the redaction placeholder instead of a value.
fn redacted_secret(spec: &TransferSpec) -> Option<&'static str> {
    let secrets = [
        ("token", spec.token.as_ref()),
        ("cookie", spec.cookie.as_ref()),
        ("remote_password", spec.remote_password.as_ref()),
        ("ssh_private_key", spec.ssh_private_key.as_ref()),
        (
            "ssh_private_key_passphrase",
            spec.ssh_private_key_passphrase.as_ref(),
        ),
        (
            "content_protection_password",
            spec.content_protection_password.as_ref(),
        ),
    ];
    secrets
        .into_iter()
        .find(|(_, s)| s.is_some_and(|s| s.expose() == REDACTED))
        .map(|(k, _)| k)
}

/// A multi-threaded runtime for one command, or its exit status with a message on stderr.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("fasp {command}: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}

pub(crate) fn run(args: Args) -> ExitCode {
    let from_stdin = args.spec.as_os_str() == "-";
    let spec = match read_spec(&args.spec) {
        Ok(spec) => spec,
        Err(message) => return args.run.fail_early("transfer", Early { exit: 2, message }),
    };
    args.run.run(
        "transfer",
        &spec,
        Destination::AsSpecified,
        !from_stdin,
        Vec::new(),
    )
}

/// Reads a spec file, or standard input for `-` (a bare spec, `{"transfer_spec": ...}` or a
/// node answer). Errors name the file and give 1-based line and column.
pub(crate) fn read_spec(path: &Path) -> Result<TransferSpec, String> {
    let (text, name) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the spec from standard input: {e}"))?;
        (text, "standard input".to_owned())
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        (text, path.display().to_string())
    };
    TransferSpec::from_document(&text).map_err(|e| format!("{name}: {e}"))
}

/// One run of a transfer: the command's name and how to show it.
struct Job<'a> {
    command: &'static str,
    ascp: Option<&'a Path>,
    json: bool,
    /// Whether control lines are read from stdin (not when stdin held the spec).
    controls: bool,
    warnings: Vec<String>,
}

/// Runs a transfer to its end with the `fasp transfer` output.
fn run_spec(job: &Job<'_>, spec: &TransferSpec, options: TransferOptions) -> ExitCode {
    let runtime = match runtime(job.command) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(drive(job, spec, options));
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

/// The exit status of an interrupted command (SIGINT or SIGTERM), as shells report Ctrl-C.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

async fn drive(job: &Job<'_>, spec: &TransferSpec, options: TransferOptions) -> ExitCode {
    let command = job.command;
    // Signals first: from here on SIGINT and SIGTERM cancel instead of killing fasp.
    let signals = match Signals::install(command) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fasp {command}: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    // JSON lines go to stdout from a thread of their own: a reader that does not read never
    // holds up signals, controls or the transfer.
    let mut out = job.json.then(|| StdoutLines::start(STDOUT_QUEUE));
    for warning in &job.warnings {
        eprintln!("fasp {command}: warning: {warning}");
        if let Some(out) = &out {
            let _ = out
                .sender()
                .send(json!({"type": "warning", "message": warning}).to_string())
                .await;
        }
    }
    let manager = match job.ascp {
        Some(p) => Manager::with_ascp(p),
        None => Manager::new(),
    };
    let mut transfer = match manager.start(spec, options) {
        Ok(t) => t,
        Err(e) => {
            let exit = if matches!(e, TransferError::Spec(_)) {
                2
            } else {
                1
            };
            let line = outcome_json(exit, &Err(e), false, &Progress::default());
            if let Some(out) = out {
                let (_, signalled) = signals.spawn(None);
                out.finish(command, None, &line, signalled).await;
            }
            // After stdout's last line: the order of the two streams is always the same.
            eprintln!(
                "fasp {command}: {}",
                escape_lines(line["message"].as_str().unwrap_or(""))
            );
            return ExitCode::from(exit);
        }
    };
    let mut events = transfer.events();
    let progress = transfer.progress();
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
            let progress = progress.clone();
            tokio::spawn(async move { human(&mut events, progress).await })
        }
    };
    let controls = job
        .controls
        .then(|| tokio::spawn(read_controls(command, transfer.controller())));
    let (signal_task, signalled) = signals.spawn(Some(transfer.controller()));
    let controller = transfer.controller();
    let wait = transfer.wait();
    tokio::pin!(wait);
    let result = match out.as_mut() {
        Some(out) => {
            tokio::select! {
                result = &mut wait => result,
                error = out.broken() => {
                    eprintln!("fasp {command}: cannot write to stdout ({error}): cancelling");
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
    let interrupted = *signalled.borrow() > 0;
    let exit = match (&result, interrupted) {
        (Ok(_), _) => 0,
        (Err(_), true) => EXIT_INTERRUPTED,
        (Err(_), false) => 1,
    };
    let last = progress.borrow().clone();
    let line = outcome_json(exit, &result, interrupted, &last);
    match out {
        Some(out) => {
            out.finish(command, Some(printer), &line, signalled).await;
        }
        None => {
            let _ = printer.await;
            if !crate::quiet() {
                eprintln!("{}", human_outcome(&result, &last, interrupted));
            } else if let Err(e) = &result {
                eprintln!("fasp {command}: {}", escape_lines(&e.to_string()));
            }
        }
    }
    signal_task.abort();
    drop(manager);
    ExitCode::from(exit)
}

/// The last line of human output: what was moved, or why not.
fn human_outcome(
    result: &Result<Summary, TransferError>,
    last: &Progress,
    interrupted: bool,
) -> String {
    match result {
        Ok(s) => format!(
            "done: {} in {} files ({} skipped) in {:.1} s, {} on average",
            megabytes(s.bytes),
            s.files_done,
            s.files_skipped,
            s.elapsed.as_secs_f64(),
            mbits(s.bytes as f64 / s.elapsed.as_secs_f64().max(1e-3)),
        ),
        Err(e) => format!(
            "{}: {} ({} in {} files moved before){}",
            if interrupted { "interrupted" } else { "failed" },
            escape_lines(&e.to_string()),
            megabytes(last.bytes_done),
            last.files_done,
            if e.is_retryable() {
                "; retryable: --retries N resumes"
            } else {
                ""
            }
        ),
    }
}

/// SIGINT and SIGTERM, caught from before the transfer starts to the very end.
struct Signals {
    command: &'static str,
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install(command: &'static str) -> std::io::Result<Signals> {
        Ok(Signals {
            command,
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
        let command = self.command;
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = self.interrupt.recv() => {}
                    Some(()) = self.terminate.recv() => {}
                    else => return,
                }
                // Counted first: the outcome, once the cancel below lands, is "interrupted".
                count.send_modify(|n| *n += 1);
                if let Some(t) = &transfer {
                    // Never waits: the escalation (CANCEL, SIGTERM, SIGKILL) runs in the
                    // transfer's own tasks.
                    let _ = t.cancel().await;
                }
                if *count.borrow() == 1 {
                    eprintln!("fasp {command}: interrupted: cancelling");
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
        command: &str,
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
                "fasp {command}: stdout is not being read: exiting without the last lines \
                 (the outcome among them)"
            ),
        }
    }
}

/// Control lines on stdin (JSON mode). Bad lines are reported on stderr and ignored.
async fn read_controls(command: &'static str, transfer: Controller) {
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
                match sent {
                    Ok(()) => {}
                    Err(fasp_manager::ControlError::Ended) => return,
                    Err(e) => eprintln!("fasp {command}: control line refused: {e}"),
                }
            }
            Err(msg) => eprintln!("fasp {command}: ignored control line: {}", escape(&msg)),
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
        policy: Option<RatePolicy>,
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
    let allowed: &[&str] = match ty {
        "rate" => &["type", "target_kbps", "min_kbps", "policy"],
        _ => &["type"],
    };
    if let Value::Object(map) = &v {
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "unknown key{} {} in a {ty:?} line (it takes {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                allowed.join(", ")
            ));
        }
    }
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
                    parse_policy(p)
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

/// A policy word of control lines and specs (`fixed`, `high`, `fair`, `low`, any case).
fn parse_policy(word: &str) -> Option<RatePolicy> {
    serde_json::from_value(Value::String(word.to_ascii_lowercase())).ok()
}

/// One event as a JSON line: `type` first, then the event's fields, then `session_id`,
/// `attempt` and `part` (secrets are never part of events).
pub fn event_json(event: &Event) -> Option<Value> {
    let file = |f: &fasp_manager::FileInfo| {
        json!({"file": f.file, "size": f.size, "written": f.written, "start_byte": f.start_byte,
               "session_bytes": f.session_bytes, "arg_index": f.arg_index})
    };
    let rates = |r: &fasp_manager::Rates| {
        json!({"target_kbps": r.target_kbps, "min_kbps": r.min_kbps,
               "policy": r.policy})
    };
    let (ty, body) = match &event.kind {
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
        EventKind::SessionStarted(s) => {
            let mut v = json!({"direction": s.direction,
                   "host": s.host, "user": s.user, "tcp_port": s.tcp_port,
                   "udp_port": s.udp_port});
            if let (Some(obj), Value::Object(r)) = (v.as_object_mut(), rates(&s.rates)) {
                obj.extend(r);
            }
            v["cipher"] = json!(s.cipher);
            v["sources"] = json!(s.sources);
            v["destination"] = json!(s.destination);
            v["keepalive"] = json!(s.keepalive);
            v["fallback_protocol"] = json!(s.fallback_protocol);
            ("session_started", v)
        }
        EventKind::RateChanged(r) => ("rate_changed", rates(r)),
        EventKind::Paused => ("paused", json!({})),
        EventKind::Resumed => ("resumed", json!({})),
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
                // ascp says `sha-256`; the word `--checksum` and specs use is `sha256`.
                let word = serde_json::from_value::<fasp_spec::FileChecksum>(json!(
                    kind.to_ascii_lowercase()
                ))
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|_| kind.to_ascii_lowercase());
                v["checksum_type"] = json!(word);
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
    let Value::Object(fields) = body else {
        return None;
    };
    let mut obj = Map::with_capacity(fields.len() + 4);
    obj.insert("type".into(), json!(ty));
    obj.extend(fields);
    if let Some(sid) = &event.session_id {
        obj.insert("session_id".into(), json!(&**sid));
    }
    obj.insert("attempt".into(), json!(event.attempt));
    if event.part > 0 {
        obj.insert("part".into(), json!(event.part));
    }
    Some(Value::Object(obj))
}

/// The outcome line: the same fields whatever happened, `type` first.
#[allow(clippy::too_many_arguments)]
fn outcome_line(
    exit: u8,
    code: Option<u64>,
    message: &str,
    retryable: bool,
    interrupted: bool,
    progress: &Progress,
    attempts: u32,
    sessions: usize,
) -> Value {
    json!({
        "type": "outcome",
        "ok": exit == 0,
        "exit": exit,
        "code": code,
        "message": message,
        "retryable": retryable,
        "interrupted": interrupted,
        "bytes": progress.bytes_done,
        "files": {
            "done": progress.files_done,
            "skipped": progress.files_skipped,
            "failed": progress.files_failed,
        },
        "attempts": attempts,
        "sessions": sessions,
        "elapsed_ms": progress.elapsed.as_millis() as u64,
    })
}

/// The outcome line of a transfer that ran (or was refused by the manager).
fn outcome_json(
    exit: u8,
    result: &Result<Summary, TransferError>,
    interrupted: bool,
    last: &Progress,
) -> Value {
    match result {
        Ok(s) => {
            let mut done = last.clone();
            done.bytes_done = s.bytes;
            done.files_done = s.files_done;
            done.files_skipped = s.files_skipped;
            done.files_failed = s.failed_files.len() as u64;
            done.elapsed = s.elapsed;
            outcome_line(
                exit,
                None,
                "transfer complete",
                false,
                false,
                &done,
                s.attempts,
                s.sessions.len(),
            )
        }
        Err(e) => {
            let mut v = outcome_line(
                exit,
                e.code(),
                &e.to_string(),
                e.is_retryable(),
                interrupted,
                last,
                last.attempts,
                0,
            );
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

/// Terminal output on stderr: a progress bar when stderr is a terminal, otherwise a line per
/// file; nothing but errors with `-q`. Text from ascp and file names are escaped.
async fn human(
    events: &mut fasp_manager::EventStream,
    progress: tokio::sync::watch::Receiver<fasp_manager::Progress>,
) {
    let quiet = crate::quiet();
    let tty = std::io::stderr().is_terminal() && !quiet;
    let counting = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {decimal_bytes} (total not known yet) {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let known = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {decimal_bytes}/{decimal_total_bytes} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar = tty.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(counting.clone());
        bar
    });
    let mut total_known = false;
    while let Some(event) = events.next().await {
        let p = progress.borrow().clone();
        if let Some(bar) = &bar {
            match p.bytes_expected {
                // The ETA shows once the whole job's size is known (pre-calculation); the
                // sizes of the files seen so far are not a total.
                Some(total) if p.total_known => {
                    if !total_known {
                        bar.set_style(known.clone());
                        total_known = true;
                    }
                    bar.set_length(total.max(p.bytes_done));
                }
                _ => bar.set_length(p.bytes_done),
            }
            bar.set_position(p.bytes_done);
            let mut msg = mbits(p.throughput_bps);
            if let Some(r) = p.target_rate_kbps {
                msg.push_str(&format!(" (target {})", crate::terminal::kbps_as_mbits(r)));
            }
            if let Some(f) = p.current_file.as_deref() {
                msg.push(' ');
                msg.push_str(&escape(f));
            }
            bar.set_message(msg);
        }
        if quiet {
            continue;
        }
        let line = match &event.kind {
            EventKind::FileDone(f) => Some(format!(
                "done     {} ({})",
                escape(&f.file),
                megabytes(f.size.unwrap_or(f.written))
            )),
            EventKind::FileSkipped(f) => Some(format!("skipped  {}", escape(&f.file))),
            EventKind::FileFailed {
                file,
                code,
                description,
            } => Some(format!(
                "failed   {} (code {}): {}",
                escape(&file.file),
                code.unwrap_or(0),
                escape(description)
            )),
            EventKind::SessionFailed {
                code, description, ..
            } => Some(format!("session error {code}: {}", escape(description))),
            EventKind::Paused => Some("paused".to_owned()),
            EventKind::Resumed => Some("resumed".to_owned()),
            EventKind::Retrying {
                next_attempt,
                after,
                reason,
            } => Some(format!(
                "retrying (attempt {next_attempt} in {:.1} s): {}",
                after.as_secs_f64(),
                escape(reason)
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
                policy: Some(RatePolicy::High)
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
        // A misspelt key is refused, not dropped.
        let e = parse_control(r#"{"type":"rate","target_kbps":5,"min_rate":1}"#).unwrap_err();
        assert!(e.contains("min_rate") && e.contains("min_kbps"), "{e}");
        assert!(parse_control(r#"{"type":"pause","now":true}"#).is_err());
        assert!(parse_control("not json").is_err());
    }

    #[test]
    fn policies_use_the_words_of_specs() {
        for p in RatePolicy::ALL {
            assert_eq!(parse_policy(p.as_str()), Some(*p));
            assert_eq!(parse_policy(&p.as_str().to_uppercase()), Some(*p));
            let event = Event::new(EventKind::RateChanged(rates_with(*p)));
            assert_eq!(event_json(&event).unwrap()["policy"], p.as_str());
        }
        assert_eq!(parse_policy("turbo"), None);
    }

    fn rates_with(policy: RatePolicy) -> fasp_manager::Rates {
        let mut r = fasp_manager::Rates::default();
        r.policy = Some(policy);
        r
    }

    #[test]
    fn checksum_types_use_the_words_of_checksum_options() {
        let mut f = fasp_manager::FileInfo::default();
        f.checksum = Some(("sha-256".into(), "ab".into()));
        let v = event_json(&Event::new(EventKind::FileDone(f))).unwrap();
        assert_eq!(v["checksum_type"], "sha256");
    }

    #[test]
    fn events_put_type_first() {
        let e = Event::new(EventKind::Paused);
        let v = event_json(&e).unwrap();
        assert_eq!(v.as_object().unwrap().keys().next().unwrap(), "type");
        assert_eq!(v["type"], "paused");
    }

    #[test]
    fn every_outcome_has_the_same_fields() {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let cancelled = outcome_json(
            1,
            &Err(TransferError::Cancelled { forced: false }),
            false,
            &Progress::default(),
        );
        assert_eq!(cancelled["type"], "outcome");
        assert_eq!(cancelled["ok"], false);
        assert_eq!(cancelled["code"], 28);
        assert_eq!(cancelled["exit"], 1);
        let early = outcome_line(
            2,
            None,
            "bad spec",
            false,
            false,
            &Progress::default(),
            0,
            0,
        );
        assert_eq!(keys(&early), keys(&cancelled));
        assert_eq!(keys(&early)[0], "type");
    }
}
