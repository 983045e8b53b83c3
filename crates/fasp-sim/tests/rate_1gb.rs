//! The "done when": a 1 GB file set at a requested 200 Mbit/s within 10% of that
//! rate with monotonic STATS; a RATE change reflected within 1 s; a CANCEL that ends with
//! code 28 and leaves nothing running; the resume that completes it. The two tests run in
//! parallel (about 45 s in all).

mod support;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use fasp_mgmt_proto::{Control, RateChange};
use support::{Spawn, Work, num, series, stats_bytes};

const FILES: usize = 4;
const FILE_LEN: usize = 250_000_000;
const TOTAL: u64 = (FILES * FILE_LEN) as u64;
const SEC: Duration = Duration::from_secs(1);

/// Four 250 MB files, each a 1 MiB block of its own pattern, repeated.
fn make_set(w: &Work) {
    fs::create_dir_all(w.local("set")).unwrap();
    for i in 0..FILES {
        let block = block(i);
        let mut f = File::create(w.local(&format!("set/part{i}.bin"))).unwrap();
        let mut left = FILE_LEN;
        while left > 0 {
            let n = left.min(block.len());
            f.write_all(&block[..n]).unwrap();
            left -= n;
        }
    }
}

fn block(i: usize) -> Vec<u8> {
    fasp_testkit::sim::pattern(1 << 20, i as u8 + 1)
}

/// The destination copy of part `i` holds exactly its pattern (compared, not hashed: this
/// runs in debug builds too).
fn check_part(w: &Work, i: usize) {
    let p = w.remote(&format!("in/set/part{i}.bin"));
    assert_eq!(
        fs::metadata(&p).unwrap().len(),
        FILE_LEN as u64,
        "{}",
        p.display()
    );
    let block = block(i);
    let mut f = File::open(&p).unwrap();
    let mut buf = vec![0u8; block.len()];
    let mut at = 0;
    while at < FILE_LEN {
        let n = block.len().min(FILE_LEN - at);
        f.read_exact(&mut buf[..n]).unwrap();
        assert!(buf[..n] == block[..n], "part{i} differs near byte {at}");
        at += n;
    }
}

/// TransferBytes of the latest STATS/STOP, and when it arrived.
fn latest(sim: &support::Sim) -> (Instant, u64) {
    let timed = sim.timed();
    let progress = series(
        timed.iter().map(|(t, f)| (*t, f)),
        &["STATS", "STOP"],
        "TransferBytes",
    );
    progress.last().copied().unwrap_or((Instant::now(), 0))
}

/// The two 1 GB runs take turns: on a 2-core machine, side by side, each one's pacing would
/// measure the other's load rather than its own accuracy.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn one_gigabyte_at_200_mbps() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = Work::new();
    make_set(&w);
    fs::create_dir(w.remote("in")).unwrap();
    let run = Spawn::new(&[
        "--mode=send",
        "--user=u",
        "--host=h",
        "-l",
        "200000",
        &w.arg(&w.local("set")),
        "/in",
    ])
    .root(&w)
    .env("ASCP_SIM_STATS_INTERVAL_MS", "1000")
    .spawn()
    .wait(Duration::from_secs(90));
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);

    // Observed rate, by the test's clock: from the first STATS to DONE.
    let first = run
        .frames
        .iter()
        .position(|f| f.type_name() == Some("STATS"))
        .unwrap();
    let took = run.times[run.times.len() - 1] - run.times[first];
    let mbps = TOTAL as f64 * 8.0 / took.as_secs_f64() / 1e6;
    eprintln!("1 GB in {took:?}: {mbps:.1} Mbit/s (requested 200)");
    assert!((mbps / 200.0 - 1.0).abs() < 0.10, "{mbps} Mbit/s");
    let done = run.last();
    assert_eq!(done.type_name(), Some("DONE"));
    assert_eq!(num(done, "FileBytes"), TOTAL);
    assert_eq!(num(done, "TransfersPassed"), FILES as u64);

    // STATS: about one a second, never going back.
    let stats = run.of("STATS");
    assert!(stats.len() >= 38, "{} STATS", stats.len());
    let bytes = series(
        run.frames.iter().map(|f| ((), f)),
        &["STATS", "STOP"],
        "TransferBytes",
    );
    assert!(
        bytes.windows(2).all(|p| p[0].1 <= p[1].1),
        "TransferBytes went back"
    );
    // Every second's progress is close to 25 MB (the pace is even, not bursty). Measured on
    // the data's own clock (each STATS's `Elapsedusec`, stamped by the sender when it wrote
    // the figures), not on when this test happened to read the frame: a busy machine delays
    // the reader, which says nothing about the pace.
    let timed = stats_bytes(run.frames.iter().map(|f| {
        let sent = match f.type_name() {
            Some("STATS") => num(f, "Elapsedusec"),
            _ => 0, // not a STATS: dropped by `stats_bytes`
        };
        (sent, f)
    }));
    for pair in timed.windows(5).step_by(5) {
        let (a, b) = (pair[0], pair[4]);
        let rate = (b.1 - a.1) as f64 * 8.0 / ((b.0 - a.0) as f64 / 1e6) / 1e6;
        assert!(
            (rate / 200.0 - 1.0).abs() < 0.10,
            "a 4 s window at {rate} Mbit/s"
        );
    }

    // Bytes on disk.
    for i in 0..FILES {
        check_part(&w, i);
    }
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));
}

#[test]
fn one_gigabyte_rate_change_cancel_and_resume() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = Work::new();
    make_set(&w);
    fs::create_dir(w.remote("in")).unwrap();
    let args = |rate: &'static str| {
        vec![
            "--mode=send".to_owned(),
            "--user=u".into(),
            "--host=h".into(),
            "-l".into(),
            rate.into(),
            "-k".into(),
            "2".into(),
            w.arg(&w.local("set")),
            "/in".into(),
        ]
    };
    let a = args("200000");
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let sim = Spawn::new(&refs)
        .root(&w)
        .env("ASCP_SIM_STATS_INTERVAL_MS", "200")
        .spawn();
    sim.wait_type("STATS", 5 * SEC);
    std::thread::sleep(SEC);
    let (t0, b0) = latest(&sim);
    std::thread::sleep(3 * SEC);
    let (t1, b1) = latest(&sim);
    let before = (b1 - b0) as f64 * 8.0 / (t1 - t0).as_secs_f64() / 1e6;
    eprintln!("before the change: {before:.1} Mbit/s");
    assert!((before / 200.0 - 1.0).abs() < 0.10, "{before}");

    // RATE 400 Mbit/s: acknowledged, and the pace follows within a second.
    let changed = Instant::now();
    sim.send(&Control::Rate(RateChange::rates(400_000, 0)));
    let ack = sim
        .wait_for(SEC, |f| f.type_name() == Some("NOTIFICATION"))
        .expect("no NOTIFICATION within 1 s");
    assert_eq!(num(&ack, "Rate"), 400_000);
    // Progress over the second after the change, then over two more seconds.
    std::thread::sleep(SEC - changed.elapsed().min(SEC));
    let (t2, b2) = latest(&sim);
    std::thread::sleep(2 * SEC);
    let (t3, b3) = latest(&sim);
    let after = (b3 - b2) as f64 * 8.0 / (t3 - t2).as_secs_f64() / 1e6;
    let first_second = (b2 - b1) as f64 * 8.0 / (t2 - t1).as_secs_f64() / 1e6;
    eprintln!("after the change: {first_second:.1} Mbit/s in the first second, then {after:.1}");
    assert!((after / 400.0 - 1.0).abs() < 0.10, "{after}");
    assert!(
        first_second > 300.0,
        "the change took more than a second: {first_second}"
    );

    // CANCEL in the middle of a file: ERROR 28, the process ends, nothing left behind,
    // partial data on disk.
    let mid = (FILE_LEN as u64 / 5)..(FILE_LEN as u64 * 4 / 5);
    let deadline = Instant::now() + 10 * SEC;
    while !mid.contains(&(latest(&sim).1 % FILE_LEN as u64)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled = Instant::now();
    sim.send(&Control::Cancel);
    let run = sim.wait(10 * SEC);
    assert!(cancelled.elapsed() < SEC, "{:?}", cancelled.elapsed());
    assert_eq!(run.code, Some(1));
    assert_eq!(num(run.last(), "Code"), 28);
    let moved = num(run.last(), "FileBytes");
    assert!(moved > 0 && moved < TOTAL);
    fasp_testkit::assert_no_leftover(&w.arg(w.path()));

    // -k 2 completes the set: whole files are skipped, the partial one is resumed.
    let a = args("100000000");
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let run = Spawn::new(&refs).root(&w).run();
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    let resumed: u64 = run.of("STOP").iter().map(|f| num(f, "StartByte")).sum();
    assert!(resumed > 0, "nothing resumed");
    let skipped = run.of("SKIP").len() as u64;
    assert_eq!(
        num(run.last(), "FileBytes") + resumed + skipped * FILE_LEN as u64,
        TOTAL
    );
    for i in 0..FILES {
        check_part(&w, i);
    }
}
