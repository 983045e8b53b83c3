//! The ascp child process: spawning it so that it dies with us, its environment, signals, and
//! what the kernel says about who holds a management connection.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::core::{Ownership, Sig};

/// Variables an ascp child gets from the manager's environment when they are set: what ascp
/// needs to find its files, resolve names and speak the user's language. Nothing else is
/// inherited (no `FASP_NODE_PASSWORD`, no `AWS_SECRET_ACCESS_KEY`); the spec's secrets, the
/// cookie, [`TransferOptions::inherit_env`](crate::TransferOptions::inherit_env) and
/// [`TransferOptions::env`](crate::TransferOptions::env) are added on top.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];

/// What to start.
pub(crate) struct SpawnRequest {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// The complete environment of the child.
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) handle: tokio::runtime::Handle,
}

type Reply = std::io::Result<Child>;
type Job = (SpawnRequest, std_mpsc::Sender<Reply>);

/// How many spawner threads. One: four were tried (forks in parallel) and started 1,000
/// transfers no faster on two cores, while each thread's malloc arena added about 20 KiB per
/// transfer (docs/benchmarks.md).
const SPAWNERS: usize = 1;

/// Children are spawned by threads that live as long as the process. The parent-death signal
/// is tied to the *thread* that forked the child: spawned from a tokio worker or blocking-pool
/// thread, a child would be killed when that thread is retired (after 10 s idle for the
/// blocking pool), long before the process ends.
fn spawners() -> &'static [Mutex<std_mpsc::Sender<Job>>] {
    static SPAWNER: OnceLock<Vec<Mutex<std_mpsc::Sender<Job>>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        (0..SPAWNERS)
            .filter_map(|i| {
                let (tx, rx) = std_mpsc::channel::<Job>();
                std::thread::Builder::new()
                    .name(format!("fasp-spawner-{i}"))
                    .spawn(move || {
                        for (req, reply) in rx {
                            let _ = reply.send(spawn_here(req));
                        }
                    })
                    .ok()
                    .map(|_| Mutex::new(tx))
            })
            .collect()
    })
}

/// Start a child: its own process group (signals reach what it starts), killed if this
/// process dies (Linux parent-death signal), stdin closed, stdout discarded, stderr piped,
/// exactly the environment given. Blocks the calling thread for the fork and exec only.
pub(crate) fn spawn(req: SpawnRequest) -> std::io::Result<Child> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let spawners = spawners();
    if spawners.is_empty() {
        return Err(std::io::Error::other("cannot start a spawner thread"));
    }
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % spawners.len();
    let (tx, rx) = std_mpsc::channel();
    spawners[i]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((req, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

fn spawn_here(req: SpawnRequest) -> std::io::Result<Child> {
    let _runtime = req.handle.enter();
    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    die_with_parent(&mut cmd);
    let child = cmd.spawn();
    if let Err(e) = &child {
        tracing::debug!(program = ?req.program, error = %e, "fork or exec failed");
    }
    child
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two system
    // calls (prctl, getppid), both async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl: then nobody would kill us.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::other("the manager exited while spawning"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// The environment of a child: [`INHERITED_ENV`] from ours, then `extra` in order (the spec's
/// secrets, the cookie, the caller's variables; a later value replaces an earlier one).
pub(crate) fn child_env(extra: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = INHERITED_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
        .collect();
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// The names of a child's environment variables, for logs: never their values (the token,
/// the cookie and the passwords travel there).
pub(crate) fn env_names(env: &[(OsString, OsString)]) -> Vec<String> {
    env.iter()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect()
}

/// Signal the child's process group. Errors (the group is gone) are ignored: the point is
/// that it stops.
pub(crate) fn signal_group(pid: u32, sig: Sig) {
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }
}

/// A process that descends from the child, as first seen: its pid and its start time (so a
/// pid reused by another process later is never signalled).
pub(crate) type Descendant = (u32, u64);

/// Every process descending from `root` (children, grandchildren, ...), from `/proc`.
pub(crate) fn descendants(root: u32) -> Vec<Descendant> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut by_parent: std::collections::HashMap<u32, Vec<Descendant>> = Default::default();
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if let Some((ppid, start)) = stat_of(pid) {
            by_parent.entry(ppid).or_default().push((pid, start));
        }
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for &(child, start) in by_parent.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push((child, start));
            next.push(child);
        }
    }
    out
}

/// Parent pid and start time (clock ticks since boot) of a process.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name's closing parenthesis: state is field 3, ppid 4,
    // starttime 22.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((rest.get(1)?.parse().ok()?, rest.get(19)?.parse().ok()?))
}

/// Signal the child's process group and every descendant in `known` that is still the same
/// process, and the groups such descendants lead (a wrapper such as GNU `timeout` moves itself
/// and ascp into a group of its own, out of reach of the child's group). `known` is first
/// completed with the descendants alive now.
pub(crate) fn signal_tree(pid: u32, sig: Sig, known: &mut Vec<Descendant>) {
    for d in descendants(pid) {
        if !known.contains(&d) {
            known.push(d);
        }
    }
    signal_group(pid, sig);
    signal_known(sig, known);
}

/// Signal the descendants in `known` that are still the processes first seen.
pub(crate) fn signal_known(sig: Sig, known: &[Descendant]) {
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    for &(d, start) in known {
        if d <= 1 || stat_of(d).map(|(_, s)| s) != Some(start) {
            continue;
        }
        let Ok(raw) = i32::try_from(d) else { continue };
        let _ = nix::sys::signal::kill(Pid::from_raw(raw), signal);
        if nix::unistd::getpgid(Some(Pid::from_raw(raw))).ok() == Some(Pid::from_raw(raw)) {
            let _ = killpg(Pid::from_raw(raw), signal);
        }
    }
}

/// A fresh secret cookie (128 random bits, hex) for `ASPERA_SCP_COOKIE`. ascp echoes it in
/// `INIT`; it is never on a command line.
pub(crate) fn cookie() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(format!("fasp-{}", hex::encode(bytes)))
}

/// Who holds the peer end of a loopback management connection, as far as `/proc` tells.
///
/// The peer's socket appears in `/proc/net/tcp` with the peer's address as its local address.
/// Its inode is looked for among the file descriptors of the child (`pid`), then of every
/// process of its process group (a wrapper such as `timeout` or `strace` forks ascp into the
/// same group). Inode 0 (the peer already closed its socket: a fast ascp that exited) or no
/// `/proc`: [`Ownership::Unknown`].
pub(crate) fn ownership(pid: u32, peer: SocketAddr, ours: SocketAddr) -> Ownership {
    let (SocketAddr::V4(peer), SocketAddr::V4(ours)) = (peer, ours) else {
        return Ownership::Unknown;
    };
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Ownership::Unknown;
    };
    let want_local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(peer.ip().octets()),
        peer.port()
    );
    let want_remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ours.ip().octets()),
        ours.port()
    );
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 9 && cols[1] == want_local && cols[2] == want_remote)
            .then(|| cols[9].to_string())
    });
    let inode = match inode {
        Some(i) if i != "0" => i,
        _ => return Ownership::Unknown,
    };
    let target = format!("socket:[{inode}]");
    if holds(pid, &target) {
        return Ownership::Owned;
    }
    if group_members(pid).into_iter().any(|m| holds(m, &target)) {
        return Ownership::Owned;
    }
    Ownership::Foreign
}

fn holds(pid: u32, target: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target))
}

/// The processes whose process group is `pgid` (other than `pgid` itself).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != pgid)
        .filter(|&pid| {
            // Field 5 of /proc/PID/stat, counted after the command name's closing parenthesis.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

/// `program` as given (for error messages).
pub(crate) fn display(program: &Path) -> String {
    program.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_differ() {
        let a = cookie().unwrap();
        assert!(a.starts_with("fasp-") && a.len() == 37, "{a}");
        assert_ne!(a, cookie().unwrap());
    }

    #[test]
    fn a_connection_from_this_process_is_owned_by_it_and_not_by_pid_1() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(ours).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(ownership(std::process::id(), peer, ours), Ownership::Owned);
        assert_ne!(ownership(1, peer, ours), Ownership::Owned);
    }

    #[test]
    fn the_child_environment_is_minimal() {
        let env = child_env(&[("EXTRA".into(), "1".into()), ("PATH".into(), "/x".into())]);
        assert!(
            env.iter()
                .all(|(k, _)| { INHERITED_ENV.iter().any(|i| k == i) || k == "EXTRA" })
        );
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("PATH".into(), "/x".into())));
    }

    #[test]
    fn env_names_hold_no_value() {
        let env = vec![
            ("ASPERA_SCP_TOKEN".into(), "tok-value-1".into()),
            ("PATH".into(), "/bin".into()),
        ];
        let names = env_names(&env);
        assert_eq!(names, ["ASPERA_SCP_TOKEN", "PATH"]);
        assert!(!format!("{names:?}").contains("tok-value-1"));
    }
}
