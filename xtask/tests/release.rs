//! `cargo xtask release` as a dry run, in a temporary clone of this repository and in a small
//! workspace made for the test: the published crates and their order, the version bump, the
//! CHANGELOG section, the blockers; the tree is left untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=xtask test",
            "-c",
            "user.email=xtask@test.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "xtask-{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A clone of this repository's HEAD.
fn clone_repo(tmp: &TempDir) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let clone = tmp.0.join("repo");
    git(
        &tmp.0,
        &[
            "clone",
            "--quiet",
            root.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    assert_eq!(
        git(&clone, &["status", "--porcelain"]),
        "",
        "a fresh clone is clean"
    );
    clone
}

fn xtask(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("XTASK_ROOT", root)
        // What cargo writes stays in the repository's own (ignored) target folder.
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(root)
        .output()
        .expect("xtask runs")
}

/// Stdout of a run that must succeed.
fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xtask failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The body of a `== title` section of the plan.
fn section<'a>(stdout: &'a str, title: &str) -> &'a str {
    let body = stdout
        .split(&format!("\n== {title}"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `== {title}` section in:\n{stdout}"));
    body.split("\n== ").next().unwrap()
}

/// The published crates as the plan lists them, in order.
fn published(stdout: &str) -> Vec<String> {
    section(stdout, "crates")
        .lines()
        .filter_map(|l| l.trim().split_once(". "))
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map(|(_, name)| name.to_string())
        .collect()
}

#[test]
fn dry_run_in_a_clone_changes_nothing() {
    let tmp = TempDir::new("release-clone");
    let clone = clone_repo(&tmp);
    let stdout = ok(xtask(&clone, &["release", "0.2.0"]));

    assert!(stdout.contains("(dry run: nothing is changed"), "{stdout}");
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

    let order = published(&stdout);
    let pos = |name: &str| {
        order
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name} is not in the publish order {order:?}"))
    };
    assert!(pos("fasp-mgmt-proto") < pos("fasp-manager"));
    assert!(pos("fasp-spec") < pos("fasp-manager"));
    assert!(pos("fasp-spec") < pos("fasp-token"));
    assert!(pos("fasp-token") < pos("fasp-cli"));
    assert!(pos("fasp-manager") < pos("fasp-cli"));
    // The test doubles and the automation are not published (issue 14).
    for double in ["fasp-sim", "fasp-node-standin", "fasp-testkit", "xtask"] {
        assert!(!order.iter().any(|n| n == double), "{double} in {order:?}");
    }
    let crates = section(&stdout, "crates");
    assert!(
        crates.contains("not published (publish = false): ")
            && crates.contains("fasp-sim")
            && crates.contains("fasp-testkit"),
        "{crates}"
    );
    assert!(!stdout.contains("BLOCKERS"), "{stdout}");
    assert!(
        stdout.contains("cargo-semver-checks: skipped: no baseline"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: cargo publish --workspace --locked"),
        "{stdout}"
    );
    let package = format!("cargo package --locked -p {}", order.join(" -p "));
    assert!(stdout.contains(&package), "{package}\n{stdout}");
    assert!(stdout.contains("would run: git tag v0.2.0"), "{stdout}");

    let after = git(&clone, &["status", "--porcelain", "--ignored"]);
    assert_eq!(after, "", "the dry run changed the clone");
    assert_eq!(
        git(&clone, &["tag", "--list"]),
        "",
        "the dry run made no tag"
    );
}

#[test]
fn a_published_crate_on_an_unpublished_one_is_a_blocker() {
    let tmp = TempDir::new("release-blocker");
    let clone = clone_repo(&tmp);
    // fasp-spec (published) now needs fasp-testkit (publish = false) at build time.
    let manifest = clone.join("crates/fasp-spec/Cargo.toml");
    let mut doc: toml_edit::DocumentMut =
        std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
    doc["dependencies"]["fasp-testkit"] = toml_edit::value(toml_edit::InlineTable::from_iter([
        ("path", "../fasp-testkit"),
        ("version", "0.1.0"),
    ]));
    std::fs::write(&manifest, doc.to_string()).unwrap();

    // The dry run succeeds and shows the blocker.
    let stdout = ok(xtask(&clone, &["release", "0.2.0"]));
    let blockers = section(&stdout, "BLOCKERS");
    assert!(
        blockers.contains("fasp-spec depends on fasp-testkit, which is not published"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 blocker(s) above would stop --execute"),
        "{stdout}"
    );

    // --preflight (and so --execute) stops on it before running anything.
    let out = xtask(&clone, &["release", "0.2.0", "--preflight"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "--preflight passed despite a blocker"
    );
    assert!(
        stderr.contains("1 blocker(s) stop the release")
            && stderr.contains("fasp-spec depends on fasp-testkit"),
        "{stderr}"
    );
    assert!(!stderr.contains("$ "), "a command ran: {stderr}");
}

/// Write `text` to `dir/rel`, creating folders.
fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_small_workspace_from_cargo_metadata() {
    let tmp = TempDir::new("release-small");
    let ws = &tmp.0;
    write(
        ws,
        "Cargo.toml",
        "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"3\"\n\n\
         [workspace.package]\nversion = \"1.4.2\"  # the shared version\nedition = \"2024\"\n\n\
         [workspace.dependencies]\nbase = { path = \"crates/base\", version = \"=1.4.2\" }\n",
    );
    // `app` is published and needs `base`; `tool` is not published and has its own version.
    write(
        ws,
        "crates/base/Cargo.toml",
        "[package]\nname = \"base\"\nversion.workspace = true\nedition.workspace = true\n",
    );
    write(ws, "crates/base/src/lib.rs", "//! base\n");
    write(
        ws,
        "crates/app/Cargo.toml",
        "[package]\nname = \"app\"\nversion.workspace = true\nedition.workspace = true\n\n\
         [dependencies]\nbase.workspace = true\n\n[dev-dependencies]\ntool = { path = \"../tool\" }\n",
    );
    write(ws, "crates/app/src/main.rs", "fn main() {}\n");
    write(
        ws,
        "crates/tool/Cargo.toml",
        "[package]\nname = \"tool\"\nversion = \"1.4.2\"\nedition.workspace = true\npublish = false\n\n\
         [dependencies]\nbase = { path = \"../base\", version = \"1.4.2\" }\n",
    );
    write(ws, "crates/tool/src/lib.rs", "//! tool\n");
    write(ws, ".gitignore", "/target\n");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let lock = Command::new(cargo)
        .args(["generate-lockfile", "--offline"])
        .current_dir(ws)
        .output()
        .unwrap();
    assert!(lock.status.success(), "{lock:?}");
    git(ws, &["init", "--quiet"]);
    git(ws, &["add", "."]);
    git(ws, &["commit", "--quiet", "-m", "base: first"]);
    write(ws, "crates/base/src/lib.rs", "//! base, second\n");
    git(ws, &["commit", "--quiet", "-am", "base: second"]);
    write(ws, "crates/app/src/main.rs", "fn main() { }\n");
    git(ws, &["commit", "--quiet", "-am", "tidy up"]);

    // No version: the next patch.
    let stdout = ok(xtask(ws, &["release"]));
    assert!(
        stdout.contains("== version bump 1.4.2 -> 1.4.3"),
        "{stdout}"
    );
    assert_eq!(published(&stdout), ["base", "app"]);
    assert!(
        section(&stdout, "crates").contains("not published (publish = false): tool"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "--- a/Cargo.toml\n+++ b/Cargo.toml\n\
             @@ -6 +6 @@\n-version = \"1.4.2\"  # the shared version\n\
             +version = \"1.4.3\"  # the shared version\n\
             @@ -10 +10 @@\n-base = { path = \"crates/base\", version = \"=1.4.2\" }\n\
             +base = { path = \"crates/base\", version = \"=1.4.3\" }\n"
        ),
        "{stdout}"
    );
    // The unpublished crate's literal version and its requirement on `base` move too.
    assert!(
        stdout.contains(
            "--- a/crates/tool/Cargo.toml\n+++ b/crates/tool/Cargo.toml\n\
             @@ -3 +3 @@\n-version = \"1.4.2\"\n+version = \"1.4.3\"\n\
             @@ -8 +8 @@\n-base = { path = \"../base\", version = \"1.4.2\" }\n\
             +base = { path = \"../base\", version = \"1.4.3\" }\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("crates/app/Cargo.toml"), "{stdout}");
    let log = section(&stdout, "CHANGELOG.md: new section");
    assert!(
        log.contains(
            "### base\n   \n   - second\n   - first\n   \n   ### Other\n   \n   - tidy up"
        ),
        "{log}"
    );
    assert_eq!(git(ws, &["status", "--porcelain"]), "");

    // --package-check packages the published crates (nothing built), offline, and changes no
    // tracked file.
    let stdout = ok(xtask(ws, &["release", "--package-check"]));
    assert!(
        stdout.contains("package check passed (not verified by a build)"),
        "{stdout}"
    );
    for krate in ["base-1.4.2.crate", "app-1.4.2.crate"] {
        assert!(ws.join("target/package").join(krate).is_file(), "{krate}");
    }
    assert!(!ws.join("target/package/tool-1.4.2.crate").exists());
    assert_eq!(git(ws, &["status", "--porcelain"]), "");

    // A tag is the baseline of the changelog and of cargo-semver-checks.
    git(ws, &["tag", "v1.4.2"]);
    write(ws, "crates/base/src/lib.rs", "//! base, third\n");
    git(ws, &["commit", "--quiet", "-am", "base: third"]);
    // A library new since the tag has no baseline to be compared with.
    write(
        ws,
        "crates/extra/Cargo.toml",
        "[package]\nname = \"extra\"\nversion.workspace = true\nedition.workspace = true\n",
    );
    write(ws, "crates/extra/src/lib.rs", "//! extra\n");
    git(ws, &["add", "crates/extra"]);
    git(ws, &["commit", "--quiet", "-m", "extra: new"]);
    let stdout = ok(xtask(ws, &["release", "2.0.0"]));
    assert!(stdout.contains("previous release tag: v1.4.2"), "{stdout}");
    let log = section(&stdout, "CHANGELOG.md: new section");
    assert!(
        log.contains("- third") && !log.contains("- second"),
        "{log}"
    );
    assert!(
        stdout.contains(
            "cargo-semver-checks: baseline v1.4.2, release type major (1.4.2 -> 2.0.0)\n      \
             app not checked: no library\n      extra not checked: new since the baseline\n"
        ),
        "{stdout}"
    );

    // A version that does not move forward is refused.
    let out = xtask(ws, &["release", "1.4.2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must be greater than the workspace's 1.4.2"),
        "{stderr}"
    );
}
