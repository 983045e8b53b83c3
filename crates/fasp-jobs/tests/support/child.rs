//! Worker processes for the tests that kill them (`tests/crash.rs`, `tests/scale.rs`): the
//! test binary started again on one of its own tests, which runs a worker when told to by
//! its environment.

use std::path::Path;
use std::process::{Child, Command, Stdio};

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

/// This test binary, to run its test `test` alone with the output shown; stdin closed, stdout
/// and stderr appended to `log`. The caller adds the environment and spawns it.
pub(crate) fn command(test: &str, log: &Path) -> Command {
    let exe = std::env::current_exe().expect("the test binary");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the worker log");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
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
