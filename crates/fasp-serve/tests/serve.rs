//! The gRPC service end to end: a server on a loopback port (and on a Unix socket) over a
//! SQLite store, a tonic client, an in-process worker running ascp-sim; the token check;
//! server reflection.
//!
//! `cargo test --workspace` builds ascp-sim first; run alone, the tests that transfer skip
//! with a notice when it is missing (with `CI=true` they fail).

use std::path::Path;
use std::time::{Duration, Instant};

use fasp_jobs::{JobStore, Worker, WorkerConfig};
use fasp_manager::{Manager, TransferOptions};
use fasp_serve::pb::{self, JobState};
use fasp_serve::{Client, Daemon, Listen, ServeConfig, ServeError, Token};
use fasp_testkit::require_sim;
use fasp_testkit::sim::Work;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::Code;

const WITHIN: Duration = Duration::from_secs(60);

/// A running server (and maybe a worker), stopped when `stop` is called.
struct Running {
    target: String,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    async fn start(store: &JobStore, config: ServeConfig) -> Running {
        Running::serve(Daemon::bind(store.clone(), config).await.expect("bind"))
    }

    fn serve(daemon: Daemon) -> Running {
        let target = daemon.url();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .serve(async move {
                    let _ = rx.await;
                })
                .await
                .expect("the server ends well");
        });
        Running {
            target,
            stop: vec![tx],
            tasks: vec![task],
        }
    }

    /// A server with a worker in the same task set, its events fed to the Events method.
    async fn start_with_worker(
        store: &JobStore,
        config: ServeConfig,
        sim: &Path,
        work: &Work,
    ) -> Running {
        let options = TransferOptions::default()
            .with_env("ASCP_SIM_ROOT", work.root())
            .with_env("ASCP_SIM_STATS_INTERVAL_MS", "50");
        let worker_config = WorkerConfig::default()
            .id("serve-test")
            .lease(Duration::from_secs(5), Duration::from_millis(100))
            .poll(Duration::from_millis(20))
            .stagger(Duration::ZERO)
            .transfer_options(options);
        let worker = Worker::new(
            store.clone(),
            Manager::builder().ascp(sim).build(),
            worker_config,
        );
        let events = worker.subscribe();
        let daemon = Daemon::bind(store.clone(), config)
            .await
            .expect("bind")
            .with_events(events);
        let mut running = Running::serve(daemon);
        let (tx, rx) = oneshot::channel::<()>();
        running.tasks.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .expect("the worker ends well");
        }));
        running.stop.push(tx);
        running
    }

    async fn client(&self, token: Option<Token>) -> Client {
        fasp_serve::connect(&self.target, token)
            .await
            .expect("connect")
    }

    async fn stop(self) {
        for tx in self.stop {
            let _ = tx.send(());
        }
        for task in self.tasks {
            tokio::time::timeout(WITHIN, task)
                .await
                .expect("stops in time")
                .expect("no panic");
        }
    }
}

async fn store(work: &Work) -> JobStore {
    JobStore::open_sqlite(&work.path().join("jobs.db"))
        .await
        .expect("open the store")
}

fn loopback() -> ServeConfig {
    ServeConfig::new(Listen::parse("127.0.0.1:0").unwrap())
}

fn upload_spec(sources: &[&Path], dest: &str, rate_kbps: u64) -> String {
    let paths: Vec<_> = sources
        .iter()
        .map(|s| serde_json::json!({"source": s.to_str().unwrap()}))
        .collect();
    serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": rate_kbps, "paths": paths, "destination_root": dest
    })
    .to_string()
}

fn submit_spec(spec: String) -> pb::SubmitRequest {
    pb::SubmitRequest {
        payload: Some(pb::submit_request::Payload::SpecJson(spec)),
        ..Default::default()
    }
}

fn same_bytes(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Submit a job of one small file (it stays queued on a server without a worker): its id.
async fn submit_small(client: &mut Client, work: &Work) -> String {
    let a = work.local_file("a.bin", 1000);
    let submitted = client
        .submit(submit_spec(upload_spec(&[&a], "/in", 10_000)))
        .await
        .expect("submitted");
    submitted.into_inner().job.expect("the job").id
}

fn state(job: &pb::Job) -> JobState {
    JobState::try_from(job.state).expect("a known state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_is_watched_to_completion_with_byte_exact_files() {
    let sim = require_sim!();
    let work = Work::new();
    let store = store(&work).await;
    let server = Running::start_with_worker(&store, loopback(), &sim, &work).await;
    let mut client = server.client(None).await;
    // The live feed, opened before the job exists.
    let mut events = client
        .events(pb::EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let a = work.local_file("a.bin", 300_000);
    let b = work.local_file("b.bin", 2_000_000);
    let mut request = submit_spec(upload_spec(&[&a, &b], "/inbox", 100_000));
    request.tags = vec!["nightly".to_owned()];
    request.idempotency_key = "run-1".to_owned();
    let submitted = client.submit(request.clone()).await.unwrap().into_inner();
    assert!(submitted.created);
    let id = submitted.job.expect("the job").id;
    // The same idempotency key gives the same job back.
    let again = client.submit(request).await.unwrap().into_inner();
    assert!(!again.created);
    assert_eq!(again.job.unwrap().id, id);

    let mut stream = client
        .watch(pb::WatchRequest {
            id: id.clone(),
            interval_ms: 100,
        })
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + WITHIN;
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout_at(deadline.into(), stream.next())
        .await
        .expect("the watch ends in time")
    {
        let job = event.expect("a watch event").job.expect("the job");
        seen.push(state(&job));
        if state(&job) == JobState::Completed {
            assert_eq!(job.progress.unwrap().bytes_done, 2_300_000);
        }
    }
    assert_eq!(seen.last(), Some(&JobState::Completed), "{seen:?}");
    // Each event is a change: the same state twice in a row only when progress moved.
    assert!(seen.len() >= 2, "{seen:?}");

    let got = client
        .get(pb::GetRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let job = got.job.unwrap();
    assert_eq!(state(&job), JobState::Completed);
    assert_eq!(job.tags, ["nightly"]);
    assert_eq!(got.files.len(), 2, "{:?}", got.files);
    assert!(
        got.files
            .iter()
            .all(|f| f.outcome == pb::FileOutcome::Done as i32),
        "{:?}",
        got.files
    );
    same_bytes(&a, &work.remote("inbox/a.bin"));
    same_bytes(&b, &work.remote("inbox/b.bin"));

    // The live events of the transfer: spawned, both files done, finished, in order.
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "finished") {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("the events in time")
            .expect("the feed goes on")
            .expect("an event");
        assert_eq!(event.job_id, id);
        assert_eq!(event.skipped, 0);
        let json: serde_json::Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(json["type"], event.kind.as_str(), "{json}");
        kinds.push(event.kind);
    }
    let at = |k: &str| kinds.iter().position(|x| x == k);
    assert!(at("spawned") < at("file_done"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "file_done").count(),
        2,
        "{kinds:?}"
    );
    // An unknown job is refused.
    let unknown = client
        .events(pb::EventsRequest {
            job_id: "0123".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // List by state and by tag.
    let completed = client
        .list(pb::ListRequest {
            states: vec![JobState::Completed as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.jobs.len(), 1);
    let other_tag = client
        .list(pb::ListRequest {
            tag: "weekly".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other_tag.jobs.is_empty());
    server.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_are_modified_paused_resumed_and_cancelled() {
    let work = Work::new();
    let store = store(&work).await;
    // No worker: the job stays queued. One stream at a time.
    let server = Running::start(&store, loopback().max_streams(1)).await;
    let mut client = server.client(None).await;
    let id = submit_small(&mut client, &work).await;
    let modify = |r: pb::ModifyRequest| pb::ModifyRequest {
        id: id.clone(),
        ..r
    };
    let job = client
        .modify(modify(pb::ModifyRequest {
            target_rate_kbps: Some(5_000),
            min_rate_kbps: Some(1_000),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (job.target_rate_kbps, job.min_rate_kbps),
        (Some(5_000), Some(1_000))
    );
    // A lower target alone drags the minimum down with it.
    let job = client
        .modify(modify(pb::ModifyRequest {
            target_rate_kbps: Some(500),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (job.target_rate_kbps, job.min_rate_kbps),
        (Some(500), Some(500))
    );
    let bad = client
        .modify(modify(pb::ModifyRequest {
            target_rate_kbps: Some(100),
            min_rate_kbps: Some(200),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let job = client
        .modify(modify(pb::ModifyRequest {
            policy: Some("fair".to_owned()),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.rate_policy.as_deref(), Some("fair"));
    let policy = client
        .modify(modify(pb::ModifyRequest {
            policy: Some("greedy".to_owned()),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(policy.code(), Code::InvalidArgument, "{policy:?}");

    // One Watch open: a second is refused until the first is closed.
    let first = client
        .watch(pb::WatchRequest {
            id: id.clone(),
            interval_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let second = client
        .watch(pb::WatchRequest {
            id: id.clone(),
            interval_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::ResourceExhausted, "{second:?}");
    drop(first);
    let deadline = Instant::now() + WITHIN;
    loop {
        match client
            .watch(pb::WatchRequest {
                id: id.clone(),
                interval_ms: 0,
            })
            .await
        {
            Ok(_) => break,
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place is never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = client
        .modify(modify(pb::ModifyRequest {
            pause: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&paused), JobState::Paused);
    let resumed = client
        .modify(modify(pb::ModifyRequest {
            resume: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&resumed), JobState::Queued);

    let events = client
        .events(pb::EventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(events.code(), Code::FailedPrecondition, "{events:?}");
    let add = client
        .add_paths(pb::AddPathsRequest {
            id: id.clone(),
            paths: vec![pb::PathPair {
                source: "/x".to_owned(),
                destination: String::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    // Not a persistent job: refused, saying what to do.
    assert_eq!(add.code(), Code::FailedPrecondition, "{add:?}");
    assert!(add.message().contains("not persistent"), "{add:?}");
    assert!(add.message().contains("submit another job"), "{add:?}");
    let finish = client
        .finish(pb::FinishRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(finish.code(), Code::FailedPrecondition, "{finish:?}");

    let cancelled = client
        .cancel(pb::CancelRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&cancelled), JobState::Cancelled);
    // Watching an ended job gives it once, then the stream ends.
    let events: Vec<_> = client
        .watch(pb::WatchRequest {
            id: id.clone(),
            interval_ms: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(events.len(), 1);
    let again = client
        .modify(modify(pb::ModifyRequest {
            pause: true,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    // Bad requests: an unknown job, no payload, a bad spec, a secret in the spec.
    let missing = client
        .get(pb::GetRequest {
            id: "0123".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let watch_missing = client
        .watch(pb::WatchRequest {
            id: "0123".to_owned(),
            interval_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(watch_missing.code(), Code::NotFound);
    let empty = client
        .submit(pb::SubmitRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let not_json = client
        .submit(submit_spec("{".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(not_json.code(), Code::InvalidArgument);
    let with_token = serde_json::json!({
        "direction": "send", "remote_host": "h", "remote_user": "u", "token": "ATM3_secret",
        "paths": [{"source": "/a"}], "destination_root": "/in"
    })
    .to_string();
    let secret = client
        .submit(submit_spec(with_token.clone()))
        .await
        .unwrap_err();
    assert_eq!(secret.code(), Code::InvalidArgument);
    assert!(!secret.message().contains("ATM3_secret"), "{secret:?}");
    // Named by an environment variable of the worker instead, it is accepted.
    let mut by_env = submit_spec(with_token);
    by_env
        .secret_env
        .insert("token".to_owned(), "JOB_TOKEN".to_owned());
    assert!(client.submit(by_env).await.is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_addresses_need_a_token_and_every_call_must_send_it() {
    let work = Work::new();
    let store = store(&work).await;
    let open = ServeConfig::new(Listen::parse("0.0.0.0:0").unwrap());
    let err = Daemon::bind(store.clone(), open).await.unwrap_err();
    assert!(matches!(err, ServeError::TokenRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("0.0.0.0"), "{err}");

    let token = Token::new("t0k3n-for-tests").unwrap();
    let config = ServeConfig::new(Listen::parse("0.0.0.0:0").unwrap()).token(token.clone());
    let daemon = Daemon::bind(store.clone(), config).await.unwrap();
    let Listen::Tcp(addr) = daemon.local_addr().clone() else {
        panic!("a TCP address")
    };
    drop(daemon);
    // Served on loopback with the same token: the check is the same on any address.
    let config = ServeConfig::new(Listen::Tcp(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        addr.port(),
    ))))
    .token(token.clone());
    let server = Running::start(&store, config).await;
    let list = pb::ListRequest::default();
    let none = server
        .client(None)
        .await
        .list(list.clone())
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    // Reflection is behind the same check.
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        let channel = tonic::transport::Endpoint::from_shared(server.target.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let refused = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let wrong = server
        .client(Token::new("t0k3n-for-tests2"))
        .await
        .list(list.clone())
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert!(!wrong.message().contains("t0k3n"), "{wrong:?}");
    assert!(server.client(Some(token)).await.list(list).await.is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_service_and_a_unix_socket_serves_it() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let work = Work::new();
    let store = store(&work).await;
    let socket = work.path().join("fasp.sock");
    let server = Running::start(
        &store,
        ServeConfig::new(Listen::parse(&format!("unix:{}", socket.display())).unwrap()),
    )
    .await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut client = server.client(None).await;
    assert!(client.list(pb::ListRequest::default()).await.is_ok());

    let server_tcp = Running::start(&store, loopback()).await;
    let channel = tonic::transport::Endpoint::from_shared(server_tcp.target.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.expect("an answer").unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&fasp_serve::SERVICE_NAME), "{names:?}");
    // What `grpcurl describe` asks: the file that defines the service, decodable.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            fasp_serve::SERVICE_NAME.to_owned(),
        )),
    };
    let answer = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .expect("an answer")
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("not a file: {answer:?}")
    };
    let file = files.file_descriptor_proto.first().expect("a file");
    let file = <prost_types::FileDescriptorProto as prost::Message>::decode(file.as_slice())
        .expect("a file descriptor");
    assert_eq!(file.package(), "fasp.jobs.v1");
    assert!(file.service.iter().any(|s| s.name() == "Jobs"));
    // Older grpcurl versions ask v1alpha.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let channel = tonic::transport::Endpoint::from_shared(server_tcp.target.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let answer = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .next()
            .await
            .expect("an answer")
            .unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("not a service list: {answer:?}")
        };
        assert!(
            list.service
                .iter()
                .any(|s| s.name == fasp_serve::SERVICE_NAME)
        );
    }
    server_tcp.stop().await;
    server.stop().await;
    assert!(!socket.exists(), "the socket is removed at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_added_to_a_persistent_job_are_sent_and_finish_completes_it() {
    let sim = require_sim!();
    let work = Work::new();
    let store = store(&work).await;
    let server = Running::start_with_worker(&store, loopback(), &sim, &work).await;
    let mut client = server.client(None).await;
    let a = work.local_file("a.bin", 250_000);
    let b = work.local_file("b.bin", 350_000);
    // No paths: a persistent job waits for them.
    let spec = serde_json::json!({
        "direction": "send", "remote_host": "127.0.0.1", "remote_user": "xfer",
        "target_rate_kbps": 100_000, "destination_root": "/drop"
    })
    .to_string();
    let submitted = client
        .submit(pb::SubmitRequest {
            persistent: true,
            ..submit_spec(spec)
        })
        .await
        .unwrap()
        .into_inner();
    let job = submitted.job.unwrap();
    assert!(job.persistent && !job.closing, "{job:?}");
    let id = job.id;
    let pair = |p: &Path, d: &str| pb::PathPair {
        source: p.to_str().unwrap().to_owned(),
        destination: d.to_owned(),
    };
    let request = pb::AddPathsRequest {
        id: id.clone(),
        paths: vec![pair(&a, "one/a.bin"), pair(&b, "")],
        request_key: "batch-1".to_owned(),
        last: false,
    };
    let after = client
        .add_paths(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.paths_added, 2);
    // The same request again (the client did not see the answer): nothing added twice.
    let replay = client.add_paths(request).await.unwrap().into_inner();
    assert_eq!(replay.paths_added, 2);
    let empty = client
        .add_paths(pb::AddPathsRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    // Both files done, the job still running: it waits for more until Finish.
    let deadline = Instant::now() + WITHIN;
    loop {
        let got = client
            .get(pb::GetRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let done = got
            .paths
            .iter()
            .filter(|p| p.outcome == pb::FileOutcome::Done as i32)
            .count();
        if done == 2 {
            assert_eq!(state(&got.job.unwrap()), JobState::Running);
            let seqs: Vec<u64> = got.paths.iter().map(|p| p.seq).collect();
            assert_eq!(seqs, [1, 2]);
            break;
        }
        assert!(Instant::now() < deadline, "paths not done: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closing = client
        .finish(pb::FinishRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(closing.closing, "{closing:?}");
    let last: Vec<_> = client
        .watch(pb::WatchRequest {
            id: id.clone(),
            interval_ms: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let ended = last.last().unwrap().as_ref().unwrap().job.clone().unwrap();
    assert_eq!(state(&ended), JobState::Completed, "{ended:?}");
    same_bytes(&a, &work.remote("drop/one/a.bin"));
    same_bytes(&b, &work.remote("drop/b.bin"));
    // Closed: more paths are refused, saying what to do.
    let refused = client
        .add_paths(pb::AddPathsRequest {
            id: id.clone(),
            paths: vec![pair(&a, "again.bin")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("submit another job"),
        "{refused:?}"
    );
    server.stop().await;
    fasp_testkit::assert_no_leftover(&work.needle());
}

/// Stopping the server ends the streams still open (a Watch of a job that never moves, a live
/// Events feed that never speaks), each with `UNAVAILABLE`, and the server returns: an open
/// stream does not hold the shutdown up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_with_unavailable_when_the_server_stops() {
    let work = Work::new();
    let store = store(&work).await;
    // No worker: the job stays queued; the events feed is ours and stays silent.
    let (_feed, events) = tokio::sync::broadcast::channel(16);
    let daemon = Daemon::bind(store.clone(), loopback())
        .await
        .expect("bind")
        .with_events(events);
    let server = Running::serve(daemon);
    let mut client = server.client(None).await;
    let id = submit_small(&mut client, &work).await;
    let mut watch = client
        .watch(pb::WatchRequest {
            id,
            interval_ms: 100,
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.expect("the first state").expect("a job");
    assert_eq!(state(&first.job.expect("the job")), JobState::Queued);
    let mut feed = client
        .events(pb::EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let stopped = tokio::spawn(server.stop());
    let watched = tokio::time::timeout(WITHIN, watch.next())
        .await
        .expect("watch: still open after the stop");
    let fed = tokio::time::timeout(WITHIN, feed.next())
        .await
        .expect("events: still open after the stop");
    for (what, next) in [
        ("watch", watched.map(|r| r.map(|_| ()))),
        ("events", fed.map(|r| r.map(|_| ()))),
    ] {
        let status = next
            .unwrap_or_else(|| panic!("{what}: the stream ended without a status"))
            .expect_err("no event after the stop");
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert!(
            status.message().contains("shutting down"),
            "{what}: {status:?}"
        );
    }
    tokio::time::timeout(WITHIN, stopped)
        .await
        .expect("the server stops in time")
        .expect("no panic");
}

/// Over TLS: a client that trusts the server's certificate calls it (with the token; without,
/// UNAUTHENTICATED as in clear); one that trusts only the public roots, or speaks plain HTTP/2,
/// gets no call through. Refused at start: a key file others can read, a file without what it
/// should hold, a key rustls cannot use, TLS on a Unix socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_proves_the_server_and_refuses_what_cannot_be_trusted() {
    use fasp_serve::{ClientTls, TlsIdentity, connect_with_tls};
    let work = Work::new();
    let store = store(&work).await;
    let cert = fasp_testkit::tls::self_signed(work.path(), "server");
    let identity = TlsIdentity::from_pem_files(&cert.cert, &cert.key).expect("usable files");
    assert!(!format!("{identity:?}").contains("PRIVATE"), "{identity:?}");
    let token = Token::new("s3cret-token").unwrap();
    let server = Running::start(
        &store,
        loopback().token(token.clone()).tls(identity.clone()),
    )
    .await;
    assert!(
        server.target.starts_with("https://127.0.0.1:"),
        "{}",
        server.target
    );

    let trusted = ClientTls::ca_file(&cert.cert).expect("a CA file");
    let mut client = connect_with_tls(&server.target, Some(token.clone()), &trusted)
        .await
        .expect("a TLS connection");
    client
        .list(pb::ListRequest::default())
        .await
        .expect("a call over TLS");
    let mut anonymous = connect_with_tls(&server.target, None, &trusted)
        .await
        .expect("a TLS connection");
    let refused = anonymous
        .list(pb::ListRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The public roots do not know this certificate: no connection.
    let untrusted = fasp_serve::connect(&server.target, Some(token.clone())).await;
    let err = untrusted.expect_err("an unknown issuer is refused");
    let chain = error_chain(&err);
    assert!(chain.contains("certificate"), "{chain}");
    // Plain HTTP/2 to the TLS port: no call goes through.
    let plain = server.target.replace("https://", "http://");
    if let Ok(mut c) = fasp_serve::connect(&plain, Some(token.clone())).await {
        c.list(pb::ListRequest::default())
            .await
            .expect_err("plain HTTP/2 to a TLS port");
    }
    server.stop().await;

    // Refused before anything listens.
    let loose = work.path().join("loose.key");
    std::fs::write(&loose, &cert.key_pem).unwrap();
    let e = TlsIdentity::from_pem_files(&cert.cert, &loose).expect_err("a key others can read");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    let e = TlsIdentity::from_pem_files(&cert.key, &cert.key).expect_err("a key as certificate");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let e = ClientTls::ca_file(&cert.key).expect_err("a key as CA");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let garbage = TlsIdentity::from_pem(
        cert.cert_pem.clone(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let e = Daemon::bind(store.clone(), loopback().tls(garbage))
        .await
        .expect_err("a key rustls cannot read");
    assert!(matches!(e, ServeError::Transport { .. }), "{e}");
    let socket = work.path().join("tls.sock");
    let e = Daemon::bind(
        store.clone(),
        ServeConfig::new(Listen::Unix(socket.clone())).tls(identity),
    )
    .await
    .expect_err("TLS on a Unix socket");
    assert!(matches!(e, ServeError::TlsOnUnixSocket { .. }), "{e}");
    assert!(!socket.exists());
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
