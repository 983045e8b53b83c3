//! Looking at processes through `/proc`: command lines, environments, descendants, leftovers.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// One process as seen in `/proc` (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its process id.
    pub pid: u32,
    /// Its parent's process id.
    pub ppid: u32,
    /// The one-letter state from `/proc/<pid>/stat` (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Its arguments, NUL separators replaced by spaces (lossy UTF-8).
    pub cmdline: String,
}

/// Read `/proc/<pid>/stat` and return (state, ppid).
fn stat(pid: u32) -> io::Result<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may itself hold spaces and parentheses: the
    // fields that follow start after the last `)`.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    let mut fields = rest.split_whitespace();
    let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
    let ppid = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    Ok((state, ppid))
}

/// The arguments of a running process, from `/proc/<pid>/cmdline`.
///
/// A process that has exited but not been reaped (a zombie) has an empty command line.
pub fn cmdline(pid: u32) -> io::Result<Vec<OsString>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(split_nul(raw))
}

/// The environment a process was started with, from `/proc/<pid>/environ`.
pub fn environ(pid: u32) -> io::Result<Vec<OsString>> {
    let raw = fs::read(format!("/proc/{pid}/environ"))?;
    Ok(split_nul(raw))
}

fn split_nul(raw: Vec<u8>) -> Vec<OsString> {
    raw.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect()
}

/// A snapshot of every process visible in `/proc`. Processes that vanish while the
/// scan runs are left out.
pub fn all_processes() -> Vec<ProcessInfo> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok((state, ppid)) = stat(pid) else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                let mut s = String::from_utf8_lossy(&raw).replace('\0', " ");
                s.truncate(s.trim_end().len());
                s
            })
            .unwrap_or_default();
        out.push(ProcessInfo {
            pid,
            ppid,
            state,
            cmdline,
        });
    }
    out
}

/// The live descendants of `root` (children, their children, ...), zombies excluded.
pub fn descendants(root: u32) -> Vec<ProcessInfo> {
    let all = all_processes();
    let mut found: Vec<ProcessInfo> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !found.iter().any(|f| f.pid == p.pid) {
                frontier.push(p.pid);
                found.push(p.clone());
            }
        }
    }
    found.retain(|p| p.state != 'Z');
    found
}

/// Processes that look left behind by this test process: alive (not zombies), not this
/// process, whose command line contains `needle`, and that are either descendants of this
/// process or orphans (parent 1, which is what a leaked grandchild becomes once its parent
/// dies).
///
/// Pick a `needle` unique to the test, such as a temporary folder's path: tests of one binary
/// run in parallel threads of the same process, so a needle they share (the ascp path) would
/// also match a sibling test's process that is legitimately still running.
pub fn leftover_processes(needle: &str) -> Vec<ProcessInfo> {
    let me = std::process::id();
    let mine: Vec<u32> = descendants(me).iter().map(|p| p.pid).collect();
    all_processes()
        .into_iter()
        .filter(|p| p.pid != me && p.state != 'Z' && p.cmdline.contains(needle))
        .filter(|p| p.ppid == 1 || mine.contains(&p.pid))
        .collect()
}

/// Panic when [`leftover_processes`] still finds a process after a grace period of a few
/// seconds (processes that were just killed take a moment to disappear).
#[track_caller]
pub fn assert_no_leftover(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftover_processes(needle);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = left
                .iter()
                .map(|p| {
                    format!(
                        "  pid {} (parent {}, {}): {}",
                        p.pid, p.ppid, p.state, p.cmdline
                    )
                })
                .collect();
            panic!(
                "processes matching {needle:?} were left behind:\n{}",
                list.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Send a signal to one process; a process that is already gone is not an error.
pub(crate) fn send_signal(pid: u32, sig: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    match signal::kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Send a signal to a whole process group; a group that is already gone is not an error.
pub(crate) fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| io::Error::other("pid out of range"))?;
    match signal::killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}
