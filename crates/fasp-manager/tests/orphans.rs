//! SIGKILL of the process that runs the manager (no destructor, no cleanup, no cancel) leaves
//! no ascp behind: every child is spawned with the Linux parent-death signal (SIGKILL).
//!
//! Each test re-executes this test binary in the child role (`FASP_ORPHAN_ROLE=child`, test
//! [`child_role`]), which starts one transfer with a manager and prints ascp's pid, then
//! waits for ever. The parent reads the pid, SIGKILLs the child and checks that ascp is dead
//! within a second. The parent is a child subreaper, so an orphaned ascp is re-parented to it
//! (not to init): it reaps ascp itself and checks that SIGKILL, the parent-death signal, is
//! what ended it, not ascp noticing on its own that its manager went away. Nothing the
//! parent holds goes away with the child: the "SSH server" the real ascp is stuck on is the
//! parent's listener.
//!
//! Cases: ascp-sim mid-transfer (stalled, no STATS due for a minute); the real ascp held in
//! SSH negotiation; and the same after more than 12 s of an idle runtime in the child (tokio
//! retires idle blocking-pool threads after 10 s, and the parent-death signal follows the
//! *thread* that forked: a child forked from such a thread would be killed early).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fasp_manager::{EventKind, Manager, TransferOptions};
use fasp_testkit::require_real_ascp;
use futures::StreamExt;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use support::{SilentSsh, alive, require_sim, source_file, ssh_upload, stat, upload};

/// `child` selects the child role.
const ROLE: &str = "FASP_ORPHAN_ROLE";
/// `sim` or `real`: what the child starts.
const CASE: &str = "FASP_ORPHAN_CASE";
/// The ascp (or ascp-sim) the child's manager runs.
const PROGRAM: &str = "FASP_ORPHAN_PROGRAM";
/// A folder of the parent's for the child's files.
const DIR: &str = "FASP_ORPHAN_DIR";
/// The parent's silent "SSH server" port, for the real ascp.
const SSH_PORT: &str = "FASP_ORPHAN_SSH_PORT";
/// The name of the child-role test.
const CHILD_TEST: &str = "child_role";
/// What the child prints before ascp's pid.
const PID_LINE: &str = "fasp-orphans: ascp pid ";

/// How long an orphaned ascp may take to die.
const LIMIT: Duration = Duration::from_secs(1);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the child role needs {name}"))
}

/// The child role: start one transfer, print ascp's pid once it is where the case wants it,
/// then keep the manager and the transfer and leave the runtime idle until killed. Without
/// `FASP_ORPHAN_ROLE=child` (a normal test run) it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_role() {
    if std::env::var(ROLE).as_deref() != Ok("child") {
        return;
    }
    // Should the parent die without killing us, its end of our stdin closes: exit then.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        std::process::exit(3);
    });
    let case = env(CASE);
    let dir = PathBuf::from(env(DIR));
    let manager = Manager::with_ascp(env(PROGRAM));
    let (spec, options) = match case.as_str() {
        "sim" => {
            let src = dir.join("big.bin");
            std::fs::write(&src, vec![7u8; 4 << 20]).unwrap();
            let remote = dir.join("remote");
            std::fs::create_dir_all(&remote).unwrap();
            let spec = upload(&[&src], "/").build().unwrap();
            // Stalled after the first byte for longer than the test, with no STATS due for a
            // minute: ascp-sim writes nothing to the management socket meanwhile, so it cannot
            // find out by itself that its manager is gone.
            let options = TransferOptions::default()
                .with_env("ASCP_SIM_ROOT", remote.to_str().unwrap())
                .with_env("ASCP_SIM_STATS_INTERVAL_MS", "60000")
                .with_env("ASCP_SIM_FAULT", "stall:300@1");
            (spec, options)
        }
        "real" => {
            let src = source_file(&dir);
            let spec = ssh_upload(env(SSH_PORT).parse().unwrap(), &src, "xfer")
                .build()
                .unwrap();
            (spec, TransferOptions::default())
        }
        other => panic!("unknown {CASE} {other:?}"),
    };
    let mut t = manager.start(&spec, options).unwrap();
    let mut events = t.events();
    let mut pid = None;
    while let Some(e) = events.next().await {
        match &e.kind {
            EventKind::Spawned { pid: p } => pid = Some(*p),
            // ascp-sim is mid-transfer: its first STATS.
            EventKind::FileStarted(_) if case == "sim" => break,
            // The real ascp has begun its session and is stuck in SSH negotiation.
            EventKind::SessionInit { .. } if case == "real" => break,
            EventKind::Finished { .. } => panic!("the transfer ended: {e:?}"),
            _ => {}
        }
    }
    let pid = pid.expect("a Spawned event");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PID_LINE}{pid}").unwrap();
    out.flush().unwrap();
    drop(out);
    drop(events);
    // Idle until killed, holding the manager and the transfer.
    std::future::pending::<()>().await;
    drop((t, manager));
}

/// The threads of `pid`: (tid, name).
fn threads(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim_end().to_owned()))
        })
        .collect()
}

/// The thread of `parent` whose child `pid` is (the parent-death signal follows it).
fn parent_thread(parent: u32, pid: u32) -> Option<(u32, String)> {
    threads(parent).into_iter().find(|(tid, _)| {
        std::fs::read_to_string(format!("/proc/{parent}/task/{tid}/children"))
            .is_ok_and(|c| c.split_whitespace().any(|p| p == pid.to_string()))
    })
}

/// The re-executed test binary in the child role, and the ascp it started.
struct ChildRole {
    child: std::process::Child,
    ascp: u32,
    /// A path on ascp's command line: it is ours to kill if still there after a failure.
    needle: String,
    stderr: Arc<Mutex<String>>,
}

impl ChildRole {
    /// Start the child role and read ascp's pid from its stdout (60 s at most).
    fn start(case: &str, program: &Path, dir: &Path, ssh_port: Option<u16>) -> ChildRole {
        // Orphans of our descendants come to us, not to init: we reap ascp and see how it
        // ended. (Not inherited by the child.)
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE, "child")
            .env(CASE, case)
            .env(PROGRAM, program)
            .env(DIR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(port) = ssh_port {
            cmd.env(SSH_PORT, port.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    stderr
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut role = ChildRole {
            child,
            ascp: 0,
            needle: dir.to_str().unwrap().to_owned(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while role.ascp == 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                // The harness may have written on the same line before us.
                Ok(line) => match line.split_once(PID_LINE) {
                    Some((_, pid)) => role.ascp = pid.trim().parse().unwrap(),
                    None => seen.push(line),
                },
                Err(e) => panic!(
                    "no ascp pid from the child ({e}); its stdout:\n{}\nits stderr:\n{}",
                    seen.join("\n"),
                    role.stderr()
                ),
            }
        }
        assert!(alive(role.ascp), "ascp {} is not running", role.ascp);
        assert_eq!(
            stat(role.ascp).map(|(_, ppid)| ppid),
            Some(role.child.id()),
            "ascp is not the child's child"
        );
        role
    }

    /// What the child wrote on stderr so far.
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SIGKILL the child, then watch ascp until it is dead (gone from `/proc`, or a zombie):
    /// the time that took, `None` if it is still alive after `LIMIT`. Then reap the child, and
    /// ascp (re-parented to us) if it died, and check that SIGKILL is what ended it.
    fn kill_and_watch(&mut self) -> Option<Duration> {
        let started = Instant::now();
        self.child.kill().unwrap();
        let took = loop {
            if !alive(self.ascp) {
                break Some(started.elapsed());
            }
            if started.elapsed() > LIMIT {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the child ended otherwise than by our SIGKILL: {status:?}; its stderr:\n{}",
            self.stderr()
        );
        if took.is_some() {
            let pid = Pid::from_raw(self.ascp as i32);
            match waitpid(pid, None) {
                Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => {}
                other => panic!(
                    "ascp {} (re-parented to this subreaper) ended with {other:?}, not by the \
                     parent-death signal SIGKILL",
                    self.ascp
                ),
            }
        }
        took
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test must not leave ascp running either.
        if self.ascp != 0
            && alive(self.ascp)
            && fasp_testkit::cmdline(self.ascp)
                .is_ok_and(|c| c.iter().any(|a| a.to_string_lossy().contains(&self.needle)))
        {
            let pid = Pid::from_raw(self.ascp as i32);
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

fn assert_dies(role: &mut ChildRole, what: &str) {
    let ascp = role.ascp;
    match role.kill_and_watch() {
        Some(took) => println!("{what}: ascp {ascp} dead {took:.1?} after SIGKILL of the manager"),
        None => panic!("{what}: ascp {ascp} still alive {LIMIT:?} after SIGKILL of the manager"),
    }
}

/// ascp-sim mid-transfer (a file started, then stalled): SIGKILL of the manager's process
/// kills it.
#[test]
fn sigkill_of_the_manager_kills_ascp_sim_mid_transfer() {
    let sim = require_sim!();
    let dir = tempfile::tempdir().unwrap();
    let mut role = ChildRole::start("sim", &sim, dir.path(), None);
    assert_dies(&mut role, "ascp-sim mid-transfer");
}

/// The real ascp stuck in SSH negotiation (the SSH port is the parent's, and stays open):
/// SIGKILL of the manager's process kills it.
#[test]
fn sigkill_of_the_manager_kills_the_real_ascp_in_ssh_negotiation() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    // Held by this process, not by the child.
    let silent = SilentSsh::start();
    let mut role = ChildRole::start("real", &ascp, dir.path(), Some(silent.port()));
    assert_dies(&mut role, "real ascp in SSH negotiation");
    drop(silent);
}

/// The parent-death signal is not fired early: the child spawns the real ascp (stuck in SSH
/// negotiation), then its runtime idles for more than 12 s, long enough for tokio to retire
/// its idle blocking-pool threads (10 s). ascp must still be running, and then die within a
/// second of SIGKILL of the manager's process.
#[test]
fn ascp_outlives_retired_runtime_threads_and_dies_with_the_manager() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let silent = SilentSsh::start();
    let mut role = ChildRole::start("real", &ascp, dir.path(), Some(silent.port()));
    let child = role.child.id();
    let spawned_at = Instant::now();
    let before = threads(child);
    let forker = parent_thread(child, role.ascp);
    // Watch ascp while the time passes: if it dies, the parent-death signal fired early.
    let idle = Duration::from_secs(13);
    while spawned_at.elapsed() < idle {
        assert!(
            alive(role.ascp),
            "ascp {} died {:.1?} after it was spawned, its manager still running: the \
             parent-death signal fired early (its forking thread was {forker:?})",
            role.ascp,
            spawned_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = threads(child);
    let retired: Vec<&(u32, String)> = before.iter().filter(|t| !after.contains(t)).collect();
    println!(
        "after {:.1?} idle: ascp {} alive; forked by thread {forker:?}; threads of the \
         manager's process that retired meanwhile: {retired:?}",
        spawned_at.elapsed(),
        role.ascp
    );
    assert!(alive(role.ascp));
    assert_eq!(stat(role.ascp).map(|(_, ppid)| ppid), Some(child));
    assert!(
        !retired.is_empty(),
        "no thread of the manager's process retired in {idle:?}: the test did not exercise \
         the case it is for (threads before: {before:?}, after: {after:?})"
    );
    assert_dies(&mut role, "real ascp after 13 s idle");
    drop(silent);
}
