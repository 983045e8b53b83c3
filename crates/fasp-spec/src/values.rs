//! The enumerated values of a transfer spec: policies, ciphers, modes.
//!
//! Each enum reads its canonical spelling and the aliases seen in IBM's SDKs (ASCII case does
//! not matter) and writes the canonical spelling back.

use fasp_mgmt_proto::{Adaptive, Priority};
use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Joins string literals with ", " at compile time.
macro_rules! join_literals {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

/// Implemented by every string-valued enum of the spec (used by the spec reader).
pub(crate) trait SpecEnum: Sized + Copy {
    /// Canonical values, comma separated.
    const EXPECTED: &'static str;
    /// Parses a canonical value or alias.
    fn parse_value(text: &str) -> Option<Self>;
}

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $canonical:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order error messages list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The accepted canonical values, comma separated.
            pub const EXPECTED: &'static str = join_literals!($($canonical),+);

            /// The canonical spelling in a transfer spec.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $canonical,)+
                }
            }

            /// Parses the canonical spelling or an alias, ignoring ASCII case.
            pub fn parse(text: &str) -> Option<Self> {
                $(
                    if text.eq_ignore_ascii_case($canonical)
                        $(|| text.eq_ignore_ascii_case($alias))*
                    {
                        return Some($name::$variant);
                    }
                )+
                None
            }
        }

        impl SpecEnum for $name {
            const EXPECTED: &'static str = $name::EXPECTED;
            fn parse_value(text: &str) -> Option<Self> {
                $name::parse(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    de::Error::custom(format_args!(
                        "unknown value {text:?} (expected one of {})",
                        $name::EXPECTED
                    ))
                })
            }
        }
    };
}

string_enum! {
    /// `direction`: which way the files go, seen from the client running ascp
    /// (`--mode=send` or `--mode=recv`).
    pub enum Direction {
        /// Upload: local sources, remote destination.
        Send = "send",
        /// Download: remote sources, local destination.
        Receive = "receive" | "recv",
    }
}

impl Direction {
    /// ascp's word in `INIT` and `SESSION` (`Send`, `Receive`) in these words; `None` for a
    /// word this crate does not know.
    pub fn from_wire(direction: fasp_mgmt_proto::Direction<'_>) -> Option<Direction> {
        match direction {
            fasp_mgmt_proto::Direction::Send => Some(Direction::Send),
            fasp_mgmt_proto::Direction::Receive => Some(Direction::Receive),
            _ => None,
        }
    }
}

string_enum! {
    /// `cipher`: in-transit encryption.
    ///
    /// `aes128`, `aes-128-cfb` and `aes128cfb` are read as [`Cipher::Aes128`] (CFB is the mode
    /// ascp 3.x uses for `-c aes128`), likewise for 192 and 256 bits.
    pub enum Cipher {
        /// No encryption (`-T`; HTTP fallback then uses plain HTTP).
        None = "none",
        /// AES-128 in CFB mode (`-c aes128`, ascp's default).
        Aes128 = "aes-128" | "aes128" | "aes-128-cfb" | "aes128cfb",
        /// AES-192 in CFB mode (`-c aes192`).
        Aes192 = "aes-192" | "aes192" | "aes-192-cfb" | "aes192cfb",
        /// AES-256 in CFB mode (`-c aes256`).
        Aes256 = "aes-256" | "aes256" | "aes-256-cfb" | "aes256cfb",
        /// AES-128 in GCM mode (`-c aes-128-gcm`; ascp 4 only, ascp 3.9 rejects it).
        Aes128Gcm = "aes-128-gcm" | "aes128gcm",
        /// AES-192 in GCM mode (`-c aes-192-gcm`; ascp 4 only).
        Aes192Gcm = "aes-192-gcm" | "aes192gcm",
        /// AES-256 in GCM mode (`-c aes-256-gcm`; ascp 4 only).
        Aes256Gcm = "aes-256-gcm" | "aes256gcm",
    }
}

impl Cipher {
    /// Whether data is encrypted in transit (everything but [`Cipher::None`]).
    pub fn encrypts(self) -> bool {
        self != Cipher::None
    }
}

string_enum! {
    /// `rate_policy` and `rate_policy_allowed`: how a transfer shares bandwidth
    /// (`--policy=...`).
    ///
    /// As a ceiling (`rate_policy_allowed`), the policies are ordered
    /// `low < fair < high < fixed`: a server allowing `high` allows `fair` and `low` too.
    pub enum RatePolicy {
        /// Always the target rate, whatever the congestion.
        Fixed = "fixed",
        /// Adaptive, taking twice a fair share under congestion.
        High = "high",
        /// Adaptive, sharing fairly.
        Fair = "fair",
        /// Adaptive, yielding to other traffic (Trickle).
        Low = "low",
    }
}

impl RatePolicy {
    /// Rank in the `low < fair < high < fixed` order used for `rate_policy_allowed`.
    pub fn rank(self) -> u8 {
        match self {
            RatePolicy::Low => 0,
            RatePolicy::Fair => 1,
            RatePolicy::High => 2,
            RatePolicy::Fixed => 3,
        }
    }

    /// Whether `self` is within the ceiling `allowed`.
    pub fn is_allowed_by(self, allowed: RatePolicy) -> bool {
        self.rank() <= allowed.rank()
    }

    /// The words of ascp's management protocol for this policy (`Adaptive` and `Priority` of
    /// a `RATE` message): `fixed` is `Fixed`, `high` and `fair` are `Adaptive` with priority 1
    /// and 2, `low` is `Trickle`.
    pub fn to_wire(self) -> (Adaptive<'static>, Option<Priority>) {
        match self {
            RatePolicy::Fixed => (Adaptive::Fixed, None),
            RatePolicy::High => (Adaptive::Adaptive, Some(Priority::High)),
            RatePolicy::Fair => (Adaptive::Adaptive, Some(Priority::Regular)),
            RatePolicy::Low => (Adaptive::Trickle, None),
        }
    }

    /// The policy ascp reports (`Adaptive` and `Priority` of `SESSION` or `NOTIFICATION`), in
    /// these words; `None` when ascp did not say or said a word this crate does not know.
    pub fn from_wire(adaptive: Option<Adaptive<'_>>, priority: Option<u64>) -> Option<RatePolicy> {
        match adaptive? {
            Adaptive::Fixed => Some(RatePolicy::Fixed),
            Adaptive::Adaptive if priority == Some(1) => Some(RatePolicy::High),
            Adaptive::Adaptive => Some(RatePolicy::Fair),
            Adaptive::Trickle => Some(RatePolicy::Low),
            _ => None,
        }
    }
}

string_enum! {
    /// `resume_policy`: what a partial file at the destination must match to be resumed
    /// (`-k 0..3`).
    pub enum ResumePolicy {
        /// Always retransfer (`-k 0`).
        None = "none",
        /// Same size and attributes (`-k 1`).
        Attributes = "attrs" | "attributes",
        /// Sparse checksum (`-k 2`).
        SparseChecksum = "sparse_csum" | "sparse_checksum",
        /// Full checksum (`-k 3`).
        FullChecksum = "full_csum" | "full_checksum",
    }
}

impl ResumePolicy {
    /// The `-k` level.
    pub fn level(self) -> u8 {
        match self {
            ResumePolicy::None => 0,
            ResumePolicy::Attributes => 1,
            ResumePolicy::SparseChecksum => 2,
            ResumePolicy::FullChecksum => 3,
        }
    }
}

string_enum! {
    /// `overwrite`: when an existing destination file is replaced (`--overwrite=...`).
    /// `none` (IBM's SDK spelling) is read as `never`.
    pub enum OverwritePolicy {
        /// Never overwrite.
        Never = "never" | "none",
        /// Always overwrite.
        Always = "always",
        /// Overwrite when the files differ (ascp's default).
        Diff = "diff",
        /// Overwrite when the destination is older.
        Older = "older",
        /// Overwrite when the files differ and the destination is older.
        DiffAndOlder = "diff+older",
    }
}

string_enum! {
    /// `symlink_policy`: what to do with symbolic links (`--symbolic-links=...`).
    pub enum SymlinkPolicy {
        /// Transfer what the link points to.
        Follow = "follow",
        /// Recreate the link, unless something exists there.
        Copy = "copy",
        /// Recreate the link, replacing what exists there.
        CopyForce = "copy+force",
        /// Ignore links.
        Skip = "skip",
    }
}

string_enum! {
    /// `file_checksum`: checksum reported for each transferred file (`--file-checksum=...`).
    pub enum FileChecksum {
        /// No checksum.
        None = "none",
        /// MD5.
        Md5 = "md5",
        /// SHA-1.
        Sha1 = "sha1" | "sha-1",
        /// SHA-256.
        Sha256 = "sha256" | "sha-256",
        /// SHA-384.
        Sha384 = "sha384" | "sha-384",
        /// SHA-512.
        Sha512 = "sha512" | "sha-512",
    }
}

string_enum! {
    /// `content_protection`: encryption at rest (`--file-crypt=...`, passphrase in
    /// `ASPERA_SCP_FILEPASS`).
    pub enum ContentProtection {
        /// Store files encrypted at the destination (`.aspera-env`).
        Encrypt = "encrypt",
        /// Decrypt files while downloading them.
        Decrypt = "decrypt",
    }
}

string_enum! {
    /// `preserve_acls`, `preserve_remote_acls`, `preserve_xattrs`, `preserve_remote_xattrs`:
    /// how access control lists or extended attributes are kept.
    pub enum PreserveMode {
        /// In the file system's own format (ascp 3.9 on Linux supports it for xattrs, not ACLs).
        Native = "native",
        /// In a separate metadata file.
        Metafile = "metafile",
        /// Not kept.
        None = "none",
    }
}

string_enum! {
    /// `file_manifest`: whether ascp writes a manifest of the transferred files
    /// (`--file-manifest=...`).
    pub enum FileManifest {
        /// A text manifest in `file_manifest_path`.
        Text = "text",
        /// No manifest.
        None = "none",
    }
}

string_enum! {
    /// `http_fallback_protocol`: the protocol of the HTTP fallback. ascp 3.9 takes it from
    /// the cipher (plain HTTP exactly when `cipher` is `none`), so this key must agree with
    /// `cipher` when fallback is enabled.
    pub enum FallbackProtocol {
        /// Plain HTTP (`-T`, port `http_fallback_port`).
        Http = "http",
        /// HTTPS (port `https_fallback_port`, else `http_fallback_port`).
        Https = "https",
    }
}

/// `http_fallback`: whether ascp may fall back to HTTP(S) when FASP's UDP cannot get through
/// (`-y 1`), or must use HTTP(S) straight away (`"force"`, `-y F`).
///
/// In JSON: `false`, `true` or `"force"` (the strings `"true"` and `"false"` are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpFallback {
    /// No fallback (`false`; nothing rendered, ascp's default).
    Disabled,
    /// Fall back when UDP fails (`true`, `-y 1`).
    Enabled,
    /// Skip FASP and use HTTP(S) at once (`"force"`, `-y F`).
    Force,
}

impl HttpFallback {
    /// The accepted values, as error messages list them.
    pub const EXPECTED: &'static str = "true, false, \"force\"";

    /// Whether ascp may use HTTP(S) at all.
    pub fn is_enabled(self) -> bool {
        self != HttpFallback::Disabled
    }

    /// Reads `true`, `false`, `"force"`, `"true"`, `"false"`.
    pub fn from_json_value(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Bool(true) => Some(HttpFallback::Enabled),
            serde_json::Value::Bool(false) => Some(HttpFallback::Disabled),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("force") => {
                Some(HttpFallback::Force)
            }
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => {
                Some(HttpFallback::Enabled)
            }
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => {
                Some(HttpFallback::Disabled)
            }
            _ => None,
        }
    }

    /// The JSON form: `true`, `false` or `"force"`.
    pub fn to_json_value(self) -> serde_json::Value {
        match self {
            HttpFallback::Disabled => serde_json::Value::Bool(false),
            HttpFallback::Enabled => serde_json::Value::Bool(true),
            HttpFallback::Force => serde_json::Value::String("force".into()),
        }
    }
}

impl Serialize for HttpFallback {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HttpFallback::Disabled => serializer.serialize_bool(false),
            HttpFallback::Enabled => serializer.serialize_bool(true),
            HttpFallback::Force => serializer.serialize_str("force"),
        }
    }
}

impl<'de> Deserialize<'de> for HttpFallback {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        HttpFallback::from_json_value(&value).ok_or_else(|| {
            de::Error::custom(format_args!(
                "unknown value {value} (expected one of {})",
                HttpFallback::EXPECTED
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_case() {
        assert_eq!(Cipher::parse("AES128"), Some(Cipher::Aes128));
        assert_eq!(Cipher::parse("aes-256-cfb"), Some(Cipher::Aes256));
        assert_eq!(Cipher::parse("aes192cfb"), Some(Cipher::Aes192));
        assert_eq!(Cipher::parse("aes256gcm"), Some(Cipher::Aes256Gcm));
        assert_eq!(Cipher::parse("blowfish"), None);
        assert_eq!(Direction::parse("recv"), Some(Direction::Receive));
        assert_eq!(
            ResumePolicy::parse("sparse_checksum"),
            Some(ResumePolicy::SparseChecksum)
        );
        assert_eq!(OverwritePolicy::parse("none"), Some(OverwritePolicy::Never));
        assert_eq!(FileChecksum::parse("SHA-256"), Some(FileChecksum::Sha256));
    }

    #[test]
    fn expected_lists() {
        assert_eq!(RatePolicy::EXPECTED, "fixed, high, fair, low");
        assert_eq!(SymlinkPolicy::EXPECTED, "follow, copy, copy+force, skip");
        assert_eq!(
            Cipher::EXPECTED,
            "none, aes-128, aes-192, aes-256, aes-128-gcm, aes-192-gcm, aes-256-gcm"
        );
    }

    #[test]
    fn every_canonical_spelling_round_trips() {
        for c in Cipher::ALL {
            assert_eq!(Cipher::parse(c.as_str()), Some(*c));
        }
        for p in RatePolicy::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(serde_json::from_str::<RatePolicy>(&json).unwrap(), *p);
        }
    }

    #[test]
    fn policy_ceiling_order() {
        use RatePolicy::*;
        assert!(Low.is_allowed_by(Fair));
        assert!(Fair.is_allowed_by(High));
        assert!(High.is_allowed_by(Fixed));
        assert!(!Fixed.is_allowed_by(High));
        assert!(!High.is_allowed_by(Fair));
        assert!(Fair.is_allowed_by(Fair));
    }

    #[test]
    fn http_fallback_json() {
        for f in [
            HttpFallback::Disabled,
            HttpFallback::Enabled,
            HttpFallback::Force,
        ] {
            let json = serde_json::to_value(f).unwrap();
            assert_eq!(json, f.to_json_value());
            assert_eq!(serde_json::from_value::<HttpFallback>(json).unwrap(), f);
        }
        assert!(serde_json::from_str::<HttpFallback>("\"maybe\"").is_err());
        assert_eq!(
            HttpFallback::from_json_value(&serde_json::json!("FORCE")),
            Some(HttpFallback::Force)
        );
    }

    #[test]
    fn unknown_value_message() {
        let err = serde_json::from_str::<RatePolicy>("\"turbo\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown value \"turbo\" (expected one of fixed")
        );
    }

    #[test]
    fn policies_to_ascp_words_and_back() {
        assert_eq!(RatePolicy::Fixed.to_wire(), (Adaptive::Fixed, None));
        assert_eq!(
            RatePolicy::High.to_wire(),
            (Adaptive::Adaptive, Some(Priority::High))
        );
        assert_eq!(
            RatePolicy::Fair.to_wire(),
            (Adaptive::Adaptive, Some(Priority::Regular))
        );
        assert_eq!(RatePolicy::Low.to_wire(), (Adaptive::Trickle, None));
        for p in RatePolicy::ALL {
            let (adaptive, priority) = p.to_wire();
            let priority = priority.map(|p| if p == Priority::High { 1 } else { 2 });
            let back = RatePolicy::from_wire(Some(Adaptive::parse(adaptive.as_str())), priority);
            assert_eq!(back, Some(*p));
        }
        assert_eq!(
            RatePolicy::from_wire(Some(Adaptive::parse("Turbo")), None),
            None
        );
        assert_eq!(RatePolicy::from_wire(None, Some(1)), None);
        use fasp_mgmt_proto::Direction as Wire;
        assert_eq!(
            Direction::from_wire(Wire::parse("Send")),
            Some(Direction::Send)
        );
        assert_eq!(
            Direction::from_wire(Wire::parse("Receive")),
            Some(Direction::Receive)
        );
        assert_eq!(Direction::from_wire(Wire::parse("Sideways")), None);
    }
}
