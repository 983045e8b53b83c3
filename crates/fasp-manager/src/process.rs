//! The ascp child process: spawning it, its stderr, signals, and proving that a management
//! connection comes from it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Bytes of stderr kept for error reports.
const STDERR_TAIL: usize = 8 * 1024;

/// The last bytes ascp wrote on stderr (and a flag set when the stream ended).
#[derive(Debug, Default, Clone)]
pub(crate) struct StderrTail(Arc<Mutex<(VecDeque<u8>, bool)>>);

impl StderrTail {
    pub(crate) fn text(&self) -> String {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, _) = &*guard;
        String::from_utf8_lossy(&bytes.iter().copied().collect::<Vec<u8>>())
            .trim_end()
            .to_string()
    }

    pub(crate) fn closed(&self) -> bool {
        self.0.lock().map(|g| g.1).unwrap_or(true)
    }

    fn push(&self, data: &[u8]) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let buf = &mut guard.0;
        buf.extend(data);
        while buf.len() > STDERR_TAIL {
            buf.pop_front();
        }
    }

    fn close(&self) {
        if let Ok(mut g) = self.0.lock() {
            g.1 = true;
        }
    }
}

/// Environment variables ascp reads secrets from: never inherited from our own environment,
/// only set from the transfer spec.
const ASCP_SECRET_VARS: &[&str] = &[
    "ASPERA_SCP_TOKEN",
    "ASPERA_SCP_PASS",
    "ASPERA_SCP_KEY",
    "ASPERA_SCP_COOKIE",
    "ASPERA_SCP_FILEPASS",
    "ASPERA_PROXY_PASS",
    "ASPERA_SCP_PROXY_AUTH_USER",
    "ASPERA_SCP_PROXY_AUTH_PASSWORD",
];

/// Start ascp: `-M <port> -u <nonce>` first, then the rendered arguments. Its own process
/// group (so that signals reach anything it starts), killed if the handle is dropped, stdin
/// closed, stdout discarded, stderr kept in `tail`.
pub(crate) fn spawn(
    program: &std::path::Path,
    args: &[OsString],
    env: &[(String, String)],
    port: u16,
    nonce: &str,
    tail: &StderrTail,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.arg("-M")
        .arg(port.to_string())
        .arg("-u")
        .arg(nonce)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    for var in ASCP_SECRET_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    if let Some(mut stderr) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => tail.push(&buf[..n]),
                }
            }
            tail.close();
        });
    }
    Ok(child)
}

/// Send a signal to ascp's process group (ascp and anything it started). Errors (the group is
/// gone) are ignored: the point is that it stops.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// A fresh random nonce for `-u`, echoed by ascp as `UserStr`.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !from_urandom {
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_u32(std::process::id());
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    let mut s = String::from("fasp-");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Whether the peer of a management connection is a socket held by process `pid`.
///
/// Linux: the peer's end of a loopback connection appears in `/proc/net/tcp` with the peer's
/// address as its local address; its inode must be among `/proc/<pid>/fd`. `None` when this
/// cannot be told (no `/proc`), in which case the `UserStr` nonce is the only check.
pub(crate) fn connection_is_from(pid: u32, peer: SocketAddr, ours: SocketAddr) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (SocketAddr::V4(peer), SocketAddr::V4(ours)) = (peer, ours) else {
        return Some(false);
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
    let Some(inode) = inode else {
        // The peer's socket is not in this network namespace's table: not a local process
        // we can see, so not our child.
        return Some(false);
    };
    let target = format!("socket:[{inode}]");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ() {
        let a = nonce();
        assert!(a.starts_with("fasp-") && a.len() == 37, "{a}");
        assert_ne!(a, nonce());
    }

    #[test]
    fn a_connection_from_this_process_is_not_from_another() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(ours).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        // This test process holds the client socket.
        assert_eq!(
            connection_is_from(std::process::id(), peer, ours),
            Some(true)
        );
        // pid 1 does not.
        assert!(!connection_is_from(1, peer, ours).unwrap_or(false));
    }
}
