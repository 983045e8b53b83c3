//! The crate's `tracing` events, captured at TRACE level during whole setup calls against the
//! node API stand-in (basic and bearer authentication, a retry, a refusal, plain http), never
//! show a secret: not the node password, not the bearer token, not the Basic header, not the
//! transfer token or cookie of the answer.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fasp_node_standin::{
    ACCESS_KEY, Answer, BEARER_TOKEN, NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig,
};
use fasp_token::{NodeClient, RetryPolicy, TransferRequest};
use serde_json::json;

/// A writer appending to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// A current-thread runtime: every task (client and stand-in) runs on the thread whose default
// subscriber captures the events.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_trace_output() {
    const COOKIE: &str = "cookie-Tn5Wq";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut config = StandinConfig::default();
    config.spec.extra.insert("cookie".into(), json!(COOKIE));
    config
        .spec
        .extra
        .insert("remove_after_transfer".into(), json!(true));
    config.upload_answers = vec![Answer::Status(503), Answer::Normal];
    let node = NodeStandin::start(config).await.unwrap();
    let retry = RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));

    let basic = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .retry(retry.clone())
        .build()
        .unwrap();
    let upload = basic
        .upload_setup_one_detailed(&TransferRequest::upload_to(["/incoming"]))
        .await
        .unwrap();
    let upload_token = upload.spec.token.as_ref().unwrap().expose().to_owned();

    let bearer = NodeClient::builder(node.base_url())
        .bearer_auth(BEARER_TOKEN, ACCESS_KEY)
        .retry(retry.clone())
        .build()
        .unwrap();
    let download = bearer
        .download_setup_one(&TransferRequest::download_from(["/outgoing/a.bin"]))
        .await
        .unwrap();
    let download_token = download.token.as_ref().unwrap().expose().to_owned();

    let wrong = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, "wrong-Jd9Sx")
        .retry(retry)
        .build()
        .unwrap();
    wrong
        .upload_setup_one(&TransferRequest::upload_to(["/"]))
        .await
        .unwrap_err();

    let output = captured.text();
    if std::env::var_os("SHOW_TRACE").is_some() {
        eprintln!("{output}");
    }
    // The events are there: requests, the retry, statuses, the warnings.
    for expected in [
        "sending request",
        "answer received",
        "status=503",
        "retrying after a transient failure",
        "status=200",
        "status=401",
        "credentials sent over plain http",
        "remove_after_transfer",
        "elapsed_ms",
    ] {
        assert!(output.contains(expected), "no {expected:?} in:\n{output}");
    }
    for secret in [
        NODE_PASSWORD,
        BEARER_TOKEN,
        "wrong-Jd9Sx",
        upload_token.as_str(),
        download_token.as_str(),
        COOKIE,
        &base64(&format!("{NODE_USER}:{NODE_PASSWORD}")),
        &base64(&format!("{NODE_USER}:wrong-Jd9Sx")),
        // What every token of the stand-in starts with.
        "ATB3_standin",
    ] {
        assert!(!output.contains(secret), "{secret:?} in:\n{output}");
    }
}
