//! The manager against ascp-sim (the project's ascp emulator, `crates/fasp-sim`): complete
//! transfers, per-file events, steering, cancel, persistent sessions, retries, HTTP-fallback
//! style second sessions, damage on the socket, multi-session, limits and watchdogs.
//!
//! `cargo test --workspace` builds `ascp-sim` before running any test; run alone, these tests
//! look for it next to the test binary (or in `FASP_SIM`) and skip with a notice if it is
//! missing (with `CI=true` they fail instead).

mod support;

use std::time::{Duration, Instant};

use fasp_manager::{
    Direction, Event, EventKind, Manager, RatePolicy, RetryPolicy, TransferError, TransferState,
};
use fasp_mgmt_proto::DoneOperation;
use fasp_spec::TransferSpec;
use fasp_testkit::assert_no_leftover;
use futures::StreamExt;
use support::{Recorder, Work, count, persistent_upload, require_sim, upload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_are_byte_exact_with_per_file_events_and_totals() {
    let sim = require_sim!();
    let w = Work::new();
    let a = w.file(&w.local("a.bin"), 300_000);
    let b = w.file(&w.local("dir/b.bin"), 123_457);
    let c = w.file(&w.local("dir/sub/c.bin"), 1);
    let manager = Manager::with_ascp(&sim);
    let rec = Recorder::default();
    let spec = upload(&[&w.local("a.bin"), &w.local("dir")], "/inbox")
        .create_dir(true)
        .build()
        .unwrap();
    let summary = manager
        .start(&spec, rec.attach(w.options()))
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.remote("inbox/a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(w.remote("inbox/dir/b.bin")).unwrap(), b);
    assert_eq!(std::fs::read(w.remote("inbox/dir/sub/c.bin")).unwrap(), c);
    assert_eq!(summary.files_done, 3);
    assert_eq!(summary.bytes, 300_000 + 123_457 + 1);
    assert_eq!(summary.sessions.len(), 1);
    assert_eq!(summary.sessions[0].error_code, None);
    assert_eq!(
        summary.sessions[0].totals.file_bytes,
        Some(300_000 + 123_457 + 1)
    );
    let ev = rec.events();
    assert_eq!(count(&ev, |k| matches!(k, EventKind::FileStarted(_))), 3);
    assert_eq!(count(&ev, |k| matches!(k, EventKind::FileDone(_))), 3);
    assert_eq!(count(&ev, |k| matches!(k, EventKind::ArgDone { .. })), 2);
    assert_eq!(count(&ev, |k| matches!(k, EventKind::SessionDone(_))), 1);
    // Per file: started before progress before done.
    for name in ["a.bin", "b.bin", "c.bin"] {
        let idx = |pred: &dyn Fn(&EventKind) -> bool| ev.iter().position(|e| pred(&e.kind));
        let started =
            idx(&|k| matches!(k, EventKind::FileStarted(f) if f.file.ends_with(name))).unwrap();
        let done = idx(&|k| matches!(k, EventKind::FileDone(f) if f.file.ends_with(name))).unwrap();
        assert!(started < done, "{name}");
    }

    // And back down, into a fresh local folder.
    let rec = Recorder::default();
    let down = TransferSpec::builder()
        .download()
        .host("127.0.0.1")
        .user("xfer")
        .source("/inbox/a.bin")
        .source("/inbox/dir")
        .destination_root(w.local("back").to_str().unwrap())
        .create_dir(true)
        .build()
        .unwrap();
    let summary = manager
        .start(&down, rec.attach(w.options()))
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.local("back/a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(w.local("back/dir/b.bin")).unwrap(), b);
    assert_eq!(std::fs::read(w.local("back/dir/sub/c.bin")).unwrap(), c);
    assert_eq!(summary.files_done, 3);
    let started = rec.events().iter().find_map(|e| match &e.kind {
        EventKind::SessionStarted(s) => Some(s.direction),
        _ => None,
    });
    assert_eq!(started.flatten(), Some(Direction::Receive));
    assert_no_leftover(&w.needle());
}

/// Bytes per second over `window`, from the progress snapshot.
async fn throughput(t: &fasp_manager::Transfer, window: Duration) -> f64 {
    let (b0, t0) = (t.snapshot().bytes_done, Instant::now());
    tokio::time::sleep(window).await;
    (t.snapshot().bytes_done - b0) as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_policy_pause_and_resume_show_in_throughput_and_events() {
    let sim = require_sim!();
    let w = Work::new();
    w.file(&w.local("big.bin"), 12_000_000);
    let manager = Manager::with_ascp(&sim);
    let rec = Recorder::default();
    // 8000 kbit/s = 1 MB/s.
    let spec = upload(&[&w.local("big.bin")], "/")
        .target_rate_kbps(8000)
        .build()
        .unwrap();
    let t = manager.start(&spec, rec.attach(w.options())).unwrap();
    let mut p = t.progress();
    while p.borrow().state != TransferState::Transferring {
        p.changed().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slow = throughput(&t, Duration::from_secs(1)).await;
    assert!(
        (slow / 1e6 - 1.0).abs() < 0.25,
        "about 1 MB/s expected, saw {slow}"
    );

    t.control().set_rate(24_000, 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fast = throughput(&t, Duration::from_secs(1)).await;
    assert!(
        (fast / 3e6 - 1.0).abs() < 0.25,
        "about 3 MB/s expected, saw {fast}"
    );
    assert_eq!(t.snapshot().target_rate_kbps, Some(24_000));

    t.control().set_policy(RatePolicy::Low).await.unwrap();
    t.control().pause().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.snapshot().state, TransferState::Paused);
    let paused = throughput(&t, Duration::from_secs(1)).await;
    assert!(paused < 20_000.0, "moved {paused} B/s while paused");
    t.control().resume().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.snapshot().state, TransferState::Transferring);
    let resumed = throughput(&t, Duration::from_secs(1)).await;
    assert!(
        (resumed / 3e6 - 1.0).abs() < 0.25,
        "resume restores 3 MB/s, saw {resumed}"
    );
    t.control().cancel().await.unwrap();
    let r = t.wait().await;
    assert!(
        matches!(r, Err(TransferError::Cancelled { forced: false })),
        "{r:?}"
    );

    let ev = rec.events();
    let rates: Vec<(Option<u64>, Option<RatePolicy>)> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RateChanged(r) => Some((r.target_kbps, r.policy)),
            _ => None,
        })
        .collect();
    assert!(rates.iter().any(|(t, _)| *t == Some(24_000)), "{rates:?}");
    assert!(
        rates.iter().any(|(_, p)| *p == Some(RatePolicy::Low)),
        "{rates:?}"
    );
    assert!(rates.iter().any(|(t, _)| *t == Some(0)), "{rates:?}");
    assert_no_leftover(&w.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_transfer_ends_with_28_and_a_retry_resumes_after_a_crash() {
    let sim = require_sim!();
    let w = Work::new();
    let data = w.file(&w.local("big.bin"), 3_000_000);
    let manager = Manager::with_ascp(&sim);

    // Cancel: CANCEL is enough for an ascp that reads its socket (no signal needed).
    let spec = upload(&[&w.local("big.bin")], "/")
        .target_rate_kbps(8000)
        .build()
        .unwrap();
    let mut t = manager.start(&spec, w.options()).unwrap();
    let mut events = t.events();
    while let Some(e) = events.next().await {
        if matches!(e.kind, EventKind::FileProgress(_)) {
            break;
        }
    }
    t.control().cancel().await.unwrap();
    let r = t.wait().await;
    assert!(
        matches!(r, Err(TransferError::Cancelled { forced: false })),
        "{r:?}"
    );
    let partial = std::fs::metadata(w.remote("big.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(partial < data.len() as u64);
    assert_no_leftover(&w.needle());

    // A crash at 1 MB, then retries with resume: the file completes, progress never goes back.
    let rec = Recorder::default();
    let opts = rec
        .attach(w.options())
        .with_env("ASCP_SIM_FAULT", "crash-after-bytes:1000000")
        .with_retry(
            RetryPolicy::attempts(5)
                .with_backoff(Duration::from_millis(50), Duration::from_millis(100)),
        );
    let spec = upload(&[&w.local("big.bin")], "/").build().unwrap();
    let summary = manager.start(&spec, opts).unwrap().wait().await.unwrap();
    assert_eq!(std::fs::read(w.remote("big.bin")).unwrap(), data);
    assert!(summary.attempts >= 2, "{summary:?}");
    let ev = rec.events();
    assert!(count(&ev, |k| matches!(k, EventKind::Retrying { .. })) >= 1);
    let resumed = ev.iter().any(|e| {
        e.attempt > 1 && matches!(&e.kind, EventKind::FileStarted(f) | EventKind::FileProgress(f) if f.start_byte.unwrap_or(0) > 0)
    });
    assert!(resumed, "a later attempt must resume, not restart");
    assert_no_leftover(&w.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_takes_files_over_time_then_lingers_out() {
    let sim = require_sim!();
    let w = Work::new();
    let one = w.file(&w.local("one.bin"), 50_000);
    let two = w.file(&w.local("two.bin"), 70_000);
    std::fs::create_dir(w.remote("drop")).unwrap();
    let spec = persistent_upload("/drop").build().unwrap();
    let manager = Manager::with_ascp(&sim);
    let mut t = manager.start(&spec, w.options()).unwrap();
    let mut events = t.events();
    let next_done = async |events: &mut fasp_manager::EventStream| {
        while let Some(e) = events.next().await {
            if let EventKind::FileDone(f) = e.kind {
                return f.file;
            }
        }
        panic!("stream ended")
    };
    t.control()
        .add_file(w.local("one.bin").to_str().unwrap(), "/drop/one.bin", None)
        .await
        .unwrap();
    assert!(next_done(&mut events).await.ends_with("one.bin"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.control()
        .add_file(w.local("two.bin").to_str().unwrap(), "/drop/two.bin", None)
        .await
        .unwrap();
    assert!(next_done(&mut events).await.ends_with("two.bin"));
    t.control().finish(DoneOperation::Linger).await.unwrap();
    let summary = t.wait().await.unwrap();
    assert_eq!(summary.files_done, 2);
    assert_eq!(std::fs::read(w.remote("drop/one.bin")).unwrap(), one);
    assert_eq!(std::fs::read(w.remote("drop/two.bin")).unwrap(), two);
    assert_no_leftover(&w.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_on_the_connection_and_damage_on_the_socket_lose_nothing() {
    let sim = require_sim!();
    let w = Work::new();
    let a = w.file(&w.local("a.bin"), 200_000);
    let manager = Manager::with_ascp(&sim);
    let rec = Recorder::default();
    let opts = rec
        .attach(w.options())
        .with_env("ASCP_SIM_FAULT", "second-session,malformed-frame");
    let spec = upload(&[&w.local("a.bin")], "/").build().unwrap();
    let summary = manager.start(&spec, opts).unwrap().wait().await.unwrap();
    assert_eq!(std::fs::read(w.remote("a.bin")).unwrap(), a);
    let ev = rec.events();
    // Two sessions: the first failed (as a FASP session does before HTTP fallback), the second
    // carried the file; everything was kept apart by SessionId.
    let sids: std::collections::BTreeSet<String> = ev
        .iter()
        .filter_map(|e| e.session_id.as_deref().map(str::to_owned))
        .collect();
    assert_eq!(sids.len(), 2, "{sids:?}");
    assert_eq!(
        count(&ev, |k| matches!(k, EventKind::SessionInit { .. })),
        2
    );
    assert_eq!(
        count(&ev, |k| matches!(k, EventKind::SessionFailed { .. })),
        1
    );
    assert_eq!(count(&ev, |k| matches!(k, EventKind::SessionDone(_))), 1);
    assert_eq!(summary.sessions.len(), 2);
    // The malformed frame was reported, and the events after it still arrived.
    let damaged = ev
        .iter()
        .position(|e| matches!(e.kind, EventKind::Malformed(_)))
        .expect("damage reported");
    assert!(
        ev[damaged..]
            .iter()
            .any(|e| matches!(e.kind, EventKind::FileDone(_)))
    );
    let done_sid = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::SessionDone(_)))
        .unwrap()
        .session_id
        .clone();
    let file_sid = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::FileDone(_)))
        .unwrap()
        .session_id
        .clone();
    assert_eq!(done_sid, file_sid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_session_splits_the_rate_and_adds_up_the_totals() {
    let sim = require_sim!();
    let w = Work::new();
    let mut files = Vec::new();
    for i in 0..6 {
        files.push((
            i,
            w.file(&w.local(&format!("f{i}.bin")), 100_000 + i * 1000),
        ));
    }
    let manager = Manager::with_ascp(&sim);
    let rec = Recorder::default();
    let spec = upload(&[&w.local("")], "/")
        .target_rate_kbps(90_000)
        .build()
        .unwrap();
    let summary = manager
        .start(&spec, rec.attach(w.options()).with_sessions(3))
        .unwrap()
        .wait()
        .await
        .unwrap();
    for (i, data) in &files {
        assert_eq!(
            &std::fs::read(w.remote(&format!("local/f{i}.bin"))).unwrap(),
            data,
            "f{i}"
        );
    }
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(summary.bytes, total as u64);
    assert_eq!(summary.files_done, 6);
    assert_eq!(summary.sessions.len(), 3);
    let ev = rec.events();
    let parts: std::collections::BTreeSet<u32> = ev.iter().map(|e| e.part).collect();
    assert_eq!(parts.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    let rates: Vec<Option<u64>> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SessionStarted(s) => Some(s.rates.target_kbps),
            _ => None,
        })
        .collect();
    assert_eq!(rates, [Some(30_000); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_exit_early_hang_and_failed_files() {
    let sim = require_sim!();
    let w = Work::new();
    w.file(&w.local("a.bin"), 500_000);
    w.file(&w.local("secret.bin"), 10);
    let manager = Manager::with_ascp(&sim);
    let spec = upload(&[&w.local("a.bin")], "/").build().unwrap();

    // Exits before connecting: the status and stderr, at once.
    let started = Instant::now();
    let r = manager
        .start(
            &spec,
            w.options()
                .with_env("ASCP_SIM_FAULT", "exit-before-connect:3"),
        )
        .unwrap()
        .wait()
        .await;
    assert!(
        matches!(&r, Err(TransferError::ExitedBeforeConnecting { status, .. }) if status.code() == Some(3)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Connects, then says nothing: the watchdog stops it.
    let opts = w
        .options()
        .with_env("ASCP_SIM_FAULT", "hang-before-init")
        .with_inactivity_timeout(Some(Duration::from_millis(700)));
    let r = manager.start(&spec, opts).unwrap().wait().await;
    assert!(matches!(r, Err(TransferError::Hung { .. })), "{r:?}");

    // No progress for longer than the timeout, but STATS keep coming: not hung.
    let opts = w
        .options()
        .with_env("ASCP_SIM_FAULT", "stall:1.5@1")
        .with_inactivity_timeout(Some(Duration::from_millis(400)));
    let r = manager.start(&spec, opts).unwrap().wait().await;
    assert!(r.is_ok(), "a session sending STATS was stopped: {r:?}");

    // A file that fails: code 27 for the session, the file named in the error.
    let spec2 = upload(&[&w.local("a.bin"), &w.local("secret.bin")], "/")
        .build()
        .unwrap();
    let r = manager
        .start(
            &spec2,
            w.options()
                .with_env("ASCP_SIM_FAULT", "deny-file:secret.bin"),
        )
        .unwrap()
        .wait()
        .await;
    match r {
        Err(TransferError::Fasp {
            code: 27,
            failed_files,
            retryable: false,
            ..
        }) => {
            assert_eq!(failed_files.len(), 1);
            assert!(failed_files[0].file.ends_with("secret.bin"));
            assert_eq!(failed_files[0].code, Some(5));
        }
        other => panic!("{other:?}"),
    }
    // Authentication refused by the "server": code 19, not retried.
    let r = manager
        .start(
            &spec,
            w.options()
                .with_env("ASCP_SIM_EXPECT_USER", "someone-else")
                .with_retry(RetryPolicy::attempts(3)),
        )
        .unwrap()
        .wait()
        .await;
    assert_eq!(
        r.as_ref().err().and_then(TransferError::code),
        Some(19),
        "{r:?}"
    );
    assert_no_leftover(&w.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_queues_transfers() {
    let sim = require_sim!();
    let w = Work::new();
    w.file(&w.local("a.bin"), 400_000);
    let manager = Manager::builder().ascp(&sim).concurrency_limit(1).build();
    // 1.6 Mbit/s: about 2 s each.
    let spec = upload(&[&w.local("a.bin")], "/")
        .target_rate_kbps(1600)
        .build()
        .unwrap();
    let first = manager.start(&spec, w.options()).unwrap();
    let rec = Recorder::default();
    let second = manager
        .start(&spec, rec.attach(w.options()).with_workdir(w.dir.path()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first.snapshot().state,
        TransferState::Transferring,
        "{:?}",
        first.snapshot()
    );
    assert_eq!(
        second.snapshot().state,
        TransferState::Queued,
        "{:?}",
        second.snapshot()
    );
    assert!(matches!(
        rec.events().first().map(|e| &e.kind),
        Some(EventKind::Queued)
    ));
    first.wait().await.unwrap();
    second.wait().await.unwrap();
    assert_no_leftover(&w.needle());
}

/// Controls issued back to back, some written by the caller's task straight to the socket
/// and some (pause) through the attempt's queue, reach ascp in the order they were issued:
/// ascp-sim acknowledges every RATE with a NOTIFICATION, in the order it read them. Each one
/// is reported once as `ControlSent`; a message that cannot be encoded is refused with a
/// typed error before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_keep_their_order_whichever_way_they_are_written() {
    let sim = require_sim!();
    let w = Work::new();
    w.file(&w.local("a.bin"), 1_000_000);
    let manager = Manager::with_ascp(&sim);
    let rec = Recorder::default();
    let spec = upload(&[&w.local("a.bin")], "/")
        .target_rate_kbps(8000)
        .build()
        .unwrap();
    let options = rec
        .attach(w.options())
        .with_env("ASCP_SIM_FAULT", "stall:60@1");
    let t = manager.start(&spec, options).unwrap();
    let mut p = t.progress();
    while p.borrow().state != TransferState::Transferring {
        p.changed().await.unwrap();
    }

    let mut expected = Vec::new();
    for k in 0..60u64 {
        if k % 7 == 3 {
            // A rate set while paused is kept for resume: nothing is written until then.
            t.control().pause().await.unwrap();
            expected.push(0);
            t.control().set_rate(20_000 + k, 0).await.unwrap();
            assert_eq!(t.snapshot().state, TransferState::Paused);
            t.control().resume().await.unwrap();
        } else {
            t.control().set_rate(20_000 + k, 0).await.unwrap();
        }
        expected.push(20_000 + k);
    }
    // From a thread outside the runtime, on another executor: the direct write needs no
    // tokio context.
    let ctl = t.controller();
    std::thread::spawn(move || futures::executor::block_on(ctl.set_rate(30_000, 0)))
        .join()
        .unwrap()
        .unwrap();
    expected.push(30_000);
    // Requests that make no sense for this transfer are refused, and nothing is written.
    let bad = t.control().add_file("x", "y", None).await;
    assert!(
        matches!(bad, Err(fasp_manager::ControlError::NotPersistent)),
        "{bad:?}"
    );
    let bad = t.control().set_rate(1_000, 5_000).await;
    assert!(
        matches!(bad, Err(fasp_manager::ControlError::Invalid { .. })),
        "{bad:?}"
    );

    // Wait for every acknowledgement (or fail after a while).
    let acked = |ev: &[Event]| -> Vec<u64> {
        ev.iter()
            .filter_map(|e| match &e.kind {
                EventKind::RateChanged(r) => r.target_kbps,
                _ => None,
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked(&rec.events()).len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.control().cancel().await.unwrap();
    let r = t.wait().await;
    assert!(matches!(r, Err(TransferError::Cancelled { .. })), "{r:?}");
    let ev = rec.events();
    assert_eq!(acked(&ev), expected, "RATE order as ascp-sim read it");
    let sent = count(
        &ev,
        |k| matches!(k, EventKind::ControlSent(m) if m.type_name() == "RATE"),
    );
    assert_eq!(sent, expected.len(), "one ControlSent per RATE");
    assert_no_leftover(&w.needle());
}
