//! Worker processes for the tests that kill them (`tests/crash.rs`, `tests/scale.rs`): the
//! test binary started again on one of its own tests, which runs a worker when told to by
//! its environment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fasp_testkit::sim::Work;

/// A number from the environment variable `name`, or `default` when unset or not a number.
pub(crate) fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The runtime of a worker process: two threads, timers and I/O.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The runtime of the test that starts the worker processes: one thread, to reach the store.
pub(crate) fn parent_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// What a worker process is told by the test that started it, through `{PREFIX}_CHILD` (the
/// store's URL), `{PREFIX}_SIM` (ascp-sim) and `{PREFIX}_ROOT` (its remote root).
pub(crate) struct Role {
    /// The store's URL (or SQLite path).
    pub(crate) db: String,
    /// ascp-sim.
    pub(crate) sim: PathBuf,
    /// ascp-sim's remote root.
    pub(crate) root: String,
}

impl Role {
    /// The role given to this process, or `None` when it was not started as a worker (then
    /// its child test does nothing).
    pub(crate) fn from_env(prefix: &str) -> Option<Role> {
        let db = std::env::var_os(format!("{prefix}_CHILD"))?;
        let sim = std::env::var_os(format!("{prefix}_SIM"))
            .unwrap_or_else(|| panic!("the parent test names ascp-sim in {prefix}_SIM"));
        let root = std::env::var(format!("{prefix}_ROOT")).unwrap_or_else(|e| {
            panic!("the parent test names the remote root in {prefix}_ROOT: {e}")
        });
        Some(Role {
            db: db.to_string_lossy().into_owned(),
            sim: sim.into(),
            root,
        })
    }
}

/// This test binary, to run its test `test` alone with the output shown, as a worker on `db`
/// with ascp-sim `sim` serving `work` (its [`Role`] under `prefix`); stdin closed, stdout and
/// stderr appended to `log`. The caller may add to the environment, and spawns it.
pub(crate) fn command(test: &str, prefix: &str, role: (&str, &Path, &Work), log: &Path) -> Command {
    let (db, sim, work) = role;
    let exe = std::env::current_exe().expect("the test binary");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the worker log");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(format!("{prefix}_CHILD"), db)
        .env(format!("{prefix}_SIM"), sim)
        .env(format!("{prefix}_ROOT"), work.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the worker log"))
        .stderr(log);
    cmd
}

/// SIGKILL to `child`, then reaped.
pub(crate) fn sigkill(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// Waits, from outside the worker processes, until no job of `store` is open (panics after
/// `within`, naming the workers' `log`).
pub(crate) fn wait_all_ended(
    rt: &tokio::runtime::Runtime,
    store: &fasp_jobs::JobStore,
    log: &Path,
    within: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let open = rt
            .block_on(store.list(&fasp_jobs::ListFilter::all()))
            .unwrap()
            .into_iter()
            .filter(|j| !j.state.is_terminal())
            .count();
        if open == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} jobs still open after {within:?}; workers' log: {}",
            log.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
