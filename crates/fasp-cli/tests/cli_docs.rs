//! docs/cli.md is a contract the tests hold the command to:
//! - every ```console block in it runs against the built `fasp` (trycmd), from the repository's
//!   root, and must print what the block shows, with the exit status its `? N` line gives;
//! - every JSON line the page shows (`{"type":...}` in any block) is valid against
//!   docs/fasp-json.schema.json: an output line against the schema, a control line against
//!   `$defs/control_line`;
//! - the schema itself accepts the lines `fasp` makes for every event type (through the same
//!   `event_json` the command uses) and refuses renamed, missing or mistyped fields.

mod support;

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use fasp_manager::{
    Direction, Event, EventKind, FileInfo, RatePolicy, Rates, SessionInfo, SessionTotals,
};
use fasp_mgmt_proto::{Control, DecodeError, DecodeErrorKind, FieldError, FieldErrorKind};
use serde_json::{Value, json};
use support::{control_errors, json_line, json_lines, line_errors};

/// The repository's root: docs/ and the examples' relative paths start there.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository's root")
}

/// The page, with every bare opening fence (```) given the language `text`: trycmd would
/// otherwise read a bare block as commands to run. Lines keep their numbers.
fn label_bare_fences(page: &str) -> String {
    let mut out = String::with_capacity(page.len() + 64);
    let mut open = false;
    for line in page.split_inclusive('\n') {
        let fence = line.trim_end();
        if fence.starts_with("```") {
            if !open && fence == "```" {
                out.push_str("```text");
                out.push_str(&line[fence.len()..]);
            } else {
                out.push_str(line);
            }
            open = !open;
        } else {
            out.push_str(line);
        }
    }
    out
}

#[test]
fn the_console_examples_of_cli_md_run_as_shown() {
    let root = repo_root();
    let page = std::fs::read_to_string(root.join("docs/cli.md")).expect("docs/cli.md");
    // trycmd runs a page's commands in the folder named like it with `.in`: a copy of the
    // page beside a link to the root, so that `docs/examples/...` resolves as a user types it.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let case = dir.path().join("cli.md");
    std::fs::write(&case, label_bare_fences(&page)).expect("the page's copy");
    std::os::unix::fs::symlink(&root, dir.path().join("cli.in")).expect("a link to the root");
    trycmd::TestCases::new()
        .register_bin("fasp", PathBuf::from(env!("CARGO_BIN_EXE_fasp")))
        // The default log level, whatever the test's environment says.
        .env("RUST_LOG", "")
        .timeout(Duration::from_secs(60))
        .case(&case)
        .run();
}

/// The JSON lines docs/cli.md shows, with their line numbers: every `{"type"...` line of its
/// ```json blocks, and the output of `fasp transfer|upload|download` in its ```console blocks
/// (not `fasp decode`'s, whose lines are frames, another format).
fn documented_json_lines() -> Vec<(usize, Value)> {
    let page = std::fs::read_to_string(repo_root().join("docs/cli.md")).expect("docs/cli.md");
    let mut block: Option<&str> = None;
    let mut transfer_output = false;
    let mut found = Vec::new();
    for (n, line) in page.lines().enumerate() {
        let text = line.trim();
        if let Some(info) = text.strip_prefix("```") {
            block = match block {
                None => Some(info.trim()),
                Some(_) => None,
            };
            transfer_output = false;
            continue;
        }
        if let Some(command) = text.strip_prefix("$ ") {
            transfer_output = ["fasp transfer", "fasp upload", "fasp download"]
                .iter()
                .any(|c| command.starts_with(c));
            continue;
        }
        let wanted = match block {
            Some("json") => true,
            Some("console") => transfer_output,
            _ => false,
        };
        // `[..]` is trycmd's wildcard: such a line is checked by the run, not here.
        if wanted && text.starts_with("{\"type\"") && !text.contains("[..]") {
            let value: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("docs/cli.md:{}: not JSON ({e}): {text}", n + 1));
            found.push((n + 1, value));
        }
    }
    found
}

#[test]
fn every_json_line_cli_md_shows_follows_the_schema() {
    let lines = documented_json_lines();
    let mut outputs = 0;
    let mut controls = 0;
    for (n, value) in lines {
        let is_control = matches!(
            value["type"].as_str(),
            Some("rate" | "pause" | "resume" | "cancel")
        );
        let problem = if is_control {
            controls += 1;
            control_errors(&value)
        } else {
            outputs += 1;
            json_line(&value.to_string());
            None
        };
        if let Some(problem) = problem {
            panic!("docs/cli.md:{n}: {value}\n{problem}");
        }
    }
    assert!(outputs >= 5, "docs/cli.md shows {outputs} output lines");
    assert!(controls >= 4, "docs/cli.md shows {controls} control lines");
}

/// A file's figures as ascp reports them.
fn file(name: &str) -> FileInfo {
    let mut f = FileInfo::default();
    f.file = name.to_owned();
    f.size = Some(1_000_000);
    f.written = 250_000;
    f.start_byte = Some(0);
    f.session_bytes = Some(250_000);
    f.arg_index = Some(0);
    f
}

/// An event as the manager makes them: in session "s-1", attempt 1, part `part`.
fn in_session(kind: EventKind, part: u32) -> Event {
    let mut e = Event::new(kind);
    e.session_id = Some(Arc::from("s-1"));
    e.attempt = 1;
    e.part = part;
    e
}

/// One event of each kind `fasp --json` prints.
fn every_event() -> Vec<Event> {
    let mut rates = Rates::default();
    rates.target_kbps = Some(100_000);
    rates.min_kbps = Some(0);
    rates.policy = Some(RatePolicy::High);
    let mut session = SessionInfo::default();
    session.direction = Some(Direction::Receive);
    session.host = Some("node.example.com".into());
    session.tcp_port = Some(33001);
    session.rates = rates.clone();
    session.sources = vec!["report.pdf".into()];
    session.destination = Some("/incoming".into());
    let mut totals = SessionTotals::default();
    totals.file_bytes = Some(1_000_000);
    totals.elapsed = Some(Duration::from_millis(1500));
    let mut done = file("report.pdf");
    done.checksum = Some(("SHA256".into(), "ab12".into()));
    let mut progress = in_session(EventKind::FileProgress(file("report.pdf")), 0);
    progress.coalesced = 3;
    vec![
        Event::new(EventKind::Queued),
        in_session(EventKind::Spawned { pid: 4242 }, 0),
        in_session(EventKind::Connected, 1),
        Event::new(EventKind::ForeignConnectionRejected {
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        }),
        in_session(
            EventKind::SessionInit {
                direction: Some(Direction::Send),
                operation: Some("Transfer".into()),
            },
            0,
        ),
        in_session(EventKind::SessionStarted(Box::new(session)), 0),
        in_session(EventKind::RateChanged(rates), 0),
        in_session(EventKind::RateChanged(Rates::default()), 0),
        in_session(EventKind::Paused, 0),
        in_session(EventKind::Resumed, 0),
        in_session(
            EventKind::JobSize {
                files: Some(2),
                bytes: None,
            },
            0,
        ),
        in_session(EventKind::FileStarted(file("report.pdf")), 0),
        progress,
        in_session(EventKind::FileDone(done), 0),
        in_session(EventKind::FileDone(FileInfo::default()), 2),
        in_session(EventKind::FileSkipped(file("old.txt")), 0),
        in_session(
            EventKind::FileFailed {
                file: file("locked.txt"),
                code: Some(19),
                description: "Permission denied".into(),
            },
            0,
        ),
        in_session(
            EventKind::ArgDone {
                source: "photos".into(),
                attempted: 3,
                passed: 2,
                skipped: 1,
                failed: 0,
            },
            0,
        ),
        in_session(EventKind::SessionDone(totals), 0),
        in_session(EventKind::SessionDone(SessionTotals::default()), 0),
        in_session(
            EventKind::SessionFailed {
                code: 44,
                description: "Failed to open TCP connection for SSH".into(),
                retryable: true,
            },
            0,
        ),
        in_session(
            EventKind::Query {
                query: "overwrite?".into(),
                allowed: false,
            },
            0,
        ),
        in_session(EventKind::Unknown, 0),
        in_session(
            EventKind::InvalidFrame(FieldError {
                message: "STATS".into(),
                key: "Bytescont".into(),
                kind: FieldErrorKind::Missing,
            }),
            0,
        ),
        Event::new(EventKind::Malformed(DecodeError {
            offset: 1234,
            kind: DecodeErrorKind::MissingHeader,
        })),
        Event::new(EventKind::Retrying {
            next_attempt: 2,
            after: Duration::from_millis(2000),
            reason: "code 44".into(),
        }),
        in_session(EventKind::ControlSent(Control::Cancel), 0),
        Event::new(EventKind::Exited {
            status: ExitStatus::from_raw(0),
        }),
        // Killed by SIGKILL: no code, a signal.
        Event::new(EventKind::Exited {
            status: ExitStatus::from_raw(9),
        }),
        Event::new(EventKind::Lagged { missed: 12 }),
    ]
}

#[test]
fn the_schema_accepts_the_line_of_every_event_type() {
    let mut types = Vec::new();
    for event in every_event() {
        let value = fasp_cli::event_json(&event).expect("a JSON line");
        json_line(&value.to_string());
        types.push(value["type"].as_str().unwrap_or_default().to_owned());
    }
    // Every type the schema lists (but warning and outcome, checked below, and finished, a
    // line of `fasp jobs events` only, checked by tests/jobs_client.rs) is made above.
    let schema = support::schema_value();
    let listed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .expect("the schema's type enum")
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !matches!(*t, "warning" | "outcome" | "finished"))
        .collect();
    for t in listed {
        assert!(types.iter().any(|m| m == t), "no event of type {t} tested");
    }
}

/// A valid line with one change: the schema must refuse it.
fn refused(line: &Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = line.clone();
    change(v.as_object_mut().expect("an object"));
    line_errors(&v).unwrap_or_else(|| panic!("the schema accepts {v}"))
}

#[test]
fn the_schema_refuses_renamed_missing_and_mistyped_fields() {
    let progress =
        fasp_cli::event_json(&in_session(EventKind::FileProgress(file("report.pdf")), 0))
            .expect("a line");
    assert!(line_errors(&progress).is_none());
    refused(&progress, |m| {
        let v = m.shift_remove("written").expect("written");
        m.insert("writen".into(), v);
    });
    refused(&progress, |m| {
        m.shift_remove("file");
    });
    refused(&progress, |m| {
        m.insert("written".into(), json!("250000"));
    });
    refused(&progress, |m| {
        m.insert("written".into(), json!(2.5));
    });
    refused(&progress, |m| {
        m.insert("written".into(), json!(-1));
    });
    refused(&progress, |m| {
        m.insert("type".into(), json!("file_progres"));
    });
    refused(&progress, |m| {
        m.shift_remove("type");
    });
    refused(&progress, |m| {
        m.insert("attempt".into(), Value::Null);
    });
    let rate = fasp_cli::event_json(&in_session(EventKind::RateChanged(Rates::default()), 0))
        .expect("a line");
    refused(&rate, |m| {
        m.insert("policy".into(), json!("Adaptive"));
    });
    // ascp's own words are not the contract's.
    let init = fasp_cli::event_json(&in_session(
        EventKind::SessionInit {
            direction: Some(Direction::Send),
            operation: None,
        },
        0,
    ))
    .expect("a line");
    assert_eq!(init["direction"], "send");
    refused(&init, |m| {
        m.insert("direction".into(), json!("Send"));
    });
    let warning = json!({"type": "warning", "message": "careful"});
    assert!(line_errors(&warning).is_none());
    refused(&warning, |m| {
        m.insert("text".into(), json!("careful"));
    });
}

/// `fasp` with these arguments: its exit status and stdout.
fn fasp(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .args(args)
        .current_dir(repo_root())
        .env("RUST_LOG", "")
        .output()
        .expect("fasp runs");
    (
        out.status.code(),
        String::from_utf8(out.stdout).expect("UTF-8"),
    )
}

#[test]
fn outcome_lines_follow_the_schema_and_refuse_contradictions() {
    // A bad spec (exit 2), a refused placeholder (exit 2), no ascp (exit 1, after a warning).
    let runs = [
        (
            vec!["transfer", "--json", "--spec", "docs/examples/bad.json"],
            2,
        ),
        (
            vec![
                "transfer",
                "--json",
                "--spec",
                "docs/examples/redacted.json",
            ],
            2,
        ),
        (
            vec![
                "transfer",
                "--json",
                "--spec",
                "docs/examples/typo.json",
                "--ascp",
                "/nonexistent/ascp",
            ],
            1,
        ),
    ];
    let mut outcome = Value::Null;
    for (args, exit) in runs {
        let (code, stdout) = fasp(&args);
        assert_eq!(code, Some(exit), "{args:?}: {stdout}");
        let lines = json_lines(&stdout);
        let last = lines.last().expect("an outcome line");
        assert_eq!(last["type"], "outcome", "{stdout}");
        assert_eq!(last["exit"], exit, "{stdout}");
        outcome = last.clone();
    }
    refused(&outcome, |m| {
        m.insert("ok".into(), json!(true));
    });
    refused(&outcome, |m| {
        m.insert("exit".into(), json!(3));
    });
    refused(&outcome, |m| {
        m.insert("interrupted".into(), json!(true));
    });
    refused(&outcome, |m| {
        m.shift_remove("files");
    });
    refused(&outcome, |m| {
        m.insert("files".into(), json!({"done": 0, "skipped": 0}));
    });
    refused(&outcome, |m| {
        m.insert("files_done".into(), json!(0));
    });
    refused(&outcome, |m| {
        m.insert("meaning".into(), json!("Cancelled"));
    });
    let mut interrupted = outcome.clone();
    interrupted["exit"] = json!(130);
    interrupted["interrupted"] = json!(true);
    interrupted["code"] = json!(28);
    assert_eq!(line_errors(&interrupted), None);
    let mut fasp_error = outcome;
    fasp_error["code"] = json!(44);
    fasp_error["meaning"] = json!("SSH connection failed");
    fasp_error["session_id"] = json!("s-1");
    fasp_error["failed_files"] = json!([{"file": "a", "code": null, "description": "x"}]);
    assert_eq!(line_errors(&fasp_error), None);
}

#[test]
fn control_lines_follow_their_schema() {
    for good in [
        json!({"type": "rate", "target_kbps": 5000}),
        json!({"type": "rate", "target_kbps": 5000, "min_kbps": 100, "policy": "fair"}),
        json!({"type": "rate", "policy": "low"}),
        json!({"type": "pause"}),
        json!({"type": "resume"}),
        json!({"type": "cancel"}),
    ] {
        assert_eq!(control_errors(&good), None, "{good}");
    }
    for bad in [
        json!({"type": "rate"}),
        json!({"type": "rate", "target_kbps": null}),
        json!({"type": "rate", "target_kbps": -1}),
        json!({"type": "rate", "target_rate": 5000}),
        json!({"type": "rate", "policy": "turbo"}),
        json!({"type": "pause", "now": true}),
        json!({"type": "stop"}),
        json!({"target_kbps": 5000}),
    ] {
        assert!(control_errors(&bad).is_some(), "accepted: {bad}");
    }
}

/// `fasp transfer --json` against ascp-sim, with `stdin` lines sent as events come: every
/// line it prints, each checked by `json_line` as it arrives, and its exit status.
fn run_sim(
    sim: &Path,
    spec: &Value,
    extra: &[&str],
    remote: &Path,
    mut on_line: impl FnMut(&Value) -> Option<String>,
) -> (Option<i32>, Vec<Value>) {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("the spec");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fasp"))
        .arg("transfer")
        .arg("--json")
        .arg("--spec")
        .arg(&spec_path)
        .arg("--ascp")
        .arg(sim)
        .args(extra)
        .env("FASP_ASCP_ENV", "ASCP_SIM_*")
        .env("ASCP_SIM_ROOT", remote)
        .env("ASCP_SIM_STATS_INTERVAL_MS", "20")
        .env("RUST_LOG", "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("fasp runs");
    let mut stdin = child.stdin.take().expect("its stdin");
    let stdout = BufReader::new(child.stdout.take().expect("its stdout"));
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let value = json_line(&line.expect("a line"));
        if let Some(control) = on_line(&value) {
            assert_eq!(control_errors(&json_line_unchecked(&control)), None);
            let _ = writeln!(stdin, "{control}").and_then(|()| stdin.flush());
        }
        lines.push(value);
    }
    drop(stdin);
    (child.wait().expect("fasp ends").code(), lines)
}

fn json_line_unchecked(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

/// Bytes that differ from file to file.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn real_runs_against_ascp_sim_follow_the_schema_line_by_line() {
    let Some(sim) = support::sim_path() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    std::fs::create_dir_all(local.join("photos")).expect("local folders");
    std::fs::create_dir_all(&remote).expect("the remote folder");
    std::fs::write(local.join("report.pdf"), pattern(1, 600_000)).expect("a file");
    std::fs::write(local.join("photos/a.jpg"), pattern(2, 300_000)).expect("a file");
    let source = |name: &str| local.join(name).to_str().expect("UTF-8").to_owned();

    // Two sessions, checksums, and every control line while the first file moves.
    let spec = json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "paths": [{"source": source("report.pdf")}, {"source": source("photos")}],
        "destination_root": "/incoming", "create_dir": true,
    });
    let mut controls = vec![
        r#"{"type":"pause"}"#,
        r#"{"type":"resume"}"#,
        r#"{"type":"rate","target_kbps":200000,"min_kbps":0,"policy":"fixed"}"#,
    ]
    .into_iter();
    let (code, lines) = run_sim(
        &sim,
        &spec,
        &[
            "--multi-session",
            "2",
            "--checksum",
            "sha256",
            "--target-rate",
            "20",
        ],
        &remote,
        |line| {
            (line["type"] == "file_progress")
                .then(|| controls.next().map(str::to_owned))
                .flatten()
        },
    );
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(code, Some(0), "{lines:#?}");
    for wanted in [
        "spawned",
        "session_init",
        "file_done",
        "control_sent",
        "paused",
        "resumed",
        "exited",
    ] {
        assert!(types.contains(&wanted), "no {wanted} in {types:?}");
    }
    assert!(lines.iter().any(|l| l["part"] == 1), "no second session");
    assert!(
        lines
            .iter()
            // As ascp names it: "sha-256".
            .any(|l| l["type"] == "file_done"
                && l["checksum_type"]
                    .as_str()
                    .is_some_and(|t| t.replace('-', "") == "sha256")),
        "no checksum in {lines:#?}"
    );
    let outcome = lines.last().expect("an outcome");
    assert_eq!(outcome["type"], "outcome");
    assert_eq!(outcome["sessions"], 2, "{outcome}");

    // A failure: a source that does not exist.
    let missing = json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "paths": [{"source": source("not-there.bin")}], "destination_root": "/incoming",
    });
    let (code, lines) = run_sim(&sim, &missing, &[], &remote, |_| None);
    assert_eq!(code, Some(1), "{lines:#?}");
    let outcome = lines.last().expect("an outcome");
    assert_eq!(outcome["ok"], false, "{outcome}");
    assert!(outcome["code"].is_u64(), "{outcome}");
}

/// Every subcommand of `fasp`, as `fasp node upload-setup`, with the command itself.
fn subcommands(command: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in command.get_subcommands() {
        let path = format!("{prefix} {}", sub.get_name());
        out.push((path.clone(), sub.clone()));
        subcommands(sub, &path, out);
    }
}

/// Whether `page` shows `flag` as a word of its own (`--out DIR`, `` `-q` ``), not as the
/// start of a longer one.
fn names(page: &str, flag: &str) -> bool {
    page.match_indices(flag).any(|(at, _)| {
        let before = page[..at].chars().next_back();
        let after = page[at + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn cli_md_covers_every_subcommand_and_option() {
    use clap::CommandFactory;
    let page = std::fs::read_to_string(repo_root().join("docs/cli.md")).expect("docs/cli.md");
    let mut all = Vec::new();
    subcommands(&fasp_cli::Cli::command(), "fasp", &mut all);
    let mut missing = Vec::new();
    for (path, command) in &all {
        if !page.contains(path.as_str()) {
            missing.push(path.clone());
        }
        for arg in command.get_arguments() {
            let long = arg.get_long().map(|l| format!("--{l}"));
            let short = arg.get_short().map(|s| format!("-{s}"));
            if matches!(long.as_deref(), Some("--help" | "--version")) {
                continue;
            }
            let named = [&long, &short]
                .into_iter()
                .flatten()
                .any(|flag| names(&page, flag));
            if (long.is_some() || short.is_some()) && !named {
                missing.push(format!("{path} {}", long.or(short).unwrap_or_default()));
            }
        }
    }
    assert!(missing.len() < all.len(), "no subcommand found");
    assert!(missing.is_empty(), "docs/cli.md does not name: {missing:?}");
}
