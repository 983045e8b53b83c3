//! The routes: node API setup calls, IAM, the bucket's connection info.

use std::io;
use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::{Answer, StandinConfig, State, lock};

/// Request bodies above this are refused (413).
const MAX_BODY: usize = 1024 * 1024;

/// One request as the stand-in received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// Every header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Upload,
    Download,
    Iam,
    ConnectionInfo,
    Ping,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn json_reply(status: u16, value: &Value) -> Reply {
    reply(status, "application/json; charset=utf-8", value.to_string())
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn node_error_object(code: i64, reason: &str, user_message: &str) -> Value {
    json!({ "code": code, "reason": reason, "user_message": user_message })
}

/// An HTTP error status with a node error body.
fn node_failure(status: u16, user_message: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": node_error_object(status.into(), reason(status), user_message) }),
    )
}

fn iam_failure(status: u16, code: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({
            "errorCode": code,
            "errorMessage": message,
            "context": { "requestId": "standin" }
        }),
    )
}

fn s3_failure(status: u16, code: &str, message: &str) -> Reply {
    reply(
        status,
        "application/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
             <Error><Code>{}</Code><Message>{}</Message><Resource>/</Resource>\
             <RequestId>standin</RequestId></Error>",
            escape_xml(code),
            escape_xml(message)
        ),
    )
}

fn unauthorized(message: &str) -> Box<Reply> {
    let mut response = node_failure(401, message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"node\""),
    );
    Box::new(response)
}

pub(crate) async fn handle(state: &State, request: Request<Incoming>) -> io::Result<Reply> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Err(io::Error::other(e)),
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    // The position in the route's script: requests to this path before this one.
    let position = {
        let mut log = lock(&state.log);
        let before = log.iter().filter(|r| r.path == recorded.path).count();
        log.push(recorded.clone());
        before
    };
    let config = lock(&state.config).clone();

    let Some(route) = route(&config, &parts.method, &recorded) else {
        return Ok(match known_path(&config, &recorded.path) {
            true => node_failure(405, "Method not allowed"),
            false => node_failure(404, "No such endpoint"),
        });
    };
    if body.len() > MAX_BODY {
        return Ok(node_failure(413, "Request body too large"));
    }
    let script: &[Answer] = match route {
        Route::Upload => &config.upload_answers,
        Route::Download => &config.download_answers,
        Route::Iam => &config.cos.iam_answers,
        Route::ConnectionInfo => &config.cos.connection_info_answers,
        Route::Ping => &[],
    };
    let answer = script
        .get(position.min(script.len().saturating_sub(1)))
        .cloned()
        .unwrap_or(Answer::Normal);

    match answer {
        Answer::Hangup => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "scripted hang-up",
        )),
        Answer::Raw {
            status,
            content_type,
            body,
        } => Ok(reply(status, &content_type, body)),
        Answer::Status(status) => Ok(scripted_failure(route, status)),
        Answer::RetryAfter { status, seconds } => {
            let mut response = scripted_failure(route, status);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
            Ok(response)
        }
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(serve(state, &config, route, &recorded, &Answer::Normal))
        }
        other => Ok(serve(state, &config, route, &recorded, &other)),
    }
}

/// A scripted status, with the error body of the route.
fn scripted_failure(route: Route, status: u16) -> Reply {
    match route {
        Route::Iam => iam_failure(status, &format!("BXNIM{status}E"), reason(status)),
        Route::ConnectionInfo => {
            s3_failure(status, &reason(status).replace(' ', ""), reason(status))
        }
        _ => node_failure(status, &format!("{} (scripted)", reason(status))),
    }
}

fn route(config: &StandinConfig, method: &Method, request: &RecordedRequest) -> Option<Route> {
    match (method, request.path.as_str()) {
        (&Method::POST, "/files/upload_setup") => Some(Route::Upload),
        (&Method::POST, "/files/download_setup") => Some(Route::Download),
        (&Method::POST, "/identity/token") => Some(Route::Iam),
        (&Method::GET, "/ping") => Some(Route::Ping),
        (&Method::GET, path)
            if path.len() > 1
                && request
                    .query
                    .as_deref()
                    .is_some_and(|q| q.split('&').any(|p| p == "faspConnectionInfo"))
                && !path[1..].contains('/')
                && !config.cos.bucket.is_empty() =>
        {
            Some(Route::ConnectionInfo)
        }
        _ => None,
    }
}

fn known_path(config: &StandinConfig, path: &str) -> bool {
    matches!(
        path,
        "/files/upload_setup" | "/files/download_setup" | "/identity/token" | "/ping"
    ) || path.strip_prefix('/') == Some(config.cos.bucket.as_str())
}

fn serve(
    state: &State,
    config: &StandinConfig,
    route: Route,
    request: &RecordedRequest,
    answer: &Answer,
) -> Reply {
    match route {
        Route::Upload => setup(state, config, request, true, answer),
        Route::Download => setup(state, config, request, false, answer),
        Route::Iam => iam(state, config, request),
        Route::ConnectionInfo => connection_info(state, config, request),
        Route::Ping => reply(200, "text/plain", ""),
    }
}

// --- node API ---------------------------------------------------------------------------

fn setup(
    state: &State,
    config: &StandinConfig,
    request: &RecordedRequest,
    upload: bool,
    answer: &Answer,
) -> Reply {
    if let Err(refusal) = check_node_auth(state, config, request) {
        return *refusal;
    }
    let requests = match read_transfer_requests(&request.body, upload) {
        Ok(requests) => requests,
        Err(message) => return node_failure(400, &message),
    };
    if let Answer::WholeNodeError {
        code,
        reason,
        user_message,
    } = answer
    {
        return json_reply(
            200,
            &json!({ "error": node_error_object(*code, reason, user_message) }),
        );
    }
    let elements: Vec<Value> = requests
        .iter()
        .map(|transfer_request| match answer {
            Answer::NodeError {
                code,
                reason,
                user_message,
            } => json!({ "error": node_error_object(*code, reason, user_message) }),
            Answer::NodeErrorInSpec {
                code,
                reason,
                user_message,
            } => json!({ "transfer_spec": {
                "error": node_error_object(*code, reason, user_message),
                "remote_host": config.spec.remote_host,
            }}),
            _ => match check_docroot(config, transfer_request, upload) {
                Ok(()) => json!({
                    "transfer_spec": make_spec(state, config, transfer_request, upload)
                }),
                Err(error) => json!({ "error": error }),
            },
        })
        .collect();
    json_reply(200, &json!({ "transfer_specs": elements }))
}

/// Checks the credentials the way a node does; the refusal to send otherwise.
fn check_node_auth(
    state: &State,
    config: &StandinConfig,
    request: &RecordedRequest,
) -> Result<(), Box<Reply>> {
    let Some(authorization) = request.header("authorization") else {
        return Err(unauthorized("Authentication required"));
    };
    let (scheme, credentials) = authorization
        .split_once(' ')
        .ok_or_else(|| unauthorized("Malformed Authorization header"))?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| unauthorized("Malformed basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("Malformed basic credentials"))?;
        if user == config.node_user && password == config.node_password {
            return Ok(());
        }
        if user == config.cos.access_key_id && password == config.cos.access_key_secret {
            return check_storage_credentials(state, request);
        }
        return Err(unauthorized("Invalid credentials"));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let Some(access_key) = request.header("x-aspera-accesskey") else {
            return Err(unauthorized(
                "A bearer token needs the X-Aspera-AccessKey header",
            ));
        };
        if credentials.trim() == config.bearer_token && access_key == config.access_key {
            return Ok(());
        }
        return Err(unauthorized("Invalid credentials"));
    }
    Err(unauthorized("Unsupported authorization scheme"))
}

/// An ATS access key also needs a delegated refresh token this stand-in's IAM issued.
fn check_storage_credentials(state: &State, request: &RecordedRequest) -> Result<(), Box<Reply>> {
    let Some(header) = request.header("x-aspera-storage-credentials") else {
        return Err(unauthorized(
            "This access key needs the X-Aspera-Storage-Credentials header",
        ));
    };
    let parsed: Option<Value> = serde_json::from_str(header).ok();
    let token = parsed.as_ref().and_then(|value| {
        (value.get("type")? == "token")
            .then(|| value.get("token")?.get("delegated_refresh_token")?.as_str())
            .flatten()
    });
    match token {
        Some(token) if lock(&state.tokens).delegated.iter().any(|t| t == token) => Ok(()),
        Some(_) => Err(unauthorized("Invalid storage credentials")),
        None => Err(unauthorized(
            "X-Aspera-Storage-Credentials must be {\"type\":\"token\",\"token\":{\"delegated_refresh_token\":...}}",
        )),
    }
}

/// The `transfer_request` objects of a setup body; the message of a 400 otherwise.
fn read_transfer_requests(body: &str, upload: bool) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("Request body is not JSON: {e}"))?;
    let Some(Value::Array(elements)) = value.get("transfer_requests") else {
        return Err("transfer_requests: missing, or not an array".into());
    };
    if elements.is_empty() {
        return Err("transfer_requests: empty".into());
    }
    let member = if upload { "destination" } else { "source" };
    let mut out = Vec::with_capacity(elements.len());
    for (i, element) in elements.iter().enumerate() {
        let at = format!("transfer_requests[{i}].transfer_request");
        let Some(Value::Object(request)) = element.get("transfer_request") else {
            return Err(format!("{at}: missing, or not an object"));
        };
        let Some(Value::Array(paths)) = request.get("paths") else {
            return Err(format!("{at}.paths: missing, or not an array"));
        };
        if paths.is_empty() {
            return Err(format!("{at}.paths: empty"));
        }
        for (j, path) in paths.iter().enumerate() {
            let Value::Object(path) = path else {
                return Err(format!("{at}.paths[{j}]: not an object"));
            };
            for key in ["source", "destination"] {
                match path.get(key) {
                    None => {}
                    Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => {}
                    Some(_) => return Err(format!("{at}.paths[{j}].{key}: not a valid path")),
                }
            }
            if !path.contains_key(member) {
                return Err(format!("{at}.paths[{j}].{member}: missing"));
            }
        }
        out.push(request.clone());
    }
    Ok(out)
}

/// With a docroot: every node-side path inside it, download sources existing.
fn check_docroot(
    config: &StandinConfig,
    request: &Map<String, Value>,
    upload: bool,
) -> Result<(), Value> {
    let Some(docroot) = &config.docroot else {
        return Ok(());
    };
    let (member, root_key) = if upload {
        ("destination", "destination_root")
    } else {
        ("source", "source_root")
    };
    let root = request.get(root_key).and_then(Value::as_str).unwrap_or("");
    let paths = request.get("paths").and_then(Value::as_array);
    for path in paths.into_iter().flatten() {
        let Some(node_path) = path.get(member).and_then(Value::as_str) else {
            continue;
        };
        let full = format!("{root}/{node_path}");
        let Some(relative) = inside(&full) else {
            return Err(node_error_object(
                403,
                "Forbidden",
                &format!("Access outside the docroot: {node_path}"),
            ));
        };
        if !upload && !docroot.join(&relative).exists() {
            return Err(node_error_object(
                404,
                "Not found",
                &format!("Path does not exist: {node_path}"),
            ));
        }
    }
    Ok(())
}

/// `path` as a relative path below the docroot, or `None` if `..` climbs out of it.
fn inside(path: &str) -> Option<std::path::PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.iter().collect())
}

fn make_spec(
    state: &State,
    config: &StandinConfig,
    request: &Map<String, Value>,
    upload: bool,
) -> Value {
    let token = {
        let mut tokens = lock(&state.tokens);
        let token = format!("{}{}", config.spec.token_prefix, tokens.transfer.len() + 1);
        tokens.transfer.push(token.clone());
        token
    };
    // The request's own keys come back (paths, cookie, tags, rates...), the server's settings
    // override them, defaults fill the rest, and the template's extra keys come last.
    let mut spec = request.clone();
    let server = [
        ("direction", json!(if upload { "send" } else { "receive" })),
        ("remote_host", json!(config.spec.remote_host)),
        ("remote_user", json!(config.spec.remote_user)),
        ("ssh_port", json!(config.spec.ssh_port)),
        ("fasp_port", json!(config.spec.fasp_port)),
        ("token", json!(token)),
        ("authentication", json!("token")),
    ];
    for (key, value) in server {
        spec.insert(key.into(), value);
    }
    let mut defaults = vec![
        ("cipher", json!("aes-128")),
        ("rate_policy", json!("fair")),
        ("rate_policy_allowed", json!("fixed")),
        ("target_rate_kbps", json!(10000)),
        ("min_rate_kbps", json!(0)),
        ("http_fallback", json!(false)),
        ("source_root", json!("")),
    ];
    if upload {
        defaults.push(("destination_root", json!("/")));
    }
    for (key, value) in defaults {
        spec.entry(key).or_insert(value);
    }
    for (key, value) in &config.spec.extra {
        if key != "paths" {
            spec.insert(key.clone(), value.clone());
        }
    }
    Value::Object(spec)
}

// --- IAM --------------------------------------------------------------------------------

fn iam(state: &State, config: &StandinConfig, request: &RecordedRequest) -> Reply {
    let form_type = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return iam_failure(
            400,
            "BXNIM0109E",
            "The request must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(request.body.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some("urn:ibm:params:oauth:grant-type:apikey") {
        return iam_failure(400, "BXNIM0103E", "Grant type missing or not supported");
    }
    match get("apikey") {
        None | Some("") => {
            return iam_failure(
                400,
                "BXNIM0109E",
                "Property missing or empty. Location: body, Property: apikey",
            );
        }
        Some(key) if key != config.cos.api_key => {
            return iam_failure(400, "BXNIM0415E", "Provided API key could not be found.");
        }
        Some(_) => {}
    }
    let delegated = match get("response_type") {
        None => false,
        Some("delegated_refresh_token") => {
            let receivers = get("receiver_client_ids").unwrap_or("");
            if !receivers.split(',').any(|r| r.trim() == "aspera_ats") {
                return iam_failure(
                    400,
                    "BXNIM0109E",
                    "receiver_client_ids must name the receiving client",
                );
            }
            true
        }
        Some(_) => return iam_failure(400, "BXNIM0104E", "Response type not supported"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut tokens = lock(&state.tokens);
    let access = format!("iam-access-{}", tokens.iam_access.len() + 1);
    tokens.iam_access.push(access.clone());
    let mut answer = json!({
        "access_token": access,
        "refresh_token": "not_supported",
        "token_type": "Bearer",
        "expires_in": config.cos.expires_in,
        "expiration": now + config.cos.expires_in,
        "scope": "ibm openid",
    });
    if delegated {
        let token = format!("iam-delegated-{}", tokens.delegated.len() + 1);
        tokens.delegated.push(token.clone());
        answer["delegated_refresh_token"] = json!(token);
    }
    json_reply(200, &answer)
}

// --- the bucket -------------------------------------------------------------------------

fn connection_info(state: &State, config: &StandinConfig, request: &RecordedRequest) -> Reply {
    let token = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    let known = token.is_some_and(|t| lock(&state.tokens).iam_access.iter().any(|a| a == t));
    if !known {
        return s3_failure(403, "AccessDenied", "Access Denied");
    }
    if request.path[1..] != config.cos.bucket {
        return s3_failure(404, "NoSuchBucket", "The specified bucket does not exist.");
    }
    let ats = config
        .cos
        .ats_endpoint
        .clone()
        .unwrap_or_else(|| state.base_url.clone());
    reply(
        200,
        "application/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
             <FASPConnectionInfo xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n\
             \x20 <AccessKey>\n\
             \x20   <Id>{}</Id>\n\
             \x20   <Secret>{}</Secret>\n\
             \x20 </AccessKey>\n\
             \x20 <ATSEndpoint>{}</ATSEndpoint>\n\
             </FASPConnectionInfo>\n",
            escape_xml(&config.cos.access_key_id),
            escape_xml(&config.cos.access_key_secret),
            escape_xml(&ats)
        ),
    )
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_docroot() {
        assert_eq!(inside("/a/b").unwrap(), Path::new("a/b"));
        assert_eq!(inside("a/../b").unwrap(), Path::new("b"));
        assert_eq!(inside("/").unwrap(), Path::new(""));
        assert!(inside("/../etc/passwd").is_none());
        assert!(inside("a/../../b").is_none());
    }

    #[test]
    fn transfer_request_shapes() {
        let ok = r#"{"transfer_requests":[{"transfer_request":{"paths":[{"destination":"/"}]}}]}"#;
        assert_eq!(read_transfer_requests(ok, true).unwrap().len(), 1);
        assert_eq!(
            read_transfer_requests(ok, false).unwrap_err(),
            "transfer_requests[0].transfer_request.paths[0].source: missing"
        );
        assert!(read_transfer_requests("{", true).is_err());
        assert_eq!(
            read_transfer_requests(r#"{"transfer_requests":[]}"#, true).unwrap_err(),
            "transfer_requests: empty"
        );
        assert_eq!(
            read_transfer_requests(
                r#"{"transfer_requests":[{"transfer_request":{"paths":[{"destination":7}]}}]}"#,
                true
            )
            .unwrap_err(),
            "transfer_requests[0].transfer_request.paths[0].destination: not a valid path"
        );
    }
}
