//! How fast jobs are submitted and claimed, on SQLite and PostgreSQL, with 1, 4 and 16
//! workers (each on its own connection pool, claiming then completing until the queue is
//! empty). A measurement, not a check: `#[ignore]`d, run with
//! `cargo test -p fasp-jobs --test throughput -- --ignored --nocapture`
//! (`FASP_JOBS_BENCH_JOBS` sets the number of jobs, default 2000). A quick look in a debug
//! build; the benchmark proper, in release and with baselines measured in the same run (a
//! bare SQL queue, the bare manager), is `cargo xtask bench jobs` (`benches/jobs.rs`).

mod support;

use std::time::{Duration, Instant};

use fasp_jobs::{JobError, JobProgress, JobStore};
use support::{job, pg::PgCluster};

fn jobs() -> usize {
    std::env::var("FASP_JOBS_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Submit `n` jobs, then drain them with `workers` workers; (submits/s, claims/s).
async fn measure(url: &str, n: usize, workers: usize) -> (f64, f64) {
    let store = JobStore::open(url).await.unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        store.submit(&job(&format!("j{i}"), "h")).await.unwrap();
    }
    let submit_rate = n as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let store = JobStore::open(&url).await.unwrap();
            let mut done = 0usize;
            loop {
                match store
                    .claim(&format!("w{w}"), Duration::from_secs(60), &[])
                    .await
                {
                    Ok(Some(c)) => {
                        store
                            .complete(&c.lease, &[], &JobProgress::default())
                            .await
                            .unwrap();
                        done += 1;
                    }
                    Ok(None) => break,
                    Err(JobError::Database { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            store.close().await;
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, n);
    let claim_rate = n as f64 / t1.elapsed().as_secs_f64();
    store.close().await;
    (submit_rate, claim_rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn claim_throughput() {
    let n = jobs();
    for workers in [1, 4, 16] {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("jobs.db").to_string_lossy().into_owned();
        let (s, c) = measure(&url, n, workers).await;
        println!(
            "sqlite   {workers:>2} workers: {n} jobs, {s:>7.0} submits/s, {c:>7.0} claim+complete/s"
        );
    }
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    for workers in [1, 4, 16] {
        let url = cluster.fresh_db().await;
        let (s, c) = measure(&url, n, workers).await;
        println!(
            "postgres {workers:>2} workers: {n} jobs, {s:>7.0} submits/s, {c:>7.0} claim+complete/s"
        );
    }
}
