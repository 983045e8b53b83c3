//! The manager's side: rate changes, pause and resume, cancel and resume with -k,
//! persistent sessions, authentication, a manager that hangs up.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use fasp_mgmt_proto::{ByteRange, Control, DoneOperation, RateChange, StartFile, StopFile};
use support::{Spawn, Work, num, stats_bytes};

const SEC: Duration = Duration::from_secs(1);

/// Bytes moved so far, from the last STATS.
fn progress(sim: &support::Sim) -> u64 {
    let frames = sim.snapshot();
    stats_bytes(frames.iter().map(|f| ((), f)))
        .last()
        .map_or(0, |&((), b)| b)
}

#[test]
fn rate_change_pause_resume_and_cancel_then_resume_with_k() {
    let w = Work::new();
    let a = w.local_file("big.bin", 8_000_000);
    fs::create_dir(w.remote("in")).unwrap();
    // 8000 kbit/s = 1 MB/s.
    let sim = Spawn::new(&[
        "--mode=send",
        "--user=u",
        "--host=h",
        "-l",
        "8000",
        "-k",
        "1",
        &w.arg(&a),
        "/in",
    ])
    .root(&w)
    .spawn();
    sim.wait_type("STATS", 5 * SEC);
    std::thread::sleep(SEC);
    let (b0, t0) = (progress(&sim), Instant::now());
    std::thread::sleep(SEC);
    let slow = (progress(&sim) - b0) as f64 / t0.elapsed().as_secs_f64();
    assert!(
        (slow / 1e6 - 1.0).abs() < 0.15,
        "1 MB/s expected, saw {slow}"
    );

    // Faster: 16000 kbit/s, acknowledged with a NOTIFICATION.
    sim.send(&Control::Rate(RateChange::rates(16_000, 0)));
    let ack = sim.wait_type("NOTIFICATION", SEC);
    assert_eq!(num(&ack, "Rate"), 16_000);
    std::thread::sleep(Duration::from_millis(300));
    let (b1, t1) = (progress(&sim), Instant::now());
    std::thread::sleep(SEC);
    let fast = (progress(&sim) - b1) as f64 / t1.elapsed().as_secs_f64();
    assert!(
        (fast / 2e6 - 1.0).abs() < 0.15,
        "2 MB/s expected, saw {fast}"
    );

    // Pause: no progress while STATS keep coming.
    sim.send(&Control::Rate(RateChange::pause()));
    std::thread::sleep(Duration::from_millis(300));
    let paused_at = progress(&sim);
    let stats_before = sim.snapshot().len();
    std::thread::sleep(SEC);
    assert_eq!(progress(&sim), paused_at, "moved while paused");
    assert!(
        sim.snapshot().len() > stats_before + 5,
        "no STATS while paused"
    );

    // Resume, then cancel.
    sim.send(&Control::Rate(RateChange::rates(16_000, 0)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(progress(&sim) > paused_at);
    sim.send(&Control::Cancel);
    let cancelled = Instant::now();
    let run = sim.wait(10 * SEC);
    assert!(
        cancelled.elapsed() < SEC,
        "cancel took {:?}",
        cancelled.elapsed()
    );
    assert_eq!(run.code, Some(1));
    let err = run.last();
    assert_eq!(err.type_name(), Some("ERROR"));
    assert_eq!(num(err, "Code"), 28);
    assert_eq!(err.get("Description"), Some("Cancelled by user"));
    let partial = fs::metadata(w.remote("in/big.bin")).unwrap().len();
    assert!(partial > 0 && partial < 8_000_000, "partial {partial}");
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));

    // A second run with -k 1 resumes where the first stopped.
    let run = Spawn::new(&[
        "--mode=send",
        "--user=u",
        "--host=h",
        "-l",
        "1000000",
        "-k",
        "1",
        &w.arg(&a),
        "/in",
    ])
    .root(&w)
    .run();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let stop = run.one("STOP");
    assert_eq!(num(stop, "StartByte"), partial);
    assert_eq!(num(stop, "FileBytes"), 8_000_000 - partial);
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(w.remote("in/big.bin")).unwrap()
    );
}

#[test]
fn persistent_session_start_stop_linger_and_shutdown() {
    let w = Work::new();
    let small = w.local_file("small.bin", 10_000);
    let slow = w.local_file("slow.bin", 5_000_000);
    let ranged = w.local_file("ranged.bin", 100_000);
    fs::create_dir(w.remote("in")).unwrap();
    let sim = Spawn::new(&[
        "--mode=send",
        "--user=u",
        "--host=h",
        "--keepalive",
        "-l",
        "8000",
        "/in",
    ])
    .root(&w)
    .spawn();
    let session = sim.wait_type("SESSION", 5 * SEC);
    assert_eq!(session.get("Keepalive"), Some("Yes"));
    assert_eq!(session.get("Source"), None);

    sim.send(&Control::Start(StartFile::new(w.arg(&small), "small.bin")));
    let stop = sim.wait_type("STOP", 5 * SEC);
    assert_eq!(stop.get("File"), Some("/in/small.bin"));
    assert_eq!(num(&stop, "FaspFileArgIndex"), 0);
    // The slow file: stopped by the manager half-way.
    sim.send(&Control::Start(StartFile::new(w.arg(&slow), "slow.bin")));
    sim.wait_for(5 * SEC, |f| {
        f.type_name() == Some("STATS") && f.get("File") == Some("/in/slow.bin")
    })
    .unwrap();
    sim.send(&Control::Stop(StopFile::new("/in/slow.bin")));
    let stopped = sim
        .wait_for(5 * SEC, |f| {
            f.type_name() == Some("STOP") && f.get("File") == Some("/in/slow.bin")
        })
        .unwrap();
    assert!(num(&stopped, "Written") < 5_000_000);
    // A range, then Linger: the queue drains, then DONE.
    sim.send(&Control::Start(
        StartFile::new(w.arg(&ranged), "ranged.bin").with_range(ByteRange {
            start: 1_000,
            end: 51_000,
        }),
    ));
    sim.send(&Control::Done(DoneOperation::Linger));
    let run = sim.wait(10 * SEC);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.last().type_name(), Some("DONE"));
    assert_eq!(run.of("ARGSTOP").len(), 3);
    let ranged_stop = run
        .of("STOP")
        .into_iter()
        .find(|f| f.get("File") == Some("/in/ranged.bin"))
        .unwrap();
    assert_eq!(num(ranged_stop, "StartByte"), 1_000);
    assert_eq!(num(ranged_stop, "EndByte"), 51_000);
    let got = fs::read(w.remote("in/ranged.bin")).unwrap();
    assert_eq!(
        got[1_000..51_000],
        fs::read(&ranged).unwrap()[1_000..51_000]
    );
    assert_eq!(
        fs::read(w.remote("in/small.bin")).unwrap(),
        fs::read(&small).unwrap()
    );

    // Shutdown ends at once, even with a file in progress.
    let sim = Spawn::new(&[
        "--mode=send",
        "--user=u",
        "--host=h",
        "--keepalive",
        "-l",
        "800",
        "/in",
    ])
    .root(&w)
    .spawn();
    sim.wait_type("SESSION", 5 * SEC);
    sim.send(&Control::Start(StartFile::new(w.arg(&slow), "slow2.bin")));
    sim.wait_type("STATS", 5 * SEC);
    sim.send(&Control::Done(DoneOperation::Shutdown));
    let t = Instant::now();
    let run = sim.wait(10 * SEC);
    assert!(t.elapsed() < SEC);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.last().type_name(), Some("DONE"));
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));
}

#[test]
fn keepalive_refuses_sources_and_needs_m() {
    let w = Work::new();
    let run = Spawn::new(&["--mode=send", "--host=h", "--keepalive", "a", "/in"])
        .root(&w)
        .run();
    assert_eq!(run.types(), ["INIT", "SESSION", "ERROR"]);
    assert_eq!(num(run.last(), "Code"), 23);
    let run = Spawn::new(&["--mode=send", "--host=h", "--keepalive", "/in"])
        .root(&w)
        .no_mgmt()
        .run();
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "ascp: management -M connection required for --keepalive session \nStartup failed, exit\n"
    );
}

#[test]
fn authentication_against_expected_values() {
    let w = Work::new();
    let a = w.local_file("a.bin", 1_000);
    let base = ["--mode=send", "--user=alice", "--host=127.0.0.1"];
    let mut args: Vec<&str> = base.to_vec();
    let s = w.arg(&a);
    args.extend([s.as_str(), "/"]);
    let ok = Spawn::new(&args)
        .root(&w)
        .env("ASCP_SIM_EXPECT_USER", "alice")
        .env("ASCP_SIM_EXPECT_TOKEN", "tok")
        .env("ASPERA_SCP_TOKEN", "tok")
        .env("ASCP_SIM_EXPECT_PASSWORD", "pw")
        .env("ASPERA_SCP_PASS", "pw")
        .run();
    assert_eq!(ok.code, Some(0), "{ok:#?}");
    for (k, v) in [
        ("ASCP_SIM_EXPECT_USER", "bob"),
        ("ASCP_SIM_EXPECT_TOKEN", "other"),
        ("ASCP_SIM_EXPECT_PASSWORD", "other"),
    ] {
        let run = Spawn::new(&args)
            .root(&w)
            .env(k, v)
            .env("ASPERA_SCP_TOKEN", "tok")
            .env("ASPERA_SCP_PASS", "pw")
            .run();
        assert_eq!(run.types(), ["INIT", "SESSION", "ERROR"], "{k}");
        assert_eq!(num(run.last(), "Code"), 19);
        assert_eq!(
            run.last().get("Description"),
            Some("failed to authenticate")
        );
        assert_eq!(run.stderr, "ascp: failed to authenticate, exiting.\n");
        assert_eq!(run.code, Some(1));
        // The SESSION of a failed login: before negotiation, address known.
        let s = run.one("SESSION");
        assert_eq!(s.get("PolicyCap"), Some("Unset"));
        assert_eq!(s.get("RemoteAddress"), Some("127.0.0.1"));
    }
}

#[test]
fn secrets_from_the_environment() {
    let w = Work::new();
    let a = w.local_file("a.bin", 100);
    let s = w.arg(&a);
    let args = ["--mode=send", "--host=h", "-u", "nonce-7", s.as_str(), "/"];
    let run = Spawn::new(&args)
        .root(&w)
        .env("ASPERA_SCP_COOKIE", "my cookie: x\rcut")
        .run();
    assert_eq!(run.code, Some(0));
    for t in ["INIT", "SESSION"] {
        assert_eq!(run.one(t).get("Cookie"), Some("my cookie: x"), "{t}");
        assert_eq!(run.one(t).get("UserStr"), Some("nonce-7"), "{t}");
    }
    for var in ["ASPERA_SCP_TOKEN", "ASPERA_SCP_COOKIE"] {
        let run = Spawn::new(&args).root(&w).env(var, "a\nb").run();
        assert_eq!(run.types(), ["INIT", "SESSION", "ERROR"]);
        assert_eq!(num(run.last(), "Code"), 8);
        let want = format!("environment variable {var} must not contain newlines");
        assert_eq!(run.last().get("Description"), Some(want.as_str()));
        assert_eq!(run.stderr, format!("ascp: {want} \nStartup failed, exit\n"));
    }
}

#[test]
fn a_manager_that_hangs_up_stops_the_transfer() {
    let w = Work::new();
    let a = w.local_file("a.bin", 3_000_000);
    let sim = Spawn::new(&["--mode=send", "--host=h", "-l", "8000", &w.arg(&a), "/"])
        .root(&w)
        .spawn();
    sim.wait_type("STATS", 5 * SEC);
    sim.hang_up();
    let run = sim.wait(10 * SEC);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("Cannot write to management socket"),
        "{}",
        run.stderr
    );
    assert!(fs::metadata(w.remote("a.bin")).unwrap().len() < 3_000_000);
}

#[test]
fn sigterm_exits_1_at_once() {
    let w = Work::new();
    let a = w.local_file("a.bin", 3_000_000);
    let mut sim = Spawn::new(&["--mode=send", "--host=h", "-l", "8000", &w.arg(&a), "/"])
        .root(&w)
        .spawn();
    sim.wait_type("STATS", 5 * SEC);
    sim.terminate();
    let run = sim.wait(5 * SEC);
    assert_eq!(run.code, Some(1));
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));
}

/// `ASCP_SIM_TIMESTAMPS=1`: every frame ends with `SimSentUsec` (the shared monotonic clock,
/// never going back, between the moment the run started and the moment the test read it);
/// the RATE acknowledgement carries `SimCtlReadUsec`, after the RATE was sent and before the
/// acknowledgement left. Without the variable, no frame has either field; a bad value stops
/// the run.
#[test]
fn timestamps_for_latency_measurements() {
    let w = Work::new();
    let a = w.local_file("a.bin", 2_000_000);
    fs::create_dir(w.remote("in")).unwrap();
    let args = [
        "--mode=send",
        "--user=u",
        "--host=h",
        "-l",
        "8000",
        &w.arg(&a),
        "/in",
    ];
    let before = fasp_sim::monotonic_usec();
    let sim = Spawn::new(&args)
        .root(&w)
        .env("ASCP_SIM_TIMESTAMPS", "1")
        .env("ASCP_SIM_STATS_INTERVAL_MS", "50")
        .spawn();
    sim.wait_type("STATS", 5 * SEC);
    let sent_at = fasp_sim::monotonic_usec();
    sim.send(&Control::Rate(RateChange::rates(9_000, 0)));
    let ack = sim.wait_type("NOTIFICATION", 2 * SEC);
    let acked = fasp_sim::monotonic_usec();
    let read = num(&ack, "SimCtlReadUsec");
    let ack_sent = num(&ack, "SimSentUsec");
    assert!(
        sent_at <= read && read <= ack_sent && ack_sent <= acked,
        "sent {sent_at} <= read {read} <= ack {ack_sent} <= seen {acked}"
    );
    let run = sim.wait(10 * SEC);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut last = before;
    for f in &run.frames {
        let field = f.fields().last().expect("a field");
        assert_eq!(field.key, "SimSentUsec", "last field of {f:?}");
        let stamp: u64 = field.value.parse().expect("a number");
        assert!(stamp >= last, "stamps go back: {stamp} after {last}");
        last = stamp;
    }
    assert!(last <= fasp_sim::monotonic_usec());
    assert!(run.frames.len() > 5, "{:?}", run.types());

    let plain = Spawn::new(&args)
        .root(&w)
        .env("ASCP_SIM_TIMESTAMPS", "0")
        .run();
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    assert!(plain.frames.iter().all(|f| f.get("SimSentUsec").is_none()));

    let bad = Spawn::new(&args)
        .root(&w)
        .env("ASCP_SIM_TIMESTAMPS", "sometimes")
        .run();
    assert_eq!(bad.code, Some(1));
    assert!(!bad.connected);
    assert!(
        bad.stderr.contains("bad ASCP_SIM_TIMESTAMPS \"sometimes\""),
        "{}",
        bad.stderr
    );
}
