//! The manager against the real ascp 3.9.0 (from cos-aspera) and a private OpenSSH server.
//! Skipped on a developer machine without `FASP_ASCP`; with `CI=true` they must run.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fasp_manager::{Event, EventKind, Manager, TransferError, TransferOptions};
use fasp_spec::TransferSpec;
use fasp_testkit::{assert_no_leftover, require_real_ascp, require_ssh_server};
use futures::StreamExt;
use support::{
    Reader, Recorder, SilentSsh, collect, pids, source_file, ssh_upload, write_executable,
};

/// A port with nothing listening that nothing else can take while `_hold` lives: the client
/// end of an open loopback connection.
struct ClosedPort {
    port: u16,
    _hold: (std::net::TcpStream, std::net::TcpStream),
}

fn closed_port() -> ClosedPort {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    ClosedPort {
        port: c.local_addr().unwrap().port(),
        _hold: (c, s),
    }
}

/// A stand-in "ascp" that runs the real one with extra arguments first (and optionally
/// sleeps before), so tests can add `-S`, a bad option, or time to interfere.
fn wrapper(dir: &Path, real: &Path, extra: &str, sleep: Option<&str>) -> PathBuf {
    let p = dir.join("ascp-wrapper");
    let sleep = sleep.map(|s| format!("sleep {s}\n")).unwrap_or_default();
    let exec = format!("exec '{}' {extra} \"$@\"", real.display());
    write_executable(&p, &format!("#!/bin/sh\n{sleep}{exec}\n"));
    p
}

/// `/proc/<pid>/cmdline` once the process runs its new program (it holds `-M`).
fn read_exec_cmdline(pid: u32) -> Vec<u8> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if c.windows(4).any(|w| w == b"\0-M\0") || Instant::now() > until {
            return c;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An "ascp" whose remote side (run by the private sshd through `-S`) sleeps, so that the
/// session stays in initiation, where a real ascp does not read its management socket; and an
/// upload spec that reaches it.
fn held_in_initiation(
    sshd: &fasp_testkit::SshServer,
    dir: &Path,
    ascp: &Path,
) -> (PathBuf, TransferSpec) {
    let stall = sshd
        .write_remote_script("slow-remote-ascp", "#!/bin/sh\nsleep 60\n")
        .unwrap();
    let fake = wrapper(dir, ascp, &format!("-S '{}'", stall.display()), None);
    let spec = ssh_upload(sshd.port(), &source_file(dir), sshd.user())
        .ssh_private_key_path(sshd.client_key_path().to_str().unwrap())
        .build()
        .unwrap();
    (fake, spec)
}

/// Read events until the first INIT (20 s at most): the INIT event.
async fn wait_for_init(events: &mut Reader) -> Event {
    events
        .until(Duration::from_secs(20), "INIT", |e| {
            matches!(e.kind, EventKind::SessionInit { .. })
        })
        .await
}

/// Options that record every event through the listener interface.
fn options(rec: &Recorder) -> TransferOptions {
    rec.attach(TransferOptions::default())
}

fn fasp_code(r: &Result<fasp_manager::Summary, TransferError>) -> Option<u64> {
    match r {
        Err(e) => e.code(),
        Ok(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_fails_with_44_after_init_and_session() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let spec = ssh_upload(port.port, &source_file(dir.path()), "xfer")
        .build()
        .unwrap();
    let rec = Recorder::default();
    // The manager must outlive its transfers: dropping it cancels them.
    let manager = Manager::with_ascp(&ascp);
    let mut t = manager.start(&spec, options(&rec)).unwrap();
    let collector = collect(t.events());
    let result = t.wait().await;
    let err = result.as_ref().unwrap_err();
    assert_eq!(fasp_code(&result), Some(44), "{err}");
    let TransferError::Fasp {
        meaning,
        retryable,
        description,
        session_id,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*meaning, Some("UDP session initiation fatal error"));
    assert!(*retryable);
    assert_eq!(description, "Failed to open TCP connection for SSH");
    // The stream and the listener saw the same events, in order.
    let streamed = collector.await.unwrap();
    let kinds: Vec<EventKind> = streamed.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds, rec.kinds());
    let names: Vec<&str> = kinds
        .iter()
        .map(|k| match k {
            EventKind::Spawned { .. } => "spawned",
            EventKind::Connected => "connected",
            EventKind::SessionInit { .. } => "init",
            EventKind::SessionStarted(_) => "session",
            EventKind::SessionFailed { .. } => "failed",
            EventKind::Exited { .. } => "exited",
            _ => "other",
        })
        .collect();
    assert_eq!(
        &names[..5],
        ["spawned", "connected", "init", "session", "failed"],
        "{kinds:?}"
    );
    let sid = streamed.iter().find_map(|e| e.session_id.clone()).unwrap();
    assert_eq!(session_id.as_deref(), Some(&*sid));
    let EventKind::SessionStarted(info) = &kinds[3] else {
        panic!()
    };
    assert_eq!(info.tcp_port, Some(u64::from(port.port)));
    assert_eq!(info.user.as_deref(), Some("xfer"));
    assert_eq!(info.sources.len(), 1);
    assert_no_leftover(dir.path().to_str().unwrap());
}

/// The token and the cookie are in ascp's environment, never on its command line (readable by
/// every local user in /proc), and the command line has no `-u`: the management connection is
/// proven by the cookie, not by a value on argv. Nothing else of ours reaches ascp's
/// environment. ascp is held in SSH negotiation by a server that never answers, so that /proc
/// can be read while it runs; then the transfer is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_cookie_are_in_the_environment_never_on_the_command_line() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let silent = SilentSsh::start();
    let port = silent.port();
    let token = "ATM3_manager_test_token_9f8e7d";
    let spec = ssh_upload(port, &source_file(dir.path()), "xfer")
        .token(token)
        .build()
        .unwrap();
    let opts = TransferOptions::default()
        .with_cancel_graces(Duration::from_millis(300), Duration::from_millis(300));
    let manager = Manager::with_ascp(&ascp);
    let mut t = manager.start(&spec, opts).unwrap();
    let mut events = Reader::new(t.events());
    let pid = events.spawned(Duration::from_secs(20)).await;
    let cmdline = read_exec_cmdline(pid);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&cmdline, token), "token on the command line");
    assert!(
        has(&environ, &format!("ASPERA_SCP_TOKEN={token}")),
        "token not in ascp's environment"
    );
    assert!(
        has(&environ, "ASPERA_SCP_COOKIE=fasp-"),
        "no cookie in ascp's environment"
    );
    assert!(
        !has(&cmdline, cookie_of(&environ)),
        "cookie on the command line"
    );
    assert!(!has(&cmdline, "\0-u\0"), "a -u value on the command line");
    let shown = format!("{t:?} {:?}", t.controller());
    assert!(
        !shown.contains(cookie_of(&environ)) && !shown.contains(token),
        "a secret in Debug output: {shown}"
    );
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            std::str::from_utf8(kv)
                .ok()?
                .split_once('=')
                .map(|(k, _)| k.to_owned())
        })
        .collect();
    for name in &names {
        assert!(
            name.starts_with("ASPERA_SCP_") || fasp_manager_inherited(name),
            "{name} reached ascp's environment"
        );
    }
    t.control().cancel().await.unwrap();
    let result = t.wait().await;
    assert!(
        matches!(result, Err(TransferError::Cancelled { .. })),
        "{result:?}"
    );
    assert!(!format!("{result:?}").contains(token));
    drop(silent);
}

fn cookie_of(environ: &[u8]) -> &str {
    environ
        .split(|b| *b == 0)
        .find_map(|kv| {
            std::str::from_utf8(kv)
                .ok()?
                .strip_prefix("ASPERA_SCP_COOKIE=")
        })
        .expect("a cookie")
}

fn fasp_manager_inherited(name: &str) -> bool {
    fasp_manager::INHERITED_ENV.contains(&name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_option_fails_fast_with_ascps_stderr() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let fake = wrapper(dir.path(), &ascp, "--x", None);
    let spec = ssh_upload(22, &source_file(dir.path()), "xfer")
        .build()
        .unwrap();
    let started = Instant::now();
    let result = Manager::with_ascp(&fake)
        .start(&spec, TransferOptions::default())
        .unwrap()
        .wait()
        .await;
    let took = started.elapsed();
    match result {
        Err(TransferError::ExitedBeforeConnecting { status, stderr }) => {
            assert_eq!(status.code(), Some(1));
            assert!(stderr.contains("unrecognized option"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}: the manager must watch the child, not wait for a timeout"
    );
    assert_no_leftover(dir.path().to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_connection_to_the_management_port_is_refused() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    // The wrapper waits a second before starting ascp: time for an intruder to connect.
    let fake = wrapper(dir.path(), &ascp, "", Some("1"));
    let port = closed_port();
    let spec = ssh_upload(port.port, &source_file(dir.path()), "xfer")
        .build()
        .unwrap();
    let intruder: Arc<Mutex<Option<std::net::TcpStream>>> = Arc::default();
    let i = intruder.clone();
    let rec = Recorder::default();
    let opts = options(&rec).with_listener(Arc::new(move |e: &Event| {
        if let EventKind::Spawned { pid } = e.kind {
            let cmdline = read_exec_cmdline(pid);
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let mport: u16 = args[args.iter().position(|a| a == "-M").unwrap() + 1]
                .parse()
                .unwrap();
            let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).unwrap();
            let _ = s.write_all(b"FASPMGR 2\nType: INIT\nUserStr: guess\n\n");
            *i.lock().unwrap() = Some(s);
        }
    }));
    let result = Manager::with_ascp(&fake)
        .start(&spec, opts)
        .unwrap()
        .wait()
        .await;
    assert_eq!(fasp_code(&result), Some(44), "{result:?}");
    let kinds = rec.kinds();
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::ForeignConnectionRejected { .. })),
        "{kinds:?}"
    );
    let connected = kinds
        .iter()
        .position(|k| *k == EventKind::Connected)
        .unwrap();
    let rejected = kinds
        .iter()
        .position(|k| matches!(k, EventKind::ForeignConnectionRejected { .. }))
        .unwrap();
    assert!(rejected < connected);
    // The intruder's connection was closed by the manager.
    let mut s = intruder.lock().unwrap().take().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut s, &mut buf).unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_outcomes_license_abort_wrong_key_missing_source() {
    let ascp = require_real_ascp!();
    let sshd = require_ssh_server!();
    let dir = tempfile::tempdir().unwrap();
    let src = source_file(dir.path());
    let remote = wrapper(dir.path(), &ascp, &format!("-S '{}'", ascp.display()), None);
    let base = || {
        ssh_upload(sshd.port(), &src, sshd.user())
            .ssh_private_key_path(sshd.client_key_path().to_str().unwrap())
    };
    let m = Manager::with_ascp(&remote);

    // A real login: negotiation succeeds, then the client-only licence aborts it.
    let rec = Recorder::default();
    let r = m
        .start(&base().build().unwrap(), options(&rec))
        .unwrap()
        .wait()
        .await;
    assert_eq!(fasp_code(&r), Some(38), "{r:?}");
    assert!(!r.as_ref().unwrap_err().is_retryable());
    assert!(
        rec.kinds()
            .iter()
            .any(|k| matches!(k, EventKind::SessionStarted(_)))
    );

    // A key the server does not know.
    let wrong = sshd.unauthorized_key().unwrap();
    let spec = base()
        .ssh_private_key_path(wrong.to_str().unwrap())
        .build()
        .unwrap();
    let r = m
        .start(&spec, TransferOptions::default())
        .unwrap()
        .wait()
        .await;
    assert_eq!(fasp_code(&r), Some(19), "{r:?}");
    assert!(matches!(
        &r,
        Err(TransferError::Fasp {
            meaning: Some("authentication failure"),
            ..
        })
    ));

    // A source that does not exist.
    let spec = ssh_upload(sshd.port(), &dir.path().join("does-not-exist"), sshd.user())
        .ssh_private_key_path(sshd.client_key_path().to_str().unwrap())
        .build()
        .unwrap();
    let r = m
        .start(&spec, TransferOptions::default())
        .unwrap()
        .wait()
        .await;
    assert_eq!(fasp_code(&r), Some(43), "{r:?}");
    assert_no_leftover(dir.path().to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_initiation_escalates_and_leaves_nothing() {
    let ascp = require_real_ascp!();
    let sshd = require_ssh_server!();
    let dir = tempfile::tempdir().unwrap();
    let (fake, spec) = held_in_initiation(&sshd, dir.path(), &ascp);
    let opts = TransferOptions::default()
        .with_cancel_graces(Duration::from_secs(1), Duration::from_secs(1));
    let manager = Manager::with_ascp(&fake);
    let mut t = manager.start(&spec, opts).unwrap();
    let mut events = Reader::new(t.events());
    // Wait until the session has begun (INIT), then give it a moment in initiation.
    wait_for_init(&mut events).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    t.control().cancel().await.unwrap();
    let result = t.wait().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    match result {
        Err(TransferError::Cancelled { forced }) => {
            assert!(forced, "a real ascp in initiation ignores CANCEL")
        }
        other => panic!("{other:?}"),
    }
    assert_no_leftover(dir.path().to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_manager_or_the_transfer_stops_and_reaps_ascp() {
    let ascp = require_real_ascp!();
    let sshd = require_ssh_server!();
    let dir = tempfile::tempdir().unwrap();
    let (fake, spec) = held_in_initiation(&sshd, dir.path(), &ascp);
    let needle = dir.path().to_str().unwrap().to_owned();
    let opts = || {
        TransferOptions::default()
            .with_cancel_graces(Duration::from_millis(300), Duration::from_millis(300))
    };
    let alive = |needle: &str| !fasp_testkit::leftover_processes(needle).is_empty();

    // Drop the transfer handle.
    let manager = Manager::with_ascp(&fake);
    let mut t = manager.start(&spec, opts()).unwrap();
    let mut events = Reader::new(t.events());
    wait_for_init(&mut events).await;
    assert!(alive(&needle), "ascp should be running");
    drop(t);
    assert_no_leftover(&needle);

    // Drop the manager while a transfer runs.
    let mut t = manager.start(&spec, opts()).unwrap();
    let mut events = Reader::new(t.events());
    wait_for_init(&mut events).await;
    assert!(alive(&needle));
    drop(manager);
    let result = t.wait().await;
    assert!(
        matches!(result, Err(TransferError::Cancelled { .. })),
        "{result:?}"
    );
    assert_no_leftover(&needle);
}

/// How many times each repetition test runs its scenario: `FASP_REPEAT`, 100 by default.
fn repetitions() -> usize {
    match std::env::var("FASP_REPEAT") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FASP_REPEAT={v:?} is not a count")),
        Err(_) => 100,
    }
}

/// Transfers the repetition tests start at once (then wait for all of them).
const BATCH: usize = 8;

/// What the repetitions of one scenario gave.
#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    /// Outcomes other than `TransferError::Fasp` with the expected code.
    wrong: usize,
    /// The first few wrong outcomes, with their events.
    examples: Vec<String>,
    /// `ForeignConnectionRejected` events, over all runs.
    foreign: usize,
    elapsed: Duration,
    /// Each run's time from `start` to the outcome, sorted.
    durations: Vec<Duration>,
}

/// Run `spec` `n` times, `BATCH` transfers at once, and count the outcomes that are not
/// `TransferError::Fasp { code, .. }` and the connections refused as foreign. Every run's
/// events are read to their end alongside its outcome.
async fn repeat(manager: &Manager, spec: &TransferSpec, code: u64, n: usize) -> Tally {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        left -= k;
        let batch: Vec<_> = (0..k)
            .map(|_| {
                let at = Instant::now();
                let started = manager.start(spec, TransferOptions::default());
                async move {
                    let mut t = match started {
                        Ok(t) => t,
                        Err(e) => return (Err(e), Vec::new(), at.elapsed()),
                    };
                    let events = t.events();
                    let (result, events) = futures::join!(t.wait(), events.collect::<Vec<Event>>());
                    (result, events, at.elapsed())
                }
            })
            .collect();
        for (result, events, took) in futures::future::join_all(batch).await {
            tally.runs += 1;
            tally.durations.push(took);
            tally.foreign += events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::ForeignConnectionRejected { .. }))
                .count();
            let right = matches!(&result, Err(TransferError::Fasp { code: c, .. }) if *c == code);
            if !right {
                tally.wrong += 1;
                if tally.examples.len() < 5 {
                    let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
                    tally
                        .examples
                        .push(format!("{result:?}\n    events: {kinds:?}"));
                }
            }
        }
    }
    tally.elapsed = started.elapsed();
    tally.durations.sort();
    tally
}

fn report(what: &str, code: u64, t: &Tally) {
    let at = |q: f64| {
        let i = ((t.durations.len() as f64 - 1.0) * q).round() as usize;
        t.durations.get(i).copied().unwrap_or_default()
    };
    println!(
        "{what}: {} runs, {BATCH} at a time, in {:.1?}: {} outcomes other than code {code}, \
         {} foreign connections rejected; per run: median {:.0?}, p99 {:.0?}, max {:.0?}",
        t.runs,
        t.elapsed,
        t.wrong,
        t.foreign,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    assert_eq!(t.runs, repetitions());
    assert!(
        t.wrong == 0 && t.foreign == 0,
        "{what}: {} wrong outcomes and {} foreign connections rejected in {} runs; first ones:\n  {}",
        t.wrong,
        t.foreign,
        t.runs,
        t.examples.join("\n  ")
    );
}

/// A fast failure, again and again and several at once: ascp connects, writes INIT, SESSION
/// and ERROR 44 and exits within milliseconds, often before the manager has looked in /proc
/// for who holds the connection. Every run must still be adopted (by the kernel's word or by
/// the cookie in INIT) and end with code 44; none may be reported as a foreign connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_closed_port_always_fails_with_44_and_never_sees_a_stranger() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let spec = ssh_upload(port.port, &source_file(dir.path()), "xfer")
        .build()
        .unwrap();
    let manager = Manager::with_ascp(&ascp);
    let tally = repeat(&manager, &spec, 44, repetitions()).await;
    report("closed SSH port (code 44)", 44, &tally);
    assert_no_leftover(dir.path().to_str().unwrap());
}

/// The same with a real SSH login through the private sshd and a source that does not exist:
/// ascp negotiates, fails with code 43 and exits at once, again and again, several at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_missing_source_always_fails_with_43_and_never_sees_a_stranger() {
    let ascp = require_real_ascp!();
    let sshd = require_ssh_server!();
    let dir = tempfile::tempdir().unwrap();
    let remote = wrapper(dir.path(), &ascp, &format!("-S '{}'", ascp.display()), None);
    let spec = ssh_upload(sshd.port(), &dir.path().join("does-not-exist"), sshd.user())
        .ssh_private_key_path(sshd.client_key_path().to_str().unwrap())
        .build()
        .unwrap();
    let manager = Manager::with_ascp(&remote);
    let tally = repeat(&manager, &spec, 43, repetitions()).await;
    report("missing source over SSH (code 43)", 43, &tally);
    assert_no_leftover(dir.path().to_str().unwrap());
}

/// What one transfer held in SSH negotiation showed: ascp's pid, the `Cookie` of the INIT
/// frame the manager received, and every `ASPERA_SCP_COOKIE` in ascp's environment.
struct SeenCookie {
    pid: u32,
    in_init: Option<String>,
    in_environ: Vec<String>,
}

/// Read `t`'s events up to its INIT (20 s at most), then ascp's environment.
async fn cookie_seen(t: &mut fasp_manager::Transfer) -> SeenCookie {
    let mut events = Reader::new(t.events());
    let init = wait_for_init(&mut events).await;
    let pid = *pids(&events.seen).first().expect("Spawned before INIT");
    let frame = init.frame.as_ref().expect("INIT comes with its frame");
    let in_init = frame.get("Cookie").map(str::to_owned);
    if let Some(c) = &in_init {
        assert!(
            !format!("{init:?}").contains(c.as_str()),
            "the Debug of the INIT event shows the cookie"
        );
    }
    // ascp is held in SSH negotiation: its environment can be read.
    let in_environ = fasp_testkit::environ(pid)
        .unwrap()
        .iter()
        .filter_map(|kv| {
            kv.to_str()?
                .strip_prefix("ASPERA_SCP_COOKIE=")
                .map(str::to_owned)
        })
        .collect();
    SeenCookie {
        pid,
        in_init,
        in_environ,
    }
}

/// The cookie ascp echoes in INIT is the one the manager put in its environment
/// (`ASPERA_SCP_COOKIE`, read from `/proc/<pid>/environ` while ascp is held in SSH
/// negotiation by a port that accepts and never speaks): a fresh random one per transfer, or
/// the spec's own cookie when the spec has one, and then only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_echoes_the_cookie_from_the_environment_or_the_specs_own() {
    let ascp = require_real_ascp!();
    let dir = tempfile::tempdir().unwrap();
    let silent = SilentSsh::start();
    let port = silent.port();
    let src = source_file(dir.path());
    let drawn = ssh_upload(port, &src, "xfer").build().unwrap();
    let own_cookie = "the spec's own cookie: with a colon";
    let owned = ssh_upload(port, &src, "xfer")
        .cookie(own_cookie)
        .build()
        .unwrap();
    let opts = || {
        TransferOptions::default()
            .with_cancel_graces(Duration::from_millis(300), Duration::from_millis(300))
    };
    let manager = Manager::with_ascp(&ascp);
    let mut a = manager.start(&drawn, opts()).unwrap();
    let mut b = manager.start(&drawn, opts()).unwrap();
    let mut c = manager.start(&owned, opts()).unwrap();
    let (sa, sb, sc) = futures::join!(
        cookie_seen(&mut a),
        cookie_seen(&mut b),
        cookie_seen(&mut c)
    );

    for (name, s) in [("first", &sa), ("second", &sb)] {
        assert_eq!(s.in_environ.len(), 1, "{name}: {:?}", s.pid);
        let env = &s.in_environ[0];
        assert!(
            env.starts_with("fasp-") && env.len() == 37,
            "{name}: drawn cookie {env:?}"
        );
        assert_eq!(
            s.in_init.as_deref(),
            Some(env.as_str()),
            "{name}: INIT's Cookie is not the one in ascp's environment"
        );
    }
    assert_ne!(sa.in_environ, sb.in_environ, "two transfers, one cookie");
    assert_eq!(
        sc.in_environ,
        [own_cookie],
        "the spec's cookie, and only it"
    );
    assert_eq!(sc.in_init.as_deref(), Some(own_cookie));
    assert!(!sa.in_environ.contains(&own_cookie.to_owned()));

    for t in [a, b, c] {
        t.control().cancel().await.unwrap();
        let r = t.wait().await;
        assert!(matches!(r, Err(TransferError::Cancelled { .. })), "{r:?}");
    }
    drop(silent);
    assert_no_leftover(dir.path().to_str().unwrap());
}
