//! Every injected fault of `ASCP_SIM_FAULT`, reproduced on demand.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use fasp_mgmt_proto::{Control, QueryAnswer};
use support::{Spawn, Work, num, stats_bytes};

const SEC: Duration = Duration::from_secs(1);

/// A workspace with one 2 MB source and the send arguments at 16000 kbit/s (2 MB/s).
fn setup() -> (Work, Vec<String>) {
    let w = Work::new();
    let a = w.local_file("a.bin", 2_000_000);
    fs::create_dir(w.remote("in")).unwrap();
    let args = ["--mode=send", "--user=u", "--host=h", "-l", "16000"]
        .iter()
        .map(|s| s.to_string())
        .chain([w.arg(&a), "/in".into()])
        .collect();
    (w, args)
}

fn spawn<'a>(w: &Work, args: &'a [String], fault: &str) -> Spawn<'a> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Spawn::new(&refs).root(w).env("ASCP_SIM_FAULT", fault)
}

#[test]
fn exit_before_connect() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "exit-before-connect:7").run();
    assert_eq!(run.code, Some(7));
    assert!(!run.connected);
    let run = spawn(&w, &args, "exit-before-connect").run();
    assert_eq!((run.code, run.connected), (Some(1), false));
}

#[test]
fn hang_before_init() {
    let (w, args) = setup();
    let mut sim = spawn(&w, &args, "hang-before-init").spawn();
    let t = Instant::now();
    while !sim.connected.load(std::sync::atomic::Ordering::SeqCst) && t.elapsed() < 5 * SEC {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(sim.connected.load(std::sync::atomic::Ordering::SeqCst));
    assert!(sim.snapshot().is_empty(), "wrote {:?}", sim.snapshot());
    assert!(!sim.exited());
    sim.terminate();
    let run = sim.wait(5 * SEC);
    assert_eq!(run.code, Some(1));
    assert!(run.frames.is_empty());
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));
}

#[test]
fn init_delay_ignores_cancel_until_initiation_ends() {
    let (w, args) = setup();
    let sim = spawn(&w, &args, "init-delay:1").spawn();
    sim.wait_type("INIT", 5 * SEC);
    let sent = Instant::now();
    sim.send(&Control::Cancel);
    let run = sim.wait(10 * SEC);
    // The CANCEL waited for the end of initiation, then ended the session.
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(run.types()[..2], ["INIT", "SESSION"]);
    assert_eq!(num(run.last(), "Code"), 28);
    assert!(run.of("STOP").is_empty());
}

#[test]
fn connect_delay_connects_late_then_runs_normally() {
    let (w, args) = setup();
    let sim = spawn(&w, &args, "connect-delay:0.8").spawn();
    sim.wait_type("INIT", 5 * SEC);
    let connected_after = sim.started.elapsed();
    assert!(
        connected_after >= Duration::from_millis(800),
        "{connected_after:?}"
    );
    let run = sim.wait(20 * SEC);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.last().type_name(), Some("DONE"));
    assert_eq!(fs::read(w.remote("in/a.bin")).unwrap().len(), 2_000_000);
}

#[test]
fn freeze_writes_nothing_for_a_while() {
    let (w, args) = setup();
    let sim = spawn(&w, &args, "freeze:1@300000").spawn();
    let run = sim.wait(20 * SEC);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.last().type_name(), Some("DONE"));
    // STATS come every 50 ms, except for the frozen second.
    let longest = run
        .times
        .windows(2)
        .map(|t| t[1] - t[0])
        .max()
        .unwrap_or_default();
    assert!(longest >= Duration::from_millis(950), "{longest:?}");
    assert!(longest < Duration::from_millis(1500), "{longest:?}");
}

#[test]
fn crash_after_bytes() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "crash-after-bytes:500000").run();
    assert_eq!(run.signal, Some(6), "{run:#?}"); // SIGABRT
    assert!(!run.types().contains(&"DONE".to_owned()));
    assert!(!run.types().contains(&"ERROR".to_owned()));
    assert_eq!(fs::metadata(w.remote("in/a.bin")).unwrap().len(), 500_000);
}

#[test]
fn close_mgmt_after_bytes() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "close-mgmt-after-bytes:400000").run();
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("Cannot write to management socket"));
    assert!(run.types().iter().all(|t| t != "DONE" && t != "ERROR"));
    assert_eq!(
        num(run.last(), "TransferBytes").min(400_000),
        num(run.last(), "TransferBytes")
    );
    assert!(fs::metadata(w.remote("in/a.bin")).unwrap().len() < 2_000_000);
}

#[test]
fn malformed_frame() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "malformed-frame").run();
    assert_eq!(run.malformed, 1, "{run:#?}");
    assert_eq!(run.code, Some(0));
    assert_eq!(run.last().type_name(), Some("DONE"));
    let run = spawn(&w, &args, "malformed-frame:1000000,").run();
    assert_eq!((run.malformed, run.code), (1, Some(0)));
}

#[test]
fn stall() {
    let (w, args) = setup();
    let sim = spawn(&w, &args, "stall:1.5@300000").spawn();
    let run = sim.wait(20 * SEC);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // Find the longest time the byte count stood still while STATS flowed.
    let stats = stats_bytes(run.times.iter().copied().zip(&run.frames));
    let mut longest = Duration::ZERO;
    let mut since = stats[0];
    for &(t, b) in &stats {
        if b != since.1 {
            since = (t, b);
        }
        longest = longest.max(t - since.0);
    }
    assert!(longest >= Duration::from_millis(1300), "{longest:?}");
    assert!(run.elapsed >= Duration::from_millis(2400));
}

#[test]
fn second_session_like_http_fallback() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "second-session")
        .env("ASPERA_SCP_TOKEN", "tk")
        .run();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let inits = run.of("INIT");
    assert_eq!(inits.len(), 2);
    let (s1, s2) = (
        inits[0].get("SessionId").unwrap(),
        inits[1].get("SessionId").unwrap(),
    );
    assert_ne!(s1, s2);
    assert_eq!(run.types()[..4], ["INIT", "SESSION", "INIT", "SESSION"]);
    assert_eq!(run.of("SESSION")[1].get("Token"), Some("tk"));
    assert_eq!(run.of("SESSION")[0].get("Token"), None);
    // The files move in the second session; each session ends.
    assert!(
        run.of("STATS")
            .iter()
            .all(|f| f.get("SessionId") == Some(s2))
    );
    let done = run.one("DONE");
    assert_eq!(done.get("SessionId"), Some(s2));
    let err = run.one("ERROR");
    assert_eq!(err.get("SessionId"), Some(s1));
    assert_eq!(num(err, "Code"), 15);
}

#[test]
fn query_frames() {
    let (w, args) = setup();
    for (answer, code) in [
        (QueryAnswer::Allowed, None),
        (QueryAnswer::Denied, Some(34)),
    ] {
        let sim = spawn(&w, &args, "query").spawn();
        let q = sim.wait_type("QUERY", 5 * SEC);
        assert_eq!(q.get("Query"), Some("AUTHORIZATION"));
        // Nothing moves before the answer.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            sim.snapshot()
                .iter()
                .all(|f| f.type_name() != Some("STATS"))
        );
        sim.send(&Control::QueryResponse(answer));
        let run = sim.wait(10 * SEC);
        match code {
            None => assert_eq!(run.last().type_name(), Some("DONE")),
            Some(c) => assert_eq!(num(run.last(), "Code"), c),
        }
    }
    let sim = spawn(&w, &args, "query:LICENSE").spawn();
    assert_eq!(
        sim.wait_type("QUERY", 5 * SEC).get("Query"),
        Some("LICENSE")
    );
    sim.send(&Control::QueryResponse(QueryAnswer::Denied));
    assert_eq!(num(sim.wait(10 * SEC).last(), "Code"), 38);
}

#[test]
fn session_error() {
    let (w, args) = setup();
    let run = spawn(&w, &args, "session-error:16@600000").run();
    assert_eq!(run.code, Some(1));
    let e = run.last();
    assert_eq!(num(e, "Code"), 16);
    assert_eq!(e.get("Description"), Some("Connection lost"));
    assert_eq!(num(e, "FileBytes"), 600_000);
}

#[test]
fn deny_file_and_bad_fault_values() {
    // deny-file is also covered by the transfer table; here: a bad value stops the run.
    let (w, args) = setup();
    let run = spawn(&w, &args, "explode").run();
    assert_eq!(run.code, Some(1));
    assert!(!run.connected);
    assert!(
        run.stderr.contains("bad ASCP_SIM_FAULT entry \"explode\""),
        "{}",
        run.stderr
    );
    let run = spawn(&w, &args, "deny-file:a.bin").run();
    assert_eq!(num(run.one("FILEERROR"), "Code"), 5);
}
