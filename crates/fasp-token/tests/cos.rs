//! The IBM COS flow against the stand-in: IAM, faspConnectionInfo, delegated token, setup.

use std::time::Duration;

use base64::Engine;
use fasp_node_standin::{Answer, CosSettings, NodeStandin, StandinConfig};
use fasp_spec::Direction;
use fasp_token::{ClientConfig, CosClient, CosConfig, Error, RetryPolicy, TransferRequest};
use serde_json::{Value, json};

const UPLOAD: &str = "/files/upload_setup";
const IAM: &str = "/identity/token";

async fn standin(change: impl FnOnce(&mut CosSettings)) -> NodeStandin {
    let mut config = StandinConfig::default();
    change(&mut config.cos);
    NodeStandin::start(config).await.unwrap()
}

fn cos_client(node: &NodeStandin, api_key: &str, bucket: &str) -> CosClient {
    let config = CosConfig::new(api_key, node.base_url(), bucket).with_iam_url(node.iam_url());
    let http = ClientConfig::default().with_retry(
        RetryPolicy::default()
            .with_max_retries(2)
            .with_initial_backoff(Duration::from_millis(5)),
    );
    CosClient::with_client_config(config, http).unwrap()
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            let decode = |s: &str| s.replace("%3A", ":").replace("%3a", ":");
            (k.to_owned(), decode(v))
        })
        .collect()
}

#[tokio::test]
async fn the_flow_end_to_end_with_the_right_headers() {
    let settings = CosSettings::default();
    let node = standin(|_| {}).await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    let results = cos
        .upload_setup(&[TransferRequest::upload_to(["/"])])
        .await
        .unwrap();
    let spec = results.into_iter().next().unwrap().unwrap();
    assert_eq!(spec.direction, Some(Direction::Send));
    assert_eq!(spec.token.unwrap().expose(), "ATB3_standin-1");

    let requests = node.requests();
    let summary: Vec<(&str, &str, Option<&str>)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref()))
        .collect();
    let bucket_path = format!("/{}", settings.bucket);
    assert_eq!(
        summary,
        [
            ("POST", IAM, None),
            ("GET", bucket_path.as_str(), Some("faspConnectionInfo")),
            ("POST", IAM, None),
            ("POST", UPLOAD, None),
        ]
    );

    // 1. IAM with the API key.
    assert_eq!(
        form(&requests[0].body),
        [
            (
                "grant_type".to_owned(),
                "urn:ibm:params:oauth:grant-type:apikey".to_owned()
            ),
            ("apikey".to_owned(), settings.api_key.clone()),
        ]
    );
    // 2. The bucket, with the IAM access token.
    assert_eq!(
        requests[1].header("authorization"),
        Some("Bearer iam-access-1")
    );
    // 3. The delegated refresh token for aspera_ats.
    let delegated = form(&requests[2].body);
    assert!(delegated.contains(&("response_type".into(), "delegated_refresh_token".into())));
    assert!(delegated.contains(&("receiver_client_ids".into(), "aspera_ats".into())));
    assert_eq!(node.issued_delegated_tokens(), ["iam-delegated-1"]);
    // 4. Setup on the ATS endpoint: basic auth with the access key, the storage credentials.
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            settings.access_key_id, settings.access_key_secret
        ))
    );
    assert_eq!(
        requests[3].header("authorization"),
        Some(expected_basic.as_str())
    );
    let credentials: Value =
        serde_json::from_str(requests[3].header("x-aspera-storage-credentials").unwrap()).unwrap();
    assert_eq!(
        credentials,
        json!({"type": "token", "token": {"delegated_refresh_token": "iam-delegated-1"}})
    );
}

#[tokio::test]
async fn tokens_and_connection_info_are_cached_until_expiry() {
    let settings = CosSettings::default();
    let node = standin(|_| {}).await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    let bucket_path = format!("/{}", settings.bucket);
    for _ in 0..3 {
        cos.download_setup(&[TransferRequest::download_from(["/a"])])
            .await
            .unwrap();
    }
    assert_eq!(node.count(IAM), 2);
    assert_eq!(node.count(&bucket_path), 1);
    assert_eq!(node.count("/files/download_setup"), 3);

    // Forgetting the cache starts over.
    cos.clear_cache();
    cos.download_setup(&[TransferRequest::download_from(["/a"])])
        .await
        .unwrap();
    assert_eq!(node.count(IAM), 4);
    assert_eq!(node.count(&bucket_path), 2);

    // Tokens that expire at once are fetched for every call; the connection info is kept.
    let node = standin(|c| c.expires_in = 0).await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    for _ in 0..2 {
        cos.upload_setup(&[TransferRequest::upload_to(["/"])])
            .await
            .unwrap();
    }
    assert_eq!(node.count(&bucket_path), 1);
    // First call: access token, delegated token. Second: delegated token only (the connection
    // info, cached, needs no access token).
    assert_eq!(node.count(IAM), 3);
    assert_eq!(node.issued_delegated_tokens().len(), 2);
}

#[tokio::test]
async fn a_wrong_api_key_is_a_400_with_iam_s_message() {
    let settings = CosSettings::default();
    let node = standin(|_| {}).await;
    let cos = cos_client(&node, "not-the-key-Uy6Tr", &settings.bucket);
    let err = cos
        .upload_setup(&[TransferRequest::upload_to(["/"])])
        .await
        .unwrap_err();
    match &err {
        Error::Http {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(message, "Provided API key could not be found.");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("not-the-key-Uy6Tr"));
    assert_eq!(node.count(IAM), 1);
}

#[tokio::test]
async fn bucket_errors() {
    let settings = CosSettings::default();
    let node = standin(|_| {}).await;
    let err = cos_client(&node, &settings.api_key, "no-such-bucket")
        .connection_info()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string()
            .ends_with("HTTP 404 Not Found: The specified bucket does not exist."),
        "{err}"
    );

    // Malformed XML, and XML without the secret.
    let node = standin(|c| {
        c.connection_info_answers = vec![
            Answer::Raw {
                status: 200,
                content_type: "application/xml".into(),
                body: "<FASPConnectionInfo><AccessKey><Id>x</Id>".into(),
            },
            Answer::Raw {
                status: 200,
                content_type: "application/xml".into(),
                body: "<FASPConnectionInfo><AccessKey><Id>x</Id></AccessKey>\
                       <ATSEndpoint>https://ats</ATSEndpoint></FASPConnectionInfo>"
                    .into(),
            },
        ];
    })
    .await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    let err = cos.connection_info().await.unwrap_err();
    assert!(
        matches!(&err, Error::MalformedXml { message, .. } if message == "element <AccessKey> is not closed"),
        "{err:?}"
    );
    let err = cos.connection_info().await.unwrap_err();
    assert!(
        matches!(&err, Error::MalformedXml { message, .. } if message == "no <AccessKey><Secret> in the answer"),
        "{err:?}"
    );
}

#[tokio::test]
async fn iam_failures() {
    let settings = CosSettings::default();
    // 503 then a token: retried.
    let node = standin(|c| c.iam_answers = vec![Answer::Status(503), Answer::Normal]).await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    cos.iam_token().await.unwrap();
    assert_eq!(node.count(IAM), 2);

    // An answer without the token: malformed, naming the member.
    let node = standin(|c| {
        c.iam_answers = vec![Answer::json_body(
            r#"{"token_type": "Bearer", "expires_in": 3600}"#,
        )];
    })
    .await;
    let err = cos_client(&node, &settings.api_key, &settings.bucket)
        .iam_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedJson { path, .. } if path == "access_token"),
        "{err:?}"
    );

    // A member of the wrong type: its path.
    let node = standin(|c| {
        c.iam_answers = vec![Answer::json_body(
            r#"{"access_token": "t", "expires_in": "soon"}"#,
        )];
    })
    .await;
    let err = cos_client(&node, &settings.api_key, &settings.bucket)
        .iam_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedJson { path, .. } if path == "expires_in"),
        "{err:?}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug() {
    let settings = CosSettings::default();
    let node = standin(|_| {}).await;
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    let node_client = cos.node_client().await.unwrap();
    let info = cos.connection_info().await.unwrap();
    assert_eq!(info.access_key_secret.expose(), settings.access_key_secret);
    let shown = format!("{cos:?} {node_client:?} {info:?} {:?}", cos.config());
    assert!(shown.contains(&settings.access_key_id), "{shown}");
    for secret in [
        settings.api_key.as_str(),
        settings.access_key_secret.as_str(),
        "iam-access-1",
        "iam-delegated-1",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[tokio::test]
async fn cos_answers_are_restricted_like_node_answers() {
    let settings = CosSettings::default();
    let mut config = StandinConfig::default();
    config
        .spec
        .extra
        .insert("remove_after_transfer".into(), json!(true));
    config
        .spec
        .extra
        .insert("file_manifest_path".into(), json!("/etc"));
    let node = NodeStandin::start(config).await.unwrap();
    let cos = cos_client(&node, &settings.api_key, &settings.bucket);
    let results = cos
        .download_setup_detailed(&[TransferRequest::download_from(["/a"])])
        .await
        .unwrap();
    let answer = results.into_iter().next().unwrap().unwrap();
    assert_eq!(
        answer.dropped_keys,
        ["remove_after_transfer", "file_manifest_path"]
    );
    assert_eq!(answer.spec.remove_after_transfer, None);
    let spec = cos
        .upload_setup(&[TransferRequest::upload_to(["/"])])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(spec.file_manifest_path, None);
}
