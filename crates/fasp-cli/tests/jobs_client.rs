//! `fasp jobs` against the built `fasp serve` with ascp-sim as the engine: a persistent job
//! (`add --persistent`, `add-paths`, `finish`), the live events of `jobs events --json` as
//! the lines of `fasp transfer --json` (checked against docs/fasp-json.schema.json), and a
//! node job added with `--node`.
//!
//! Run alone, the tests that transfer skip with a notice when ascp-sim is missing (with
//! `CI=true` they fail).
#![cfg(feature = "jobs")]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fasp_testkit::sim::Work;
use serde_json::Value;
use support::serve::{
    Daemon as Serve, WITHIN, fasp, follow_events, same_bytes, serve_command, stderr,
    typed_lines as lines, with_sim,
};
use support::sim_path;

/// `fasp serve` on a free loopback port over a SQLite store in `work`, its worker's ascp
/// being ascp-sim, with `env` added; killed when dropped.
fn start(work: &Work, sim: &Path, env: &[(&str, &str)]) -> Serve {
    let mut cmd = serve_command(fasp(), work);
    cmd.args(["--listen", "127.0.0.1:0"]);
    with_sim(&mut cmd, work, sim)
        .envs(env.iter().copied())
        .stderr(Stdio::null());
    Serve::start(&mut cmd, |_| String::new())
}

/// Run `fasp jobs ...` until `pred` holds for its JSON lines (panics after WITHIN).
fn poll(serve: &Serve, args: &[&str], what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = serve.jobs(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let got = lines(&out);
        if pred(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WITHIN:?}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_persistent_job_takes_paths_until_finished_and_its_events_are_transfer_lines() {
    let Some(sim) = sim_path() else { return };
    let work = Work::new();
    let serve = start(&work, &sim, &[]);
    let a = work.local_file("a.bin", 300_000);
    let b = work.local_file("b.bin", 500_000);
    // A spec with no paths: with --persistent, the job waits for them.
    let spec = work.path().join("spec.json");
    std::fs::write(
        &spec,
        serde_json::json!({
            "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
            "target_rate_kbps": 100_000, "destination_root": "/drop"
        })
        .to_string(),
    )
    .unwrap();
    let added = serve.jobs(&[
        "add",
        "--spec",
        spec.to_str().unwrap(),
        "--persistent",
        "--json",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let job = &lines(&added)[0];
    assert_eq!(job["persistent"], true, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();

    // The job's live events, followed from before its first path.
    let (mut follower, rx) = follow_events(&serve.url, &[&id, "--json"]);

    let one = serve.jobs(&[
        "add-paths",
        &id,
        a.to_str().unwrap(),
        "in/a.bin",
        "--key",
        "k1",
        "--json",
    ]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(lines(&one)[0]["paths_added"], 1);
    // Retried with the same key: nothing added twice.
    let again = serve.jobs(&[
        "add-paths",
        &id,
        a.to_str().unwrap(),
        "in/a.bin",
        "--key",
        "k1",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(" 1 paths"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let two = serve.jobs(&["add-paths", &id, b.to_str().unwrap(), "--json"]);
    assert!(two.status.success(), "{}", stderr(&two));
    let shown = poll(&serve, &["show", &id, "--json"], "both paths done", |l| {
        l.iter()
            .filter(|p| p["type"] == "path" && p["outcome"] == "done")
            .count()
            == 2
    });
    assert_eq!(shown[0]["state"], "running", "it waits for more: {shown:?}");
    let text = serve.jobs(&["show", &id]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("paths:     2 added"), "{text}");

    let finished = serve.jobs(&["finish", &id, "--json"]);
    assert!(finished.status.success(), "{}", stderr(&finished));
    assert_eq!(lines(&finished)[0]["closing"], true);
    let watched = serve.jobs(&["watch", &id, "--interval-ms", "100", "--json"]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    assert_eq!(lines(&watched).last().unwrap()["state"], "completed");
    same_bytes(&a, &work.remote("drop/in/a.bin"));
    same_bytes(&b, &work.remote("drop/b.bin"));

    // Closed: refused, saying what to do.
    let refused = serve.jobs(&["add-paths", &id, a.to_str().unwrap(), "--json"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let error = &lines(&refused)[0];
    assert_eq!(error["code"], "failed_precondition", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("submit another job"),
        "{error}"
    );

    // The events: the lines of `fasp transfer --json` (the schema says so), with the job.
    let deadline = Instant::now() + WITHIN;
    let mut types = Vec::new();
    while !types.iter().any(|t| t == "finished") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("no finished line ({e}); saw {types:?}"));
        let v: Value = serde_json::from_str(&line).expect("JSON");
        let ty = v["type"].as_str().unwrap_or_default().to_owned();
        if ty == "finished" {
            assert_eq!(v["state"], "done", "{line}");
        }
        support::json_line(&line);
        assert_eq!(v["job"], id.as_str(), "{line}");
        assert!(v["epoch"].as_u64().is_some_and(|e| e >= 1), "{line}");
        types.push(ty);
    }
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(count("file_done"), 2, "{types:?}");
    assert_eq!(count("arg_done"), 2, "{types:?}");
    // The worker is woken by the submission, so ascp may have spawned and its session
    // started before the follower connected: those lines come once at most.
    assert!(
        count("session_started") <= 1 && count("spawned") <= 1,
        "{types:?}"
    );
    let _ = follower.kill();
    let _ = follower.wait();

    // A job that is not persistent takes no paths.
    let plain = serve.jobs(&["add-paths", "0123", "/x", "--json"]);
    assert_eq!(plain.status.code(), Some(1));
    assert_eq!(lines(&plain)[0]["code"], "not_found");
    assert_eq!(serve.stop(), 0);
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[test]
fn a_node_job_added_with_node_gets_its_spec_from_the_node_when_it_starts() {
    use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
    let Some(sim) = sim_path() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let node = runtime
        .block_on(NodeStandin::start(StandinConfig::default()))
        .unwrap();
    let work = Work::new();
    // The password is the worker's (its environment), never the client's argument.
    let serve = start(&work, &sim, &[("JOBS_NODE_PASSWORD", NODE_PASSWORD)]);
    let a = work.local_file("a.bin", 200_000);
    let b = work.local_file("b.bin", 300_000);
    // Relative sources: made absolute for the worker, which runs elsewhere.
    let added = fasp()
        .current_dir(work.local(""))
        .args([
            "jobs",
            "--server",
            &serve.url,
            "add",
            "--node",
            node.base_url(),
        ])
        .args(["--user", NODE_USER, "--password-env", "JOBS_NODE_PASSWORD"])
        .args(["--upload", "a.bin", "--upload", "b.bin", "--to", "/inbox"])
        .args(["--timeout", "10", "--json"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let job = &lines(&added)[0];
    assert_eq!(job["kind"], "node", "{job}");
    assert_eq!(job["host"], "127.0.0.1", "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    // No token asked for yet: the job's token is fetched when it starts.
    let watched = serve.jobs(&["watch", &id, "--interval-ms", "100", "--json"]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    assert_eq!(lines(&watched).last().unwrap()["state"], "completed");
    assert_eq!(node.issued_tokens().len(), 1);
    let asked = &node.requests()[0];
    assert!(
        asked.path.ends_with("/files/upload_setup"),
        "{:?}",
        asked.path
    );
    same_bytes(&a, &work.remote("inbox/a.bin"));
    same_bytes(&b, &work.remote("inbox/b.bin"));

    // Usage errors, found before the server is asked.
    let usage = |args: &[&str]| {
        let out = serve.jobs(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let nothing = usage(&[
        "add",
        "--node",
        node.base_url(),
        "--user",
        "u",
        "--to",
        "/x",
    ]);
    assert!(nothing.contains("--upload"), "{nothing}");
    let scheme = usage(&[
        "add",
        "--node",
        "ftp://node",
        "--user",
        "u",
        "--upload",
        "a",
        "--to",
        "/x",
    ]);
    assert!(scheme.contains("scheme"), "{scheme}");
    usage(&[
        "add",
        "--node",
        node.base_url(),
        "--user",
        "u",
        "--upload",
        "a",
    ]);
    usage(&[
        "add",
        "--spec",
        "s.json",
        "--node",
        node.base_url(),
        "--user",
        "u",
        "--upload",
        "a",
        "--to",
        "/x",
    ]);
    assert_eq!(serve.stop(), 0);
    fasp_testkit::assert_no_leftover(&work.needle());
}
