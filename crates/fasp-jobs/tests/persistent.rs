//! Persistent jobs with ascp-sim as the engine: paths added to a running job's keepalive
//! session, paths added while the job is queued, a worker dropped with paths pending and the
//! rescuer adding them, the close ending the job completed, requests refused with a reason,
//! retried requests applied once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fasp_jobs::{AddedPath, FileOutcome, JobError, JobId, JobState, JobStore, NewJob, Worker};
use fasp_manager::{Manager, TransferOptions};
use fasp_spec::TransferSpec;
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use support::worker::{Running, quick_config};
use support::{same_bytes, sqlite_store, wait_for};
use tokio::sync::oneshot;

const WITHIN: Duration = Duration::from_secs(60);

/// A keepalive upload into `/drop` on ascp-sim's remote side, at `rate_kbps`, with `sources`
/// as its first paths.
fn persistent(sources: &[&Path], rate_kbps: u64) -> NewJob {
    let mut b = TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .keepalive(true)
        .target_rate_kbps(rate_kbps)
        .destination_root("/drop");
    for s in sources {
        b = b.source(s.to_str().expect("a UTF-8 path"));
    }
    NewJob::transfer(&b.build().expect("a valid spec"))
}

fn path(source: &Path, destination: &str) -> AddedPath {
    AddedPath::new(source.to_str().expect("a UTF-8 path"), destination)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_added_while_queued_and_while_running_complete_byte_exact() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let first = work.local_file("first.bin", 200_000);
    let queued = work.local_file("queued.bin", 300_000);
    let later = work.local_file("later.bin", 400_000);
    let id = store
        .submit(&persistent(&[&first], 100_000))
        .await
        .unwrap()
        .id;
    let job = store.get(&id).await.unwrap().unwrap();
    assert!(job.persistent && !job.closing, "{job:#?}");
    assert_eq!(job.paths_added, 1, "the spec's path is the first");
    // While queued: kept in the store, added by the run.
    let added = store
        .add_paths(&id, &[path(&queued, "q/queued.bin")], Some("r1"), false)
        .await
        .unwrap();
    assert_eq!((added.added, added.total, added.applied), (1, 2, true));
    // The same request again (a client retrying): nothing added twice.
    let again = store
        .add_paths(&id, &[path(&queued, "q/queued.bin")], Some("r1"), false)
        .await
        .unwrap();
    assert_eq!((again.added, again.total, again.applied), (0, 2, false));

    let worker = Running::start(&store, &sim, quick_config("w1", &work));
    let running = wait_for(&store, &id, WITHIN, "both first paths done", |j| {
        j.progress.files_done >= 2
    })
    .await;
    // The session waits for more: the job is not over.
    assert_eq!(running.state, JobState::Running, "{running:#?}");
    store
        .add_paths(&id, &[path(&later, "")], None, false)
        .await
        .unwrap();
    wait_for(
        &store,
        &id,
        WITHIN,
        "the path added while running done",
        |j| j.progress.files_done >= 3,
    )
    .await;
    assert_eq!(store.finish_job(&id).await.unwrap(), JobState::Running);
    // Closing twice is closing once.
    store.finish_job(&id).await.unwrap();
    let job = wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!(job.claims, 1);
    same_bytes(&first, &work.remote("drop/first.bin"));
    same_bytes(&queued, &work.remote("drop/q/queued.bin"));
    same_bytes(&later, &work.remote("drop/later.bin"));
    // Every path recorded done; per-file results as for any job; one completion.
    let paths = store.paths(&id, 0).await.unwrap();
    assert_eq!(paths.len(), 3, "{paths:#?}");
    assert!(
        paths.iter().all(|p| p.outcome == Some(FileOutcome::Done)),
        "{paths:#?}"
    );
    assert_eq!(paths.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let files = store.files(&id).await.unwrap();
    assert_eq!(files.len(), 3, "{files:#?}");
    assert!(files.iter().all(|f| f.outcome == FileOutcome::Done));
    assert_eq!(files.iter().map(|f| f.bytes).sum::<u64>(), 900_000);
    assert_eq!(store.completions(&id).await.unwrap().len(), 1);
    // Ended: no more paths, with a reason that says what to do.
    let refused = store
        .add_paths(&id, &[path(&later, "x.bin")], None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, JobError::NotAccepting { reason, .. } if reason.contains("completed") && reason.contains("submit another job")),
        "{refused}"
    );
    worker.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescuer_adds_the_paths_a_dead_worker_left_and_those_added_meanwhile() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let big = work.local_file("big.bin", 6_000_000);
    let small = work.local_file("small.bin", 100_000);
    let meanwhile = work.local_file("meanwhile.bin", 150_000);
    // 16 Mbit/s: 3 s for the big file.
    let id = store.submit(&persistent(&[], 16_000)).await.unwrap().id;
    assert_eq!(store.get(&id).await.unwrap().unwrap().paths_added, 0);
    let first = Running::start(&store, &sim, quick_config("dies", &work));
    wait_for(&store, &id, WITHIN, "running", |j| {
        j.state == JobState::Running
    })
    .await;
    store
        .add_paths(
            &id,
            &[path(&big, "big.bin"), path(&small, "small.bin")],
            None,
            false,
        )
        .await
        .unwrap();
    wait_for(&store, &id, WITHIN, "a third of the big file", |j| {
        j.progress.bytes_done > 2_000_000
    })
    .await;
    first.crash().await;
    // Between the death and the rescue: kept, and added by the rescuer.
    store
        .add_paths(&id, &[path(&meanwhile, "meanwhile.bin")], None, true)
        .await
        .unwrap();
    let pending = store.paths(&id, 0).await.unwrap();
    assert!(
        pending.iter().all(|p| p.outcome.is_none()),
        "nothing was done when the worker died: {pending:#?}"
    );
    let second = Running::start(&store, &sim, quick_config("rescuer", &work));
    let job = wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!(job.claims, 2, "first run and rescue");
    assert_eq!(job.failures, 0, "a dead worker is not a failed attempt");
    same_bytes(&big, &work.remote("drop/big.bin"));
    same_bytes(&small, &work.remote("drop/small.bin"));
    same_bytes(&meanwhile, &work.remote("drop/meanwhile.bin"));
    let paths = store.paths(&id, 0).await.unwrap();
    assert!(
        paths.iter().all(|p| p.outcome == Some(FileOutcome::Done)),
        "{paths:#?}"
    );
    let completions = store.completions(&id).await.unwrap();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].worker, "rescuer");
    second.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_refused_by_jobs_that_are_not_persistent_or_closing() {
    let dir = tempfile::tempdir().unwrap();
    refusals(sqlite_store(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_are_numbered_apart_and_a_key_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    races(sqlite_store(dir.path()).await).await;
}

/// The same cases on PostgreSQL (a throwaway cluster; skipped without the server binaries,
/// never with `CI=true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_persistent_store_cases() {
    let Some(mut cluster) = support::pg::PgCluster::start() else {
        return;
    };
    let url = cluster.fresh_db().await;
    refusals(JobStore::open(&url).await.unwrap()).await;
    let url = cluster.fresh_db().await;
    races(JobStore::open(&url).await.unwrap()).await;
}

/// Eight requests at once with one key: one applied; eight with their own keys: eight paths,
/// numbered 1 to 8, none lost, none twice.
async fn races(store: JobStore) {
    let spec = TransferSpec::builder()
        .upload()
        .host("h")
        .user("u")
        .keepalive(true)
        .destination_root("/in")
        .build()
        .unwrap();
    let id = store.submit(&NewJob::transfer(&spec)).await.unwrap().id;
    let same: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let p = AddedPath::new(format!("/src/same-{i}.bin"), "");
                store.add_paths(&id, &[p], Some("one-key"), false).await
            })
        })
        .collect();
    let mut applied = 0;
    for task in same {
        if task.await.unwrap().unwrap().applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let distinct: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let p = AddedPath::new(format!("/src/own-{i}.bin"), "");
                store
                    .add_paths(&id, &[p], Some(&format!("key-{i}")), false)
                    .await
            })
        })
        .collect();
    for task in distinct {
        assert!(task.await.unwrap().unwrap().applied);
    }
    let paths = store.paths(&id, 0).await.unwrap();
    let seqs: Vec<u64> = paths.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>(), "{paths:#?}");
    let mut own: Vec<&str> = paths
        .iter()
        .filter(|p| p.source.starts_with("/src/own-"))
        .map(|p| p.source.as_str())
        .collect();
    own.sort_unstable();
    own.dedup();
    assert_eq!(own.len(), 8, "{paths:#?}");
    assert_eq!(store.get(&id).await.unwrap().unwrap().paths_added, 9);
    // Only the paths after a sequence number, for a worker that has seen the others.
    assert_eq!(store.paths(&id, 7).await.unwrap().len(), 2);
}

async fn refusals(store: JobStore) {
    let plain = store.submit(&support::job("a.bin", "h")).await.unwrap().id;
    let p = AddedPath::new("/src/b.bin", "b.bin");
    let e = store
        .add_paths(&plain, std::slice::from_ref(&p), None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, JobError::NotAccepting { reason, .. } if reason.contains("not persistent")),
        "{e}"
    );
    assert!(store.finish_job(&plain).await.is_err());
    assert!(matches!(
        store
            .add_paths(&JobId::from("nope"), std::slice::from_ref(&p), None, false)
            .await,
        Err(JobError::NotFound { .. })
    ));
    // A persistent job, closed with its last request: later ones are refused, but the last
    // one retried (same key) is not an error.
    let spec = TransferSpec::builder()
        .upload()
        .host("h")
        .user("u")
        .keepalive(true)
        .destination_root("/in")
        .build()
        .unwrap();
    let kept = store.submit(&NewJob::transfer(&spec)).await.unwrap().id;
    let last = store
        .add_paths(&kept, std::slice::from_ref(&p), Some("last"), true)
        .await
        .unwrap();
    assert!(last.applied && last.closing);
    let retried = store
        .add_paths(&kept, std::slice::from_ref(&p), Some("last"), true)
        .await
        .unwrap();
    assert_eq!((retried.applied, retried.total), (false, 1));
    let e = store
        .add_paths(&kept, std::slice::from_ref(&p), Some("other"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, JobError::NotAccepting { reason, .. } if reason.contains("close")),
        "{e}"
    );
    assert_eq!(store.paths(&kept, 0).await.unwrap().len(), 1);
    // An empty source, a line break or a NUL: a bad request.
    for (source, destination) in [("", "x"), ("/a\nType: CANCEL", "x"), ("/a", "b\0")] {
        assert!(
            matches!(
                store
                    .add_paths(&kept, &[AddedPath::new(source, destination)], None, false)
                    .await,
                Err(JobError::Invalid { .. })
            ),
            "{source:?} {destination:?}"
        );
    }
    // NewJob::persistent on a spec without keepalive makes it a persistent job, its paths
    // the first ones.
    let job = support::job("c.bin", "h").persistent(true);
    let id = store.submit(&job).await.unwrap().id;
    let stored = store.get(&id).await.unwrap().unwrap();
    assert!(stored.persistent);
    let paths = store.paths(&id, 0).await.unwrap();
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0].source, "/src/c.bin");
}

/// A measurement (ignored by default: `cargo test -p fasp-jobs --test persistent -- --ignored
/// --nocapture`): the time from `add_paths` to the file's `FileDone` in a persistent job run
/// by a worker with the default 2 s heartbeat, against the same file given straight to a
/// keepalive session with `Controller::add_file` (the bare manager) in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_add_paths_latency_against_the_bare_manager() {
    use fasp_manager::EventKind;
    use tokio::time::Instant;
    const N: usize = 12;
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let sources: Vec<PathBuf> = (0..N)
        .map(|i| work.local_file(&format!("f{i}.bin"), 20_000))
        .collect();
    // The bare manager: one keepalive session, each file added once the last is done.
    let spec = TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .keepalive(true)
        .target_rate_kbps(100_000)
        .destination_root("/bare")
        .build()
        .unwrap();
    let options = TransferOptions::default()
        .with_env("ASCP_SIM_ROOT", work.root())
        .with_env("ASCP_SIM_STATS_INTERVAL_MS", "50");
    let manager = Manager::builder().ascp(&sim).build();
    let mut t = manager.start(&spec, options).unwrap();
    let mut events = t.events();
    let mut bare = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let at = Instant::now();
        t.control()
            .add_file(s.to_str().unwrap(), format!("f{i}.bin"), None)
            .await
            .unwrap();
        loop {
            let e = futures::StreamExt::next(&mut events).await.expect("events");
            if matches!(e.kind, EventKind::FileDone(_) | EventKind::FileSkipped(_)) {
                break;
            }
        }
        bare.push(at.elapsed());
    }
    t.control()
        .finish(fasp_manager::DoneOperation::Linger)
        .await
        .unwrap();
    t.wait().await.unwrap();

    // The job: the same files through add_paths, a worker with the default heartbeat.
    let id = store.submit(&persistent(&[], 100_000)).await.unwrap().id;
    let cfg = quick_config("w", &work).lease(Duration::from_secs(30), Duration::from_secs(2));
    let worker = Worker::new(store.clone(), Manager::builder().ascp(&sim).build(), cfg);
    let mut feed = worker.subscribe();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    wait_for(&store, &id, WITHIN, "running", |j| {
        j.state == JobState::Running
    })
    .await;
    // Through the worker's own store (as `fasp serve` with its worker), then through another
    // handle on the same file (as another process: no signal, the heartbeat is the bound).
    let other = JobStore::open_sqlite(&work.path().join("jobs.db"))
        .await
        .unwrap();
    let mut job = Vec::new();
    let mut remote = Vec::new();
    for (label, via, times) in [("own", &store, &mut job), ("other", &other, &mut remote)] {
        for (i, s) in sources.iter().enumerate() {
            let at = Instant::now();
            let name = format!("{label}-f{i}.bin");
            via.add_paths(&id, &[path(s, &name)], None, false)
                .await
                .unwrap();
            loop {
                let e = feed.recv().await.expect("events");
                if matches!(
                    e.event.kind,
                    EventKind::FileDone(_) | EventKind::FileSkipped(_)
                ) {
                    break;
                }
            }
            times.push(at.elapsed());
        }
    }
    store.finish_job(&id).await.unwrap();
    wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let ms = |v: &[Duration]| {
        let mut m: Vec<u128> = v.iter().map(Duration::as_millis).collect();
        m.sort_unstable();
        (
            m.iter().sum::<u128>() / m.len() as u128,
            m[m.len() / 2],
            m[m.len() - 1],
        )
    };
    let (bm, b50, bmax) = ms(&bare);
    let (jm, j50, jmax) = ms(&job);
    let (rm, r50, rmax) = ms(&remote);
    eprintln!(
        "add to FileDone, {N} files of 20 kB: bare manager mean {bm} ms (median {b50}, max \
         {bmax}); persistent job, paths added through the worker's store: mean {jm} ms (median \
         {j50}, max {jmax}), ratio {:.1}; through another handle (another process; heartbeat \
         2 s): mean {rm} ms (median {r50}, max {rmax}), ratio {:.1}",
        jm as f64 / bm.max(1) as f64,
        rm as f64 / bm.max(1) as f64
    );
}
