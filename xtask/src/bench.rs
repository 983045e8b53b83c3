//! `cargo xtask bench`: the criterion benchmarks.

use crate::util::{cargo, positionals, run};

pub(crate) fn run_bench(args: &[String]) -> Result<(), String> {
    let names = positionals(args, &[]);
    match names.first().copied() {
        None | Some("codec") | Some("decode") => {
            run(cargo().args(["bench", "-p", "fasp-mgmt-proto", "--bench", "decode"]))
        }
        Some(other) => Err(format!("unknown benchmark `{other}` (known: codec)")),
    }
}
