//! A stand-in for IBM Aspera's node API, IBM Cloud IAM and a COS bucket, for tests and the
//! offline demo.
//!
//! [`NodeStandin::start`] serves on a fresh loopback port, in the current tokio runtime, until
//! the handle is dropped. It answers what fasp-token asks:
//!
//! | request | what it checks | normal answer |
//! |---|---|---|
//! | `POST /files/upload_setup`, `POST /files/download_setup` | the `Authorization` header (basic with the node user, bearer with `X-Aspera-AccessKey`, or basic with the COS access key plus a valid `X-Aspera-Storage-Credentials`), the JSON shape of `transfer_requests`, a destination (upload) or source (download) on every path, and with a [`StandinConfig::docroot`] that paths stay inside it and download sources exist | one `transfer_spec` per request, from [`SpecTemplate`], with a fresh token |
//! | `POST /identity/token` (IAM) | form `grant_type=urn:ibm:params:oauth:grant-type:apikey`, the API key, and for `response_type=delegated_refresh_token` the receiver `aspera_ats` | an access token (plus a delegated refresh token when asked), `expires_in` from [`CosSettings::expires_in`] |
//! | `GET /<bucket>?faspConnectionInfo` | a bearer IAM access token this stand-in issued, the bucket name | XML with the access key id and secret and `ATSEndpoint` (this server unless [`CosSettings::ats_endpoint`]) |
//! | `GET /ping` | nothing | 200, empty |
//!
//! Each route plays a script of [`Answer`]s, one per request in order, the last repeating:
//! `[Answer::Status(429), Answer::Normal]` refuses the first request and serves the rest.
//! Scripted failures ([`Answer::Status`], [`Answer::RetryAfter`], [`Answer::Raw`],
//! [`Answer::Hangup`]) happen before
//! any check, like a proxy or an overloaded server; node errors ([`Answer::NodeError`] and
//! friends) after the checks, like a node that understood the request and refused it.
//! Every request is recorded ([`NodeStandin::requests`]).
//!
//! ```
//! use fasp_node_standin::{Answer, NodeStandin, StandinConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mut config = StandinConfig::default();
//! config.upload_answers = vec![Answer::Status(503), Answer::Normal];
//! let node = NodeStandin::start(config).await?;
//! assert!(node.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(node.count("/files/upload_setup"), 0);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod routes;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};

pub use routes::RecordedRequest;

/// The node user of [`StandinConfig::default`].
pub const NODE_USER: &str = "node_user";
/// Its password.
pub const NODE_PASSWORD: &str = "node-pass-Vb7Qz";
/// The bearer token of [`StandinConfig::default`].
pub const BEARER_TOKEN: &str = "standin-bearer-Xk29Lp";
/// The access key id going with [`BEARER_TOKEN`].
pub const ACCESS_KEY: &str = "standin-access-key";

/// One scripted answer of a route.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// What a healthy server answers: a transfer spec per request (after the checks), an IAM
    /// token, the bucket's connection info.
    Normal,
    /// Like [`Answer::Normal`], after this delay (to test timeouts).
    Slow(Duration),
    /// HTTP 200 whose every `transfer_specs` element is `{"error": {...}}` (setup routes).
    NodeError {
        /// `code`.
        code: i64,
        /// `reason`.
        reason: String,
        /// `user_message`.
        user_message: String,
    },
    /// HTTP 200 whose every element is `{"transfer_spec": {"error": {...}, ...}}`: the error
    /// inside the spec (setup routes).
    NodeErrorInSpec {
        /// `code`.
        code: i64,
        /// `reason`.
        reason: String,
        /// `user_message`.
        user_message: String,
    },
    /// HTTP 200 whose whole body is `{"error": {...}}` (setup routes).
    WholeNodeError {
        /// `code`.
        code: i64,
        /// `reason`.
        reason: String,
        /// `user_message`.
        user_message: String,
    },
    /// This HTTP status at once, with the error body the route would send (a node error
    /// object, an IAM error, an S3 XML error).
    Status(u16),
    /// Like [`Answer::Status`], with a `Retry-After: <seconds>` header (for 429 and 503).
    RetryAfter {
        /// The HTTP status.
        status: u16,
        /// The header's value.
        seconds: u64,
    },
    /// This status, content type and body at once (malformed JSON, HTML from a proxy, ...).
    Raw {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`.
        content_type: String,
        /// The body, sent as is.
        body: String,
    },
    /// Close the connection without answering.
    Hangup,
}

impl Answer {
    /// [`Answer::NodeError`].
    pub fn node_error(code: i64, reason: &str, user_message: &str) -> Self {
        Answer::NodeError {
            code,
            reason: reason.into(),
            user_message: user_message.into(),
        }
    }

    /// [`Answer::NodeErrorInSpec`].
    pub fn node_error_in_spec(code: i64, reason: &str, user_message: &str) -> Self {
        Answer::NodeErrorInSpec {
            code,
            reason: reason.into(),
            user_message: user_message.into(),
        }
    }

    /// [`Answer::WholeNodeError`].
    pub fn whole_node_error(code: i64, reason: &str, user_message: &str) -> Self {
        Answer::WholeNodeError {
            code,
            reason: reason.into(),
            user_message: user_message.into(),
        }
    }

    /// HTTP 200 with `body` as `application/json` (usually not JSON at all).
    pub fn json_body(body: &str) -> Self {
        Answer::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: body.into(),
        }
    }
}

/// The transfer spec the setup routes hand out (besides `paths` and `direction`, which follow
/// the request, and `token`, fresh each time).
#[derive(Clone, Debug)]
pub struct SpecTemplate {
    /// `remote_host`. Default `127.0.0.1`.
    pub remote_host: String,
    /// `remote_user`. Default `xfer`.
    pub remote_user: String,
    /// `ssh_port`. Default 33001.
    pub ssh_port: u16,
    /// `fasp_port`. Default 33001.
    pub fasp_port: u16,
    /// Tokens are this prefix and a counter. Default `ATB3_standin-`.
    pub token_prefix: String,
    /// More keys, set last (they override everything else, `paths` excepted).
    pub extra: Map<String, Value>,
}

impl Default for SpecTemplate {
    fn default() -> Self {
        SpecTemplate {
            remote_host: "127.0.0.1".into(),
            remote_user: "xfer".into(),
            ssh_port: 33001,
            fasp_port: 33001,
            token_prefix: "ATB3_standin-".into(),
            extra: Map::new(),
        }
    }
}

/// The IBM COS side: IAM and the bucket.
#[derive(Clone, Debug)]
pub struct CosSettings {
    /// The API key IAM accepts. Default `standin-api-key-Qm4Rt8`.
    pub api_key: String,
    /// The one bucket. Default `standin-bucket`.
    pub bucket: String,
    /// The access key id of the bucket's transfer service. Default `standin-ats-key`.
    pub access_key_id: String,
    /// Its secret. Default `standin-ats-secret-Hw3Nd5`.
    pub access_key_secret: String,
    /// `expires_in` of IAM tokens, in seconds. Default 3600.
    pub expires_in: u64,
    /// The `ATSEndpoint` of the connection info. Default: this server's base URL.
    pub ats_endpoint: Option<String>,
    /// Script of `POST /identity/token`.
    pub iam_answers: Vec<Answer>,
    /// Script of `GET /<bucket>?faspConnectionInfo`.
    pub connection_info_answers: Vec<Answer>,
}

impl Default for CosSettings {
    fn default() -> Self {
        CosSettings {
            api_key: "standin-api-key-Qm4Rt8".into(),
            bucket: "standin-bucket".into(),
            access_key_id: "standin-ats-key".into(),
            access_key_secret: "standin-ats-secret-Hw3Nd5".into(),
            expires_in: 3600,
            ats_endpoint: None,
            iam_answers: vec![Answer::Normal],
            connection_info_answers: vec![Answer::Normal],
        }
    }
}

/// Everything the stand-in accepts and answers.
#[derive(Clone, Debug)]
pub struct StandinConfig {
    /// The node API user for basic authentication. Default [`NODE_USER`].
    pub node_user: String,
    /// Its password. Default [`NODE_PASSWORD`].
    pub node_password: String,
    /// The bearer token accepted with [`StandinConfig::access_key`]. Default [`BEARER_TOKEN`].
    pub bearer_token: String,
    /// The access key id expected in `X-Aspera-AccessKey`. Default [`ACCESS_KEY`].
    pub access_key: String,
    /// Script of `POST /files/upload_setup`. Default `[Answer::Normal]`.
    pub upload_answers: Vec<Answer>,
    /// Script of `POST /files/download_setup`. Default `[Answer::Normal]`.
    pub download_answers: Vec<Answer>,
    /// The specs handed out.
    pub spec: SpecTemplate,
    /// When set, the node's files: paths must stay inside it (403 node error otherwise) and
    /// download sources must exist (404 node error otherwise), each checked per request, as a
    /// node checks its docroot. Paths are taken relative to it (`/a` is `<docroot>/a`).
    pub docroot: Option<PathBuf>,
    /// IAM and the bucket.
    pub cos: CosSettings,
    /// Serve HTTPS with a built-in self-signed certificate for `127.0.0.1` and `localhost`
    /// (see [`CERTIFICATE_PEM`]). Default `false`.
    pub tls: bool,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            node_user: NODE_USER.into(),
            node_password: NODE_PASSWORD.into(),
            bearer_token: BEARER_TOKEN.into(),
            access_key: ACCESS_KEY.into(),
            upload_answers: vec![Answer::Normal],
            download_answers: vec![Answer::Normal],
            spec: SpecTemplate::default(),
            docroot: None,
            cos: CosSettings::default(),
            tls: false,
        }
    }
}

/// The certificate served with [`StandinConfig::tls`] (self-signed, for `127.0.0.1` and
/// `localhost`, valid until 2126): trust it to test verified TLS, or leave it untrusted to test
/// certificate errors.
pub const CERTIFICATE_PEM: &str = tls::CERTIFICATE_PEM;

/// What the stand-in remembers: the configuration, the scripts' positions, the log, and the
/// tokens it issued.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Mutex<StandinConfig>,
    pub(crate) base_url: String,
    pub(crate) log: Mutex<Vec<RecordedRequest>>,
    pub(crate) tokens: Mutex<Issued>,
}

/// Tokens handed out so far.
#[derive(Debug, Default)]
pub(crate) struct Issued {
    pub(crate) transfer: Vec<String>,
    pub(crate) iam_access: Vec<String>,
    pub(crate) delegated: Vec<String>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running stand-in. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct NodeStandin {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeStandin {
    /// Binds `127.0.0.1:0` and serves in the current tokio runtime (which must have the I/O and
    /// time drivers enabled).
    pub async fn start(config: StandinConfig) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` (a fixed port, for a stand-in a person starts by hand) and serves in the
    /// current tokio runtime.
    pub async fn start_on(addr: SocketAddr, config: StandinConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let scheme = if config.tls { "https" } else { "http" };
        let acceptor = if config.tls {
            Some(tls::acceptor()?)
        } else {
            None
        };
        let state = Arc::new(State {
            config: Mutex::new(config),
            base_url: format!("{scheme}://{addr}"),
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(Issued::default()),
        });
        let task = tokio::spawn(server::serve(listener, acceptor, state.clone()));
        Ok(NodeStandin { addr, state, task })
    }

    /// `http://127.0.0.1:<port>` (or `https://`), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The IAM token URL: `<base_url>/identity/token`.
    pub fn iam_url(&self) -> String {
        format!("{}/identity/token", self.base_url())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.log).clone()
    }

    /// How many requests went to `path` (without the query: `/files/upload_setup`,
    /// `/identity/token`, `/<bucket>`).
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Transfer tokens handed out in specs, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state.tokens).transfer.clone()
    }

    /// Delegated refresh tokens IAM handed out, in order.
    pub fn issued_delegated_tokens(&self) -> Vec<String> {
        lock(&self.state.tokens).delegated.clone()
    }

    /// Changes the configuration of the running server (scripts restart from their first
    /// answer only if the log is cleared too).
    pub fn reconfigure(&self, change: impl FnOnce(&mut StandinConfig)) {
        change(&mut lock(&self.state.config));
    }

    /// Forgets the recorded requests (and so restarts the scripts).
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }
}

impl Drop for NodeStandin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
