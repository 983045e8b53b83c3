//! Faithfulness: ascp-sim's INIT, SESSION and early ERROR frames against what a real ascp
//! 3.9 wrote: the captures in `fasp-mgmt-proto/tests/fixtures/real-ascp/` (same command
//! line, same keys in the same order, same values except the ones that differ by nature),
//! and, when `FASP_ASCP` names the real binary, live runs of both with the same arguments.

mod support;

use std::fs;
use std::path::PathBuf;

use bytes::BytesMut;
use fasp_mgmt_proto::{Frame, FrameParser};
use support::{ClosedPort, Run, Spawn, Work};

/// Values that differ between two runs by nature.
const VOLATILE: &[&str] = &["SessionId", "ClientUser"];

fn fixture(name: &str) -> Vec<Frame> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fasp-mgmt-proto/tests/fixtures/real-ascp")
        .join(name);
    let mut buf = BytesMut::from(&fs::read(&path).unwrap()[..]);
    let mut parser = FrameParser::new();
    let mut out = Vec::new();
    while let Some(f) = parser.parse(&mut buf).unwrap() {
        out.push(f);
    }
    out
}

/// Same keys, same order, same values except `VOLATILE` and `also` (which must still be
/// present in both).
fn same_frame(what: &str, real: &Frame, sim: &Frame, also: &[&str]) {
    let rk: Vec<&str> = real.fields().map(|f| f.key).collect();
    let sk: Vec<&str> = sim.fields().map(|f| f.key).collect();
    assert_eq!(
        sk, rk,
        "{what}: keys or order differ\nreal: {real}\nsim: {sim}"
    );
    for (r, s) in real.fields().zip(sim.fields()) {
        if VOLATILE.contains(&r.key) || also.contains(&r.key) {
            continue;
        }
        assert_eq!(
            s.value, r.value,
            "{what}: {} differs\nreal: {real}\nsim: {sim}",
            r.key
        );
    }
    // The session id has the real one's shape.
    if let (Some(a), Some(b)) = (real.get("SessionId"), sim.get("SessionId")) {
        let shape = |s: &str| s.split('-').map(str::len).collect::<Vec<_>>();
        assert_eq!(shape(a), shape(b), "{what}: SessionId shape");
    }
}

fn first<'a>(frames: &'a [Frame], t: &str) -> &'a Frame {
    frames
        .iter()
        .find(|f| f.type_name() == Some(t))
        .unwrap_or_else(|| panic!("no {t}"))
}

/// The captures, replayed with the command lines that produced them.
#[test]
fn captures_of_the_real_ascp() {
    let w = Work::new();
    let pairs = w.path().join("pairs.txt");
    fs::write(&pairs, "/srv/outbox/report.txt\nreport.txt\n").unwrap();
    let pairs_arg = format!("--file-pair-list={}", pairs.display());
    let base = [
        "--mode=send",
        "--user=root",
        "--host=127.0.0.1",
        "-P",
        "33235",
    ];
    let src = "/srv/outbox/report.txt";
    let dst = "/srv/inbox";
    let tags = r#"--tags={"aspera":{"xfer_id":"abc","xfer_retry":3600}}"#;
    // (capture, extra arguments, whether the session was negotiated with the peer)
    let cases: Vec<(&str, Vec<&str>, bool)> = vec![
        (
            "license-abort-send.faspmgr",
            vec!["-l", "200000", "-k", "1", src, dst],
            true,
        ),
        (
            "license-abort-recv.faspmgr",
            vec!["--mode=recv", src, dst],
            true,
        ),
        (
            "tags-two-sources.faspmgr",
            vec![tags, src, "/srv/outbox/big.bin", dst],
            true,
        ),
        (
            "keepalive-license-abort.faspmgr",
            vec!["--keepalive", dst],
            true,
        ),
        (
            "precalc-license-abort.faspmgr",
            vec!["--precalculate-job-size", src, dst],
            true,
        ),
        (
            "file-pair-list.faspmgr",
            vec![pairs_arg.as_str(), dst],
            true,
        ),
    ];
    for (name, extra, _) in &cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        let sim = Spawn::new(&args).root(&w).spawn();
        if extra.contains(&"--keepalive") {
            sim.wait_type("SESSION", std::time::Duration::from_secs(5));
            sim.send(&fasp_mgmt_proto::Control::Done(
                fasp_mgmt_proto::DoneOperation::Shutdown,
            ));
        }
        let sim = sim.wait(std::time::Duration::from_secs(10));
        let real = fixture(name);
        for t in ["INIT", "SESSION"] {
            same_frame(&format!("{name} {t}"), first(&real, t), sim.one(t), &[]);
        }
        eprintln!("{name}: INIT and SESSION equal");
    }
}

/// The early failures: whole streams (INIT, SESSION, ERROR) equal.
#[test]
fn failure_captures_whole_streams() {
    let w = Work::new();
    let base = ["--mode=send", "--host=127.0.0.1"];
    // Missing source: negotiated, then ERROR 43.
    let mut args = base.to_vec();
    args.extend([
        "--user=root",
        "-P",
        "33235",
        "/srv/outbox/does-not-exist",
        "/srv/inbox",
    ]);
    let sim = Spawn::new(&args).root(&w).run();
    compare_stream("missing-source.faspmgr", &sim);
    // Closed SSH port: no ASCP_SIM_ROOT.
    let mut args = base.to_vec();
    args.extend([
        "--user=xfer",
        "-P",
        "39999",
        "-u",
        "5492958869869553497",
        "/srv/outbox/report.txt",
        "/srv/inbox",
    ]);
    let sim = Spawn::new(&args).run();
    compare_stream("closed-ssh-port.faspmgr", &sim);
    assert_eq!(
        sim.stderr.lines().last(),
        Some("ascp: Failed to open TCP connection for SSH, exiting.")
    );
    // Failed login.
    let mut args = base.to_vec();
    args.extend([
        "--user=root",
        "-P",
        "33235",
        "/srv/outbox/report.txt",
        "/srv/inbox",
    ]);
    let sim = Spawn::new(&args)
        .root(&w)
        .env("ASCP_SIM_EXPECT_USER", "someone-else")
        .run();
    compare_stream("auth-failure.faspmgr", &sim);
}

fn compare_stream(name: &str, sim: &Run) {
    let real = fixture(name);
    let types: Vec<&str> = real.iter().map(|f| f.type_name().unwrap()).collect();
    assert_eq!(sim.types(), types, "{name}: {sim:#?}");
    for (r, s) in real.iter().zip(&sim.frames) {
        same_frame(name, r, s, &[]);
    }
    assert_eq!(sim.code, Some(1));
    eprintln!("{name}: whole stream equal");
}

/// Live: the real ascp against a closed SSH port and ascp-sim without a remote root both
/// fail before SSH; their INIT, SESSION and ERROR frames, stdout and exit status must be
/// equal for every command line here.
#[test]
fn live_against_the_real_ascp() {
    let ascp = fasp_testkit::require_real_ascp!();
    let w = Work::new();
    let list = w.path().join("list.txt");
    fs::write(&list, "/srv/a.txt\n./b:c.txt\n").unwrap();
    let pairs = w.path().join("pairs.txt");
    fs::write(&pairs, "/srv/a.txt\nx/a.txt\nrel.txt\n/abs/y.txt\n").unwrap();
    let list_arg = format!("--file-list={}", list.display());
    let pairs_arg = format!("--file-pair-list={}", pairs.display());
    let closed = ClosedPort::new();
    let port = closed.port.to_string();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (vec![], vec![]),
        (vec!["--mode=recv"], vec![]),
        (vec!["-l", "50000", "-m", "100", "--policy=fixed"], vec![]),
        (vec!["-l", "1.5m", "--policy=high"], vec![]),
        (vec!["-l", "10", "-m", "20", "--policy=low"], vec![]),
        (vec!["--policy=fair", "-l", "0"], vec![]),
        (vec!["-T"], vec![]),
        (vec!["-c", "aes256"], vec![]),
        (vec!["-c", "aes192", "-O", "33005"], vec![]),
        (vec!["-k", "1"], vec![]),
        (vec!["-k", "2", "--overwrite=always"], vec![]),
        (vec!["-k", "3", "--overwrite=older"], vec![]),
        (vec!["-d", "-p"], vec![]),
        (
            vec![
                "--preserve-access-time",
                "--preserve-modification-time",
                "--preserve-creation-time",
                "--preserve-source-access-time",
            ],
            vec![],
        ),
        (
            vec!["--preserve-file-owner-uid", "--preserve-file-owner-gid"],
            vec![],
        ),
        (
            vec!["--file-checksum=sha256", "--precalculate-job-size"],
            vec![],
        ),
        (vec!["-C", "2:3", "-Z", "1400"], vec![]),
        (vec!["--src-base=/srv", "--source-prefix=/pre/"], vec![]),
        (
            vec![r#"--tags={"aspera":{"xfer_id":"x1","xfer_retry":60}}"#],
            vec![],
        ),
        (vec!["--tags64=eyLDqSI6InggeSJ9"], vec![]),
        (
            vec!["-u", "nonce"],
            vec![("ASPERA_SCP_COOKIE", "my cookie: with colon")],
        ),
        (
            vec!["--symbolic-links=copy", "--skip-special-files"],
            vec![],
        ),
        (vec!["--symbolic-links=skip"], vec![]),
        (vec!["--symbolic-links=copy+force"], vec![]),
        (
            vec!["--remove-after-transfer", "--remove-empty-directories"],
            vec![],
        ),
        (
            vec![
                "--partial-file-suffix=.part",
                "--file-manifest=text",
                "--file-manifest-path=/tmp",
            ],
            vec![],
        ),
        (vec!["-g", "64K", "-G", "1M"], vec![]),
        (
            vec!["--file-crypt=encrypt"],
            vec![("ASPERA_SCP_FILEPASS", "pw")],
        ),
        (
            vec!["--file-crypt=decrypt", "--move-after-transfer=/arch"],
            vec![("ASPERA_SCP_FILEPASS", "pw")],
        ),
        (
            vec!["--user=other", "-W", "tok"],
            vec![("ASPERA_SCP_TOKEN", "t")],
        ),
    ];
    let mut checked = 0;
    for (extra, env) in &cases {
        for positional in [
            vec!["--", "/srv/a.txt", "./b:c.txt", "dir/../d/"],
            vec![list_arg.as_str(), "--", "/in"],
            vec![pairs_arg.as_str(), "/in"],
        ] {
            let mut args = vec![
                "--mode=send",
                "--user=root",
                "--host=127.0.0.1",
                "-P",
                &port,
            ];
            args.extend(extra);
            args.extend(&positional);
            let go = |program: Option<&std::path::Path>| {
                let mut s = Spawn::new(&args);
                for (k, v) in env {
                    s = s.env(k, v);
                }
                if let Some(p) = program {
                    s = s.program(p);
                }
                s.run()
            };
            let (real, sim) = (go(Some(&ascp)), go(None));
            let what = format!("{args:?} {env:?}");
            assert_eq!(
                sim.types(),
                real.types(),
                "{what}\nreal: {real:#?}\nsim: {sim:#?}"
            );
            for (r, s) in real.frames.iter().zip(&sim.frames) {
                same_frame(&what, r, s, &[]);
            }
            assert_eq!(sim.code, real.code, "{what}");
            assert_eq!(sim.stdout, real.stdout, "{what}");
            assert_eq!(
                sim.stderr.lines().last(),
                real.stderr.lines().last(),
                "{what}"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} command lines: INIT, SESSION, ERROR, stdout, exit status equal");
}
