//! `cargo xtask bench`: the criterion benchmarks, and the manager's load benchmark.
//!
//! `cargo xtask bench` (or `bench codec`, alias `decode`) runs
//! `cargo bench -p fasp-mgmt-proto --bench decode`.
//!
//! `cargo xtask bench manager [--n 1,64,256,1000] [--hz 10] [--window SECS] [--probes K] [--burst MS]
//! [--unread PCT] [--slow K] [--slow-ms MS] [--mode normal|unread|both]` (alias `load`) builds
//! ascp-sim in release and runs `crates/fasp-manager/benches/load.rs` with the flags given
//! (`--unread` and `--slow`: a share of the transfers whose events are never read, some read
//! slowly; `--mode both`: each N without them, then with them, in one process). The flags are
//! checked here and passed on as written; the harness holds the defaults.
//!
//! `cargo xtask bench jobs [claims] [latency] [memory] [--jobs N] [--latency-jobs N]
//! [--running N,N] [--poll-ms MS]` builds ascp-sim in release and runs
//! `crates/fasp-jobs/benches/jobs.rs`: claims/s on SQLite and PostgreSQL with 1, 4, 16 workers
//! against a bare SQL queue, submit-to-spawn latency against the bare manager, the daemon's
//! memory at N running jobs against the bare manager holding N transfers; every figure with
//! its baseline from the same run and the ratio. The flags set the harness's environment
//! (`FASP_JOBS_BENCH_JOBS`, `_LATENCY`, `_RUNNING`, `_POLL_MS`).

use clap::{Args, Subcommand, ValueEnum};

use crate::util::{cargo, run};

/// `cargo xtask bench [codec | manager [flags]]`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) which: Option<Which>,
}

/// Which benchmark; `codec` when none is named.
#[derive(Subcommand, Debug)]
pub(crate) enum Which {
    /// FASPMGR decoding against httparse (criterion), then the summary table
    #[command(alias = "decode")]
    Codec,
    /// The manager under load: N transfers over ascp-sim, probes of the control latency
    #[command(alias = "load")]
    Manager(ManagerArgs),
    /// fasp-jobs: claims/s, submit-to-spawn latency, memory at N running jobs, each against
    /// a baseline of the same run
    Jobs(JobsArgs),
}

/// The jobs benchmark's flags.
#[derive(Args, Debug)]
pub(crate) struct JobsArgs {
    /// Which parts to run [default: all]
    #[arg(value_enum)]
    parts: Vec<JobsPart>,
    /// Queued jobs drained per claims run [default: 10000]
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Jobs submitted one after the other for the latency [default: 200]
    #[arg(long = "latency-jobs", value_name = "N")]
    latency_jobs: Option<usize>,
    /// Numbers of running jobs for the memory figure [default: 200,1000]
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', num_args = 1)]
    running: Vec<usize>,
    /// The worker's poll interval in the latency run, ms [default: 50]
    #[arg(long = "poll-ms", value_name = "MS")]
    poll_ms: Option<u64>,
}

/// A part of the jobs benchmark.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum JobsPart {
    /// claims/s on SQLite and PostgreSQL, 1, 4, 16 workers
    Claims,
    /// submit to spawn, p50 and p99
    Latency,
    /// RSS at N running jobs
    Memory,
}

impl JobsArgs {
    /// The harness's arguments (the parts) and environment (the sizes).
    pub(crate) fn harness(&self) -> (Vec<String>, Vec<(&'static str, String)>) {
        let parts = self
            .parts
            .iter()
            .map(|p| {
                p.to_possible_value()
                    .expect("no variant is skipped")
                    .get_name()
                    .to_string()
            })
            .collect();
        let mut env = Vec::new();
        if let Some(n) = self.jobs {
            env.push(("FASP_JOBS_BENCH_JOBS", n.to_string()));
        }
        if let Some(n) = self.latency_jobs {
            env.push(("FASP_JOBS_BENCH_LATENCY", n.to_string()));
        }
        if !self.running.is_empty() {
            let list: Vec<String> = self.running.iter().map(usize::to_string).collect();
            env.push(("FASP_JOBS_BENCH_RUNNING", list.join(",")));
        }
        if let Some(ms) = self.poll_ms {
            env.push(("FASP_JOBS_BENCH_POLL_MS", ms.to_string()));
        }
        (parts, env)
    }
}

/// The manager load benchmark's flags; each is passed on only when given.
#[derive(Args, Debug)]
pub(crate) struct ManagerArgs {
    /// Numbers of concurrent transfers, one run each [default: 1,64,256,1000]
    #[arg(
        long = "n",
        value_name = "N,N,...",
        value_delimiter = ',',
        num_args = 1
    )]
    n: Vec<usize>,
    /// STATS frames per second per transfer [default: 10]
    #[arg(long, value_name = "HZ")]
    hz: Option<u64>,
    /// Seconds measured per run [default: 5]
    #[arg(long, value_name = "SECS")]
    window: Option<f64>,
    /// Control probes per transfer in the window [default: 3]
    #[arg(long, value_name = "K")]
    probes: Option<u32>,
    /// Probes of all transfers within MS milliseconds of each other (0: spread evenly)
    #[arg(long, value_name = "MS")]
    burst: Option<u64>,
    /// Percentage of transfers whose events are never read [default: 10 in unread mode]
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u32).range(0..=100))]
    unread: Option<u32>,
    /// Transfers whose events are read slowly [default: 1 in unread mode]
    #[arg(long, value_name = "K")]
    slow: Option<usize>,
    /// How long a slow reader sleeps after each event [default: 250]
    #[arg(long = "slow-ms", value_name = "MS")]
    slow_ms: Option<u64>,
    /// Which modes to run for each N [default: normal, or unread when --unread/--slow is given]
    #[arg(long, value_enum)]
    mode: Option<Mode>,
}

/// `--mode` of the manager benchmark.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Mode {
    /// every transfer's events are read at once
    Normal,
    /// some transfers are never read, some slowly
    Unread,
    /// normal, then unread, for each N
    Both,
}

impl ManagerArgs {
    /// The harness's command line: the given flags, in a fixed order.
    pub(crate) fn harness_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push(flag.to_string());
                out.push(v);
            }
        };
        let list = (!self.n.is_empty()).then(|| {
            self.n
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
        push("--n", list);
        push("--hz", self.hz.map(|v| v.to_string()));
        push("--window", self.window.map(|v| v.to_string()));
        push("--probes", self.probes.map(|v| v.to_string()));
        push("--burst", self.burst.map(|v| v.to_string()));
        push("--unread", self.unread.map(|v| v.to_string()));
        push("--slow", self.slow.map(|v| v.to_string()));
        push("--slow-ms", self.slow_ms.map(|v| v.to_string()));
        push(
            "--mode",
            self.mode.map(|m| {
                m.to_possible_value()
                    .expect("no variant is skipped")
                    .get_name()
                    .to_string()
            }),
        );
        out
    }
}

pub(crate) fn run_bench(args: BenchArgs) -> Result<(), String> {
    match args.which.unwrap_or(Which::Codec) {
        Which::Codec => run(cargo().args(["bench", "-p", "fasp-mgmt-proto", "--bench", "decode"])),
        Which::Manager(m) => run_manager(&m),
        Which::Jobs(j) => run_jobs(&j),
    }
}

/// The jobs benchmark: ascp-sim in release first, then the harness.
fn run_jobs(args: &JobsArgs) -> Result<(), String> {
    if args.jobs == Some(0) || args.latency_jobs == Some(0) || args.running.contains(&0) {
        return Err("--jobs, --latency-jobs, --running: at least 1".into());
    }
    run(cargo().args(["build", "--release", "-p", "fasp-sim", "--bin", "ascp-sim"]))?;
    let (parts, env) = args.harness();
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "fasp-jobs", "--bench", "jobs", "--"])
        .args(parts);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The manager load benchmark: ascp-sim in release first, then the harness.
fn run_manager(args: &ManagerArgs) -> Result<(), String> {
    if args.window.is_some_and(|w| !(w.is_finite() && w > 0.0)) {
        return Err("--window: a positive number of seconds".into());
    }
    run(cargo().args(["build", "--release", "-p", "fasp-sim", "--bin", "ascp-sim"]))?;
    run(cargo()
        .args(["bench", "-p", "fasp-manager", "--bench", "load", "--"])
        .args(args.harness_args()))
}
