//! Workers running jobs through fasp-manager with ascp-sim as the engine: completion with
//! byte-exact files, cancel of a running job, rescue of a job whose worker died, per-host
//! admission, failures recorded.

mod support;

use std::time::Duration;

use fasp_jobs::{FileOutcome, JobId, JobState, JobStore, NewJob, Retry, WorkerConfig};
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use support::worker::{Running, quick_config, quick_options};
use support::{same_bytes, sqlite_store, upload, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

fn config(id: &str, work: &Work) -> WorkerConfig {
    quick_config(id, work).per_host(8).max_concurrent(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_completes_with_byte_exact_files_and_file_results() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let a = work.local_file("a.bin", 300_000);
    let b = work.local_file("b.bin", 1_000_000);
    let spec = upload(&[&a, &b], "/inbox", 200_000);
    let id = store
        .submit(&NewJob::transfer(&spec).tag("t"))
        .await
        .unwrap()
        .id;
    let mut worker = Running::start(&store, &sim, config("w1", &work));
    let mut events = worker.events.take().unwrap();
    let job = wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    // The monitor's feed: the transfer's typed events, each with its job.
    let mut kinds = Vec::new();
    loop {
        let e = tokio::time::timeout(WITHIN, events.recv())
            .await
            .expect("the events come")
            .expect("no event is missed");
        assert_eq!(e.job_id, id);
        assert_eq!(e.epoch, 1);
        let last = matches!(e.event.kind, fasp_manager::EventKind::Finished { .. });
        kinds.push(e.event.kind);
        if last {
            break;
        }
    }
    let done = kinds
        .iter()
        .filter(|k| matches!(k, fasp_manager::EventKind::FileDone(_)))
        .count();
    assert_eq!(done, 2, "{kinds:#?}");
    same_bytes(&a, &work.remote("inbox/a.bin"));
    same_bytes(&b, &work.remote("inbox/b.bin"));
    let files = store.files(&id).await.unwrap();
    assert_eq!(files.len(), 2, "{files:#?}");
    assert!(
        files.iter().all(|f| f.outcome == FileOutcome::Done),
        "{files:#?}"
    );
    assert_eq!(files.iter().map(|f| f.bytes).sum::<u64>(), 1_300_000);
    assert_eq!(job.progress.bytes_done, 1_300_000);
    assert_eq!(job.progress.files_done, 2);
    let completions = store.completions(&id).await.unwrap();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].worker, "w1");
    worker.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_paused_resumed_and_cancelled() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let big = work.local_file("big.bin", 20_000_000);
    // 8 Mbit/s: 20 s for the whole file, far longer than the test.
    let id = store
        .submit(&NewJob::transfer(&upload(&[&big], "/inbox", 8_000)))
        .await
        .unwrap()
        .id;
    let worker = Running::start(&store, &sim, config("w1", &work));
    wait_for(&store, &id, WITHIN, "bytes moving", |j| {
        j.state == JobState::Running && j.progress.bytes_done > 0
    })
    .await;
    assert_eq!(store.pause(&id).await.unwrap(), JobState::Paused);
    store.set_rate(&id, 16_000, 0).await.unwrap();
    store
        .set_policy(&id, fasp_spec::RatePolicy::High)
        .await
        .unwrap();
    assert_eq!(store.resume(&id).await.unwrap(), JobState::Running);
    assert_eq!(store.cancel(&id).await.unwrap(), JobState::Running);
    let job = wait_for(&store, &id, WITHIN, "cancelled", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    assert_eq!(job.lease_owner, None);
    assert!(store.completions(&id).await.unwrap().is_empty());
    fasp_testkit::assert_no_leftover(&work.needle());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_rescued_and_resumed_byte_exact() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let src = work.local_file("data.bin", 6_000_000);
    // 16 Mbit/s: 3 s.
    let id = store
        .submit(&NewJob::transfer(&upload(&[&src], "/inbox", 16_000)))
        .await
        .unwrap()
        .id;
    let first = Running::start(&store, &sim, config("dies", &work));
    wait_for(&store, &id, WITHIN, "a third written", |j| {
        j.progress.bytes_done > 2_000_000
    })
    .await;
    first.crash().await;
    // One source to a destination that does not exist: the destination is the file.
    let partial = std::fs::metadata(work.remote("inbox"))
        .map(|m| m.len())
        .unwrap_or(0);
    let second = Running::start(&store, &sim, config("rescuer", &work));
    let job = wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!(job.claims, 2, "first run and rescue");
    assert_eq!(job.failures, 0, "a dead worker is not a failed attempt");
    same_bytes(&src, &work.remote("inbox"));
    let completions = store.completions(&id).await.unwrap();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].worker, "rescuer");
    eprintln!("partial file at the crash: {partial} bytes");
    second.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_cap_and_stagger_are_respected() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let mut ids: Vec<(JobId, &str)> = Vec::new();
    for i in 0..8 {
        let host = if i < 6 { "host-a" } else { "host-b" };
        let src = work.local_file(&format!("f{i}.bin"), 300_000);
        // 8 Mbit/s: about 0.3 s each.
        let spec = upload(&[&src], &format!("/inbox{i}"), 8_000);
        let id = store
            .submit(&NewJob::transfer(&spec).host(host))
            .await
            .unwrap()
            .id;
        ids.push((id, host));
    }
    let stagger = Duration::from_millis(150);
    let cfg = config("w", &work)
        .per_host(2)
        .max_concurrent(8)
        .stagger(stagger);
    let worker = Running::start(&store, &sim, cfg);
    let just_ids: Vec<JobId> = ids.iter().map(|(i, _)| i.clone()).collect();
    support::wait_all_terminal(&store, &just_ids, WITHIN).await;
    worker.stop().await;
    for host in ["host-a", "host-b"] {
        let mut spans = Vec::new();
        for (id, h) in &ids {
            if *h != host {
                continue;
            }
            let j = store.get(id).await.unwrap().unwrap();
            assert_eq!(j.state, JobState::Completed, "{j:#?}");
            spans.push((j.started_ms.unwrap(), j.finished_ms.unwrap()));
        }
        spans.sort();
        // At most two at once: at each start, count the jobs running.
        for (start, _) in &spans {
            let running = spans
                .iter()
                .filter(|(s, f)| s <= start && start < f)
                .count();
            assert!(
                running <= 2,
                "{host}: {running} jobs at once at {start}: {spans:?}"
            );
        }
        for pair in spans.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap >= stagger.as_millis() as i64 - 5,
                "{host}: starts {gap} ms apart, stagger {stagger:?}: {spans:?}"
            );
        }
    }
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_recorded_without_retry() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let src = work.local_file("a.bin", 1000);
    let id = store
        .submit(
            &NewJob::transfer(&upload(&[&src], "/inbox", 100_000)).retry(
                Retry::attempts(3).with_backoff(Duration::from_millis(50), Duration::from_secs(1)),
            ),
        )
        .await
        .unwrap()
        .id;
    let mut cfg = config("w", &work);
    cfg.transfer = quick_options(&work).with_env("ASCP_SIM_EXPECT_USER", "alice");
    let worker = Running::start(&store, &sim, cfg);
    let job = wait_for(&store, &id, WITHIN, "failed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert_eq!(
        (job.claims, job.failures),
        (1, 1),
        "code 19 is not retried: {job:#?}"
    );
    assert!(
        job.last_error.as_deref().is_some_and(|e| e.contains("19")),
        "{job:#?}"
    );
    worker.stop().await;
}

/// A node job gets its spec (and token) from the node at each start: when ascp refuses the
/// token, the retry asks the node again and runs with the fresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_job_whose_token_is_refused_gets_a_fresh_one() {
    use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let node = NodeStandin::start(StandinConfig::default()).await.unwrap();
    let a = work.local_file("a.bin", 200_000);
    let b = work.local_file("b.bin", 300_000);
    let request = fasp_jobs::NodeRequest::upload(
        node.base_url(),
        NODE_USER,
        "TEST_NODE_PASSWORD",
        "/inbox",
        [a.to_str().unwrap(), b.to_str().unwrap()],
    );
    let id = store
        .submit(&NewJob::node(request).retry(
            Retry::attempts(3).with_backoff(Duration::from_millis(50), Duration::from_secs(1)),
        ))
        .await
        .unwrap()
        .id;
    let stored = format!("{:?}", store.get(&id).await.unwrap().unwrap());
    assert!(!stored.contains(NODE_PASSWORD), "{stored}");
    // The remote side accepts only the second token the node hands out.
    let mut cfg = config("w", &work).secret("TEST_NODE_PASSWORD", NODE_PASSWORD);
    cfg.transfer = quick_options(&work).with_env("ASCP_SIM_EXPECT_TOKEN", "ATB3_standin-2");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(NODE_PASSWORD), "{shown}");
    let worker = Running::start(&store, &sim, cfg);
    let job = wait_for(&store, &id, WITHIN, "completed", |j| j.state.is_terminal()).await;
    assert_eq!(job.state, JobState::Completed, "{job:#?}");
    assert_eq!((job.claims, job.failures), (2, 1), "{job:#?}");
    assert_eq!(node.issued_tokens().len(), 2);
    same_bytes(&a, &work.remote("inbox/a.bin"));
    same_bytes(&b, &work.remote("inbox/b.bin"));
    worker.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

/// PostgreSQL: three workers share the jobs; one dies mid-transfer; the others finish every
/// job, its included, each once and byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_workers_share_jobs_and_survive_one_death() {
    let sim = require_sim!();
    let Some(mut cluster) = support::pg::PgCluster::start() else {
        return;
    };
    let url = cluster.fresh_db().await;
    let work = Work::new();
    let store = JobStore::open(&url).await.unwrap();
    let mut jobs = Vec::new();
    for i in 0..9 {
        let src = work.local_file(&format!("s{i}.bin"), 3_000_000);
        // 16 Mbit/s: 1.5 s each.
        let spec = upload(&[&src], &format!("/out{i}"), 16_000);
        let id = store.submit(&NewJob::transfer(&spec)).await.unwrap().id;
        jobs.push((id, src, work.remote(&format!("out{i}"))));
    }
    let mut workers = Vec::new();
    for w in 0..3 {
        let store = JobStore::open(&url).await.unwrap();
        let cfg = config(&format!("pg-w{w}"), &work).max_concurrent(2);
        workers.push(Running::start(&store, &sim, cfg));
    }
    // Wait until the first worker is mid-transfer, then kill it.
    let deadline = std::time::Instant::now() + WITHIN;
    let victim = loop {
        let held = store
            .list(&fasp_jobs::ListFilter::all().state(JobState::Running))
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.lease_owner.as_deref() == Some("pg-w0") && j.progress.bytes_done > 0);
        if let Some(j) = held {
            break j.id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pg-w0 never ran a job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workers.remove(0).crash().await;
    let ids: Vec<JobId> = jobs.iter().map(|(id, _, _)| id.clone()).collect();
    support::wait_all_terminal(&store, &ids, WITHIN).await;
    for (id, src, dst) in &jobs {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:#?}");
        let completions = store.completions(id).await.unwrap();
        assert_eq!(completions.len(), 1, "{completions:?}");
        if *id == victim {
            assert_ne!(
                completions[0].worker, "pg-w0",
                "the dead worker completed its job"
            );
        }
        same_bytes(src, dst);
    }
    let rescued = store.get(&victim).await.unwrap().unwrap();
    assert!(rescued.claims >= 2, "{rescued:#?}");
    for w in workers {
        w.stop().await;
    }
    fasp_testkit::assert_no_leftover(&work.needle());
}

/// Two worker processes' worth (two stores, two managers) on one SQLite file never run the
/// same job: every job is claimed once and completed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_sqlite_file_never_run_the_same_job() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let mut jobs = Vec::new();
    for i in 0..10 {
        let src = work.local_file(&format!("s{i}.bin"), 400_000);
        let spec = upload(&[&src], &format!("/out{i}"), 16_000);
        let id = store.submit(&NewJob::transfer(&spec)).await.unwrap().id;
        jobs.push((id, src, work.remote(&format!("out{i}"))));
    }
    let mut workers = Vec::new();
    for w in 0..2 {
        let own = sqlite_store(work.path()).await;
        // A long lease: no rescue can explain a second claim.
        let cfg = config(&format!("w{w}"), &work)
            .lease(Duration::from_secs(30), Duration::from_millis(100))
            .max_concurrent(3);
        workers.push(Running::start(&own, &sim, cfg));
    }
    let ids: Vec<JobId> = jobs.iter().map(|(id, _, _)| id.clone()).collect();
    support::wait_all_terminal(&store, &ids, WITHIN).await;
    let mut by_worker = std::collections::HashMap::<String, usize>::new();
    for (id, src, dst) in &jobs {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:#?}");
        assert_eq!(job.claims, 1, "{job:#?}");
        let completions = store.completions(id).await.unwrap();
        assert_eq!(completions.len(), 1, "{completions:?}");
        *by_worker.entry(completions[0].worker.clone()).or_default() += 1;
        same_bytes(src, dst);
    }
    eprintln!("jobs per worker: {by_worker:?}");
    for w in workers {
        w.stop().await;
    }
    fasp_testkit::assert_no_leftover(&work.needle());
}

/// A cap per host across workers: two workers, one host, never more than two of its jobs
/// at once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_per_host_cap_holds_across_workers() {
    let sim = require_sim!();
    let work = Work::new();
    let store = sqlite_store(work.path()).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let src = work.local_file(&format!("g{i}.bin"), 300_000);
        let spec = upload(&[&src], &format!("/g{i}"), 8_000);
        ids.push(store.submit(&NewJob::transfer(&spec)).await.unwrap().id);
    }
    let mut workers = Vec::new();
    for w in 0..2 {
        let own = sqlite_store(work.path()).await;
        let cfg = config(&format!("g{w}"), &work)
            .lease(Duration::from_secs(30), Duration::from_millis(100))
            .global_per_host(2);
        workers.push(Running::start(&own, &sim, cfg));
    }
    support::wait_all_terminal(&store, &ids, WITHIN).await;
    for w in workers {
        w.stop().await;
    }
    let mut spans = Vec::new();
    for id in &ids {
        let j = store.get(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Completed, "{j:#?}");
        spans.push((j.started_ms.unwrap(), j.finished_ms.unwrap()));
    }
    spans.sort();
    for (start, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, f)| s <= start && start < f)
            .count();
        assert!(running <= 2, "{running} jobs at once at {start}: {spans:?}");
    }
    fasp_testkit::assert_no_leftover(&work.needle());
}
