//! Helpers shared by the integration tests of fasp-manager (`tests/sim.rs`,
//! `tests/regressions.rs`, `tests/orphans.rs`, `tests/real_ascp.rs`): finding ascp-sim, a work
//! folder with a local side and a "remote" root, upload specs, recording and reading events,
//! and looking at processes in `/proc`.
//!
//! Each test file is a crate of its own that includes this module with `mod support;` and
//! uses only part of it: what one of them leaves unused is used by another, not dead.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fasp_manager::{Event, EventKind, EventStream, TransferOptions};
use fasp_spec::{TransferSpec, TransferSpecBuilder};
use fasp_testkit::sim;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::timeout;

// ----- ascp-sim -----

// Finding ascp-sim (`FASP_SIM`, else next to the test binary; a skip, or a failure with
// `CI=true`), the work folder and test scripts come from `fasp_testkit::sim`.
#[allow(unused_imports)]
pub(crate) use fasp_testkit::require_sim;
#[allow(unused_imports)]
pub(crate) use fasp_testkit::sim::{sim_path, write_executable};

/// A local folder and a remote root (ASCP_SIM_ROOT) in one temporary folder: the shared
/// [`fasp_testkit::sim::Work`] (`local`, `remote`, `file`, `tiny_files`, `script`, `needle`,
/// `dir`), plus the manager's options for it.
pub(crate) struct Work(sim::Work);

impl std::ops::Deref for Work {
    type Target = sim::Work;

    fn deref(&self) -> &sim::Work {
        &self.0
    }
}

impl Work {
    pub(crate) fn new() -> Work {
        Work(sim::Work::new())
    }

    /// ascp-sim's remote root, STATS every 50 ms, and short cancel graces.
    pub(crate) fn options(&self) -> TransferOptions {
        TransferOptions::default()
            .with_env(sim::ROOT_ENV, self.root())
            .with_env(sim::STATS_INTERVAL_ENV, "50")
            .with_cancel_graces(Duration::from_millis(500), Duration::from_millis(500))
    }
}

/// An upload of `sources` to `dest` through ascp-sim.
pub(crate) fn upload(sources: &[&Path], dest: &str) -> TransferSpecBuilder {
    let mut b = TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .ssh_port(33001);
    for s in sources {
        b = b.source(s.to_str().unwrap());
    }
    b.destination_root(dest)
}

/// A persistent session (`keepalive`) through ascp-sim into `dest`: no sources, the files are
/// added while it runs.
pub(crate) fn persistent_upload(dest: &str) -> TransferSpecBuilder {
    TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .keepalive(true)
        .destination_root(dest)
}

// ----- the real ascp -----

/// A small source file, `report.txt` in `dir`, for the real ascp.
pub(crate) fn source_file(dir: &Path) -> PathBuf {
    let p = dir.join("report.txt");
    std::fs::write(&p, b"hello from fasp-rs\n").unwrap();
    p
}

/// An upload of `source` by the real ascp, as `user` to the SSH server on `ssh_port` of this
/// host.
pub(crate) fn ssh_upload(ssh_port: u16, source: &Path, user: &str) -> TransferSpecBuilder {
    TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user(user)
        .ssh_port(ssh_port)
        .source(source.to_str().unwrap())
        .destination_root("/tmp/fasp-manager-test-inbox")
}

/// An "SSH server" that accepts (the kernel completes the handshake) and never speaks: the
/// real ascp stays in SSH negotiation as long as it is held.
pub(crate) struct SilentSsh(std::net::TcpListener);

impl SilentSsh {
    pub(crate) fn start() -> SilentSsh {
        SilentSsh(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
    }

    pub(crate) fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
}

// ----- events -----

/// A listener that records every event and lets a test await a condition on them.
#[derive(Clone)]
pub(crate) struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    tick: Arc<watch::Sender<u64>>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            events: Arc::default(),
            tick: Arc::new(watch::Sender::new(0)),
        }
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The kinds of the events so far.
    pub(crate) fn kinds(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.clone())
            .collect()
    }

    /// `opts` with this recorder as a listener.
    pub(crate) fn attach(&self, opts: TransferOptions) -> TransferOptions {
        let r = self.clone();
        opts.with_listener(Arc::new(move |e: &Event| {
            r.events.lock().unwrap().push(e.clone());
            r.tick.send_modify(|n| *n += 1);
        }))
    }

    /// Wait until `pred` holds for the events so far (panics after `within`).
    pub(crate) async fn until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Event]) -> bool,
    ) {
        let mut rx = self.tick.subscribe();
        let events = self.events.clone();
        let waited = timeout(within, rx.wait_for(|_| pred(&events.lock().unwrap()))).await;
        if waited.is_err() {
            panic!(
                "{what}: not seen within {within:?}; events: {:#?}",
                summary_of(&self.events())
            );
        }
    }
}

/// An event stream read by the test, keeping what it read.
pub(crate) struct Reader {
    stream: EventStream,
    pub(crate) seen: Vec<Event>,
}

impl Reader {
    pub(crate) fn new(stream: EventStream) -> Reader {
        Reader {
            stream,
            seen: Vec::new(),
        }
    }

    /// Read until an event matches `pred` (panics if the stream ends or after `within`).
    pub(crate) async fn until(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(e)) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Ok(None) => panic!(
                    "{what}: the stream ended first; events: {:#?}",
                    summary_of(&self.seen)
                ),
                Err(_) => panic!(
                    "{what}: not seen within {within:?}; events: {:#?}",
                    summary_of(&self.seen)
                ),
            }
        }
    }

    /// Read until `Spawned`: the child's pid (panics as [`Reader::until`]).
    pub(crate) async fn spawned(&mut self, within: Duration) -> u32 {
        let e = self
            .until(within, "Spawned", |e| {
                matches!(e.kind, EventKind::Spawned { .. })
            })
            .await;
        let EventKind::Spawned { pid } = e.kind else {
            unreachable!()
        };
        pid
    }

    /// Read to the end of the stream (panics after `within`).
    pub(crate) async fn rest(&mut self, within: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(e)) => self.seen.push(e),
                Ok(None) => return self.seen.clone(),
                Err(_) => panic!(
                    "the stream did not end within {within:?}; events: {:#?}",
                    summary_of(&self.seen)
                ),
            }
        }
    }
}

/// Read a stream to its end in a task of its own.
pub(crate) fn collect(stream: EventStream) -> tokio::task::JoinHandle<Vec<Event>> {
    tokio::spawn(stream.collect::<Vec<Event>>())
}

/// How many events are of a kind that satisfies `pred`.
pub(crate) fn count(events: &[Event], pred: impl Fn(&EventKind) -> bool) -> usize {
    events.iter().filter(|e| pred(&e.kind)).count()
}

/// The pids of the `Spawned` events, in order.
pub(crate) fn pids(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Spawned { pid } => Some(pid),
            _ => None,
        })
        .collect()
}

/// Short descriptions of events, for failure messages (progress samples left out).
pub(crate) fn summary_of(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| !e.is_progress())
        .map(|e| {
            let mut s = format!("p{} a{} {:?}", e.part, e.attempt, e.kind);
            s.truncate(160);
            s
        })
        .collect();
    if out.len() > 80 {
        let tail = out.split_off(out.len() - 40);
        out.truncate(40);
        out.push("...".into());
        out.extend(tail);
    }
    out
}

// ----- processes -----

/// State and parent of a process from `/proc/<pid>/stat`; `None` once it is gone.
pub(crate) fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = text.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Alive: in `/proc` and not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}
