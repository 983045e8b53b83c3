//! `NodeClient` against the node API stand-in: every answer maps to its result or error.

use std::time::{Duration, Instant};

use fasp_node_standin::{
    ACCESS_KEY, Answer, BEARER_TOKEN, CERTIFICATE_PEM, NODE_PASSWORD, NODE_USER, NodeStandin,
    StandinConfig,
};
use fasp_spec::{Direction, RenderOptions, TransferPath};
use fasp_token::{
    ClientConfig, Error, NodeClient, RetryPolicy, TransferRequest, prepare_download, prepare_upload,
};
use serde_json::json;

const UPLOAD: &str = "/files/upload_setup";
const DOWNLOAD: &str = "/files/download_setup";

/// Fast retries, so that retry tests take milliseconds.
fn quick_retries(max: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(max)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
}

fn basic_client(node: &NodeStandin) -> NodeClient {
    NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(quick_retries(3))
        .build()
        .unwrap()
}

async fn standin(change: impl FnOnce(&mut StandinConfig)) -> NodeStandin {
    let mut config = StandinConfig::default();
    change(&mut config);
    NodeStandin::start(config).await.unwrap()
}

#[tokio::test]
async fn upload_setup_with_basic_auth_gives_a_spec_ready_once_sources_are_added() {
    let node = standin(|_| {}).await;
    let client = basic_client(&node);
    let spec = client
        .upload_setup_one(&TransferRequest::upload_to(["/incoming"]))
        .await
        .unwrap();
    assert_eq!(spec.remote_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(spec.remote_user.as_deref(), Some("xfer"));
    assert_eq!(spec.ssh_port, Some(33001));
    assert_eq!(spec.direction, Some(Direction::Send));
    assert_eq!(spec.token.as_ref().unwrap().expose(), "ATB3_standin-1");
    assert_eq!(
        spec.paths,
        vec![TransferPath::destination_only("/incoming")]
    );
    // Destination-only paths: not renderable as such.
    assert!(spec.validate().is_err());

    let ready = prepare_upload(spec, ["/home/me/report.pdf"]).unwrap();
    assert_eq!(ready.destination_root.as_deref(), Some("/incoming"));
    let command = ready.render(&RenderOptions::new()).unwrap();
    let args: Vec<_> = command.args.iter().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(
        &args[args.len() - 3..],
        ["--", "/home/me/report.pdf", "/incoming"]
    );
    assert_eq!(command.env["ASPERA_SCP_TOKEN"].expose(), "ATB3_standin-1");
    assert!(!args.iter().any(|a| a.contains("ATB3_standin")));

    let requests = node.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", UPLOAD)
    );
    assert!(
        request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json().unwrap(),
        json!({"transfer_requests": [{"transfer_request": {"paths": [{"destination": "/incoming"}]}}]})
    );
}

#[tokio::test]
async fn download_setup_with_bearer_auth_and_access_key() {
    let node = standin(|_| {}).await;
    let client = NodeClient::builder(node.base_url())
        .bearer_auth(BEARER_TOKEN, ACCESS_KEY)
        .build()
        .unwrap();
    let spec = client
        .download_setup_one(&TransferRequest::download_from(["/outgoing/a.bin"]))
        .await
        .unwrap();
    assert_eq!(spec.direction, Some(Direction::Receive));
    let ready = prepare_download(spec, "/tmp/here").unwrap();
    assert_eq!(ready.paths, vec![TransferPath::new("/outgoing/a.bin")]);
    assert_eq!(ready.destination_root.as_deref(), Some("/tmp/here"));

    let request = &node.requests()[0];
    assert_eq!(request.path, DOWNLOAD);
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {BEARER_TOKEN}").as_str())
    );
    assert_eq!(request.header("x-aspera-accesskey"), Some(ACCESS_KEY));
}

#[tokio::test]
async fn several_requests_get_one_result_each() {
    let docroot = tempfile::tempdir().unwrap();
    std::fs::create_dir(docroot.path().join("outgoing")).unwrap();
    std::fs::write(docroot.path().join("outgoing/a.bin"), b"a").unwrap();
    let node = standin(|c| c.docroot = Some(docroot.path().to_owned())).await;
    let client = basic_client(&node);
    let results = client
        .download_setup(&[
            TransferRequest::download_from(["/outgoing/a.bin"]),
            TransferRequest::download_from(["/outgoing/missing.bin"]),
            TransferRequest::download_from(["/../etc/passwd"]),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap().paths,
        vec![TransferPath::new("/outgoing/a.bin")]
    );
    match &results[1] {
        Err(Error::Node(e)) => {
            assert_eq!(e.code, Some(404));
            assert_eq!(
                e.user_message.as_deref(),
                Some("Path does not exist: /outgoing/missing.bin")
            );
        }
        other => panic!("{other:?}"),
    }
    match &results[2] {
        Err(Error::Node(e)) => assert_eq!(e.code, Some(403)),
        other => panic!("{other:?}"),
    }
    // One call for the three.
    assert_eq!(node.count(DOWNLOAD), 1);
    assert_eq!(node.issued_tokens().len(), 1);
}

#[tokio::test]
async fn node_errors_inside_http_200_are_errors_never_specs() {
    let node = standin(|c| {
        c.upload_answers = vec![
            Answer::node_error(404, "Not found", "Folder /nope does not exist"),
            Answer::node_error_in_spec(403, "Forbidden", "Upload not allowed here"),
            Answer::whole_node_error(500, "Internal error", "Node database unavailable"),
        ];
    })
    .await;
    let client = basic_client(&node);
    let request = TransferRequest::upload_to(["/nope"]);

    let err = client.upload_setup_one(&request).await.unwrap_err();
    assert!(
        matches!(&err, Error::Node(e) if e.code == Some(404)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "node error 404: Not found: Folder /nope does not exist"
    );

    let err = client.upload_setup_one(&request).await.unwrap_err();
    assert!(
        matches!(&err, Error::Node(e) if e.code == Some(403)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "node error 403: Forbidden: Upload not allowed here"
    );

    // The whole answer is the error: the outer result, not retried (it is an HTTP 200).
    let err = client.upload_setup(&[request]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Node(e) if e.code == Some(500)),
        "{err:?}"
    );
    assert_eq!(node.count(UPLOAD), 3);
}

#[tokio::test]
async fn http_statuses_say_what_the_body_says() {
    // Wrong password: 401 at once, no retry.
    let node = standin(|_| {}).await;
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, "wrong-Pw8Kz")
        .retry(quick_retries(3))
        .build()
        .unwrap();
    let err = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    match &err {
        Error::Http {
            status,
            message,
            node: Some(node_error),
            attempts,
            ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "Invalid credentials");
            assert_eq!(node_error.code, Some(401));
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "{}{UPLOAD}: HTTP 401 Unauthorized: Invalid credentials",
            node.base_url()
        )
    );
    assert!(!err.is_transient());
    assert_eq!(node.count(UPLOAD), 1);

    // No credentials at all.
    let anonymous = NodeClient::builder(node.base_url()).build().unwrap();
    let err = anonymous
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string().ends_with("Authentication required"),
        "{err}"
    );

    // Bearer without the access key header.
    let err = NodeClient::builder(node.base_url())
        .bearer_auth(BEARER_TOKEN, "other-key")
        .build()
        .unwrap()
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    // Scripted 403: not retried either.
    node.reconfigure(|c| c.upload_answers = vec![Answer::Status(403)]);
    node.clear_requests();
    let err = basic_client(&node)
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(node.count(UPLOAD), 1);

    // A redirect is not followed: the credentials stay with the URL they were given for.
    node.reconfigure(|c| {
        c.upload_answers = vec![Answer::Raw {
            status: 302,
            content_type: "text/plain".into(),
            body: "moved".into(),
        }];
    });
    let err = basic_client(&node)
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(302));

    // 404: a base URL with a wrong prefix.
    let err = NodeClient::builder(format!("{}/wrong/prefix", node.base_url()))
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .build()
        .unwrap()
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string()
            .contains("/wrong/prefix/files/upload_setup: HTTP 404 Not Found: No such endpoint"),
        "{err}"
    );

    // 400: the stand-in checks the request's shape (a download path needs a source).
    let err = basic_client(&node)
        .download_setup_one(&TransferRequest::new().with_path(TransferPath::destination_only("/x")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string()
            .ends_with("transfer_requests[0].transfer_request.paths[0].source: missing"),
        "{err}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_within_bounds() {
    // 500 every time: 1 + 2 retries, then the error.
    let node = standin(|c| c.upload_answers = vec![Answer::Status(500)]).await;
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(quick_retries(2))
        .build()
        .unwrap();
    let err = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Http {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(node.count(UPLOAD), 3);

    // Twice 503, then a spec: success, three requests.
    let node = standin(|c| {
        c.upload_answers = vec![Answer::Status(503), Answer::Status(503), Answer::Normal];
    })
    .await;
    let spec = basic_client(&node)
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap();
    assert!(spec.token.is_some());
    assert_eq!(node.count(UPLOAD), 3);

    // 429, then a spec.
    let node = standin(|c| c.download_answers = vec![Answer::Status(429), Answer::Normal]).await;
    basic_client(&node)
        .download_setup_one(&TransferRequest::download_from(["/a"]))
        .await
        .unwrap();
    assert_eq!(node.count(DOWNLOAD), 2);

    // No retries configured: one request.
    let node = standin(|c| c.upload_answers = vec![Answer::Status(503), Answer::Normal]).await;
    let err = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(node.count(UPLOAD), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let node = standin(|c| {
        c.upload_answers = vec![
            Answer::RetryAfter {
                status: 429,
                seconds: 1,
            },
            Answer::Normal,
        ];
    })
    .await;
    let client_with_cap = |cap: Duration| {
        NodeClient::builder(node.base_url())
            .basic_auth(NODE_USER, NODE_PASSWORD)
            .retry(
                RetryPolicy::default()
                    .with_max_retries(1)
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_max_backoff(cap),
            )
            .build()
            .unwrap()
    };
    let request = TransferRequest::upload_to(["/"]);

    // Retry-After: 1 replaces the 10 ms backoff.
    let started = Instant::now();
    client_with_cap(Duration::from_secs(5))
        .upload_setup_one(&request)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(node.count(UPLOAD), 2);

    // ... but never beyond max_backoff.
    node.clear_requests();
    let started = Instant::now();
    client_with_cap(Duration::from_millis(150))
        .upload_setup_one(&request)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(900),
        "{elapsed:?}"
    );
    assert_eq!(node.count(UPLOAD), 2);
}

#[tokio::test]
async fn lost_connections_are_retried() {
    let node =
        standin(|c| c.upload_answers = vec![Answer::Hangup, Answer::Hangup, Answer::Normal]).await;
    basic_client(&node)
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap();
    assert_eq!(node.count(UPLOAD), 3);

    let node = standin(|c| c.upload_answers = vec![Answer::Hangup]).await;
    let err = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(quick_retries(1))
        .build()
        .unwrap()
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ConnectionLost { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(node.count(UPLOAD), 2);
}

#[tokio::test]
async fn an_unreachable_host_is_retried_then_reported() {
    // A port where nothing listens: bind, note the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = NodeClient::builder(format!("http://127.0.0.1:{port}"))
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_initial_backoff(Duration::from_millis(40))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    // Backoffs of 40 ms and 80 ms between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(120));
    match &err {
        Error::Unreachable {
            message, attempts, ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with(&format!(
        "cannot reach http://127.0.0.1:{port}/files/upload_setup: "
    )));
}

#[tokio::test]
async fn a_slow_node_times_out_without_retry() {
    let node = standin(|c| c.upload_answers = vec![Answer::Slow(Duration::from_secs(3))]).await;
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .timeout(Duration::from_millis(300))
        .retry(quick_retries(3))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert!(
        err.to_string().ends_with("within 300 ms (timeout)"),
        "{err}"
    );
    assert_eq!(node.count(UPLOAD), 1);

    // A slow answer within the timeout is fine.
    node.reconfigure(|c| c.upload_answers = vec![Answer::Slow(Duration::from_millis(50))]);
    client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_answers_name_the_bad_element() {
    let node = standin(|_| {}).await;
    let client = basic_client(&node);
    let request = TransferRequest::upload_to(["/"]);
    let check = async |answer: Answer, expected_path: &str, expected_message: &str| {
        node.reconfigure(|c| c.upload_answers = vec![answer]);
        node.clear_requests();
        let err = client.upload_setup(std::slice::from_ref(&request)).await;
        let err = match err {
            Err(e) => e,
            Ok(results) => results.into_iter().next().unwrap().unwrap_err(),
        };
        match &err {
            Error::MalformedJson { path, message, .. } => {
                assert_eq!(path, expected_path, "{err}");
                assert!(message.contains(expected_message), "{err}");
            }
            other => panic!("{other:?}"),
        }
        // Malformed answers are not retried.
        assert_eq!(node.count(UPLOAD), 1);
    };
    check(
        Answer::json_body(r#"{"transfer_specs": [{"transfer_spec": {"remote_host": "h", "paths": [{"destination": "/"}"#),
        "transfer_specs[0].transfer_spec.paths",
        "EOF while parsing",
    )
    .await;
    check(
        Answer::Raw {
            status: 200,
            content_type: "text/html".into(),
            body: "<html>proxy login</html>".into(),
        },
        ".",
        "expected value",
    )
    .await;
    check(
        Answer::json_body(r#"{"transfer_specs": {"transfer_spec": {}}}"#),
        "transfer_specs",
        "invalid type: map, expected an array of transfer specs",
    )
    .await;
    check(
        Answer::json_body(r#"{"transfer_specs": [{"transfer_spec": []}]}"#),
        "transfer_specs[0].transfer_spec",
        "an array where an object belongs",
    )
    .await;
    check(
        Answer::json_body(r#"{"transfer_specs": []}"#),
        "transfer_specs",
        "0 elements for 1 transfer request",
    )
    .await;
    check(
        Answer::json_body(r#"{"result": "ok"}"#),
        "transfer_specs",
        "missing",
    )
    .await;

    // A value fasp-spec refuses: the full path, and the key and value in the source error.
    node.reconfigure(|c| {
        c.upload_answers = vec![Answer::Normal];
        c.spec.extra.insert("rate_policy".into(), json!("turbo"));
    });
    let err = client.upload_setup_one(&request).await.unwrap_err();
    match &err {
        Error::InvalidSpec { path, source, .. } => {
            assert_eq!(path, "transfer_specs[0].transfer_spec.rate_policy");
            assert_eq!(source.value(), Some("turbo"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tls_is_verified_unless_explicitly_turned_off() {
    let node = standin(|c| c.tls = true).await;
    assert!(node.base_url().starts_with("https://"));
    let request = TransferRequest::upload_to(["/"]);

    // Self-signed: refused by default, not retried.
    let err = basic_client(&node)
        .upload_setup_one(&request)
        .await
        .unwrap_err();
    match &err {
        Error::Tls { message, .. } => {
            assert!(message.contains("certificate"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("TLS failure with https://127.0.0.1:")
    );
    assert_eq!(node.count(UPLOAD), 0);

    // Trusting that certificate: verified TLS.
    let trusted = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .config(ClientConfig::default().with_extra_root_certificate(CERTIFICATE_PEM))
        .build()
        .unwrap();
    trusted.upload_setup_one(&request).await.unwrap();

    // The loud opt-out.
    let lab = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    lab.upload_setup_one(&request).await.unwrap();
    assert_eq!(node.count(UPLOAD), 2);

    // https:// to a server speaking plain HTTP.
    let plain = standin(|_| {}).await;
    let url = plain.base_url().replace("http://", "https://");
    let err = NodeClient::builder(url)
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .build()
        .unwrap()
        .upload_setup_one(&request)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_urls_are_refused_before_any_request() {
    for url in [
        "node.example.com:9092",
        "ftp://node",
        "https://user:pw-Rt5@node:9092",
        "https://",
    ] {
        let err = NodeClient::builder(url).build().unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw-Rt5"), "{err}");
    }
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    const PASSWORD: &str = "pw-Hq7Zm2Wx";
    let node = standin(|c| c.node_password = PASSWORD.into()).await;
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, PASSWORD)
        .build()
        .unwrap();
    let spec = client
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap();
    let token = spec.token.as_ref().unwrap().expose().to_owned();
    let mut shown = vec![format!("{client:?}"), format!("{spec:?}")];

    let bearer = NodeClient::builder(node.base_url())
        .bearer_auth("bearer-Lk3Vn8", "key")
        .build()
        .unwrap();
    shown.push(format!("{bearer:?}"));
    let err = bearer
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));

    let wrong = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, "wrong-Jd9Sx")
        .build()
        .unwrap();
    let err = wrong
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));

    for text in &shown {
        for secret in [PASSWORD, token.as_str(), "bearer-Lk3Vn8", "wrong-Jd9Sx"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

/// A node answer that tries to switch on local-side options: every one is dropped, listed, and
/// absent from the rendered ascp command (argv and environment).
#[tokio::test]
async fn local_side_keys_from_a_node_never_reach_ascp() {
    let hostile = json!({
        "ssh_private_key_path": "/etc/shadow",
        "ssh_private_key": "-----BEGIN KEY----- node-key-Qw8",
        "remote_password": "node-pw-Zt4",
        "remove_after_transfer": true,
        "remove_empty_source_directory": true,
        "remove_empty_directories": "true",
        "delete_before_transfer": true,
        "move_after_transfer": "/tmp/archive",
        "file_manifest": "text",
        "file_manifest_path": "/etc/cron.d",
        "proxy": "dnat://u:proxy-pw-Rr2@evil.example:9091",
        "src_base": "/",
        "overwrite": "always",
        "preserve_file_owner_uid": true,
        "content_protection": "decrypt",
        "content_protection_password": "cp-Ww3",
        "partial_file_suffix": ".x",
        "multi_session": 8,
        "source_root": "/etc",
        "destination_root": "/home/me/.ssh",
    });
    let node = standin(|c| {
        c.spec.extra = hostile.as_object().unwrap().clone();
        c.spec.extra.insert("cookie".into(), json!("node-cookie"));
    })
    .await;
    let client = basic_client(&node);

    // Upload: the node may name its destination folder, not the local side.
    let answer = client
        .upload_setup_one_detailed(&TransferRequest::upload_to(["/incoming"]))
        .await
        .unwrap();
    let mut expected: Vec<&str> = hostile
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "destination_root")
        .collect();
    expected.sort_unstable();
    let mut dropped = answer.dropped_keys.clone();
    dropped.sort_unstable();
    assert_eq!(dropped, expected);
    assert_eq!(answer.spec.cookie.as_ref().unwrap().expose(), "node-cookie");
    let ready = prepare_upload(answer.spec, ["/home/me/report.pdf"]).unwrap();
    check_clean(&ready.render(&RenderOptions::new()).unwrap());

    // Download: the node may name its sources, not where they land.
    let answer = client
        .download_setup_one_detailed(&TransferRequest::download_from(["/outgoing/a.bin"]))
        .await
        .unwrap();
    assert!(answer.dropped_keys.iter().any(|k| k == "destination_root"));
    assert!(!answer.dropped_keys.iter().any(|k| k == "source_root"));
    assert_eq!(answer.spec.source_root.as_deref(), Some("/etc"));
    let ready = prepare_download(answer.spec, "/tmp/here").unwrap();
    let command = ready.render(&RenderOptions::new()).unwrap();
    check_clean(&command);
    let args: Vec<_> = command.args.iter().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(args[args.len() - 1], "/tmp/here");

    // The plain API drops the same keys.
    let spec = client
        .upload_setup_one(&TransferRequest::upload_to(["/incoming"]))
        .await
        .unwrap();
    assert_eq!(spec.remove_after_transfer, None);
    assert_eq!(spec.ssh_private_key_path, None);
}

fn check_clean(command: &fasp_spec::AscpCommand) {
    let args: Vec<_> = command.args.iter().map(|a| a.to_str().unwrap()).collect();
    let joined = args.join(" ");
    for needle in [
        "/etc/shadow",
        "-i",
        "--remove",
        "--delete",
        "--move",
        "--file-manifest",
        "--proxy",
        "--src-base",
        "--overwrite",
        "--preserve",
        "--file-crypt",
        "--partial",
        "/etc/cron.d",
        ".ssh",
        "node-key",
        "node-pw",
        "proxy-pw",
        "cp-Ww3",
    ] {
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with(needle) || a.contains("/etc/shadow")),
            "{needle} in {joined}"
        );
        assert!(
            !joined.contains(needle) || needle == "-i",
            "{needle} in {joined}"
        );
    }
    let env: Vec<&str> = command.env.keys().map(String::as_str).collect();
    assert_eq!(env, ["ASPERA_SCP_COOKIE", "ASPERA_SCP_TOKEN"], "{joined}");
}

#[tokio::test]
async fn answers_are_bounded_in_bytes_and_in_specs() {
    // A body longer than the limit: refused while it is read, not retried.
    let big = format!(
        r#"{{"transfer_specs": [{{"transfer_spec": {{"remote_host": "{}"}}}}]}}"#,
        "h".repeat(5 * 1024 * 1024)
    );
    let node = standin(|c| c.upload_answers = vec![Answer::json_body(&big)]).await;
    let request = TransferRequest::upload_to(["/"]);
    let err = basic_client(&node)
        .upload_setup_one(&request)
        .await
        .unwrap_err();
    match &err {
        Error::AnswerTooLarge { url, limit } => {
            assert_eq!(*limit, fasp_token::DEFAULT_MAX_BODY_BYTES);
            assert!(url.ends_with(UPLOAD), "{url}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(node.count(UPLOAD), 1);
    assert!(
        err.to_string().contains("larger than 4194304 bytes"),
        "{err}"
    );

    // The limit is configurable.
    node.reconfigure(|c| c.upload_answers = vec![Answer::Normal]);
    let small = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .max_body_bytes(64)
        .build()
        .unwrap();
    let err = small.upload_setup_one(&request).await.unwrap_err();
    assert!(
        matches!(err, Error::AnswerTooLarge { limit: 64, .. }),
        "{err:?}"
    );
    let roomy = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .max_body_bytes(64 * 1024 * 1024)
        .build()
        .unwrap();
    roomy.upload_setup_one(&request).await.unwrap();

    // More specs than requests: refused at the first extra element.
    let many = format!(
        r#"{{"transfer_specs": [{}]}}"#,
        vec![r#"{"transfer_spec": {"remote_host": "h", "token": "t"}}"#; 50_000].join(",")
    );
    node.reconfigure(|c| c.upload_answers = vec![Answer::json_body(&many)]);
    let err = roomy
        .upload_setup(&[request.clone(), request.clone()])
        .await
        .unwrap_err();
    match &err {
        Error::TooManySpecs { max, .. } => assert_eq!(*max, 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_extra_ca_certificate_from_a_pem_file() {
    let node = standin(|c| c.tls = true).await;
    let folder = tempfile::tempdir().unwrap();
    let pem = folder.path().join("standin.pem");
    std::fs::write(&pem, CERTIFICATE_PEM).unwrap();
    let request = TransferRequest::upload_to(["/"]);

    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .add_root_certificate_pem(&pem)
        .build()
        .unwrap();
    assert!(!client.sends_credentials_in_clear());
    client.upload_setup_one(&request).await.unwrap();
    // Through ClientConfig as well.
    NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .config(ClientConfig::default().with_root_certificate_file(&pem))
        .build()
        .unwrap()
        .upload_setup_one(&request)
        .await
        .unwrap();

    // Unreadable, empty, garbage: a typed error naming the file, at build time.
    let missing = folder.path().join("missing.pem");
    let empty = folder.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let garbage = folder.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for bad in [&missing, &empty, &garbage] {
        let err = NodeClient::builder(node.base_url())
            .add_root_certificate_pem(bad)
            .build()
            .unwrap_err();
        match &err {
            Error::Certificate { path, .. } => assert_eq!(path, bad),
            other => panic!("{}: {other:?}", bad.display()),
        }
        assert!(
            err.to_string().contains(&bad.display().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn credentials_over_plain_http_are_flagged() {
    let node = standin(|_| {}).await;
    assert!(node.base_url().starts_with("http://"));
    assert!(basic_client(&node).sends_credentials_in_clear());
    let bearer = NodeClient::builder(node.base_url())
        .bearer_auth(BEARER_TOKEN, ACCESS_KEY)
        .build()
        .unwrap();
    assert!(bearer.sends_credentials_in_clear());
    let anonymous = NodeClient::builder(node.base_url()).build().unwrap();
    assert!(!anonymous.sends_credentials_in_clear());
}
