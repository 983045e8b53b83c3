//! Helpers shared by the integration tests of fasp-jobs: stores on SQLite and PostgreSQL,
//! jobs for ascp-sim, in-process workers (`worker`), waiting with deadlines, a seeded random
//! generator.
//!
//! Each test file is a crate of its own that includes this module; what one leaves unused
//! another uses.
#![allow(dead_code)]

pub(crate) mod child;
pub(crate) mod pg;
pub(crate) mod points;
pub(crate) mod worker;

use std::path::Path;
use std::time::{Duration, Instant};

use fasp_jobs::{Job, JobId, JobState, JobStore, NewJob};
use fasp_spec::TransferSpec;

/// A new SQLite store in `dir`.
pub(crate) async fn sqlite_store(dir: &Path) -> JobStore {
    JobStore::open_sqlite(&dir.join("jobs.db"))
        .await
        .expect("open a SQLite store")
}

/// An upload of `sources` into `dest` on ascp-sim's remote root, at `rate_kbps`.
pub(crate) fn upload(sources: &[&Path], dest: &str, rate_kbps: u64) -> TransferSpec {
    let mut b = TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .ssh_port(33001)
        .target_rate_kbps(rate_kbps);
    for s in sources {
        b = b.source(s.to_str().expect("utf-8 path"));
    }
    b.destination_root(dest).build().expect("a valid spec")
}

/// An upload of the one file `src` into the folder `dest` (created) on ascp-sim's remote
/// root at 100 Mbit/s: a small file ends in milliseconds.
pub(crate) fn small_upload(src: &Path, dest: &str) -> TransferSpec {
    TransferSpec::builder()
        .upload()
        .host("127.0.0.1")
        .user("xfer")
        .ssh_port(33001)
        .target_rate_kbps(100_000)
        .source(src.to_str().expect("utf-8 path"))
        .destination_root(dest)
        .create_dir(true)
        .build()
        .expect("a valid spec")
}

/// Panics unless `a` and `b` hold the same bytes; returns their length.
pub(crate) fn same_bytes(a: &Path, b: &Path) -> u64 {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(
        x == y,
        "{} and {} differ ({} and {} bytes)",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
    x.len() as u64
}

/// A job for the store tests (never run): an upload of `/src/<name>` to `host`.
pub(crate) fn job(name: &str, host: &str) -> NewJob {
    let spec = TransferSpec::builder()
        .upload()
        .host(host)
        .user("xfer")
        .source(format!("/src/{name}"))
        .destination_root("/in")
        .build()
        .expect("a valid spec");
    NewJob::transfer(&spec)
}

/// Poll `store` until job `id` satisfies `pred` (panics after `within`, showing the job).
pub(crate) async fn wait_for(
    store: &JobStore,
    id: &JobId,
    within: Duration,
    what: &str,
    pred: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let job = store
            .get(id)
            .await
            .expect("read the job")
            .expect("the job exists");
        if pred(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; job: {job:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll until every job of `ids` is in a terminal state (panics after `within`).
pub(crate) async fn wait_all_terminal(store: &JobStore, ids: &[JobId], within: Duration) {
    for id in ids {
        wait_for(store, id, within, "terminal state", |j| {
            j.state.is_terminal()
        })
        .await;
    }
}

/// Milliseconds since the Unix epoch (the store's clock).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The state of a job.
pub(crate) async fn state(store: &JobStore, id: &JobId) -> JobState {
    store.get(id).await.unwrap().unwrap().state
}

/// A small seeded generator (splitmix64): reproducible chaos without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}
