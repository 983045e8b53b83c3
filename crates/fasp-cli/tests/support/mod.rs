//! Helpers shared by the integration tests of `fasp` that run it against ascp-sim
//! (`tests/sim_end_to_end.rs`, `tests/stalled_stdout.rs`).
//!
//! Each test file is a crate of its own that includes this module with `mod support;` and
//! uses only part of it: what one of them leaves unused is used by another, not dead.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// ascp-sim, next to the test binary (where `cargo test --workspace` builds it). Missing, it
/// is a skip with a notice, or a failure with `CI=true`.
pub(crate) fn sim_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("ascp-sim");
    if candidate.is_file() {
        return Some(candidate);
    }
    assert!(
        !fasp_testkit::ci_required(),
        "ascp-sim is not built: CI runs `cargo test --workspace`"
    );
    eprintln!("skipping: ascp-sim not built (cargo build -p fasp-sim)");
    None
}

/// `fasp --json` output: one JSON value a line (panics on a line that is not one).
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}
