//! The ascp-sim helpers: the work folder, patterns, STATS series.

use std::os::unix::fs::PermissionsExt;

use fasp_mgmt_proto::Frame;
use fasp_testkit::sim::{self, Work, num, pattern, series, stats_bytes};

fn frame(kind: &str, fields: &[(&str, &str)]) -> Frame {
    let mut b = Frame::builder(kind).unwrap();
    for (k, v) in fields {
        b = b.field(k, v).unwrap();
    }
    b.finish()
}

#[test]
fn a_work_folder_has_both_sides_and_goes_away() {
    let w = Work::new();
    let kept = w.path().to_owned();
    assert!(w.local("").is_dir() && w.remote("").is_dir());
    assert_eq!(w.root(), kept.join("remote").to_str().unwrap());
    assert_eq!(w.needle(), kept.to_str().unwrap());
    assert!(
        kept.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("fasp-test."),
        "{kept:?}"
    );

    let data = w.file(&w.remote("deep/er/x.bin"), 1000);
    assert_eq!(std::fs::read(w.remote("deep/er/x.bin")).unwrap(), data);
    let a = w.local_file("a.bin", 5000);
    assert_eq!(a, w.local("a.bin"));
    assert_eq!(std::fs::read(&a).unwrap().len(), 5000);
    assert_ne!(
        std::fs::read(&a).unwrap()[..1000],
        data[..],
        "seeded by path"
    );

    w.tiny_files("set", 3);
    let mut names: Vec<String> = std::fs::read_dir(w.local("set"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f00000.txt", "f00001.txt", "f00002.txt"]);

    let script = w.script("run.sh", "#!/bin/sh\nexit 3\n");
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let status = std::process::Command::new(&script).status().unwrap();
    assert_eq!(status.code(), Some(3));

    drop(w);
    assert!(!kept.exists());
}

#[test]
fn patterns_show_moved_bytes() {
    let p = pattern(4096, 7);
    assert_eq!(p.len(), 4096);
    assert_eq!(p, pattern(4096, 7));
    assert_ne!(p, pattern(4096, 8));
    // No short period: a block shifted by one does not match itself.
    assert_ne!(p[..1024], p[1..1025]);
    assert_ne!(p[..256], p[256..512]);
}

#[test]
fn series_follow_the_frames_of_the_types_asked() {
    let frames = [
        frame("INIT", &[]),
        frame("STATS", &[("TransferBytes", "10"), ("Rate", "1")]),
        frame("NOTIFICATION", &[("TransferBytes", "999")]),
        frame("STATS", &[("TransferBytes", "25")]),
        frame("STOP", &[("TransferBytes", "40")]),
    ];
    let tagged = frames.iter().enumerate();
    assert_eq!(stats_bytes(tagged.clone()), [(1, 10), (3, 25)]);
    assert_eq!(
        series(tagged, &["STATS", "STOP"], "TransferBytes"),
        [(1, 10), (3, 25), (4, 40)]
    );
    assert_eq!(
        series(frames.iter().map(|f| ((), f)), &["STATS"], "TransferBytes").len(),
        2
    );
    assert_eq!(num(&frames[1], "Rate"), 1);
}

#[test]
#[should_panic(expected = "no TransferBytes")]
fn a_series_with_a_hole_fails() {
    let frames = [frame("STATS", &[("Rate", "1")])];
    stats_bytes(frames.iter().map(|f| ((), f)));
}

#[test]
#[should_panic(expected = "is not a number")]
fn a_field_that_is_not_a_number_fails() {
    num(
        &frame("STATS", &[("TransferBytes", "ten")]),
        "TransferBytes",
    );
}

#[test]
fn the_emulator_is_found_or_its_absence_explained() {
    // Either next to this test binary (after `cargo build -p fasp-sim`) or not; either way
    // the answer names a file.
    match sim::locate_sim() {
        Ok(path) => {
            assert!(path.is_file());
            assert!(path.ends_with(sim::SIM_BIN) || std::env::var_os(sim::SIM_ENV).is_some());
        }
        Err(why) => assert!(
            why.contains(sim::SIM_BIN) || why.contains(sim::SIM_ENV),
            "{why}"
        ),
    }
}
