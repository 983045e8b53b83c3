//! Two processes on one SQLite store (a daemon's worker and a `fasp jobs add` through another
//! connection, or two workers): submissions must wait for the writer lock rather than fail
//! with "database is locked" while another connection keeps writing, as a worker's
//! heartbeats do. The daemon's crash loop (fasp-cli's tests/serve_crash.rs) found it: a
//! submission read, then wrote, and SQLite refuses such a write at once when another
//! connection wrote in between.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fasp_jobs::{JobProgress, JobStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_wait_for_a_busy_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    // Two pools on one file, as two processes would have.
    let worker = JobStore::open(path.to_str().unwrap()).await.unwrap();
    let client = JobStore::open(path.to_str().unwrap()).await.unwrap();
    worker.submit(&support::job("busy", "h")).await.unwrap();
    let claim = worker
        .claim("w", Duration::from_secs(30), &[])
        .await
        .unwrap()
        .expect("a claim");

    // The worker writes without a pause: a heartbeat after another.
    let stop = Arc::new(AtomicBool::new(false));
    let beats = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, beats, lease) = (stop.clone(), beats.clone(), claim.lease.clone());
        tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                done += 1;
                let progress = JobProgress::new(done, None, 0, 0, 0);
                worker
                    .heartbeat(&lease, Duration::from_secs(30), &progress)
                    .await
                    .expect("a heartbeat");
                beats.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut failures = Vec::new();
    for i in 0..300 {
        if let Err(e) = client.submit(&support::job(&format!("j{i}"), "h")).await {
            failures.push(e.to_string());
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let beats = beats.load(Ordering::Relaxed);
    eprintln!("300 submissions during {beats} heartbeats");
    assert!(beats > 10, "the writer hardly wrote ({beats} heartbeats)");
    assert!(
        failures.is_empty(),
        "{} of 300 submissions failed, first: {}",
        failures.len(),
        failures[0]
    );
}
