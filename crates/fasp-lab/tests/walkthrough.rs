//! The README's "Try it offline" walk-through, step by step, with the built binaries: the node
//! API stand-in on a free port, `node upload-setup`, `upload` of a file and a folder into a
//! remote folder created on the way, `download` of the file into a local folder, and every
//! byte compared; and the stand-in over HTTPS, refused without `--cacert` and trusted with it.
//!
//! ascp-sim is the emulator `cargo test --workspace` builds next to `fasp-lab`; without it the
//! test is skipped with a notice, except under CI (`CI=true`), where it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The public test credentials the README gives.
const USER: &str = "node_user";
const PASSWORD: &str = "node-pass-Vb7Qz";

fn fasp_lab() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fasp-lab"))
}

/// ascp-sim beside fasp-lab, or `None` (a skip) outside CI.
fn ascp_sim() -> Option<PathBuf> {
    let sim = fasp_lab().with_file_name("ascp-sim");
    if sim.is_file() {
        return Some(sim);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(
        !ci,
        "ascp-sim is not built: CI runs `cargo test --workspace`"
    );
    eprintln!("skipping: ascp-sim not built (cargo build -p fasp-sim)");
    None
}

/// The stand-in, stopped when the test ends (even when it fails).
struct Standin {
    child: Child,
    url: String,
}

impl Standin {
    /// `fasp-lab node-standin --port 0 --root ROOT [--tls]` (its certificate, with `--tls`,
    /// written into `tmp`); the URL is read from its first line.
    fn start(root: &Path, tls: bool, tmp: &Path) -> Standin {
        let mut child = Command::new(fasp_lab())
            .args(["node-standin", "--port", "0", "--root"])
            .arg(root)
            .args(tls.then_some("--tls"))
            .env("TMPDIR", tmp)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fasp-lab node-standin starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("its stderr"));
        let mut first = String::new();
        stderr.read_line(&mut first).expect("its first line");
        // Keep reading what it says afterwards, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        // "node API stand-in on http://127.0.0.1:PORT (Ctrl-C stops it)"
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in the stand-in's first line: {first:?}"))
            .to_owned();
        Standin { child, url }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fasp-lab ARGS` in `cwd`, with the README's environment; it must succeed.
fn run(cwd: &Path, remote: &Path, sim: &Path, args: &[&str]) -> Output {
    let out = try_run(cwd, remote, sim, args);
    assert!(
        out.status.success(),
        "fasp-lab {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `fasp-lab ARGS` in `cwd`, with the README's environment.
fn try_run(cwd: &Path, remote: &Path, sim: &Path, args: &[&str]) -> Output {
    Command::new(fasp_lab())
        .args(args)
        .current_dir(cwd)
        .env("FASP_NODE_PASSWORD", PASSWORD)
        .env("ASCP_SIM_ROOT", remote)
        .env("FASP_ASCP_ENV", "ASCP_SIM_ROOT")
        .env("FASP_ASCP", sim)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("fasp-lab runs")
}

/// `len` bytes that differ from file to file and from place to place.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn same_bytes(what: &str, actual: &Path, expected: &[u8]) {
    let bytes = std::fs::read(actual).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        bytes == expected,
        "{what}: {} differs ({} bytes, {} expected)",
        actual.display(),
        bytes.len(),
        expected.len()
    );
}

#[test]
fn the_readme_offline_walkthrough_works_as_written() {
    let Some(sim) = ascp_sim() else { return };
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let remote = tmp.path().join("fasp-remote");
    let here = tmp.path().join("here");
    std::fs::create_dir_all(here.join("photos")).expect("the local folders");
    let report = content(1, 200_000);
    let photo_a = content(2, 50_000);
    let photo_b = content(3, 1);
    std::fs::write(here.join("report.pdf"), &report).expect("report.pdf");
    std::fs::write(here.join("photos/a.jpg"), &photo_a).expect("a.jpg");
    std::fs::write(here.join("photos/b.jpg"), &photo_b).expect("b.jpg");

    let standin = Standin::start(&remote, false, tmp.path());
    let url = standin.url.as_str();

    // The spec a node gives, secrets redacted.
    let out = run(
        &here,
        &remote,
        &sim,
        &[
            "node",
            "upload-setup",
            "--url",
            url,
            "--user",
            USER,
            "--path",
            "/incoming",
        ],
    );
    let spec: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(spec["direction"], "send", "{spec}");
    assert_eq!(spec["token"], "<redacted>", "{spec}");

    // Upload a file and a folder into /incoming, which does not exist yet.
    assert!(!remote.join("incoming").exists());
    run(
        &here,
        &remote,
        &sim,
        &[
            "upload",
            "--url",
            url,
            "--user",
            USER,
            "report.pdf",
            "photos",
            "/incoming",
        ],
    );
    let incoming = remote.join("incoming");
    same_bytes("uploaded file", &incoming.join("report.pdf"), &report);
    same_bytes("uploaded folder", &incoming.join("photos/a.jpg"), &photo_a);
    same_bytes("uploaded folder", &incoming.join("photos/b.jpg"), &photo_b);

    // Download the file back into ./back, created on the way.
    let out = run(
        &here,
        &remote,
        &sim,
        &[
            "download",
            "--url",
            url,
            "--user",
            USER,
            "/incoming/report.pdf",
            "./back",
        ],
    );
    same_bytes("downloaded file", &here.join("back/report.pdf"), &report);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("done: "), "{stderr}");
}

#[test]
fn the_tls_stand_in_is_trusted_with_cacert_and_refused_without() {
    // No transfer here: ascp-sim is not needed.
    let sim = PathBuf::from("ascp-sim");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let remote = tmp.path().join("fasp-remote");
    let standin = Standin::start(&remote, true, tmp.path());
    assert!(standin.url.starts_with("https://"), "{}", standin.url);
    let setup = |extra: &[&str]| {
        let mut args = vec![
            "node",
            "upload-setup",
            "--url",
            standin.url.as_str(),
            "--user",
            USER,
            "--path",
            "/incoming",
        ];
        args.extend_from_slice(extra);
        try_run(tmp.path(), &remote, &sim, &args)
    };
    let refused = setup(&[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    // The certificate it wrote into its temporary folder, as its start lines say.
    let pem = tmp.path().join("fasp-standin-cert.pem");
    let trusted = setup(&["--cacert", pem.to_str().expect("UTF-8")]);
    assert!(trusted.status.success(), "{trusted:?}");
    let spec: Value = serde_json::from_slice(&trusted.stdout).expect("one JSON object");
    assert_eq!(spec["token"], "<redacted>", "{spec}");
}

#[test]
fn cli_md_documents_the_lab_subcommands_and_their_options() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md"))
            .expect("docs/cli.md");
    for sub in ["demo", "node-standin"] {
        assert!(page.contains(&format!("fasp-lab {sub}")), "fasp-lab {sub}");
        let help = Command::new(fasp_lab())
            .args([sub, "--help"])
            .output()
            .expect("fasp-lab runs");
        let help = String::from_utf8_lossy(&help.stdout);
        // Its own options; the global ones (-v, -q, --log-dir) are documented with fasp's.
        for flag in help
            .split_whitespace()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| !matches!(*w, "--help" | "--verbose" | "--quiet" | "--log-dir"))
        {
            assert!(
                page.contains(&format!("`{flag}")),
                "docs/cli.md does not document fasp-lab {sub} {flag}"
            );
        }
    }
}
