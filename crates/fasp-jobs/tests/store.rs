//! The store's guarantees, at the store level, on SQLite (always) and on PostgreSQL (a
//! throwaway cluster; see `support/pg.rs`). Every case takes the URL of an empty store.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fasp_jobs::{
    FileOutcome, FileResult, JobError, JobId, JobProgress, JobState, JobStore, ListFilter, NewJob,
    Retry,
};
use support::{job, pg::PgCluster};

const LONG: Duration = Duration::from_secs(60);

async fn open(url: &str) -> JobStore {
    JobStore::open(url).await.expect("open the store")
}

/// Claim until a job comes (a lease expiring, a backoff passing), within `within`.
async fn claim_within(
    store: &JobStore,
    worker: &str,
    lease: Duration,
    within: Duration,
) -> fasp_jobs::Claim {
    let deadline = Instant::now() + within;
    loop {
        if let Some(c) = store.claim(worker, lease, &[]).await.unwrap() {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{worker}: nothing to claim within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn submit_get_list(url: String) {
    let store = open(&url).await;
    let a = store
        .submit(&job("a", "h1").tag("nightly").tag("big").priority(5))
        .await
        .unwrap();
    let b = store.submit(&job("b", "h2").tag("nightly")).await.unwrap();
    let c = store.submit(&job("c", "h2")).await.unwrap();
    assert!(a.created && b.created && c.created);
    // Submission order is kept even within one millisecond.
    let created = |id: &JobId| {
        let store = &store;
        let id = id.clone();
        async move { store.get(&id).await.unwrap().unwrap().created_ms }
    };
    let (ta, tb, tc) = (
        created(&a.id).await,
        created(&b.id).await,
        created(&c.id).await,
    );
    assert!(ta < tb && tb < tc, "{ta} {tb} {tc}");
    let got = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Queued);
    assert_eq!(got.host, "h1");
    assert_eq!(got.priority, 5);
    assert_eq!(got.tags, ["big", "nightly"]);
    assert_eq!(got.kind, "spec");
    assert_eq!((got.claims, got.failures, got.epoch), (0, 0, 0));
    assert!(store.get(&JobId::from("nope")).await.unwrap().is_none());

    let nightly: Vec<JobId> = store
        .list(&ListFilter::all().tag("nightly"))
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(nightly, [a.id.clone(), b.id.clone()]);
    let listed = store.list(&ListFilter::all().limit(2)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].tags, ["big", "nightly"]);
    assert_eq!(listed[1].tags, ["nightly"]);
    assert_eq!(store.list(&ListFilter::all()).await.unwrap().len(), 3);

    // The highest priority first, then the oldest.
    let first = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert_eq!(first.lease.job_id, a.id);
    assert_eq!(first.lease.epoch, 1);
    let running = store
        .list(&ListFilter::all().state(JobState::Running))
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    let queued_or_running = store
        .list(
            &ListFilter::all()
                .state(JobState::Queued)
                .state(JobState::Running)
                .tag("nightly"),
        )
        .await
        .unwrap();
    assert_eq!(queued_or_running.len(), 2);
    // Admission: a host to skip is skipped.
    let next = store.claim("w", LONG, &["h2".to_owned()]).await.unwrap();
    assert!(next.is_none(), "only h2 jobs are left");
    let next = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert_eq!(next.lease.job_id, b.id);
    store.close().await;
}

async fn idempotency(url: String) {
    let store = open(&url).await;
    let first = store
        .submit(&job("a", "h").idempotency_key("k-1"))
        .await
        .unwrap();
    let again = store
        .submit(&job("other", "h").idempotency_key("k-1"))
        .await
        .unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.id, again.id);
    let other = store
        .submit(&job("a", "h").idempotency_key("k-2"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    // Jobs without a key are never merged.
    let x = store.submit(&job("a", "h")).await.unwrap();
    let y = store.submit(&job("a", "h")).await.unwrap();
    assert_ne!(x.id, y.id);
    assert_eq!(store.list(&ListFilter::all()).await.unwrap().len(), 4);
    store.close().await;
}

async fn secrets_and_bad_input(url: String) {
    let store = open(&url).await;
    let spec = fasp_spec::TransferSpec::builder()
        .upload()
        .host("h")
        .user("u")
        .token("ATM3_do_not_store")
        .source("/a")
        .destination_root("/in")
        .build()
        .unwrap();
    let err = store.submit(&NewJob::transfer(&spec)).await.unwrap_err();
    assert!(
        matches!(err, JobError::SecretInSpec { ref key } if key == "token"),
        "{err}"
    );
    let ok = store
        .submit(&NewJob::transfer(&spec).secret_from_env("token", "JOB_TOKEN"))
        .await
        .unwrap();
    let claim = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert_eq!(claim.lease.job_id, ok.id);
    let shown = format!("{:?}", claim.payload);
    assert!(!shown.contains("ATM3_do_not_store"), "{shown}");
    // Allowed explicitly, it is kept (and still not shown by Debug).
    store
        .submit(&NewJob::transfer(&spec).store_secrets(true))
        .await
        .unwrap();
    let claim = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert!(!format!("{:?}", claim.payload).contains("ATM3_do_not_store"));
    // Bad input is an error, not a panic.
    let err = store
        .submit(&job("a", "h").rates(10, 20))
        .await
        .unwrap_err();
    assert!(matches!(err, JobError::Invalid { .. }), "{err}");
    let err = store.submit(&job("a", "h").host("")).await.unwrap_err();
    assert!(matches!(err, JobError::Invalid { .. }), "{err}");
    let err = store.cancel(&JobId::from("missing")).await.unwrap_err();
    assert!(matches!(err, JobError::NotFound { .. }), "{err}");
    let err = JobStore::open("mysql://x").await.unwrap_err();
    assert!(matches!(err, JobError::UnsupportedUrl { .. }), "{err}");
    store.close().await;
}

async fn cancel_pause_resume_rate(url: String) {
    let store = open(&url).await;
    // A queued job is cancelled at once.
    let q = store.submit(&job("q", "h")).await.unwrap();
    assert_eq!(store.cancel(&q.id).await.unwrap(), JobState::Cancelled);
    assert!(store.claim("w", LONG, &[]).await.unwrap().is_none());
    // Cancelling again reports the state; a cancelled job cannot be paused.
    assert_eq!(store.cancel(&q.id).await.unwrap(), JobState::Cancelled);
    assert!(matches!(
        store.pause(&q.id).await,
        Err(JobError::InvalidState { .. })
    ));
    assert!(matches!(
        store.set_policy(&q.id, fasp_spec::RatePolicy::Fair).await,
        Err(JobError::InvalidState { .. })
    ));

    // A paused queued job is not claimed until resumed.
    let p = store.submit(&job("p", "h")).await.unwrap();
    assert_eq!(store.pause(&p.id).await.unwrap(), JobState::Paused);
    assert!(store.claim("w", LONG, &[]).await.unwrap().is_none());
    assert_eq!(store.resume(&p.id).await.unwrap(), JobState::Queued);
    let claim = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert!(!claim.paused);

    // A held job: the requests reach its worker through the heartbeat.
    let progress = JobProgress::new(100, Some(1000), 0, 0, 0);
    let c = store
        .heartbeat(&claim.lease, LONG, &progress)
        .await
        .unwrap();
    assert!(!c.paused && !c.cancel);
    assert_eq!(store.pause(&p.id).await.unwrap(), JobState::Paused);
    store.set_rate(&p.id, 5000, 100).await.unwrap();
    assert!(matches!(
        store.set_rate(&p.id, 10, 100).await,
        Err(JobError::Invalid { .. })
    ));
    store
        .set_policy(&p.id, fasp_spec::RatePolicy::Low)
        .await
        .unwrap();
    let c = store
        .heartbeat(&claim.lease, LONG, &progress)
        .await
        .unwrap();
    assert!(c.paused);
    assert_eq!(
        (c.target_rate_kbps, c.min_rate_kbps),
        (Some(5000), Some(100))
    );
    assert_eq!(c.policy, Some(fasp_spec::RatePolicy::Low));
    let job = store.get(&p.id).await.unwrap().unwrap();
    assert_eq!(job.rate_policy, Some(fasp_spec::RatePolicy::Low));
    assert_eq!(store.resume(&p.id).await.unwrap(), JobState::Running);
    assert_eq!(store.cancel(&p.id).await.unwrap(), JobState::Running);
    let c = store
        .heartbeat(&claim.lease, LONG, &progress)
        .await
        .unwrap();
    assert!(c.cancel && !c.paused);
    let job = store.get(&p.id).await.unwrap().unwrap();
    assert_eq!(job.progress.bytes_done, 100);
    assert_eq!(job.progress.bytes_expected, Some(1000));
    store.mark_cancelled(&claim.lease, &[]).await.unwrap();
    assert_eq!(support::state(&store, &p.id).await, JobState::Cancelled);
    store.close().await;
}

/// A worker whose lease was taken over can record nothing: not a heartbeat, not a file, not
/// an outcome; the new holder completes the job, once.
async fn fencing(url: String) {
    let store = open(&url).await;
    let other = open(&url).await;
    let id = store.submit(&job("f", "h")).await.unwrap().id;
    let a = store
        .claim("worker-a", Duration::from_millis(200), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.claims, 1);
    let b = claim_within(&other, "worker-b", LONG, Duration::from_secs(20)).await;
    assert_eq!(b.lease.job_id, id);
    assert_eq!(b.lease.epoch, a.lease.epoch + 1);
    assert_eq!(b.claims, 2, "a rescue is a claim");
    assert_eq!(b.failures, 0, "a rescue is not a failure");

    let p = JobProgress::default();
    let file = FileResult::new("/in/f", FileOutcome::Done, 3);
    for err in [
        store
            .heartbeat(&a.lease, LONG, &p)
            .await
            .map(drop)
            .unwrap_err(),
        store
            .record_files(&a.lease, std::slice::from_ref(&file))
            .await
            .unwrap_err(),
        store
            .complete(&a.lease, std::slice::from_ref(&file), &p)
            .await
            .unwrap_err(),
        store.fail(&a.lease, "late").await.unwrap_err(),
        store
            .retry_later(&a.lease, "late", Duration::ZERO, &[])
            .await
            .unwrap_err(),
        store.mark_cancelled(&a.lease, &[]).await.unwrap_err(),
        store.release(&a.lease, &[]).await.unwrap_err(),
    ] {
        assert!(err.is_lease_lost(), "{err}");
    }
    assert!(store.files(&id).await.unwrap().is_empty());
    assert!(store.completions(&id).await.unwrap().is_empty());

    let done = JobProgress::new(3, Some(3), 1, 0, 0);
    other.complete(&b.lease, &[file], &done).await.unwrap();
    // The holder itself cannot complete twice.
    let again = other.complete(&b.lease, &[], &done).await.unwrap_err();
    assert!(again.is_lease_lost(), "{again}");
    let completions = other.completions(&id).await.unwrap();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].worker, "worker-b");
    assert_eq!(completions[0].epoch, b.lease.epoch);
    let job = other.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.lease_owner, None);
    assert_eq!(other.files(&id).await.unwrap().len(), 1);
    // A completed job is never claimed again, lease or not.
    assert!(other.claim("worker-c", LONG, &[]).await.unwrap().is_none());
    store.close().await;
    other.close().await;
}

async fn retries_and_failures(url: String) {
    let store = open(&url).await;
    let retry = Retry::attempts(2).with_backoff(Duration::from_millis(300), Duration::from_secs(1));
    let id = store.submit(&job("r", "h").retry(retry)).await.unwrap().id;
    let first = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert_eq!(first.retry.max_attempts, 2);
    let partial = FileResult::new("/in/r", FileOutcome::Failed, 10);
    store
        .retry_later(&first.lease, "code 16", first.retry.backoff(1), &[partial])
        .await
        .unwrap();
    let job = store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.failures, 1);
    assert_eq!(job.last_error.as_deref(), Some("code 16"));
    // Not before the backoff.
    let t0 = Instant::now();
    let second = claim_within(&store, "w", LONG, Duration::from_secs(20)).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "claimed {:?} after the retry was scheduled, backoff 300 ms",
        t0.elapsed()
    );
    assert_eq!(second.failures, 1);
    store.fail(&second.lease, "code 16 again").await.unwrap();
    let job = store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.failures, 2);
    assert_eq!(
        store.files(&id).await.unwrap()[0].outcome,
        FileOutcome::Failed
    );
    assert!(store.completions(&id).await.unwrap().is_empty());
    store.close().await;
}

/// A cancel asked while the worker is gone: once its lease has expired, a sweep ends the job
/// and raises its epoch, so the old holder can record nothing.
async fn sweep_cancels_orphans(url: String) {
    let store = open(&url).await;
    let id = store.submit(&job("s", "h")).await.unwrap().id;
    let claim = store
        .claim("gone", Duration::from_millis(100), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.cancel(&id).await.unwrap(), JobState::Running);
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.sweep().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the sweep never ended the job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.epoch, claim.lease.epoch + 1);
    let err = store.mark_cancelled(&claim.lease, &[]).await.unwrap_err();
    assert!(err.is_lease_lost());
    store.close().await;
}

/// Workers on separate connections claiming at once never get the same job.
async fn concurrent_claims_are_exclusive(url: String) {
    const JOBS: usize = 60;
    let store = open(&url).await;
    for i in 0..JOBS {
        store.submit(&job(&format!("c{i}"), "h")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = open(&url).await;
            let mut mine = Vec::new();
            loop {
                match store.claim(&format!("w{w}"), LONG, &[]).await {
                    Ok(Some(c)) => mine.push(c.lease.job_id),
                    Ok(None) => break,
                    // SQLite: a writer that waited too long; claim again.
                    Err(JobError::Database { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            store.close().await;
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "job {id} claimed twice");
        }
    }
    assert_eq!(total, JOBS);
    store.close().await;
}

/// A worker never rescues a job it runs itself, even when its lease expired.
async fn own_jobs_are_not_rescued(url: String) {
    let store = open(&url).await;
    let a = store.submit(&job("a", "h")).await.unwrap().id;
    let b = store.submit(&job("b", "h")).await.unwrap().id;
    let first = store
        .claim("w", Duration::from_millis(1), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.lease.job_id, a);
    // a's lease expires; excluded, it is left, and b comes instead.
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::now_ms() <= store.get(&a).await.unwrap().unwrap().updated_ms + 5 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let next = store
        .claim_excluding("w", LONG, &[], std::slice::from_ref(&a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.lease.job_id, b);
    assert!(
        store
            .claim_excluding("w", LONG, &[], std::slice::from_ref(&a))
            .await
            .unwrap()
            .is_none()
    );
    // Not excluded, the expired lease is rescued.
    let rescue = store.claim("w", LONG, &[]).await.unwrap().unwrap();
    assert_eq!(rescue.lease.job_id, a);
    assert_eq!(rescue.lease.epoch, first.lease.epoch + 1);
    store.close().await;
}

/// A cap of running jobs per host across all workers: claimers racing on separate
/// connections never hold more than the cap of one host's jobs; the other host is not held
/// back; an ended job makes room; an expired lease does not count.
async fn global_host_cap(url: String) {
    const CAP: u32 = 3;
    let store = open(&url).await;
    for i in 0..12 {
        store.submit(&job(&format!("a{i}"), "busy")).await.unwrap();
    }
    for i in 0..2 {
        store.submit(&job(&format!("b{i}"), "other")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = open(&url).await;
            let mut mine = Vec::new();
            for _ in 0..20 {
                match store
                    .claim_with_host_cap(&format!("w{w}"), LONG, &[], &[], CAP)
                    .await
                {
                    Ok(Some(c)) => mine.push(c),
                    Ok(None) => break,
                    Err(JobError::Database { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            store.close().await;
            mine
        }));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await.unwrap());
    }
    let busy = claims.iter().filter(|c| c.host == "busy").count();
    let other = claims.iter().filter(|c| c.host == "other").count();
    assert_eq!((busy, other), (CAP as usize, 2), "claims per host");
    assert!(
        store
            .claim_with_host_cap("late", LONG, &[], &[], CAP)
            .await
            .unwrap()
            .is_none()
    );
    // One ends: room for one more.
    let done = claims.iter().find(|c| c.host == "busy").unwrap();
    store
        .complete(&done.lease, &[], &JobProgress::default())
        .await
        .unwrap();
    let next = store
        .claim_with_host_cap("late", Duration::from_millis(1), &[], &[], CAP)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.host, "busy");
    // Its lease expires: it no longer counts, and it is rescued first.
    let claimed_at = support::now_ms();
    while support::now_ms() <= claimed_at + 5 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rescued = store
        .claim_with_host_cap("later", LONG, &[], &[], CAP)
        .await
        .unwrap()
        .expect("the expired lease no longer counts");
    assert_eq!(rescued.lease.job_id, next.lease.job_id);
    store.close().await;
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = dir.path().join("jobs.db").to_string_lossy().into_owned();
                    super::$case(url).await;
                }
            )*
        }

        /// The same cases against PostgreSQL, one database each, one cluster for all.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_store_cases() {
            let Some(mut cluster) = PgCluster::start() else { return };
            $(
                let url = cluster.fresh_db().await;
                eprintln!("postgres: {}", stringify!($case));
                $case(url).await;
            )*
        }
    };
}

cases!(
    submit_get_list,
    idempotency,
    secrets_and_bad_input,
    cancel_pause_resume_rate,
    fencing,
    retries_and_failures,
    sweep_cancels_orphans,
    concurrent_claims_are_exclusive,
    own_jobs_are_not_rescued,
    global_host_cap,
);

/// Two processes' worth of stores opening one new SQLite file at once both end up with the
/// schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_open_of_a_new_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            tokio::spawn(async move { JobStore::open_sqlite(&p).await })
        })
        .collect();
    for o in opens {
        let store = o.await.unwrap().expect("open");
        store.list(&ListFilter::all()).await.unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the store file is private");
}
