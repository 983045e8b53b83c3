//! The benchmark of fasp-jobs (`cargo xtask bench jobs`): what the job model costs, each figure
//! against a baseline measured in the same run.
//!
//! * **Claims per second** (claim, then complete), on SQLite and on PostgreSQL, with 1, 4 and
//!   16 workers (each on its own connection pool), draining `FASP_JOBS_BENCH_JOBS` queued jobs
//!   (default 10,000). Baseline: a bare queue, a table of one id and a state, drained by the
//!   same workers with the claim's shape (`UPDATE ... WHERE id = (SELECT ... LIMIT 1 [FOR
//!   UPDATE SKIP LOCKED]) RETURNING id`, then an `UPDATE` to done), through the same driver
//!   and pool settings. Submits per second are shown against one `INSERT` per row.
//! * **Latency from submit to spawn**, p50 and p99 over `FASP_JOBS_BENCH_LATENCY` jobs
//!   (default 200) submitted one at a time to an idle worker (a SQLite store, then a
//!   PostgreSQL one; poll interval `FASP_JOBS_BENCH_POLL_MS`, default 50 ms; the next job is
//!   submitted once the previous one has ended): from the call to `submit` to the worker's
//!   `Spawned` event (ascp-sim started). Baseline: the bare manager, from the call to `Manager::start` to the
//!   transfer's `Spawned` event, one transfer at a time too. An idle worker finds a new job
//!   at its next poll, so each job is submitted at a random point of the poll cycle: expect
//!   about half the poll interval more than the baseline.
//! * **Memory of the daemon at N running jobs** (`FASP_JOBS_BENCH_RUNNING`, default
//!   `200,1000`): a process running a worker (SQLite store, caps raised to N) whose N jobs
//!   are ascp-sim transfers held running by a stall; its VmRSS once every job sends
//!   progress; and the time from the worker's start to the last of them running. Baseline: a
//!   process holding N transfers of the bare manager, the same way.
//!   Each side runs in a process of its own (this binary, started again), so that neither
//!   inherits the other's heap.
//!
//! PostgreSQL rows need the server's binaries (`FASP_PG_BIN`, `/usr/lib/postgresql/*/bin`);
//! without them they are skipped with a notice (and the run fails with `CI=true`). ascp-sim is
//! taken from `FASP_SIM`, else next to this binary (`target/release/ascp-sim`).
//!
//! ```text
//! cargo build --release -p fasp-sim --bin ascp-sim
//! cargo bench -p fasp-jobs --bench jobs [-- claims latency memory]
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fasp_jobs::{JobError, JobId, JobProgress, JobStore, NewJob, Worker, WorkerConfig};
use fasp_manager::{EventKind, Manager, TransferOptions};
use futures::StreamExt;
use sqlx::any::AnyPoolOptions;
use support::pg::PgCluster;

/// Set in the child processes of the memory figure: `worker` or `manager`.
const CHILD_ENV: &str = "FASP_JOBS_BENCH_CHILD";
/// The number of running jobs of a memory child.
const CHILD_N_ENV: &str = "FASP_JOBS_BENCH_CHILD_N";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// One line of the final table.
struct Row {
    figure: String,
    value: String,
    baseline: String,
    ratio: String,
}

impl Row {
    fn new(figure: String, value: f64, baseline: f64, unit: &str, digits: usize) -> Row {
        Row {
            figure,
            value: format!("{value:.digits$} {unit}").trim_end().to_owned(),
            baseline: format!("{baseline:.digits$} {unit}").trim_end().to_owned(),
            ratio: if baseline > 0.0 {
                format!("{:.2}", value / baseline)
            } else {
                "-".into()
            },
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var(CHILD_ENV) {
        memory_child(&which);
        return;
    }
    let phases: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |p: &str| phases.is_empty() || phases.iter().any(|x| x == p);
    let sim = match fasp_testkit::sim::locate_sim() {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "jobs bench: ascp-sim not found ({why}): cargo build --release -p fasp-sim --bin ascp-sim"
            );
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let mut rows = Vec::new();
    eprintln!(
        "jobs bench: ascp-sim {}, {} cores, load average {}",
        sim.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if wants("claims") {
        rows.extend(rt.block_on(claims()));
    }
    if wants("latency") {
        rows.extend(rt.block_on(latency(&sim)));
    }
    if wants("memory") {
        rows.extend(memory(&sim));
    }
    print_table(&rows);
    eprintln!(
        "jobs bench: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

fn print_table(rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.figure.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(9).max(9);
    let w2 = rows
        .iter()
        .map(|r| r.baseline.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!();
    println!(
        "| {:w0$} | {:>w1$} | {:>w2$} | ratio |",
        "figure", "job model", "baseline"
    );
    println!(
        "|{}|{}:|{}:|------:|",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 1),
        "-".repeat(w2 + 1)
    );
    for r in rows {
        println!(
            "| {:w0$} | {:>w1$} | {:>w2$} | {:>5} |",
            r.figure, r.value, r.baseline, r.ratio
        );
    }
}

// ----- claims per second -----

async fn claims() -> Vec<Row> {
    let n = env_num("FASP_JOBS_BENCH_JOBS", 10_000);
    eprintln!(
        "claims: {n} queued jobs (FASP_JOBS_BENCH_JOBS); baseline: a bare one-column queue, same claim shape"
    );
    let mut rows = Vec::new();
    let sqlite_dir = tempfile::tempdir().expect("a temporary folder");
    let mut cluster = PgCluster::start();
    if cluster.is_none() {
        eprintln!("claims: no PostgreSQL, its rows are skipped");
    }
    let mut submits = Vec::new();
    for workers in [1, 4, 16] {
        let url = sqlite_dir
            .path()
            .join(format!("jobs{workers}.db"))
            .to_string_lossy()
            .into_owned();
        let (row, s) = claims_row("SQLite", &url, n, workers).await;
        rows.push(row);
        submits.push(s);
    }
    rows.push(submit_row("SQLite", n, &mut submits));
    if let Some(cluster) = cluster.as_mut() {
        for workers in [1, 4, 16] {
            let url = cluster.fresh_db().await;
            let (row, s) = claims_row("PostgreSQL", &url, n, workers).await;
            rows.push(row);
            submits.push(s);
        }
        rows.push(submit_row("PostgreSQL", n, &mut submits));
    }
    rows
}

/// The submit row of a backend: the mean over its runs of (job model, bare) submits/s.
fn submit_row(backend: &str, n: usize, runs: &mut Vec<(f64, f64)>) -> Row {
    let k = runs.len().max(1) as f64;
    let jobs = runs.iter().map(|r| r.0).sum::<f64>() / k;
    let bare = runs.iter().map(|r| r.1).sum::<f64>() / k;
    let count = runs.len();
    runs.clear();
    Row::new(
        format!("{backend} submit, one client, {n} jobs x {count} runs (per s)"),
        jobs,
        bare,
        "",
        0,
    )
}

/// Claims with `workers` workers against the bare queue; the row, and (job model, bare)
/// submits/s.
async fn claims_row(backend: &str, url: &str, n: usize, workers: usize) -> (Row, (f64, f64)) {
    let (bare_submit, bare_claim) = bare_queue(url, n, workers).await;
    let (submit, claim) = job_queue(url, n, workers).await;
    eprintln!(
        "  {backend:<10} {workers:>2} workers: submits {submit:>6.0}/s (bare {bare_submit:>6.0}/s), \
         claim+complete {claim:>6.0}/s (bare {bare_claim:>6.0}/s)"
    );
    let plural = if workers == 1 { "" } else { "s" };
    (
        Row::new(
            format!("{backend} claim+complete, {n} jobs, {workers} worker{plural} (per s)"),
            claim,
            bare_claim,
            "",
            0,
        ),
        (submit, bare_submit),
    )
}

/// The job model: `n` submits, then `workers` workers claim and complete until the queue is
/// empty; (submits/s, claims/s).
async fn job_queue(url: &str, n: usize, workers: usize) -> (f64, f64) {
    let store = JobStore::open(url).await.expect("open the store");
    let t0 = Instant::now();
    for i in 0..n {
        store
            .submit(&support::job(&format!("j{i}"), "h"))
            .await
            .expect("submit");
    }
    let submits = n as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let store = JobStore::open(&url).await.expect("open the store");
            let mut done = 0usize;
            loop {
                match store
                    .claim(&format!("w{w}"), Duration::from_secs(300), &[])
                    .await
                {
                    Ok(Some(c)) => {
                        store
                            .complete(&c.lease, &[], &JobProgress::default())
                            .await
                            .expect("complete");
                        done += 1;
                    }
                    Ok(None) => break,
                    Err(JobError::Database { .. }) => continue,
                    Err(e) => panic!("claim: {e}"),
                }
            }
            store.close().await;
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a claiming task");
    }
    let claims = n as f64 / t1.elapsed().as_secs_f64();
    assert_eq!(total, n, "every job claimed and completed once");
    store.close().await;
    (submits, claims)
}

/// The baseline: the same shape of claim on a table of one id and a state.
async fn bare_queue(url: &str, n: usize, workers: usize) -> (f64, f64) {
    sqlx::any::install_default_drivers();
    let pg = url.starts_with("postgres");
    let open = |url: String| async move {
        let (url, max) = if pg {
            (url, 8)
        } else {
            (format!("sqlite://{url}.bare?mode=rwc"), 4)
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await
            .expect("open the bare queue");
        if !pg {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .expect("WAL");
        }
        pool
    };
    let pool = open(url.to_owned()).await;
    let id = if pg {
        "id BIGSERIAL PRIMARY KEY"
    } else {
        "id INTEGER PRIMARY KEY"
    };
    for sql in [
        "DROP TABLE IF EXISTS bare_queue".to_owned(),
        format!("CREATE TABLE bare_queue ({id}, state TEXT NOT NULL, owner TEXT)"),
        "CREATE INDEX bare_queue_state ON bare_queue (state, id)".to_owned(),
    ] {
        sqlx::query(&sql)
            .execute(&pool)
            .await
            .expect("the bare queue's schema");
    }
    let t0 = Instant::now();
    for _ in 0..n {
        sqlx::query("INSERT INTO bare_queue (state) VALUES ('queued')")
            .execute(&pool)
            .await
            .expect("a bare insert");
    }
    let submits = n as f64 / t0.elapsed().as_secs_f64();
    let lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" };
    let claim_sql = format!(
        "UPDATE bare_queue SET state = 'running', owner = $1 WHERE id = \
         (SELECT id FROM bare_queue WHERE state = 'queued' ORDER BY id LIMIT 1{lock}) RETURNING id"
    );
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let pool = open(url.to_owned()).await;
        let claim_sql = claim_sql.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut done = 0usize;
            loop {
                let row: Result<Option<(i64,)>, _> = sqlx::query_as(&claim_sql)
                    .bind(&owner)
                    .fetch_optional(&pool)
                    .await;
                match row {
                    Ok(Some((id,))) => {
                        loop {
                            let r =
                                sqlx::query("UPDATE bare_queue SET state = 'done' WHERE id = $1")
                                    .bind(id)
                                    .execute(&pool)
                                    .await;
                            if r.is_ok() {
                                break;
                            }
                        }
                        done += 1;
                    }
                    Ok(None) => break,
                    // SQLite's writer lock taken past the busy timeout: try again, as the
                    // job model's loop does.
                    Err(_) => continue,
                }
            }
            pool.close().await;
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a bare claiming task");
    }
    let claims = n as f64 / t1.elapsed().as_secs_f64();
    assert_eq!(total, n, "every bare row claimed once");
    pool.close().await;
    (submits, claims)
}

// ----- latency from submit to spawn -----

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

async fn latency(sim: &Path) -> Vec<Row> {
    let n = env_num("FASP_JOBS_BENCH_LATENCY", 200).max(1);
    let poll = Duration::from_millis(env_num("FASP_JOBS_BENCH_POLL_MS", 50) as u64);
    eprintln!(
        "latency: {n} jobs one after the other, each to an idle worker (FASP_JOBS_BENCH_LATENCY), \
         worker poll {poll:?} (FASP_JOBS_BENCH_POLL_MS); baseline: Manager::start to Spawned"
    );
    let work = fasp_testkit::sim::Work::new();
    let src = work.local_file("small.bin", 16 * 1024);
    let options = TransferOptions::default()
        .with_env("ASCP_SIM_ROOT", work.root())
        .with_env("ASCP_SIM_STATS_INTERVAL_MS", "200");

    // The bare manager.
    let manager = Manager::builder().ascp(sim).build();
    let mut bare = Vec::with_capacity(n);
    let mut bare_failed = 0;
    for i in 0..n {
        let spec = support::small_upload(&src, &format!("/bare{i}"));
        let t0 = Instant::now();
        let mut transfer = manager
            .start(&spec, options.clone())
            .expect("start a transfer");
        let mut events = transfer.events();
        while let Some(ev) = events.next().await {
            if matches!(ev.kind, EventKind::Spawned { .. }) {
                bare.push(t0.elapsed());
                break;
            }
        }
        drop(events);
        if transfer.wait().await.is_err() {
            bare_failed += 1;
        }
    }

    // The job model: a worker on a SQLite store, then on PostgreSQL.
    let store = JobStore::open_sqlite(&work.path().join("latency.db"))
        .await
        .expect("open the store");
    let mut runs = vec![(
        "SQLite",
        job_latency(sim, store, None, &src, &options, poll, n, "sqlite").await,
    )];
    let mut cluster = PgCluster::start();
    if let Some(cluster) = cluster.as_mut() {
        let url = cluster.fresh_db().await;
        let store = JobStore::open(&url).await.expect("open the store");
        runs.push((
            "PostgreSQL",
            job_latency(sim, store, None, &src, &options, poll, n, "pg").await,
        ));
        // Submitted through another store (another pool, as from another process or
        // machine): the worker learns it by `NOTIFY`.
        let url = cluster.fresh_db().await;
        let store = JobStore::open(&url).await.expect("open the store");
        let client = JobStore::open(&url).await.expect("open the client's store");
        runs.push((
            "PostgreSQL (another store)",
            job_latency(sim, store, Some(client), &src, &options, poll, n, "pgx").await,
        ));
    } else {
        eprintln!("latency: no PostgreSQL, its rows are skipped");
    }
    if bare_failed > 0 {
        eprintln!("latency: {bare_failed} bare transfers did not complete");
    }
    bare.sort();
    eprintln!(
        "  Manager::start->spawn p50 {:.1} ms p99 {:.1} ms",
        percentile(&bare, 50),
        percentile(&bare, 99)
    );
    let mut rows = Vec::new();
    for (backend, jobs) in runs {
        eprintln!(
            "  {backend}: submit->spawn p50 {:.1} ms p99 {:.1} ms",
            percentile(&jobs, 50),
            percentile(&jobs, 99)
        );
        for p in [50, 99] {
            rows.push(Row::new(
                format!(
                    "{backend} submit to spawn p{p}, {n} jobs, poll {} ms",
                    poll.as_millis()
                ),
                percentile(&jobs, p),
                percentile(&bare, p),
                "ms",
                1,
            ));
        }
    }
    rows
}

/// Submit `n` jobs one at a time (through `client`, else `store`) to an idle worker of
/// `store`; the sorted times from `submit` to the worker's `Spawned` event.
#[allow(clippy::too_many_arguments)]
async fn job_latency(
    sim: &Path,
    worker_store: JobStore,
    client: Option<JobStore>,
    src: &Path,
    options: &TransferOptions,
    poll: Duration,
    n: usize,
    prefix: &str,
) -> Vec<Duration> {
    let config = WorkerConfig::default()
        .max_concurrent(64)
        .per_host(64)
        .stagger(Duration::ZERO)
        .poll(poll)
        .transfer_options(options.clone());
    let worker = Worker::new(
        worker_store.clone(),
        Manager::builder().ascp(sim).build(),
        config,
    );
    let store = client.unwrap_or_else(|| worker_store.clone());
    let mut events = worker.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stop_rx.await;
    }));
    let mut jobs = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    // Each submit at a seeded random point of the worker's poll cycle, not in step with it
    // (the worker's cycle restarts when a job ends).
    let mut rng = support::Rng::new(0x1a7e_0c1e);
    for i in 0..n {
        let job = NewJob::transfer(&support::small_upload(src, &format!("/{prefix}{i}")));
        let phase = rng.range(0, poll.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(phase)).await;
        let t0 = Instant::now();
        let id = store.submit(&job).await.expect("submit").id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(ev))
                    if ev.job_id == id && matches!(ev.event.kind, EventKind::Spawned { .. }) =>
                {
                    jobs.push(t0.elapsed());
                    break;
                }
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("the worker's events ended: {e}"),
                Err(_) => panic!("job {id}: no Spawned within 30 s"),
            }
        }
        // The next job comes to an idle worker, as the next transfer comes to an idle
        // manager: the submission wakes it (the poll is only the safety net).
        support::wait_all_terminal(&store, std::slice::from_ref(&id), Duration::from_secs(60))
            .await;
        ids.push(id);
    }
    let _ = stop_tx.send(());
    running
        .await
        .expect("the worker's task")
        .expect("the worker ran");
    let mut failed = 0;
    for id in &ids {
        if support::state(&store, id).await != fasp_jobs::JobState::Completed {
            failed += 1;
        }
    }
    store.close().await;
    worker_store.close().await;
    if failed > 0 {
        eprintln!("latency: {failed} jobs ({prefix}) did not complete");
    }
    jobs.sort();
    jobs
}

// ----- memory at N running jobs -----

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a memory child reports: RSS idle and with every job running, KiB; seconds to get
/// them all running.
struct MemoryFigures {
    idle_kib: u64,
    running_kib: u64,
    ramp_s: f64,
}

fn memory(sim: &Path) -> Vec<Row> {
    let ns = env_list("FASP_JOBS_BENCH_RUNNING", &[200, 1000]);
    eprintln!(
        "memory: {ns:?} running jobs (FASP_JOBS_BENCH_RUNNING), ascp-sim held by a stall; \
         baseline: the bare manager holding as many transfers; one process each"
    );
    let mut rows = Vec::new();
    for n in ns {
        let bare = run_memory_child(sim, "manager", n);
        let jobs = run_memory_child(sim, "worker", n);
        let (Some(bare), Some(jobs)) = (bare, jobs) else {
            eprintln!("memory: the run with {n} failed, see above");
            continue;
        };
        eprintln!(
            "  {n:>5} running: daemon {} KiB (idle {} KiB, {:.1} s to start them), bare manager {} KiB (idle {} KiB, {:.1} s)",
            jobs.running_kib,
            jobs.idle_kib,
            jobs.ramp_s,
            bare.running_kib,
            bare.idle_kib,
            bare.ramp_s
        );
        rows.push(Row::new(
            format!("RSS at {n} running jobs (MiB)"),
            jobs.running_kib as f64 / 1024.0,
            bare.running_kib as f64 / 1024.0,
            "",
            1,
        ));
        rows.push(Row::new(
            format!("time to get {n} jobs running (s)"),
            jobs.ramp_s,
            bare.ramp_s,
            "",
            1,
        ));
        rows.push(Row::new(
            format!("RSS per running job, {n} (KiB, over idle)"),
            jobs.running_kib.saturating_sub(jobs.idle_kib) as f64 / n as f64,
            bare.running_kib.saturating_sub(bare.idle_kib) as f64 / n as f64,
            "",
            1,
        ));
    }
    rows
}

fn run_memory_child(sim: &Path, which: &str, n: usize) -> Option<MemoryFigures> {
    let exe = std::env::current_exe().expect("this binary");
    let out = Command::new(exe)
        .env(CHILD_ENV, which)
        .env(CHILD_N_ENV, n.to_string())
        .env("FASP_SIM", sim)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("start a memory child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("memory-figures "));
    let parsed = line.and_then(|l| {
        let mut it = l.split_whitespace();
        Some(MemoryFigures {
            idle_kib: it.next()?.parse().ok()?,
            running_kib: it.next()?.parse().ok()?,
            ramp_s: it.next()?.parse().ok()?,
        })
    });
    if parsed.is_none() {
        eprintln!(
            "memory child {which} {n}: {} with no figures; stdout:\n{text}",
            out.status
        );
    }
    parsed
}

/// A memory child: hold `n` transfers running (bare manager or worker), print the figures.
fn memory_child(which: &str) {
    let n = env_num(CHILD_N_ENV, 100).max(1);
    let sim = PathBuf::from(std::env::var_os("FASP_SIM").expect("FASP_SIM for a memory child"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let figures = rt.block_on(async {
        match which {
            "manager" => hold_bare(&sim, n).await,
            "worker" => hold_jobs(&sim, n).await,
            other => panic!("unknown memory child {other}"),
        }
    });
    println!(
        "memory-figures {} {} {:.2}",
        figures.idle_kib, figures.running_kib, figures.ramp_s
    );
}

fn stalled_options(work: &fasp_testkit::sim::Work) -> TransferOptions {
    TransferOptions::default()
        .with_env("ASCP_SIM_ROOT", work.root())
        .with_env("ASCP_SIM_STATS_INTERVAL_MS", "1000")
        .with_env("ASCP_SIM_FAULT", "stall:36000@1")
        .with_connect_timeout(Duration::from_secs(120))
        .with_cancel_graces(Duration::from_secs(3), Duration::from_secs(3))
}

/// Whether an event says the transfer is moving data (or stalled in the middle of it).
fn is_running(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::SessionStarted(_) | EventKind::FileStarted(_) | EventKind::FileProgress(_)
    )
}

const RAMP_LIMIT: Duration = Duration::from_secs(600);

async fn hold_bare(sim: &Path, n: usize) -> MemoryFigures {
    let work = fasp_testkit::sim::Work::new();
    let src = work.local_file("payload.bin", 64 * 1024);
    let options = stalled_options(&work);
    let manager = Manager::builder().ascp(sim).build();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_kib = rss_kib();
    let t0 = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut waits = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut transfer = manager
            .start(
                &support::small_upload(&src, &format!("/in{i}")),
                options.clone(),
            )
            .expect("start a transfer");
        let mut events = transfer.events();
        let tx = tx.clone();
        // Read the events like a consumer would; say once when the transfer runs.
        tokio::spawn(async move {
            let mut told = false;
            while let Some(ev) = events.next().await {
                if !told && is_running(&ev.kind) {
                    told = true;
                    let _ = tx.send(i);
                }
            }
        });
        waits.spawn(transfer.wait());
    }
    let mut running = HashSet::new();
    while running.len() < n {
        match tokio::time::timeout(RAMP_LIMIT, rx.recv()).await {
            Ok(Some(i)) => {
                running.insert(i);
            }
            _ => panic!("only {} of {n} transfers running", running.len()),
        }
    }
    let ramp_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running_kib = rss_kib();
    manager.cancel_all();
    while waits.join_next().await.is_some() {}
    MemoryFigures {
        idle_kib,
        running_kib,
        ramp_s,
    }
}

async fn hold_jobs(sim: &Path, n: usize) -> MemoryFigures {
    let work = fasp_testkit::sim::Work::new();
    let src = work.local_file("payload.bin", 64 * 1024);
    let store = JobStore::open_sqlite(&work.path().join("memory.db"))
        .await
        .expect("open the store");
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let job = NewJob::transfer(&support::small_upload(&src, &format!("/in{i}")));
        ids.push(store.submit(&job).await.expect("submit").id);
    }
    let config = WorkerConfig::default()
        .max_concurrent(n)
        .per_host(n)
        .stagger(Duration::ZERO)
        .poll(Duration::from_millis(50))
        .lease(Duration::from_secs(120), Duration::from_secs(10))
        .transfer_options(stalled_options(&work));
    let worker = Worker::new(store.clone(), Manager::builder().ascp(sim).build(), config);
    let mut events = worker.subscribe();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_kib = rss_kib();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t0 = Instant::now();
    let running_worker = tokio::spawn(worker.run(async move {
        let _ = stop_rx.await;
    }));
    let mut running: HashSet<JobId> = HashSet::new();
    let deadline = tokio::time::Instant::now() + RAMP_LIMIT;
    while running.len() < n {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => {
                if is_running(&ev.event.kind) {
                    running.insert(ev.job_id);
                }
            }
            // Behind: progress comes again every second, nothing is lost for this count.
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("the worker's events ended: {e}"),
            Err(_) => panic!("only {} of {n} jobs running", running.len()),
        }
    }
    let ramp_s = t0.elapsed().as_secs_f64();
    // Keep reading (a monitor would) while the figure settles.
    let settle = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(r) = tokio::time::timeout_at(settle, events.recv()).await {
        if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
            break;
        }
    }
    let running_kib = rss_kib();
    let _ = stop_tx.send(());
    running_worker
        .await
        .expect("the worker's task")
        .expect("the worker ran");
    store.close().await;
    drop(ids);
    MemoryFigures {
        idle_kib,
        running_kib,
        ramp_s,
    }
}
