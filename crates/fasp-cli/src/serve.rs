//! `fasp serve`: the job daemon (the gRPC API of `docs/serve.md`, and by default a worker in
//! the same process) over a job store; `fasp worker`: a worker alone, for more machines on
//! one PostgreSQL store.
//!
//! Both run until SIGINT or SIGTERM, then stop taking calls and claims, give their running
//! jobs back to the store (queued again, resumed later with ascp's resume) and exit 0. Exit
//! status 2 for a usage error (a bad address, a token file that cannot be used, a
//! non-loopback address without a token), 1 when the store cannot be opened or the server
//! fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fasp_jobs::{JobStore, Worker, WorkerConfig};
use fasp_manager::{Manager, TransferOptions};
use fasp_serve::{DEFAULT_LISTEN, Daemon, Listen, ServeConfig, ServeError, TlsIdentity, Token};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::node::parse_seconds;
use crate::transfer::runtime;

/// The environment variable naming the job store when `--db` is not given.
pub const DB_ENV: &str = "FASP_JOBS_DB";

/// Where the job store is and how the worker runs ascp (shared by `serve` and `worker`).
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The job store: a SQLite file (PATH or sqlite:PATH, created if missing) or
    /// postgres://USER@HOST/DB. Default: $FASP_JOBS_DB, else
    /// $XDG_STATE_HOME/fasp/jobs.db (~/.local/state/fasp/jobs.db).
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

/// How this process's worker runs jobs.
#[derive(clap::Args)]
pub struct WorkerOptions {
    /// The ascp binary (default: $FASP_ASCP, then PATH, then the usual install folders).
    #[arg(long, value_name = "PATH")]
    ascp: Option<PathBuf>,
    /// Jobs (ascp processes) at once in this worker.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_concurrent: usize,
    /// Jobs at once per remote host in this worker.
    #[arg(long, value_name = "N", default_value_t = 2)]
    per_host: usize,
    /// This worker's name in the store's leases (default: host name, pid and a random
    /// suffix); two live workers must never share one.
    #[arg(long, value_name = "NAME")]
    worker_id: Option<String>,
    /// Seconds a job's lease lasts without a heartbeat: if this worker dies, another takes
    /// its jobs over (and resumes them) this long after its last heartbeat.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, default_value = "30")]
    lease: Duration,
    /// Seconds between heartbeats, when running jobs' progress and file results are saved;
    /// at most a third of --lease.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, default_value = "2")]
    heartbeat: Duration,
    /// Seconds between looks for work when idle. A job submitted through this process (or,
    /// on PostgreSQL, through any) wakes the worker at once; the poll finds the rest.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, default_value = "0.5")]
    poll: Duration,
}

impl WorkerOptions {
    /// The options that cannot go together, said as a usage error.
    fn check(&self) -> Result<(), String> {
        if self.heartbeat * 3 > self.lease {
            return Err(format!(
                "--heartbeat {} is more than a third of --lease {}: a worker that misses one \
                 heartbeat would lose its jobs to another (raise --lease or lower --heartbeat)",
                seconds(self.heartbeat),
                seconds(self.lease)
            ));
        }
        Ok(())
    }
}

/// A duration as the seconds given on the command line.
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// Arguments of `fasp serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Listen on this TCP address (IP:PORT; port 0 picks a free one). Default
    /// 127.0.0.1:50071. Any non-loopback address requires --token-file.
    #[arg(long, value_name = "ADDR", conflicts_with = "socket")]
    listen: Option<String>,
    /// Listen on a Unix socket instead (created with mode 0600).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Require the token in this file (its first line; the file must be mode 0600) of every
    /// call, as `authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve over TLS with this certificate chain (PEM); clients then use https://HOST:PORT.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "socket"
    )]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM; the file must be mode 0600).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Run a worker in this process (the default).
    #[arg(long, overrides_with = "no_worker")]
    worker: bool,
    /// The API only: jobs are run by `fasp worker` processes on the same store.
    #[arg(long, overrides_with = "worker")]
    no_worker: bool,
    #[command(flatten)]
    options: WorkerOptions,
}

/// Arguments of `fasp worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    options: WorkerOptions,
}

/// The default store: $FASP_JOBS_DB, else jobs.db in the user's state folder (created 0700).
fn store_url(args: &StoreArgs) -> Result<String, String> {
    if let Some(db) = &args.db {
        return Ok(db.clone());
    }
    if let Some(db) = std::env::var_os(DB_ENV).filter(|v| !v.is_empty()) {
        return db
            .into_string()
            .map_err(|_| format!("{DB_ENV} is not valid UTF-8"));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .ok_or("no --db, no FASP_JOBS_DB and no HOME: name the job store with --db")?;
    let dir = state.join("fasp");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let path = dir.join("jobs.db");
    path.to_str().map(str::to_owned).ok_or_else(|| {
        format!(
            "{} is not valid UTF-8: name the store with --db",
            path.display()
        )
    })
}

async fn open_store(command: &str, args: &StoreArgs) -> Result<JobStore, ExitCode> {
    let url = store_url(args).map_err(|e| {
        eprintln!("fasp {command}: {e}");
        ExitCode::from(2)
    })?;
    // A plain path: created with mode 0600 (the store holds what users transfer).
    let opened = if url.contains(':') {
        JobStore::open(&url).await
    } else {
        JobStore::open_sqlite(std::path::Path::new(&url)).await
    };
    opened.map_err(|e| {
        eprintln!("fasp {command}: {e}");
        ExitCode::from(1)
    })
}

fn worker(store: &JobStore, options: &WorkerOptions) -> Worker {
    let mut transfer = TransferOptions::default();
    // As for `fasp transfer`: ascp gets a minimal environment, and FASP_ASCP_ENV names more
    // variables to pass on (comma-separated, NAME* for a prefix).
    if let Ok(names) = std::env::var("FASP_ASCP_ENV") {
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            transfer = transfer.with_inherited_env(name);
        }
    }
    let mut config = WorkerConfig::default()
        .max_concurrent(options.max_concurrent)
        .per_host(options.per_host)
        .lease(options.lease, options.heartbeat)
        .poll(options.poll)
        .transfer_options(transfer);
    if let Some(id) = &options.worker_id {
        config = config.id(id.clone());
    }
    let manager = match &options.ascp {
        Some(path) => Manager::with_ascp(path),
        None => Manager::new(),
    };
    Worker::new(store.clone(), manager, config)
}

/// A receiver that turns true at the first SIGINT or SIGTERM.
fn stop_on_signals(command: &'static str) -> Result<watch::Receiver<bool>, ExitCode> {
    let install = |kind| {
        signal(kind).map_err(|e| {
            eprintln!("fasp {command}: cannot handle signals: {e}");
            ExitCode::from(1)
        })
    };
    let mut int = install(SignalKind::interrupt())?;
    let mut term = install(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

pub(crate) fn run_serve(args: ServeArgs) -> ExitCode {
    let runtime = match runtime("serve") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(serve(args));
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}

async fn serve(args: ServeArgs) -> ExitCode {
    let usage = |e: ServeError| {
        eprintln!("fasp serve: {e}");
        ExitCode::from(2)
    };
    let listen = match (&args.socket, &args.listen) {
        (Some(path), _) => Listen::Unix(path.clone()),
        (None, text) => match Listen::parse(text.as_deref().unwrap_or(DEFAULT_LISTEN)) {
            Ok(listen) => listen,
            Err(e) => return usage(e),
        },
    };
    let mut config = ServeConfig::new(listen.clone());
    if let Some(path) = &args.token_file {
        match Token::from_file(path) {
            Ok(token) => config = config.token(token),
            Err(e) => return usage(e),
        }
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match TlsIdentity::from_pem_files(cert, key) {
            Ok(identity) => config = config.tls(identity),
            Err(e) => return usage(e),
        }
    }
    // Before anything is opened or created: no token, no address other machines reach.
    if let (Listen::Tcp(addr), None) = (&listen, &args.token_file) {
        if !addr.ip().is_loopback() {
            return usage(ServeError::TokenRequired { addr: *addr });
        }
    }
    if let Listen::Tcp(addr) = &listen {
        if !addr.ip().is_loopback() && args.tls_cert.is_none() && !crate::quiet() {
            eprintln!(
                "fasp serve: warning: {addr} is served in clear: the token and the jobs' \
                 specs cross the network unencrypted (give --tls-cert and --tls-key)"
            );
        }
    }
    if let Err(e) = args.options.check() {
        eprintln!("fasp serve: {e}");
        return ExitCode::from(2);
    }
    let signals = match stop_on_signals("serve") {
        Ok(rx) => rx,
        Err(code) => return code,
    };
    let store = match open_store("serve", &args.store).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    // The worker first: the API relays its live events (`fasp jobs events`).
    let worker = (!args.no_worker).then(|| worker(&store, &args.options));
    let daemon = match Daemon::bind(store.clone(), config).await {
        Ok(daemon) => match &worker {
            Some(worker) => daemon.with_events(worker.subscribe()),
            None => daemon,
        },
        Err(e @ (ServeError::TokenRequired { .. } | ServeError::TlsOnUnixSocket { .. })) => {
            return usage(e);
        }
        Err(e) => {
            eprintln!("fasp serve: {e}");
            return ExitCode::from(1);
        }
    };
    let address = daemon.url();
    // The one line of standard output: where clients reach this server (`fasp jobs --server`).
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {address}").and_then(|()| out.flush());
    }
    if !crate::quiet() {
        eprintln!("fasp serve: listening on {address}");
    }
    let worker_task = worker.map(|worker| tokio::spawn(worker.run(stopped(signals.clone()))));
    let served = daemon.serve(stopped(signals)).await;
    let mut code = ExitCode::SUCCESS;
    if let Err(e) = served {
        eprintln!("fasp serve: {e}");
        code = ExitCode::from(1);
    }
    if let Some(task) = worker_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("fasp serve: the worker failed: {e}");
                code = ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("fasp serve: the worker panicked: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    store.close().await;
    code
}

pub(crate) fn run_worker(args: WorkerArgs) -> ExitCode {
    let runtime = match runtime("worker") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if let Err(e) = args.options.check() {
        eprintln!("fasp worker: {e}");
        return ExitCode::from(2);
    }
    let code = runtime.block_on(async {
        let signals = match stop_on_signals("worker") {
            Ok(rx) => rx,
            Err(code) => return code,
        };
        let store = match open_store("worker", &args.store).await {
            Ok(store) => store,
            Err(code) => return code,
        };
        let worker = worker(&store, &args.options);
        if !crate::quiet() {
            eprintln!("fasp worker: {} running", worker.id());
        }
        let result = worker.run(stopped(signals)).await;
        store.close().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fasp worker: {e}");
                ExitCode::from(1)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}
