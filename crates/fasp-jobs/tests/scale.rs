//! Three PostgreSQL workers share many jobs (issue 15, "Done when"): three worker processes
//! (this test binary, started again on the test `scale_child`), each with its own store pool
//! and manager, drain `FASP_JOBS_SCALE_JOBS` jobs (default 60; the full run is 1,000) of one
//! small file each, uploaded through ascp-sim. None may be done twice (one claim, one
//! completion record per job) and none lost (every job completed, its completion record
//! counting its file's bytes, every file byte-exact); each worker must have done some, and no
//! ascp-sim may be left running.
//!
//! ```text
//! FASP_JOBS_SCALE_JOBS=1000 cargo test -p fasp-jobs --test scale -- --nocapture
//! ```

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use fasp_jobs::{JobId, JobState, JobStore, NewJob, Worker, WorkerConfig};
use fasp_manager::{Manager, TransferOptions};
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use support::{Rng, child, pg::PgCluster, same_bytes, small_upload};

/// The prefix of the environment that makes this binary a worker process.
const CHILD_PREFIX: &str = "FASP_JOBS_SCALE";
const NAME_ENV: &str = "FASP_JOBS_SCALE_NAME";
const READY_ENV: &str = "FASP_JOBS_SCALE_READY";

/// One worker process of the scale run (does nothing unless started by it).
#[test]
fn scale_child() {
    let Some(child::Role { db, sim, root }) = child::Role::from_env(CHILD_PREFIX) else {
        return;
    };
    let name = std::env::var(NAME_ENV).expect("the scale run names the worker");
    let ready = std::env::var_os(READY_ENV).expect("the scale run names the ready file");
    child::runtime().block_on(async move {
        let store = JobStore::open(&db).await.expect("open the store");
        let options = TransferOptions::default()
            .with_env("ASCP_SIM_ROOT", root)
            .with_env("ASCP_SIM_STATS_INTERVAL_MS", "100");
        let config = WorkerConfig::default()
            .id(name)
            .poll(Duration::from_millis(20))
            .stagger(Duration::ZERO)
            .per_host(4)
            .max_concurrent(4)
            .transfer_options(options);
        let manager = Manager::builder().ascp(sim).build();
        let worker = Worker::new(store, manager, config);
        std::fs::write(&ready, b"ready").expect("write the ready file");
        worker
            .run(std::future::pending())
            .await
            .expect("the worker runs");
    });
}

fn spawn_worker(work: &Work, sim: &Path, db: &str, name: &str, log: &Path) -> Child {
    child::command("scale_child", CHILD_PREFIX, (db, sim, work), log)
        .env(NAME_ENV, name)
        .env(READY_ENV, work.path().join(format!("{name}.ready")))
        .spawn()
        .expect("start a worker process")
}

/// Kills the worker processes however the test ends.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            child::sigkill(worker);
        }
    }
}

#[test]
fn three_postgres_workers_share_the_jobs_none_twice_none_lost() {
    let sim = require_sim!();
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    let n: usize = child::env_number("FASP_JOBS_SCALE_JOBS", 60);
    let rt = child::parent_runtime();
    let url = rt.block_on(cluster.fresh_db());
    let work = Work::new();
    let log = work.path().join("workers.log");
    let store = rt.block_on(JobStore::open(&url)).unwrap();

    // The workers first, so that all three are polling when the jobs come.
    let names = ["scale-a", "scale-b", "scale-c"];
    let workers = Workers(
        names
            .iter()
            .map(|name| spawn_worker(&work, &sim, &url, name, &log))
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        let ready = work.path().join(format!("{name}.ready"));
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "worker {name} not ready within 60 s; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // Small files of varied sizes, one per job, all written before the first submit.
    let mut rng = Rng::new(0x5ca1_e000 + n as u64);
    let mut prepared: Vec<(NewJob, PathBuf, PathBuf)> = Vec::with_capacity(n);
    for j in 0..n {
        let len = rng.range(1_000, 64_000) as usize;
        let src = work.local_file(&format!("job{j}/file.bin"), len);
        let dst = work.remote(&format!("out{j}/file.bin"));
        // `create_dir`: one source into a folder that does not exist yet (without it, ascp
        // names the file after the destination).
        let spec = small_upload(&src, &format!("/out{j}"));
        let job = NewJob::transfer(&spec).idempotency_key(format!("scale-{j}"));
        prepared.push((job, src, dst));
    }
    let mut jobs: Vec<(JobId, PathBuf, PathBuf)> = Vec::with_capacity(n);
    let started = Instant::now();
    for (job, src, dst) in prepared {
        let id = rt.block_on(store.submit(&job)).unwrap().id;
        jobs.push((id, src, dst));
    }
    let submitted = started.elapsed();

    child::wait_all_ended(&rt, &store, &log, Duration::from_secs(120 + n as u64 / 2));
    let elapsed = started.elapsed();
    drop(workers);
    // Every job ended: no ascp-sim may be left behind by the workers.
    fasp_testkit::assert_no_leftover(&work.needle());

    let mut claims = 0u64;
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes = 0u64;
    for (id, src, dst) in &jobs {
        let job = rt.block_on(store.get(id)).unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:#?}");
        assert_eq!(job.claims, 1, "job {id} claimed more than once: {job:#?}");
        claims += u64::from(job.claims);
        let completions = rt.block_on(store.completions(id)).unwrap();
        assert_eq!(completions.len(), 1, "job {id}: {completions:?}");
        let len = same_bytes(src, dst);
        assert_eq!(
            completions[0].bytes, len,
            "job {id}: the completion record's bytes"
        );
        assert_eq!(completions[0].files_done, 1, "job {id}: files done");
        bytes += completions[0].bytes;
        *per_worker.entry(completions[0].worker.clone()).or_default() += 1;
    }
    let all: usize = per_worker.values().sum();
    assert_eq!(all, n);
    for name in names {
        assert!(
            per_worker.get(name).is_some_and(|k| *k > 0),
            "worker {name} did no job: {per_worker:?}"
        );
    }
    eprintln!(
        "scale: {n} jobs ({bytes} bytes) submitted in {:.2} s, all completed once in {:.2} s \
         from the first submit ({:.1} jobs/s), {claims} claims; per worker: {per_worker:?}",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
