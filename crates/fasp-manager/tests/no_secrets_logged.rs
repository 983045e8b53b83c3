//! No secret is ever logged: a real transfer through ascp-sim (the project's ascp emulator),
//! with a spec that holds a token, a cookie and a password (and a content-protection
//! password), every `tracing` event captured at TRACE level. The log must tell the transfer's
//! story (spawn, adopted connection, frames, exit, outcome) and hold none of the secrets, even
//! though ascp-sim echoes the cookie in its `INIT` and `SESSION` frames.
//!
//! Run alone, the test looks for ascp-sim next to the test binary (or in `FASP_SIM`) and skips
//! with a notice if it is missing (with `CI=true` it fails instead): `cargo build -p fasp-sim`.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fasp_manager::Manager;
use support::{Work, require_sim, upload};
use tokio::time::timeout;

const TOKEN: &str = "Bearer tok-SECRET-41f7";
const COOKIE: &str = "cookie-SECRET-8c2d";
const PASSWORD: &str = "pass-SECRET-5e90";
const FILE_PASSWORD: &str = "filepass-SECRET-a3b1";

/// A writer that appends to a shared buffer (one per log line, from any thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_logged_at_trace_level_shows_no_secret() {
    let sim = require_sim!();
    let captured = Captured::default();
    let writer = captured.clone();
    // Global: the transfer's tasks run on the runtime's threads and the spawner thread.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("no other subscriber in this test binary");

    let w = Work::new();
    w.file(&w.local("report.bin"), 200_000);
    let spec = upload(&[&w.local("report.bin")], "/")
        .token(TOKEN)
        .cookie(COOKIE)
        .password(PASSWORD)
        .content_protection(fasp_spec::ContentProtection::Encrypt, FILE_PASSWORD)
        .target_rate_kbps(500_000)
        .build()
        .unwrap();
    let manager = Manager::with_ascp(&sim);
    let transfer = manager.start(&spec, w.options()).unwrap();
    // A control, so that controls are logged too.
    transfer.control().set_rate(400_000, 0).await.unwrap();
    let summary = timeout(Duration::from_secs(30), transfer.wait())
        .await
        .expect("the transfer did not end within 30 s")
        .expect("the transfer failed");
    assert_eq!(summary.bytes, 200_000, "{summary:?}");

    let log = captured.text();
    assert!(!log.is_empty(), "nothing was logged");
    // The story is there: otherwise "no secret" would prove little.
    for needle in [
        "ascp started",
        "ASPERA_SCP_TOKEN",
        "ASPERA_SCP_COOKIE",
        "ASPERA_SCP_PASS",
        "management connection adopted",
        "INIT",
        "control requested",
        "control sent",
        "ascp exited",
        "transfer succeeded",
        "<redacted>",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    for (what, secret) in [
        ("the token", TOKEN),
        ("the token's value", "tok-SECRET-41f7"),
        ("the cookie", COOKIE),
        ("the password", PASSWORD),
        ("the content-protection password", FILE_PASSWORD),
        ("any secret", "SECRET"),
    ] {
        if let Some(at) = log.find(secret) {
            let line = log[..at].rsplit('\n').next().unwrap_or_default();
            panic!("{what} is in the log, in the line starting {line:?}");
        }
    }
}
