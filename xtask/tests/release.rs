//! `cargo xtask release 0.2.0` as a dry run in a temporary clone of the repository: it prints
//! the computed publish order and the version bump, and leaves the clone untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dry_run_in_a_clone_changes_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "xtask-release-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )));
    let clone = tmp.0.join("repo");
    std::fs::create_dir_all(&tmp.0).unwrap();
    git(
        &tmp.0,
        &[
            "clone",
            "--quiet",
            root.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let before = git(&clone, &["status", "--porcelain"]);
    assert_eq!(before, "", "a fresh clone is clean");

    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["release", "0.2.0"])
        .env("XTASK_ROOT", &clone)
        .current_dir(&clone)
        .output()
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dry run failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    assert!(stdout.contains("dry run"), "{stdout}");
    assert!(
        stdout.contains("== version bump 0.1.0 -> 0.2.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-version = \"0.1.0\"\n+version = \"0.2.0\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+fasp-spec = { path = \"crates/fasp-spec\", version = \"0.2.0\" }"),
        "{stdout}"
    );
    assert!(stdout.contains("## [0.2.0] - "), "{stdout}");

    let order_section = stdout
        .split("== publish order")
        .nth(1)
        .expect("a publish order section");
    let order_section = order_section.split("\n== ").next().unwrap();
    let pos = |name: &str| {
        order_section
            .find(&format!(". {name}\n"))
            .unwrap_or_else(|| panic!("{name} missing from the order:\n{order_section}"))
    };
    assert!(pos("fasp-mgmt-proto") < pos("fasp-manager"));
    assert!(pos("fasp-spec") < pos("fasp-token"));
    assert!(pos("fasp-token") < pos("fasp-cli"));
    assert!(!order_section.contains(". fasp-testkit\n"));
    assert!(!order_section.contains(". xtask\n"));
    assert!(stdout.contains("would run: git tag v0.2.0"), "{stdout}");
    assert!(stdout.contains("would run: cargo publish -p fasp-mgmt-proto"));

    let after = git(&clone, &["status", "--porcelain", "--ignored"]);
    assert_eq!(after, "", "the dry run changed the clone");
    let head_tags = git(&clone, &["tag", "--list"]);
    assert_eq!(head_tags, "", "the dry run made no tag");
}
