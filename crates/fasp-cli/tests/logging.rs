//! Logging and shell habits of `fasp`: `-v`/`-q`, `RUST_LOG`, `--log-dir` (a real transfer
//! through ascp-sim, the project's ascp emulator, whose log must hold no secret), shell
//! completions, and the man pages committed in `docs/man/`.
//!
//! The transfer tests need ascp-sim: `cargo test --workspace` builds it first; run alone, they
//! skip with a notice when it is missing (with `CI=true` they fail).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::sim_path;

const TOKEN: &str = "ATM3_log-SECRET-token-7f1e";
const COOKIE: &str = "log-SECRET-cookie-2b9d";
const PASSWORD: &str = "log-SECRET-pass-c4a0";

fn fasp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fasp"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A work folder with a local file, a remote root and a spec that holds a token, a cookie and
/// a password; the command line `transfer --json --spec SPEC --ascp SIM` with ascp-sim's
/// environment set.
struct Transfer {
    dir: tempfile::TempDir,
    sim: PathBuf,
}

impl Transfer {
    fn new(sim: PathBuf) -> Transfer {
        let dir = tempfile::tempdir().unwrap();
        let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
        std::fs::create_dir_all(&local).unwrap();
        std::fs::create_dir_all(&remote).unwrap();
        std::fs::write(local.join("a.bin"), vec![7u8; 100_000]).unwrap();
        let spec = serde_json::json!({
            "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
            "target_rate_kbps": 500_000, "token": TOKEN, "cookie": COOKIE,
            "remote_password": PASSWORD,
            "paths": [{"source": local.join("a.bin").to_str().unwrap()}],
            "destination_root": "/"
        });
        std::fs::write(dir.path().join("spec.json"), spec.to_string()).unwrap();
        Transfer { dir, sim }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs/fasp")
    }

    /// `fasp <before...> transfer --json --spec ... --ascp SIM <after...>`.
    fn run(&self, before: &[&str], after: &[&str], rust_log: Option<&str>) -> Output {
        self.command(before, after, rust_log, TOKEN)
            .output()
            .unwrap()
    }

    /// [`Transfer::run`] against a remote host that accepts only `token`.
    fn run_with_expected_token(&self, before: &[&str], token: &str) -> Output {
        self.command(before, &[], None, token).output().unwrap()
    }

    fn command(
        &self,
        before: &[&str],
        after: &[&str],
        rust_log: Option<&str>,
        expected_token: &str,
    ) -> Command {
        let mut cmd = fasp();
        cmd.args(before)
            .arg("transfer")
            .arg("--json")
            .arg("--spec")
            .arg(self.dir.path().join("spec.json"))
            .arg("--ascp")
            .arg(&self.sim)
            .args(after)
            .env("FASP_ASCP_ENV", "ASCP_SIM_*")
            .env("ASCP_SIM_ROOT", self.dir.path().join("remote"))
            .env("ASCP_SIM_STATS_INTERVAL_MS", "20")
            .env("ASCP_SIM_EXPECT_TOKEN", expected_token);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        cmd
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The only file in `dir`.
fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

fn assert_no_secret(what: &str, log: &str) {
    for secret in [TOKEN, COOKIE, PASSWORD, "SECRET"] {
        if let Some(at) = log.find(secret) {
            let line = log[..at].rsplit('\n').next().unwrap_or_default();
            panic!("{what} holds {secret:?}, in the line starting {line:?}");
        }
    }
}

#[test]
fn vvv_with_log_dir_writes_a_private_trace_log_without_secrets() {
    let Some(sim) = sim_path() else { return };
    let t = Transfer::new(sim);
    let out = t.run(&["-vvv"], &["--log-dir", t.logs().to_str().unwrap()], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let file = only_file(&t.logs());
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("fasp-") && name.ends_with(".log"),
        "{name}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "the log file is private");
    assert_eq!(
        mode(&t.logs()),
        0o700,
        "the log folder made for it is private"
    );
    let log = std::fs::read_to_string(&file).unwrap();
    for needle in [
        "fasp started",
        "command=\"transfer\"",
        "TRACE",
        "ascp started",
        "ASPERA_SCP_TOKEN",
        "management connection adopted",
        "transfer succeeded",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert_no_secret("the log file", &log);
    // The log went to the file, not to stderr; stdout holds the JSON events only.
    assert!(!stderr.contains("ascp started"), "{stderr}");
    assert_no_secret("stderr", &stderr);
    assert_no_secret("stdout", &stdout);
}

#[test]
fn verbose_logs_go_to_stderr_and_rust_log_overrides_the_level() {
    let Some(sim) = sim_path() else { return };
    let t = Transfer::new(sim);
    // -v after the subcommand works too: the flags are global.
    let out = t.run(&[], &["-v"], None);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(" INFO ") && stderr.contains("ascp started"),
        "-v logs at info on stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("DEBUG"),
        "-v is info, not debug:\n{stderr}"
    );
    assert_no_secret("stderr", &stderr);

    // RUST_LOG decides over -vvv: only warnings of fasp_manager, so nothing here.
    let out = t.run(&["-vvv"], &[], Some("fasp_manager=warn"));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("TRACE") && !stderr.contains("ascp started"),
        "RUST_LOG overrides -vvv:\n{stderr}"
    );

    // And it can ask for more than the flags: debug of the manager without -v.
    let out = t.run(&[], &[], Some("fasp_manager=debug"));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DEBUG") && stderr.contains("spawning ascp"),
        "RUST_LOG=fasp_manager=debug:\n{stderr}"
    );
    assert_no_secret("stderr", &stderr);
}

#[test]
fn without_v_nothing_is_logged_for_a_transfer_that_goes_well() {
    let Some(sim) = sim_path() else { return };
    let t = Transfer::new(sim);
    let out = t.run(&[], &[], None);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for level in ["TRACE", "DEBUG", " INFO "] {
        assert!(!stderr.contains(level), "{level} without -v:\n{stderr}");
    }
}

#[test]
fn without_v_a_log_dir_file_gets_the_warnings_and_stderr_no_log_line() {
    let Some(sim) = sim_path() else { return };
    let t = Transfer::new(sim);
    // The remote host accepts another token: the session fails (code 19), not retried.
    let out = t.run_with_expected_token(
        &["--log-dir", t.logs().to_str().unwrap()],
        "ATM3_another-token",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("WARN"),
        "log lines on stderr without -v:\n{stderr}"
    );
    let log = std::fs::read_to_string(only_file(&t.logs())).unwrap();
    assert!(
        log.contains("WARN") && log.contains("transfer failed"),
        "the file lacks the failure's warning:\n{log}"
    );
    assert!(!log.contains(" INFO "), "info without -v:\n{log}");
    assert_no_secret("the log file", &log);
    assert_no_secret("stderr", &stderr);
}

#[test]
fn a_bad_rust_log_or_log_dir_is_a_usage_error_naming_it() {
    let out = fasp()
        .args(["completions", "bash"])
        .env("RUST_LOG", "fasp_manager=loud")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RUST_LOG"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let out = fasp()
        .args(["--log-dir", blocker.join("logs").to_str().unwrap()])
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("log folder") && stderr.contains("not-a-folder"),
        "{stderr}"
    );

    let out = fasp()
        .args(["-q", "-v", "completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "-q and -v together are refused");
}

#[test]
fn bash_completions_name_every_subcommand() {
    let out = fasp().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    assert!(
        script.contains("complete -F"),
        "not a bash script:\n{script}"
    );
    for sub in [
        "decode",
        "render",
        "transfer",
        "node",
        "upload",
        "download",
        "completions",
        "upload-setup",
        "download-setup",
        "--log-dir",
        "--verbose",
    ] {
        assert!(script.contains(sub), "the script lacks {sub:?}");
    }

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = fasp().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("transfer"), "{shell}");
    }
    let out = fasp().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// The man pages in `docs/man/` are what `fasp manpage` writes now: same files, same bytes.
#[test]
fn committed_man_pages_are_current() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man");
    let fresh = tempfile::tempdir().unwrap();
    let out = fasp()
        .args(["manpage", "--out"])
        .arg(fresh.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refresh = "refresh them with `cargo run -p fasp-cli -- manpage --out docs/man` \
                   (after `rm docs/man/*.1` when a subcommand went away) and commit docs/man/";
    let pages = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".1"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let (want, have) = (pages(fresh.path()), pages(&committed));
    assert!(want.contains(&"fasp.1".to_owned()), "{want:?}");
    assert!(want.contains(&"fasp-transfer.1".to_owned()), "{want:?}");
    assert!(
        !want.iter().any(|p| p.contains("manpage")),
        "the hidden subcommand has no page: {want:?}"
    );
    assert_eq!(have, want, "docs/man/ lists other pages: {refresh}");
    for page in &want {
        let new = std::fs::read(fresh.path().join(page)).unwrap();
        let old = std::fs::read(committed.join(page)).unwrap();
        assert!(old == new, "docs/man/{page} is stale: {refresh}");
    }
}
