//! `cargo xtask fuzz`: cargo-fuzz on the nightly toolchain, installed when missing.
//!
//! Each run first replays the target's saved crashes (`fuzz/regressions/<target>-*.bin`), then
//! copies the seeds into `fuzz/corpus/<target>` and fuzzes for the given time. A crash, a
//! timeout or an out-of-memory ends the task with an error that names the saved input.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::util::{has_program, project_root, run};

/// `cargo xtask fuzz [--time SECS] [--smoke] [TARGET]`.
#[derive(Args, Debug)]
pub(crate) struct FuzzArgs {
    /// Seconds of fuzzing per target
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) time: u32,
    /// A short run of every target (or of TARGET), so that none of them rots
    #[arg(long)]
    pub(crate) smoke: bool,
    /// One fuzz target; all of them when left out
    #[arg(value_name = "TARGET", value_parser = target_names())]
    pub(crate) target: Option<String>,
}

/// A fuzz target in `fuzz/fuzz_targets`.
struct Target {
    name: &'static str,
    /// Seed files, or folders of them, relative to the root.
    seeds: &'static [&'static str],
    /// Every seed is copied into the corpus once per prefix, the prefix in front. The `stream`
    /// harness reads its parser settings from the first two bytes, so a raw capture needs them.
    prefixes: &'static [&'static [u8]],
    /// `-max_len`: the longest input the fuzzer makes.
    max_len: usize,
    /// A libFuzzer dictionary, relative to the root.
    dict: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "stream",
        seeds: &[
            "crates/fasp-mgmt-proto/tests/fixtures/real-ascp",
            "crates/fasp-mgmt-proto/tests/fixtures/seed-examples.faspmgr",
        ],
        // Byte 0 sets the maximum frame length (64 + 8 * b), byte 1 the chunk size
        // (1 + b % 97): large frames fed byte by byte, in 17-byte chunks, and a 320-byte limit
        // that the larger real frames exceed.
        prefixes: &[&[0xff, 0x00], &[0xff, 0x10], &[0x20, 0x60]],
        max_len: 8192,
        dict: "fuzz/faspmgr.dict",
    },
    Target {
        name: "control",
        seeds: &["fuzz/seeds/control"],
        prefixes: &[&[]],
        max_len: 4096,
        dict: "fuzz/faspmgr.dict",
    },
    Target {
        // Transfer spec files and node API answers: what comes from outside the machine.
        name: "spec_answer",
        seeds: &["fuzz/seeds/spec_answer"],
        // Byte 0 sets the node answer reader's bound on the number of specs (byte % 4).
        prefixes: &[&[1], &[2]],
        max_len: 16384,
        dict: "fuzz/spec_answer.dict",
    },
];

/// Seconds per target in a smoke run.
const SMOKE_SECS: u32 = 20;

/// Seconds one input may take before libFuzzer calls it a hang.
const INPUT_TIMEOUT_SECS: u32 = 10;

pub(crate) fn run_fuzz(args: &FuzzArgs) -> Result<(), String> {
    if args.smoke {
        return smoke_all(args.target.as_deref());
    }
    let secs = args.time;
    let targets = select(args.target.as_deref())?;
    preflight()?;
    report(
        targets
            .iter()
            .map(|t| (t.name, fuzz_one(t, secs)))
            .collect(),
    )
}

/// A short run of every target (or one), so that none of them rots. Every target runs even
/// when an earlier one fails; the task fails if any did.
pub(crate) fn smoke_all(only: Option<&str>) -> Result<(), String> {
    let targets = select(only)?;
    preflight()?;
    report(
        targets
            .iter()
            .map(|t| (t.name, fuzz_one(t, SMOKE_SECS)))
            .collect(),
    )
}

/// The names of the targets, for the command line.
fn target_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(TARGETS.iter().map(|t| t.name))
}

fn select(only: Option<&str>) -> Result<Vec<&'static Target>, String> {
    match only {
        None => Ok(TARGETS.iter().collect()),
        Some(name) => match TARGETS.iter().find(|t| t.name == name) {
            Some(t) => Ok(vec![t]),
            None => {
                let known: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                Err(format!(
                    "unknown fuzz target `{name}` (known: {})",
                    known.join(", ")
                ))
            }
        },
    }
}

fn report(results: Vec<(&str, Result<(), String>)>) -> Result<(), String> {
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(t, r)| r.err().map(|e| format!("{t}: {e}")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} fuzz target(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ))
    }
}

fn fuzz_one(target: &Target, secs: u32) -> Result<(), String> {
    let root = project_root();
    let artifacts = root.join("fuzz/artifacts").join(target.name);
    let before = files_in(&artifacts);

    // Fuzz even when a saved input still fails, so that other bugs show too.
    let replayed = replay_regressions(&root, target);
    let fuzzed = (|| {
        let corpus = root.join("fuzz/corpus").join(target.name);
        seed_corpus(&root, target, &corpus)?;
        let mut cmd = fuzz_run(&root, target.name);
        cmd.arg(&corpus).args([
            "--".to_string(),
            format!("-max_total_time={secs}"),
            format!("-max_len={}", target.max_len),
            format!("-dict={}", root.join(target.dict).display()),
            format!("-timeout={INPUT_TIMEOUT_SECS}"),
            "-rss_limit_mb=2048".into(),
            "-print_final_stats=1".into(),
        ]);
        run(&mut cmd)
    })();
    let result = match (replayed, fuzzed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(a), Err(b)) => Err(format!("{a}; and fuzzing: {b}")),
    };

    result.map_err(|e| {
        let new: Vec<PathBuf> = files_in(&artifacts).difference(&before).cloned().collect();
        let mut msg = format!("fuzz target `{}` FAILED: {e}", target.name);
        for a in &new {
            msg.push_str(&format!(
                "\n    input: {}\n    reproduce: cargo +nightly fuzz run {} {}\n    minimise:  cargo +nightly fuzz tmin {} {}",
                a.display(),
                target.name,
                a.display(),
                target.name,
                a.display(),
            ));
        }
        eprintln!("\n==================== xtask fuzz ====================\n{msg}\n====================================================\n");
        msg
    })
}

/// Run the saved crashing inputs of `target` once each (libFuzzer runs files given as
/// arguments instead of fuzzing).
fn replay_regressions(root: &Path, target: &Target) -> Result<(), String> {
    let prefix = format!("{}-", target.name);
    let files: Vec<PathBuf> = files_in(&root.join("fuzz/regressions"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".bin"))
        })
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask fuzz: replaying {} regression input(s) of `{}`",
        files.len(),
        target.name
    );
    let mut cmd = fuzz_run(root, target.name);
    cmd.args(&files)
        .args(["--", &format!("-timeout={INPUT_TIMEOUT_SECS}")]);
    run(&mut cmd).map_err(|e| format!("a regression input fails again: {e}"))
}

/// Copy the seeds of `target` into its corpus folder (each under a fixed name, so that
/// repeated runs do not pile up copies).
fn seed_corpus(root: &Path, target: &Target, corpus: &Path) -> Result<(), String> {
    std::fs::create_dir_all(corpus).map_err(|e| format!("create {}: {e}", corpus.display()))?;
    let mut seeds = Vec::new();
    for s in target.seeds {
        let p = root.join(s);
        if p.is_dir() {
            seeds.extend(files_in(&p));
        } else if p.is_file() {
            seeds.push(p);
        } else {
            return Err(format!("seed {} is missing", p.display()));
        }
    }
    for seed in &seeds {
        let data = std::fs::read(seed).map_err(|e| format!("read {}: {e}", seed.display()))?;
        let stem = seed
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for prefix in target.prefixes {
            let hex = hex::encode(prefix);
            let name = if hex.is_empty() {
                format!("seed-{stem}")
            } else {
                format!("seed-{stem}-{hex}")
            };
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&data);
            let out = corpus.join(name);
            std::fs::write(&out, bytes).map_err(|e| format!("write {}: {e}", out.display()))?;
        }
    }
    Ok(())
}

/// The regular files of a folder (none when it does not exist), sorted.
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect()
}

/// `cargo +nightly fuzz run <target>` from the root (cargo-fuzz finds `fuzz/` from there).
fn fuzz_run(root: &Path, target: &str) -> Command {
    let mut cmd = nightly_cargo();
    cmd.current_dir(root).args(["fuzz", "run", target]);
    cmd
}

/// `cargo +nightly`, through the rustup proxy and without what the outer cargo set.
///
/// Under `cargo xtask` the environment names the stable toolchain (`RUSTUP_TOOLCHAIN`,
/// `CARGO` pointing into it, the xtask package's `CARGO_*`): a child that honoured those
/// would build with stable, where cargo-fuzz's `-Z` flags and sanitizers do not exist.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    let inherited: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| {
            let k = k.to_string_lossy();
            k.starts_with("CARGO_PKG_")
                || matches!(
                    k.as_ref(),
                    "CARGO"
                        | "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "RUSTUP_TOOLCHAIN"
                        | "RUSTUP_TOOLCHAIN_SOURCE"
                        | "RUSTC"
                        | "RUSTDOC"
                )
        })
        .collect();
    for k in inherited {
        cmd.env_remove(k);
    }
    cmd.arg("+nightly");
    cmd
}

/// Nightly and cargo-fuzz, installed when missing, with a clear message.
fn preflight() -> Result<(), String> {
    if !has_program("rustup", &["--version"]) {
        return Err("fuzzing needs rustup (for the nightly toolchain)".into());
    }
    if !nightly_cargo()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("xtask fuzz: the nightly toolchain is missing; installing it with rustup");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    // The proxy runs the nightly cargo and points its children (cargo-fuzz, rustc) at the
    // same toolchain, so cargo's version tells which toolchain builds the targets.
    let version = nightly_cargo()
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !version.contains("nightly") {
        return Err(format!(
            "`cargo +nightly` does not run a nightly toolchain (got `{version}`)"
        ));
    }
    eprintln!("xtask fuzz: {version}");
    let has_fuzz = || {
        nightly_cargo()
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_fuzz() {
        // Built with nightly, which is there anyway and never too old for cargo-fuzz.
        eprintln!(
            "xtask fuzz: cargo-fuzz is missing; installing it with cargo install (a few minutes, once)"
        );
        let mut cmd = nightly_cargo();
        cmd.args(["install", "cargo-fuzz", "--locked"]);
        run(&mut cmd)?;
        if !has_fuzz() {
            return Err("cargo-fuzz was installed but `cargo fuzz` does not run".into());
        }
    }
    Ok(())
}
