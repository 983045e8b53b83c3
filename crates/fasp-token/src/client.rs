//! [`NodeClient`]: `upload_setup` and `download_setup` against one node API.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use fasp_spec::{Direction, NodeSpec, Secret, TransferPath, TransferSpec};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::http::{ClientConfig, Http, RetryPolicy, join, parse_base_url, sensitive};

/// The header naming the access key of a bearer-authenticated request.
pub const ACCESS_KEY_HEADER: &str = "X-Aspera-AccessKey";

/// How a [`NodeClient`] authenticates.
///
/// `Debug` shows the user or access key id, never the password or token.
///
/// ```
/// use fasp_token::Auth;
///
/// let auth = Auth::basic("node_user", "hunter2");
/// assert_eq!(format!("{auth:?}"), r#"Basic { user: "node_user", password: <redacted> }"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// HTTP basic authentication with a node API user and password (or, for IBM COS, an access
    /// key id and secret).
    Basic {
        /// The node API user (or access key id).
        user: String,
        /// Its password (or access key secret).
        password: Secret,
    },
    /// `Authorization: Bearer <token>` plus `X-Aspera-AccessKey: <access_key>`, as for access
    /// keys of Aspera on Cloud and the like.
    Bearer {
        /// The bearer token (without the `Bearer ` prefix; one given with it is accepted).
        token: Secret,
        /// The access key id.
        access_key: String,
    },
}

impl Auth {
    /// Basic authentication.
    pub fn basic(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// Bearer token plus access key.
    pub fn bearer(token: impl Into<Secret>, access_key: impl Into<String>) -> Self {
        Auth::Bearer {
            token: token.into(),
            access_key: access_key.into(),
        }
    }
}

/// One element of `transfer_requests`: the paths to upload to or download from, and any other
/// key the node takes (`destination_root`, `source_root`, `tags`, `cookie`, rate settings...).
///
/// For `upload_setup` the paths carry destinations (on the node), for `download_setup` sources
/// (on the node). `Debug` shows the paths and the names of the other keys, not their values.
///
/// ```
/// use fasp_token::TransferRequest;
///
/// let upload = TransferRequest::upload_to(["/incoming"]);
/// assert_eq!(
///     upload.to_json().to_string(),
///     r#"{"paths":[{"destination":"/incoming"}]}"#
/// );
/// let download = TransferRequest::download_from(["/outgoing/a.bin", "/outgoing/b.bin"])
///     .with("target_rate_kbps", 100_000);
/// assert_eq!(
///     download.to_json().to_string(),
///     r#"{"paths":[{"source":"/outgoing/a.bin"},{"source":"/outgoing/b.bin"}],"target_rate_kbps":100000}"#
/// );
/// ```
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TransferRequest {
    /// The `paths` member.
    pub paths: Vec<TransferPath>,
    /// Every other member, in order.
    pub extra: Map<String, Value>,
}

impl TransferRequest {
    /// An empty request (no paths).
    pub fn new() -> Self {
        TransferRequest::default()
    }

    /// A request for `upload_setup`: one path per destination on the node.
    pub fn upload_to<I, S>(destinations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TransferRequest {
            paths: destinations
                .into_iter()
                .map(TransferPath::destination_only)
                .collect(),
            extra: Map::new(),
        }
    }

    /// A request for `download_setup`: one path per source on the node.
    pub fn download_from<I, S>(sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TransferRequest {
            paths: sources.into_iter().map(TransferPath::new).collect(),
            extra: Map::new(),
        }
    }

    /// Adds a path.
    pub fn with_path(mut self, path: TransferPath) -> Self {
        self.paths.push(path);
        self
    }

    /// Sets any other member of the request.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The `transfer_request` object as JSON.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert(
            "paths".into(),
            serde_json::to_value(&self.paths).unwrap_or(Value::Null),
        );
        for (key, value) in &self.extra {
            object.insert(key.clone(), value.clone());
        }
        Value::Object(object)
    }
}

impl fmt::Debug for TransferRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferRequest")
            .field("paths", &self.paths)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The whole body of a setup call.
fn setup_body(requests: &[TransferRequest]) -> Value {
    json!({
        "transfer_requests": requests
            .iter()
            .map(|r| json!({ "transfer_request": r.to_json() }))
            .collect::<Vec<_>>()
    })
}

/// A client of one node API (`https://node:9092`, an ATS endpoint, ...): asks for transfer
/// specs with `upload_setup` and `download_setup`.
///
/// Built with [`NodeClient::builder`]. Cheap to clone (the connection pool is shared). `Debug`
/// shows the URL, the user or access key id and the settings, never a password or token.
#[derive(Clone)]
pub struct NodeClient {
    http: Http,
    base: Url,
    auth: Option<Auth>,
    /// Extra headers whose values are secrets (COS storage credentials).
    secret_headers: Vec<(HeaderName, Secret)>,
}

impl fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeClient")
            .field("base_url", &self.base.as_str())
            .field("auth", &self.auth)
            .field(
                "secret_headers",
                &self
                    .secret_headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value))
                    .collect::<Vec<_>>(),
            )
            .field("config", self.http.config())
            .finish()
    }
}

impl NodeClient {
    /// A builder for a client of the node API at `base_url` (`https://host:9092`; a path
    /// prefix is kept, `/files/upload_setup` is appended).
    pub fn builder(base_url: impl Into<String>) -> NodeClientBuilder {
        NodeClientBuilder {
            base_url: base_url.into(),
            auth: None,
            config: ClientConfig::default(),
        }
    }

    pub(crate) fn with_http(
        http: Http,
        base: Url,
        auth: Auth,
        secret_headers: Vec<(HeaderName, Secret)>,
    ) -> Self {
        NodeClient {
            http,
            base,
            auth: Some(auth),
            secret_headers,
        }
    }

    /// The node API's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The HTTP settings in force.
    pub fn config(&self) -> &ClientConfig {
        self.http.config()
    }

    /// Whether this client sends credentials (basic or bearer authentication, secret headers)
    /// over plain `http://`, where anyone on the path can read them. Each setup call that does
    /// so also emits a `tracing` warning; a command-line tool should warn its user too.
    ///
    /// ```
    /// use fasp_token::NodeClient;
    ///
    /// let clear = NodeClient::builder("http://node.example.com:9091")
    ///     .basic_auth("node_user", "hunter2")
    ///     .build()?;
    /// assert!(clear.sends_credentials_in_clear());
    /// let tls = NodeClient::builder("https://node.example.com:9092")
    ///     .basic_auth("node_user", "hunter2")
    ///     .build()?;
    /// assert!(!tls.sends_credentials_in_clear());
    /// # Ok::<(), fasp_token::Error>(())
    /// ```
    pub fn sends_credentials_in_clear(&self) -> bool {
        self.base.scheme() == "http" && (self.auth.is_some() || !self.secret_headers.is_empty())
    }

    /// `POST /files/upload_setup`: one result per request, in order, each a transfer spec or
    /// the error the node gave for that request ([`Error::Node`], or [`Error::InvalidSpec`] /
    /// [`Error::MalformedJson`] for an element that is not a usable spec).
    ///
    /// The node's specs carry destinations only: give them to
    /// [`prepare_upload`](crate::prepare_upload) with the local sources before rendering.
    ///
    /// The outer error is for the call as a whole: unreachable host, TLS, timeout, HTTP error
    /// status, an answer that is not `{"transfer_specs": [...]}` with one element per request,
    /// or a node error answering the whole call.
    ///
    /// Each spec is restricted to the keys a node may set (see [`NodeClient::upload_setup_detailed`],
    /// which also says which keys were dropped); the dropped keys' names are logged as a
    /// `tracing` warning.
    pub async fn upload_setup(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<TransferSpec, Error>>, Error> {
        Ok(specs_only(self.upload_setup_detailed(requests).await?))
    }

    /// `POST /files/download_setup`: like [`NodeClient::upload_setup`]. The node's specs carry
    /// the remote sources: give them to [`prepare_download`](crate::prepare_download) with the
    /// local destination.
    pub async fn download_setup(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<TransferSpec, Error>>, Error> {
        Ok(specs_only(self.download_setup_detailed(requests).await?))
    }

    /// [`NodeClient::upload_setup`] for a single request, its result flattened.
    pub async fn upload_setup_one(&self, request: &TransferRequest) -> Result<TransferSpec, Error> {
        self.upload_setup_one_detailed(request)
            .await
            .map(NodeSpec::into_spec)
    }

    /// [`NodeClient::download_setup`] for a single request, its result flattened.
    pub async fn download_setup_one(
        &self,
        request: &TransferRequest,
    ) -> Result<TransferSpec, Error> {
        self.download_setup_one_detailed(request)
            .await
            .map(NodeSpec::into_spec)
    }

    /// [`NodeClient::upload_setup`], each spec with the names of the keys removed from the
    /// node's answer ([`NodeSpec::dropped_keys`]): a node answer is hostile input, and may only
    /// set the keys of [`fasp_spec::node_may_set`] (host, ports, user, token, cookie, tags,
    /// rates and policy with their caps and locks, cipher, HTTP fallback, its own side's
    /// paths). Local-side keys (`remove_after_transfer`, `ssh_private_key_path`,
    /// `file_manifest_path`, the local paths, ...) are dropped and listed, so that a caller can
    /// warn; they can only come from the user.
    ///
    /// The answer is bounded before it is parsed: at most
    /// [`ClientConfig::max_body_bytes`] bytes ([`Error::AnswerTooLarge`]) and at most one
    /// element per request ([`Error::TooManySpecs`], refused before the extra element is read).
    pub async fn upload_setup_detailed(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
        self.setup("files/upload_setup", Direction::Send, requests)
            .await
    }

    /// [`NodeClient::download_setup`] with the names of the dropped keys, like
    /// [`NodeClient::upload_setup_detailed`].
    pub async fn download_setup_detailed(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
        self.setup("files/download_setup", Direction::Receive, requests)
            .await
    }

    /// [`NodeClient::upload_setup_detailed`] for a single request, its result flattened.
    pub async fn upload_setup_one_detailed(
        &self,
        request: &TransferRequest,
    ) -> Result<NodeSpec, Error> {
        one(self
            .upload_setup_detailed(std::slice::from_ref(request))
            .await)
    }

    /// [`NodeClient::download_setup_detailed`] for a single request, its result flattened.
    pub async fn download_setup_one_detailed(
        &self,
        request: &TransferRequest,
    ) -> Result<NodeSpec, Error> {
        one(self
            .download_setup_detailed(std::slice::from_ref(request))
            .await)
    }

    async fn setup(
        &self,
        path: &str,
        direction: Direction,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
        let url = join(&self.base, path);
        let shown = url.to_string();
        if self.sends_credentials_in_clear() {
            tracing::warn!(
                url = %shown,
                "credentials sent over plain http: anyone on the path can read them (use https)"
            );
        }
        tracing::info!(url = %shown, requests = requests.len(), "asking the node for transfer specs");
        let body = serde_json::to_vec(&setup_body(requests)).map_err(|e| Error::Transport {
            url: shown.clone(),
            message: format!("cannot encode the request: {e}"),
        })?;
        let answer = self
            .http
            .send(&shown, |client| {
                let mut request = client
                    .post(url.clone())
                    .header(ACCEPT, "application/json")
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                match &self.auth {
                    Some(Auth::Basic { user, password }) => {
                        request = request.basic_auth(user, Some(password.expose()));
                    }
                    Some(Auth::Bearer { token, access_key }) => {
                        request = request
                            .header(AUTHORIZATION, sensitive(bearer_value(token).as_str()))
                            .header(ACCESS_KEY_HEADER, access_key.as_str());
                    }
                    None => {}
                }
                for (name, value) in &self.secret_headers {
                    request = request.header(name.clone(), sensitive(value.expose()));
                }
                request
            })
            .await?;
        let results =
            crate::answer::setup_results(&shown, &answer.body, requests.len(), direction)?;
        for (index, result) in results.iter().enumerate() {
            match result {
                Ok(node) if !node.dropped_keys.is_empty() => {
                    // Key names only, never values.
                    tracing::warn!(
                        url = %shown,
                        index,
                        dropped_keys = ?node.dropped_keys,
                        "the node's answer set keys only the user may set: dropped"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(url = %shown, index, %error, "no spec for this request");
                }
            }
        }
        Ok(results)
    }
}

fn specs_only(results: Vec<Result<NodeSpec, Error>>) -> Vec<Result<TransferSpec, Error>> {
    results
        .into_iter()
        .map(|result| result.map(NodeSpec::into_spec))
        .collect()
}

fn one<T>(results: Result<Vec<Result<T, Error>>, Error>) -> Result<T, Error> {
    // setup_results guarantees one element per request.
    results?.into_iter().next().unwrap_or_else(|| {
        Err(Error::Transport {
            url: String::new(),
            message: "no result for the request".into(),
        })
    })
}

fn bearer_value(token: &Secret) -> Zeroizing<String> {
    let raw = token.expose().trim();
    let bare = match raw.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => raw[7..].trim_start(),
        _ => raw,
    };
    Zeroizing::new(format!("Bearer {bare}"))
}

/// Builds a [`NodeClient`]. Every setting has a default; see [`ClientConfig`].
///
/// ```
/// use std::time::Duration;
/// use fasp_token::{NodeClient, RetryPolicy};
///
/// let client = NodeClient::builder("https://node.example.com:9092")
///     .basic_auth("node_user", "hunter2")
///     .timeout(Duration::from_secs(20))
///     .retry(RetryPolicy::default().with_max_retries(5))
///     .build()?;
/// assert!(!format!("{client:?}").contains("hunter2"));
/// # Ok::<(), fasp_token::Error>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct NodeClientBuilder {
    base_url: String,
    auth: Option<Auth>,
    config: ClientConfig,
}

impl NodeClientBuilder {
    /// Authenticates with a node API user and password (HTTP basic).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.auth = Some(Auth::basic(user, password));
        self
    }

    /// Authenticates with a bearer token and `X-Aspera-AccessKey`.
    pub fn bearer_auth(mut self, token: impl Into<Secret>, access_key: impl Into<String>) -> Self {
        self.auth = Some(Auth::bearer(token, access_key));
        self
    }

    /// Sets the authentication. Without one, requests carry no credentials (and a real node
    /// answers 401).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Replaces every HTTP setting.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets [`ClientConfig::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::retry`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// **Turns off TLS certificate verification** (see
    /// [`ClientConfig::danger_accept_invalid_certs`]). Lab servers only.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.danger_accept_invalid_certs = accept;
        self
    }

    /// Trusts the certificates of a PEM file besides the built-in roots (a private CA, or a
    /// lab node's self-signed certificate): what `--cacert FILE` means. The file is read by
    /// [`NodeClientBuilder::build`], which fails with [`Error::Certificate`] naming it when it
    /// cannot be read or holds no valid certificate. Verification stays on.
    pub fn add_root_certificate_pem(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.root_certificate_files.push(path.into());
        self
    }

    /// Sets [`ClientConfig::max_body_bytes`], the largest answer read.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.config.max_body_bytes = max;
        self
    }

    /// Checks the URL and builds the client. Errors: [`Error::InvalidUrl`] (not http or https,
    /// no host, a query, credentials in the URL), [`Error::Certificate`] for a certificate file
    /// that cannot be used, [`Error::Transport`] when the TLS stack cannot be set up.
    pub fn build(self) -> Result<NodeClient, Error> {
        let base = parse_base_url(&self.base_url)?;
        let http = Http::new(self.config)?;
        Ok(NodeClient {
            http,
            base,
            auth: self.auth,
            secret_headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let body = setup_body(&[
            TransferRequest::upload_to(["/a"]).with("destination_root", "/"),
            TransferRequest::download_from(["/b"]),
        ]);
        assert_eq!(
            body,
            json!({"transfer_requests": [
                {"transfer_request": {"paths": [{"destination": "/a"}], "destination_root": "/"}},
                {"transfer_request": {"paths": [{"source": "/b"}]}}
            ]})
        );
    }

    #[test]
    fn bearer_prefix_is_not_doubled() {
        assert_eq!(bearer_value(&Secret::new("abc")).as_str(), "Bearer abc");
        assert_eq!(
            bearer_value(&Secret::new("Bearer abc")).as_str(),
            "Bearer abc"
        );
        assert_eq!(
            bearer_value(&Secret::new("bearer  abc")).as_str(),
            "Bearer abc"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let client = NodeClient::builder("http://127.0.0.1:1")
            .bearer_auth("tok-Zq8xVv2k", "key-id")
            .build()
            .unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("key-id"), "{shown}");
        assert!(!shown.contains("Zq8xVv2k"), "{shown}");
        let request = TransferRequest::upload_to(["/x"]).with("cookie", "cookie-Jk3Hy6");
        let shown = format!("{request:?}");
        assert!(
            shown.contains("cookie") && !shown.contains("Jk3Hy6"),
            "{shown}"
        );
    }
}
