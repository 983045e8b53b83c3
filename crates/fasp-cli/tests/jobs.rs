//! `fasp serve`, `fasp worker` and `fasp jobs` end to end: the built `fasp` serving a SQLite
//! job store on a free loopback port, jobs added and watched to completion with the client,
//! ascp-sim as the engine; tokens; usage errors.
//!
//! `cargo test --workspace` builds ascp-sim first; run alone, the tests that transfer skip
//! with a notice when it is missing (with `CI=true` they fail).
#![cfg(feature = "jobs")]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use fasp_testkit::sim::Work;
use serde_json::Value;
use support::serve::{
    Daemon, WITHIN, fasp, follow_events, jobs, same_bytes, serve_command, stderr,
    typed_lines as json_lines, with_sim,
};
use support::sim_path;

/// `fasp serve ARGS...`, its worker's ascp being ascp-sim in `work` if `sim` is given;
/// waits for its `listening on URL` line.
fn serve(work: &Work, sim: Option<&Path>, args: &[&str]) -> Daemon {
    let mut cmd = serve_command(fasp(), work);
    cmd.args(args);
    if let Some(sim) = sim {
        with_sim(&mut cmd, work, sim);
    }
    Daemon::start(cmd.stderr(Stdio::piped()), |child| {
        let out = child.wait_with_output().expect("fasp serve's output");
        format!(", stderr {}", String::from_utf8_lossy(&out.stderr))
    })
}

/// `fasp serve --no-worker` on a Unix socket in `work`: the daemon and the socket's path.
fn api_only(work: &Work) -> (Daemon, std::path::PathBuf) {
    let socket = work.path().join("fasp.sock");
    let daemon = serve(
        work,
        None,
        &["--socket", socket.to_str().unwrap(), "--no-worker"],
    );
    (daemon, socket)
}

fn spec_file(work: &Work, sources: &[&Path], dest: &str) -> String {
    let paths: Vec<_> = sources
        .iter()
        .map(|s| serde_json::json!({"source": s.to_str().unwrap()}))
        .collect();
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": 100_000, "paths": paths, "destination_root": dest
    });
    let path = work.path().join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_job_added_to_fasp_serve_is_watched_until_completed() {
    let Some(sim) = sim_path() else { return };
    let work = Work::new();
    let daemon = serve(&work, Some(&sim), &["--listen", "127.0.0.1:0"]);
    let a = work.local_file("a.bin", 300_000);
    let b = work.local_file("b.bin", 1_500_000);
    let spec = spec_file(&work, &[&a, &b], "/inbox");
    // The live events of the server's worker, followed from before the job exists (from
    // once the server has answered, it gets every event).
    let (mut follower, lines_rx) = follow_events(&daemon.url, &["--json"]);

    let added = jobs(
        &daemon.url,
        &[
            "add", "--spec", &spec, "--tag", "cli", "--key", "k1", "--json",
        ],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let lines = json_lines(&added);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "job");
    assert_eq!(lines[0]["created"], true);
    let id = lines[0]["id"].as_str().expect("an id").to_owned();

    // The same key again: the same job, said on stderr in text mode.
    let again = jobs(&daemon.url, &["add", "--spec", &spec, "--key", "k1"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);
    assert!(
        stderr(&again).contains("submitted before"),
        "{}",
        stderr(&again)
    );

    let watched = jobs(
        &daemon.url,
        &["watch", &id, "--json", "--interval-ms", "100"],
    );
    assert!(
        watched.status.success(),
        "exit {:?}: {}",
        watched.status,
        stderr(&watched)
    );
    let updates = json_lines(&watched);
    assert!(
        updates
            .iter()
            .all(|u| u["type"] == "job" && u["id"] == id.as_str())
    );
    let last = updates.last().expect("an update");
    assert_eq!(last["state"], "completed", "{updates:?}");
    assert_eq!(last["bytes_done"], 1_800_000);
    same_bytes(&a, &work.remote("inbox/a.bin"));
    same_bytes(&b, &work.remote("inbox/b.bin"));

    // The follower saw the transfer: type first, the job named, both files done, the end.
    let deadline = Instant::now() + WITHIN;
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "finished") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines_rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no finished event ({e}); saw {kinds:?}"));
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        let first = v.as_object().and_then(|o| o.keys().next().cloned());
        assert_eq!(first.as_deref(), Some("type"), "{line}");
        assert_eq!(v["job"], id.as_str(), "{line}");
        kinds.push(v["type"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        kinds.iter().filter(|k| *k == "file_done").count(),
        2,
        "{kinds:?}"
    );
    let _ = follower.kill();
    let _ = follower.wait();

    let shown = jobs(&daemon.url, &["show", &id, "--json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = json_lines(&shown);
    assert_eq!(shown[0]["state"], "completed");
    let files: Vec<_> = shown.iter().filter(|l| l["type"] == "file").collect();
    assert_eq!(files.len(), 2, "{shown:?}");
    assert!(files.iter().all(|f| f["outcome"] == "done"), "{files:?}");

    let text = jobs(
        &daemon.url,
        &["list", "--state", "completed", "--tag", "cli"],
    );
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.starts_with("ID"), "{text}");
    assert!(text.contains(&id) && text.contains("completed"), "{text}");
    let none = jobs(&daemon.url, &["list", "--tag", "other", "--json"]);
    assert!(json_lines(&none).is_empty());

    // Ended jobs can be neither paused nor cancelled twice over.
    let pause = jobs(&daemon.url, &["pause", &id, "--json"]);
    assert_eq!(pause.status.code(), Some(1));
    let error = &json_lines(&pause)[0];
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "failed_precondition");
    assert_eq!(daemon.stop(), 0);
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[test]
fn a_separate_fasp_worker_runs_the_jobs_of_an_api_only_server() {
    let Some(sim) = sim_path() else { return };
    let work = Work::new();
    let (daemon, socket) = api_only(&work);
    assert_eq!(daemon.url, format!("unix:{}", socket.display()));
    let a = work.local_file("a.bin", 200_000);
    // One source into an existing folder (a missing one would be the file's new name).
    std::fs::create_dir(work.remote("w")).unwrap();
    let spec = spec_file(&work, &[&a], "/w");
    let added = jobs(&daemon.url, &["add", "--spec", &spec]);
    assert!(added.status.success(), "{}", stderr(&added));
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    // No worker: it stays queued; paused and resumed meanwhile.
    let paused = jobs(&daemon.url, &["pause", &id]);
    assert_eq!(
        String::from_utf8_lossy(&paused.stdout).trim(),
        format!("{id} paused")
    );
    let resumed = jobs(&daemon.url, &["resume", &id]);
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout).trim(),
        format!("{id} queued")
    );
    let rate = jobs(
        &daemon.url,
        &["rate", &id, "--target-rate", "50m", "--json"],
    );
    assert!(rate.status.success(), "{}", stderr(&rate));
    assert_eq!(json_lines(&rate)[0]["target_rate_kbps"], 50_000);

    let mut cmd = fasp();
    cmd.arg("worker")
        .arg("--db")
        .arg(work.path().join("jobs.db"));
    with_sim(&mut cmd, &work, &sim);
    let worker = Daemon::unlisted(
        cmd.stderr(Stdio::null())
            .spawn()
            .expect("start fasp worker"),
    );
    let watched = jobs(&daemon.url, &["watch", &id]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    let text = String::from_utf8_lossy(&watched.stdout).into_owned();
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .contains("completed"),
        "{text}"
    );
    same_bytes(&a, &work.remote("w/a.bin"));
    assert_eq!(worker.stop(), 0);

    // A job cancelled while queued: its watch ends with exit 1.
    let added = jobs(&daemon.url, &["add", "--spec", &spec]);
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    let cancelled = jobs(&daemon.url, &["cancel", &id]);
    assert_eq!(
        String::from_utf8_lossy(&cancelled.stdout).trim(),
        format!("{id} cancelled")
    );
    assert_eq!(jobs(&daemon.url, &["watch", &id]).status.code(), Some(1));
    assert_eq!(daemon.stop(), 0);
    assert!(!socket.exists());
}

#[test]
fn other_addresses_need_a_token_file_and_clients_must_send_it() {
    let work = Work::new();
    let out = fasp()
        .arg("serve")
        .arg("--db")
        .arg(work.path().join("jobs.db"))
        .args(["--listen", "0.0.0.0:0", "--no-worker"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("without a token"), "{}", stderr(&out));

    let token = work.path().join("token");
    std::fs::write(&token, "a-token-for-the-cli-test\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = token.to_str().unwrap();
    let daemon = serve(
        &work,
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            token,
            "--no-worker",
        ],
    );
    let refused = jobs(&daemon.url, &["list", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(json_lines(&refused)[0]["code"], "unauthenticated");
    let allowed = jobs(&daemon.url, &["list", "--token-file", token]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert_eq!(daemon.stop(), 0);

    // Usage errors: exit 2, before any server is reached.
    let bad_state = jobs("http://127.0.0.1:1", &["list", "--state", "done"]);
    assert_eq!(bad_state.status.code(), Some(2), "{}", stderr(&bad_state));
    let missing_spec = jobs(
        "http://127.0.0.1:1",
        &["add", "--spec", "/nonexistent/spec.json"],
    );
    assert_eq!(missing_spec.status.code(), Some(2));
    // No server there: exit 1.
    let unreachable = jobs("http://127.0.0.1:1", &["list"]);
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        stderr(&unreachable)
    );
}

/// `fasp serve --tls-cert --tls-key`: it says an https:// address, `fasp jobs --cacert`
/// reaches it, a client that does not trust the certificate is told to give it; usage errors
/// (exit 2) for a key others can read, half a pair, TLS on a Unix socket.
#[test]
fn fasp_serve_over_tls_is_reached_with_its_certificate() {
    let work = Work::new();
    let cert = fasp_testkit::tls::self_signed(work.path(), "server");
    let (crt, key) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let daemon = serve(
        &work,
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            crt,
            "--tls-key",
            key,
            "--no-worker",
        ],
    );
    assert!(
        daemon.url.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.url
    );
    let listed = jobs(&daemon.url, &["list", "--json", "--cacert", crt]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let untrusted = jobs(&daemon.url, &["list"]);
    assert_eq!(untrusted.status.code(), Some(1), "{}", stderr(&untrusted));
    let said = stderr(&untrusted);
    assert!(
        said.contains("certificate") && said.contains("--cacert"),
        "{said}"
    );
    assert_eq!(daemon.stop(), 0);

    let loose = work.path().join("loose.key");
    std::fs::write(&loose, &cert.key_pem).unwrap();
    let db = work.path().join("jobs.db");
    let usage = |args: &[&str]| {
        let out = fasp()
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let said = usage(&["--tls-cert", crt, "--tls-key", loose.to_str().unwrap()]);
    assert!(said.contains("chmod 600"), "{said}");
    usage(&["--tls-cert", crt]);
    let socket = work.path().join("s.sock");
    usage(&[
        "--socket",
        socket.to_str().unwrap(),
        "--tls-cert",
        crt,
        "--tls-key",
        key,
    ]);
    assert!(!socket.exists());
}

/// `fasp worker --lease`: a worker killed mid-job (SIGKILL: no goodbye) loses the job to
/// another worker once the lease it took runs out, and the job still completes byte-exact.
/// With the default lease (30 s) the take-over could not come within the bound below.
#[test]
fn a_killed_workers_job_is_taken_over_after_its_lease() {
    let Some(sim) = sim_path() else { return };
    let work = Work::new();
    let (daemon, _socket) = api_only(&work);
    // About 8 s at 8 Mbit/s: long enough to be killed in the middle.
    let a = work.local_file("a.bin", 8_000_000);
    std::fs::create_dir(work.remote("w")).unwrap();
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": 8_000, "paths": [{"source": a.to_str().unwrap()}],
        "destination_root": "/w"
    });
    let spec_path = work.path().join("slow.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let added = jobs(&daemon.url, &["add", "--spec", spec_path.to_str().unwrap()]);
    assert!(added.status.success(), "{}", stderr(&added));
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    let job = |url: &str| -> Value {
        let shown = jobs(url, &["--json", "show", &id]);
        assert!(shown.status.success(), "{}", stderr(&shown));
        json_lines(&shown)
            .into_iter()
            .find(|l| l["type"] == "job")
            .expect("a job line")
    };
    let worker = |name: &str| {
        let mut cmd = fasp();
        cmd.arg("worker")
            .arg("--db")
            .arg(work.path().join("jobs.db"))
            .args(["--worker-id", name, "--lease", "2", "--heartbeat", "0.5"])
            .args(["--poll", "0.2"]);
        with_sim(&mut cmd, &work, &sim);
        Daemon::unlisted(
            cmd.stderr(Stdio::null())
                .spawn()
                .expect("start fasp worker"),
        )
    };
    let first = worker("first");
    // Running, some bytes saved by a heartbeat: then killed.
    let deadline = Instant::now() + WITHIN;
    loop {
        let j = job(&daemon.url);
        if j["state"] == "running" && j["bytes_done"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(j["lease_owner"], "first");
            break;
        }
        assert!(Instant::now() < deadline, "never running: {j}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    nix::sys::signal::kill(first.pid(), nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
    let killed = Instant::now();
    drop(first);
    let second = worker("second");
    loop {
        let j = job(&daemon.url);
        if j["lease_owner"] == "second" {
            assert_eq!(j["claims"], 2, "{j}");
            break;
        }
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(15),
            "not taken over 15 s after the kill, with a 2 s lease: {j}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let took = killed.elapsed();
    let watched = jobs(&daemon.url, &["watch", &id]);
    assert!(watched.status.success(), "{}", stderr(&watched));
    same_bytes(&a, &work.remote("w/a.bin"));
    assert!(
        took >= std::time::Duration::from_millis(1_500),
        "taken over {took:?} after the kill: before the lease ran out"
    );
    assert_eq!(second.stop(), 0);
    assert_eq!(daemon.stop(), 0);
    fasp_testkit::assert_no_leftover(&work.needle());
}
