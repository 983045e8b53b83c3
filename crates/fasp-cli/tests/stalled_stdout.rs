//! `fasp transfer --json` whose standard output nobody reads (or whose reader goes away):
//! SIGTERM and SIGINT still cancel the transfer promptly, a closed stdout cancels it, ascp is
//! always reaped, and a reader that only pauses still gets every line.
//!
//! Against ascp-sim (the project's ascp emulator), stalled from the first byte on
//! (`ASCP_SIM_FAULT=stall:60@1`) while it sends a STATS frame every 2 ms, so that progress
//! lines fill the pipe within a second. `cargo test --workspace` builds `ascp-sim` first; run
//! alone, these tests skip with a notice when it is missing (with `CI=true` they fail).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::{json_lines, sim_path};

/// A folder with a source file, a "remote" folder and a spec sending the file there.
struct Setup {
    dir: tempfile::TempDir,
    spec: PathBuf,
    remote: PathBuf,
}

fn setup(size: usize, rate_kbps: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::write(local.join("big.bin"), vec![7u8; size]).unwrap();
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": rate_kbps,
        "paths": [{"source": local.join("big.bin").to_str().unwrap()}], "destination_root": "/"
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    Setup {
        dir,
        spec: spec_path,
        remote,
    }
}

/// `fasp transfer --json` against ascp-sim with `fault` (if any), STATS every 2 ms, stdin a
/// pipe kept open by the caller, stdout a pipe, stderr into `stderr.txt` of the setup.
fn spawn(sim: &Path, s: &Setup, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fasp"));
    cmd.args([
        "transfer",
        "--json",
        "--spec",
        s.spec.to_str().unwrap(),
        "--ascp",
        sim.to_str().unwrap(),
    ])
    .env("FASP_ASCP_ENV", "ASCP_SIM_*")
    .env("ASCP_SIM_ROOT", &s.remote)
    .env("ASCP_SIM_STATS_INTERVAL_MS", "2")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(s.dir.path().join("stderr.txt")).unwrap());
    if let Some(f) = fault {
        cmd.env("ASCP_SIM_FAULT", f);
    }
    cmd.spawn().unwrap()
}

fn stderr_of(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.path().join("stderr.txt")).unwrap_or_default()
}

/// The processes whose parent is `pid` (from `/proc/<pid>/task/*/children`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Whether a thread of `pid` is blocked writing to its stdout pipe (through fd 1 or a
/// duplicate of it), which happens once the pipe is full.
fn blocked_writing_stdout(pid: u32) -> bool {
    // write(2)'s number in /proc/<pid>/task/<tid>/syscall.
    let write_nr = if cfg!(target_arch = "aarch64") {
        "64"
    } else {
        "1"
    };
    let Ok(stdout) = std::fs::read_link(format!("/proc/{pid}/fd/1")) else {
        return false;
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        // A running thread reads "running": only a thread asleep in write(fd, ...) matches.
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        let mut words = syscall.split_whitespace();
        if words.next() != Some(write_nr) {
            return false;
        }
        let Some(fd) = words
            .next()
            .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        else {
            return false;
        };
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|l| l == stdout)
    })
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait for `child` to exit, at most `limit`: its status and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, start.elapsed()));
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills what is left if a test fails half-way.
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// The ascp-sim child of `fasp`, once it is there.
fn sim_child(fasp: u32) -> u32 {
    let mut sim = None;
    wait_until("ascp-sim to start", Duration::from_secs(20), || {
        sim = children(fasp).first().copied();
        sim.is_some()
    });
    sim.unwrap()
}

fn cancel_with_stdout_stalled(signal: Signal) {
    let Some(sim) = sim_path() else { return };
    let s = setup(10_000_000, 800_000);
    let mut child = spawn(&sim, &s, Some("stall:60@1"));
    let fasp = child.id();
    let _stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let ascp = sim_child(fasp);
    let mut reaper = Reaper(vec![fasp, ascp]);
    // Nobody reads: progress lines fill the pipe and fasp's write blocks.
    wait_until(
        "fasp to block writing to its full stdout",
        Duration::from_secs(20),
        || blocked_writing_stdout(fasp),
    );
    // Stay blocked a little longer: STATS keep coming.
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(ascp));
    kill(Pid::from_raw(fasp as i32), signal).unwrap();
    let exited = wait_exit(&mut child, Duration::from_secs(5));
    let Some((status, took)) = exited else {
        panic!(
            "fasp did not exit within 5 s of {signal}; stderr: {}",
            stderr_of(&s)
        );
    };
    eprintln!("{signal} with stdout stalled: fasp exited {status} after {took:?}");
    let stderr = stderr_of(&s);
    // Interrupted: 130, as shells report Ctrl-C (docs/cli.md).
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelling"), "{stderr}");
    assert!(stderr.contains("stdout is not being read"), "{stderr}");
    assert!(!alive(ascp), "ascp-sim {ascp} was left running");
    reaper.0.clear();
    // What did reach the pipe is whole JSON lines.
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    let lines = json_lines(&text);
    assert!(lines.len() > 10, "{text}");
    assert_eq!(lines[0]["type"], "spawned", "{text}");
}

#[test]
fn sigterm_cancels_while_stdout_is_stalled() {
    cancel_with_stdout_stalled(Signal::SIGTERM);
}

#[test]
fn sigint_cancels_while_stdout_is_stalled() {
    cancel_with_stdout_stalled(Signal::SIGINT);
}

#[test]
fn a_closed_stdout_cancels_the_transfer() {
    let Some(sim) = sim_path() else { return };
    let s = setup(10_000_000, 800_000);
    let mut child = spawn(&sim, &s, Some("stall:60@1"));
    let fasp = child.id();
    let _stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let ascp = sim_child(fasp);
    let mut reaper = Reaper(vec![fasp, ascp]);
    // Read until the progress lines come, then go away (as `| head` does).
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "stdout ended");
        let v: Value = support::json_line(&line);
        if v["type"] == "file_progress" {
            break;
        }
    }
    let closed = Instant::now();
    drop(stdout);
    let exited = wait_exit(&mut child, Duration::from_secs(5));
    let Some((status, _)) = exited else {
        panic!(
            "fasp did not exit within 5 s of its stdout closing; stderr: {}",
            stderr_of(&s)
        );
    };
    let took = closed.elapsed();
    eprintln!("stdout closed: fasp exited {status} after {took:?}");
    let stderr = stderr_of(&s);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!alive(ascp), "ascp-sim {ascp} was left running");
    reaper.0.clear();
}

/// A reader that stops reading for a while, then reads on, loses only progress samples: every
/// lifecycle line and the outcome come, and the transfer was not held up meanwhile.
#[test]
fn a_reader_that_pauses_gets_every_lifecycle_line_and_the_outcome() {
    let Some(sim) = sim_path() else { return };
    let s = setup(20_000_000, 80_000);
    let mut child = spawn(&sim, &s, None);
    let fasp = child.id();
    let _stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reaper = Reaper(vec![fasp]);
    // 20 MB at 80 Mbit/s: about 2 s, a progress line every 2 ms: far more than the pipe
    // holds. The transfer ends while nobody reads.
    wait_until(
        "the transfer to end while stdout is stalled",
        Duration::from_secs(20),
        || {
            std::fs::metadata(s.remote.join("big.bin")).is_ok_and(|m| m.len() == 20_000_000)
                && children(fasp).is_empty()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut text = String::new();
    BufReader::new(stdout).read_to_string(&mut text).unwrap();
    let (status, _) = wait_exit(&mut child, Duration::from_secs(5)).expect("fasp exits");
    reaper.0.clear();
    assert!(status.success(), "{}\n{text}", stderr_of(&s));
    let lines = json_lines(&text);
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    for t in [
        "spawned",
        "connected",
        "session_init",
        "session_started",
        "file_started",
        "file_done",
        "session_done",
        "exited",
    ] {
        assert_eq!(
            types.iter().filter(|x| **x == t).count(),
            1,
            "{t} in {types:?}"
        );
    }
    assert!(!types.contains(&"lagged"), "{types:?}");
    // Progress samples were coalesced while nobody read, and the lines say how many.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "file_progress" && l["coalesced"].as_u64() > Some(0)),
        "no coalesced progress sample: {types:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "outcome");
    assert_eq!(last["ok"], true);
    assert_eq!(last["bytes"], 20_000_000);
}

/// With a reader that reads, SIGTERM still ends with the outcome line: cancelled, code 28.
#[test]
fn sigterm_with_a_reader_ends_with_the_cancelled_outcome() {
    let Some(sim) = sim_path() else { return };
    let s = setup(10_000_000, 800_000);
    let mut child = spawn(&sim, &s, Some("stall:60@1"));
    let fasp = child.id();
    let _stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let ascp = sim_child(fasp);
    let mut reaper = Reaper(vec![fasp, ascp]);
    let mut lines = Vec::new();
    let mut signalled = None;
    for line in stdout.lines() {
        let v: Value = support::json_line(&line.unwrap());
        if signalled.is_none() && v["type"] == "file_progress" {
            kill(Pid::from_raw(fasp as i32), Signal::SIGTERM).unwrap();
            signalled = Some(Instant::now());
        }
        lines.push(v);
    }
    let (status, _) = wait_exit(&mut child, Duration::from_secs(5)).expect("fasp exits");
    let took = signalled.expect("progress came").elapsed();
    eprintln!("SIGTERM with a reader: fasp exited {status} after {took:?}");
    assert!(took < Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&s));
    assert!(!alive(ascp), "ascp-sim {ascp} was left running");
    reaper.0.clear();
    assert!(lines.iter().any(|l| l["type"] == "exited"), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "outcome", "{lines:?}");
    assert_eq!(last["ok"], false);
    assert_eq!(last["code"], 28);
    assert_eq!(last["exit"], 130);
    assert_eq!(last["interrupted"], true);
}
