//! `cargo xtask fuzz`: cargo-fuzz on the nightly toolchain, installed when missing.

use std::process::Command;

use crate::util::{flag_value, has_program, positionals, project_root, run};

/// The fuzz targets in `fuzz/fuzz_targets`, and the seed folders each starts from.
const TARGETS: &[(&str, &[&str])] = &[
    (
        "stream",
        &["crates/fasp-mgmt-proto/tests/fixtures/real-ascp"],
    ),
    ("control", &[]),
];

/// Seconds per target in a smoke run.
const SMOKE_SECS: u32 = 20;

pub(crate) fn run_fuzz(args: &[String]) -> Result<(), String> {
    let time: Option<u32> = flag_value(args, "--time")?;
    let pos = positionals(args, &["--time"]);
    if args.iter().any(|a| a == "--smoke") {
        return smoke_all(pos.first().copied());
    }
    let secs = time.unwrap_or(60);
    match pos.first() {
        Some(t) => fuzz_one(t, secs),
        None => TARGETS.iter().try_for_each(|(t, _)| fuzz_one(t, secs)),
    }
}

/// A short run of every target (or one), so that none of them rots.
pub(crate) fn smoke_all(only: Option<&str>) -> Result<(), String> {
    for (t, _) in TARGETS {
        if only.is_none_or(|o| o == *t) {
            fuzz_one(t, SMOKE_SECS)?;
        }
    }
    Ok(())
}

fn fuzz_one(target: &str, secs: u32) -> Result<(), String> {
    let seeds = TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let known: Vec<_> = TARGETS.iter().map(|(t, _)| *t).collect();
            format!(
                "unknown fuzz target `{target}` (known: {})",
                known.join(", ")
            )
        })?;
    preflight()?;
    let root = project_root();
    let corpus = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("create {}: {e}", corpus.display()))?;
    // `cargo +nightly` needs the rustup proxy, not the toolchain's own cargo binary.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("fuzz"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "run", target])
        .arg(&corpus);
    for s in seeds {
        cmd.arg(root.join(s));
    }
    cmd.args([
        "--",
        &format!("-max_total_time={secs}"),
        "-rss_limit_mb=2048",
        "-max_len=16384",
    ]);
    run(&mut cmd)
}

/// Nightly and cargo-fuzz, installed when missing, with a clear message.
fn preflight() -> Result<(), String> {
    if !has_program("rustup", &["--version"]) {
        return Err("fuzzing needs rustup (for the nightly toolchain)".into());
    }
    if !has_program("cargo", &["+nightly", "--version"]) {
        eprintln!("xtask fuzz: the nightly toolchain is missing; installing it with rustup");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !has_program("cargo", &["fuzz", "--version"]) {
        eprintln!("xtask fuzz: cargo-fuzz is missing; installing it with cargo install");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
