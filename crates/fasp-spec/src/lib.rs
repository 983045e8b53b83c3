//! Aspera transfer specs and their rendering into `ascp` invocations.
//!
//! A *transfer spec* is the JSON object that IBM Aspera's node API hands out when a client asks
//! to upload or download (`upload_setup`, `download_setup`): server, user, ports, token, rate
//! policy, cipher, the paths, and dozens of optional settings. This crate reads such objects
//! (or builds them), checks them, and turns them into what the `ascp` client needs: an argument
//! vector, a few environment variables, and sometimes a file list. It does no network I/O and
//! spawns no process; `fasp-manager` does that with the [`AscpCommand`] it gets from here.
//!
//! # Reading
//!
//! [`TransferSpec`] has one `Option` field per known key and keeps every unknown key in
//! [`TransferSpec::extra`], so a spec survives a read-write round trip unchanged and nothing is
//! lost silently ([`TransferSpec::unknown_keys`] lists what was not understood). Node answers
//! come wrapped, `{"transfer_specs": [{"transfer_spec": {...}}, {"error": {...}}]}`:
//! [`TransferSpec::from_node_response`] returns one result per element, a node error being a
//! [`SpecError::Node`], never a spec. Real nodes send ports as numbers or numeric strings;
//! both are accepted, negative numbers are not.
//!
//! Key order is this crate's own: unknown keys, the paths' unknown keys and `tags` are
//! [`JsonMap`]s (an [`indexmap::IndexMap`] of [`JsonValue`], ordered at every depth), so a spec
//! read from text ([`TransferSpec::from_json`]) writes back ([`serde::Serialize`],
//! [`TransferSpec::to_json`]) and renders its `--tags` in the same order whatever features
//! `serde_json` is built with; this crate does not need serde_json's `preserve_order`, and
//! does not turn it on for you. (A `serde_json::Value`, as taken by
//! [`TransferSpec::from_json_value`] or given by [`TransferSpec::to_json_value`], is ordered
//! only in builds that turn the feature on.)
//!
//! # Node answers are hostile input
//!
//! A node's answer comes from outside the machine and must not steer the local side.
//! [`NodeAnswerReader`] reads it with a bound on the number of specs (the element after the
//! last allowed one is refused before it is read: [`SpecError::TooManySpecs`]) and restricts
//! each spec to the keys a node may set ([`node_may_set`]: [`NODE_ANSWER_KEYS`], plus its own
//! side's paths, `destination_root` and `paths[].destination` for an upload, `source_root` and
//! `paths[].source` for a download). Every other known key (`remove_after_transfer`,
//! `delete_before_transfer`, `ssh_private_key_path`, `file_manifest_path`, `proxy`, ...) is
//! dropped before its value is read, and named in [`NodeSpec::dropped_keys`] so that a tool can
//! warn: such settings can only come from the user. Unknown keys are kept in
//! [`TransferSpec::extra`], which is never rendered.
//!
//! ```
//! use fasp_spec::{Direction, NodeAnswerReader, RenderOptions, TransferPath};
//!
//! let answer = r#"{"transfer_specs": [{"transfer_spec": {
//!     "direction": "send", "remote_host": "ats.example.com", "token": "ATM3_x",
//!     "destination_root": "/incoming",
//!     "remove_after_transfer": true, "ssh_private_key_path": "/etc/shadow"}}]}"#;
//! let mut results = NodeAnswerReader::new(Direction::Send).with_max_specs(1).read(answer)?;
//! let node = results.remove(0)?;
//! assert_eq!(node.dropped_keys, ["remove_after_transfer", "ssh_private_key_path"]);
//! let mut spec = node.spec;
//! spec.paths = vec![TransferPath::new("report.pdf")];
//! let command = spec.render(&RenderOptions::new())?;
//! assert!(!command.args.iter().any(|a| a == "--remove-after-transfer" || a == "-i"));
//! # Ok::<(), fasp_spec::SpecError>(())
//! ```
//!
//! # Checking
//!
//! [`TransferSpec::validate`] applies the rules that would otherwise surface as an ascp exit
//! status or, worse, as a transfer doing something else than intended: a line break in a token
//! (ascp refuses it), a cookie with a carriage return (ascp silently truncates it), a minimum
//! rate above the target, a policy the server does not allow, a destination on only some
//! paths, and so on. Every [`SpecError`] names the key and the bad value, except that secret
//! values are redacted.
//!
//! # Rendering
//!
//! [`TransferSpec::render`] validates, then maps each key to ascp 3.9's options. Secrets
//! (token, cookie, SSH password or key passphrase, key content, content-protection passphrase,
//! proxy password) go only into [`AscpCommand::env`], held as [`Secret`]s whose `Debug` and
//! `Display` print `<redacted>` and whose memory is wiped on drop; the token is never passed
//! with `-W`, which `ps` would show. A proxy URL's user info runs to its last `@` (so a
//! password may hold `#`, `/`, `?`, `@` or `:`, percent-encoded or not); only the URL without
//! the password goes on argv, and errors show it as `user:<redacted>@host`.
//! Positional paths always follow `--`, so a file named `-x` cannot be taken for an option.
//! Several paths are written to a `--file-list` or `--file-pair-list` in the caller's work
//! folder, mode 0600. Every option rendered was checked against the real ascp 3.9.0 binary; the
//! mapping and what ascp echoes for it are in `docs/transfer-spec.md`.
//!
//! # Example
//!
//! ```
//! use fasp_spec::{RatePolicy, RenderOptions, TransferSpec};
//!
//! let spec = TransferSpec::builder()
//!     .upload()
//!     .host("ats.example.com")
//!     .user("xfer")
//!     .ssh_port(33001)
//!     .token("ATM3_do-not-print-me")
//!     .source("/home/me/report.pdf")
//!     .destination_root("/incoming")
//!     .rate_policy(RatePolicy::Fair)
//!     .target_rate_kbps(50_000)
//!     .build()?;
//!
//! let command = spec.render(&RenderOptions::new())?;
//! let args: Vec<_> = command.args.iter().map(|a| a.to_str().unwrap()).collect();
//! assert_eq!(
//!     args,
//!     [
//!         "--mode=send", "--user=xfer", "--host=ats.example.com", "-P", "33001",
//!         "--policy=fair", "-l", "50000", "--", "/home/me/report.pdf", "/incoming",
//!     ]
//! );
//! // The token is in the environment only, and never printed.
//! assert_eq!(command.env["ASPERA_SCP_TOKEN"].expose(), "ATM3_do-not-print-me");
//! assert!(!format!("{command:?}").contains("do-not-print-me"));
//! # Ok::<(), fasp_spec::SpecError>(())
//! ```
//!
//! Reading a node answer:
//!
//! ```
//! use fasp_spec::{SpecError, TransferSpec};
//!
//! let answer = r#"{"transfer_specs": [
//!     {"transfer_spec": {"remote_host": "ats.example.com", "ssh_port": "33001",
//!                        "paths": [{"destination": "/"}], "token": "ATM3_x"}},
//!     {"error": {"code": 403, "reason": "Forbidden", "user_message": "No access"}}
//! ]}"#;
//! let results = TransferSpec::from_node_response(answer)?;
//! assert_eq!(results[0].as_ref().unwrap().ssh_port, Some(33001));
//! assert!(matches!(&results[1], Err(SpecError::Node(e)) if e.code == Some(403)));
//! # Ok::<(), fasp_spec::SpecError>(())
//! ```

#![forbid(unsafe_code)]

// The README's example, compiled and run as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod builder;
mod error;
mod json;
mod node;
mod proxy;
mod render;
mod retry;
mod secret;
mod spec;
mod validate;
mod values;

pub use builder::TransferSpecBuilder;
pub use error::{NodeError, SpecError};
/// The ordered map of [`JsonMap`], re-exported so that its type and methods need no dependency
/// of their own.
pub use indexmap;
pub use json::{JsonMap, JsonValue};
pub use node::{
    DEFAULT_MAX_NODE_SPECS, NODE_ANSWER_KEYS, NodeAnswer, NodeAnswerError, NodeAnswerReader,
    NodeSpec, node_may_set,
};
pub use render::{
    ASPERA_PROXY_PASS, ASPERA_SCP_COOKIE, ASPERA_SCP_FILEPASS, ASPERA_SCP_KEY, ASPERA_SCP_PASS,
    ASPERA_SCP_TOKEN, AscpCommand, FileListKind, GeneratedFile, MAX_MULTI_SESSION_PARTS,
    RenderOptions, TagsEncoding,
};
pub use retry::RetryPolicy;
pub use secret::{REDACTED, Secret};
pub use spec::{TransferPath, TransferSpec};
pub use validate::{MAX_RATE_KBPS, MAX_TAGS_BYTES, MIN_DGRAM_SIZE};
pub use values::{
    Cipher, ContentProtection, Direction, FallbackProtocol, FileChecksum, FileManifest,
    HttpFallback, OverwritePolicy, PreserveMode, RatePolicy, ResumePolicy, SymlinkPolicy,
};
