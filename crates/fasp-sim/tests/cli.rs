//! The command line: what ascp-sim refuses, with which words, and that it refuses it before
//! connecting; the same table against the real ascp 3.9 when `FASP_ASCP` names it.

mod support;

use std::fs;

use support::{Run, Spawn, Work};

/// Bad command lines: the real ascp's stderr (observed), exit 1, no connection.
const BAD: &[(&[&str], &str)] = &[
    (&["--x", "a", "b"], "unrecognized option `--x'"),
    (&["--x=1", "a", "b"], "unrecognized option `--x=1'"),
    (&["-9", "a", "b"], "invalid option -- 9"),
    (&["-l"], "option requires an argument -- l"),
    (&["--mode"], "option `--mode' requires an argument"),
    (
        &["--keepalive=x", "a", "b"],
        "option `--keepalive' doesn't allow an argument",
    ),
    (&["--p", "a", "b"], "option `--p' is ambiguous"),
    (
        &["--policy=turbo", "a", "b"],
        "ascp: unknown transfer policy turbo",
    ),
    (&["-l", "abc", "a", "b"], "ascp: bad numeric suffix abc."),
    (&["-l", "10x", "a", "b"], "ascp: bad numeric suffix x."),
    (
        &["-l", "-5", "a", "b"],
        "ascp: -l argument must be positive.",
    ),
    (
        &["-k", "4", "a", "b"],
        "ascp: argument to -k must be 0, 1, 2, or 3",
    ),
    (
        &["--overwrite=bad", "a", "b"],
        "ascp: bad argument to --overwrite; need {never|always|older|diff|diff+older}",
    ),
    (
        &["-Z", "10", "a", "b"],
        "ascp: argument to -Z must be in the range 296..65535.",
    ),
    (
        &["-C", "3:2", "a", "b"],
        "ascp: -C needs argument M:N, M <= N (M and N range: 1-128 inclusive).",
    ),
    (
        &["--mode=foo", "a", "b"],
        "ascp: bad argument to --mode; need {send|recv|test-login}",
    ),
    (
        &["-c", "foo", "a", "b"],
        "ascp: Unrecognized transport encryption type: foo",
    ),
    (
        &["--symbolic-links=none", "a", "b"],
        "ascp: bad argument to --symbolic-links; need {follow|copy+force|copy|skip}",
    ),
    (
        &["--file-checksum=crc", "a", "b"],
        "ascp: unknown file checksum type crc",
    ),
    (
        &["-y", "2", "a", "b"],
        "ascp: -y argument must be 0, 1 or F.",
    ),
    (
        &["-P", "0", "a", "b"],
        "ascp: argument to -P must be in the range 1..65535.",
    ),
    (
        &["-O", "70000", "a", "b"],
        "ascp: argument to -O must be in the range 0..65535.",
    ),
    (
        &["--tags=notjson", "a", "b"],
        "ascp: bad argument (tags must be in json format)",
    ),
    (
        &["--tags=[1]", "a", "b"],
        "ascp: bad argument (tags must be a json object, not a json array)",
    ),
    (
        &["--tags64=@@@", "a", "b"],
        "ascp: bad argument (tags base64 is malformed or too large)",
    ),
    (
        &["--preserve-acls=native", "a", "b"],
        "ascp: Option --preserve-acls=native not supported on this platform",
    ),
    (
        &["--file-manifest=bad", "a", "b"],
        "ascp: bad argument to --file-manifest; need {text|none}",
    ),
    (
        &["-g", "1x", "a", "b"],
        "ascp: suffix x to option -g unknown.",
    ),
    (
        &["-t", "0", "a", "b"],
        "ascp: -t argument must be between 1 and 65535.",
    ),
];

fn run_bad(program: Option<&std::path::Path>, args: &[&str]) -> Run {
    let mut s = Spawn::new(args);
    if let Some(p) = program {
        s = s.program(p);
    }
    s.run()
}

#[test]
fn bad_options_are_refused_before_connecting() {
    for (args, want) in BAD {
        let run = run_bad(None, args);
        assert_eq!(run.code, Some(1), "{args:?}: {run:#?}");
        assert!(!run.connected, "{args:?} connected");
        assert_eq!(run.stderr, format!("{want}\n"), "{args:?}");
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

#[test]
fn bad_options_match_the_real_ascp() {
    let ascp = fasp_testkit::require_real_ascp!();
    for (args, want) in BAD {
        let real = run_bad(Some(&ascp), args);
        assert_eq!(real.code, Some(1), "real ascp {args:?}: {real:#?}");
        assert!(!real.connected);
        assert_eq!(real.stderr, format!("{want}\n"), "real ascp {args:?}");
    }
}

/// Refusals after connecting (INIT, SESSION, ERROR): the same code, description, stderr
/// and exit status as the real ascp.
/// Arguments and extra environment of one case.
type Case = (Vec<String>, Vec<(&'static str, &'static str)>);

fn startup_cases(w: &Work) -> Vec<Case> {
    let odd = w.path().join("odd.txt");
    fs::write(&odd, "a\nb\nc\n").unwrap();
    let list = w.path().join("list.txt");
    fs::write(&list, "a\n").unwrap();
    let h = "--host=127.0.0.1";
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (v(&["--mode=send", h]), vec![]),
        (v(&["--mode=send", h, "/a"]), vec![]),
        (v(&["--mode=send", "/a", "/b"]), vec![]),
        (
            v(&["--mode=send", h, "--file-list=/nonexistent", "/d"]),
            vec![],
        ),
        (
            v(&[
                "--mode=send",
                h,
                &format!("--file-pair-list={}", odd.display()),
                "/d",
            ]),
            vec![],
        ),
        (
            v(&["--mode=send", h, &format!("--file-list={}", list.display())]),
            vec![],
        ),
        (v(&["--mode=send", h, "--keepalive", "a", "/d"]), vec![]),
        (
            v(&["--mode=send", h, "a", "/d"]),
            vec![("ASPERA_SCP_TOKEN", "a\nb")],
        ),
        (
            v(&["--mode=send", h, "a", "/d"]),
            vec![("ASPERA_SCP_COOKIE", "a\nb")],
        ),
        (
            v(&["--mode=send", h, "--file-crypt=encrypt", "a", "/d"]),
            vec![],
        ),
    ]
}

#[test]
fn startup_errors_match_the_real_ascp() {
    let ascp = fasp_testkit::require_real_ascp!();
    let w = Work::new();
    let closed = support::ClosedPort::new();
    for (args, env) in startup_cases(&w) {
        let mut args = args;
        args.splice(0..0, ["-P".to_owned(), closed.port.to_string()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let go = |program: Option<&std::path::Path>| {
            let mut s = Spawn::new(&refs).root(&w);
            for (k, v) in &env {
                s = s.env(k, v);
            }
            if let Some(p) = program {
                s = s.program(p);
            }
            s.run()
        };
        let (real, sim) = (go(Some(&ascp)), go(None));
        assert_eq!(sim.types(), real.types(), "{args:?}");
        assert_eq!(sim.code, real.code, "{args:?}");
        assert_eq!(sim.stderr, real.stderr, "{args:?}");
        assert_eq!(sim.stdout, real.stdout, "{args:?}");
        for k in ["Code", "Description"] {
            assert_eq!(sim.last().get(k), real.last().get(k), "{args:?} {k}");
        }
    }
}

#[test]
fn closed_management_port() {
    let closed = support::ClosedPort::new();
    let run = Spawn::new(&["-M", &closed.port.to_string(), "--host=h", "a", "b"])
        .no_mgmt()
        .run();
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        format!(
            "ascp: required management connection to port localhost:{} failed.\n\nascp: failed to connect to management socket, exiting.\n",
            closed.port
        )
    );
}

#[test]
fn usage_version_help_and_log_folder() {
    let run = Spawn::new(&[]).no_mgmt().run();
    assert_eq!(run.code, Some(112));
    assert!(run.stdout.starts_with("Usage: ascp [OPTION] SRC... DEST\n"));
    let run = Spawn::new(&["-A"]).no_mgmt().run();
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout
            .starts_with("ascp version 3.9.0.163682 (ascp-sim")
    );
    let run = Spawn::new(&["--help"]).no_mgmt().run();
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("ASCP_SIM_ROOT"));
    let run = Spawn::new(&["-L", "/nonexistent-dir", "--host=h", "a", "b"]).run();
    assert_eq!(run.code, Some(1));
    assert!(!run.connected);
    assert!(
        run.stderr
            .starts_with("Error opening log directory /nonexistent-dir\n")
    );
    // With a log folder, the session is logged there.
    let w = Work::new();
    let a = w.local_file("a.bin", 10);
    let logs = w.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let run = Spawn::new(&["-L", &w.arg(&logs), "--host=h", &w.arg(&a), "/"])
        .root(&w)
        .run();
    assert_eq!(run.code, Some(0));
    let log = fs::read_to_string(logs.join("aspera-scp-transfer.log")).unwrap();
    assert!(log.contains("session done"), "{log}");
}
