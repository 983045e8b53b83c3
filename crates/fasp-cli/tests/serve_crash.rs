//! The daemon's crash loop: the built `fasp serve` (API and embedded worker, a SQLite store in
//! a temporary folder, ascp-sim as ascp) is killed with SIGKILL, at each named kill point of
//! fasp-jobs (compiled in for these tests: fasp-jobs' feature `failpoints`, turned on by this
//! crate's dev-dependency) and at random times, and restarted on the same store, again and
//! again. Jobs are submitted through its API (`fasp jobs add`); after each restart the API
//! must answer with every job submitted so far. In the end every job is completed, with one
//! completion record, every file byte-exact, and no ascp-sim or daemon is left running.
//!
//! `FASP_JOBS_POINT_KILLS` (default 1) daemon deaths at each point, `FASP_JOBS_KILLS`
//! (default 6) random kills, `FASP_JOBS_SEED` the seed. A run whose `fasp` was built without
//! the kill points fails at the first point (the daemon does not die there).
#![cfg(feature = "jobs")]

#[path = "../../fasp-jobs/tests/support/points.rs"]
mod points;
mod support;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fasp_testkit::sim::Work;
use nix::sys::signal::{Signal, kill};
use points::{FAILPOINT_ENV, LOG_ENV, POINTS, PointCounts, TIMING_ENV};
use serde_json::Value;
use support::serve::{Daemon as Serve, fasp_at, serve_command, with_sim};
use support::sim_path;

/// Lease 700 ms, heartbeat 100 ms, poll 20 ms, no stagger: a restarted daemon takes its dead
/// predecessor's jobs over within a second rather than 30 s.
const TIMING: &str = "700,100,20,0";

/// The `fasp` built for these tests, or `FASP_SERVE_CRASH_BIN` (a copy of it, for long
/// runs while other builds may replace the target folder's).
fn fasp() -> Command {
    let bin = std::env::var_os("FASP_SERVE_CRASH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_fasp").into());
    let mut cmd = fasp_at(bin);
    cmd.env_remove(FAILPOINT_ENV);
    cmd
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        lo + (z ^ (z >> 31)) % (hi - lo).max(1)
    }
}

/// One life of `fasp serve` on the test's store.
impl Serve {
    /// `fasp serve` on `work`'s store, with a worker unless `api_only`; armed with
    /// `failpoint` (`NAME:N`) if given. Returns once it said where it listens.
    fn life(work: &Work, sim: &Path, api_only: bool, failpoint: Option<&str>) -> Serve {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(daemon_log(work))
            .expect("the daemons' log");
        let mut cmd = serve_command(fasp(), work);
        cmd.args(["--listen", "127.0.0.1:0"]);
        with_sim(&mut cmd, work, sim)
            .args(["--max-concurrent", "4", "--per-host", "4"])
            .env(TIMING_ENV, TIMING)
            .env(LOG_ENV, work.path().join("points.log"));
        if api_only {
            cmd.arg("--no-worker");
        }
        if let Some(point) = failpoint {
            cmd.env(FAILPOINT_ENV, point);
        }
        Serve::start(cmd.stdin(Stdio::null()).stderr(log), |mut child| {
            let _ = child.wait();
            let log = std::fs::read_to_string(daemon_log(work)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!(
                "; the end of its log ({}):\n{}",
                daemon_log(work).display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }

    fn sigkill(mut self) {
        let _ = kill(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Wait for it to kill itself at its point (panics if it does not within 60 s, or ends
    /// otherwise).
    fn died_at_point(mut self, armed: &str, work: &Work) -> Duration {
        let life = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for fasp serve") {
                break status;
            }
            assert!(
                life.elapsed() < Duration::from_secs(60),
                "{armed}: fasp serve did not reach it within 60 s; its log: {}",
                daemon_log(work).display()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(
            status.signal(),
            Some(9),
            "{armed}: fasp serve ended otherwise than at its kill point ({status:?}); log: {}",
            daemon_log(work).display()
        );
        life.elapsed()
    }
}

fn daemon_log(work: &Work) -> PathBuf {
    work.path().join("daemons.log")
}

/// `fasp jobs --server URL ARGS... --json`, which must succeed; its JSON lines.
fn jobs_json(url: &str, args: &[&str]) -> Vec<Value> {
    let out: Output = fasp()
        .args(["jobs", "--server", url, "--json"])
        .args(args)
        .output()
        .expect("run fasp jobs");
    assert!(
        out.status.success(),
        "fasp jobs {args:?}: {:?}, {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The jobs the server lists: id and state.
fn listed(url: &str) -> Vec<(String, String)> {
    jobs_json(url, &["list", "--limit", "100000"])
        .into_iter()
        .filter(|l| l["type"] == "job")
        .map(|l| {
            (
                l["id"].as_str().expect("an id").to_owned(),
                l["state"].as_str().expect("a state").to_owned(),
            )
        })
        .collect()
}

/// A job submitted through the API, and its (source, destination) pairs.
struct Submitted {
    id: String,
    pairs: Vec<(PathBuf, PathBuf)>,
}

/// Submit `n` jobs named `{prefix}{j}` through the server at `url`: two files each, of 100
/// to 600 kB, at 8 Mbit/s.
fn submit(work: &Work, url: &str, rng: &mut Rng, prefix: &str, n: u64) -> Vec<Submitted> {
    let mut out = Vec::new();
    for j in 0..n {
        let name = format!("{prefix}{j}");
        let mut pairs = Vec::new();
        let mut paths = Vec::new();
        for f in 0..2 {
            let len = rng.range(100_000, 600_000) as usize;
            let src = work.local_file(&format!("{name}/file{f}.bin"), len);
            paths.push(serde_json::json!({"source": src.to_str().expect("UTF-8")}));
            pairs.push((src, work.remote(&format!("out-{name}/file{f}.bin"))));
        }
        let spec = serde_json::json!({
            "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
            "target_rate_kbps": 8_000, "paths": paths,
            "destination_root": format!("/out-{name}")
        });
        let file = work.path().join(format!("{name}.json"));
        std::fs::write(&file, spec.to_string()).expect("write a spec");
        let added = jobs_json(
            url,
            &[
                "add",
                "--spec",
                file.to_str().expect("UTF-8"),
                "--key",
                &name,
                "--attempts",
                "50",
            ],
        );
        let id = added[0]["id"].as_str().expect("an id").to_owned();
        out.push(Submitted { id, pairs });
    }
    out
}

/// The API answers with exactly the jobs submitted so far.
fn same_jobs(url: &str, submitted: &[Submitted]) -> Vec<(String, String)> {
    let jobs = listed(url);
    let have: BTreeSet<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    let want: BTreeSet<&str> = submitted.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(have, want, "the restarted server lists other jobs");
    jobs
}

#[test]
fn fasp_serve_killed_at_every_point_and_at_random_loses_no_job() {
    let Some(sim) = sim_path() else { return };
    let work = Work::new();
    let per_point = env_u64("FASP_JOBS_POINT_KILLS", 1).max(1);
    let kills = env_u64("FASP_JOBS_KILLS", 6);
    let seed = env_u64("FASP_JOBS_SEED", 0x5eed_fa57);
    eprintln!(
        "fasp serve crash loop: {per_point} kill(s) at each of {} points, {kills} random kills, seed {seed}",
        POINTS.len()
    );
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut submitted: Vec<Submitted> = Vec::new();
    let mut restarts = 0u64;
    let mut lives = Vec::new();

    for point in POINTS {
        // The API alone takes this point's jobs (no worker runs them yet), then dies too.
        let api = Serve::life(&work, &sim, true, None);
        same_jobs(&api.url, &submitted);
        submitted.extend(submit(
            &work,
            &api.url,
            &mut rng,
            &format!("{point}-"),
            2 * per_point + 2,
        ));
        api.sigkill();
        for k in 0..per_point {
            let armed = format!("{point}:{}", 1 + (k + rng.range(0, 2)) % 2);
            let daemon = Serve::life(&work, &sim, false, Some(&armed));
            restarts += 1;
            lives.push(daemon.died_at_point(&armed, &work));
        }
    }
    let at_points = started.elapsed();

    // Random kills of a daemon at work, with more jobs submitted on the way.
    let mut daemon = Serve::life(&work, &sim, false, None);
    submitted.extend(submit(
        &work,
        &daemon.url,
        &mut rng,
        "random-",
        (kills / 2).max(4),
    ));
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.range(100, 1_500)));
        daemon.sigkill();
        daemon = Serve::life(&work, &sim, false, None);
        restarts += 1;
        same_jobs(&daemon.url, &submitted);
    }

    // The last daemon finishes the work.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let jobs = same_jobs(&daemon.url, &submitted);
        let open: Vec<_> = jobs
            .iter()
            .filter(|(_, s)| !matches!(s.as_str(), "completed" | "failed" | "cancelled"))
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} jobs still open: {open:?}; daemons' log: {}",
            open.len(),
            daemon_log(&work).display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.stop(), 0, "fasp serve's exit status on SIGTERM");
    let ended = started.elapsed();

    // The store, read directly: completed once each, files byte-exact.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = rt
        .block_on(fasp_jobs::JobStore::open_sqlite(
            &work.path().join("jobs.db"),
        ))
        .expect("open the store");
    let mut claims = 0u64;
    for s in &submitted {
        let id = fasp_jobs::JobId::from(s.id.clone());
        let job = rt
            .block_on(store.get(&id))
            .expect("read a job")
            .expect("the job exists");
        assert_eq!(job.state, fasp_jobs::JobState::Completed, "{job:#?}");
        claims += u64::from(job.claims);
        let completions = rt.block_on(store.completions(&id)).expect("completions");
        assert_eq!(completions.len(), 1, "job {}: {completions:?}", s.id);
        for (src, dst) in &s.pairs {
            let a = std::fs::read(src).expect("a source");
            let b = std::fs::read(dst).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
            assert!(
                a == b,
                "job {}: {} differs from its source ({} and {} bytes)",
                s.id,
                dst.display(),
                b.len(),
                a.len()
            );
        }
    }
    rt.block_on(store.close());

    let counts = PointCounts::read(&work.path().join("points.log"));
    eprintln!(
        "{} jobs, {claims} claims, {restarts} restarts of the worker daemon ({} at points in {at_points:?}, lives {:?} to {:?}; {kills} random), all ended after {ended:?}:\n{counts}",
        submitted.len(),
        counts.total_kills(),
        lives.iter().min().expect("a life"),
        lives.iter().max().expect("a life"),
    );
    for point in POINTS {
        assert!(counts.hits(point) > 0, "{point} never hit:\n{counts}");
        assert_eq!(counts.kills(point), per_point, "{point}:\n{counts}");
    }
    fasp_testkit::assert_no_leftover(&work.needle());
}
