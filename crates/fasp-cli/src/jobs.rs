//! `fasp jobs add|list|show|watch|pause|resume|cancel|rate|add-paths|finish|events
//! [--server URL] [--token-file F] [--json]`: the command-line client of `fasp serve` (its gRPC
//! API, `docs/serve.md`).
//!
//! Human output by default; with `--json`, one JSON object per line on stdout, `"type"`
//! first: `job` (a job's state and progress), `file` (a file's result, `fasp jobs show`),
//! `path` (a path of a persistent job, `fasp jobs show`) and `error` (what failed, with the
//! gRPC code), and for `events` the transfer events as `fasp transfer --json` prints them
//! (`docs/fasp-json.schema.json`) with the job's id and epoch. Exit status: 0 success (for
//! `watch`: the job
//! completed); 1 the server refused or cannot be reached, or the watched job failed or was
//! cancelled; 2 a usage error (a bad spec or option, a request the server calls invalid).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use fasp_serve::pb::{self, JobState};
use fasp_serve::{Client, ClientTls, DEFAULT_LISTEN, Token};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tonic::Code;

use crate::options::parse_rate_kbps;
use crate::terminal::escape;
use crate::transfer::{read_spec, runtime};

/// The environment variable naming the server when `--server` is not given.
pub const SERVER_ENV: &str = "FASP_SERVER";

/// Arguments of `fasp jobs`.
#[derive(clap::Args)]
pub struct Args {
    /// The server: http://HOST:PORT, https://HOST:PORT (TLS) or unix:PATH. Default:
    /// $FASP_SERVER, else http://127.0.0.1:50071.
    #[arg(long, value_name = "URL", global = true)]
    server: Option<String>,
    /// For an https:// server: trust this CA certificate (PEM), for a private CA or a
    /// self-signed server certificate. Default: the public web's roots.
    #[arg(long, value_name = "FILE", global = true)]
    cacert: Option<PathBuf>,
    /// Send the token in this file (its first line; mode 0600) with every call.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// One JSON object per line on stdout, "type" first, instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Submit a transfer spec, or a node setup (--node), as a job; prints its id.
    Add(Box<AddArgs>),
    /// List jobs, newest first.
    List(ListArgs),
    /// One job, with its files' results.
    Show(IdArg),
    /// Follow a job until it ends; exit 0 when it completed.
    Watch(WatchArgs),
    /// Pause a job (a queued one is not started; a running one goes to rate 0).
    Pause(IdArg),
    /// Resume a paused job.
    Resume(IdArg),
    /// Cancel a job.
    Cancel(IdArg),
    /// Change a job's rates or rate policy (a running job's worker applies it at its next
    /// heartbeat).
    Rate(RateArgs),
    /// Add a path to a persistent job (`fasp jobs add --persistent`): its worker adds it to
    /// the running ascp session at its next heartbeat; kept until done.
    AddPaths(AddPathsArgs),
    /// Close a persistent job: no more paths; it completes once every path is done.
    Finish(IdArg),
    /// Follow the live transfer events of the server's own worker (one job's, or all) until
    /// interrupted.
    Events(EventsArgs),
}

#[derive(clap::Args)]
struct AddPathsArgs {
    /// The job's id.
    id: String,
    /// The source (a local file or folder for an upload, a remote one for a download).
    source: String,
    /// The destination, relative to the spec's destination root (or absolute). Default: the
    /// source's file name in the destination root.
    destination: Option<String>,
    /// A key for this request: the same command retried with the same key (after a timeout,
    /// say) adds nothing twice.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// The last path: also close the job (as `fasp jobs finish`).
    #[arg(long)]
    last: bool,
}

#[derive(clap::Args)]
struct EventsArgs {
    /// Only this job's events.
    id: Option<String>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["target_rate", "min_rate", "policy"])))]
struct RateArgs {
    /// The job's id.
    id: String,
    /// New target rate (Mbit/s, or 500k, 100m, 1.5g).
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps)]
    target_rate: Option<u64>,
    /// New minimum rate, same units.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps)]
    min_rate: Option<u64>,
    /// New rate policy: fixed, high, fair or low.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    policy: Option<String>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["spec", "node"])))]
struct AddArgs {
    /// The transfer spec: a JSON file (a bare spec, {"transfer_spec": ...} or a node answer),
    /// or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    spec: Option<PathBuf>,
    #[command(flatten)]
    node: NodeJobArgs,
    /// A tag, for `fasp jobs list --tag` (repeatable).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// An idempotency key: a second add with the same key returns the first job.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Higher runs first (default 0).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    priority: Option<i64>,
    /// Attempts in all, retries of transient failures included (default: the store's, 3).
    #[arg(long, value_name = "N")]
    attempts: Option<u32>,
    /// Target rate: a number of Mbit/s, or with a unit: 500k, 100m, 1.5g (as for
    /// `fasp transfer`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps)]
    target_rate: Option<u64>,
    /// Minimum rate, same units (with --target-rate).
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps, requires = "target_rate")]
    min_rate: Option<u64>,
    /// Rate policy: fixed, high, fair or low.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    policy: Option<String>,
    /// Take the spec's secret KEY (token, remote_password, ...) from the worker's
    /// environment variable VAR when the job starts (repeatable); the spec's own value is
    /// not stored.
    #[arg(long, value_name = "KEY=VAR", conflicts_with = "node")]
    secret_env: Vec<String>,
    /// Store the spec's secrets in the job store as they are (anyone who can read the
    /// store can then read them; prefer --secret-env).
    #[arg(long, conflicts_with = "node")]
    store_secrets: bool,
    /// A persistent job (also when the spec says keepalive): one ascp session that waits for
    /// paths, added with `fasp jobs add-paths` and ended with `fasp jobs finish`; the spec's
    /// paths (it may have none) are the first ones.
    #[arg(long, conflicts_with = "node")]
    persistent: bool,
}

/// A node job: the worker asks the node API for the spec, so a fresh token, each time the job
/// starts. Basic authentication, the password in the worker's environment (never on this
/// command line).
#[derive(clap::Args)]
struct NodeJobArgs {
    /// Instead of --spec: the node API's base URL (https://node.example.com:9092).
    // The doc comment is the --help text, kept verbatim: not a rustdoc link.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, value_name = "URL", requires_all = ["user", "to"])]
    node: Option<String>,
    /// Node API user.
    #[arg(long, value_name = "U", requires = "node")]
    user: Option<String>,
    /// The environment variable of the worker (`fasp serve`, `fasp worker`) that holds the
    /// node user's password. Default FASP_NODE_PASSWORD.
    #[arg(long, value_name = "VAR", requires = "node")]
    password_env: Option<String>,
    /// Upload this local file or folder (repeatable) into the node's folder --to.
    #[arg(
        long,
        value_name = "SOURCE",
        requires = "node",
        conflicts_with = "download"
    )]
    upload: Vec<String>,
    /// Download this file or folder of the node (repeatable) into the local folder --to.
    #[arg(long, value_name = "REMOTE_SOURCE", requires = "node")]
    download: Vec<String>,
    /// The destination folder: on the node (--upload) or here (--download).
    #[arg(long, value_name = "FOLDER", requires = "node")]
    to: Option<String>,
    /// Seconds the worker waits for the node's answer (decimals allowed). Default 30.
    #[arg(long, value_name = "SECS", value_parser = crate::node::parse_seconds, requires = "node")]
    timeout: Option<std::time::Duration>,
    /// DANGER: the worker accepts any TLS certificate of the node. For lab nodes only; prefer
    /// --cacert.
    #[arg(long = "insecure-skip-tls-verify", requires = "node")]
    insecure: bool,
    /// Trust this CA certificate (PEM file, read by the worker) for the node, beside the
    /// usual roots.
    #[arg(long, value_name = "FILE", requires = "node")]
    cacert: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Only jobs in this state: queued, running, paused, completed, failed, cancelled
    /// (repeatable: any of them).
    #[arg(long, value_name = "STATE")]
    state: Vec<String>,
    /// Only jobs with this tag.
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// At most N jobs.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

#[derive(clap::Args)]
struct IdArg {
    /// The job's id.
    id: String,
}

#[derive(clap::Args)]
struct WatchArgs {
    /// The job's id.
    id: String,
    /// How often the server reads the job store, in milliseconds (it keeps this between
    /// 100 and 10000; default 500).
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u32>,
}

/// What failed: the exit status and the message.
struct Failure {
    exit: u8,
    code: &'static str,
    message: String,
}

impl Failure {
    fn usage(message: String) -> Failure {
        Failure {
            exit: 2,
            code: "usage",
            message,
        }
    }

    fn status(s: &tonic::Status) -> Failure {
        let (exit, code) = match s.code() {
            Code::InvalidArgument => (2, "invalid_argument"),
            Code::NotFound => (1, "not_found"),
            Code::FailedPrecondition => (1, "failed_precondition"),
            Code::Unimplemented => (1, "unimplemented"),
            Code::Unauthenticated => (1, "unauthenticated"),
            Code::Unavailable => (1, "unavailable"),
            Code::PermissionDenied => (1, "permission_denied"),
            _ => (1, "internal"),
        };
        Failure {
            exit,
            code,
            message: s.message().to_owned(),
        }
    }
}

/// Lines on stdout: text or JSON.
struct Out {
    json: bool,
}

impl Out {
    fn line(&self, text: &str, value: Value) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{text}")
        }
        .and_then(|()| out.flush());
    }
}

pub(crate) fn run(args: Args) -> ExitCode {
    let runtime = match runtime("jobs") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let out = Out { json: args.json };
    let result = runtime.block_on(dispatch(&args, &out));
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("fasp jobs: {}", escape(&f.message));
            if args.json {
                out.line(
                    "",
                    json!({"type": "error", "code": f.code, "message": f.message}),
                );
            }
            ExitCode::from(f.exit)
        }
    }
}

async fn connect(args: &Args) -> Result<Client, Failure> {
    let token = match &args.token_file {
        Some(path) => Some(Token::from_file(path).map_err(|e| Failure::usage(e.to_string()))?),
        None => None,
    };
    let server = args
        .server
        .clone()
        .or_else(|| std::env::var(SERVER_ENV).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    let tls = match &args.cacert {
        Some(path) => ClientTls::ca_file(path).map_err(|e| Failure::usage(e.to_string()))?,
        None => ClientTls::new(),
    };
    fasp_serve::connect_with_tls(&server, token, &tls)
        .await
        .map_err(|e| {
            // tonic says "transport error" and keeps the cause in the sources: show each
            // once (some repeat their own source in their text).
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
                source = s.source();
            }
            let hint = if message.contains("CaUsedAsEndEntity") {
                "(the server presents a CA certificate as its own: serve a certificate signed \
                 by that CA, or a self-signed one made with basicConstraints=CA:FALSE; \
                 docs/serve.md shows how)"
            } else if message.contains("certificate") {
                "(for a private CA or a self-signed certificate, give it with --cacert)"
            } else {
                "(is `fasp serve` running there?)"
            };
            Failure {
                exit: 1,
                code: "unavailable",
                message: format!("{message} {hint}"),
            }
        })
}

async fn dispatch(args: &Args, out: &Out) -> Result<ExitCode, Failure> {
    // Check what can be checked before reaching the server.
    let submit = match &args.action {
        Action::Add(add) => Some(submit_request(add)?),
        _ => None,
    };
    let states = match &args.action {
        Action::List(list) => list
            .state
            .iter()
            .map(|word| {
                fasp_jobs::JobState::parse(word)
                    .map(|s| fasp_serve::state_to_pb(s) as i32)
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--state {word:?}: give queued, running, paused, completed, \
                             failed or cancelled"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let mut client = connect(args).await?;
    let status = |s: tonic::Status| Failure::status(&s);
    match &args.action {
        Action::Add(_) => {
            let request = submit.ok_or_else(|| Failure::usage("no request".to_owned()))?;
            let answer = client.submit(request).await.map_err(status)?.into_inner();
            let job = answer.job.unwrap_or_default();
            if !answer.created && !args.json {
                eprintln!(
                    "fasp jobs add: the idempotency key names job {}, submitted before",
                    escape(&job.id)
                );
            }
            let mut line = job_json(&job);
            if let Some(obj) = line.as_object_mut() {
                obj.insert("created".to_owned(), Value::Bool(answer.created));
            }
            out.line(&escape(&job.id), line);
        }
        Action::List(list) => {
            let request = pb::ListRequest {
                states,
                tag: list.tag.clone().unwrap_or_default(),
                limit: list.limit.unwrap_or(0),
            };
            let jobs = client
                .list(request)
                .await
                .map_err(status)?
                .into_inner()
                .jobs;
            if !args.json && !jobs.is_empty() {
                out.line(
                    &format!(
                        "{:<32}  {:<9}  {:>15}  {:>7}  TAGS",
                        "ID", "STATE", "BYTES", "FILES"
                    ),
                    Value::Null,
                );
            }
            for job in &jobs {
                let p = job.progress.unwrap_or_default();
                let text = format!(
                    "{:<32}  {:<9}  {:>15}  {:>7}  {}",
                    escape(&job.id),
                    state_word(job.state),
                    p.bytes_done,
                    p.files_done,
                    escape(&job.tags.join(","))
                );
                out.line(&text, job_json(job));
            }
        }
        Action::Show(IdArg { id }) => {
            let answer = client
                .get(pb::GetRequest { id: id.clone() })
                .await
                .map_err(status)?
                .into_inner();
            let job = answer.job.unwrap_or_default();
            out.line(&describe(&job), job_json(&job));
            for f in &answer.files {
                let text = format!(
                    "  {:<7}  {:>15}  {}{}",
                    outcome_word(f.outcome),
                    f.bytes,
                    escape(&f.path),
                    f.description
                        .as_deref()
                        .map(|d| format!("  ({})", escape(d)))
                        .unwrap_or_default()
                );
                out.line(
                    &text,
                    json!({"type": "file", "job": job.id, "path": f.path,
                           "outcome": outcome_word(f.outcome), "bytes": f.bytes,
                           "size": f.size, "code": f.code, "description": f.description}),
                );
            }
            for p in &answer.paths {
                let outcome = match pb::FileOutcome::try_from(p.outcome) {
                    Ok(pb::FileOutcome::Unspecified) => "pending",
                    _ => outcome_word(p.outcome),
                };
                let text = format!(
                    "  path {:>4}  {:<7}  {} -> {}",
                    p.seq,
                    outcome,
                    escape(&p.source),
                    escape(&p.destination)
                );
                out.line(
                    &text,
                    json!({"type": "path", "job": job.id, "seq": p.seq, "source": p.source,
                           "destination": p.destination, "outcome": outcome}),
                );
            }
        }
        Action::Watch(w) => {
            let mut stream = client
                .watch(pb::WatchRequest {
                    id: w.id.clone(),
                    interval_ms: w.interval_ms.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            let mut last = None;
            while let Some(event) = stream.next().await {
                let job = event.map_err(status)?.job.unwrap_or_default();
                out.line(&progress_line(&job), job_json(&job));
                last = Some(job.state);
            }
            return Ok(match last.and_then(|s| JobState::try_from(s).ok()) {
                Some(JobState::Completed) => ExitCode::SUCCESS,
                Some(JobState::Failed | JobState::Cancelled) => ExitCode::from(1),
                _ => {
                    return Err(Failure {
                        exit: 1,
                        code: "unavailable",
                        message: format!("the watch of job {} ended before the job", w.id),
                    });
                }
            });
        }
        Action::Pause(IdArg { id }) | Action::Resume(IdArg { id }) => {
            let pause = matches!(args.action, Action::Pause(_));
            let job = client
                .modify(pb::ModifyRequest {
                    id: id.clone(),
                    pause,
                    resume: !pause,
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            out.line(&state_line(&job), job_json(&job));
        }
        Action::Rate(r) => {
            let job = client
                .modify(pb::ModifyRequest {
                    id: r.id.clone(),
                    target_rate_kbps: r.target_rate,
                    min_rate_kbps: r.min_rate,
                    policy: r.policy.clone(),
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            out.line(&describe(&job), job_json(&job));
        }
        Action::Events(e) => {
            let mut stream = client
                .events(pb::EventsRequest {
                    job_id: e.id.clone().unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            // The server has answered: every event from here on comes (scripts wait for it).
            if !crate::quiet() {
                eprintln!(
                    "fasp jobs events: following the events of {}",
                    e.id.as_deref().map_or("every job".into(), escape)
                );
            }
            while let Some(event) = stream.next().await {
                let event = event.map_err(status)?;
                if let Some((text, line)) = event_line(&event) {
                    out.line(&text, line);
                }
            }
        }
        Action::AddPaths(a) => {
            let job = client
                .add_paths(pb::AddPathsRequest {
                    id: a.id.clone(),
                    paths: vec![pb::PathPair {
                        source: a.source.clone(),
                        destination: a.destination.clone().unwrap_or_default(),
                    }],
                    request_key: a.key.clone().unwrap_or_default(),
                    last: a.last,
                })
                .await
                .map_err(status)?
                .into_inner();
            let text = format!(
                "{} {} {} paths{}",
                escape(&job.id),
                state_word(job.state),
                job.paths_added,
                if job.closing { ", closing" } else { "" }
            );
            out.line(&text, job_json(&job));
        }
        Action::Finish(IdArg { id }) => {
            let job = client
                .finish(pb::FinishRequest { id: id.clone() })
                .await
                .map_err(status)?
                .into_inner();
            out.line(&state_line(&job), job_json(&job));
        }
        Action::Cancel(IdArg { id }) => {
            let job = client
                .cancel(pb::CancelRequest { id: id.clone() })
                .await
                .map_err(status)?
                .into_inner();
            out.line(&state_line(&job), job_json(&job));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A path as the worker (another process, maybe elsewhere in the tree) must see it: absolute.
fn absolute(path: &str, what: &str) -> Result<String, Failure> {
    let full =
        std::path::absolute(path).map_err(|e| Failure::usage(format!("{what} {path:?}: {e}")))?;
    full.into_os_string()
        .into_string()
        .map_err(|p| Failure::usage(format!("{what} {p:?} is not UTF-8")))
}

/// The node job of `--node`: its URL checked as `fasp node` checks it, local paths made
/// absolute.
fn node_job(n: &NodeJobArgs, url: &str) -> Result<pb::NodeJob, Failure> {
    // The same checks as `fasp node` (scheme, host): a URL the worker could not use is a
    // usage error now rather than a failed job later.
    let client = fasp_token::NodeClient::builder(url.to_owned())
        .build()
        .map_err(|e| Failure::usage(format!("--node: {e}")))?;
    if client.sends_credentials_in_clear() && !crate::quiet() {
        eprintln!(
            "fasp jobs add: warning: {} is plain HTTP: the worker will send the credentials unencrypted",
            escape(url)
        );
    }
    if n.insecure && !crate::quiet() {
        eprintln!(
            "fasp jobs add: warning: --insecure-skip-tls-verify: the worker will not check the \
             node's certificate; the credentials and the token can be read by anyone on the path"
        );
    }
    let upload = !n.upload.is_empty();
    if !upload && n.download.is_empty() {
        return Err(Failure::usage(
            "--node needs what to move: --upload SOURCE... or --download REMOTE_SOURCE..."
                .to_owned(),
        ));
    }
    let to = n.to.clone().unwrap_or_default();
    let (sources, destination) = if upload {
        let sources = n
            .upload
            .iter()
            .map(|s| absolute(s, "--upload"))
            .collect::<Result<Vec<_>, _>>()?;
        (sources, to)
    } else {
        (n.download.clone(), absolute(&to, "--to")?)
    };
    let cacert = n
        .cacert
        .iter()
        .map(|f| absolute(&f.to_string_lossy(), "--cacert"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::NodeJob {
        url: url.to_owned(),
        user: n.user.clone().unwrap_or_default(),
        password_env: n
            .password_env
            .clone()
            .unwrap_or_else(|| crate::node::PASSWORD_ENV.to_owned()),
        upload,
        sources,
        destination,
        insecure: n.insecure,
        cacert,
        timeout_ms: n.timeout.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        }),
    })
}

fn submit_request(add: &AddArgs) -> Result<pb::SubmitRequest, Failure> {
    let payload = match (&add.spec, &add.node.node) {
        (_, Some(url)) => pb::submit_request::Payload::Node(node_job(&add.node, url)?),
        (Some(path), None) => {
            let spec = read_spec(path).map_err(Failure::usage)?;
            pb::submit_request::Payload::SpecJson(spec.to_json_value().to_string())
        }
        (None, None) => return Err(Failure::usage("give --spec FILE or --node URL".to_owned())),
    };
    let mut secret_env = std::collections::HashMap::new();
    for pair in &add.secret_env {
        let (key, var) = pair
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--secret-env {pair:?}: give KEY=VAR (token=MY_TOKEN)"
                ))
            })?;
        secret_env.insert(key.to_owned(), var.to_owned());
    }
    Ok(pb::SubmitRequest {
        payload: Some(payload),
        secret_env,
        store_secrets: add.store_secrets,
        tags: add.tag.clone(),
        idempotency_key: add.key.clone().unwrap_or_default(),
        priority: add.priority.unwrap_or(0),
        max_attempts: add.attempts.unwrap_or(0),
        target_rate_kbps: add.target_rate,
        min_rate_kbps: add.min_rate,
        host: String::new(),
        rate_policy: add.policy.clone(),
        persistent: add.persistent,
    })
}

/// An event as a line: the line `fasp transfer --json` prints for it (`type` first, the
/// event's fields, `session_id`, `attempt`, `part`; `docs/fasp-json.schema.json`), then `job`,
/// `epoch` and `skipped_events` (when not 0). The server sends fasp-manager's serde form, mapped back
/// here field by field; `finished` (the transfer ended: `state`, `code`) is a line of this
/// command only. `None` for a type this client does not know (a newer server).
fn event_line(event: &pb::TransferEvent) -> Option<(String, Value)> {
    let fields: Map<String, Value> = serde_json::from_str(&event.json).ok()?;
    let mut line = event_fields(&event.kind, &fields)?;
    line.insert("job".to_owned(), Value::String(event.job_id.clone()));
    line.insert("epoch".to_owned(), Value::from(event.epoch));
    if event.skipped > 0 {
        line.insert("skipped_events".to_owned(), Value::from(event.skipped));
    }
    let mut rest = line.clone();
    for key in ["type", "job", "epoch"] {
        rest.remove(key);
    }
    let text = format!(
        "{} {} {}",
        escape(&event.job_id),
        escape(&event.kind),
        escape(&Value::Object(rest).to_string())
    );
    Some((text, Value::Object(line)))
}

/// The fields of one `fasp transfer --json` event line (`type` first, then the event's
/// fields, `session_id`, `attempt`, `part`) from fasp-manager's serde form of the event.
fn event_fields(kind: &str, m: &Map<String, Value>) -> Option<Map<String, Value>> {
    const FILE: &[&str] = &[
        "file",
        "size",
        "written",
        "start_byte",
        "session_bytes",
        "arg_index",
    ];
    let mut out = Map::new();
    let copy = |out: &mut Map<String, Value>, from: &Map<String, Value>, keys: &[&str]| {
        for key in keys {
            out.insert(
                (*key).to_owned(),
                from.get(*key).cloned().unwrap_or(Value::Null),
            );
        }
    };
    let empty = Map::new();
    let object = |key: &str| m.get(key).and_then(Value::as_object).unwrap_or(&empty);
    let ty = match kind {
        "unknown" => "unknown_frame",
        other => other,
    };
    out.insert("type".to_owned(), Value::String(ty.to_owned()));
    match kind {
        "queued" | "connected" | "paused" | "resumed" => {}
        "spawned" => copy(&mut out, m, &["pid"]),
        "foreign_connection_rejected" => copy(&mut out, m, &["peer"]),
        "session_init" => copy(&mut out, m, &["direction", "operation"]),
        "session_started" => {
            copy(
                &mut out,
                m,
                &["direction", "host", "user", "tcp_port", "udp_port"],
            );
            copy(
                &mut out,
                object("rates"),
                &["target_kbps", "min_kbps", "policy"],
            );
            copy(
                &mut out,
                m,
                &[
                    "cipher",
                    "sources",
                    "destination",
                    "keepalive",
                    "fallback_protocol",
                ],
            );
        }
        "rate_changed" => copy(&mut out, m, &["target_kbps", "min_kbps", "policy"]),
        "job_size" => copy(&mut out, m, &["files", "bytes"]),
        "file_started" | "file_skipped" => copy(&mut out, m, FILE),
        "file_progress" => {
            copy(&mut out, m, FILE);
            if let Some(n) = m.get("coalesced").filter(|n| n.as_u64().unwrap_or(0) > 0) {
                out.insert("coalesced".to_owned(), n.clone());
            }
        }
        "file_done" => {
            copy(&mut out, m, FILE);
            if let Some([Value::String(algorithm), sum]) = m
                .get("checksum")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                // As `fasp transfer` says it: `sha256`, the word of specs and `--checksum`.
                let lower = algorithm.to_ascii_lowercase();
                let word = serde_json::from_value::<fasp_spec::FileChecksum>(json!(lower))
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or(lower);
                out.insert("checksum_type".to_owned(), Value::String(word));
                out.insert("checksum".to_owned(), sum.clone());
            }
        }
        "file_failed" => {
            copy(&mut out, object("file"), FILE);
            copy(&mut out, m, &["code", "description"]);
        }
        "arg_done" => copy(
            &mut out,
            m,
            &["source", "attempted", "passed", "skipped", "failed"],
        ),
        "session_done" => copy(
            &mut out,
            m,
            &[
                "file_bytes",
                "transfer_bytes",
                "elapsed_ms",
                "transfers_passed",
                "transfers_failed",
                "transfers_skipped",
            ],
        ),
        "session_failed" => copy(&mut out, m, &["code", "description", "retryable"]),
        "query" => copy(&mut out, m, &["query", "allowed"]),
        "unknown" => copy(&mut out, m, &["frame_type"]),
        "invalid_frame" => copy(&mut out, m, &["error"]),
        "malformed" => copy(&mut out, m, &["offset", "error"]),
        "retrying" => copy(&mut out, m, &["next_attempt", "after_ms", "reason"]),
        "control_sent" => copy(&mut out, m, &["control"]),
        "exited" => copy(&mut out, object("status"), &["code", "signal"]),
        "lagged" => copy(&mut out, m, &["missed"]),
        "finished" => copy(&mut out, m, &["state", "code"]),
        _ => return None,
    }
    if let Some(sid) = m.get("session_id").filter(|v| !v.is_null()) {
        out.insert("session_id".to_owned(), sid.clone());
    }
    out.insert(
        "attempt".to_owned(),
        m.get("attempt").cloned().unwrap_or(Value::from(0)),
    );
    if let Some(part) = m.get("part").filter(|p| p.as_u64().unwrap_or(0) > 0) {
        out.insert("part".to_owned(), part.clone());
    }
    Some(out)
}

fn parse_policy(text: &str) -> Result<String, String> {
    fasp_spec::RatePolicy::parse(&text.to_ascii_lowercase())
        .map(|p| p.as_str().to_owned())
        .ok_or_else(|| format!("{text:?}: give fixed, high, fair or low"))
}

fn state_word(state: i32) -> &'static str {
    fasp_serve::state_from_pb(state).map_or("unknown", |s| s.as_str())
}

fn outcome_word(outcome: i32) -> &'static str {
    match pb::FileOutcome::try_from(outcome) {
        Ok(pb::FileOutcome::Done) => "done",
        Ok(pb::FileOutcome::Skipped) => "skipped",
        Ok(pb::FileOutcome::Failed) => "failed",
        _ => "unknown",
    }
}

/// A job as a JSON line: `type` first, then its fields, progress flattened.
fn job_json(job: &pb::Job) -> Value {
    let p = job.progress.unwrap_or_default();
    json!({
        "type": "job",
        "id": job.id,
        "state": state_word(job.state),
        "kind": job.kind,
        "host": job.host,
        "priority": job.priority,
        "tags": job.tags,
        "idempotency_key": job.idempotency_key,
        "bytes_done": p.bytes_done,
        "bytes_expected": p.bytes_expected,
        "files_done": p.files_done,
        "files_skipped": p.files_skipped,
        "files_failed": p.files_failed,
        "claims": job.claims,
        "failures": job.failures,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "target_rate_kbps": job.target_rate_kbps,
        "min_rate_kbps": job.min_rate_kbps,
        "rate_policy": job.rate_policy,
        "last_error": job.last_error,
        "lease_owner": job.lease_owner,
        "created_ms": job.created_ms,
        "updated_ms": job.updated_ms,
        "started_ms": job.started_ms,
        "finished_ms": job.finished_ms,
        "persistent": job.persistent,
        "closing": job.closing,
        "paths_added": job.paths_added,
    })
}

fn state_line(job: &pb::Job) -> String {
    format!("{} {}", escape(&job.id), state_word(job.state))
}

fn progress_line(job: &pb::Job) -> String {
    let p = job.progress.unwrap_or_default();
    let expected = p
        .bytes_expected
        .map(|e| format!("/{e}"))
        .unwrap_or_default();
    let mut line = format!(
        "{} {} {}{expected} bytes, {} files",
        escape(&job.id),
        state_word(job.state),
        p.bytes_done,
        p.files_done
    );
    if let Some(error) = &job.last_error {
        line.push_str(&format!(" ({})", escape(error)));
    }
    line
}

fn describe(job: &pb::Job) -> String {
    let p = job.progress.unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut lines = vec![
        format!("id:        {}", escape(&job.id)),
        format!("state:     {}", state_word(job.state)),
        format!("kind:      {}", escape(&job.kind)),
        format!("host:      {}", escape(&job.host)),
        format!("tags:      {}", escape(&job.tags.join(","))),
        format!("priority:  {}", job.priority),
        format!(
            "attempts:  {} claimed, {} failed, {} allowed",
            job.claims, job.failures, job.max_attempts
        ),
        format!(
            "rates:     target {} Kbps, min {} Kbps, policy {}",
            opt(job.target_rate_kbps),
            opt(job.min_rate_kbps),
            job.rate_policy.as_deref().unwrap_or("-")
        ),
        format!(
            "progress:  {}/{} bytes, {} files done, {} skipped, {} failed",
            p.bytes_done,
            opt(p.bytes_expected),
            p.files_done,
            p.files_skipped,
            p.files_failed
        ),
    ];
    if job.persistent {
        lines.push(format!(
            "paths:     {} added{}",
            job.paths_added,
            if job.closing { ", closing" } else { "" }
        ));
    }
    if let Some(error) = &job.last_error {
        lines.push(format!("error:     {}", escape(error)));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::Arc;
    use std::time::Duration;

    use fasp_manager::{
        Event, EventKind, FileInfo, Rates, SessionInfo, SessionTotals, TransferState,
    };
    use fasp_mgmt_proto::{
        Control, DecodeError, DecodeErrorKind, FieldError, FieldErrorKind, RateChange,
    };
    use fasp_spec::{Direction, RatePolicy};
    use serde_json::{Value, json};

    use super::{event_fields, event_line, pb};

    fn file(name: &str) -> FileInfo {
        let mut f = FileInfo::default();
        f.file = name.to_owned();
        f.size = Some(9_000);
        f.written = 4_000;
        f.start_byte = Some(1_000);
        f.session_bytes = Some(3_000);
        f.arg_index = Some(1);
        f
    }

    fn at(kind: EventKind, part: u32) -> Event {
        let mut e = Event::new(kind);
        e.session_id = Some(Arc::from("sid-7"));
        e.attempt = 2;
        e.part = part;
        e
    }

    fn events() -> Vec<Event> {
        let mut rates = Rates::default();
        rates.target_kbps = Some(50_000);
        rates.min_kbps = Some(10);
        rates.policy = Some(RatePolicy::Fair);
        let mut session = SessionInfo::default();
        session.direction = Some(Direction::Send);
        session.host = Some("h".into());
        session.user = Some("u".into());
        session.udp_port = Some(33001);
        session.rates = rates.clone();
        session.cipher = Some("aes-128".into());
        session.sources = vec!["/a".into()];
        session.keepalive = Some(true);
        session.rate_lock = Some(true);
        let mut totals = SessionTotals::default();
        totals.transfer_bytes = Some(77);
        totals.elapsed = Some(Duration::from_millis(1234));
        let mut done = file("/a");
        done.checksum = Some(("SHA-256".into(), "00ff".into()));
        let mut progress = at(EventKind::FileProgress(file("/a")), 0);
        progress.coalesced = 5;
        vec![
            Event::new(EventKind::Queued),
            at(EventKind::Spawned { pid: 17 }, 0),
            at(EventKind::Connected, 3),
            Event::new(EventKind::ForeignConnectionRejected {
                peer: SocketAddr::from(([127, 0, 0, 1], 4000)),
            }),
            at(
                EventKind::SessionInit {
                    direction: Some(Direction::Receive),
                    operation: None,
                },
                0,
            ),
            at(EventKind::SessionStarted(Box::new(session)), 0),
            at(EventKind::RateChanged(rates), 0),
            at(EventKind::Paused, 0),
            at(EventKind::Resumed, 0),
            at(
                EventKind::JobSize {
                    files: None,
                    bytes: Some(5),
                },
                0,
            ),
            at(EventKind::FileStarted(file("/a")), 0),
            progress,
            at(EventKind::FileProgress(file("/b")), 1),
            at(EventKind::FileDone(done), 0),
            at(EventKind::FileDone(file("/c")), 0),
            at(EventKind::FileSkipped(file("/d")), 0),
            at(
                EventKind::FileFailed {
                    file: file("/e"),
                    code: None,
                    description: "gone".into(),
                },
                0,
            ),
            at(
                EventKind::ArgDone {
                    source: "/dir".into(),
                    attempted: 4,
                    passed: 3,
                    skipped: 1,
                    failed: 1,
                },
                0,
            ),
            at(EventKind::SessionDone(totals), 0),
            at(
                EventKind::SessionFailed {
                    code: 13,
                    description: "timeout".into(),
                    retryable: true,
                },
                0,
            ),
            at(
                EventKind::Query {
                    query: "q".into(),
                    allowed: true,
                },
                0,
            ),
            at(EventKind::Unknown, 0),
            at(
                EventKind::InvalidFrame(FieldError {
                    message: "STATS".into(),
                    key: "Bytes".into(),
                    kind: FieldErrorKind::Missing,
                }),
                0,
            ),
            Event::new(EventKind::Malformed(DecodeError {
                offset: 99,
                kind: DecodeErrorKind::MissingHeader,
            })),
            Event::new(EventKind::Retrying {
                next_attempt: 3,
                after: Duration::from_millis(800),
                reason: "code 13".into(),
            }),
            at(
                EventKind::ControlSent(Control::Rate(RateChange::rates(5, 1))),
                0,
            ),
            at(EventKind::ControlSent(Control::Cancel), 0),
            Event::new(EventKind::Exited {
                status: ExitStatus::from_raw(2 << 8),
            }),
            Event::new(EventKind::Exited {
                status: ExitStatus::from_raw(9),
            }),
            Event::new(EventKind::Lagged { missed: 4 }),
        ]
    }

    /// What the server sends: the manager's serde form (with `frame_type` for `unknown`).
    fn wire(e: &Event) -> pb::TransferEvent {
        let mut value = serde_json::to_value(e).unwrap();
        if matches!(e.kind, EventKind::Unknown) {
            value["frame_type"] = Value::Null;
        }
        pb::TransferEvent {
            job_id: "j1".into(),
            epoch: 3,
            kind: value["type"].as_str().unwrap().to_owned(),
            json: value.to_string(),
            skipped: 0,
        }
    }

    #[test]
    fn events_read_back_from_the_server_are_the_lines_of_fasp_transfer() {
        for e in events() {
            let expected = crate::transfer::event_json(&e).expect("a line");
            let w = wire(&e);
            let got = event_fields(&w.kind, &serde_json::from_str(&w.json).unwrap())
                .expect("a known type");
            assert_eq!(Value::Object(got), expected, "{:?}", e.kind);
            // The same, key order included, then the job's fields.
            let (_, line) = event_line(&w).unwrap();
            let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
            let want: Vec<&String> = expected.as_object().unwrap().keys().collect();
            assert_eq!(keys[..want.len()], want[..], "{:?}", e.kind);
            assert_eq!(keys[want.len()..], ["job", "epoch"]);
        }
    }

    #[test]
    fn finished_and_skipped_are_kept_and_unknown_types_left_out() {
        let mut finished = wire(&at(
            EventKind::Finished {
                state: TransferState::Failed,
                code: Some(19),
            },
            0,
        ));
        finished.skipped = 6;
        let (text, line) = event_line(&finished).unwrap();
        assert_eq!(
            line,
            json!({"type": "finished", "state": "failed", "code": 19, "session_id": "sid-7",
                   "attempt": 2, "job": "j1", "epoch": 3, "skipped_events": 6})
        );
        assert!(text.starts_with("j1 finished "), "{text}");
        let newer = pb::TransferEvent {
            kind: "teleported".into(),
            json: r#"{"type":"teleported","attempt":1}"#.into(),
            ..finished.clone()
        };
        assert!(event_line(&newer).is_none());
        let broken = pb::TransferEvent {
            json: "not json".into(),
            ..finished
        };
        assert!(event_line(&broken).is_none());
    }
}
