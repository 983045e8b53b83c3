//! Test support for fasp-rs: drive the **real** IBM `ascp` 3.9.0 (installed by
//! `cargo xtask ascp` from the `cos-aspera` wheel) against local stand-ins, and capture
//! everything it does.
//!
//! Not published; other crates use it as a dev-dependency for their real-ascp tier.
//!
//! # What is here
//! - [`real_ascp`] / [`require_real_ascp!`]: the binary named by `FASP_ASCP`, or a skip
//!   (outside CI) / a panic (with `CI=true` or `CI=1`: that tier must run in CI).
//! - [`AscpInvocation`], [`MgmtCapture`], [`run_ascp`]: run ascp with `-M <port>` pointing at
//!   a loopback listener bound before the spawn, a clean environment, a timeout, and get
//!   back an [`AscpRun`] (exit status, stdout, stderr, raw management bytes). Or
//!   [`AscpInvocation::spawn`] an [`AscpProcess`] and look at it while it runs
//!   (`/proc/<pid>/cmdline`, `/proc/<pid>/environ`, management bytes so far, signals).
//!   Frames are not parsed here: that is `fasp-mgmt-proto`'s job.
//! - [`SshServer`] / [`require_ssh_server!`]: a private OpenSSH server on loopback that the
//!   real ascp can log in to with a generated PEM key.
//! - [`HttpCapture`]: a loopback HTTP listener recording what ascp's HTTP fallback sends.
//! - [`assert_no_leftover`]: no process left behind.
//! - [`sim`] and [`require_sim!`]: ascp-sim, the emulator, for the test crates that drive it
//!   (finding the binary, a work folder with `local/` and `remote/`, STATS series).
//!
//! # What the real ascp 3.9.0 does (observed with this kit)
//! All of these finish in well under a second on loopback.
//! - **Bad option** (`--x`): exit status 1 without connecting to the management port;
//!   stderr is ``unrecognized option `--x'`` (backtick and quote, GNU getopt style).
//! - **Closed SSH port** (`--mode=send`): INIT, SESSION, then ERROR `Code: 44`,
//!   `Description: Failed to open TCP connection for SSH`; exit status 1; stderr
//!   `ascp: Failed to open TCP connection for SSH, exiting.`; stdout
//!   `Session Stop  (Error: Failed to open TCP connection for SSH)`.
//! - **Wrong key**: ERROR `Code: 19`, `Description: failed to authenticate`; exit 1;
//!   stderr `ascp: failed to authenticate, exiting.`
//! - **Login works** (the remote side is the same client-licensed ascp, via `-S`): ERROR
//!   `Code: 38`, `Description: Server aborted session: Server has only a client license`;
//!   exit 1; stderr empty.
//! - **HTTP fallback** (`-y F -t <port> -T`, token in `ASPERA_SCP_TOKEN`): ascp writes INIT
//!   and SESSION for the first session, then INIT and SESSION (with `Token: <token>`, in
//!   clear) for a second, HTTP session, on the same management connection. It then sends,
//!   on fresh connections, `POST http://127.0.0.1:<port>/aspera/http/<session id>/session_start/OOB/<uuid>.ashttp HTTP/1.1`
//!   (absolute-form target, `User-Agent: Aspera FASP HTTP Client`,
//!   `x-session-protocol-version: 1`, `x-next-wire-file: <source>`, ...) whose body is a small
//!   XML document, and then a `session_end` POST with the error and statistics.
//!   **The token travels verbatim in the body of `session_start`, as `<token>TOKEN</token>`**:
//!   not in a header, not base64-encoded by ascp, and not XML-escaped either (`<`, `&` and
//!   `"` appear raw). A `403` answer makes both sessions end with `Code: 5`,
//!   `Description: Error establishing HTTP session.  Refused by server` (two spaces); stdout
//!   says `Failed to create HTTP session on server!`. With nothing listening on the HTTP
//!   port the code is 47. With `-y 1` and a closed SSH port, ascp falls back to HTTP without
//!   an ERROR for the SSH session first.
//! - A line break in `ASPERA_SCP_TOKEN`: ERROR `Code: 8`,
//!   `environment variable ASPERA_SCP_TOKEN must not contain newlines`, exit 1.
//! - **SIGTERM during session initiation** (remote side held by a sleeping `-S` script):
//!   ascp exits at once with status 1, after INIT only: no ERROR frame, stdout and stderr
//!   empty.
//! - Logs: with no `-L` ascp writes no log file under `~/.aspera` or `/var/log` here; with
//!   `-L <dir>` it writes `aspera-scp-transfer.log` there (the SSH failure reasons, e.g.
//!   `TCP connect failed, err=111`, are only in that log). It reads `aspera.conf` beside the
//!   binary. It runs without `HOME`.

mod ascp;
mod http;
mod procs;
pub mod sim;
mod sshd;
pub mod tls;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub use ascp::{AscpInvocation, AscpProcess, AscpRun, DEFAULT_TIMEOUT, MgmtCapture, run_ascp};
pub use http::{FORBIDDEN, HttpCapture, HttpRequest};
pub use nix::sys::signal::Signal;
pub use procs::{
    ProcessInfo, all_processes, assert_no_leftover, cmdline, descendants, environ,
    leftover_processes,
};
pub use sshd::{DEFAULT_SSHD, SshServer, free_port, sshd_path};

/// The environment variable holding the path of the real ascp.
pub const ASCP_ENV: &str = "FASP_ASCP";

/// Whether this is a CI run (`CI` is `true` or `1`), where the real-ascp tier must not skip.
pub fn ci_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Outside CI print a skip notice and return `None`; in CI panic with `reason`.
fn skip_or_panic<T>(what: &str, reason: &str) -> Option<T> {
    if ci_required() {
        panic!("CI requires {what}, but {reason}; `cargo xtask ascp` installs it");
    }
    eprintln!("skipping: {what} not available ({reason}; `cargo xtask ascp` installs it)");
    None
}

/// The real ascp named by `FASP_ASCP`, when it is an executable file.
///
/// When it is not: with `CI=true` (or `1`) this panics, saying that CI requires the real
/// ascp and that `cargo xtask ascp` installs it; otherwise it prints
/// `skipping: real ascp not installed (cargo xtask ascp)` to stderr and returns `None`.
/// A relative path is taken from the current folder (which `cargo test` sets to the
/// crate's folder): prefer an absolute one, as `cargo xtask test` passes.
pub fn real_ascp() -> Option<PathBuf> {
    let Some(value) = std::env::var_os(ASCP_ENV).filter(|v| !v.is_empty()) else {
        if ci_required() {
            panic!(
                "CI requires the real ascp, but {ASCP_ENV} is not set; \
                 `cargo xtask ascp` installs it and `cargo xtask test` sets {ASCP_ENV}"
            );
        }
        eprintln!("skipping: real ascp not installed (cargo xtask ascp)");
        return None;
    };
    let path = PathBuf::from(value);
    let executable =
        std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if executable {
        Some(path)
    } else {
        skip_or_panic(
            "the real ascp",
            &format!("{ASCP_ENV}={} is not an executable file", path.display()),
        )
    }
}

/// A started [`SshServer`], or a skip (outside CI) / panic (in CI) when sshd is missing.
///
/// A server that is installed but fails to start is a failure everywhere: this panics with
/// the error, which carries sshd's log.
pub fn ssh_server() -> Option<SshServer> {
    let sshd = sshd_path();
    if !sshd.is_file() {
        return skip_or_panic(
            "an OpenSSH server",
            &format!("{} is missing (package openssh-server)", sshd.display()),
        );
    }
    match SshServer::start() {
        Ok(server) => Some(server),
        Err(e) => panic!("cannot start the test sshd: {e}"),
    }
}

/// Evaluate to the real ascp's path, or `return` from the enclosing test after printing
/// a skip notice (panics in CI instead; see [`real_ascp`]).
#[macro_export]
macro_rules! require_real_ascp {
    () => {
        match $crate::real_ascp() {
            ::std::option::Option::Some(path) => path,
            ::std::option::Option::None => return,
        }
    };
}

/// Evaluate to a started [`SshServer`], or `return` from the enclosing test after printing a
/// skip notice (panics in CI instead; see [`ssh_server`]).
#[macro_export]
macro_rules! require_ssh_server {
    () => {
        match $crate::ssh_server() {
            ::std::option::Option::Some(server) => server,
            ::std::option::Option::None => return,
        }
    };
}

/// The name of the user running the tests (from the password database, by effective uid).
pub fn current_user() -> io::Result<String> {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.name),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("uid {uid} has no entry in the password database"),
        )),
        Err(e) => Err(io::Error::from(e)),
    }
}
