//! A worker wakes when a job is submitted, not at its next poll: through the worker's own
//! store (or a clone of it) in-process, through another store (another pool, as another
//! process would) by PostgreSQL's `NOTIFY`. The workers here poll every 30 s, so a job that
//! spawns well within that was found by the wake-up. A burst submitted while the worker is
//! at its cap is not lost: every job runs.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fasp_jobs::{JobId, JobState, JobStore, NewJob, WorkerConfig};
use fasp_manager::EventKind;
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use support::worker::{Running, sim_options};
use support::{sqlite_store, upload, wait_all_terminal};
use tokio::sync::broadcast;

/// The workers' poll: far longer than any bound below.
const POLL: Duration = Duration::from_secs(30);
/// A woken worker spawns the job within this (the poll would take up to 30 s).
const WOKEN_WITHIN: Duration = Duration::from_secs(10);
const WITHIN: Duration = Duration::from_secs(60);

fn config(id: &str, work: &Work, cap: usize) -> WorkerConfig {
    WorkerConfig::default()
        .id(id)
        .max_concurrent(cap)
        .per_host(cap)
        .stagger(Duration::ZERO)
        .poll(POLL)
        .transfer_options(sim_options(work))
}

impl Running {
    /// Wait for job `id`'s `Spawned` event; panics if it does not come within `bound`.
    async fn spawned(&mut self, id: &JobId, bound: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            match tokio::time::timeout_at(
                deadline,
                self.events.as_mut().expect("its events").recv(),
            )
            .await
            {
                Ok(Ok(e))
                    if &e.job_id == id && matches!(e.event.kind, EventKind::Spawned { .. }) =>
                {
                    return;
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("{what}: the worker's events ended: {e}"),
                Err(_) => panic!(
                    "{what}: job {id} not spawned within {bound:?} of its submission (the \
                     worker polls every {POLL:?}: it was not woken)"
                ),
            }
        }
    }
}

fn quick_job(src: &Path, dest: &str) -> NewJob {
    NewJob::transfer(&upload(&[src], dest, 100_000))
}

/// Three jobs, one after the other, each submitted through `client` to the idle worker of
/// `worker_store`: each spawns well within the worker's poll.
async fn each_submission_wakes(
    sim: &PathBuf,
    work: &Work,
    worker_store: &JobStore,
    client: &JobStore,
) {
    let src = work.local_file("one.bin", 20_000);
    let mut worker = Running::start(worker_store, sim, config("waker", work, 4));
    for i in 0..3 {
        let t0 = Instant::now();
        let id = client
            .submit(&quick_job(&src, &format!("/wake{i}")))
            .await
            .expect("submit")
            .id;
        worker
            .spawned(&id, WOKEN_WITHIN, &format!("submission {i}"))
            .await;
        let took = t0.elapsed();
        assert!(
            took < WOKEN_WITHIN,
            "submission {i}: spawned after {took:?}"
        );
        // The worker is idle again (its poll 30 s away) before the next submission.
        wait_all_terminal(client, std::slice::from_ref(&id), WITHIN).await;
        assert_eq!(support::state(client, &id).await, JobState::Completed);
    }
    worker.stop().await;
}

/// A worker at its cap of 2 (two slow jobs running) while 6 more are submitted through
/// `client`: all 8 run and complete, well within the worker's poll.
async fn a_burst_at_the_cap_all_runs(
    sim: &PathBuf,
    work: &Work,
    worker_store: &JobStore,
    client: &JobStore,
) {
    let slow = work.local_file("slow.bin", 100_000);
    let quick = work.local_file("quick.bin", 20_000);
    let mut worker = Running::start(worker_store, sim, config("capped", work, 2));
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..2 {
        // 800 kbit at 1,000 Kbps: about a second each.
        let job = NewJob::transfer(&upload(&[&slow], &format!("/slow{i}"), 1_000));
        let id = client.submit(&job).await.expect("submit").id;
        worker.spawned(&id, WOKEN_WITHIN, "a slow job").await;
        ids.push(id);
    }
    for i in 0..6 {
        let id = client
            .submit(&quick_job(&quick, &format!("/burst{i}")))
            .await
            .expect("submit")
            .id;
        ids.push(id);
    }
    wait_all_terminal(client, &ids, WITHIN).await;
    let took = t0.elapsed();
    for id in &ids {
        assert_eq!(
            support::state(client, id).await,
            JobState::Completed,
            "job {id}"
        );
    }
    assert!(
        took < POLL,
        "the burst took {took:?}: some job waited for the worker's {POLL:?} poll"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_submission_through_the_workers_store_wakes_it() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    // A clone, as `fasp serve` submits through the store its embedded worker holds.
    each_submission_wakes(&sim, &work, &store, &store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_burst_at_the_workers_cap_all_runs() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    a_burst_at_the_cap_all_runs(&sim, &work, &store, &store.clone()).await;
}

/// PostgreSQL: the worker's store and the submitter's are two stores (two pools, as two
/// processes): only `NOTIFY fasp_jobs` can wake it. Skipped without the server binaries,
/// never with `CI=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_submission_through_another_store_wakes_the_worker_by_notify() {
    let sim = require_sim!();
    let Some(mut cluster) = support::pg::PgCluster::start() else {
        return;
    };
    let work = Work::new();
    let url = cluster.fresh_db().await;
    let worker_store = JobStore::open(&url).await.expect("open the worker's store");
    let client = JobStore::open(&url).await.expect("open the client's store");
    each_submission_wakes(&sim, &work, &worker_store, &client).await;
    let url = cluster.fresh_db().await;
    let worker_store = JobStore::open(&url).await.expect("open the worker's store");
    let client = JobStore::open(&url).await.expect("open the client's store");
    a_burst_at_the_cap_all_runs(&sim, &work, &worker_store, &client).await;
    let url = cluster.fresh_db().await;
    let worker_store = JobStore::open(&url).await.expect("open the worker's store");
    let client = JobStore::open(&url).await.expect("open the client's store");
    a_resume_wakes(&sim, &work, &worker_store, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_resume_through_the_workers_store_wakes_it() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    a_resume_wakes(&sim, &work, &store, &store.clone()).await;
}

/// A job paused while queued, resumed through `client` once the worker is idle: it spawns
/// well within the worker's poll.
async fn a_resume_wakes(sim: &PathBuf, work: &Work, worker_store: &JobStore, client: &JobStore) {
    let src = work.local_file("paused.bin", 20_000);
    let paused = client
        .submit(&quick_job(&src, "/paused"))
        .await
        .expect("submit")
        .id;
    assert_eq!(
        client.pause(&paused).await.expect("pause"),
        JobState::Paused
    );
    let mut worker = Running::start(worker_store, sim, config("resumer", work, 2));
    // Another job first: once it is done, the worker is idle, its poll 30 s away.
    let first = client
        .submit(&quick_job(&src, "/first"))
        .await
        .expect("submit")
        .id;
    worker.spawned(&first, WOKEN_WITHIN, "the first job").await;
    wait_all_terminal(client, std::slice::from_ref(&first), WITHIN).await;
    assert_eq!(support::state(client, &paused).await, JobState::Paused);
    assert_eq!(
        client.resume(&paused).await.expect("resume"),
        JobState::Queued
    );
    worker
        .spawned(&paused, WOKEN_WITHIN, "the resumed job")
        .await;
    wait_all_terminal(client, std::slice::from_ref(&paused), WITHIN).await;
    assert_eq!(support::state(client, &paused).await, JobState::Completed);
    worker.stop().await;
}
