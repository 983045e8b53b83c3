//! `cargo xtask test`: everything a change must pass, and `cargo xtask proptest`.

use clap::Args;

use crate::util::{cargo, run};

/// `cargo xtask test [--fuzz-smoke] [--no-ascp]`.
#[derive(Args, Debug)]
pub(crate) struct TestArgs {
    /// Also run every fuzz target for a short while (as `cargo xtask fuzz --smoke`)
    #[arg(long)]
    fuzz_smoke: bool,
    /// Do not install the real ascp: its tests skip (refused when CI=true)
    #[arg(long)]
    no_ascp: bool,
}

/// `cargo xtask proptest [--cases N]`.
#[derive(Args, Debug)]
pub(crate) struct ProptestArgs {
    /// Cases per proptest suite (PROPTEST_CASES)
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub(crate) cases: u32,
}

/// `cargo xtask simulate [--seeds N | --seed S]`.
#[derive(Args, Debug)]
pub(crate) struct SimulateArgs {
    /// Run seeds 0..N
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub(crate) seeds: u64,
    /// Replay this one seed (after a failure)
    #[arg(long, value_name = "S", conflicts_with = "seeds")]
    pub(crate) seed: Option<u64>,
}

pub(crate) fn run_all(args: &TestArgs) -> Result<(), String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let no_ascp = args.no_ascp;
    if no_ascp && ci {
        return Err("--no-ascp is refused when CI=true: the real-ascp tier must run there".into());
    }

    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;

    spec_without_preserve_order()?;

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    // PostgreSQL's server binaries for the fasp-jobs tests (installed when missing; each test
    // makes its own throwaway cluster). Without them those tests skip, except with CI=true.
    match crate::postgres::ensure_postgres() {
        Ok(bin) => {
            test.env(crate::postgres::PG_BIN_ENV, bin);
        }
        Err(e) if ci => return Err(e),
        Err(e) => eprintln!("xtask test: PostgreSQL tests will skip: {e}"),
    }
    if !no_ascp {
        let ascp = crate::ascp::ensure_installed(false)?;
        crate::ascp::ensure_sshd()?;
        test.env("FASP_ASCP", &ascp);
    }
    run(&mut test)?;

    if args.fuzz_smoke {
        crate::fuzz::smoke_all(None)?;
    }
    Ok(())
}

/// fasp-spec keeps its key order itself (`JsonMap`), so that its users are not forced into
/// serde_json's `preserve_order`: none of its normal dependencies may turn the feature on, and
/// its tests pass in a build without it (the workspace run below has it, through the `fasp`
/// binary, and so cannot tell).
fn spec_without_preserve_order() -> Result<(), String> {
    let mut tree = cargo();
    tree.args([
        "tree",
        "--locked",
        "-p",
        "fasp-spec",
        "-e",
        "normal,features",
        "-i",
        "serde_json",
        "--prefix",
        "none",
    ]);
    eprintln!("$ {}", crate::util::display(&tree));
    let out = tree
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", crate::util::display(&tree)))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("fasp-spec") {
        return Err(format!(
            "`{}` failed ({}): {}",
            crate::util::display(&tree),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if text.contains("\"preserve_order\"") {
        return Err(format!(
            "a dependency of fasp-spec turns on serde_json's preserve_order, which every user \
             of fasp-spec would then get (fasp-spec keeps key order with its own JsonMap):\n{text}"
        ));
    }
    // The variable makes the key-order test check that this build really sorts serde_json's
    // maps (no dev-dependency turned the feature back on).
    run(cargo()
        .args([
            "test",
            "--locked",
            "-p",
            "fasp-spec",
            "--lib",
            "--test",
            "spec",
        ])
        .env("FASP_SPEC_EXPECT_SORTED_MAPS", "1"))
}

/// The manager core's seeded simulation over a long range of seeds (the test suite runs
/// 3,000), or one seed to replay a failure.
pub(crate) fn simulate(args: &SimulateArgs) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "fasp-manager",
        "--locked",
        "--release",
        "--lib",
        "sim_tests",
        "--",
        "--nocapture",
    ]);
    match args.seed {
        Some(seed) => cmd.env("FASP_SIM_SEED", seed.to_string()),
        None => cmd.env("FASP_SIM_SEEDS", format!("0..{}", args.seeds)),
    };
    run(&mut cmd)
}

/// The proptest suites, in release, with `--cases` cases each.
pub(crate) fn proptest(args: &ProptestArgs) -> Result<(), String> {
    run(cargo()
        .args(["test", "--workspace", "--locked", "--release", "proptest"])
        .env("PROPTEST_CASES", args.cases.to_string()))
}
