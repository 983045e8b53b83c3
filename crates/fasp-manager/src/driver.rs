//! The async driver of one transfer: moves bytes, signals and timers for the [`Core`], and
//! nothing else.
//!
//! The core sits in a mutex with the connections' write halves ([`Cell`]). Whoever has an
//! input for it (the reader of a management connection, the task waiting for a child, a
//! controller's `set_rate`, the timer) locks it, feeds the input and then carries out the
//! outputs at once ([`Shared::with`]): writes go to the socket without waiting (the backlog is
//! left to the reader), signals are sent, events are handed to the hub (which never waits).
//! Outputs that need a task (spawning an attempt, tearing one down, the end) go to the
//! transfer's own task ([`run`]). No one ever waits on a consumer while holding the core.
//!
//! Per attempt, four small tasks: the child's waiter, its stderr reader, the listener's
//! acceptor, and the adopted connection's reader (which also flushes the write backlog).

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use fasp_mgmt_proto::{Frame, MgmtCodec};
use fasp_spec::{RenderOptions, ResumePolicy, TransferSpec};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use crate::core::{Admit, Core, Output, Ownership, Time};
use crate::error::TransferError;
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::options::TransferOptions;
use crate::process::{self, SpawnRequest};
use crate::progress::Progress;
use crate::transfer::Summary;
use crate::wire::Wire;

/// Initial read buffer of a management connection (it grows when needed): a STATS frame is
/// ~400 bytes, and a manager may hold thousands of connections.
const READ_BUF: usize = 2048;

/// Connections examined at once per attempt; more wait in the listener's backlog.
const MAX_CANDIDATES: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The core and what outputs need to be carried out at once.
#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) core: Core,
    /// Per part: the adopted connection's write half, with its attempt.
    wires: Vec<Option<(u32, Arc<Wire>)>>,
    /// Per part: once the attempt's child has been signalled, the processes descending from it
    /// (signalled too, and killed when the child has exited).
    trees: Vec<Option<(u32, Vec<process::Descendant>)>>,
    /// The deadline the driver's timer is set for.
    armed: Option<Time>,
}

/// Work for the transfer's own task.
#[derive(Debug)]
enum Todo {
    Spawn {
        part: u32,
        attempt: u32,
        target: Option<u64>,
        min: Option<u64>,
    },
    AttemptEnded {
        part: u32,
        attempt: u32,
    },
    Finished(Result<Summary, TransferError>),
}

/// What every task of a transfer shares. Its `Debug` shows the progress only (the core holds
/// the cookie and the child's stderr).
pub(crate) struct Shared {
    cell: Mutex<Cell>,
    pub(crate) hub: Hub,
    progress: watch::Sender<Progress>,
    /// The timer's deadline moved earlier.
    timer: Notify,
    todo: mpsc::UnboundedSender<Todo>,
    origin: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("progress", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn now(&self) -> Time {
        self.origin.elapsed()
    }

    /// Feed the core (`f`), then carry out what it asks.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Cell, Time) -> R) -> R {
        let mut cell = lock(&self.cell);
        let now = self.now();
        let r = f(&mut cell, now);
        self.pump(&mut cell);
        r
    }

    fn pump(&self, cell: &mut Cell) {
        while let Some(out) = cell.core.poll_output() {
            match out {
                Output::Write { part, attempt, msg } => {
                    let written = match cell.wires.get(part as usize) {
                        Some(Some((a, wire))) if *a == attempt => wire.send(&msg).is_ok(),
                        _ => false,
                    };
                    if !written {
                        cell.core.write_failed(part, attempt);
                    }
                }
                Output::Signal {
                    part,
                    attempt,
                    pid,
                    sig,
                } => {
                    tracing::info!(part, attempt, pid, signal = ?sig, "signalling ascp's process tree");
                    if let Some(slot) = cell.trees.get_mut(part as usize) {
                        if slot.as_ref().is_none_or(|(a, _)| *a != attempt) {
                            *slot = Some((attempt, Vec::new()));
                        }
                        if let Some((_, known)) = slot {
                            process::signal_tree(pid, sig, known);
                        }
                    }
                }
                Output::Emit(event) => {
                    log_event(&event);
                    self.hub.push(event)
                }
                Output::Spawn {
                    part,
                    attempt,
                    target_kbps,
                    min_kbps,
                } => {
                    tracing::debug!(part, attempt, target_kbps, min_kbps, "attempt to start");
                    let _ = self.todo.send(Todo::Spawn {
                        part,
                        attempt,
                        target: target_kbps,
                        min: min_kbps,
                    });
                }
                Output::AttemptEnded { part, attempt } => {
                    tracing::debug!(part, attempt, "attempt ended");
                    if let Some(slot) = cell.wires.get_mut(part as usize) {
                        if slot.as_ref().is_some_and(|(a, _)| *a == attempt) {
                            *slot = None;
                        }
                    }
                    let _ = self.todo.send(Todo::AttemptEnded { part, attempt });
                }
                Output::Finished(result) => {
                    self.publish_progress(cell);
                    self.hub.close();
                    let _ = self.todo.send(Todo::Finished(result));
                }
            }
        }
        self.publish_progress(cell);
        let next = cell.core.poll_timeout();
        if next.is_some() && (cell.armed.is_none() || next < cell.armed) {
            cell.armed = next;
            self.timer.notify_one();
        }
    }

    fn publish_progress(&self, cell: &mut Cell) {
        if let Some(p) = cell.core.take_progress() {
            self.progress.send_modify(|cur| cur.clone_from(p));
        }
    }
}

/// What the transfer's task needs besides the core.
pub(crate) struct Plan {
    pub(crate) spec: TransferSpec,
    pub(crate) program: PathBuf,
    pub(crate) options: TransferOptions,
    pub(crate) cookie: String,
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    /// One per listener thread, fired when it has handled the last event.
    pub(crate) listeners_done: Vec<oneshot::Receiver<()>>,
}

/// Build the shared state of a transfer; `run` drives it.
pub(crate) fn shared(
    core: Core,
    parts: usize,
    event_buffer: usize,
) -> (Arc<Shared>, watch::Receiver<Progress>, Receiver) {
    let (progress, progress_rx) = watch::channel(Progress::default());
    let (todo, todo_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        cell: Mutex::new(Cell {
            core,
            wires: vec![None; parts],
            trees: vec![None; parts],
            armed: None,
        }),
        hub: Hub::new(event_buffer),
        progress,
        timer: Notify::new(),
        todo,
        origin: Instant::now(),
    });
    (shared, progress_rx, Receiver(todo_rx))
}

/// The receiving end of the transfer task's work queue.
#[derive(Debug)]
pub(crate) struct Receiver(mpsc::UnboundedReceiver<Todo>);

/// The IO of one running attempt.
struct AttemptIo {
    attempt: u32,
    tasks: Vec<JoinHandle<()>>,
    command: Option<fasp_spec::AscpCommand>,
    /// Removed when dropped.
    _dir: tempfile::TempDir,
}

impl AttemptIo {
    fn close(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(c) = self.command.take() {
            let _ = c.cleanup();
        }
        // The folder goes with the TempDir.
    }
}

/// The transfer's own task: spawns attempts, tears them down, keeps the timer, ends with the
/// outcome. Everything else happens in the tasks of the attempts.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut plan: Plan,
    mut todo: Receiver,
) -> Result<Summary, TransferError> {
    let mut attempts: Vec<Option<AttemptIo>> =
        (0..plan.options.sessions.max(1)).map(|_| None).collect();
    let have_slot = plan.limit.is_none() || plan.permit.is_some();
    shared.with(|c, now| c.core.begin(now, have_slot));
    // One wait for a slot, kept across iterations so the transfer keeps its place in line.
    let limit = plan.limit.clone();
    let mut acquire = std::pin::pin!(async move {
        match limit {
            Some(limit) => limit.acquire_owned().await.ok(),
            None => std::future::pending().await,
        }
    });
    let mut waiting_slot = !have_slot;
    let result = loop {
        let deadline = lock(&shared.cell).armed;
        let sleep_until = deadline.map(|d| tokio::time::Instant::from_std(shared.origin + d));
        tokio::select! {
            biased;
            item = todo.0.recv() => match item {
                Some(Todo::Spawn { part, attempt, target, min }) => {
                    if let Some(old) = attempts[part as usize].take() {
                        old.close();
                    }
                    attempts[part as usize] = spawn_attempt(&shared, &plan, part, attempt, target, min).await;
                }
                Some(Todo::AttemptEnded { part, attempt }) => {
                    let slot = &mut attempts[part as usize];
                    if slot.as_ref().is_some_and(|io| io.attempt == attempt) {
                        if let Some(io) = slot.take() {
                            io.close();
                        }
                    }
                }
                Some(Todo::Finished(result)) => break result,
                None => break Err(TransferError::Io {
                    what: "run the transfer",
                    source: std::io::Error::other("the transfer's state was dropped"),
                }),
            },
            permit = &mut acquire, if waiting_slot => {
                waiting_slot = false;
                plan.permit = permit;
                shared.with(|c, now| c.core.slot_granted(now));
            }
            _ = shared.timer.notified() => {}
            _ = async {
                match sleep_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                shared.with(|c, now| {
                    c.armed = None;
                    c.core.handle_timeout(now);
                });
            }
        }
    };
    log_outcome(&result);
    for io in attempts.into_iter().flatten() {
        io.close();
    }
    drop(plan.permit.take());
    for done in plan.listeners_done.drain(..) {
        let _ = done.await;
    }
    result
}

async fn spawn_attempt(
    shared: &Arc<Shared>,
    plan: &Plan,
    part: u32,
    attempt: u32,
    target: Option<u64>,
    min: Option<u64>,
) -> Option<AttemptIo> {
    match prepare_and_spawn(shared, plan, part, attempt, target, min).await {
        Ok(io) => io,
        Err(e) => {
            shared.with(|c, now| c.core.spawn_failed(now, part, attempt, e));
            None
        }
    }
}

async fn prepare_and_spawn(
    shared: &Arc<Shared>,
    plan: &Plan,
    part: u32,
    attempt: u32,
    target: Option<u64>,
    min: Option<u64>,
) -> Result<Option<AttemptIo>, TransferError> {
    let io_err = |what: &'static str| move |source| TransferError::Io { what, source };
    let parts = plan.options.sessions.max(1);
    let mut spec = plan.spec.clone();
    spec.target_rate_kbps = target;
    spec.min_rate_kbps = min;
    if attempt > 1 && spec.resume_policy.is_none() {
        spec.resume_policy = Some(ResumePolicy::SparseChecksum);
    }
    // A private folder per attempt (0700), for the file lists.
    let base = plan
        .options
        .workdir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("fasp-attempt-")
        .tempdir_in(&base)
        .map_err(io_err("create a private work folder"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("make the work folder private"))?;
    }
    let mut render = RenderOptions::new()
        .with_program(&plan.program)
        .with_workdir(dir.path());
    if parts > 1 {
        render = render.with_multi_session_part(part + 1, parts);
    }
    let command = spec.render(&render)?;
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(io_err("bind the management port on 127.0.0.1"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(io_err("set up the management port"))?;
    let ours = std_listener
        .local_addr()
        .map_err(io_err("read the management port"))?;
    // Two handles on one socket: tokio's to wait for connections, a plain one to take what is
    // left in the backlog without waiting once the child has exited.
    let backlog = std_listener
        .try_clone()
        .map_err(io_err("set up the management port"))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(io_err("watch the management port"))?;

    let mut extra: Vec<(std::ffi::OsString, std::ffi::OsString)> = command
        .env
        .iter()
        .map(|(k, v)| (k.into(), v.expose().into()))
        .collect();
    extra.splice(0..0, plan.options.inherited());
    if !command.env.contains_key(crate::COOKIE_ENV) {
        extra.push((crate::COOKIE_ENV.into(), plan.cookie.clone().into()));
    }
    extra.extend(plan.options.env.iter().map(|(k, v)| (k.into(), v.into())));
    let mut args: Vec<std::ffi::OsString> = vec!["-M".into(), ours.port().to_string().into()];
    args.extend(command.args.iter().cloned());
    let request = SpawnRequest {
        program: plan.program.clone().into_os_string(),
        args,
        env: process::child_env(&extra),
        handle: tokio::runtime::Handle::current(),
    };
    // Never spawn for a transfer cancelled meanwhile.
    if !lock(&shared.cell).core.spawn_allowed(part, attempt) {
        tracing::debug!(
            part,
            attempt,
            "not spawning ascp: the transfer was cancelled"
        );
        shared.with(|c, now| c.core.spawn_aborted(now, part, attempt));
        let _ = command.cleanup();
        return Ok(None);
    }
    // The argv holds no secret (they travel in the environment); of the environment, only
    // the variables' names are logged, never a value.
    tracing::debug!(
        part,
        attempt,
        program = %plan.program.display(),
        argv = ?request.args,
        env = ?process::env_names(&request.env),
        "spawning ascp"
    );
    let spawned = tokio::task::spawn_blocking(move || process::spawn(request))
        .await
        .map_err(|e| TransferError::Io {
            what: "spawn ascp",
            source: std::io::Error::other(e.to_string()),
        })?;
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => {
            tracing::warn!(part, attempt, program = %plan.program.display(), error = %source, "cannot start ascp");
            let _ = command.cleanup();
            return Err(TransferError::Spawn {
                program: process::display(&plan.program),
                source,
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    tracing::info!(
        part,
        attempt,
        pid,
        program = %plan.program.display(),
        argv = ?command.args,
        management_port = ours.port(),
        "ascp started"
    );
    shared.with(|c, now| c.core.spawned(now, part, attempt, pid));

    let mut tasks = Vec::with_capacity(4);
    let (exited_tx, exited_rx) = oneshot::channel::<()>();
    if let Some(mut stderr) = child.stderr.take() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Only how much: what ascp writes is kept for the error, not logged.
                        tracing::trace!(part, attempt, bytes = n, "ascp wrote on stderr");
                        shared.with(|c, _| c.core.stderr(part, attempt, &buf[..n]))
                    }
                }
            }
            shared.with(|c, now| c.core.stderr_closed(now, part, attempt));
        }));
    } else {
        shared.with(|c, now| c.core.stderr_closed(now, part, attempt));
    }
    {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let status = child
                .wait()
                .await
                .unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8));
            shared.with(|c, now| {
                // A stopped child's descendants do not outlive it (a forking wrapper's ascp).
                if let Some(Some((a, known))) = c.trees.get(part as usize) {
                    if *a == attempt {
                        process::signal_known(crate::core::Sig::Kill, known);
                    }
                }
                c.core.exited(now, part, attempt, status)
            });
            let _ = exited_tx.send(());
        }));
    }
    let first_wait = plan.options.connect_timeout;
    tasks.push(tokio::spawn(accept_loop(
        shared.clone(),
        listener,
        backlog,
        ours,
        part,
        attempt,
        pid,
        exited_rx,
        first_wait,
    )));
    Ok(Some(AttemptIo {
        attempt,
        tasks,
        command: Some(command),
        _dir: dir,
    }))
}

/// A connection examined: adopted (then read by the acceptor's task), or refused.
// One per connection, moved once: the reader's inline buffer state needs no box.
#[allow(clippy::large_enum_variant)]
enum Examined {
    Adopted(
        FramedRead<tokio::net::tcp::OwnedReadHalf, MgmtCodec>,
        Arc<Wire>,
    ),
    Refused,
}

type Examining = std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Examined)> + Send>>;

/// Accept connections until one is adopted or the child has exited (then take what is left
/// in the backlog without waiting: a fast child connects before it exits, so its connection is
/// there), and tell the core the listener is closed. Connections are examined concurrently;
/// once one is adopted, those still being examined are refused and reported at once, and the
/// adopted one is read to its end in this task, so that aborting it at the attempt's end stops
/// everything of the attempt.
#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    backlog: std::net::TcpListener,
    ours: SocketAddr,
    part: u32,
    attempt: u32,
    pid: u32,
    mut exited: oneshot::Receiver<()>,
    first_wait: std::time::Duration,
) {
    let mut examining: futures::stream::FuturesUnordered<Examining> = Default::default();
    let mut peers: std::collections::HashMap<u64, SocketAddr> = Default::default();
    let mut next_id = 0u64;
    let mut listening = Some(listener);
    let mut backlog = Some(backlog);
    let mut adopted = None;
    // Start examining one connection. The kernel's verdict comes first: a connection held by
    // the child's process group is always examined (adopted), whatever else is waiting; past
    // the limit, unproven ones are refused and reported without reading them.
    // Every new connection is examined: at the limit, the connection examined longest (one
    // that has sent nothing all that time) is refused to make room. A new one may be our fast
    // child, already gone and provable only by its first frame; a flood of idle intruders only
    // churns among themselves.
    let mut evictions: std::collections::BTreeMap<u64, oneshot::Sender<()>> = Default::default();
    let mut take =
        |stream: std::net::TcpStream,
         peer: SocketAddr,
         examining: &mut futures::stream::FuturesUnordered<Examining>,
         peers: &mut std::collections::HashMap<u64, SocketAddr>,
         evictions: &mut std::collections::BTreeMap<u64, oneshot::Sender<()>>| {
            let verdict = process::ownership(pid, peer, ours);
            tracing::debug!(part, attempt, %peer, kernel = ?verdict, "management connection to examine");
            shared.with(|c, _| c.core.candidate_opened(part, attempt));
            evictions.retain(|id, _| peers.contains_key(id));
            if examining.len() >= MAX_CANDIDATES {
                if let Some((_, evict)) = evictions.pop_first() {
                    let _ = evict.send(());
                }
            }
            next_id += 1;
            let id = next_id;
            peers.insert(id, peer);
            let (evict, evicted) = oneshot::channel();
            evictions.insert(id, evict);
            let shared = shared.clone();
            examining.push(Box::pin(async move {
                let ex = examine(
                    shared, stream, peer, verdict, part, attempt, first_wait, evicted,
                )
                .await;
                (id, ex)
            }));
        };
    loop {
        let close = tokio::select! {
            biased;
            Some((id, ex)) = examining.next(), if !examining.is_empty() => {
                peers.remove(&id);
                if let Examined::Adopted(framed, wire) = ex {
                    adopted = Some((framed, wire));
                }
                adopted.is_some()
            }
            _ = &mut exited, if listening.is_some() => {
                if let Some(l) = &backlog {
                    while let Ok((stream, peer)) = l.accept() {
                        take(stream, peer, &mut examining, &mut peers, &mut evictions);
                    }
                }
                true
            }
            accepted = async { listening.as_ref().expect("listening").accept().await }, if listening.is_some() => {
                if let Ok((stream, peer)) = accepted.and_then(|(s, p)| Ok((s.into_std()?, p))) {
                    take(stream, peer, &mut examining, &mut peers, &mut evictions);
                }
                false
            }
            else => break,
        };
        if close && listening.take().is_some() {
            // Both handles go: the socket is closed, later connections are refused.
            backlog = None;
            shared.with(|c, now| c.core.listener_closed(now, part, attempt));
        }
        if adopted.is_some() {
            // The others are not our child's: refused and reported now, not after a wait.
            examining.clear();
            for (_, peer) in peers.drain() {
                shared.with(|c, now| {
                    c.core
                        .connection(now, part, attempt, peer, Ownership::Foreign, None)
                });
            }
            break;
        }
    }
    if let Some((framed, wire)) = adopted {
        read_connection(&shared, framed, &wire, part, attempt).await;
    }
}

/// Examine one connection: read its first frame unless the kernel showed it as the child's
/// (giving up when `evicted` fires), and let the core decide.
#[allow(clippy::too_many_arguments)]
async fn examine(
    shared: Arc<Shared>,
    stream: std::net::TcpStream,
    peer: SocketAddr,
    verdict: Ownership,
    part: u32,
    attempt: u32,
    first_wait: std::time::Duration,
    evicted: oneshot::Receiver<()>,
) -> Examined {
    let stream = stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream));
    let Ok(stream) = stream else {
        shared.with(|c, now| {
            c.core
                .connection(now, part, attempt, peer, Ownership::Foreign, None)
        });
        return Examined::Refused;
    };
    let (read, write) = stream.into_split();
    let mut framed = FramedRead::with_capacity(read, MgmtCodec::new(), READ_BUF);
    let mut first: Option<Frame> = None;
    if verdict != Ownership::Owned {
        tokio::select! {
            biased;
            item = tokio::time::timeout(first_wait, framed.next()) => {
                if let Ok(Some(Ok(Ok(frame)))) = item {
                    // Secret fields (the INIT cookie) show as `<redacted>` in a frame's Debug.
                    tracing::trace!(part, attempt, %peer, ?frame, "first frame of a connection");
                    first = Some(frame);
                }
            }
            _ = evicted => {}
        }
    }
    let wire = Wire::new(write);
    let admit = shared.with(|c, now| {
        let admit = c.core.connection(now, part, attempt, peer, verdict, first);
        if admit == Admit::Adopt {
            c.wires[part as usize] = Some((attempt, wire.clone()));
        }
        admit
    });
    match admit {
        Admit::Adopt => Examined::Adopted(framed, wire),
        Admit::Reject => Examined::Refused,
    }
}

/// Read the adopted connection at ascp's pace, feeding every frame to the core, and write
/// the control backlog whenever the socket takes it.
async fn read_connection(
    shared: &Shared,
    mut framed: FramedRead<tokio::net::tcp::OwnedReadHalf, MgmtCodec>,
    wire: &Wire,
    part: u32,
    attempt: u32,
) {
    let mut broken = false;
    loop {
        tokio::select! {
            item = framed.next() => match item {
                None => {
                    tracing::debug!(part, attempt, "management connection closed by ascp");
                    shared.with(|c, now| c.core.conn_closed(now, part, attempt, None));
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(part, attempt, error = %e, "management connection failed");
                    shared.with(|c, now| c.core.conn_closed(now, part, attempt, Some(e.to_string())));
                    return;
                }
                Some(Ok(Err(damage))) => {
                    tracing::debug!(part, attempt, error = %damage, "malformed management data");
                    shared.with(|c, now| c.core.malformed(now, part, attempt, damage));
                }
                Some(Ok(Ok(frame))) => {
                    // A frame's Debug shows secret fields (the INIT cookie) as `<redacted>`.
                    tracing::trace!(part, attempt, ?frame, "frame");
                    shared.with(|c, now| c.core.frame(now, part, attempt, frame));
                }
            },
            _ = wire.drain(), if !broken => {
                broken = true;
                tracing::debug!(part, attempt, "cannot write to the management connection");
                shared.with(|c, _| c.core.write_failed(part, attempt));
            }
        }
    }
}

/// One log line per event, at the level its importance calls for: `info` for the lifecycle
/// (connection adopted, session, exit, outcome), `warn` for what went wrong, `debug` for
/// controls, files and rates, `trace` for progress samples. Only typed fields are logged,
/// never a frame's secret fields; text that comes from ascp (file names, descriptions) is
/// logged with `Debug` quoting, so control characters are escaped.
fn log_event(e: &Event) {
    let (part, attempt) = (e.part, e.attempt);
    let session = e.session_id.as_deref();
    match &e.kind {
        EventKind::Queued => tracing::info!(part, attempt, "waiting for a free transfer slot"),
        EventKind::Spawned { pid } => tracing::debug!(part, attempt, pid, "spawned"),
        EventKind::Connected => {
            tracing::info!(part, attempt, "management connection adopted")
        }
        EventKind::ForeignConnectionRejected { peer } => tracing::warn!(
            part,
            attempt,
            %peer,
            "management connection refused: it is not from our ascp"
        ),
        EventKind::SessionInit {
            direction,
            operation,
        } => tracing::info!(
            part,
            attempt,
            session,
            direction = direction.map(|d| d.as_str()),
            operation = operation.as_deref(),
            "session initiated"
        ),
        EventKind::SessionStarted(info) => tracing::info!(
            part,
            attempt,
            session,
            host = ?info.host,
            user = ?info.user,
            udp_port = info.udp_port,
            target_kbps = info.rates.target_kbps,
            min_kbps = info.rates.min_kbps,
            policy = info.rates.policy.map(|p| p.as_str()),
            encryption = info.encryption,
            "session started"
        ),
        EventKind::RateChanged(r) => tracing::debug!(
            part,
            attempt,
            target_kbps = r.target_kbps,
            min_kbps = r.min_kbps,
            policy = r.policy.map(|p| p.as_str()),
            "rates in force"
        ),
        EventKind::JobSize { files, bytes } => {
            tracing::debug!(part, attempt, files, bytes, "job size")
        }
        EventKind::FileStarted(f) => {
            tracing::debug!(part, attempt, file = ?f.file, size = f.size, "file started")
        }
        EventKind::FileProgress(f) => {
            tracing::trace!(part, attempt, file = ?f.file, written = f.written, "file progress")
        }
        EventKind::FileDone(f) => {
            tracing::debug!(part, attempt, file = ?f.file, written = f.written, "file done")
        }
        EventKind::FileSkipped(f) => tracing::debug!(part, attempt, file = ?f.file, "file skipped"),
        EventKind::FileFailed {
            file,
            code,
            description,
        } => tracing::warn!(
            part,
            attempt,
            file = ?file.file,
            code,
            ?description,
            "file failed"
        ),
        EventKind::ArgDone {
            source,
            attempted,
            passed,
            skipped,
            failed,
        } => tracing::debug!(
            part,
            attempt,
            ?source,
            attempted,
            passed,
            skipped,
            failed,
            "source argument done"
        ),
        EventKind::SessionDone(t) => tracing::info!(
            part,
            attempt,
            session,
            file_bytes = t.file_bytes,
            transfer_bytes = t.transfer_bytes,
            passed = t.transfers_passed,
            failed = t.transfers_failed,
            skipped = t.transfers_skipped,
            "session done"
        ),
        EventKind::SessionFailed {
            code,
            description,
            retryable,
        } => tracing::warn!(
            part,
            attempt,
            session,
            code,
            ?description,
            retryable,
            "session failed"
        ),
        EventKind::Query { query, allowed } => {
            tracing::debug!(part, attempt, ?query, allowed, "query answered")
        }
        EventKind::Unknown => tracing::debug!(
            part,
            attempt,
            frame_type = ?e.frame.as_ref().map(|f| f.type_name()),
            "frame of a type not interpreted"
        ),
        // The field's value is left out: it could be anything ascp sent.
        EventKind::InvalidFrame(err) => tracing::debug!(
            part,
            attempt,
            message = ?err.message,
            key = ?err.key,
            "frame with a field that does not parse"
        ),
        EventKind::Malformed(err) => tracing::debug!(part, attempt, error = %err, "malformed data"),
        EventKind::Retrying {
            next_attempt,
            after,
            reason,
        } => tracing::info!(
            part,
            attempt,
            next_attempt,
            after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            ?reason,
            "retrying"
        ),
        EventKind::ControlSent(control) => {
            tracing::debug!(part, attempt, ?control, "control sent")
        }
        EventKind::Exited { status } => tracing::info!(
            part,
            attempt,
            code = status.code(),
            signal = status.signal(),
            "ascp exited"
        ),
        EventKind::Finished { state, code } => {
            tracing::info!(part, attempt, ?state, code, "transfer finished")
        }
        EventKind::Paused => tracing::info!(part, attempt, "paused"),
        EventKind::Resumed => tracing::info!(part, attempt, "resumed"),
        EventKind::Lagged { missed } => {
            tracing::debug!(missed, "a subscriber fell behind and was cut off")
        }
        // Kinds added later are logged by name only, as trace.
        #[allow(unreachable_patterns)]
        _ => tracing::trace!(part, attempt, "event"),
    }
}

/// The transfer's outcome: `info` for a success or a cancel, `warn` for a failure.
fn log_outcome(result: &Result<Summary, TransferError>) {
    match result {
        Ok(s) => tracing::info!(
            bytes = s.bytes,
            files_done = s.files_done,
            files_skipped = s.files_skipped,
            failed_files = s.failed_files.len(),
            attempts = s.attempts,
            sessions = s.sessions.len(),
            elapsed_ms = u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX),
            "transfer succeeded"
        ),
        Err(e @ TransferError::Cancelled { .. }) => {
            tracing::info!(error = %e, "transfer cancelled")
        }
        Err(e) => tracing::warn!(
            error = %e,
            code = e.code(),
            retryable = e.is_retryable(),
            "transfer failed"
        ),
    }
}
