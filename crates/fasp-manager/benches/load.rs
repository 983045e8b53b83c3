//! Load benchmark of the manager (`cargo xtask bench manager`): N concurrent transfers
//! through one [`Manager`] against ascp-sim, each a session that stays alive (a `stall`
//! fault: no progress, STATS go on) and sends STATS at `--hz` for `--window` seconds.
//!
//! Reports, per N: manager CPU per 1,000 events (utime+stime of this process, where the
//! manager runs; ascp-sim processes are separate), resident memory per transfer (VmRSS
//! during minus before, over N), event latency, control latency, time to cancel all N until
//! every ascp-sim is reaped, lost or reordered STATS, and lifecycle events lost.
//!
//! Latencies are one-way, on the machine's `CLOCK_MONOTONIC`, which every process shares:
//! ascp-sim runs with `ASCP_SIM_TIMESTAMPS=1`, so each frame carries `SimSentUsec` (read
//! right before the frame is written to the management socket) and each RATE
//! acknowledgement `SimCtlReadUsec` (when the read that brought the RATE returned).
//! - event latency: the caller's stream yields the event − `SimSentUsec` of its frame;
//! - control latency: `SimCtlReadUsec` − the moment `set_rate` was called;
//! - control round trip (for reference): `set_rate` called → its acknowledging
//!   NOTIFICATION reaches the caller;
//! - run-queue waits (`/proc/<pid>/task/<tid>/schedstat`, over the window): per wake-up of
//!   ascp-sim's `mgmt-reader` threads (average, and p99 over threads of their own average)
//!   and per time slice of the manager's runtime threads;
//! - `set_rate` call: called → returned (the RATE is then written, or queued behind
//!   earlier requests).
//!
//! **Unread/slow mode** (`--unread P --slow K`, issue 12): `P`% of the transfers (spread
//! evenly) have their event stream taken and held but never polled until every transfer has
//! been reaped, and `K` transfers are read slowly (one event, then `--slow-ms` of sleep).
//! Those transfers are still steered (the same `set_rate` probes, from a task of their own);
//! their control latency comes from the `SimCtlReadUsec` of the acknowledgements found in
//! their streams afterwards. Event latency, round trips and the STATS counts are those of
//! the transfers read at once. For every transfer of every kind the harness checks the
//! lifecycle events its stream yielded (after the cancel, for the never-read ones, by
//! draining the stream): `Spawned`, `Connected`, `SessionInit`, `SessionStarted`,
//! `FileStarted`, each probe's `ControlSent(RATE)` and acknowledging `RateChanged`,
//! `ControlSent(CANCEL)`, in that order, then `SessionFailed(28)` and `Exited` (either
//! order) and `Finished(Cancelled)` last; lifecycle frames in the order ascp-sim stamped
//! them; no `Lagged`. Progress samples are accounted for: the samples a stream yielded plus
//! those coalesced into them ([`fasp_manager::Event::coalesced`]) against the STATS
//! ascp-sim sent (from their `Elapsedusec`). `--mode both` runs each N in the normal mode
//! and then in the unread/slow mode, in one process.
//!
//! ```text
//! cargo build --release -p fasp-sim --bin ascp-sim
//! cargo bench -p fasp-manager --bench load -- --n 1,64,256,1000 --hz 10 --window 5
//! cargo bench -p fasp-manager --bench load -- --n 1000 --unread 10 --slow 1 --mode both
//! ```
//! ascp-sim is taken from `FASP_SIM`, else `target/release/ascp-sim`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fasp_manager::{
    Control, Event, EventKind, EventStream, Manager, Transfer, TransferError, TransferOptions,
    TransferState,
};
use fasp_spec::TransferSpec;
use futures::StreamExt;

/// Which modes to run for each N.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Modes {
    Normal,
    Unread,
    Both,
}

/// Command-line settings.
struct Args {
    ns: Vec<usize>,
    hz: u64,
    window: Duration,
    probes: u32,
    /// `None`: probes spread evenly over the window (a constant N × probes / window per
    /// second); `Some(b)`: every transfer probes within `b` of the others (bursts).
    burst: Option<Duration>,
    modes: Modes,
    /// Unread/slow mode: percentage of transfers whose events are never read.
    unread_pct: u32,
    /// Unread/slow mode: transfers read slowly.
    slow: usize,
    /// How long the slow reader sleeps after each event.
    slow_every: Duration,
}

fn parse_args() -> Args {
    let mut a = Args {
        ns: vec![1, 64, 256, 1000],
        hz: 10,
        window: Duration::from_secs(5),
        probes: 3,
        burst: None,
        modes: Modes::Normal,
        unread_pct: 10,
        slow: 1,
        slow_every: Duration::from_millis(250),
    };
    let mut mode: Option<Modes> = None;
    let mut degraded = false;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--n" => {
                a.ns = val
                    .split(',')
                    .map(|s| s.trim().parse().expect("--n: a list of numbers"))
                    .collect();
                i += 1;
            }
            "--hz" => {
                a.hz = val.parse().expect("--hz: a number");
                i += 1;
            }
            "--window" => {
                a.window = Duration::from_secs_f64(val.parse().expect("--window: seconds"));
                i += 1;
            }
            "--burst" => {
                let ms: u64 = val.parse().expect("--burst: milliseconds");
                a.burst = (ms > 0).then(|| Duration::from_millis(ms));
                i += 1;
            }
            "--probes" => {
                a.probes = val.parse().expect("--probes: a number");
                i += 1;
            }
            "--unread" => {
                a.unread_pct = val.parse().expect("--unread: a percentage");
                assert!(a.unread_pct <= 100, "--unread: a percentage");
                degraded = true;
                i += 1;
            }
            "--slow" => {
                a.slow = val.parse().expect("--slow: a number of transfers");
                degraded = true;
                i += 1;
            }
            "--slow-ms" => {
                a.slow_every = Duration::from_millis(val.parse().expect("--slow-ms: milliseconds"));
                i += 1;
            }
            "--mode" => {
                mode = Some(match val.as_str() {
                    "normal" => Modes::Normal,
                    "unread" => Modes::Unread,
                    "both" => Modes::Both,
                    other => panic!("--mode: normal, unread or both, not {other:?}"),
                });
                i += 1;
            }
            // `cargo bench` passes `--bench`; ignore it and anything else.
            _ => {}
        }
        i += 1;
    }
    a.modes = mode.unwrap_or(if degraded {
        Modes::Unread
    } else {
        Modes::Normal
    });
    a
}

/// ascp-sim: `FASP_SIM`, else in this bench binary's profile folder (`target/release/`
/// under `cargo bench`); see `fasp_testkit::sim::locate_sim`.
fn sim_path() -> PathBuf {
    fasp_testkit::sim::locate_sim().unwrap_or_else(|why| {
        panic!(
            "ascp-sim not found: {why} (cargo build --release -p fasp-sim --bin ascp-sim, or set FASP_SIM)"
        )
    })
}

/// CPU time (user + system) of this process: the utime+stime of `/proc/self/stat`, read
/// through `getrusage`, which gives them in microseconds rather than 10 ms ticks.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(us(u.user_time()) + us(u.system_time()))
}

/// Microseconds of `CLOCK_MONOTONIC`, the clock of ascp-sim's stamps.
fn mono_us() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .expect("CLOCK_MONOTONIC")
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `(run_delay ns, timeslices)` of a thread, from its `schedstat`: how long it waited on a
/// run queue, ready to run, and how many times it ran.
fn schedstat(task: &std::path::Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let mut it = s.split_whitespace().skip(1).map(|v| v.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// `schedstat` of the threads of `pid` whose name starts with `prefix`, by thread.
fn thread_schedstats(pid: &str, prefix: &str) -> Vec<(PathBuf, (u64, u64))> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .filter_map(|t| Some((t.path(), schedstat(&t.path())?)))
        .collect()
}

/// Run-queue wait and time slices of each thread between two readings (threads in both).
fn schedstat_deltas(
    before: &[(PathBuf, (u64, u64))],
    after: &[(PathBuf, (u64, u64))],
) -> Vec<(u64, u64)> {
    let before: std::collections::HashMap<&PathBuf, (u64, u64)> =
        before.iter().map(|(k, v)| (k, *v)).collect();
    after
        .iter()
        .filter_map(|(k, (d1, n1))| {
            let (d0, n0) = before.get(k)?;
            Some((d1.saturating_sub(*d0), n1.saturating_sub(*n0)))
        })
        .collect()
}

/// `schedstat` of every ascp-sim's management reader thread.
fn reader_schedstats() -> Vec<(PathBuf, (u64, u64))> {
    sim_pids()
        .iter()
        .flat_map(|pid| thread_schedstats(pid, "mgmt-reader"))
        .collect()
}

/// Pids of this process's ascp-sim children, zombies included (they are not reaped yet).
fn sim_pids() -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once('(')?.1.rsplit_once(')')?;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm.starts_with("ascp-sim") && ppid == me).then_some(name)
        })
        .collect()
}

/// Run time (ns, `schedstat` of every thread) of every process but this one and its
/// ascp-sim children, by pid: what other programs of a shared machine take.
fn others_ns() -> std::collections::HashMap<u32, u64> {
    let me = std::process::id();
    let sims: std::collections::HashSet<u32> =
        sim_pids().iter().filter_map(|p| p.parse().ok()).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && !sims.contains(pid))
        .map(|pid| {
            let ns = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|t| {
                    let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
                    s.split_whitespace().next()?.parse::<u64>().ok()
                })
                .sum();
            (pid, ns)
        })
        .collect()
}

/// Run time of other programs between two readings of [`others_ns`], ns (those that exited
/// in between are missed).
fn others_delta(
    before: &std::collections::HashMap<u32, u64>,
    after: &std::collections::HashMap<u32, u64>,
) -> u64 {
    after
        .iter()
        .map(|(pid, ns)| ns.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// CPU time of this process's ascp-sim children, ns: the run time of each of their threads
/// (`schedstat`, exact; `utime`/`stime` are sampled at clock ticks and miss most of the short
/// wake-ups of a thousand mostly idle processes).
fn sims_cpu_ns() -> u64 {
    sim_pids()
        .iter()
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
        })
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(s, _)| s)
        .unwrap_or(0)
}

/// How a transfer's events are read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// At once, by a watcher task (the normal mode: every transfer).
    Reader,
    /// Never: the stream is taken and held, and drained only after the transfer was reaped.
    Unread,
    /// One event, then a sleep of `--slow-ms`.
    Slow,
}

const ROLES: [Role; 3] = [Role::Reader, Role::Unread, Role::Slow];

impl Role {
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Role::Reader => "read at once",
            Role::Unread => "never read (drained after reaping)",
            Role::Slow => "read slowly",
        }
    }
}

/// The role of each of `n` transfers: `unread_pct`% never read, spread evenly (the last of
/// each run of 100/P), then `slow` slow ones among the first others.
fn roles(n: usize, unread_pct: u32, slow: usize) -> Vec<Role> {
    let p = unread_pct as usize;
    let mut slow_left = slow;
    (0..n)
        .map(|i| {
            if (i + 1) * p / 100 > i * p / 100 {
                Role::Unread
            } else if slow_left > 0 {
                slow_left -= 1;
                Role::Slow
            } else {
                Role::Reader
            }
        })
        .collect()
}

/// A lifecycle event (anything but a progress sample), as the check needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Life {
    Spawned,
    Connected,
    SessionInit,
    SessionStarted,
    FileStarted,
    /// `ControlSent(RATE)` with this target rate.
    RateSent(u64),
    /// `RateChanged` with this target rate (ascp-sim's acknowledgement of a RATE).
    RateAck(u64),
    CancelSent,
    SessionFailed(u64),
    Exited,
    /// `Finished`; whether its state is `Cancelled`.
    Finished(bool),
    Lagged,
    Other,
}

/// One lifecycle event of a stream, with ascp-sim's stamps (0 when absent).
#[derive(Clone, Copy, Debug)]
struct Rec {
    life: Life,
    sent: u64,
    ctl_read: u64,
}

fn life_of(ev: &Event) -> Option<Rec> {
    let life = match &ev.kind {
        EventKind::FileProgress(_) => return None,
        EventKind::Spawned { .. } => Life::Spawned,
        EventKind::Connected => Life::Connected,
        EventKind::SessionInit { .. } => Life::SessionInit,
        EventKind::SessionStarted(_) => Life::SessionStarted,
        EventKind::FileStarted(_) => Life::FileStarted,
        EventKind::ControlSent(Control::Rate(r)) => Life::RateSent(r.rate_kbps.unwrap_or(0)),
        EventKind::ControlSent(Control::Cancel) => Life::CancelSent,
        EventKind::RateChanged(r) => Life::RateAck(r.target_kbps.unwrap_or(0)),
        EventKind::SessionFailed { code, .. } => Life::SessionFailed(*code),
        EventKind::Exited { .. } => Life::Exited,
        EventKind::Finished { state, .. } => Life::Finished(*state == TransferState::Cancelled),
        EventKind::Lagged { .. } => Life::Lagged,
        _ => Life::Other,
    };
    Some(Rec {
        life,
        sent: field(ev, "SimSentUsec").unwrap_or(0),
        ctl_read: field(ev, "SimCtlReadUsec").unwrap_or(0),
    })
}

/// What a stream yielded, besides the latencies: its lifecycle events and its progress
/// accounting.
#[derive(Default)]
struct Tally {
    life: Vec<Rec>,
    /// Progress samples yielded, plus those coalesced into them.
    samples_accounted: u64,
    /// Sum of `Event::coalesced`.
    coalesced: u64,
    /// `Elapsedusec` of the first and of the last STATS yielded.
    first_elapsed: Option<i64>,
    last_elapsed: Option<i64>,
}

impl Tally {
    fn add(&mut self, ev: &Event) {
        if let EventKind::FileStarted(_) | EventKind::FileProgress(_) = &ev.kind {
            self.samples_accounted += 1 + ev.coalesced;
            self.coalesced += ev.coalesced;
            if let Some(e) = field::<i64>(ev, "Elapsedusec") {
                self.first_elapsed.get_or_insert(e);
                self.last_elapsed = Some(e);
            }
        }
        if let Some(rec) = life_of(ev) {
            self.life.push(rec);
        }
    }

    /// STATS ascp-sim sent from the first to the last one yielded, by their `Elapsedusec`
    /// (ascp-sim sends them on a fixed schedule).
    fn samples_sent(&self, interval_us: i64) -> u64 {
        match (self.first_elapsed, self.last_elapsed) {
            (Some(a), Some(b)) => ((b - a) as f64 / interval_us as f64).round() as u64 + 1,
            _ => 0,
        }
    }
}

/// The lifecycle check of one stream (summed over streams).
#[derive(Default, Clone, Copy)]
struct LifeCheck {
    /// Lifecycle events expected.
    expected: u64,
    /// Expected ones not found in their place.
    missing: u64,
    /// ascp-sim frames whose stamp is below the one before (out of order).
    reordered: u64,
    /// `Lagged` events (a subscriber cut off).
    lagged: u64,
    /// Events beyond the expected ones (informative).
    extra: u64,
}

impl LifeCheck {
    fn add(&mut self, o: LifeCheck) {
        self.expected += o.expected;
        self.missing += o.missing;
        self.reordered += o.reordered;
        self.lagged += o.lagged;
        self.extra += o.extra;
    }
}

/// Check the lifecycle events of a stream of a transfer steered with `rates` and then
/// cancelled (see the module documentation).
fn check_life(recs: &[Rec], rates: &[u64]) -> LifeCheck {
    let mut canon = vec![
        Life::Spawned,
        Life::Connected,
        Life::SessionInit,
        Life::SessionStarted,
        Life::FileStarted,
    ];
    for &r in rates {
        canon.push(Life::RateSent(r));
        canon.push(Life::RateAck(r));
    }
    canon.push(Life::CancelSent);
    let mut c = LifeCheck {
        expected: canon.len() as u64 + 3,
        ..LifeCheck::default()
    };
    let mut matched = 0u64;
    let mut pos = 0;
    for want in &canon {
        match recs[pos..].iter().position(|r| r.life == *want) {
            Some(j) => {
                pos += j + 1;
                matched += 1;
            }
            None => c.missing += 1,
        }
    }
    // After the CANCEL: the session's ERROR 28 and the exit, in either order.
    for want in [Life::SessionFailed(28), Life::Exited] {
        if recs[pos..].iter().any(|r| r.life == want) {
            matched += 1;
        } else {
            c.missing += 1;
        }
    }
    // The end, last.
    if recs.last().is_some_and(|r| r.life == Life::Finished(true)) {
        matched += 1;
    } else {
        c.missing += 1;
    }
    c.lagged = recs.iter().filter(|r| r.life == Life::Lagged).count() as u64;
    let mut last = 0;
    for r in recs.iter().filter(|r| r.sent != 0) {
        if r.sent < last {
            c.reordered += 1;
        }
        last = r.sent;
    }
    c.extra = (recs.len() as u64).saturating_sub(matched);
    c
}

/// What one transfer's watcher saw.
#[derive(Default)]
struct Seen {
    /// One-way event latencies (receipt − `SimSentUsec`), µs, of STATS inside the window.
    event: Vec<u64>,
    /// Events inside the window without a `SimSentUsec` stamp.
    unstamped: u64,
    /// STATS received inside the window.
    stats_in_window: u64,
    /// STATS whose `Elapsedusec` was not above the previous one.
    reordered: u64,
    /// Gaps between consecutive STATS longer than 1.5 intervals (by `Elapsedusec`).
    gaps: u64,
    /// One-way control latencies (`SimCtlReadUsec` − `set_rate` called), µs.
    control: Vec<u64>,
    /// Round trips `set_rate` called → rate NOTIFICATION received, µs.
    round_trip: Vec<u64>,
    /// `set_rate` called → returned, µs (it returns once the RATE is written or queued).
    call: Vec<u64>,
    /// Probes never acknowledged.
    unacked: u32,
    /// Rates set (the probes `set_rate` accepted), in order.
    rates: Vec<u64>,
    /// Lifecycle events and progress accounting.
    tally: Tally,
    /// Most events waiting in the stream after a read (slow reader).
    max_backlog: usize,
    /// When the stream ended (slow reader).
    ended: Option<Instant>,
}

/// A probe issued by a task that does not read the events: `(rate, set_rate called at,
/// accepted)`.
type Probe = (u64, u64, bool);

/// Shared clock and counters of a run.
struct Shared {
    epoch: Instant,
    window_start: AtomicU64,
    window_end: AtomicU64,
    events: AtomicU64,
    started: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn in_window(&self) -> bool {
        let now_us = self.now_us() as i64;
        let ws = self.window_start.load(Ordering::Relaxed) as i64;
        let we = self.window_end.load(Ordering::Relaxed) as i64;
        now_us >= ws && now_us < we
    }
}

fn field<T: std::str::FromStr>(ev: &fasp_manager::Event, key: &str) -> Option<T> {
    ev.frame.as_ref()?.get(key)?.parse::<T>().ok()
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// When transfer `i` of `n` probes first, after the window starts.
fn first_probe(i: usize, n: usize, args: &Args) -> Duration {
    let period = args.window / args.probes.max(1);
    match args.burst {
        None => period.mul_f64(i as f64 / n as f64),
        Some(b) => {
            Duration::from_micros((i as u64 * 7919) % b.as_micros().max(1) as u64) + period / 2
        }
    }
}

/// Probes of a transfer whose events this task does not read: the same schedule as a
/// watcher's.
async fn prober(
    ctl: fasp_manager::Controller,
    mut go: tokio::sync::watch::Receiver<bool>,
    first: Duration,
    period: Duration,
    probes: u32,
) -> (Vec<Probe>, Vec<u64>) {
    let mut issued = Vec::new();
    let mut call = Vec::new();
    if probes == 0 || go.changed().await.is_err() {
        return (issued, call);
    }
    let mut at = Instant::now() + first;
    for k in 0..probes {
        tokio::time::sleep_until(at.into()).await;
        let rate = 10_000 + u64::from(k) + 1;
        let t0 = Instant::now();
        let called = mono_us();
        let ok = ctl.set_rate(rate, 0).await.is_ok();
        call.push(mono_us().saturating_sub(called));
        issued.push((rate, called, ok));
        at = t0 + period;
    }
    (issued, call)
}

/// Figures of the transfers of one role.
#[derive(Default)]
struct RoleRow {
    count: usize,
    life: LifeCheck,
    coalesced: u64,
    samples_accounted: u64,
    samples_sent: u64,
    /// Most events waiting in one stream: for never-read ones at the end of the window, for
    /// slow ones after a read.
    max_backlog: usize,
    /// The longest `cancel_all` → `Transfer::wait` returned.
    cancel_max: Duration,
    /// Outcomes other than `Cancelled`.
    not_cancelled: usize,
    /// One-way control latencies, µs, sorted.
    control: Vec<u64>,
    unacked: u32,
    /// `cancel_all` → the stream yielded its last event (slow ones).
    stream_end_max: Duration,
}

/// One row of the report.
struct Row {
    n: usize,
    mode: &'static str,
    started: usize,
    events: u64,
    cpu_per_k: Duration,
    rss_per_transfer_kib: f64,
    ev_p50: u64,
    ev_p99: u64,
    ev_max: u64,
    ctl_p50: u64,
    ctl_p99: u64,
    ctl_max: u64,
    rt_p50: u64,
    rt_p99: u64,
    rt_max: u64,
    call_p50: u64,
    call_p99: u64,
    /// ascp-sim's management reader threads: run-queue wait per wakeup, µs (over all of
    /// them), and the p99 over threads of their own average.
    reader_wait_avg: f64,
    reader_wait_p99: f64,
    /// The manager's runtime threads: run-queue wait per time slice during the window, µs.
    worker_wait_avg: f64,
    /// Cores busy over the window: this process, its ascp-sim children, other programs.
    bench_cores: f64,
    sims_cores: f64,
    foreign_cores: f64,
    unstamped: u64,
    unacked: u32,
    cancel: Duration,
    leftover: usize,
    stats: u64,
    expected: u64,
    reordered: u64,
    gaps: u64,
    roles: [RoleRow; 3],
}

impl Row {
    fn life(&self) -> LifeCheck {
        let mut c = LifeCheck::default();
        for r in &self.roles {
            c.add(r.life);
        }
        c
    }
}

/// One transfer's handles while it runs.
enum Watch {
    Reader(tokio::task::JoinHandle<Seen>),
    Unread(EventStream, tokio::task::JoinHandle<(Vec<Probe>, Vec<u64>)>),
    Slow(
        tokio::task::JoinHandle<Seen>,
        tokio::task::JoinHandle<(Vec<Probe>, Vec<u64>)>,
    ),
}

/// The watcher of a transfer read at once: reads every event, probes on its schedule.
#[allow(clippy::too_many_arguments)]
fn reader(
    mut events: EventStream,
    ctl: fasp_manager::Controller,
    shared: Arc<Shared>,
    mut go: tokio::sync::watch::Receiver<bool>,
    first_probe: Duration,
    period: Duration,
    probes: u32,
    interval_us: i64,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut counted_start = false;
        let mut last_elapsed: Option<i64> = None;
        // Probe k at window_start + first_probe + k * window / probes.
        let mut next_probe: Option<Instant> = None;
        let mut probe_k = 0u32;
        let mut pending: Option<(u64, u64)> = None;
        loop {
            let sleep_to = match (pending, next_probe) {
                (None, Some(t)) => t,
                _ => Instant::now() + Duration::from_secs(3600),
            };
            tokio::select! {
                ev = events.next() => {
                    let Some(ev) = ev else { break };
                    let received = mono_us();
                    let in_window = shared.in_window();
                    if in_window {
                        shared.events.fetch_add(1, Ordering::Relaxed);
                    }
                    match &ev.kind {
                        EventKind::FileStarted(_) | EventKind::FileProgress(_) => {
                            if !counted_start {
                                counted_start = true;
                                shared.started.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Some(e) = field::<i64>(&ev, "Elapsedusec") {
                                if let Some(prev) = last_elapsed {
                                    if e <= prev {
                                        seen.reordered += 1;
                                    } else if in_window && e - prev > interval_us * 3 / 2 {
                                        seen.gaps += 1;
                                    }
                                }
                                last_elapsed = Some(e);
                            }
                            if in_window {
                                seen.stats_in_window += 1;
                                match field::<u64>(&ev, "SimSentUsec") {
                                    Some(sent) => seen.event.push(received.saturating_sub(sent)),
                                    None => seen.unstamped += 1,
                                }
                            }
                        }
                        EventKind::RateChanged(r) => {
                            if let Some((rate, t0)) = pending {
                                if r.target_kbps == Some(rate) {
                                    seen.round_trip.push(received.saturating_sub(t0));
                                    match field::<u64>(&ev, "SimCtlReadUsec") {
                                        Some(read) => seen.control.push(read.saturating_sub(t0)),
                                        None => seen.unstamped += 1,
                                    }
                                    pending = None;
                                }
                            }
                        }
                        _ => {}
                    }
                    seen.tally.add(&ev);
                }
                _ = go.changed(), if next_probe.is_none() && probe_k == 0 && probes > 0 => {
                    next_probe = Some(Instant::now() + first_probe);
                }
                _ = tokio::time::sleep_until(sleep_to.into()) => {
                    let rate = 10_000 + u64::from(probe_k) + 1;
                    probe_k += 1;
                    let t0 = Instant::now();
                    let called = mono_us();
                    pending = Some((rate, called));
                    if ctl.set_rate(rate, 0).await.is_ok() {
                        seen.rates.push(rate);
                    }
                    seen.call.push(mono_us().saturating_sub(called));
                    next_probe = (probe_k < probes).then(|| t0 + period);
                }
            }
        }
        if pending.is_some() {
            seen.unacked += 1;
        }
        seen
    })
}

/// The slow reader: one event, then a sleep, until the stream ends.
fn slow_reader(
    mut events: EventStream,
    shared: Arc<Shared>,
    every: Duration,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut counted_start = false;
        while let Some(ev) = events.next().await {
            if shared.in_window() {
                shared.events.fetch_add(1, Ordering::Relaxed);
            }
            if !counted_start && matches!(ev.kind, EventKind::FileStarted(_)) {
                counted_start = true;
                shared.started.fetch_add(1, Ordering::Relaxed);
            }
            seen.tally.add(&ev);
            seen.max_backlog = seen.max_backlog.max(events.backlog());
            tokio::time::sleep(every).await;
        }
        seen.ended = Some(Instant::now());
        seen
    })
}

/// Control latencies of probes issued without reading, from the acknowledgements found in
/// the stream afterwards: `(latencies µs, unacked, rates accepted)`.
fn late_controls(probes: &[Probe], life: &[Rec]) -> (Vec<u64>, u32, Vec<u64>) {
    let mut lat = Vec::new();
    let mut unacked = 0;
    let mut rates = Vec::new();
    for &(rate, called, ok) in probes {
        if !ok {
            continue;
        }
        rates.push(rate);
        match life
            .iter()
            .find(|r| r.life == Life::RateAck(rate) && r.ctl_read != 0)
        {
            Some(r) => lat.push(r.ctl_read.saturating_sub(called)),
            None => unacked += 1,
        }
    }
    (lat, unacked, rates)
}

async fn run_one(sim: &PathBuf, n: usize, args: &Args, degraded: bool) -> Row {
    let work = tempfile::tempdir().expect("tempdir");
    let local = work.path().join("local");
    let remote = work.path().join("remote");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    let src = local.join("payload.bin");
    std::fs::write(&src, vec![7u8; 64 * 1024]).unwrap();
    let interval_ms = (1000 / args.hz.max(1)).max(1);
    let interval_us = interval_ms as i64 * 1000;
    let spec = TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .ssh_port(33001)
        .source(src.to_str().unwrap())
        .destination_root("/inbox")
        .create_dir(true)
        .build()
        .expect("spec");
    let options = TransferOptions::default()
        .with_env("ASCP_SIM_ROOT", remote.to_str().unwrap())
        .with_env("ASCP_SIM_STATS_INTERVAL_MS", interval_ms.to_string())
        .with_env("ASCP_SIM_FAULT", "stall:36000@1")
        .with_env("ASCP_SIM_TIMESTAMPS", "1")
        .with_connect_timeout(Duration::from_secs(120))
        .with_cancel_graces(Duration::from_secs(3), Duration::from_secs(3));
    let roles = if degraded {
        roles(n, args.unread_pct, args.slow)
    } else {
        vec![Role::Reader; n]
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib();
    let manager = Manager::with_ascp(sim);
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window_start: AtomicU64::new(i64::MAX as u64),
        window_end: AtomicU64::new(i64::MAX as u64),
        events: AtomicU64::new(0),
        started: AtomicU64::new(0),
    });
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut transfers: Vec<Transfer> = Vec::with_capacity(n);
    let mut watches = Vec::with_capacity(n);
    let period = args.window / args.probes.max(1);
    for (i, &role) in roles.iter().enumerate() {
        let mut t = manager.start(&spec, options.clone()).expect("start");
        let events = t.events();
        let ctl = t.controller();
        let first = first_probe(i, n, args);
        let go = go_rx.clone();
        watches.push(match role {
            Role::Reader => Watch::Reader(reader(
                events,
                ctl,
                shared.clone(),
                go,
                first,
                period,
                args.probes,
                interval_us,
            )),
            Role::Unread => Watch::Unread(
                events,
                tokio::spawn(prober(ctl, go, first, period, args.probes)),
            ),
            Role::Slow => Watch::Slow(
                slow_reader(events, shared.clone(), args.slow_every),
                tokio::spawn(prober(ctl, go, first, period, args.probes)),
            ),
        });
        transfers.push(t);
    }
    let unread = roles.iter().filter(|r| **r == Role::Unread).count();

    // Wait until every transfer that is read sends STATS (or give up after a while), and
    // every never-read one has its ascp-sim.
    let ramp = Instant::now();
    while ((shared.started.load(Ordering::Relaxed) as usize) < n - unread || sim_pids().len() < n)
        && ramp.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = shared.started.load(Ordering::Relaxed) as usize;
    let up = (started + unread).min(sim_pids().len());
    eprintln!(
        "N={n}{}: {started}/{} read sessions sending STATS, {} ascp-sim up after {:.1} s",
        if degraded { " (unread/slow)" } else { "" },
        n - unread,
        sim_pids().len(),
        ramp.elapsed().as_secs_f64()
    );
    // Let the start-up settle, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let readers0 = reader_schedstats();
    let workers0 = thread_schedstats("self", "tokio-rt-worker");
    let sims0 = sims_cpu_ns();
    let others0 = others_ns();
    let cpu0 = cpu_time();
    let ws = shared.now_us();
    shared.window_start.store(ws, Ordering::Relaxed);
    let _ = go_tx.send(true);
    tokio::time::sleep(args.window / 2).await;
    let rss_during = rss_kib();
    tokio::time::sleep(args.window - args.window / 2).await;
    let we = shared.now_us();
    shared.window_end.store(we, Ordering::Relaxed);
    let cpu = cpu_time().saturating_sub(cpu0);
    let sims_cpu = sims_cpu_ns().saturating_sub(sims0);
    let others_cpu = others_delta(&others0, &others_ns());
    let events = shared.events.load(Ordering::Relaxed);
    // Cores kept busy over the window: by this process (the manager and the harness), by its
    // ascp-sim children, by other programs (a shared machine).
    let window_s = (we - ws) as f64 / 1e6;
    let foreign_cores = others_cpu as f64 / 1e9 / window_s;
    let bench_cores = cpu.as_secs_f64() / window_s;
    let sims_cores = sims_cpu as f64 / 1e9 / window_s;
    let workers1 = thread_schedstats("self", "tokio-rt-worker");
    let readers1 = reader_schedstats();
    let sum = |v: &[(u64, u64)]| {
        v.iter()
            .fold((0u64, 0u64), |(d, n), (d1, n1)| (d + d1, n + n1))
    };
    let (wd, wn) = sum(&schedstat_deltas(&workers0, &workers1));
    let worker_wait_avg = wd as f64 / 1e3 / wn.max(1) as f64;
    let readers = schedstat_deltas(&readers0, &readers1);
    let (rd, rn) = sum(&readers);
    let reader_wait_avg = rd as f64 / 1e3 / rn.max(1) as f64;
    let mut per_reader: Vec<u64> = readers
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(d, n)| d / n)
        .collect();
    per_reader.sort_unstable();
    let reader_wait_p99 = pct(&per_reader, 0.99) as f64 / 1e3;
    let mut role_rows: [RoleRow; 3] = Default::default();
    for (w, &role) in watches.iter().zip(&roles) {
        if let Watch::Unread(stream, _) = w {
            let r = &mut role_rows[role.index()];
            r.max_backlog = r.max_backlog.max(stream.backlog());
        }
    }

    // Cancel all, until every ascp-sim is reaped; each transfer's own time to `wait`.
    let t_cancel = Instant::now();
    manager.cancel_all();
    let waits: Vec<_> = transfers
        .into_iter()
        .map(|t| async move {
            let outcome = t.wait().await;
            let cancelled = matches!(outcome, Err(TransferError::Cancelled { .. }));
            (t_cancel.elapsed(), cancelled)
        })
        .collect();
    let outcomes = futures::future::join_all(waits).await;
    let mut leftover = sim_pids().len();
    while leftover > 0 && t_cancel.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        leftover = sim_pids().len();
    }
    let cancel = t_cancel.elapsed();
    for ((took, cancelled), &role) in outcomes.iter().zip(&roles) {
        let r = &mut role_rows[role.index()];
        r.count += 1;
        r.cancel_max = r.cancel_max.max(*took);
        if !cancelled {
            r.not_cancelled += 1;
        }
    }

    let mut ev_lat = Vec::new();
    let mut ctl_lat = Vec::new();
    let mut rt_lat = Vec::new();
    let mut call_lat = Vec::new();
    let (mut stats, mut reordered, mut gaps, mut unacked, mut unstamped) = (0, 0, 0, 0, 0);
    for (w, &role) in watches.into_iter().zip(&roles) {
        let r = &mut role_rows[role.index()];
        let (tally, rates) = match w {
            Watch::Reader(h) => {
                let s = h.await.expect("watcher");
                ev_lat.extend(s.event);
                ctl_lat.extend(&s.control);
                r.control.extend(s.control);
                rt_lat.extend(s.round_trip);
                call_lat.extend(s.call);
                unstamped += s.unstamped;
                stats += s.stats_in_window;
                reordered += s.reordered;
                gaps += s.gaps;
                unacked += s.unacked;
                r.unacked += s.unacked;
                (s.tally, s.rates)
            }
            Watch::Unread(stream, probes) => {
                let (probes, call) = probes.await.expect("prober");
                // The transfer has been reaped: the stream is closed, and holds what it got.
                let mut tally = Tally::default();
                let all: Vec<Event> = stream.collect().await;
                for ev in &all {
                    tally.add(ev);
                }
                let (lat, un, rates) = late_controls(&probes, &tally.life);
                ctl_lat.extend(&lat);
                r.control.extend(lat);
                call_lat.extend(call);
                r.unacked += un;
                unacked += un;
                (tally, rates)
            }
            Watch::Slow(h, probes) => {
                let s = h.await.expect("slow reader");
                let (probes, call) = probes.await.expect("prober");
                let ended = s
                    .ended
                    .map_or(Duration::ZERO, |e| e.saturating_duration_since(t_cancel));
                r.stream_end_max = r.stream_end_max.max(ended);
                r.max_backlog = r.max_backlog.max(s.max_backlog);
                let (lat, un, rates) = late_controls(&probes, &s.tally.life);
                ctl_lat.extend(&lat);
                r.control.extend(lat);
                call_lat.extend(call);
                r.unacked += un;
                unacked += un;
                (s.tally, rates)
            }
        };
        r.life.add(check_life(&tally.life, &rates));
        r.coalesced += tally.coalesced;
        r.samples_accounted += tally.samples_accounted;
        r.samples_sent += tally.samples_sent(interval_us);
    }
    for r in &mut role_rows {
        r.control.sort_unstable();
    }
    ev_lat.sort_unstable();
    ctl_lat.sort_unstable();
    rt_lat.sort_unstable();
    call_lat.sort_unstable();
    let window_us = we - ws;
    let read_at_once = role_rows[Role::Reader.index()].count as u64;
    let expected = read_at_once * window_us / (interval_ms * 1000);
    Row {
        n,
        mode: if degraded { "unread/slow" } else { "normal" },
        started: up,
        events,
        cpu_per_k: if events > 0 {
            cpu * 1000 / events as u32
        } else {
            Duration::ZERO
        },
        rss_per_transfer_kib: rss_during.saturating_sub(rss_before) as f64 / n as f64,
        ev_p50: pct(&ev_lat, 0.5),
        ev_p99: pct(&ev_lat, 0.99),
        ev_max: ev_lat.last().copied().unwrap_or(0),
        ctl_p50: pct(&ctl_lat, 0.5),
        ctl_p99: pct(&ctl_lat, 0.99),
        ctl_max: ctl_lat.last().copied().unwrap_or(0),
        rt_p50: pct(&rt_lat, 0.5),
        rt_p99: pct(&rt_lat, 0.99),
        rt_max: rt_lat.last().copied().unwrap_or(0),
        call_p50: pct(&call_lat, 0.5),
        call_p99: pct(&call_lat, 0.99),
        reader_wait_avg,
        reader_wait_p99,
        worker_wait_avg,
        bench_cores,
        sims_cores,
        foreign_cores,
        unstamped,
        unacked,
        cancel,
        leftover,
        stats,
        expected,
        reordered,
        gaps,
        roles: role_rows,
    }
}

/// The lifecycle check finds a lost, a moved and a duplicated-but-misplaced event.
fn self_check() {
    let rec = |life| Rec {
        life,
        sent: 0,
        ctl_read: 0,
    };
    let good: Vec<Rec> = [
        Life::Spawned,
        Life::Connected,
        Life::SessionInit,
        Life::SessionStarted,
        Life::FileStarted,
        Life::RateSent(7),
        Life::RateAck(7),
        Life::CancelSent,
        Life::Exited,
        Life::SessionFailed(28),
        Life::Finished(true),
    ]
    .into_iter()
    .map(rec)
    .collect();
    let c = check_life(&good, &[7]);
    assert_eq!((c.expected, c.missing, c.extra), (11, 0, 0));
    for i in 0..good.len() {
        let mut lost = good.clone();
        lost.remove(i);
        assert_eq!(
            check_life(&lost, &[7]).missing,
            1,
            "lost event {i} not seen"
        );
    }
    let mut moved = good.clone();
    moved.swap(5, 6);
    assert!(
        check_life(&moved, &[7]).missing > 0,
        "reordered controls not seen"
    );
    let mut late = good.clone();
    late.swap(9, 10);
    assert!(
        check_life(&late, &[7]).missing > 0,
        "Finished not last not seen"
    );
}

fn main() {
    self_check();
    let args = parse_args();
    let sim = sim_path();
    let nofile = raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "manager load: ascp-sim {}, STATS at {} Hz, window {:.1} s, {} set_rate probes per transfer ({}), RLIMIT_NOFILE {nofile}",
        sim.display(),
        args.hz,
        args.window.as_secs_f64(),
        args.probes,
        match args.burst {
            None => "spread evenly over the window".to_string(),
            Some(b) => format!("all transfers within {} ms", b.as_millis()),
        }
    );
    if args.modes != Modes::Normal {
        println!(
            "unread/slow mode: {}% of the transfers never read, {} read slowly (one event per {} ms)",
            args.unread_pct,
            args.slow,
            args.slow_every.as_millis()
        );
    }
    // Warm-up (runtime threads, allocator arenas, page cache), not reported.
    let warm = Args {
        ns: vec![],
        hz: args.hz,
        window: Duration::from_millis(500),
        probes: 1,
        burst: None,
        modes: Modes::Normal,
        unread_pct: 0,
        slow: 0,
        slow_every: args.slow_every,
    };
    runtime.block_on(run_one(&sim, 4, &warm, false));
    let modes: &[bool] = match args.modes {
        Modes::Normal => &[false],
        Modes::Unread => &[true],
        Modes::Both => &[false, true],
    };
    let mut rows = Vec::new();
    for &n in &args.ns {
        for &degraded in modes {
            let row = runtime.block_on(run_one(&sim, n, &args, degraded));
            rows.push(row);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    print_rows(&rows);
}

fn print_rows(rows: &[Row]) {
    println!();
    println!(
        "| N | mode | up | events | CPU/1k events | RSS/transfer | event p50/p99/max | control p50/p99/max | control round trip p50/p99/max | set_rate call p50/p99 | run-queue wait: ascp-sim reader avg/p99, manager | cores busy: bench / ascp-sim / other programs | unstamped | unacked | cancel all | left | STATS got/expected | reordered | gaps | lifecycle lost (of expected) |"
    );
    println!(
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let life = r.life();
        println!(
            "| {} | {} | {} | {} | {:.2} ms | {:.1} KiB | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} ms | {:.0} / {:.0} µs, {:.0} µs | {:.2} / {:.2} / {:.2} | {} | {} | {:.3} s | {} | {}/{} | {} | {} | {} ({}) |",
            r.n,
            r.mode,
            r.started,
            r.events,
            r.cpu_per_k.as_secs_f64() * 1e3,
            r.rss_per_transfer_kib,
            r.ev_p50 as f64 / 1e3,
            r.ev_p99 as f64 / 1e3,
            r.ev_max as f64 / 1e3,
            r.ctl_p50 as f64 / 1e3,
            r.ctl_p99 as f64 / 1e3,
            r.ctl_max as f64 / 1e3,
            r.rt_p50 as f64 / 1e3,
            r.rt_p99 as f64 / 1e3,
            r.rt_max as f64 / 1e3,
            r.call_p50 as f64 / 1e3,
            r.call_p99 as f64 / 1e3,
            r.reader_wait_avg,
            r.reader_wait_p99,
            r.worker_wait_avg,
            r.bench_cores,
            r.sims_cores,
            r.foreign_cores,
            r.unstamped,
            r.unacked,
            r.cancel.as_secs_f64(),
            r.leftover,
            r.stats,
            r.expected,
            r.reordered,
            r.gaps,
            life.missing,
            life.expected,
        );
    }

    println!();
    println!("Per kind of subscriber:");
    println!();
    println!(
        "| N | mode | events read | transfers | cancel → reaped, max | not `Cancelled` | lifecycle expected / missing / out of order / lagged / extra | progress samples yielded + coalesced / sent | coalesced | most queued in one stream | control p50/p99/max | unacked |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        for role in ROLES {
            let x = &r.roles[role.index()];
            if x.count == 0 {
                continue;
            }
            let end = if role == Role::Slow {
                format!(
                    " (stream read to its end {:.1} s after the cancel)",
                    x.stream_end_max.as_secs_f64()
                )
            } else {
                String::new()
            };
            println!(
                "| {} | {} | {} | {} | {:.3} s{end} | {} | {} / {} / {} / {} / {} | {} / {} | {} | {} | {:.3} / {:.3} / {:.2} ms | {} |",
                r.n,
                r.mode,
                role.name(),
                x.count,
                x.cancel_max.as_secs_f64(),
                x.not_cancelled,
                x.life.expected,
                x.life.missing,
                x.life.reordered,
                x.life.lagged,
                x.life.extra,
                x.samples_accounted,
                x.samples_sent,
                x.coalesced,
                x.max_backlog,
                pct(&x.control, 0.5) as f64 / 1e3,
                pct(&x.control, 0.99) as f64 / 1e3,
                x.control.last().copied().unwrap_or(0) as f64 / 1e3,
                x.unacked,
            );
        }
    }

    println!();
    println!("Against the targets of issue 8:");
    println!();
    println!(
        "| N | mode | event p99 < 5 ms | control p99 < 1 ms | RSS < 64 KiB per transfer | cancel all, all reaped < 10 s | no lifecycle event lost |"
    );
    println!("|---:|---|---|---|---|---|---|");
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    for r in rows {
        let life = r.life();
        let slowest = r
            .roles
            .iter()
            .map(|x| x.cancel_max)
            .max()
            .unwrap_or_default()
            .max(r.cancel);
        let lost = life.missing + life.reordered + life.lagged;
        println!(
            "| {} | {} | {:.2} ms: {} | {:.2} ms: {} | {:.1} KiB: {} | {:.2} s, {} left: {} | {} lost of {}: {} |",
            r.n,
            r.mode,
            r.ev_p99 as f64 / 1e3,
            verdict(r.ev_p99 < 5_000),
            r.ctl_p99 as f64 / 1e3,
            verdict(r.ctl_p99 < 1_000),
            r.rss_per_transfer_kib,
            verdict(r.rss_per_transfer_kib < 64.0),
            slowest.as_secs_f64(),
            r.leftover,
            verdict(slowest < Duration::from_secs(10) && r.leftover == 0),
            lost,
            life.expected,
            verdict(lost == 0),
        );
    }
}
