//! [`TransferSpec`] and [`TransferPath`]: the node API's `transfer_spec` object, read and
//! written without losing a key.

use std::fmt;

use crate::json::{JsonMap, JsonValue};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{SpecError, is_secret_key, shown};
use crate::secret::{REDACTED, Secret};
use crate::values::{
    Cipher, ContentProtection, Direction, FallbackProtocol, FileChecksum, FileManifest,
    HttpFallback, OverwritePolicy, PreserveMode, RatePolicy, ResumePolicy, SpecEnum, SymlinkPolicy,
};

/// Keys read as another key: older or SDK-specific spellings.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    (
        "content_protection_passphrase",
        "content_protection_password",
    ),
    ("overwrite_policy", "overwrite"),
];

/// Generates the struct, its serialisation, its reader and its redacting `Debug` from one list
/// of fields, so that the four cannot drift apart. Every field is `Option<T>` and named exactly
/// like its JSON key.
macro_rules! transfer_spec {
    (
        $( $(#[$meta:meta])* $field:ident : $ty:ty => $reader:expr, )*
    ) => {
        /// A transfer spec: the `transfer_spec` object of IBM's node API (`upload_setup`,
        /// `download_setup`), or one written by hand (see [`TransferSpec::builder`]).
        ///
        /// Every field is optional and named after its JSON key; see `docs/transfer-spec.md`
        /// for the full table of keys, their ascp options and validation rules. Keys this crate
        /// does not know are kept in [`TransferSpec::extra`] and written back on
        /// serialisation; [`TransferSpec::unknown_keys`] lists them.
        ///
        /// Reading is lenient where real nodes are (ports as numbers or numeric strings,
        /// booleans as `true` or `"true"`, cipher aliases, `null` as absent) and strict where
        /// ascp would fail later: an unknown policy value, a negative number or a value of the
        /// wrong type is a [`SpecError`] naming the key and value. Rules that involve several
        /// keys are checked by [`TransferSpec::validate`] (and by
        /// [`TransferSpec::render`]).
        ///
        /// `Debug` never shows secrets (token, cookie, passwords, private key, proxy URL), nor
        /// the values of unknown keys (only their names).
        #[derive(Clone, Default, PartialEq)]
        #[non_exhaustive]
        pub struct TransferSpec {
            /// `paths`: the files to transfer, `[{"source": .., "destination": ..}]`.
            pub paths: Vec<TransferPath>,
            $( $(#[$meta])* pub $field: Option<$ty>, )*
            /// Keys this crate does not know, kept as they came, in their order.
            pub extra: JsonMap,
        }

        impl TransferSpec {
            /// Every key this crate reads (aliases excluded).
            pub const KNOWN_KEYS: &'static [&'static str] = &["paths", $(stringify!($field)),*];

            pub(crate) fn from_fields(mut map: JsonMap) -> Result<Self, SpecError> {
                apply_aliases(&mut map)?;
                let paths = match map.shift_remove("paths") {
                    None | Some(JsonValue::Null) => Vec::new(),
                    Some(value) => read_paths(value)?,
                };
                $( let $field = take(&mut map, stringify!($field), $reader)?; )*
                Ok(TransferSpec { paths, $($field,)* extra: map })
            }

            fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                if !self.paths.is_empty() {
                    map.serialize_entry("paths", &self.paths)?;
                }
                $(
                    if let Some(value) = &self.$field {
                        map.serialize_entry(stringify!($field), value)?;
                    }
                )*
                for (key, value) in &self.extra {
                    map.serialize_entry(key, value)?;
                }
                Ok(())
            }

            fn debug_fields(&self, out: &mut fmt::DebugStruct<'_, '_>) {
                out.field("paths", &self.paths);
                $(
                    if let Some(value) = &self.$field {
                        if is_secret_key(stringify!($field)) || stringify!($field) == "proxy" {
                            out.field(stringify!($field), &format_args!("{REDACTED}"));
                        } else {
                            out.field(stringify!($field), value);
                        }
                    }
                )*
            }
        }
    };
}

transfer_spec! {
    // --- where -------------------------------------------------------------------------
    /// `source_root`: prefix of every source (`--source-prefix`). Local for uploads, remote
    /// for downloads.
    source_root: String => read_string,
    /// `destination_root`: the target folder (ascp's positional destination). Remote for
    /// uploads, local for downloads.
    destination_root: String => read_string,
    /// `source_root_id`: node file ID of the source root (node API only, not rendered).
    source_root_id: String => read_string,
    /// `destination_root_id`: node file ID of the destination root (not rendered).
    destination_root_id: String => read_string,
    /// `direction`: `"send"` (upload) or `"receive"` (download); `--mode`.
    direction: Direction => read_enum::<Direction>,
    /// `remote_host`: the transfer server (`--host`).
    remote_host: String => read_string,
    /// `remote_user`: the SSH transfer user (`--user`).
    remote_user: String => read_string,
    /// `ssh_port`: TCP port of the server's SSH (`-P`).
    ssh_port: u16 => read_port,
    /// `fasp_port`: UDP port of FASP (`-O`).
    fasp_port: u16 => read_port,
    /// `fasp_url`: the node's FASP URL (informational, not rendered).
    fasp_url: String => read_string,
    /// `use_ascp4`: the node's hint to use ascp 4 (not rendered: this crate renders ascp 3
    /// options, which ascp 4 also takes).
    use_ascp4: bool => read_bool,

    // --- authentication ---------------------------------------------------------------
    /// `token`: the transfer authorization token. Secret: `ASPERA_SCP_TOKEN`.
    token: Secret => read_secret,
    /// `authentication`: `"token"` or `"password"` (informational, not rendered).
    authentication: String => read_string,
    /// `remote_password`: SSH password. Secret: `ASPERA_SCP_PASS`.
    remote_password: Secret => read_secret,
    /// `ssh_private_key`: SSH private key *content* (PEM). Secret: `ASPERA_SCP_KEY`.
    ssh_private_key: Secret => read_secret,
    /// `ssh_private_key_path`: SSH private key file (`-i`).
    ssh_private_key_path: String => read_string,
    /// `ssh_private_key_passphrase`: passphrase of the key. Secret: `ASPERA_SCP_PASS`.
    ssh_private_key_passphrase: Secret => read_secret,
    /// `sshfp`: expected fingerprint of the server's SSH host key (`--check-sshfp`).
    sshfp: String => read_string,
    /// `cookie`: opaque string echoed to both ends' managers. Secret: `ASPERA_SCP_COOKIE`.
    cookie: Secret => read_secret,
    /// `tags`: JSON object echoed to both ends (`--tags` / `--tags64`).
    tags: JsonMap => read_object,

    // --- speed ------------------------------------------------------------------------
    /// `cipher`: in-transit encryption (`-c` / `-T`).
    cipher: Cipher => read_enum::<Cipher>,
    /// `rate_policy`: bandwidth sharing (`--policy`).
    rate_policy: RatePolicy => read_enum::<RatePolicy>,
    /// `rate_policy_allowed`: the most aggressive policy the server allows
    /// (`low < fair < high < fixed`; not rendered, checked).
    rate_policy_allowed: RatePolicy => read_enum::<RatePolicy>,
    /// `target_rate_kbps`: target rate in kilobits per second (`-l`).
    target_rate_kbps: u64 => read_u64,
    /// `min_rate_kbps`: minimum rate in kilobits per second (`-m`).
    min_rate_kbps: u64 => read_u64,
    /// `target_rate_cap_kbps`: the server's cap on the target rate (checked, not rendered;
    /// 0 means no cap).
    target_rate_cap_kbps: u64 => read_u64,
    /// `min_rate_cap_kbps`: the server's cap on the minimum rate (checked, not rendered;
    /// 0 means no cap).
    min_rate_cap_kbps: u64 => read_u64,
    /// `lock_rate_policy`: the server forbids changing the policy (informational).
    lock_rate_policy: bool => read_bool,
    /// `lock_target_rate`: the server forbids changing the target rate (informational).
    lock_target_rate: bool => read_bool,
    /// `lock_min_rate`: the server forbids changing the minimum rate (informational).
    lock_min_rate: bool => read_bool,
    /// `dgram_size`: datagram size in bytes, 296 to 65535 (`-Z`).
    dgram_size: u16 => read_u16,

    // --- HTTP fallback and proxy ---------------------------------------------------------
    /// `http_fallback`: `true` (`-y 1`), `false`, or `"force"` (`-y F`).
    http_fallback: HttpFallback => read_http_fallback,
    /// `http_fallback_port`: port of plain HTTP fallback (`-t`), and of HTTPS fallback when
    /// `https_fallback_port` is absent.
    http_fallback_port: u16 => read_port,
    /// `https_fallback_port`: port of HTTPS fallback (`-t` when encrypted).
    https_fallback_port: u16 => read_port,
    /// `http_fallback_protocol`: `"http"` or `"https"`; must agree with `cipher`.
    http_fallback_protocol: FallbackProtocol => read_enum::<FallbackProtocol>,
    /// `proxy`: Aspera proxy URL `dnat[s]://[user[:password]@]host[:port]` (`--proxy`, the
    /// password in `ASPERA_PROXY_PASS`). Held as a secret because it may contain a password.
    proxy: Secret => read_secret,

    // --- file handling ------------------------------------------------------------------
    /// `resume_policy`: `none`, `attrs`, `sparse_csum`, `full_csum` (`-k 0..3`).
    resume_policy: ResumePolicy => read_enum::<ResumePolicy>,
    /// `overwrite`: `never`, `always`, `diff`, `older`, `diff+older` (`--overwrite`).
    overwrite: OverwritePolicy => read_enum::<OverwritePolicy>,
    /// `create_dir`: create the destination folder (`-d`).
    create_dir: bool => read_bool,
    /// `symlink_policy`: `follow`, `copy`, `copy+force`, `skip` (`--symbolic-links`).
    symlink_policy: SymlinkPolicy => read_enum::<SymlinkPolicy>,
    /// `file_checksum`: per-file checksum reported (`--file-checksum`).
    file_checksum: FileChecksum => read_enum::<FileChecksum>,
    /// `precalculate_job_size`: count the job before starting (`--precalculate-job-size`).
    precalculate_job_size: bool => read_bool,
    /// `keepalive`: persistent session; files are added later by the manager
    /// (`--keepalive`; sources are then not rendered).
    keepalive: bool => read_bool,
    /// `multi_session`: number of parallel sessions (the manager's job, not rendered).
    multi_session: u32 => read_u32,
    /// `multi_session_threshold`: files smaller than this many bytes are not split
    /// (`--multi-session-threshold`).
    multi_session_threshold: u64 => read_u64,
    /// `content_protection`: `encrypt` or `decrypt` at rest (`--file-crypt`).
    content_protection: ContentProtection => read_enum::<ContentProtection>,
    /// `content_protection_password` (alias `content_protection_passphrase`). Secret:
    /// `ASPERA_SCP_FILEPASS`.
    content_protection_password: Secret => read_secret,
    /// `preserve_times`: keep access, modification and creation times (`-p`).
    preserve_times: bool => read_bool,
    /// `preserve_access_time` (`--preserve-access-time`).
    preserve_access_time: bool => read_bool,
    /// `preserve_modification_time` (`--preserve-modification-time`).
    preserve_modification_time: bool => read_bool,
    /// `preserve_creation_time` (`--preserve-creation-time`).
    preserve_creation_time: bool => read_bool,
    /// `preserve_source_access_time`: restore the source's access time after reading it
    /// (`--preserve-source-access-time`).
    preserve_source_access_time: bool => read_bool,
    /// `preserve_file_owner_uid` (`--preserve-file-owner-uid`).
    preserve_file_owner_uid: bool => read_bool,
    /// `preserve_file_owner_gid` (`--preserve-file-owner-gid`).
    preserve_file_owner_gid: bool => read_bool,
    /// `preserve_acls`: `native`, `metafile`, `none` (`--preserve-acls`).
    preserve_acls: PreserveMode => read_enum::<PreserveMode>,
    /// `preserve_remote_acls` (`--remote-preserve-acls`).
    preserve_remote_acls: PreserveMode => read_enum::<PreserveMode>,
    /// `preserve_xattrs`: `native`, `metafile`, `none` (`--preserve-xattrs`).
    preserve_xattrs: PreserveMode => read_enum::<PreserveMode>,
    /// `preserve_remote_xattrs` (`--remote-preserve-xattrs`).
    preserve_remote_xattrs: PreserveMode => read_enum::<PreserveMode>,
    /// `remove_after_transfer`: delete sources once transferred (`--remove-after-transfer`).
    remove_after_transfer: bool => read_bool,
    /// `remove_empty_directories`: delete emptied source folders
    /// (`--remove-empty-directories`).
    remove_empty_directories: bool => read_bool,
    /// `remove_empty_source_directory`: also the source folder itself
    /// (`--remove-empty-source-directory`).
    remove_empty_source_directory: bool => read_bool,
    /// `move_after_transfer`: move sources into this archive folder once transferred
    /// (`--move-after-transfer`).
    move_after_transfer: String => read_string,
    /// `delete_before_transfer`: delete destination files absent from the source
    /// (`--delete-before-transfer`).
    delete_before_transfer: bool => read_bool,
    /// `save_before_overwrite`: rename a file instead of overwriting it
    /// (`--save-before-overwrite`).
    save_before_overwrite: bool => read_bool,
    /// `skip_special_files`: skip devices, pipes and sockets (`--skip-special-files`).
    skip_special_files: bool => read_bool,
    /// `partial_file_suffix`: suffix of files being received (`--partial-file-suffix`).
    partial_file_suffix: String => read_string,
    /// `apply_local_docroot`: apply the local docroot (`--apply-local-docroot`).
    apply_local_docroot: bool => read_bool,
    /// `file_manifest`: `text` or `none` (`--file-manifest`).
    file_manifest: FileManifest => read_enum::<FileManifest>,
    /// `file_manifest_path`: folder of the manifest (`--file-manifest-path`).
    file_manifest_path: String => read_string,
    /// `exclude_newer_than`: skip files modified after this time, in seconds since the epoch
    /// (`--exclude-newer-than`).
    exclude_newer_than: u64 => read_u64,
    /// `exclude_older_than`: skip files modified before this time, in seconds since the epoch
    /// (`--exclude-older-than`).
    exclude_older_than: u64 => read_u64,
    /// `src_base`: keep the folder structure of sources below this prefix (`--src-base`).
    src_base: String => read_string,
    /// `retry_duration`: how long a manager should keep retrying, in seconds (the manager's
    /// job, not rendered).
    retry_duration: u64 => read_u64,
}

impl TransferSpec {
    /// A builder for specs written by hand; see [`crate::TransferSpecBuilder`].
    pub fn builder() -> crate::TransferSpecBuilder {
        crate::TransferSpecBuilder::new()
    }

    /// Reads a bare transfer spec object from JSON text, keeping the order of its keys (those
    /// of [`TransferSpec::extra`] and of `tags`, at every depth).
    ///
    /// Errors: [`SpecError::Json`] (with line and column) for text that is not a JSON object;
    /// a typed error naming the key and value for a bad value. Cross-key rules are not checked
    /// here: call [`TransferSpec::validate`].
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let value: JsonValue = serde_json::from_str(text).map_err(|e| SpecError::json(&e))?;
        Self::from_json_tree(value)
    }

    /// Reads a bare transfer spec from a `serde_json` value (which must be an object).
    ///
    /// The unknown keys and `tags` keep the order the value's maps have: the order they were
    /// read in when serde_json's `preserve_order` feature is on in the build, sorted otherwise.
    /// [`TransferSpec::from_json`] and [`TransferSpec::from_json_tree`] keep it in every build.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, SpecError> {
        Self::from_json_tree(JsonValue::from(value))
    }

    /// Reads a bare transfer spec from a [`JsonValue`] (which must be an object), keeping the
    /// order of its keys.
    pub fn from_json_tree(value: JsonValue) -> Result<Self, SpecError> {
        match value {
            JsonValue::Object(map) => Self::from_fields(map),
            other => Err(not_an_object("a transfer spec", &other)),
        }
    }

    /// Reads any of the shapes a spec file has in practice: a bare transfer spec, an object
    /// `{"transfer_spec": {...}}`, or a whole node answer `{"transfer_specs": [...]}` (whose
    /// first element is taken; a node error there is returned as [`SpecError::Node`]).
    pub fn from_document(text: &str) -> Result<Self, SpecError> {
        let value: JsonValue = serde_json::from_str(text).map_err(|e| SpecError::json(&e))?;
        let JsonValue::Object(mut map) = value else {
            return Err(not_an_object("a transfer spec or a node answer", &value));
        };
        if map.contains_key("transfer_specs") || is_node_error(&map) {
            let first = crate::node::specs_from_answer(JsonValue::Object(map))?
                .into_iter()
                .next();
            return first.unwrap_or(Err(SpecError::Missing {
                key: "transfer_specs".into(),
                reason: "the node answer holds no transfer spec",
            }));
        }
        if map.len() == 1 && matches!(map.get("transfer_spec"), Some(JsonValue::Object(_))) {
            if let Some(JsonValue::Object(inner)) = map.shift_remove("transfer_spec") {
                return Self::from_fields(inner);
            }
        }
        Self::from_fields(map)
    }

    /// Reads a node answer `{"transfer_specs": [{"transfer_spec": {...}}, ...]}` (the body of
    /// `upload_setup` / `download_setup`) into one result per element, in order. An element
    /// holding `{"error": {"code": .., "reason": .., "user_message": ..}}` becomes
    /// `Err(SpecError::Node(..))`.
    ///
    /// The outer error covers text that is not JSON, an answer that is a node error as a whole,
    /// or an answer without `transfer_specs`.
    ///
    /// Every key is kept, as for a spec file the user wrote. For an answer that comes from a
    /// node, use [`NodeAnswerReader`](crate::NodeAnswerReader): it bounds the number of specs
    /// and drops the keys a node may not set.
    pub fn from_node_response(text: &str) -> Result<Vec<Result<Self, SpecError>>, SpecError> {
        let value: JsonValue = serde_json::from_str(text).map_err(|e| SpecError::json(&e))?;
        crate::node::specs_from_answer(value)
    }

    /// Like [`TransferSpec::from_node_response`], from a parsed `serde_json` value (key order
    /// as for [`TransferSpec::from_json_value`]).
    pub fn from_node_response_value(
        value: serde_json::Value,
    ) -> Result<Vec<Result<Self, SpecError>>, SpecError> {
        crate::node::specs_from_answer(JsonValue::from(value))
    }

    /// The spec as a [`JsonValue`], in the order of its serialisation: `paths`, the known keys
    /// in the order of [`TransferSpec::KNOWN_KEYS`], then the unknown keys in their order
    /// (secrets included: this is the round-trip form).
    pub fn to_json(&self) -> JsonValue {
        // Serialising plain data (strings, numbers, booleans, ordered maps) cannot fail.
        JsonValue::from_serialize(self).unwrap_or_default()
    }

    /// The spec as a `serde_json` value (secrets included: this is the round-trip form). Its
    /// maps keep the spec's order only when serde_json's `preserve_order` feature is on in the
    /// build; [`TransferSpec::to_json`], or serialising the spec itself
    /// (`serde_json::to_string(&spec)`), keep it in every build.
    pub fn to_json_value(&self) -> serde_json::Value {
        self.to_json().into()
    }

    /// The spec as JSON for showing, in the order of [`TransferSpec::to_json`]: every secret
    /// (the token, cookie, passwords, keys, and any unknown key whose name says it holds one:
    /// `token`, `cookie`, `password`, `passphrase`, `secret`) as `<redacted>`, and the proxy
    /// URL without its password.
    pub fn to_redacted_json(&self) -> JsonValue {
        let mut value = self.to_json();
        if let JsonValue::Object(map) = &mut value {
            for (key, item) in map.iter_mut() {
                if item.is_null() {
                    continue;
                }
                if is_secret_key(key) {
                    *item = JsonValue::from(REDACTED);
                } else if key == "proxy" {
                    if let JsonValue::String(url) = item {
                        *url = crate::proxy::redacted_url(url);
                    }
                }
            }
        }
        value
    }

    /// [`TransferSpec::to_redacted_json`] as a `serde_json` value (ordered as
    /// [`TransferSpec::to_json_value`] explains).
    pub fn to_redacted_json_value(&self) -> serde_json::Value {
        self.to_redacted_json().into()
    }

    /// The keys this crate did not recognise, kept in [`TransferSpec::extra`] (and in the
    /// paths' `extra`, reported as `paths[i].key`). They are written back on serialisation
    /// and not rendered.
    pub fn unknown_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.extra.keys().cloned().collect();
        for (i, path) in self.paths.iter().enumerate() {
            keys.extend(path.extra.keys().map(|k| format!("paths[{i}].{k}")));
        }
        keys
    }
}

impl Serialize for TransferSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for TransferSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = JsonMap::deserialize(deserializer)?;
        TransferSpec::from_fields(map).map_err(de::Error::custom)
    }
}

impl fmt::Debug for TransferSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("TransferSpec");
        self.debug_fields(&mut out);
        if !self.extra.is_empty() {
            out.field("unknown_keys", &KeysOnly(&self.extra));
        }
        out.finish()
    }
}

/// Debug helper printing a map's keys and hiding its values.
struct KeysOnly<'a>(&'a JsonMap);

impl fmt::Debug for KeysOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// One element of `paths`: a source and, optionally, its exact destination.
///
/// Node answers to `upload_setup` carry only destinations (the client adds the sources); a spec
/// ready for ascp needs a source on every path, and either a destination on every path
/// (rendered as a file-pair list) or on none.
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TransferPath {
    /// `source`: the file or folder to send (local for uploads, remote for downloads),
    /// relative to `source_root` when that is set.
    pub source: Option<String>,
    /// `destination`: the exact target path, relative to `destination_root`.
    pub destination: Option<String>,
    /// Keys this crate does not know, kept as they came.
    pub extra: JsonMap,
}

impl TransferPath {
    /// A path with a source and no explicit destination (it lands in `destination_root`).
    pub fn new(source: impl Into<String>) -> Self {
        TransferPath {
            source: Some(source.into()),
            ..TransferPath::default()
        }
    }

    /// A path with a source and its exact destination.
    pub fn pair(source: impl Into<String>, destination: impl Into<String>) -> Self {
        TransferPath {
            source: Some(source.into()),
            destination: Some(destination.into()),
            extra: JsonMap::new(),
        }
    }

    /// A path with only a destination, as in node answers to `upload_setup`.
    pub fn destination_only(destination: impl Into<String>) -> Self {
        TransferPath {
            destination: Some(destination.into()),
            ..TransferPath::default()
        }
    }
}

impl fmt::Debug for TransferPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("TransferPath");
        if let Some(source) = &self.source {
            out.field("source", source);
        }
        if let Some(destination) = &self.destination {
            out.field("destination", destination);
        }
        if !self.extra.is_empty() {
            out.field("unknown_keys", &KeysOnly(&self.extra));
        }
        out.finish()
    }
}

impl Serialize for TransferPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(source) = &self.source {
            map.serialize_entry("source", source)?;
        }
        if let Some(destination) = &self.destination {
            map.serialize_entry("destination", destination)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TransferPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = JsonValue::deserialize(deserializer)?;
        read_path("paths[]", value).map_err(de::Error::custom)
    }
}

// --- reading -------------------------------------------------------------------------------

fn not_an_object(what: &str, found: &JsonValue) -> SpecError {
    let kind = found.kind();
    SpecError::Json {
        line: 0,
        column: 0,
        message: format!("expected a JSON object ({what}), found {kind}"),
    }
}

pub(crate) fn is_node_error(map: &JsonMap) -> bool {
    matches!(map.get("error"), Some(JsonValue::Object(_)))
}

fn apply_aliases(map: &mut JsonMap) -> Result<(), SpecError> {
    for (alias, canonical) in ALIASES {
        let Some(value) = map.shift_remove(*alias) else {
            continue;
        };
        match map.get(*canonical) {
            None | Some(JsonValue::Null) => {
                map.insert((*canonical).to_owned(), value);
            }
            Some(existing) if *existing == value => {}
            Some(_) => {
                return Err(SpecError::Conflict {
                    key: (*alias).to_owned(),
                    value: shown(alias, &json_text(&value)),
                    other_key: (*canonical).to_owned(),
                    reason: format!("{alias} is another name for {canonical}; give one of them"),
                });
            }
        }
    }
    Ok(())
}

type Reader<T> = fn(&str, JsonValue) -> Result<T, SpecError>;

fn take<T>(map: &mut JsonMap, key: &str, read: Reader<T>) -> Result<Option<T>, SpecError> {
    match map.shift_remove(key) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(value) => read(key, value).map(Some),
    }
}

/// A value as error messages show it: strings bare, anything else as JSON text.
fn json_text(value: &JsonValue) -> String {
    match value {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn wrong_type(key: &str, value: &JsonValue, expected: &'static str) -> SpecError {
    let text = if is_secret_key(key) || key == "proxy" {
        REDACTED.to_owned()
    } else {
        value.to_string()
    };
    SpecError::WrongType {
        key: key.to_owned(),
        value: text,
        expected,
    }
}

fn read_string(key: &str, value: JsonValue) -> Result<String, SpecError> {
    match value {
        JsonValue::String(s) => Ok(s),
        other => Err(wrong_type(key, &other, "a string")),
    }
}

fn read_secret(key: &str, value: JsonValue) -> Result<Secret, SpecError> {
    read_string(key, value).map(Secret::from)
}

fn read_bool(key: &str, value: JsonValue) -> Result<bool, SpecError> {
    match &value {
        JsonValue::Bool(b) => Ok(*b),
        JsonValue::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        JsonValue::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(wrong_type(key, &value, "true or false")),
    }
}

fn read_object(key: &str, value: JsonValue) -> Result<JsonMap, SpecError> {
    match value {
        JsonValue::Object(map) => Ok(map),
        other => Err(wrong_type(key, &other, "a JSON object")),
    }
}

fn read_enum<T: SpecEnum>(key: &str, value: JsonValue) -> Result<T, SpecError> {
    match &value {
        JsonValue::String(s) => T::parse_value(s).ok_or_else(|| SpecError::UnknownValue {
            key: key.to_owned(),
            value: s.clone(),
            expected: T::EXPECTED,
        }),
        _ => Err(wrong_type(key, &value, "a string")),
    }
}

fn read_http_fallback(key: &str, value: JsonValue) -> Result<HttpFallback, SpecError> {
    let scalar = match &value {
        JsonValue::Bool(b) => serde_json::Value::Bool(*b),
        JsonValue::String(s) => serde_json::Value::String(s.clone()),
        _ => serde_json::Value::Null,
    };
    HttpFallback::from_json_value(&scalar).ok_or_else(|| match &value {
        JsonValue::String(s) => SpecError::UnknownValue {
            key: key.to_owned(),
            value: s.clone(),
            expected: HttpFallback::EXPECTED,
        },
        other => wrong_type(key, other, "true, false or \"force\""),
    })
}

/// Reads a whole number given as a JSON number or a numeric string (real nodes send both).
pub(crate) fn read_u64(key: &str, value: JsonValue) -> Result<u64, SpecError> {
    const EXPECTED: &str = "a whole number (JSON number or numeric string)";
    let negative = |text: String| SpecError::Negative {
        key: key.to_owned(),
        value: text,
    };
    let too_big = |text: String| SpecError::OutOfRange {
        key: key.to_owned(),
        value: text,
        min: 0,
        max: u64::MAX,
    };
    match &value {
        JsonValue::Number(n) => {
            if let Some(v) = n.as_u64() {
                return Ok(v);
            }
            if n.as_i64().is_some_and(|v| v < 0) {
                return Err(negative(n.to_string()));
            }
            match n.as_f64() {
                Some(f) if f < 0.0 => Err(negative(n.to_string())),
                Some(f) if f.fract() != 0.0 => Err(wrong_type(key, &value, EXPECTED)),
                _ => Err(too_big(n.to_string())),
            }
        }
        JsonValue::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(wrong_type(key, &value, EXPECTED));
            }
            if s.starts_with('-') {
                return if digits.bytes().all(|b| b == b'0') {
                    Ok(0)
                } else {
                    Err(negative(s.clone()))
                };
            }
            s.parse::<u64>().map_err(|_| too_big(s.clone()))
        }
        _ => Err(wrong_type(key, &value, EXPECTED)),
    }
}

fn read_bounded(key: &str, value: JsonValue, min: u64, max: u64) -> Result<u64, SpecError> {
    let text = json_text(&value);
    let v = read_u64(key, value).map_err(|err| match err {
        SpecError::OutOfRange { key, value, .. } => SpecError::OutOfRange {
            key,
            value,
            min,
            max,
        },
        other => other,
    })?;
    if v < min || v > max {
        return Err(SpecError::OutOfRange {
            key: key.to_owned(),
            value: text,
            min,
            max,
        });
    }
    Ok(v)
}

fn read_port(key: &str, value: JsonValue) -> Result<u16, SpecError> {
    // 0 is representable here; validate() rejects it for the ports it renders.
    read_bounded(key, value, 0, u64::from(u16::MAX)).map(|v| v as u16)
}

fn read_u16(key: &str, value: JsonValue) -> Result<u16, SpecError> {
    read_bounded(key, value, 0, u64::from(u16::MAX)).map(|v| v as u16)
}

fn read_u32(key: &str, value: JsonValue) -> Result<u32, SpecError> {
    read_bounded(key, value, 0, u64::from(u32::MAX)).map(|v| v as u32)
}

fn read_paths(value: JsonValue) -> Result<Vec<TransferPath>, SpecError> {
    match value {
        JsonValue::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| read_path(&format!("paths[{i}]"), item))
            .collect(),
        other => Err(wrong_type(
            "paths",
            &other,
            "an array of {\"source\", \"destination\"} objects",
        )),
    }
}

fn read_path(key: &str, value: JsonValue) -> Result<TransferPath, SpecError> {
    let JsonValue::Object(mut map) = value else {
        return Err(wrong_type(
            key,
            &value,
            "an object {\"source\": .., \"destination\": ..}",
        ));
    };
    let source = take(&mut map, "source", read_string).map_err(|e| prefix_key(e, key))?;
    let destination = take(&mut map, "destination", read_string).map_err(|e| prefix_key(e, key))?;
    Ok(TransferPath {
        source,
        destination,
        extra: map,
    })
}

fn prefix_key(err: SpecError, prefix: &str) -> SpecError {
    match err {
        SpecError::WrongType {
            key,
            value,
            expected,
        } => SpecError::WrongType {
            key: format!("{prefix}.{key}"),
            value,
            expected,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_json_hides_every_secret_and_the_proxy_password() {
        let spec = TransferSpec::from_json(
            r#"{"remote_host": "h", "token": "ATM3_x", "cookie": "c", "remote_password": "pw",
                "ssh_private_key": "-----BEGIN", "proxy": "dnats://u:p%23w@proxy:9091",
                "x_api_token": "t", "ssh_port": 33001}"#,
        )
        .unwrap();
        let shown = spec.to_redacted_json_value();
        for key in [
            "token",
            "cookie",
            "remote_password",
            "ssh_private_key",
            "x_api_token",
        ] {
            assert_eq!(shown[key], REDACTED, "{key}");
        }
        let proxy = shown["proxy"].as_str().unwrap();
        assert!(
            !proxy.contains("p%23w") && proxy.contains("proxy:9091"),
            "{proxy}"
        );
        assert_eq!(shown["remote_host"], "h");
        assert_eq!(shown["ssh_port"], 33001);
        let text = shown.to_string();
        for secret in ["ATM3_x", "\"c\"", "pw", "BEGIN", "p%23w", "\"t\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn a_document_of_the_wrong_shape_gives_no_position() {
        let e = TransferSpec::from_document("[1]").unwrap_err().to_string();
        assert!(!e.contains("line 0"), "{e}");
        assert!(e.contains("found an array"), "{e}");
        let e = TransferSpec::from_document("{\n  \"remote_host\": ,\n}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, column"), "{e}");
    }
    use serde_json::json;

    fn spec(value: serde_json::Value) -> Result<TransferSpec, SpecError> {
        TransferSpec::from_json_value(value)
    }

    #[test]
    fn ports_as_numbers_or_strings() {
        let s = spec(json!({"ssh_port": "33001", "fasp_port": 33001})).unwrap();
        assert_eq!(s.ssh_port, Some(33001));
        assert_eq!(s.fasp_port, Some(33001));
    }

    #[test]
    fn negative_numbers_are_typed_errors() {
        for value in [json!(-1), json!("-22"), json!(-1.5)] {
            let err = spec(json!({"target_rate_kbps": value})).unwrap_err();
            assert!(matches!(err, SpecError::Negative { .. }), "{err}");
            assert_eq!(err.key(), Some("target_rate_kbps"));
        }
        let err = spec(json!({"ssh_port": "-22"})).unwrap_err();
        assert_eq!(err.value(), Some("-22"));
        assert!(err.to_string().contains("negative value \"-22\""));
    }

    #[test]
    fn out_of_range_and_wrong_types() {
        let err = spec(json!({"ssh_port": 70000})).unwrap_err();
        assert!(
            matches!(
                err,
                SpecError::OutOfRange {
                    min: 0,
                    max: 65535,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.value(), Some("70000"));
        let err = spec(json!({"target_rate_kbps": 1e30})).unwrap_err();
        assert!(matches!(err, SpecError::OutOfRange { .. }), "{err}");
        let err = spec(json!({"target_rate_kbps": "99999999999999999999999"})).unwrap_err();
        assert!(matches!(err, SpecError::OutOfRange { .. }), "{err}");
        let err = spec(json!({"fasp_port": "33001a"})).unwrap_err();
        assert!(matches!(err, SpecError::WrongType { .. }), "{err}");
        let err = spec(json!({"fasp_port": 1.5})).unwrap_err();
        assert!(matches!(err, SpecError::WrongType { .. }), "{err}");
        let err = spec(json!({"create_dir": "yes"})).unwrap_err();
        assert_eq!(err.key(), Some("create_dir"));
        let err = spec(json!({"remote_host": 12})).unwrap_err();
        assert_eq!(err.value(), Some("12"));
        let err = spec(json!({"tags": [1]})).unwrap_err();
        assert_eq!(err.key(), Some("tags"));
    }

    #[test]
    fn wrong_type_of_a_secret_is_redacted() {
        let err = spec(json!({"token": 123456789})).unwrap_err();
        assert_eq!(err.key(), Some("token"));
        assert_eq!(err.value(), Some(REDACTED));
        assert!(!err.to_string().contains("123456789"));
    }

    #[test]
    fn unknown_enum_values_name_key_and_value() {
        let err = spec(json!({"cipher": "rot13"})).unwrap_err();
        assert_eq!(err.key(), Some("cipher"));
        assert_eq!(err.value(), Some("rot13"));
        let err = spec(json!({"http_fallback": "sometimes"})).unwrap_err();
        assert!(matches!(err, SpecError::UnknownValue { .. }));
        let err = spec(json!({"http_fallback": 1})).unwrap_err();
        assert!(matches!(err, SpecError::WrongType { .. }));
    }

    #[test]
    fn null_means_absent() {
        let s = spec(json!({"cookie": null, "paths": null})).unwrap();
        assert_eq!(s, TransferSpec::default());
    }

    #[test]
    fn aliases() {
        let s = spec(json!({"content_protection_passphrase": "pw", "overwrite_policy": "always"}))
            .unwrap();
        assert_eq!(s.content_protection_password, Some(Secret::from("pw")));
        assert_eq!(s.overwrite, Some(OverwritePolicy::Always));
        assert!(s.extra.is_empty());
        let err = spec(json!({"overwrite_policy": "always", "overwrite": "never"})).unwrap_err();
        assert!(matches!(err, SpecError::Conflict { .. }), "{err}");
        assert_eq!(err.key(), Some("overwrite_policy"));
        let err =
            spec(json!({"content_protection_passphrase": "a", "content_protection_password": "b"}))
                .unwrap_err();
        assert_eq!(err.value(), Some(REDACTED));
    }

    #[test]
    fn unknown_keys_are_kept_in_order_and_reported() {
        // From text: a `json!` value has already lost the order without preserve_order.
        let s = TransferSpec::from_json(
            r#"{"zeta": 1, "remote_host": "h", "alpha": {"x": [1, 2]},
                "paths": [{"type": "file", "source": "a"}]}"#,
        )
        .unwrap();
        assert_eq!(s.unknown_keys(), vec!["zeta", "alpha", "paths[0].type"]);
        let back = s.to_json();
        assert_eq!(back["zeta"], json!(1));
        assert_eq!(back["alpha"], json!({"x": [1, 2]}));
        assert_eq!(back["paths"][0]["type"], json!("file"));
        let keys: Vec<&String> = back.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["paths", "remote_host", "zeta", "alpha"]);
    }

    #[test]
    fn debug_hides_secrets_and_unknown_values() {
        let s = spec(json!({
            "token": "tok-SECRET-1", "cookie": "cookie-SECRET-2", "remote_password": "pw-SECRET-3",
            "ssh_private_key": "key-SECRET-4", "ssh_private_key_passphrase": "pp-SECRET-5",
            "content_protection_password": "cp-SECRET-6", "proxy": "dnat://u:px-SECRET-7@h:1",
            "mystery": "unknown-SECRET-8", "remote_host": "visible.example"
        }))
        .unwrap();
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("visible.example"));
        assert!(debug.contains("mystery"));
    }

    #[test]
    fn path_errors_name_the_nested_key() {
        let err = spec(json!({"paths": [{"source": "a"}, {"source": 5}]})).unwrap_err();
        assert_eq!(err.key(), Some("paths[1].source"));
        let err = spec(json!({"paths": ["a"]})).unwrap_err();
        assert_eq!(err.key(), Some("paths[0]"));
        let err = spec(json!({"paths": {"source": "a"}})).unwrap_err();
        assert_eq!(err.key(), Some("paths"));
    }

    #[test]
    fn documents_of_every_shape() {
        let bare = TransferSpec::from_document(r#"{"remote_host": "h"}"#).unwrap();
        assert_eq!(bare.remote_host.as_deref(), Some("h"));
        let wrapped =
            TransferSpec::from_document(r#"{"transfer_spec": {"remote_host": "w"}}"#).unwrap();
        assert_eq!(wrapped.remote_host.as_deref(), Some("w"));
        let answer = TransferSpec::from_document(
            r#"{"transfer_specs": [{"transfer_spec": {"remote_host": "a"}}, {"transfer_spec": {}}]}"#,
        )
        .unwrap();
        assert_eq!(answer.remote_host.as_deref(), Some("a"));
        let err = TransferSpec::from_document(r#"{"transfer_specs": []}"#).unwrap_err();
        assert_eq!(err.key(), Some("transfer_specs"));
        let err = TransferSpec::from_document("[1]").unwrap_err();
        assert!(matches!(err, SpecError::Json { .. }));
        let err = TransferSpec::from_document("{\n  \"a\": ,\n}").unwrap_err();
        match err {
            SpecError::Json { line, column, .. } => assert_eq!((line, column), (2, 8)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn serde_deserialize_reports_key_and_value() {
        let err = serde_json::from_str::<TransferSpec>(r#"{"rate_policy": "turbo"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("key \"rate_policy\": unknown value \"turbo\""),
            "{err}"
        );
    }
}
