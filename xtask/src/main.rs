//! `cargo xtask`: the project's automation, in plain Rust with no dependencies.
//!
//! ```text
//! cargo xtask test [--fuzz-smoke] [--no-ascp]   the README's test command
//! cargo xtask ascp [--force]                    install the real ascp (cos-aspera) into target/ascp
//! cargo xtask fuzz [--time SECS] [--smoke] [TARGET]
//! cargo xtask proptest [--cases N]
//! cargo xtask simulate [--seeds N | --seed S]
//! cargo xtask bench [NAME]
//! cargo xtask release [VERSION] [--execute] [--preflight] [--skip-preflight]
//! ```

mod ascp;
mod bench;
mod fuzz;
mod release;
mod test;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        eprintln!("{}", USAGE);
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "test" => test::run_all(&rest),
        "ascp" => ascp::run(&rest),
        "fuzz" => fuzz::run_fuzz(&rest),
        "proptest" => test::proptest(&rest),
        "simulate" => test::simulate(&rest),
        "bench" => bench::run_bench(&rest),
        "release" => release::run(&rest),
        "help" | "--help" | "-h" => {
            println!("{}", USAGE);
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask {task}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task> [options]

tasks:
  test [--fuzz-smoke] [--no-ascp]  fmt check, clippy -D warnings, the whole test suite
                                   (installs the real ascp first unless --no-ascp)
  ascp [--force]                   download cos-aspera with pip, verify, install target/ascp
  fuzz [--time SECS] [--smoke] [TARGET]
                                   run cargo-fuzz targets (installs cargo-fuzz when missing)
  proptest [--cases N]             the proptest suites with N cases each
  simulate [--seeds N | --seed S]  the manager core's seeded simulation over seeds 0..N
                                   (default 200,000), or one seed to replay a failure
  bench [codec|manager] [opts]     decode benchmark (criterion), or the manager load benchmark
                                   (manager: --n 1,64,256,1000 --hz 10 --window 5 --probes 3 [--burst MS])
  release [VERSION] [--execute] [--preflight] [--skip-preflight]
                                   dry run (default) or, with --execute, the release: preflight,
                                   version bump, CHANGELOG.md, package, publish, tag (RELEASING.md)";
