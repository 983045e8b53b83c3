//! Load benchmark of the manager (`cargo xtask bench manager`): N concurrent transfers
//! through one [`Manager`] against ascp-sim, each a session that stays alive (a `stall`
//! fault: no progress, STATS go on) and sends STATS at `--hz` for `--window` seconds.
//!
//! Reports, per N: manager CPU per 1,000 events (utime+stime of this process, where the
//! manager runs; ascp-sim processes are separate), resident memory per transfer (VmRSS
//! during minus before, over N), event latency, control latency, time to cancel all N until
//! every ascp-sim is reaped, and lost or reordered STATS.
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
//! ```text
//! cargo build --release -p fasp-sim --bin ascp-sim
//! cargo bench -p fasp-manager --bench load -- --n 1,64,256,1000 --hz 10 --window 5
//! ```
//! ascp-sim is taken from `FASP_SIM`, else `target/release/ascp-sim`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fasp_manager::{EventKind, Manager, Transfer, TransferOptions};
use fasp_spec::TransferSpec;
use futures::StreamExt;

/// Command-line settings.
struct Args {
    ns: Vec<usize>,
    hz: u64,
    window: Duration,
    probes: u32,
    /// `None`: probes spread evenly over the window (a constant N × probes / window per
    /// second); `Some(b)`: every transfer probes within `b` of the others (bursts).
    burst: Option<Duration>,
}

fn parse_args() -> Args {
    let mut a = Args {
        ns: vec![1, 64, 256, 1000],
        hz: 10,
        window: Duration::from_secs(5),
        probes: 3,
        burst: None,
    };
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
            // `cargo bench` passes `--bench`; ignore it and anything else.
            _ => {}
        }
        i += 1;
    }
    a
}

fn sim_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FASP_SIM") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join("target/release/ascp-sim");
    assert!(
        p.is_file(),
        "ascp-sim not found at {} (cargo build --release -p fasp-sim --bin ascp-sim, or set FASP_SIM)",
        p.display()
    );
    p
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
}

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

/// One row of the report.
struct Row {
    n: usize,
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
    unstamped: u64,
    unacked: u32,
    cancel: Duration,
    leftover: usize,
    stats: u64,
    expected: u64,
    reordered: u64,
    gaps: u64,
}

async fn run_one(sim: &PathBuf, n: usize, args: &Args) -> Row {
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
    let mut watchers = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = manager.start(&spec, options.clone()).expect("start");
        let mut events = t.events();
        let ctl = t.controller();
        let shared = shared.clone();
        let mut go = go_rx.clone();
        let probes = args.probes;
        let period = args.window / probes.max(1);
        // When this transfer's first probe comes, after the window starts.
        let first_probe = match args.burst {
            None => period.mul_f64(i as f64 / n as f64),
            Some(b) => {
                Duration::from_micros((i as u64 * 7919) % b.as_micros().max(1) as u64) + period / 2
            }
        };
        watchers.push(tokio::spawn(async move {
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
                        let now_us = shared.now_us() as i64;
                        let ws = shared.window_start.load(Ordering::Relaxed) as i64;
                        let we = shared.window_end.load(Ordering::Relaxed) as i64;
                        let in_window = now_us >= ws && now_us < we;
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
                        let _ = ctl.set_rate(rate, 0).await;
                        seen.call.push(mono_us().saturating_sub(called));
                        next_probe = (probe_k < probes).then(|| t0 + period);
                    }
                }
            }
            if pending.is_some() {
                seen.unacked += 1;
            }
            seen
        }));
        transfers.push(t);
    }

    // Wait until every transfer sends STATS (or give up after a while).
    let ramp = Instant::now();
    while (shared.started.load(Ordering::Relaxed) as usize) < n
        && ramp.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = shared.started.load(Ordering::Relaxed) as usize;
    eprintln!(
        "N={n}: {started}/{n} sessions up after {:.1} s",
        ramp.elapsed().as_secs_f64()
    );
    // Let the start-up settle, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let readers0 = reader_schedstats();
    let workers0 = thread_schedstats("self", "tokio-rt-worker");
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
    let events = shared.events.load(Ordering::Relaxed);
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

    // Cancel all, until every ascp-sim is reaped.
    let t_cancel = Instant::now();
    manager.cancel_all();
    let waits: Vec<_> = transfers.into_iter().map(|t| t.wait()).collect();
    let _ = futures::future::join_all(waits).await;
    let mut leftover = sim_pids().len();
    while leftover > 0 && t_cancel.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        leftover = sim_pids().len();
    }
    let cancel = t_cancel.elapsed();

    let mut ev_lat = Vec::new();
    let mut ctl_lat = Vec::new();
    let mut rt_lat = Vec::new();
    let mut call_lat = Vec::new();
    let (mut stats, mut reordered, mut gaps, mut unacked, mut unstamped) = (0, 0, 0, 0, 0);
    for w in watchers {
        let s = w.await.expect("watcher");
        ev_lat.extend(s.event);
        ctl_lat.extend(s.control);
        rt_lat.extend(s.round_trip);
        call_lat.extend(s.call);
        unstamped += s.unstamped;
        stats += s.stats_in_window;
        reordered += s.reordered;
        gaps += s.gaps;
        unacked += s.unacked;
    }
    ev_lat.sort_unstable();
    ctl_lat.sort_unstable();
    rt_lat.sort_unstable();
    call_lat.sort_unstable();
    let window_us = we - ws;
    let expected = n as u64 * window_us / (interval_ms * 1000);
    Row {
        n,
        started,
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
        unstamped,
        unacked,
        cancel,
        leftover,
        stats,
        expected,
        reordered,
        gaps,
    }
}

fn main() {
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
    // Warm-up (runtime threads, allocator arenas, page cache), not reported.
    let warm = Args {
        ns: vec![],
        hz: args.hz,
        window: Duration::from_millis(500),
        probes: 1,
        burst: None,
    };
    runtime.block_on(run_one(&sim, 4, &warm));
    let mut rows = Vec::new();
    for &n in &args.ns {
        let row = runtime.block_on(run_one(&sim, n, &args));
        rows.push(row);
        std::thread::sleep(Duration::from_millis(500));
    }
    println!();
    println!(
        "| N | up | events | CPU/1k events | RSS/transfer | event p50/p99/max | control p50/p99/max | control round trip p50/p99/max | set_rate call p50/p99 | run-queue wait: ascp-sim reader avg/p99, manager | unstamped | unacked | cancel all | left | STATS got/expected | reordered | gaps |"
    );
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} ms | {:.1} KiB | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} / {:.2} ms | {:.3} / {:.3} ms | {:.0} / {:.0} µs, {:.0} µs | {} | {} | {:.3} s | {} | {}/{} | {} | {} |",
            r.n,
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
            r.unstamped,
            r.unacked,
            r.cancel.as_secs_f64(),
            r.leftover,
            r.stats,
            r.expected,
            r.reordered,
            r.gaps,
        );
    }
}
