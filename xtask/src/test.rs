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

pub(crate) fn proptest(args: &[String]) -> Result<(), String> {
    let cases: u32 = flag_value(args, "--cases")?.unwrap_or(4096);
    run(cargo()
        .args(["test", "--workspace", "--locked", "--release", "proptest"])
        .env("PROPTEST_CASES", cases.to_string()))
}
