//! The `fasp serve` harness of the jobs tests (`tests/jobs.rs`, `tests/jobs_client.rs`,
//! `tests/serve_crash.rs`): the built `fasp` with the client's environment cleared, a daemon
//! started on a throwaway store that reports where it listens, and the `fasp jobs` client.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use fasp_testkit::sim::Work;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// How long a daemon may take to stop, or a polled condition to hold.
pub(crate) const WITHIN: Duration = Duration::from_secs(60);

/// The `fasp` at `bin`, without the client's `FASP_SERVER` and `FASP_JOBS_DB`.
pub(crate) fn fasp_at(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("FASP_SERVER").env_remove("FASP_JOBS_DB");
    cmd
}

/// The `fasp` built for these tests, see [`fasp_at`].
pub(crate) fn fasp() -> Command {
    fasp_at(env!("CARGO_BIN_EXE_fasp"))
}

/// `fasp serve --db WORK/jobs.db`.
pub(crate) fn serve_command(fasp: Command, work: &Work) -> Command {
    let mut cmd = fasp;
    cmd.arg("serve")
        .arg("--db")
        .arg(work.path().join("jobs.db"));
    cmd
}

/// `--ascp SIM`, ascp-sim serving `work`'s remote root and reporting every 50 ms.
pub(crate) fn with_sim<'c>(cmd: &'c mut Command, work: &Work, sim: &Path) -> &'c mut Command {
    cmd.arg("--ascp")
        .arg(sim)
        .env("FASP_ASCP_ENV", "ASCP_SIM_*")
        .env("ASCP_SIM_ROOT", work.root())
        .env("ASCP_SIM_STATS_INTERVAL_MS", "50")
}

/// A `fasp serve` (or `fasp worker`) child, killed if the test ends first; its stdout stays
/// open for its life.
pub(crate) struct Daemon {
    /// The process.
    pub(crate) child: Child,
    /// Where it said it listens.
    pub(crate) url: String,
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Spawns `cmd` (stdout piped; stdin and stderr as the caller set them) and waits for its
    /// `listening on URL` line. Otherwise it is killed and the test panics with the line and
    /// what `why` says of the dead child.
    pub(crate) fn start(cmd: &mut Command, why: impl FnOnce(Child) -> String) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fasp serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("read fasp serve's first line");
        match first.trim().strip_prefix("listening on ") {
            Some(url) => Daemon {
                url: url.to_owned(),
                child,
                _stdout: Some(stdout),
            },
            None => {
                let _ = child.kill();
                panic!("fasp serve did not start: {first:?}{}", why(child))
            }
        }
    }

    /// A daemon that does not say where it listens (`fasp worker`), spawned by the caller.
    pub(crate) fn unlisted(child: Child) -> Daemon {
        Daemon {
            child,
            url: String::new(),
            _stdout: None,
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"))
    }

    /// SIGTERM, then its exit status within [`WITHIN`].
    pub(crate) fn stop(mut self) -> i32 {
        kill(self.pid(), Signal::SIGTERM).expect("signal fasp");
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().expect("an exit status");
            }
            assert!(Instant::now() < deadline, "fasp did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `fasp jobs --server URL ARGS...` against it.
    pub(crate) fn jobs(&self, args: &[&str]) -> Output {
        jobs(&self.url, args)
    }
}

/// `fasp jobs --server URL ARGS...`.
pub(crate) fn jobs(url: &str, args: &[&str]) -> Output {
    fasp()
        .args(["jobs", "--server", url])
        .args(args)
        .output()
        .expect("run fasp jobs")
}

/// The stdout of a `fasp jobs` command as JSON lines (job, file, path and error lines: a
/// contract of their own), each an object whose first key is `type`.
pub(crate) fn typed_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let first = v.as_object().and_then(|o| o.keys().next().cloned());
            assert_eq!(first.as_deref(), Some("type"), "type is not first: {line}");
            v
        })
        .collect()
}

/// The stderr of `out`, lossily as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics unless `a` and `b` hold the same bytes.
pub(crate) fn same_bytes(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Starts `fasp jobs --server URL events ARGS...` and returns once it said (on stderr) that it
/// follows the events, so that it sees every event from then on: the child and its stdout
/// lines, read on a thread of their own.
pub(crate) fn follow_events(url: &str, args: &[&str]) -> (Child, Receiver<String>) {
    let mut follower = fasp()
        .args(["jobs", "--server", url, "events"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fasp jobs events");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = BufReader::new(follower.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut said = String::new();
    BufReader::new(follower.stderr.take().expect("stderr"))
        .read_line(&mut said)
        .expect("read the follower's stderr");
    assert!(said.contains("following"), "{said:?}");
    (follower, rx)
}
