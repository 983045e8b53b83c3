//! Table-driven full transfers: bytes on disk, the event sequence, totals and checksums.

mod support;

use std::collections::HashMap;
use std::fs;

use fasp_mgmt_proto::Message;
use md5::{Digest, Md5};
use support::{Run, Spawn, Work, num};

/// What every stream must satisfy: INIT then SESSION first, every frame readable as its
/// typed message, one SessionId, per-file and session counters that never go back, a
/// DONE or ERROR last.
fn check_stream(run: &Run) {
    let types = run.types();
    assert!(types.len() >= 3, "{run:#?}");
    assert_eq!(&types[..2], ["INIT", "SESSION"], "{run:#?}");
    let sid = run.frames[0].get("SessionId").unwrap().to_owned();
    let mut per_file: HashMap<String, u64> = HashMap::new();
    let mut session_bytes = 0;
    for f in &run.frames {
        Message::from_frame(f).unwrap_or_else(|e| panic!("{e}: {f:?}"));
        assert_eq!(f.get("SessionId"), Some(sid.as_str()), "{f:?}");
        if matches!(f.type_name(), Some("STATS" | "STOP")) {
            let file = f.get("File").unwrap().to_owned();
            let w = num(f, "Written");
            let prev = per_file.insert(file, w).unwrap_or(0);
            assert!(w >= prev, "Written went back: {f:?}");
            let tb = num(f, "TransferBytes");
            assert!(tb >= session_bytes, "TransferBytes went back: {f:?}");
            session_bytes = tb;
            assert!(w <= num(f, "Size"));
        }
    }
    let last = run.last().type_name().unwrap();
    assert!(matches!(last, "DONE" | "ERROR"), "{run:#?}");
    if last == "DONE" {
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert_eq!(
            num(run.last(), "FileBytes"),
            session_bytes.max(num(run.last(), "FileBytes"))
        );
    } else {
        assert_eq!(run.code, Some(1), "{run:#?}");
    }
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

fn same(a: &std::path::Path, b: &std::path::Path) {
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

const FAST: &[&str] = &["--user=xfer", "--host=127.0.0.1", "-l", "1000000"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = FAST.to_vec();
    v.extend_from_slice(extra);
    v
}

/// One case of the table.
struct Case {
    name: &'static str,
    run: fn(&Work) -> Run,
    check: fn(&Work, &Run),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "send one file into an existing folder",
            run: |w| {
                let a = w.local_file("a.bin", 100_000);
                fs::create_dir(w.remote("inbox")).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "--file-checksum=md5",
                    "--",
                    &w.arg(&a),
                    "/inbox",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("inbox/a.bin"));
                let types = r.types();
                assert_eq!(types[2], "STATS");
                assert_eq!(&types[types.len() - 3..], ["STOP", "ARGSTOP", "DONE"]);
                let stop = r.one("STOP");
                assert_eq!(stop.get("File"), Some("/inbox/a.bin"));
                assert_eq!(num(stop, "Written"), 100_000);
                assert_eq!(stop.get("FileChecksumType"), Some("md5"));
                assert_eq!(
                    stop.get("FileChecksum").unwrap(),
                    md5_hex(&fs::read(w.local("a.bin")).unwrap())
                );
                let done = r.one("DONE");
                assert_eq!(num(done, "FileBytes"), 100_000);
                assert_eq!(num(done, "TransfersPassed"), 1);
                assert_eq!(num(done, "ArgScansCompleted"), 1);
                let arg = r.one("ARGSTOP");
                assert_eq!(num(arg, "ArgTransfersAttempted"), 1);
                assert_eq!(num(arg, "ArgTransfersPassed"), 1);
                assert!(
                    r.stdout.starts_with("Completed: 97K bytes transferred"),
                    "{}",
                    r.stdout
                );
            },
        },
        Case {
            name: "one file to a new name",
            run: |w| {
                let a = w.local_file("a.bin", 10_000);
                fs::create_dir(w.remote("inbox")).unwrap();
                Spawn::new(&args(&["--mode=send", &w.arg(&a), "/inbox/renamed.bin"]))
                    .root(w)
                    .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("inbox/renamed.bin"));
                assert_eq!(r.one("STOP").get("File"), Some("/inbox/renamed.bin"));
            },
        },
        Case {
            name: "several sources and a directory, recursively, with -d",
            run: |w| {
                let a = w.local_file("a.bin", 5_000);
                w.file(&w.local("tree/x/1.bin"), 3_000);
                w.file(&w.local("tree/x/2.bin"), 0);
                w.file(&w.local("tree/y.bin"), 7_000);
                Spawn::new(&args(&[
                    "--mode=send",
                    "-d",
                    &w.arg(&a),
                    &w.arg(&w.local("tree")),
                    "/new/dir",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("new/dir/a.bin"));
                for f in ["tree/x/1.bin", "tree/x/2.bin", "tree/y.bin"] {
                    same(&w.local(f), &w.remote(&format!("new/dir/{f}")));
                }
                assert_eq!(r.of("STOP").len(), 4);
                assert_eq!(r.of("ARGSTOP").len(), 2);
                let tree_arg = r.of("ARGSTOP")[1];
                assert_eq!(num(tree_arg, "FaspFileArgIndex"), 1);
                assert_eq!(num(tree_arg, "ArgTransfersAttempted"), 3);
                let done = r.one("DONE");
                assert_eq!(num(done, "FileBytes"), 15_000);
                assert_eq!(num(done, "DirScansCompleted"), 2);
                assert_eq!(num(done, "FileScansCompleted"), 4);
                assert!(num(done, "DirCreatesPassed") >= 3);
            },
        },
        Case {
            name: "receive a file and a directory",
            run: |w| {
                w.file(&w.remote("out/r.bin"), 20_000);
                w.file(&w.remote("out/d/s.bin"), 2_000);
                let dest = w.local("down");
                fs::create_dir(&dest).unwrap();
                Spawn::new(&args(&[
                    "--mode=recv",
                    "/out/r.bin",
                    "/out/d",
                    &w.arg(&dest),
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.remote("out/r.bin"), &w.local("down/r.bin"));
                same(&w.remote("out/d/s.bin"), &w.local("down/d/s.bin"));
                assert_eq!(r.frames[0].get("Direction"), Some("Receive"));
                assert_eq!(
                    r.of("STOP")[0].get("File"),
                    Some(w.arg(&w.local("down/r.bin")).as_str())
                );
            },
        },
        Case {
            name: "file list (a missing destination folder is created)",
            run: |w| {
                let a = w.local_file("a.bin", 1_000);
                let b = w.local_file("b.bin", 2_000);
                let list = w.path().join("list.txt");
                fs::write(&list, format!("{}\n{}\n", w.arg(&a), w.arg(&b))).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    &format!("--file-list={}", w.arg(&list)),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("in/a.bin"));
                same(&w.local("b.bin"), &w.remote("in/b.bin"));
                let src = r.one("SESSION").get("Source").unwrap().to_owned();
                assert_eq!(src.split('\t').count(), 2);
                assert_eq!(r.of("ARGSTOP").len(), 2);
            },
        },
        Case {
            name: "file pair list: exact destinations",
            run: |w| {
                let a = w.local_file("a.bin", 1_000);
                let b = w.local_file("b.bin", 2_000);
                let list = w.path().join("pairs.txt");
                fs::write(
                    &list,
                    format!("{}\nx/one.bin\n{}\ntwo.bin\n", w.arg(&a), w.arg(&b)),
                )
                .unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    &format!("--file-pair-list={}", w.arg(&list)),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("in/x/one.bin"));
                same(&w.local("b.bin"), &w.remote("in/two.bin"));
                assert_eq!(r.of("STOP")[0].get("File"), Some("/in/x/one.bin"));
            },
        },
        Case {
            name: "overwrite never: SKIP, destination untouched",
            run: |w| {
                let a = w.local_file("a.bin", 1_000);
                fs::create_dir(w.remote("in")).unwrap();
                fs::write(w.remote("in/a.bin"), b"old").unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "--overwrite=never",
                    &w.arg(&a),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                assert_eq!(fs::read(w.remote("in/a.bin")).unwrap(), b"old");
                assert_eq!(r.types()[2..], ["SKIP", "ARGSTOP", "DONE"]);
                let arg = r.one("ARGSTOP");
                assert_eq!(num(arg, "ArgTransfersSkipped"), 1);
                assert_eq!(num(arg, "ArgTransfersPassed"), 1);
                let done = r.one("DONE");
                assert_eq!(num(done, "TransfersSkipped"), 1);
                assert_eq!(num(done, "FileBytes"), 0);
            },
        },
        Case {
            name: "overwrite always replaces",
            run: |w| {
                let a = w.local_file("a.bin", 1_000);
                fs::create_dir(w.remote("in")).unwrap();
                fs::write(w.remote("in/a.bin"), b"old content longer").unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "--overwrite=always",
                    &w.arg(&a),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, _| same(&w.local("a.bin"), &w.remote("in/a.bin")),
        },
        Case {
            name: "overwrite diff with -k 2: an identical file is skipped",
            run: |w| {
                let a = w.local_file("a.bin", 4_000);
                fs::create_dir(w.remote("in")).unwrap();
                fs::copy(&a, w.remote("in/a.bin")).unwrap();
                Spawn::new(&args(&["--mode=send", "-k", "2", &w.arg(&a), "/in"]))
                    .root(w)
                    .run()
            },
            check: |_, r| {
                assert_eq!(r.of("SKIP").len(), 1);
                assert_eq!(r.of("STOP").len(), 0);
            },
        },
        Case {
            name: "resume with -k 1 from a partial destination",
            run: |w| {
                let a = w.local_file("a.bin", 300_000);
                fs::create_dir(w.remote("in")).unwrap();
                fs::write(w.remote("in/a.bin"), &fs::read(&a).unwrap()[..100_000]).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "-k",
                    "1",
                    "--file-checksum=sha256",
                    &w.arg(&a),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("in/a.bin"));
                let stop = r.one("STOP");
                assert_eq!(num(stop, "StartByte"), 100_000);
                assert_eq!(num(stop, "Written"), 300_000);
                assert_eq!(num(stop, "FileBytes"), 200_000);
                assert_eq!(num(r.of("STATS")[0], "Written"), 100_000);
                let data = fs::read(w.local("a.bin")).unwrap();
                let want: String = hex::encode(sha2::Sha256::digest(&data));
                assert_eq!(stop.get("FileChecksum"), Some(want.as_str()));
                assert_eq!(stop.get("FileChecksumType"), Some("sha-256"));
            },
        },
        Case {
            name: "--src-base keeps the structure below it",
            run: |w| {
                w.file(&w.local("base/x/y.bin"), 1_500);
                Spawn::new(&args(&[
                    "--mode=send",
                    &format!("--src-base={}", w.arg(&w.local("base"))),
                    &w.arg(&w.local("base/x/y.bin")),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("base/x/y.bin"), &w.remote("in/x/y.bin"));
                assert!(r.one("SESSION").get("SourceBase").is_some());
            },
        },
        Case {
            name: "--remove-after-transfer and --source-prefix",
            run: |w| {
                w.file(&w.local("gone.bin"), 2_000);
                fs::create_dir(w.remote("in")).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "--remove-after-transfer",
                    &format!("--source-prefix={}", w.arg(&w.local(""))),
                    "gone.bin",
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                assert!(!w.local("gone.bin").exists());
                assert_eq!(fs::read(w.remote("in/gone.bin")).unwrap().len(), 2_000);
                let s = r.one("SESSION");
                assert_eq!(s.get("Source"), Some(w.arg(&w.local("gone.bin")).as_str()));
                assert_eq!(num(s, "XoptFlags") & 65_536, 65_536);
            },
        },
        Case {
            name: "checksums: sha1, sha-384, sha-512",
            run: |w| {
                for (i, n) in ["s1", "s384", "s512"].iter().enumerate() {
                    w.file(&w.local(&format!("{n}.bin")), 10_000 + i);
                }
                fs::create_dir(w.remote("in")).unwrap();
                // Three runs in one case: only the last is checked by the stream rules.
                for (kind, n) in [("sha1", "s1"), ("sha384", "s384")] {
                    let r = Spawn::new(&args(&[
                        "--mode=send",
                        &format!("--file-checksum={kind}"),
                        &w.arg(&w.local(&format!("{n}.bin"))),
                        "/in",
                    ]))
                    .root(w)
                    .run();
                    let stop = r.one("STOP");
                    let data = fs::read(w.local(&format!("{n}.bin"))).unwrap();
                    let want: String = if kind == "sha1" {
                        hex::encode(sha1::Sha1::digest(&data))
                    } else {
                        hex::encode(sha2::Sha384::digest(&data))
                    };
                    assert_eq!(stop.get("FileChecksum"), Some(want.as_str()), "{kind}");
                }
                Spawn::new(&args(&[
                    "--mode=send",
                    "--file-checksum=sha-512",
                    &w.arg(&w.local("s512.bin")),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                let data = fs::read(w.local("s512.bin")).unwrap();
                let want: String = hex::encode(sha2::Sha512::digest(&data));
                let stop = r.one("STOP");
                assert_eq!(stop.get("FileChecksum"), Some(want.as_str()));
                assert_eq!(stop.get("FileChecksumType"), Some("sha-512"));
            },
        },
        Case {
            name: "one missing source among two: FILEERROR, the other moves, ERROR 27",
            run: |w| {
                let a = w.local_file("a.bin", 1_000);
                fs::create_dir(w.remote("in")).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    &w.arg(&w.local("missing")),
                    &w.arg(&a),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                same(&w.local("a.bin"), &w.remote("in/a.bin"));
                let fe = r.one("FILEERROR");
                assert_eq!(num(fe, "Code"), 43);
                assert_eq!(fe.get("Description"), Some("No such file or directory"));
                assert_eq!(num(r.of("ARGSTOP")[0], "ArgTransfersFailed"), 1);
                let end = r.one("ERROR");
                assert_eq!(num(end, "Code"), 27);
                assert_eq!(end.get("Description"), Some("One or more files failed"));
                assert_eq!(num(end, "TransfersFailed"), 1);
                assert_eq!(num(end, "TransfersPassed"), 1);
                assert!(r.stdout.starts_with("Partial Completion"), "{}", r.stdout);
            },
        },
        Case {
            name: "a single missing source ends the session with code 43 (as the real capture)",
            run: |w| {
                Spawn::new(&args(&["--mode=send", &w.arg(&w.local("missing")), "/in"]))
                    .root(w)
                    .run()
            },
            check: |_, r| {
                assert_eq!(r.types(), ["INIT", "SESSION", "ERROR"]);
                let e = r.one("ERROR");
                assert_eq!(num(e, "Code"), 43);
                assert_eq!(e.get("Description"), Some("No such file or directory"));
                assert_eq!(
                    r.stdout,
                    "\r\nSession Stop  (Error: No such file or directory)\n"
                );
                assert_eq!(r.stderr, "");
            },
        },
        Case {
            name: "precalculate job size: NOTIFICATION with the counts first",
            run: |w| {
                w.file(&w.local("t/a.bin"), 1_000);
                w.file(&w.local("t/b/c.bin"), 2_345);
                fs::create_dir(w.remote("in")).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "--precalculate-job-size",
                    &w.arg(&w.local("t")),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |_, r| {
                assert_eq!(r.types()[2], "NOTIFICATION");
                let n = r.one("NOTIFICATION");
                assert_eq!(num(n, "PreTransferFiles"), 2);
                assert_eq!(num(n, "PreTransferDirs"), 2);
                assert_eq!(num(n, "PreTransferBytes"), 3_345);
                assert_eq!(r.one("SESSION").get("Precalc"), Some("Yes"));
            },
        },
        Case {
            name: "exclusions, partial file suffix, preserved times",
            run: |w| {
                w.file(&w.local("t/keep.bin"), 1_000);
                w.file(&w.local("t/skip.tmp"), 1_000);
                let old = std::time::SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(1_000_000_000);
                fs::File::options()
                    .write(true)
                    .open(w.local("t/keep.bin"))
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
                fs::create_dir(w.remote("in")).unwrap();
                Spawn::new(&args(&[
                    "--mode=send",
                    "-E",
                    "*.tmp",
                    "--partial-file-suffix=.partial",
                    "-p",
                    &w.arg(&w.local("t")),
                    "/in",
                ]))
                .root(w)
                .run()
            },
            check: |w, r| {
                assert!(w.remote("in/t/keep.bin").exists());
                assert!(!w.remote("in/t/skip.tmp").exists());
                assert!(!w.remote("in/t/keep.bin.partial").exists());
                assert_eq!(num(r.one("DONE"), "PathScansExcluded"), 1);
                let m = fs::metadata(w.remote("in/t/keep.bin"))
                    .unwrap()
                    .modified()
                    .unwrap();
                assert_eq!(
                    m,
                    std::time::SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_secs(1_000_000_000)
                );
                assert_eq!(r.one("SESSION").get("PartialFiles"), Some(".partial"));
            },
        },
        Case {
            name: "deny-file fault: FILEERROR code 5 even as root",
            run: |w| {
                w.file(&w.local("t/ok.bin"), 1_000);
                w.file(&w.local("t/secret.bin"), 1_000);
                fs::create_dir(w.remote("in")).unwrap();
                Spawn::new(&args(&["--mode=send", &w.arg(&w.local("t")), "/in"]))
                    .root(w)
                    .env("ASCP_SIM_FAULT", "deny-file:secret.bin")
                    .run()
            },
            check: |w, r| {
                assert!(w.remote("in/t/ok.bin").exists());
                assert!(!w.remote("in/t/secret.bin").exists());
                let fe = r.one("FILEERROR");
                assert_eq!(num(fe, "Code"), 5);
                assert_eq!(fe.get("File"), Some("/in/t/secret.bin"));
                assert_eq!(num(r.last(), "Code"), 27);
            },
        },
    ]
}

#[test]
fn table_of_transfers() {
    let mut failures = Vec::new();
    for case in cases() {
        let w = Work::new();
        let started = std::time::Instant::now();
        let run = (case.run)(&w);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_stream(&run);
            (case.check)(&w, &run);
        }));
        eprintln!("{:>6.2}s  {}", started.elapsed().as_secs_f64(), case.name);
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", case.name));
        }
        fasp_testkit::assert_no_leftover(&w.arg(w.path()));
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn without_a_management_port_it_still_copies() {
    let w = Work::new();
    let a = w.local_file("a.bin", 50_000);
    fs::create_dir(w.remote("in")).unwrap();
    let r = Spawn::new(&args(&["--mode=send", &w.arg(&a), "/in"]))
        .root(&w)
        .no_mgmt()
        .run();
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(!r.connected);
    same(&a, &w.remote("in/a.bin"));
    assert!(r.stdout.contains("bytes transferred"), "{}", r.stdout);
}

#[test]
fn quiet_prints_nothing() {
    let w = Work::new();
    let a = w.local_file("a.bin", 5_000);
    fs::create_dir(w.remote("in")).unwrap();
    let r = Spawn::new(&args(&["--mode=send", "-q", &w.arg(&a), "/in"]))
        .root(&w)
        .run();
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{r:#?}");
}
