//! `cargo xtask`: the project's automation, in Rust.
//!
//! ```text
//! cargo xtask test [--fuzz-smoke] [--no-ascp]   the README's test command
//! cargo xtask ascp [--force]                    install the real ascp (cos-aspera) into target/ascp
//! cargo xtask fuzz [--time SECS] [--smoke] [TARGET]
//! cargo xtask proptest [--cases N]
//! cargo xtask simulate [--seeds N | --seed S]
//! cargo xtask bench [codec | manager [--n 1,64 --hz 10 ...] | jobs [claims|latency|memory] [--jobs N ...]]
//! cargo xtask release [VERSION] [--execute] [--preflight] [--skip-preflight]
//! cargo xtask semver-checks [--baseline REV | --fallback-baseline REV] [--report-only]
//! ```
//!
//! The command line is parsed with clap: an unknown flag or a bad value stops the task with
//! the usage (`cargo xtask help <task>`). The release task drives cargo's own tools
//! (`cargo metadata` through `cargo_metadata`, `cargo package`, `cargo publish --workspace`,
//! cargo-semver-checks) and edits manifests with `toml_edit`; see `RELEASING.md`.

mod ascp;
mod bench;
mod fuzz;
mod postgres;
mod release;
mod semver_checks;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The project's automation: tests, the real ascp, fuzzing, benchmarks, releases.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// fmt check, clippy -D warnings, the whole test suite (installs the real ascp first)
    Test(test::TestArgs),
    /// Download cos-aspera with pip, verify it, install target/ascp (and an OpenSSH server)
    Ascp(ascp::AscpArgs),
    /// Run the cargo-fuzz targets (installs nightly and cargo-fuzz when missing)
    Fuzz(fuzz::FuzzArgs),
    /// The proptest suites with N cases each
    Proptest(test::ProptestArgs),
    /// The manager core's seeded simulation over a range of seeds, or one seed to replay
    Simulate(test::SimulateArgs),
    /// The decode benchmark (criterion; the default), the manager load benchmark, or the
    /// jobs benchmark (claims/s, submit-to-spawn latency, memory, against baselines)
    Bench(bench::BenchArgs),
    /// Dry run (default) or, with --execute, the release: preflight, version bump,
    /// CHANGELOG.md, package, publish, tag (RELEASING.md)
    Release(release::ReleaseArgs),
    /// cargo-semver-checks of the published library crates against the last release tag
    SemverChecks(semver_checks::SemverArgs),
}

impl Task {
    fn name(&self) -> &'static str {
        match self {
            Task::Test(_) => "test",
            Task::Ascp(_) => "ascp",
            Task::Fuzz(_) => "fuzz",
            Task::Proptest(_) => "proptest",
            Task::Simulate(_) => "simulate",
            Task::Bench(_) => "bench",
            Task::Release(_) => "release",
            Task::SemverChecks(_) => "semver-checks",
        }
    }

    fn run(self) -> Result<(), String> {
        match self {
            Task::Test(a) => test::run_all(&a),
            Task::Ascp(a) => ascp::run(&a),
            Task::Fuzz(a) => fuzz::run_fuzz(&a),
            Task::Proptest(a) => test::proptest(&a),
            Task::Simulate(a) => test::simulate(&a),
            Task::Bench(a) => bench::run_bench(a),
            Task::Release(a) => release::run(&a),
            Task::SemverChecks(a) => semver_checks::run(&a),
        }
    }
}

fn main() -> ExitCode {
    // clap prints the usage and exits with 2 on a bad command line (0 for --help).
    let cli = Cli::parse();
    let name = cli.task.name();
    match cli.task.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask {name}: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.task)
    }

    fn rejects(args: &[&str]) -> String {
        match parse(args) {
            Ok(t) => panic!("{args:?} was accepted as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn documented_command_lines_parse() {
        for line in [
            &["test"][..],
            &["test", "--fuzz-smoke", "--no-ascp"],
            &["ascp"],
            &["ascp", "--force"],
            &["fuzz", "--smoke"],
            &["fuzz", "--time", "30", "stream"],
            &["fuzz", "--smoke", "control"],
            &["proptest", "--cases", "100"],
            &["simulate"],
            &["simulate", "--seeds", "5000"],
            &["simulate", "--seed", "42"],
            &["bench"],
            &["bench", "codec"],
            &["bench", "decode"],
            &["bench", "manager"],
            &["bench", "load", "--n", "1000", "--mode", "both"],
            &[
                "bench",
                "manager",
                "--n",
                "1,64",
                "--hz",
                "10",
                "--window",
                "5",
                "--probes",
                "3",
                "--burst",
                "200",
                "--unread",
                "10",
                "--slow",
                "1",
                "--slow-ms",
                "250",
                "--mode",
                "both",
            ],
            &["bench", "jobs"],
            &["bench", "jobs", "claims", "memory"],
            &[
                "bench",
                "jobs",
                "--jobs",
                "2000",
                "--latency-jobs",
                "50",
                "--running",
                "200,1000",
                "--poll-ms",
                "20",
            ],
            &["release"],
            &["release", "0.2.0"],
            &["release", "0.2.0", "--dry-run"],
            &["release", "0.2.0", "--preflight"],
            &["release", "0.2.0", "--package-check"],
            &["release", "0.2.0", "--execute", "--skip-preflight"],
            &["semver-checks"],
            &[
                "semver-checks",
                "--report-only",
                "--fallback-baseline",
                "HEAD~1",
            ],
            &["semver-checks", "--baseline", "v0.1.0"],
        ] {
            if let Err(e) = parse(line) {
                panic!("{line:?} is refused: {e}");
            }
        }
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        assert!(rejects(&["test", "--no-acsp"]).contains("--no-acsp"));
        assert!(rejects(&["ascp", "--forse"]).contains("--forse"));
        assert!(rejects(&["fuzz", "--time", "soon"]).contains("soon"));
        assert!(rejects(&["proptest", "--cases", "many"]).contains("--cases <N>"));
        assert!(rejects(&["simulate", "--seeds", "10", "--seed", "3"]).contains("--seed"));
        assert!(rejects(&["bench", "manager", "--mode", "fast"]).contains("fast"));
        assert!(rejects(&["bench", "manager", "--unread", "101"]).contains("101"));
        assert!(rejects(&["bench", "manager", "--n", "1,x"]).contains("x"));
        assert!(rejects(&["bench", "codec", "--n", "5"]).contains("--n"));
        assert!(rejects(&["bench", "nosuch"]).contains("nosuch"));
        assert!(rejects(&["bench", "jobs", "speed"]).contains("speed"));
        assert!(rejects(&["bench", "jobs", "--running", "1,x"]).contains("x"));
        assert!(rejects(&["release", "0.2"]).contains("0.2"));
        assert!(rejects(&["release", "--preflight", "--skip-preflight"]).contains("--preflight"));
        assert!(rejects(&["release", "0.2.0", "0.3.0"]).contains("0.3.0"));
        assert!(rejects(&["release", "--execute", "--package-check"]).contains("--execute"));
        assert!(rejects(&["nosuch"]).contains("nosuch"));
    }

    #[test]
    fn defaults_are_kept() {
        match parse(&["proptest"]).unwrap() {
            Task::Proptest(a) => assert_eq!(a.cases, 4096),
            t => panic!("{t:?}"),
        }
        match parse(&["simulate"]).unwrap() {
            Task::Simulate(a) => assert_eq!((a.seeds, a.seed), (200_000, None)),
            t => panic!("{t:?}"),
        }
        match parse(&["fuzz"]).unwrap() {
            Task::Fuzz(a) => assert_eq!((a.time, a.smoke, a.target), (60, false, None)),
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn manager_flags_are_passed_through_as_given() {
        let Task::Bench(a) = parse(&[
            "bench",
            "manager",
            "--n",
            "1,64",
            "--window",
            "2.5",
            "--mode",
            "unread",
            "--slow-ms",
            "40",
        ])
        .unwrap() else {
            panic!("not bench");
        };
        let Some(bench::Which::Manager(m)) = a.which else {
            panic!("not manager: {a:?}");
        };
        assert_eq!(
            m.harness_args(),
            [
                "--n",
                "1,64",
                "--window",
                "2.5",
                "--slow-ms",
                "40",
                "--mode",
                "unread"
            ]
        );
    }

    #[test]
    fn jobs_flags_become_the_harness_environment() {
        let Task::Bench(a) = parse(&[
            "bench",
            "jobs",
            "latency",
            "--jobs",
            "500",
            "--running",
            "20,40",
            "--poll-ms",
            "5",
        ])
        .unwrap() else {
            panic!("not bench");
        };
        let Some(bench::Which::Jobs(j)) = a.which else {
            panic!("not jobs: {a:?}");
        };
        let (parts, env) = j.harness();
        assert_eq!(parts, ["latency"]);
        assert_eq!(
            env,
            [
                ("FASP_JOBS_BENCH_JOBS", "500".to_string()),
                ("FASP_JOBS_BENCH_RUNNING", "20,40".to_string()),
                ("FASP_JOBS_BENCH_POLL_MS", "5".to_string()),
            ]
        );
    }
}
