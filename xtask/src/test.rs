//! `cargo xtask test`: everything a change must pass, and `cargo xtask proptest`.

use crate::util::{cargo, flag_value, run};

pub(crate) fn run_all(args: &[String]) -> Result<(), String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let no_ascp = args.iter().any(|a| a == "--no-ascp");
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

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    if !no_ascp {
        let ascp = crate::ascp::ensure_installed(false)?;
        crate::ascp::ensure_sshd()?;
        test.env("FASP_ASCP", &ascp);
    }
    run(&mut test)?;

    if args.iter().any(|a| a == "--fuzz-smoke") {
        crate::fuzz::smoke_all(None)?;
    }
    Ok(())
}

/// The manager core's seeded simulation over a long range of seeds (the test suite runs
/// 3,000), or one seed to replay a failure.
pub(crate) fn simulate(args: &[String]) -> Result<(), String> {
    for a in args {
        if a.starts_with("--") && a != "--seeds" && a != "--seed" {
            return Err(format!(
                "unknown option `{a}` (simulate takes --seeds N or --seed S)"
            ));
        }
    }
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
    match flag_value::<u64>(args, "--seed")? {
        Some(seed) => cmd.env("FASP_SIM_SEED", seed.to_string()),
        None => {
            let n: u64 = flag_value(args, "--seeds")?.unwrap_or(200_000);
            cmd.env("FASP_SIM_SEEDS", format!("0..{n}"))
        }
    };
    run(&mut cmd)
}

pub(crate) fn proptest(args: &[String]) -> Result<(), String> {
    let cases: u32 = flag_value(args, "--cases")?.unwrap_or(4096);
    run(cargo()
        .args(["test", "--workspace", "--locked", "--release", "proptest"])
        .env("PROPTEST_CASES", cases.to_string()))
}
