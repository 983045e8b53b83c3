//! A client of IBM Aspera's node API: ask a transfer server for a transfer spec, instead of
//! writing one by hand.
//!
//! An application does not invent the host, ports, user and token of an Aspera transfer: it
//! asks the server's node API (`POST /files/upload_setup` or `/files/download_setup`), which
//! answers with a [`TransferSpec`] holding all of them, including a token bound to that user and
//! direction and whether HTTP fallback is on. This crate makes that call and hands back typed
//! results; `fasp-spec` turns a spec into an ascp command line, `fasp-manager` runs it.
//!
//! # Node API
//!
//! [`NodeClient`] talks to one node API base URL, authenticated with a node user and password
//! (HTTP basic, [`NodeClientBuilder::basic_auth`]) or a bearer token plus the
//! `X-Aspera-AccessKey` header ([`NodeClientBuilder::bearer_auth`]).
//! [`NodeClient::upload_setup`] and [`NodeClient::download_setup`] send one or more
//! [`TransferRequest`]s (`{"transfer_requests": [{"transfer_request": {"paths": [...]}}]}`) and
//! return **one result per request**: a spec, or the error the node gave for that request.
//!
//! Nodes report refusals inside an HTTP 200: an element `{"error": {"code", "reason",
//! "user_message"}}` of `transfer_specs`, or an `error` inside a `transfer_spec`. Both become
//! [`Error::Node`]; a spec that carries an error is never returned as a spec.
//!
//! # Node answers are hostile input
//!
//! An answer is bounded before it is parsed: its body is read in chunks up to
//! [`ClientConfig::max_body_bytes`] (4 MiB by default; [`Error::AnswerTooLarge`] past it), and
//! an answer listing more specs than requests were sent is refused at the first extra element,
//! before it is read ([`Error::TooManySpecs`]). Each spec then keeps only the keys a node may
//! set (fasp-spec's [`node_may_set`](fasp_spec::node_may_set): host, ports, user, token,
//! cookie, tags, rates and policy with their caps and locks, cipher, HTTP fallback, its own
//! side's paths). Local-side keys (`remove_after_transfer`, `delete_before_transfer`,
//! `ssh_private_key_path`, `file_manifest_path`, `proxy`, the local paths, ...) are dropped:
//! [`NodeClient::upload_setup_detailed`] and [`NodeClient::download_setup_detailed`] name them
//! in [`NodeSpec::dropped_keys`] so that a tool can warn; the plain calls drop them with a
//! `tracing` warning.
//!
//! A node's spec describes its own side only: an upload answer names the destination folder
//! but no source, so it does not validate yet. [`prepare_upload`] adds the local sources and
//! [`prepare_download`] the local destination, giving a spec ready to render.
//!
//! # Errors, retries, timeouts, TLS
//!
//! [`Error`] says what happened: [`Error::Unreachable`] (nothing to connect to),
//! [`Error::ConnectionLost`], [`Error::Tls`], [`Error::Timeout`], [`Error::Http`] (a status
//! with the message of the body), [`Error::MalformedJson`] (with the path of the bad element,
//! like `transfer_specs[0].transfer_spec`), [`Error::InvalidSpec`], [`Error::Node`].
//!
//! Connection failures, HTTP 429 and 5xx are retried with exponential backoff, as far as the
//! [`RetryPolicy`] allows (3 retries from 500 ms by default; `Retry-After` is honoured); nothing
//! else is: a 401 is final at once, and a timeout is not repeated (the server may still be
//! working). The timeout of an attempt and of connecting are set in [`ClientConfig`]. TLS
//! certificates are verified against the Mozilla roots (rustls, `webpki-roots`), plus the
//! certificates of PEM files given with [`NodeClientBuilder::add_root_certificate_pem`] (a
//! private CA or a lab node's self-signed certificate; [`Error::Certificate`] names a file that
//! cannot be used); the opt-out for lab servers is called
//! [`ClientConfig::danger_accept_invalid_certs`] on purpose. Redirects are not followed, so
//! credentials reach only the URL they were given for. [`NodeClient::sends_credentials_in_clear`]
//! tells whether credentials would go over plain `http://`; each such call also emits a
//! `tracing` warning.
//!
//! # IBM Cloud Object Storage
//!
//! A COS bucket's transfer service needs four calls, which [`CosClient`] makes from an API key
//! and the bucket's endpoint: an IAM access token for the API key; the bucket's
//! `?faspConnectionInfo` (XML: an access key id and secret, and the ATS endpoint); a delegated
//! refresh token for `aspera_ats`; then `upload_setup` / `download_setup` on the ATS endpoint
//! with the access key as basic authentication and the header
//! `X-Aspera-Storage-Credentials: {"type":"token","token":{"delegated_refresh_token":"..."}}`.
//! Tokens are cached until shortly before they expire. Every URL ([`CosConfig::iam_url`], the
//! endpoint, [`CosConfig::ats_endpoint`]) can be set, so tests run against local servers.
//!
//! # Secrets
//!
//! Passwords, bearer tokens, API keys, access key secrets and IAM tokens are held as
//! [`Secret`], whose `Debug` and `Display` print `<redacted>`; header values carrying them are
//! marked sensitive. No `Debug` or `Display` of this crate's types shows one, errors included.
//! Secrets, answer bodies (which hold the transfer token) and authorization values are wiped
//! (`zeroize`) when dropped. The specs returned hold the transfer token as a `Secret` too.
//!
//! # Logging
//!
//! The crate emits `tracing` events (and installs no subscriber): each request with its URL
//! and attempt (DEBUG), each answer's status, length and time (DEBUG), retries with their wait
//! and reason (WARN), credentials over plain http and keys dropped from a node answer, by name
//! (WARN). No event carries a token, password, API key, authorization header or setup answer
//! body; a test captures everything at TRACE level during whole setup calls and finds none.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use fasp_spec::RenderOptions;
//! use fasp_token::{NodeClient, TransferRequest, prepare_upload};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let node = NodeClient::builder("https://node.example.com:9092")
//!     .basic_auth("node_user", std::env::var("NODE_PASSWORD")?)
//!     .timeout(Duration::from_secs(20))
//!     .build()?;
//!
//! // One request, so one result; several requests give one result each, in order.
//! let answer = node
//!     .upload_setup_one(&TransferRequest::upload_to(["/incoming"]))
//!     .await?;
//! let spec = prepare_upload(answer, ["report.pdf"])?;
//! let command = spec.render(&RenderOptions::new())?;
//! println!("{:?}", command.args); // the token is in command.env only
//! # Ok(())
//! # }
//! ```
//!
//! Per-request results, and a node error inside an HTTP 200:
//!
//! ```no_run
//! # async fn run(node: fasp_token::NodeClient) -> Result<(), fasp_token::Error> {
//! use fasp_token::{Error, TransferRequest};
//!
//! let results = node
//!     .download_setup(&[
//!         TransferRequest::download_from(["/outgoing/a.bin"]),
//!         TransferRequest::download_from(["/outgoing/missing.bin"]),
//!     ])
//!     .await?;
//! for result in results {
//!     match result {
//!         Ok(spec) => println!("spec for {:?}", spec.remote_host),
//!         Err(Error::Node(e)) => println!("refused: {e}"), // node error 404: Not found: ...
//!         Err(other) => println!("unusable answer: {other}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! IBM COS:
//!
//! ```no_run
//! # async fn run() -> Result<(), fasp_token::Error> {
//! use fasp_token::{CosClient, CosConfig, TransferRequest};
//!
//! let cos = CosClient::new(CosConfig::new(
//!     std::env::var("IBMCLOUD_API_KEY").unwrap_or_default(),
//!     "https://s3.us-south.cloud-object-storage.appdomain.cloud",
//!     "my-bucket",
//! ))?;
//! let results = cos.upload_setup(&[TransferRequest::upload_to(["/"])]).await?;
//! # let _ = results;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

// The README's example, compiled as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod answer;
mod client;
mod cos;
mod error;
mod http;
mod prepare;
mod xml;

pub use client::{ACCESS_KEY_HEADER, Auth, NodeClient, NodeClientBuilder, TransferRequest};
pub use cos::{
    ATS_RECEIVER_CLIENT_ID, CosClient, CosConfig, FaspConnectionInfo, IAM_APIKEY_GRANT_TYPE,
    IBM_IAM_TOKEN_URL, STORAGE_CREDENTIALS_HEADER,
};
pub use error::Error;
pub use fasp_spec::{NodeError, NodeSpec, Secret, TransferSpec};
pub use http::{ClientConfig, DEFAULT_MAX_BODY_BYTES, RetryPolicy};
pub use prepare::{prepare_download, prepare_upload};
