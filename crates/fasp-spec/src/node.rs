//! Node API answers: `{"transfer_specs": [{"transfer_spec": {...}} | {"error": {...}}, ...]}`.

use std::cell::Cell;
use std::fmt;

use crate::json::{JsonMap, JsonValue};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{NodeError, SpecError};
use crate::spec::{ALIASES, TransferSpec, is_node_error};
use crate::values::Direction;

/// One result per element of `transfer_specs`; the outer error for an answer that is not of
/// that shape (or is a node error as a whole).
pub(crate) fn specs_from_answer(
    answer: JsonValue,
) -> Result<Vec<Result<TransferSpec, SpecError>>, SpecError> {
    let JsonValue::Object(mut answer) = answer else {
        return Err(SpecError::Json {
            line: 0,
            column: 0,
            message: "expected a JSON object (a node answer with \"transfer_specs\")".into(),
        });
    };
    let elements = match answer.shift_remove("transfer_specs") {
        Some(JsonValue::Array(elements)) => elements,
        Some(other) => {
            return Err(SpecError::WrongType {
                key: "transfer_specs".into(),
                value: other.to_string(),
                expected: "an array",
            });
        }
        None if is_node_error(&answer) => {
            return Err(SpecError::Node(NodeError::from_json(&answer["error"])));
        }
        None => {
            return Err(SpecError::Missing {
                key: "transfer_specs".into(),
                reason: "a node answer lists its transfer specs there",
            });
        }
    };
    Ok(elements
        .into_iter()
        .enumerate()
        .map(|(i, element)| read_element(i, element))
        .collect())
}

fn read_element(index: usize, element: JsonValue) -> Result<TransferSpec, SpecError> {
    let JsonValue::Object(mut element) = element else {
        return Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}]"),
            value: element.to_string(),
            expected: "an object holding \"transfer_spec\" or \"error\"",
        });
    };
    // An error wins over a spec: a node that reports an error did not authorise anything.
    if is_node_error(&element) {
        return Err(SpecError::Node(NodeError::from_json(&element["error"])));
    }
    match element.shift_remove("transfer_spec") {
        Some(spec @ JsonValue::Object(_)) => TransferSpec::from_json_tree(spec),
        Some(other) => Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}].transfer_spec"),
            value: other.to_string(),
            expected: "an object",
        }),
        None => Err(SpecError::Missing {
            key: format!("transfer_specs[{index}].transfer_spec"),
            reason: "each element holds a transfer spec or an error",
        }),
    }
}

// --- the allow-list of node answers ---------------------------------------------------------

/// Keys a node's answer may set whatever the direction: where the server is and who to log in
/// as, the transfer token and cookie, tags, rates and policy with the server's caps and locks,
/// cipher, HTTP fallback, and descriptive keys that nothing renders.
///
/// Besides these, a node may set its own side's paths: `destination_root` and
/// `paths[].destination` in an upload answer, `source_root` and `paths[].source` in a download
/// answer (see [`NodeAnswerReader`]). Every other key this crate knows is the local side's
/// business and is dropped from node answers.
pub const NODE_ANSWER_KEYS: &[&str] = &[
    "direction",
    "remote_host",
    "remote_user",
    "ssh_port",
    "fasp_port",
    "fasp_url",
    "use_ascp4",
    "source_root_id",
    "destination_root_id",
    "token",
    "authentication",
    "cookie",
    "tags",
    "sshfp",
    "cipher",
    "rate_policy",
    "rate_policy_allowed",
    "target_rate_kbps",
    "min_rate_kbps",
    "target_rate_cap_kbps",
    "min_rate_cap_kbps",
    "lock_rate_policy",
    "lock_target_rate",
    "lock_min_rate",
    "http_fallback",
    "http_fallback_port",
    "https_fallback_port",
    "http_fallback_protocol",
];

/// Whether a node answer for a transfer in `direction` may set the top-level `key`.
///
/// `true` for [`NODE_ANSWER_KEYS`], for `paths` (whose members are filtered separately), for
/// `destination_root` in an upload (`send`) and `source_root` in a download (`receive`), and
/// for keys this crate does not know (they are kept in [`TransferSpec::extra`] and never
/// rendered). `false` for every other known key (and its aliases): `remove_after_transfer`,
/// `ssh_private_key_path`, `file_manifest_path`, `proxy`, ...
///
/// ```
/// use fasp_spec::{Direction, node_may_set};
///
/// assert!(node_may_set("token", Direction::Send));
/// assert!(node_may_set("destination_root", Direction::Send));
/// assert!(!node_may_set("destination_root", Direction::Receive));
/// assert!(!node_may_set("remove_after_transfer", Direction::Send));
/// assert!(!node_may_set("ssh_private_key_path", Direction::Receive));
/// ```
pub fn node_may_set(key: &str, direction: Direction) -> bool {
    match key {
        "paths" => true,
        "destination_root" => direction == Direction::Send,
        "source_root" => direction == Direction::Receive,
        _ if NODE_ANSWER_KEYS.contains(&key) => true,
        _ => {
            !TransferSpec::KNOWN_KEYS.contains(&key)
                && !ALIASES.iter().any(|(alias, _)| *alias == key)
        }
    }
}

/// Whether a value asks for nothing (`null`, `false`, `""`): such local-side keys are removed
/// without being reported (real nodes send `"source_root": ""` with every upload answer).
fn asks_for_nothing(value: &JsonValue) -> bool {
    matches!(value, JsonValue::Null | JsonValue::Bool(false)) || value.as_str() == Some("")
}

/// Removes from one `transfer_spec` object the keys a node may not set, and returns the names
/// of those that asked for something, in the answer's order (`paths[].source` once for all
/// paths).
pub(crate) fn restrict_map(map: &mut JsonMap, direction: Direction) -> Vec<String> {
    let mut dropped = Vec::new();
    map.retain(|key, value| {
        let keep = node_may_set(key, direction);
        if !keep && !asks_for_nothing(value) {
            dropped.push(key.clone());
        }
        keep
    });
    if let Some(JsonValue::Array(paths)) = map.get_mut("paths") {
        let local = match direction {
            Direction::Send => "source",
            Direction::Receive => "destination",
        };
        let mut reported = false;
        for path in paths.iter_mut() {
            let JsonValue::Object(path) = path else {
                continue;
            };
            let Some(value) = path.shift_remove(local) else {
                continue;
            };
            // Download answers echo each source's own name as its destination: nothing asked.
            let echo = direction == Direction::Receive
                && value.as_str().is_some_and(|destination| {
                    path.get("source")
                        .and_then(JsonValue::as_str)
                        .is_some_and(|source| source.rsplit('/').next() == Some(destination))
                });
            if !reported && !echo && !asks_for_nothing(&value) {
                dropped.push(format!("paths[].{local}"));
                reported = true;
            }
        }
    }
    dropped
}

/// A transfer spec read from a node's answer, restricted to what a node may set.
///
/// `dropped_keys` names the keys the node tried to set and that were removed (never their
/// values): show them to the user as a warning. Local-side settings such as
/// `remove_after_transfer` can only come from the user.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NodeSpec {
    /// The spec, without the keys a node may not set.
    pub spec: TransferSpec,
    /// The keys removed from the node's answer because a node may not set them
    /// (`remove_after_transfer`, `paths[].source`, ...), in the answer's order. Keys whose value
    /// asked for nothing (`null`, `false`, `""`) are removed without being listed.
    pub dropped_keys: Vec<String>,
}

impl NodeSpec {
    /// The spec, dropping the list of removed keys.
    pub fn into_spec(self) -> TransferSpec {
        self.spec
    }
}

impl TransferSpec {
    /// Removes the keys a node answer for a transfer in `direction` may not set (see
    /// [`node_may_set`]) and returns their names, in the order of the spec's serialisation
    /// (as [`NodeSpec::dropped_keys`], values asking for nothing not listed). For a spec that came from a node some other
    /// way (a saved answer): [`NodeAnswerReader`] does this while reading.
    ///
    /// ```
    /// use fasp_spec::{Direction, TransferSpec};
    ///
    /// let mut spec = TransferSpec::from_json(r#"{"remote_host": "h", "token": "t",
    ///     "remove_after_transfer": true, "ssh_private_key_path": "/etc/shadow"}"#)?;
    /// let dropped = spec.restrict_to_node_keys(Direction::Send);
    /// assert_eq!(dropped, ["ssh_private_key_path", "remove_after_transfer"]);
    /// assert_eq!(spec.remove_after_transfer, None);
    /// assert_eq!(spec.remote_host.as_deref(), Some("h"));
    /// # Ok::<(), fasp_spec::SpecError>(())
    /// ```
    pub fn restrict_to_node_keys(&mut self, direction: Direction) -> Vec<String> {
        let JsonValue::Object(mut map) = self.to_json() else {
            return Vec::new();
        };
        let dropped = restrict_map(&mut map, direction);
        // A subset of a spec's own serialisation reads back; should it not, an empty spec
        // (which renders nothing) is the safe outcome.
        *self = TransferSpec::from_fields(map).unwrap_or_default();
        dropped
    }
}

/// Default of [`NodeAnswerReader::with_max_specs`].
pub const DEFAULT_MAX_NODE_SPECS: usize = 1000;

/// Reads node answers (`upload_setup` / `download_setup` bodies) as the hostile input they
/// are: at most `max_specs` elements in `transfer_specs` (the next one is refused before it is
/// read, [`SpecError::TooManySpecs`]), members other than `transfer_specs` and `error` skipped
/// without being kept, and each spec restricted to the keys a node may set
/// ([`node_may_set`]) before its values are even read.
///
/// ```
/// use fasp_spec::{Direction, NodeAnswerReader, SpecError};
///
/// let answer = r#"{"transfer_specs": [{"transfer_spec": {
///     "remote_host": "ats.example.com", "token": "ATM3_x", "destination_root": "/",
///     "paths": [{"destination": "/incoming"}],
///     "remove_after_transfer": true, "ssh_private_key_path": "/etc/shadow"}}]}"#;
/// let reader = NodeAnswerReader::new(Direction::Send).with_max_specs(1);
/// let results = reader.read(answer)?;
/// let node = results.into_iter().next().unwrap()?;
/// assert_eq!(node.dropped_keys, ["remove_after_transfer", "ssh_private_key_path"]);
/// assert_eq!(node.spec.ssh_private_key_path, None);
///
/// let two = r#"{"transfer_specs": [{"transfer_spec": {}}, {"transfer_spec": {}}]}"#;
/// assert!(matches!(reader.read(two), Err(SpecError::TooManySpecs { max: 1 })));
/// # Ok::<(), SpecError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NodeAnswerReader {
    direction: Direction,
    max_specs: usize,
    exceeded: Cell<bool>,
}

/// The outer shape of a node answer, read by [`NodeAnswerReader::read_from`]; turn it into
/// specs with [`NodeAnswer::into_specs`].
#[derive(Debug)]
pub struct NodeAnswer {
    direction: Direction,
    specs: Option<Vec<JsonValue>>,
    error: Option<JsonValue>,
}

/// Why [`NodeAnswerReader::read_from`] failed: too many specs, or the deserializer's own error
/// (JSON syntax, a `transfer_specs` that is not an array).
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeAnswerError<E> {
    /// More elements than allowed ([`SpecError::TooManySpecs`]).
    TooManySpecs {
        /// The most elements allowed.
        max: usize,
    },
    /// The deserializer's error.
    Syntax(E),
}

impl NodeAnswerReader {
    /// A reader of answers for transfers in `direction` (`Send` for `upload_setup`), allowing
    /// [`DEFAULT_MAX_NODE_SPECS`] elements.
    pub fn new(direction: Direction) -> Self {
        NodeAnswerReader {
            direction,
            max_specs: DEFAULT_MAX_NODE_SPECS,
            exceeded: Cell::new(false),
        }
    }

    /// Allows at most `max` elements in `transfer_specs`: a client that sent `n` transfer
    /// requests expects `n` answers and should allow no more.
    pub fn with_max_specs(mut self, max: usize) -> Self {
        self.max_specs = max;
        self
    }

    /// The direction the answers are read for.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The most elements allowed.
    pub fn max_specs(&self) -> usize {
        self.max_specs
    }

    /// Reads an answer from JSON text: the outer error for text that is not JSON
    /// ([`SpecError::Json`]), too many elements ([`SpecError::TooManySpecs`]), an answer without
    /// `transfer_specs` ([`SpecError::Missing`]) or a node error as the whole answer
    /// ([`SpecError::Node`]); then one result per element, as
    /// [`TransferSpec::from_node_response`] gives, each spec restricted.
    pub fn read(&self, text: &str) -> Result<Vec<Result<NodeSpec, SpecError>>, SpecError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let answer = self.read_from(&mut deserializer).map_err(|e| match e {
            NodeAnswerError::TooManySpecs { max } => SpecError::TooManySpecs { max },
            NodeAnswerError::Syntax(e) => SpecError::json(&e),
        })?;
        deserializer.end().map_err(|e| SpecError::json(&e))?;
        answer.into_specs()
    }

    /// Reads the outer shape of an answer from any serde deserializer (for callers that track
    /// the path of a syntax error, with `serde_path_to_error` for example). Only the elements
    /// of `transfer_specs` (at most `max_specs`) and a top-level `error` are kept.
    pub fn read_from<'de, D: Deserializer<'de>>(
        &self,
        deserializer: D,
    ) -> Result<NodeAnswer, NodeAnswerError<D::Error>> {
        self.exceeded.set(false);
        match deserializer.deserialize_map(AnswerVisitor { reader: self }) {
            Ok((specs, error)) => Ok(NodeAnswer {
                direction: self.direction,
                specs,
                error,
            }),
            Err(_) if self.exceeded.get() => Err(NodeAnswerError::TooManySpecs {
                max: self.max_specs,
            }),
            Err(e) => Err(NodeAnswerError::Syntax(e)),
        }
    }
}

impl NodeAnswer {
    /// The number of elements of `transfer_specs` (0 when absent).
    pub fn len(&self) -> usize {
        self.specs.as_ref().map_or(0, Vec::len)
    }

    /// Whether `transfer_specs` is absent or empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One result per element, in order, each spec restricted to what a node may set. The
    /// outer error: no `transfer_specs` (a whole-answer node error, [`SpecError::Node`], or
    /// [`SpecError::Missing`]).
    pub fn into_specs(self) -> Result<Vec<Result<NodeSpec, SpecError>>, SpecError> {
        let direction = self.direction;
        let Some(elements) = self.specs else {
            return Err(match self.error {
                Some(error @ JsonValue::Object(_)) => SpecError::Node(NodeError::from_json(&error)),
                _ => SpecError::Missing {
                    key: "transfer_specs".into(),
                    reason: "a node answer lists its transfer specs there",
                },
            });
        };
        Ok(elements
            .into_iter()
            .enumerate()
            .map(|(i, element)| read_node_element(i, element, direction))
            .collect())
    }
}

fn read_node_element(
    index: usize,
    element: JsonValue,
    direction: Direction,
) -> Result<NodeSpec, SpecError> {
    let JsonValue::Object(mut element) = element else {
        return Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}]"),
            value: element.kind().into(),
            expected: "an object holding \"transfer_spec\" or \"error\"",
        });
    };
    if is_node_error(&element) {
        return Err(SpecError::Node(NodeError::from_json(&element["error"])));
    }
    match element.shift_remove("transfer_spec") {
        Some(JsonValue::Object(mut spec)) => {
            // A node may put its error inside the spec: it authorised nothing.
            if is_node_error(&spec) {
                return Err(SpecError::Node(NodeError::from_json(&spec["error"])));
            }
            let dropped_keys = restrict_map(&mut spec, direction);
            let spec = TransferSpec::from_fields(spec)?;
            Ok(NodeSpec { spec, dropped_keys })
        }
        Some(other) => Err(SpecError::WrongType {
            key: format!("transfer_specs[{index}].transfer_spec"),
            value: other.kind().into(),
            expected: "an object",
        }),
        None => Err(SpecError::Missing {
            key: format!("transfer_specs[{index}].transfer_spec"),
            reason: "each element holds a transfer spec or an error",
        }),
    }
}

struct AnswerVisitor<'a> {
    reader: &'a NodeAnswerReader,
}

impl<'de> Visitor<'de> for AnswerVisitor<'_> {
    type Value = (Option<Vec<JsonValue>>, Option<JsonValue>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node answer, {\"transfer_specs\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut specs = None;
        let mut error = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "transfer_specs" if specs.is_some() => {
                    return Err(de::Error::duplicate_field("transfer_specs"));
                }
                "transfer_specs" => {
                    specs = Some(map.next_value_seed(SpecsSeed {
                        reader: self.reader,
                    })?);
                }
                "error" if error.is_some() => return Err(de::Error::duplicate_field("error")),
                "error" => error = Some(map.next_value::<JsonValue>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((specs, error))
    }
}

struct SpecsSeed<'a> {
    reader: &'a NodeAnswerReader,
}

impl<'de> DeserializeSeed<'de> for SpecsSeed<'_> {
    type Value = Vec<JsonValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SpecsSeed<'_> {
    type Value = Vec<JsonValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an array of transfer specs (at most {})",
            self.reader.max_specs
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let max = self.reader.max_specs;
        let mut elements = Vec::with_capacity(max.min(16));
        loop {
            if elements.len() == max {
                // One more element is an error: refuse it before reading it.
                return match seq.next_element_seed(Refuse { max }) {
                    Ok(None) => Ok(elements),
                    Ok(Some(never)) => match never {},
                    Err(e) => {
                        self.reader.exceeded.set(true);
                        Err(e)
                    }
                };
            }
            match seq.next_element::<JsonValue>()? {
                Some(element) => elements.push(element),
                None => return Ok(elements),
            }
        }
    }
}

/// A seed that fails as soon as it is asked to read anything.
struct Refuse {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for Refuse {
    type Value = std::convert::Infallible;

    fn deserialize<D: Deserializer<'de>>(self, _deserializer: D) -> Result<Self::Value, D::Error> {
        Err(de::Error::custom(format!(
            "more than {} element{} in transfer_specs",
            self.max,
            if self.max == 1 { "" } else { "s" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn elements_in_order_with_errors_inside() {
        let answer = json!({"transfer_specs": [
            {"transfer_spec": {"remote_host": "a"}},
            {"error": {"code": 404, "reason": "Not found", "user_message": "Path does not exist"}},
            {"transfer_spec": {"rate_policy": "turbo"}},
            7,
            {}
        ]});
        let results = specs_from_answer(answer.into()).unwrap();
        assert_eq!(results.len(), 5);
        assert_eq!(
            results[0].as_ref().unwrap().remote_host.as_deref(),
            Some("a")
        );
        match &results[1] {
            Err(SpecError::Node(node)) => {
                assert_eq!(node.code, Some(404));
                assert_eq!(node.user_message.as_deref(), Some("Path does not exist"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results[2].as_ref().unwrap_err().key(), Some("rate_policy"));
        assert_eq!(
            results[3].as_ref().unwrap_err().key(),
            Some("transfer_specs[3]")
        );
        assert_eq!(
            results[4].as_ref().unwrap_err().key(),
            Some("transfer_specs[4].transfer_spec")
        );
    }

    #[test]
    fn whole_answer_errors() {
        let err =
            specs_from_answer(json!({"error": {"code": 401, "reason": "Unauthorized"}}).into())
                .unwrap_err();
        assert!(matches!(err, SpecError::Node(_)));
        assert_eq!(err.to_string(), "node error 401: Unauthorized");
        let err = specs_from_answer(json!({"specs": []}).into()).unwrap_err();
        assert_eq!(err.key(), Some("transfer_specs"));
        let err = specs_from_answer(json!({"transfer_specs": {}}).into()).unwrap_err();
        assert!(matches!(err, SpecError::WrongType { .. }));
    }

    /// A value of the right type for every known key.
    fn sample(key: &str) -> Value {
        match key {
            "paths" => json!([{"source": "/etc/passwd", "destination": "/in"}]),
            "direction" => json!("send"),
            "cipher" => json!("aes-128"),
            "rate_policy" | "rate_policy_allowed" => json!("fair"),
            "http_fallback" => json!(true),
            "http_fallback_protocol" => json!("https"),
            "resume_policy" => json!("sparse_csum"),
            "overwrite" => json!("always"),
            "symlink_policy" => json!("follow"),
            "file_checksum" => json!("md5"),
            "content_protection" => json!("encrypt"),
            "file_manifest" => json!("text"),
            "tags" => json!({"a": 1}),
            k if k.starts_with("preserve_") && k.ends_with("acls") => json!("native"),
            k if k.starts_with("preserve_") && k.ends_with("xattrs") => json!("native"),
            k if k.ends_with("_port") || k.ends_with("_kbps") || k == "dgram_size" => json!(1000),
            k if k.starts_with("exclude_") || k.starts_with("multi_session") => json!(2),
            "retry_duration" => json!(5),
            k if k.starts_with("preserve_")
                || k.starts_with("remove_")
                || k.starts_with("lock_")
                || matches!(
                    k,
                    "use_ascp4"
                        | "create_dir"
                        | "precalculate_job_size"
                        | "keepalive"
                        | "delete_before_transfer"
                        | "save_before_overwrite"
                        | "skip_special_files"
                        | "apply_local_docroot"
                ) =>
            {
                json!(true)
            }
            "proxy" => json!("dnat://u:p@h:1"),
            _ => json!("/etc/shadow"),
        }
    }

    fn every_key() -> JsonMap {
        TransferSpec::KNOWN_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), sample(k).into()))
            .collect()
    }

    #[test]
    fn every_known_key_is_classified_and_sampled() {
        // The sample spec reads: each known key got a value of its type.
        TransferSpec::from_fields(every_key()).unwrap();
        for key in NODE_ANSWER_KEYS {
            assert!(TransferSpec::KNOWN_KEYS.contains(key), "{key}");
        }
    }

    #[test]
    fn only_node_keys_survive_an_upload_answer() {
        let mut map = every_key();
        map.insert("mystery".into(), json!(1).into());
        map.insert("overwrite_policy".into(), json!("always").into());
        let dropped = restrict_map(&mut map, Direction::Send);
        let spec = TransferSpec::from_fields(map).unwrap();
        let kept: Vec<String> = spec
            .to_json()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut expected: Vec<&str> = vec!["paths"];
        expected.extend(
            TransferSpec::KNOWN_KEYS
                .iter()
                .filter(|k| NODE_ANSWER_KEYS.contains(k) || **k == "destination_root"),
        );
        expected.push("mystery");
        assert_eq!(kept, expected);
        assert_eq!(spec.paths[0].source, None);
        assert_eq!(spec.paths[0].destination.as_deref(), Some("/in"));
        for key in [
            "remove_after_transfer",
            "remove_empty_source_directory",
            "delete_before_transfer",
            "ssh_private_key_path",
            "ssh_private_key",
            "file_manifest_path",
            "source_root",
            "proxy",
            "overwrite_policy",
            "paths[].source",
        ] {
            assert!(dropped.iter().any(|d| d == key), "{key} not in {dropped:?}");
        }
        assert!(!dropped.iter().any(|d| d == "mystery" || d == "token"));
    }

    #[test]
    fn a_download_answer_keeps_the_remote_sources() {
        let mut map = every_key();
        let dropped = restrict_map(&mut map, Direction::Receive);
        let spec = TransferSpec::from_fields(map).unwrap();
        assert_eq!(spec.source_root.as_deref(), Some("/etc/shadow"));
        assert_eq!(spec.destination_root, None);
        assert_eq!(spec.paths[0].source.as_deref(), Some("/etc/passwd"));
        assert_eq!(spec.paths[0].destination, None);
        assert!(dropped.contains(&"destination_root".to_owned()));
        assert!(dropped.contains(&"paths[].destination".to_owned()));
        // The usual echo of the source's name is dropped silently.
        let mut echo = JsonValue::from(
            json!({"paths": [{"source": "/out/a.bin", "destination": "a.bin"},
                                          {"source": "b", "destination": "b"}],
                              "destination_root": ""}),
        )
        .as_object()
        .unwrap()
        .clone();
        assert_eq!(
            restrict_map(&mut echo, Direction::Receive),
            Vec::<String>::new()
        );
        assert_eq!(echo["paths"][0], json!({"source": "/out/a.bin"}));
    }

    #[test]
    fn values_asking_for_nothing_are_removed_silently() {
        let mut map = JsonValue::from(json!({"source_root": "", "remove_after_transfer": false,
                             "proxy": null, "create_dir": true}))
        .as_object()
        .unwrap()
        .clone();
        assert_eq!(restrict_map(&mut map, Direction::Send), ["create_dir"]);
        assert!(map.is_empty());
    }

    #[test]
    fn restrict_a_parsed_spec() {
        let mut spec = TransferSpec::from_fields(every_key()).unwrap();
        let dropped = spec.restrict_to_node_keys(Direction::Send);
        assert!(dropped.contains(&"remove_after_transfer".to_owned()));
        assert_eq!(spec.remove_after_transfer, None);
        assert_eq!(spec.ssh_private_key_path, None);
        assert_eq!(spec.token.as_ref().unwrap().expose(), "/etc/shadow");
        assert_eq!(
            spec.restrict_to_node_keys(Direction::Send),
            Vec::<String>::new()
        );
    }

    #[test]
    fn reader_results_per_element() {
        let reader = NodeAnswerReader::new(Direction::Send);
        let answer = r#"{"other": {"deep": [1, 2, {"x": null}]}, "transfer_specs": [
            {"transfer_spec": {"remote_host": "a", "remove_after_transfer": "maybe"}},
            {"error": {"code": 404, "reason": "Not found"}},
            {"transfer_spec": {"error": {"code": 403, "reason": "Forbidden"}, "remote_host": "h"}},
            {"transfer_spec": {"rate_policy": "turbo"}},
            7,
            {"transfer_spec": []},
            {}
        ]}"#;
        let results = reader.read(answer).unwrap();
        assert_eq!(results.len(), 7);
        let first = results[0].as_ref().unwrap();
        // A local-side key is dropped before its value is read: no error for "maybe".
        assert_eq!(first.dropped_keys, ["remove_after_transfer"]);
        assert!(matches!(&results[1], Err(SpecError::Node(e)) if e.code == Some(404)));
        assert!(matches!(&results[2], Err(SpecError::Node(e)) if e.code == Some(403)));
        assert_eq!(results[3].as_ref().unwrap_err().key(), Some("rate_policy"));
        assert_eq!(
            results[4].as_ref().unwrap_err().key(),
            Some("transfer_specs[4]")
        );
        assert_eq!(
            results[5].as_ref().unwrap_err().key(),
            Some("transfer_specs[5].transfer_spec")
        );
        assert_eq!(
            results[6].as_ref().unwrap_err().key(),
            Some("transfer_specs[6].transfer_spec")
        );
    }

    #[test]
    fn reader_whole_answer_errors() {
        let reader = NodeAnswerReader::new(Direction::Receive);
        let err = reader
            .read(r#"{"error": {"code": 401, "reason": "Unauthorized"}}"#)
            .unwrap_err();
        assert_eq!(err.to_string(), "node error 401: Unauthorized");
        assert_eq!(
            reader.read(r#"{"specs": []}"#).unwrap_err().key(),
            Some("transfer_specs")
        );
        for bad in [
            r#"{"transfer_specs": {}}"#,
            r#"[1]"#,
            r#"{"transfer_specs": [], "transfer_specs": []}"#,
            r#"{"transfer_specs": []} x"#,
            r#"{"transfer_specs": [{"transfer_spec": {"#,
        ] {
            assert!(
                matches!(reader.read(bad), Err(SpecError::Json { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn too_many_specs_are_refused_before_they_are_read() {
        let reader = NodeAnswerReader::new(Direction::Send).with_max_specs(2);
        let ok = r#"{"transfer_specs": [{"transfer_spec": {}}, {"transfer_spec": {}}]}"#;
        assert_eq!(reader.read(ok).unwrap().len(), 2);
        // The third element is not even valid JSON: refused before the parser gets there.
        let three = r#"{"transfer_specs": [{"transfer_spec": {}}, {"transfer_spec": {}}, {"#;
        let err = reader.read(three).unwrap_err();
        assert!(matches!(err, SpecError::TooManySpecs { max: 2 }), "{err}");
        assert_eq!(err.key(), Some("transfer_specs"));
        assert_eq!(
            err.to_string(),
            "node answer: more than 2 elements in \"transfer_specs\""
        );
        // The flag does not stick to the reader.
        assert_eq!(reader.read(ok).unwrap().len(), 2);
        let zero = NodeAnswerReader::new(Direction::Send).with_max_specs(0);
        assert_eq!(zero.read(r#"{"transfer_specs": []}"#).unwrap().len(), 0);
        assert!(matches!(
            zero.read(r#"{"transfer_specs": [1]}"#),
            Err(SpecError::TooManySpecs { max: 0 })
        ));
    }
}
