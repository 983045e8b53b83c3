//! From a node's setup answer to the real ascp: the token the node issued reaches ascp through
//! its environment only, and arrives at the server in the HTTP fallback request.
//!
//! Needs the real ascp (`FASP_ASCP`, installed by `cargo xtask ascp`): skipped without it,
//! except with `CI=true`, where it fails instead.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
use fasp_spec::RenderOptions;
use fasp_testkit::{AscpInvocation, HttpCapture, assert_no_leftover, real_ascp};
use fasp_token::{NodeClient, TransferRequest, prepare_upload};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A loopback port where nothing listens and nobody else can bind while this lives: the local
/// end of an open connection.
struct ClosedPort {
    port: u16,
    _ends: (TcpStream, TcpStream),
}

impl ClosedPort {
    fn new() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        ClosedPort {
            port: client.local_addr().unwrap().port(),
            _ends: (client, server),
        }
    }
}

#[test]
fn the_setup_token_reaches_ascp_by_environment_and_the_fallback_server_verbatim() {
    let Some(ascp) = real_ascp() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("fasp-token-real-ascp.")
        .tempdir()
        .unwrap();
    let source = dir.path().join("report.txt");
    std::fs::write(&source, b"from upload_setup to ascp\n").unwrap();
    let http = HttpCapture::holding().unwrap();
    let ssh = ClosedPort::new();

    // The node hands out a spec for plain-HTTP fallback towards the capture.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = StandinConfig::default();
    config.spec.ssh_port = ssh.port;
    config.spec.extra.extend(
        json!({
            "http_fallback": "force",
            "http_fallback_port": http.port(),
            "http_fallback_protocol": "http",
            "cipher": "none",
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    let (answer, issued) = runtime.block_on(async {
        let node = NodeStandin::start(config).await.unwrap();
        let client = NodeClient::builder(node.base_url())
            .basic_auth(NODE_USER, NODE_PASSWORD)
            .build()
            .unwrap();
        let answer = client
            .upload_setup_one(&TransferRequest::upload_to(["/inbox"]))
            .await
            .unwrap();
        (answer, node.issued_tokens())
    });
    let token = answer.token.as_ref().unwrap().expose().to_owned();
    assert_eq!(issued, std::slice::from_ref(&token));

    let spec = prepare_upload(answer, [source.to_string_lossy()]).unwrap();
    let rendered = spec
        .render(
            &RenderOptions::new()
                .with_program(&ascp)
                .with_workdir(dir.path()),
        )
        .unwrap();
    let args: Vec<String> = rendered
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(!args.iter().any(|a| a.contains(&token)), "{args:?}");
    assert_eq!(args.last().map(String::as_str), Some("/inbox"));

    let mut command = AscpInvocation::new(&rendered.program);
    command.args(&rendered.args).timeout(TIMEOUT);
    for (name, value) in &rendered.env {
        command.env(name, value.expose());
    }
    let mut process = command.spawn().unwrap();
    // ascp waits for the held answer: alive while /proc is read.
    let requests = http.wait_for_requests(1, TIMEOUT);
    assert!(
        !requests.is_empty(),
        "no fallback request; argv {args:?}; management so far:\n{}",
        String::from_utf8_lossy(&process.mgmt_so_far())
    );
    assert!(!process.has_exited());
    assert!(!process.cmdline_contains(&token).unwrap());
    assert!(
        process
            .environ_contains(&format!("ASPERA_SCP_TOKEN={token}"))
            .unwrap()
    );
    http.release();
    let run = process.wait().unwrap();

    let start = &requests[0];
    assert!(
        start.request_line().contains("/session_start/"),
        "{start:#?}"
    );
    assert!(
        start
            .body_text()
            .contains(&format!("<token>{token}</token>")),
        "{start:#?}"
    );
    assert!(!start.head().contains(&token));
    // The capture refused the session (403): code 5.
    assert!(run.mgmt_has_line("Code: 5"), "{}", run.mgmt_text());
    assert_no_leftover(&dir.path().to_string_lossy());
}
