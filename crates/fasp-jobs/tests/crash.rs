//! The crash loop: a worker process is killed with SIGKILL at random points (seeded, so a
//! failure can be replayed) and restarted, again and again, over the jobs of a store: SQLite
//! with one worker process at a time, PostgreSQL with three at once (one of them killed each
//! time); then the workers alive finish the work. Every job must end completed, with exactly one
//! completion record and byte-exact files, and no ascp-sim may be left running.
//!
//! `FASP_JOBS_KILLS` (default 20) sets the number of kills, `FASP_JOBS_SEED` the seed.
//!
//! The named-point loops kill the worker exactly at each kill point of fasp-jobs (feature
//! `failpoints`, on for these tests: before and after spawning ascp, mid-file, inside a
//! file-results transaction, just before the completion write, inside it, just after it),
//! `FASP_JOBS_POINT_KILLS` times per point (default 2), and fail if a point is never hit.
//! Every point reached is counted (in the random loop too) and printed.
//!
//! The worker process is this test binary itself, started on the test `crash_child` with
//! `FASP_JOBS_CRASH_CHILD` set (without it, `crash_child` does nothing).

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use fasp_jobs::{JobId, JobState, JobStore, NewJob, Retry, Worker, WorkerConfig};
use fasp_manager::{Manager, TransferOptions};
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use support::child::{self, Role, env_number, sigkill, wait_all_ended};
use support::points::{FAILPOINT_ENV, LOG_ENV, POINTS, PointCounts};
use support::{Rng, same_bytes, upload};

/// The prefix of the environment that makes this binary a worker process.
const CHILD_PREFIX: &str = "FASP_JOBS_CRASH";

/// The worker process of the crash loop (does nothing unless started by it).
#[test]
fn crash_child() {
    let Some(Role { db: url, sim, root }) = Role::from_env(CHILD_PREFIX) else {
        return;
    };
    child::runtime().block_on(async move {
        let store = JobStore::open(&url).await.expect("open the store");
        let options = TransferOptions::default()
            .with_env("ASCP_SIM_ROOT", root)
            .with_env("ASCP_SIM_STATS_INTERVAL_MS", "50")
            .with_cancel_graces(Duration::from_millis(300), Duration::from_millis(300));
        let config = WorkerConfig::default()
            .lease(Duration::from_millis(700), Duration::from_millis(100))
            .poll(Duration::from_millis(20))
            .stagger(Duration::ZERO)
            .per_host(8)
            .max_concurrent(4)
            .transfer_options(options);
        let manager = Manager::builder().ascp(sim).build();
        Worker::new(store, manager, config)
            .run(std::future::pending())
            .await
            .expect("the worker runs");
    });
}

/// The log the kill points of every worker process of `work` append to.
fn points_log(work: &Work) -> PathBuf {
    work.path().join("points.log")
}

/// A worker process on `db`; with `failpoint` (`NAME:N`), it kills itself there.
fn spawn_worker(work: &Work, sim: &Path, db: &str, log: &Path, failpoint: Option<&str>) -> Child {
    let mut cmd = child::command("crash_child", CHILD_PREFIX, (db, sim, work), log);
    cmd.env(LOG_ENV, points_log(work));
    match failpoint {
        Some(point) => cmd.env(FAILPOINT_ENV, point),
        None => cmd.env_remove(FAILPOINT_ENV),
    };
    cmd.spawn().expect("start a worker process")
}

/// Processes (other than this one) whose command line or environment holds `needle`.
fn holders_of(needle: &str) -> Vec<String> {
    let me = std::process::id();
    fasp_testkit::all_processes()
        .into_iter()
        .filter(|p| p.pid != me && p.state != 'Z')
        .filter(|p| {
            p.cmdline.contains(needle)
                || fasp_testkit::environ(p.pid)
                    .is_ok_and(|env| env.iter().any(|v| v.to_string_lossy().contains(needle)))
        })
        .map(|p| format!("pid {} (parent {}): {}", p.pid, p.ppid, p.cmdline))
        .collect()
}

fn kills_and_seed() -> (u64, u64) {
    (
        env_number("FASP_JOBS_KILLS", 20),
        env_number("FASP_JOBS_SEED", 0x5eed_fa57),
    )
}

/// SQLite: one worker process at a time, killed and restarted.
#[test]
fn crash_loop_every_job_completes_once_and_byte_exact() {
    on_sqlite(crash_loop);
}

/// PostgreSQL: three worker processes at once; one of them, drawn at random, is killed and
/// restarted each time.
#[test]
fn postgres_crash_loop_three_workers() {
    on_postgres(crash_loop);
}

/// A loop of this file (`sim`, `work`, the store's URL, how many workers at once).
type Loop = fn(&Path, &Work, &str, usize);

/// `run` on a SQLite store in a new folder, one worker process at a time.
fn on_sqlite(run: Loop) {
    let sim = require_sim!();
    let work = Work::new();
    let db = work.path().join("jobs.db").to_string_lossy().into_owned();
    run(&sim, &work, &db, 1);
}

/// `run` on a fresh database of a throwaway PostgreSQL cluster, three worker processes.
fn on_postgres(run: Loop) {
    let sim = require_sim!();
    let Some(mut cluster) = support::pg::PgCluster::start() else {
        return;
    };
    let rt = child::parent_runtime();
    let url = rt.block_on(cluster.fresh_db());
    let work = Work::new();
    run(&sim, &work, &url, 3);
}

/// A job of the loops: its id and its (source, destination) pairs.
type Submitted = (JobId, Vec<(PathBuf, PathBuf)>);

/// Submit `n` jobs named `{prefix}{j}`, each two files of `min..max` bytes at 8 Mbit/s.
fn submit_jobs(
    rt: &tokio::runtime::Runtime,
    store: &JobStore,
    work: &Work,
    rng: &mut Rng,
    prefix: &str,
    n: u64,
    (min, max): (u64, u64),
) -> Vec<Submitted> {
    let mut jobs = Vec::new();
    for j in 0..n {
        let mut pairs = Vec::new();
        let mut sources = Vec::new();
        for f in 0..2 {
            let len = rng.range(min, max) as usize;
            let src = work.local_file(&format!("{prefix}{j}/file{f}.bin"), len);
            pairs.push((
                src.clone(),
                work.remote(&format!("out-{prefix}{j}/file{f}.bin")),
            ));
            sources.push(src);
        }
        let refs: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
        let spec = upload(&refs, &format!("/out-{prefix}{j}"), 8_000);
        let job = NewJob::transfer(&spec)
            .idempotency_key(format!("crash-{prefix}{j}"))
            .retry(
                Retry::attempts(50)
                    .with_backoff(Duration::from_millis(50), Duration::from_millis(200)),
            );
        let id = rt.block_on(store.submit(&job)).unwrap().id;
        jobs.push((id, pairs));
    }
    jobs
}

/// Every job completed, with one completion record and byte-exact files; returns the claims
/// in all.
fn check_jobs(rt: &tokio::runtime::Runtime, store: &JobStore, jobs: &[Submitted]) -> u64 {
    let mut claims = 0;
    for (id, pairs) in jobs {
        let job = rt.block_on(store.get(id)).unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:#?}");
        claims += u64::from(job.claims);
        let completions = rt.block_on(store.completions(id)).unwrap();
        assert_eq!(completions.len(), 1, "job {id}: {completions:?}");
        for (src, dst) in pairs {
            same_bytes(src, dst);
        }
    }
    claims
}

/// Nothing left: no ascp-sim, no worker, holding the work folder in argv or environment.
fn assert_nothing_left(work: &Work) {
    let needle = work.needle();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = holders_of(&needle);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn crash_loop(sim: &Path, work: &Work, url: &str, workers: usize) {
    let (kills, seed) = kills_and_seed();
    eprintln!(
        "crash loop: {workers} worker(s), {kills} kills, seed {seed} (FASP_JOBS_KILLS, FASP_JOBS_SEED)"
    );
    let mut rng = Rng::new(seed);
    let log = work.path().join("workers.log");
    let rt = child::parent_runtime();
    let store = rt.block_on(JobStore::open(url)).unwrap();
    // Enough work to outlast the kills: each job two files of 0.2 to 2 MB at 8 Mbit/s.
    let n_jobs = (6 + kills / 2) * workers as u64;
    let jobs = submit_jobs(
        &rt,
        &store,
        work,
        &mut rng,
        "job",
        n_jobs,
        (200_000, 2_000_000),
    );

    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|_| spawn_worker(work, sim, url, &log, None))
        .collect();
    for k in 0..kills {
        let life = Duration::from_millis(rng.range(30, 900));
        std::thread::sleep(life);
        let victim = rng.range(0, workers as u64) as usize;
        sigkill(&mut children[victim]);
        children[victim] = spawn_worker(work, sim, url, &log, None);
        if k % 10 == 9 {
            let counts = rt.block_on(store.counts()).unwrap();
            eprintln!(
                "after {} kills ({:?}): {counts:?}",
                k + 1,
                started.elapsed()
            );
        }
    }

    // The workers alive now finish the work.
    wait_all_ended(&rt, &store, &log, Duration::from_secs(300));
    for child in &mut children {
        sigkill(child);
    }
    eprintln!(
        "all jobs ended {:?} after the first start",
        started.elapsed()
    );
    let claims = check_jobs(&rt, &store, &jobs);
    eprintln!(
        "{} jobs, {claims} claims in all, {kills} kills; the named points reached (not armed):\n{}",
        jobs.len(),
        PointCounts::read(&points_log(work))
    );
    assert_nothing_left(work);
}

/// SQLite: one worker process at a time, killed at each named point in turn.
#[test]
fn named_points_every_job_completes_once_and_byte_exact() {
    on_sqlite(point_loop);
}

/// PostgreSQL: a worker process killed at each named point in turn; then three workers
/// finish the work.
#[test]
fn postgres_named_points() {
    on_postgres(point_loop);
}

/// For each named point, `FASP_JOBS_POINT_KILLS` worker processes in a row die exactly
/// there (the 1st or 2nd time they reach it), each started once its predecessor is dead;
/// then `finishers` workers finish every job, and every job must be completed once and
/// byte-exact, every point hit, every kill at its point.
fn point_loop(sim: &Path, work: &Work, url: &str, finishers: usize) {
    let per_point: u64 = env_number("FASP_JOBS_POINT_KILLS", 2).max(1);
    let (_, seed) = kills_and_seed();
    eprintln!(
        "named points: {per_point} kills at each of {} points (FASP_JOBS_POINT_KILLS), seed {seed}",
        POINTS.len()
    );
    let mut rng = Rng::new(seed);
    let log = work.path().join("workers.log");
    let rt = child::parent_runtime();
    let store = rt.block_on(JobStore::open(url)).unwrap();
    let started = Instant::now();
    let mut jobs = Vec::new();
    let mut lives = Vec::new();
    for point in POINTS {
        // Fresh jobs for each point, enough that every life finds work to die in: two files
        // of 100 to 600 kB at 8 Mbit/s (a few heartbeats each).
        jobs.extend(submit_jobs(
            &rt,
            &store,
            work,
            &mut rng,
            &format!("{point}-"),
            2 * per_point + 2,
            (100_000, 600_000),
        ));
        for k in 0..per_point {
            let nth = 1 + (k + rng.range(0, 2)) % 2;
            let armed = format!("{point}:{nth}");
            let life = Instant::now();
            let mut child = spawn_worker(work, sim, url, &log, Some(&armed));
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait for a worker") {
                    break status;
                }
                if life.elapsed() > Duration::from_secs(60) {
                    sigkill(&mut child);
                    panic!(
                        "{armed}: the worker did not reach it within 60 s; workers' log: {}",
                        log.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "{armed}: the worker ended otherwise than by its kill point ({status:?}); log: {}",
                log.display()
            );
            lives.push(life.elapsed());
        }
    }
    let killed = started.elapsed();
    let mut children: Vec<Child> = (0..finishers)
        .map(|_| spawn_worker(work, sim, url, &log, None))
        .collect();
    wait_all_ended(&rt, &store, &log, Duration::from_secs(300));
    for child in &mut children {
        sigkill(child);
    }
    let claims = check_jobs(&rt, &store, &jobs);
    let counts = PointCounts::read(&points_log(work));
    eprintln!(
        "{} jobs, {claims} claims, {} kills in {killed:?} (lives {:?} to {:?}), all ended after {:?}:\n{counts}",
        jobs.len(),
        counts.total_kills(),
        lives.iter().min().unwrap(),
        lives.iter().max().unwrap(),
        started.elapsed()
    );
    for point in POINTS {
        assert!(counts.hits(point) > 0, "{point} never hit:\n{counts}");
        assert_eq!(counts.kills(point), per_point, "{point}:\n{counts}");
    }
    assert_nothing_left(work);
}
