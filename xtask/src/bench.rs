//! `cargo xtask bench`: the criterion benchmarks, and the manager's load benchmark.
//!
//! `cargo xtask bench manager [--n 1,64,256,1000] [--hz 10] [--window SECS] [--probes K] [--burst MS]
//! [--unread PCT] [--slow K] [--slow-ms MS] [--mode normal|unread|both]` builds ascp-sim in
//! release and runs `crates/fasp-manager/benches/load.rs` with those arguments (`--unread`
//! and `--slow`: a share of the transfers whose events are never read, some read slowly;
//! `--mode both`: each N without them, then with them, in one process).

use crate::util::{cargo, positionals, run};

/// Flags of the manager benchmark that take a value (passed through to it).
const MANAGER_FLAGS: &[&str] = &[
    "--n",
    "--hz",
    "--window",
    "--probes",
    "--burst",
    "--unread",
    "--slow",
    "--slow-ms",
    "--mode",
];

pub(crate) fn run_bench(args: &[String]) -> Result<(), String> {
    let names = positionals(args, MANAGER_FLAGS);
    match names.first().copied() {
        None | Some("codec") | Some("decode") => {
            run(cargo().args(["bench", "-p", "fasp-mgmt-proto", "--bench", "decode"]))
        }
        Some("manager") | Some("load") => run_manager(args),
        Some(other) => Err(format!(
            "unknown benchmark `{other}` (known: codec, manager)"
        )),
    }
}

/// The manager load benchmark: ascp-sim in release first, then the harness.
fn run_manager(args: &[String]) -> Result<(), String> {
    run(cargo().args(["build", "--release", "-p", "fasp-sim", "--bin", "ascp-sim"]))?;
    let mut pass = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if MANAGER_FLAGS.contains(&args[i].as_str()) {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{} needs a value", args[i]))?;
            pass.push(args[i].clone());
            pass.push(value.clone());
            i += 1;
        }
        i += 1;
    }
    run(cargo()
        .args(["bench", "-p", "fasp-manager", "--bench", "load", "--"])
        .args(&pass))
}
