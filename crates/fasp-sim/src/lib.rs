//! # fasp-sim: `ascp-sim`, an ascp emulator for tests
//!
//! **A test double, not IBM Aspera ascp.** `ascp-sim` takes the command line of `ascp` 3.9,
//! speaks the FASPMGR management protocol to the manager on `-M <port>` the way the real
//! ascp does, and really moves bytes: the "remote host" is a folder on this machine, named by
//! the environment variable `ASCP_SIM_ROOT`. `--mode=send` copies local sources into that
//! folder, `--mode=recv` copies from it. It exists because the only real ascp we can install
//! (from IBM's `cos-aspera` package) has a client-only licence and never completes a transfer:
//! everything after session negotiation (STATS, STOP, SKIP, FILEERROR, ARGSTOP, DONE, rate
//! changes, pause, cancel, persistent sessions, crashes) is tested against this emulator.
//!
//! ## Running it
//! ```text
//! ASCP_SIM_ROOT=/tmp/remote ascp-sim -M 33500 --mode=send --user=xfer --host=localhost \
//!     -l 200000 --file-checksum=md5 -- ./big.bin /inbox
//! ```
//! copies `./big.bin` to `/tmp/remote/inbox/big.bin` at 200 Mbit/s, reporting on the
//! management connection to `localhost:33500`: `INIT`, `SESSION`, `STATS` every second,
//! `STOP` (with the MD5 of the bytes written), `ARGSTOP`, `DONE`.
//!
//! ## Command line
//! Every ascp 3.9 option is accepted and parsed the way ascp parses it (see [`parse_args`]):
//! the ones the emulator acts on are `--mode`, `--user`, `--host`, `-P`, `-O`, `-l`, `-m`,
//! `--policy`, `-c`/`-T`, `-i` (the key file must exist), `-W`, `-k`, `--overwrite`, `-d`,
//! `--file-checksum`, `--precalculate-job-size`, `--keepalive`, `-C`, `-Z`, `-g`, `-G`,
//! `--tags`/`--tags64`, `-y`, `-t`, `--file-list`, `--file-pair-list`, `--src-base`,
//! `--source-prefix`, `--remove-after-transfer`, `--remove-empty-directories`,
//! `--remove-empty-source-directory`, `--move-after-transfer`, `--symbolic-links`,
//! `--skip-special-files`, `-p` and the `--preserve-*` time options, `--partial-file-suffix`,
//! `--file-manifest*`, `-E`, `--exclude-newer-than`, `--exclude-older-than`, `-@`, `-M`, `-u`,
//! `-L`, `-q`, `-h`, `-A`, `--`. `-C i:N` gives part `i` every N-th file (the real ascp also
//! splits large files into ranges: not modelled). The others (`-S`, `-w`, `-K`, `-R`, `-e`, `-f`, `-X`, `-x`,
//! `-I`, `-Y`, `--proxy`, `--check-sshfp`, ...) are accepted and have no effect.
//! A bad command line gets ascp's own message on stderr and exit status 1, before any
//! connection (``unrecognized option `--x'``, `ascp: unknown transfer policy turbo`, ...).
//!
//! ## Environment
//! | variable | meaning |
//! |---|---|
//! | `ASCP_SIM_ROOT` | the remote host: a folder. Unset or not a folder: the session fails like an unreachable SSH port (`ERROR` code 44) |
//! | `ASCP_SIM_EXPECT_USER` | the `--user` the remote host accepts; another one fails with code 19 `failed to authenticate` |
//! | `ASCP_SIM_EXPECT_TOKEN` | the token (`ASPERA_SCP_TOKEN` or `-W`) it accepts; otherwise code 19 |
//! | `ASCP_SIM_EXPECT_PASSWORD` | the password (`ASPERA_SCP_PASS`) it accepts; otherwise code 19 |
//! | `ASCP_SIM_STATS_INTERVAL_MS` | STATS interval in milliseconds (default 1000, as ascp) |
//! | `ASCP_SIM_FAULT` | faults to inject, see below |
//! | `ASCP_SIM_TIMESTAMPS` | `1`: stamp frames for latency measurements, see below |
//! | `ASPERA_SCP_TOKEN`, `ASPERA_SCP_PASS`, `ASPERA_SCP_KEY`, `ASPERA_SCP_COOKIE`, `ASPERA_SCP_FILEPASS` | read as ascp reads them: a line feed in the token or cookie ends the session with code 8 (`environment variable ASPERA_SCP_TOKEN must not contain newlines`), the cookie is cut at a CR and echoed in INIT and SESSION |
//!
//! ## Faults
//! `ASCP_SIM_FAULT` holds a comma-separated list of [`Fault`]s:
//!
//! | fault | effect |
//! |---|---|
//! | `exit-before-connect[:CODE]` | exit with `CODE` (default 1) without connecting to the management port |
//! | `connect-delay:SECS` | wait `SECS` before connecting to the management port, then go on normally |
//! | `hang-before-init` | connect, then send nothing and read nothing until killed |
//! | `init-delay:SECS` | after INIT, spend `SECS` in session initiation without reading the socket (a CANCEL waits) |
//! | `crash-after-bytes:N` | abort (SIGABRT) once `N` bytes were written, leaving a partial file |
//! | `close-mgmt-after-bytes:N` | close the management socket at `N` bytes; the next frame fails and ascp-sim exits 1 (`Cannot write to management socket`) |
//! | `malformed-frame[:N]` | write one malformed frame (a line without `": "`) at `N` bytes (default: right after SESSION) |
//! | `stall:SECS[@N]` | no progress for `SECS` from `N` bytes on; STATS go on, controls are read |
//! | `second-session[:CODE]` | as HTTP fallback: INIT and SESSION of a second SessionId on the same connection; the files move in it; the first session then ends with ERROR `CODE` (default 15) |
//! | `query[:WHAT]` | send `QUERY` (`Query: AUTHORIZATION` by default) after SESSION and wait for QUERYRSP; `Denied` ends with code 34 (38 for `LICENSE`) |
//! | `deny-file:NAME` | files named `NAME` fail with FILEERROR code 5, even for root |
//! | `session-error:CODE[@N]` | end the session with ERROR `CODE` at `N` bytes (16 connection lost, 40 stalled...) |
//! | `freeze:SECS[@N]` | from `N` bytes on, write nothing (no STATS) and act on nothing for `SECS`, as a hung ascp; controls read meanwhile act afterwards, signals end it at once |
//!
//! ## What it writes on the management connection
//! INIT right after connecting; SESSION once "negotiated" (the real ascp's keys, order and
//! value formats, reflecting the options); with `--precalculate-job-size` a NOTIFICATION
//! with the `PreTransfer*` counts; per file a STATS when it starts and then every interval
//! (`Written`, `TransferBytes` and `FileBytes` true and never going back), then STOP (with
//! `FileChecksum`/`FileChecksumType` under `--file-checksum`), SKIP (left alone by the
//! overwrite policy) or FILEERROR; ARGSTOP per source argument with its counts; DONE with the
//! totals, or ERROR: 27 when files failed, 28 after CANCEL, 43 for a single unreadable
//! source, 19/44/4/8/23/41/48 for failures before the transfer, as ascp words them.
//!
//! ## Rate control and the manager's controls
//! Bytes go through a token bucket refilled at the current rate, 20 ms worth at a time, so the
//! observed throughput follows `-l` (the tests measure 1 GB at 200 Mbit/s within 1%). The
//! management socket is read by a thread of its own: `RATE` changes the pace at the next
//! chunk and is acknowledged with a NOTIFICATION; `Rate: 0` with `MinRate: 0` pauses (STATS
//! go on); `CANCEL` ends with ERROR 28 and leaves the partial file for a later `-k` run;
//! with `--keepalive`, `START` queues a file (optional `FileBytes` range), `STOP` stops it
//! (answered by its STOP frame) and `DONE` ends the session (`Shutdown` now, `Linger` once
//! the queue is empty). SIGTERM, SIGINT and SIGHUP end the process with status 1 and no
//! frame, as the real ascp does.
//!
//! ## Timestamps for latency measurements
//! With `ASCP_SIM_TIMESTAMPS=1`, every frame ends with a `SimSentUsec` field ([`SENT_FIELD`]):
//! [`monotonic_usec`] read under the socket's lock right before the write, so a receiver on
//! the same machine measures the one-way delay from the frame leaving ascp-sim to it reaching
//! the receiver. The NOTIFICATION that acknowledges a `RATE` also carries `SimCtlReadUsec`
//! ([`CONTROL_READ_FIELD`]): when the read that brought that `RATE` returned, which measures
//! the delay of a control from the manager's caller to ascp-sim. Real ascp writes neither
//! (the manager keeps unknown fields, so they reach its events unchanged).
//!
//! ## Faithful and modelled
//! Checked against the real ascp 3.9 (captures and live runs): the command-line parser and
//! its messages, the management connection and its failure message, INIT and SESSION keys,
//! order and value formats (before and after negotiation), the early ERROR frames (codes 4,
//! 8, 19, 23, 41, 43, 44, 48) with their stdout/stderr lines and exit status. Modelled from
//! IBM's event reference and the field order of ascp's own field table: STATS, STOP, SKIP,
//! FILEERROR, ARGSTOP, DONE, the late ERROR, the rate NOTIFICATION, QUERY, persistent
//! sessions, the overwrite and resume rules. `docs/testing.md` of the repository has the
//! details and the list of tests.

mod checksum;
mod fault;
mod frames;
mod mgmt;
mod options;
mod plan;
mod rate;
mod session;

use std::path::PathBuf;
use std::time::Duration;

pub use fault::{ENV_FAULT, Fault, FaultError, Faults};
pub use options::{
    ChecksumKind, Cipher, Command, DEFAULT_RATE_KBPS, Fallback, FileCrypt, HELP, Mode, Options,
    Overwrite, Policy, SHORT_USAGE, Symlinks, UsageError, parse_args,
};
pub use rate::{Bucket, bytes_per_sec};

/// The folder that plays the remote host.
pub const ENV_ROOT: &str = "ASCP_SIM_ROOT";
/// The only `--user` the remote host accepts (unset: any).
pub const ENV_EXPECT_USER: &str = "ASCP_SIM_EXPECT_USER";
/// The only token the remote host accepts (unset: any).
pub const ENV_EXPECT_TOKEN: &str = "ASCP_SIM_EXPECT_TOKEN";
/// The only password (`ASPERA_SCP_PASS`) the remote host accepts (unset: any).
pub const ENV_EXPECT_PASSWORD: &str = "ASCP_SIM_EXPECT_PASSWORD";
/// STATS interval in milliseconds.
pub const ENV_STATS_INTERVAL_MS: &str = "ASCP_SIM_STATS_INTERVAL_MS";

/// `1` (or `yes`, `true`): stamp frames for latency measurements ([`SENT_FIELD`],
/// [`CONTROL_READ_FIELD`]). Unset, empty, `0`, `no` or `false`: frames are as ascp writes them.
pub const ENV_TIMESTAMPS: &str = "ASCP_SIM_TIMESTAMPS";

/// Under `ASCP_SIM_TIMESTAMPS`, the last field of every frame ascp-sim writes: its
/// [`monotonic_usec`] read just before the frame was written to the management socket.
pub const SENT_FIELD: &str = "SimSentUsec";

/// Under `ASCP_SIM_TIMESTAMPS`, a field of the NOTIFICATION that acknowledges a `RATE`: the
/// [`monotonic_usec`] at which the read that brought the `RATE` frame returned.
pub const CONTROL_READ_FIELD: &str = "SimCtlReadUsec";

/// Microseconds of `CLOCK_MONOTONIC`: one clock for every process of the machine, so a
/// stamp taken by ascp-sim can be compared with one taken by the manager's caller (read
/// the same clock there, e.g. with `clock_gettime(CLOCK_MONOTONIC)`). 0 if it cannot be read.
pub fn monotonic_usec() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// The version line `-A` prints (the real ascp's, with the emulator named).
pub const VERSION: &str =
    "ascp version 3.9.0.163682 (ascp-sim: an ascp emulator for tests, not IBM Aspera ascp)";

/// What ascp-sim reads from its environment.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SimEnv {
    /// `ASCP_SIM_ROOT`.
    pub root: Option<PathBuf>,
    /// `ASCP_SIM_EXPECT_USER`.
    pub expect_user: Option<String>,
    /// `ASCP_SIM_EXPECT_TOKEN`.
    pub expect_token: Option<String>,
    /// `ASCP_SIM_EXPECT_PASSWORD`.
    pub expect_password: Option<String>,
    /// `ASCP_SIM_STATS_INTERVAL_MS` (default 1 s).
    pub stats_interval: Duration,
    /// `ASCP_SIM_FAULT`.
    pub faults: Faults,
    /// `ASCP_SIM_TIMESTAMPS`.
    pub timestamps: bool,
    /// `ASPERA_SCP_TOKEN`.
    pub token: Option<String>,
    /// `ASPERA_SCP_PASS`.
    pub password: Option<String>,
    /// `ASPERA_SCP_COOKIE`.
    pub cookie: Option<String>,
    /// `ASPERA_SCP_FILEPASS`.
    pub file_pass: Option<String>,
}

impl SimEnv {
    /// Read the variables of this process. A bad `ASCP_SIM_FAULT` or
    /// `ASCP_SIM_STATS_INTERVAL_MS` is an error (the run must not silently lose its fault).
    pub fn from_process() -> Result<SimEnv, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let faults =
            Faults::parse(&var(ENV_FAULT).unwrap_or_default()).map_err(|e| e.to_string())?;
        let stats_interval = match var(ENV_STATS_INTERVAL_MS) {
            None => Duration::from_secs(1),
            Some(v) => Duration::from_millis(
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| format!("bad {ENV_STATS_INTERVAL_MS} {v:?}"))?,
            ),
        };
        let timestamps = match var(ENV_TIMESTAMPS).as_deref() {
            None | Some("0" | "no" | "false") => false,
            Some("1" | "yes" | "true") => true,
            Some(v) => return Err(format!("bad {ENV_TIMESTAMPS} {v:?} (1 or 0)")),
        };
        Ok(SimEnv {
            root: std::env::var_os(ENV_ROOT)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            expect_user: var(ENV_EXPECT_USER),
            expect_token: var(ENV_EXPECT_TOKEN),
            expect_password: var(ENV_EXPECT_PASSWORD),
            stats_interval,
            faults,
            timestamps,
            token: var("ASPERA_SCP_TOKEN"),
            password: var("ASPERA_SCP_PASS"),
            cookie: var("ASPERA_SCP_COOKIE"),
            file_pass: var("ASPERA_SCP_FILEPASS"),
        })
    }
}

/// The whole program: parse `args` (without the program name), run, return the exit status.
pub fn main_with_args(args: Vec<String>) -> i32 {
    watch_signals();
    let cmd = match parse_args(&args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("{}", e.message);
            return 1;
        }
    };
    match cmd {
        Command::ShortUsage => {
            print!("{SHORT_USAGE}");
            112
        }
        Command::Help => {
            print!("{HELP}");
            0
        }
        Command::Version => {
            println!("{VERSION}");
            println!("Operating System: Linux");
            println!("License max rate=(unlimited) (emulated)");
            0
        }
        Command::Transfer(o) => match SimEnv::from_process() {
            Ok(env) => session::run(*o, env),
            Err(e) => {
                eprintln!("ascp-sim: {e}");
                1
            }
        },
        #[allow(unreachable_patterns)]
        _ => 1,
    }
}

/// SIGTERM, SIGINT and SIGHUP end the process at once with status 1 and no frame, as the
/// real ascp does (observed during session initiation).
fn watch_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    // Blocked here, so every thread started later has them blocked too and only the
    // watcher receives them.
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if set.wait().is_ok() {
                std::process::exit(1);
            }
        });
}
