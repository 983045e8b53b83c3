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
    // Submissions until both sides did a fair amount (on a loaded machine the writer may
    // start late): at least 200 submissions during at least 50 heartbeats.
    let mut failures = Vec::new();
    let mut submitted = 0u32;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while submitted < 200 || beats.load(Ordering::Relaxed) < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "{submitted} submissions, {} heartbeats in 60 s",
            beats.load(Ordering::Relaxed)
        );
        if let Err(e) = client
            .submit(&support::job(&format!("j{submitted}"), "h"))
            .await
        {
            failures.push(e.to_string());
        }
        submitted += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let beats = beats.load(Ordering::Relaxed);
    eprintln!("{submitted} submissions during {beats} heartbeats");
    assert!(
        failures.is_empty(),
        "{} of {submitted} submissions failed, first: {}",
        failures.len(),
        failures[0]
    );
}
