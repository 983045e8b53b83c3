//! [`TransferSpec::validate`]: the rules a spec must meet before ascp sees it.

use crate::error::{SpecError, shown};
use crate::proxy;
use crate::secret::Secret;
use crate::spec::TransferSpec;
use crate::values::{Cipher, FallbackProtocol, PreserveMode};

/// The highest rate, in kbit/s, this crate renders for `-l` and `-m`: 10^12 kbit/s.
///
/// ascp 3.9 echoes this value exactly in its SESSION frame; from about 2^50 on it echoes
/// rounded values, and from about 1.8 * 10^16 (where kbit/s times 1000 overflows 64 bits) it
/// silently falls back to its default of 10000.
pub const MAX_RATE_KBPS: u64 = 1_000_000_000_000;

/// Smallest datagram size ascp accepts for `-Z`.
pub const MIN_DGRAM_SIZE: u16 = 296;

/// Largest `--tags` / `--tags64` JSON text ascp 3.9 accepts, in bytes.
pub const MAX_TAGS_BYTES: usize = 4095;

impl TransferSpec {
    /// Checks every rule that does not need the file system, in a fixed order, and returns the
    /// first broken one. [`TransferSpec::render`] calls it first.
    ///
    /// The rules (the full table is in `docs/transfer-spec.md`):
    /// - no CR, LF or NUL in any string ascp gets (argv, environment or file lists); the
    ///   private key content may hold line breaks, not NUL;
    /// - `direction` and a non-empty `remote_host` are present;
    /// - at least one path (unless `keepalive`), each with a non-empty source, and a
    ///   destination on every path or on none;
    /// - ports (`ssh_port`, `fasp_port`, and the fallback ports when fallback is on) are 1 to
    ///   65535; `dgram_size` is 296 to 65535;
    /// - rates are at most [`MAX_RATE_KBPS`], `min_rate_kbps <= target_rate_kbps`, and each
    ///   is within its server cap (`*_cap_kbps`, 0 meaning no cap);
    /// - `rate_policy` is within `rate_policy_allowed`, in the order
    ///   `low < fair < high < fixed`;
    /// - `content_protection` comes with `content_protection_password`;
    /// - `remote_password` and `ssh_private_key_passphrase` agree when both are given (ascp
    ///   has one variable, `ASPERA_SCP_PASS`, for both);
    /// - `move_after_transfer` and `remove_after_transfer` are not combined;
    ///   `delete_before_transfer` is not combined with HTTP fallback, `keepalive` or several
    ///   paths (ascp refuses these);
    /// - `preserve_remote_acls` / `preserve_remote_xattrs` agree with their local counterpart
    ///   on whether anything is preserved (ascp calls the rest self-contradictory);
    /// - `http_fallback_protocol` agrees with `cipher` when fallback is on;
    /// - `tags` fits in [`MAX_TAGS_BYTES`] as compact JSON;
    /// - `proxy` is a `dnat://` or `dnats://` URL with a host.
    ///
    /// Values outside an enumeration (an unknown policy, cipher, ...) cannot be represented
    /// in a `TransferSpec`: they are rejected when the JSON is read, with the same error type.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.check_characters()?;
        self.check_required()?;
        self.check_paths()?;
        self.check_ports()?;
        self.check_rates()?;
        self.check_credentials()?;
        self.check_file_handling()?;
        self.check_fallback()?;
        self.check_tags_and_proxy()?;
        Ok(())
    }

    fn check_characters(&self) -> Result<(), SpecError> {
        let plain: [(&str, Option<&str>); 11] = [
            ("remote_host", self.remote_host.as_deref()),
            ("remote_user", self.remote_user.as_deref()),
            ("source_root", self.source_root.as_deref()),
            ("destination_root", self.destination_root.as_deref()),
            ("ssh_private_key_path", self.ssh_private_key_path.as_deref()),
            ("sshfp", self.sshfp.as_deref()),
            ("move_after_transfer", self.move_after_transfer.as_deref()),
            ("src_base", self.src_base.as_deref()),
            ("partial_file_suffix", self.partial_file_suffix.as_deref()),
            ("file_manifest_path", self.file_manifest_path.as_deref()),
            ("proxy", self.proxy.as_ref().map(Secret::expose)),
        ];
        for (key, value) in plain {
            check_line(key, value)?;
        }
        let secrets: [(&str, &Option<Secret>); 5] = [
            ("token", &self.token),
            ("cookie", &self.cookie),
            ("remote_password", &self.remote_password),
            (
                "ssh_private_key_passphrase",
                &self.ssh_private_key_passphrase,
            ),
            (
                "content_protection_password",
                &self.content_protection_password,
            ),
        ];
        for (key, value) in secrets {
            check_line(key, value.as_ref().map(Secret::expose))?;
        }
        // PEM keys are made of lines; only NUL cannot travel in an environment variable.
        if let Some(key) = &self.ssh_private_key {
            if key.expose().contains('\0') {
                return Err(forbidden("ssh_private_key", key.expose(), '\0'));
            }
        }
        for (i, path) in self.paths.iter().enumerate() {
            if let Some(source) = &path.source {
                check_line(&format!("paths[{i}].source"), Some(source))?;
            }
            if let Some(destination) = &path.destination {
                check_line(&format!("paths[{i}].destination"), Some(destination))?;
            }
        }
        Ok(())
    }

    fn check_required(&self) -> Result<(), SpecError> {
        if self.direction.is_none() {
            return Err(SpecError::Missing {
                key: "direction".into(),
                reason: "\"send\" or \"receive\" is needed for --mode",
            });
        }
        match &self.remote_host {
            None => {
                return Err(SpecError::Missing {
                    key: "remote_host".into(),
                    reason: "ascp needs the server's address for --host",
                });
            }
            Some(host) if host.trim().is_empty() => {
                return Err(invalid("remote_host", host, "empty host name"));
            }
            Some(_) => {}
        }
        if let Some(user) = &self.remote_user {
            if user.trim().is_empty() {
                return Err(invalid("remote_user", user, "empty user name"));
            }
        }
        Ok(())
    }

    fn check_paths(&self) -> Result<(), SpecError> {
        if self.paths.is_empty() {
            if self.keepalive == Some(true) {
                return Ok(());
            }
            return Err(SpecError::Missing {
                key: "paths".into(),
                reason: "at least one path with a source is needed",
            });
        }
        for (i, path) in self.paths.iter().enumerate() {
            match &path.source {
                None => {
                    return Err(SpecError::Missing {
                        key: format!("paths[{i}].source"),
                        reason: "every path needs a source",
                    });
                }
                Some(source) if source.is_empty() => {
                    return Err(invalid(&format!("paths[{i}].source"), source, "empty path"));
                }
                Some(_) => {}
            }
            if let Some(destination) = &path.destination {
                if destination.is_empty() {
                    return Err(invalid(
                        &format!("paths[{i}].destination"),
                        destination,
                        "empty path (leave the key out instead)",
                    ));
                }
            }
        }
        let with = self.paths.iter().position(|p| p.destination.is_some());
        let without = self.paths.iter().position(|p| p.destination.is_none());
        if let (Some(_), Some(missing)) = (with, without) {
            return Err(SpecError::Missing {
                key: format!("paths[{missing}].destination"),
                reason: "other paths have a destination: give every path one, or none",
            });
        }
        Ok(())
    }

    fn check_ports(&self) -> Result<(), SpecError> {
        check_port("ssh_port", self.ssh_port)?;
        check_port("fasp_port", self.fasp_port)?;
        if self.http_fallback.is_some_and(|f| f.is_enabled()) {
            check_port("http_fallback_port", self.http_fallback_port)?;
            check_port("https_fallback_port", self.https_fallback_port)?;
        }
        if let Some(size) = self.dgram_size {
            if size < MIN_DGRAM_SIZE {
                return Err(SpecError::OutOfRange {
                    key: "dgram_size".into(),
                    value: size.to_string(),
                    min: MIN_DGRAM_SIZE.into(),
                    max: u16::MAX.into(),
                });
            }
        }
        Ok(())
    }

    fn check_rates(&self) -> Result<(), SpecError> {
        for (key, rate) in [
            ("target_rate_kbps", self.target_rate_kbps),
            ("min_rate_kbps", self.min_rate_kbps),
        ] {
            if let Some(rate) = rate {
                if rate > MAX_RATE_KBPS {
                    return Err(SpecError::OutOfRange {
                        key: key.into(),
                        value: rate.to_string(),
                        min: 0,
                        max: MAX_RATE_KBPS,
                    });
                }
            }
        }
        if let (Some(min), Some(target)) = (self.min_rate_kbps, self.target_rate_kbps) {
            if min > target {
                return Err(conflict(
                    "min_rate_kbps",
                    &min.to_string(),
                    "target_rate_kbps",
                    format!("the minimum rate exceeds the target rate ({target})"),
                ));
            }
        }
        for (key, rate, cap_key, cap) in [
            (
                "target_rate_kbps",
                self.target_rate_kbps,
                "target_rate_cap_kbps",
                self.target_rate_cap_kbps,
            ),
            (
                "min_rate_kbps",
                self.min_rate_kbps,
                "min_rate_cap_kbps",
                self.min_rate_cap_kbps,
            ),
        ] {
            if let (Some(rate), Some(cap)) = (rate, cap) {
                if cap > 0 && rate > cap {
                    return Err(conflict(
                        key,
                        &rate.to_string(),
                        cap_key,
                        format!("the server caps it at {cap}"),
                    ));
                }
            }
        }
        if let (Some(policy), Some(allowed)) = (self.rate_policy, self.rate_policy_allowed) {
            if !policy.is_allowed_by(allowed) {
                return Err(conflict(
                    "rate_policy",
                    policy.as_str(),
                    "rate_policy_allowed",
                    format!(
                        "the server allows at most \"{allowed}\" (in the order low < fair < high < fixed)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_credentials(&self) -> Result<(), SpecError> {
        if let (Some(password), Some(passphrase)) =
            (&self.remote_password, &self.ssh_private_key_passphrase)
        {
            if password != passphrase {
                return Err(conflict(
                    "ssh_private_key_passphrase",
                    passphrase.expose(),
                    "remote_password",
                    "ascp reads both from ASPERA_SCP_PASS, so they cannot differ".into(),
                ));
            }
        }
        if self.content_protection.is_some()
            && self
                .content_protection_password
                .as_ref()
                .is_none_or(Secret::is_empty)
        {
            return Err(SpecError::Missing {
                key: "content_protection_password".into(),
                reason: "content_protection needs it (ascp reads it from ASPERA_SCP_FILEPASS)",
            });
        }
        Ok(())
    }

    fn check_file_handling(&self) -> Result<(), SpecError> {
        if let Some(archive) = &self.move_after_transfer {
            if archive.is_empty() {
                return Err(invalid("move_after_transfer", archive, "empty path"));
            }
            if self.remove_after_transfer == Some(true) {
                return Err(conflict(
                    "move_after_transfer",
                    archive,
                    "remove_after_transfer",
                    "ascp takes one or the other".into(),
                ));
            }
        }
        if self.delete_before_transfer == Some(true) {
            let reason = if self.http_fallback.is_some_and(|f| f.is_enabled()) {
                Some(("http_fallback", "ascp refuses it with HTTP fallback"))
            } else if self.keepalive == Some(true) {
                Some(("keepalive", "ascp refuses it in a persistent session"))
            } else if self.paths.len() > 1 {
                Some(("paths", "ascp refuses it with several sources"))
            } else {
                None
            };
            if let Some((other, why)) = reason {
                return Err(conflict(
                    "delete_before_transfer",
                    "true",
                    other,
                    why.into(),
                ));
            }
        }
        for (local_key, local, remote_key, remote) in [
            (
                "preserve_acls",
                self.preserve_acls,
                "preserve_remote_acls",
                self.preserve_remote_acls,
            ),
            (
                "preserve_xattrs",
                self.preserve_xattrs,
                "preserve_remote_xattrs",
                self.preserve_remote_xattrs,
            ),
        ] {
            let local = local.unwrap_or(PreserveMode::None);
            if let Some(remote) = remote {
                if (local == PreserveMode::None) != (remote == PreserveMode::None) {
                    return Err(conflict(
                        remote_key,
                        remote.as_str(),
                        local_key,
                        format!(
                            "with {local_key} \"{local}\", ascp calls this combination self-contradictory \
                             (preserve on both sides or on neither)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_fallback(&self) -> Result<(), SpecError> {
        if !self.http_fallback.is_some_and(|f| f.is_enabled()) {
            return Ok(());
        }
        let Some(protocol) = self.http_fallback_protocol else {
            return Ok(());
        };
        let encrypted = self.cipher.is_none_or(Cipher::encrypts);
        let consistent = match protocol {
            FallbackProtocol::Http => !encrypted,
            FallbackProtocol::Https => encrypted,
        };
        if !consistent {
            let cipher = self.cipher.map_or("aes-128 (the default)", Cipher::as_str);
            return Err(conflict(
                "http_fallback_protocol",
                protocol.as_str(),
                "cipher",
                format!(
                    "ascp falls back to plain HTTP exactly when in-transit encryption is off, \
                     and cipher is {cipher}"
                ),
            ));
        }
        Ok(())
    }

    fn check_tags_and_proxy(&self) -> Result<(), SpecError> {
        if let Some(tags) = &self.tags {
            let text = crate::json::JsonValue::Object(tags.clone()).to_string();
            if text.len() > MAX_TAGS_BYTES {
                return Err(SpecError::TooLong {
                    key: "tags".into(),
                    length: text.len(),
                    value: text,
                    max: MAX_TAGS_BYTES,
                });
            }
        }
        if let Some(url) = &self.proxy {
            proxy::parse(url.expose()).map_err(|reason| invalid("proxy", url.expose(), &reason))?;
        }
        Ok(())
    }
}

fn forbidden(key: &str, raw: &str, character: char) -> SpecError {
    SpecError::ForbiddenCharacter {
        key: key.to_owned(),
        value: shown(key, raw),
        character,
    }
}

fn check_line(key: &str, value: Option<&str>) -> Result<(), SpecError> {
    if let Some(value) = value {
        if let Some(c) = value.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
            return Err(forbidden(key, value, c));
        }
    }
    Ok(())
}

fn check_port(key: &str, port: Option<u16>) -> Result<(), SpecError> {
    if port == Some(0) {
        return Err(SpecError::OutOfRange {
            key: key.into(),
            value: "0".into(),
            min: 1,
            max: u16::MAX.into(),
        });
    }
    Ok(())
}

fn invalid(key: &str, raw: &str, reason: &str) -> SpecError {
    SpecError::Invalid {
        key: key.to_owned(),
        value: shown(key, raw),
        reason: reason.to_owned(),
    }
}

fn conflict(key: &str, raw: &str, other: &str, reason: String) -> SpecError {
    SpecError::Conflict {
        key: key.to_owned(),
        value: shown(key, raw),
        other_key: other.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::REDACTED;
    use crate::values::{ContentProtection, HttpFallback, RatePolicy};
    use crate::{TransferPath, TransferSpec};
    use serde_json::json;

    /// A minimal valid spec.
    fn base() -> TransferSpec {
        TransferSpec::from_json_value(json!({
            "direction": "send", "remote_host": "h.example", "remote_user": "xfer",
            "paths": [{"source": "a.txt"}]
        }))
        .unwrap()
    }

    fn error_of(edit: impl FnOnce(&mut TransferSpec)) -> SpecError {
        let mut spec = base();
        edit(&mut spec);
        spec.validate().expect_err("the spec should be invalid")
    }

    #[test]
    fn base_is_valid() {
        base().validate().unwrap();
    }

    #[test]
    fn line_breaks_and_nul_are_rejected_everywhere() {
        let err = error_of(|s| s.token = Some("abc\ndef".into()));
        assert!(matches!(
            err,
            SpecError::ForbiddenCharacter {
                character: '\n',
                ..
            }
        ));
        assert_eq!(err.key(), Some("token"));
        assert_eq!(err.value(), Some(REDACTED));
        let err = error_of(|s| s.cookie = Some("abc\rdef".into()));
        assert_eq!((err.key(), err.value()), (Some("cookie"), Some(REDACTED)));
        let err = error_of(|s| s.remote_password = Some("pw\0".into()));
        assert_eq!(err.key(), Some("remote_password"));
        let err = error_of(|s| s.content_protection_password = Some("a\nb".into()));
        assert_eq!(err.key(), Some("content_protection_password"));
        let err = error_of(|s| s.remote_user = Some("x\nfer".into()));
        assert_eq!(
            (err.key(), err.value()),
            (Some("remote_user"), Some("x\nfer"))
        );
        let err = error_of(|s| s.paths.push(TransferPath::new("b\n.txt")));
        assert_eq!(err.key(), Some("paths[1].source"));
        let err = error_of(|s| s.destination_root = Some("/in\rbox".into()));
        assert_eq!(err.key(), Some("destination_root"));
        let err = error_of(|s| s.proxy = Some("dnat://u:p\n@h".into()));
        assert_eq!(err.key(), Some("proxy"));
        assert!(!err.to_string().contains("p\\n"), "{err}");
    }

    #[test]
    fn private_key_content_may_hold_line_breaks_but_not_nul() {
        let mut spec = base();
        spec.ssh_private_key =
            Some("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".into());
        spec.validate().unwrap();
        let err = error_of(|s| s.ssh_private_key = Some("a\0b".into()));
        assert_eq!(
            (err.key(), err.value()),
            (Some("ssh_private_key"), Some(REDACTED))
        );
    }

    #[test]
    fn required_keys() {
        let err = error_of(|s| s.direction = None);
        assert!(matches!(err, SpecError::Missing { .. }));
        assert_eq!(err.key(), Some("direction"));
        let err = error_of(|s| s.remote_host = None);
        assert_eq!(err.key(), Some("remote_host"));
        let err = error_of(|s| s.remote_host = Some(" ".into()));
        assert!(matches!(err, SpecError::Invalid { .. }));
        assert_eq!(err.value(), Some(" "));
        let err = error_of(|s| s.remote_user = Some(String::new()));
        assert_eq!(err.key(), Some("remote_user"));
    }

    #[test]
    fn paths_rules() {
        let err = error_of(|s| s.paths.clear());
        assert_eq!(err.key(), Some("paths"));
        let mut keepalive = base();
        keepalive.paths.clear();
        keepalive.keepalive = Some(true);
        keepalive.validate().unwrap();
        let err = error_of(|s| s.paths = vec![TransferPath::destination_only("/")]);
        assert_eq!(err.key(), Some("paths[0].source"));
        let err = error_of(|s| s.paths = vec![TransferPath::new("")]);
        assert_eq!(err.key(), Some("paths[0].source"));
        let err = error_of(|s| {
            s.paths = vec![
                TransferPath::pair("a", "x"),
                TransferPath::new("b"),
                TransferPath::pair("c", "z"),
            ]
        });
        assert_eq!(err.key(), Some("paths[1].destination"));
        assert!(
            err.to_string().contains("give every path one, or none"),
            "{err}"
        );
        let err = error_of(|s| s.paths = vec![TransferPath::pair("a", "")]);
        assert_eq!(err.key(), Some("paths[0].destination"));
        let mut all = base();
        all.paths = vec![TransferPath::pair("a", "x"), TransferPath::pair("b", "y")];
        all.validate().unwrap();
    }

    #[test]
    fn ports() {
        let err = error_of(|s| s.ssh_port = Some(0));
        assert!(matches!(
            err,
            SpecError::OutOfRange {
                min: 1,
                max: 65535,
                ..
            }
        ));
        assert_eq!((err.key(), err.value()), (Some("ssh_port"), Some("0")));
        let err = error_of(|s| s.fasp_port = Some(0));
        assert_eq!(err.key(), Some("fasp_port"));
        // A zero fallback port only matters when fallback is on.
        let mut spec = base();
        spec.https_fallback_port = Some(0);
        spec.validate().unwrap();
        spec.http_fallback = Some(HttpFallback::Enabled);
        assert_eq!(
            spec.validate().unwrap_err().key(),
            Some("https_fallback_port")
        );
        let err = error_of(|s| s.dgram_size = Some(295));
        assert!(matches!(err, SpecError::OutOfRange { min: 296, .. }));
    }

    #[test]
    fn rates() {
        let err = error_of(|s| s.target_rate_kbps = Some(MAX_RATE_KBPS + 1));
        assert!(matches!(err, SpecError::OutOfRange { .. }));
        assert_eq!(err.key(), Some("target_rate_kbps"));
        let err = error_of(|s| s.min_rate_kbps = Some(u64::MAX));
        assert_eq!(err.key(), Some("min_rate_kbps"));
        let err = error_of(|s| {
            s.target_rate_kbps = Some(100);
            s.min_rate_kbps = Some(200);
        });
        assert!(matches!(err, SpecError::Conflict { .. }));
        assert_eq!(
            (err.key(), err.value()),
            (Some("min_rate_kbps"), Some("200"))
        );
        assert!(err.to_string().contains("target_rate_kbps"));
        let err = error_of(|s| {
            s.target_rate_kbps = Some(60000);
            s.target_rate_cap_kbps = Some(50000);
        });
        assert_eq!(err.key(), Some("target_rate_kbps"));
        let mut uncapped = base();
        uncapped.target_rate_kbps = Some(60000);
        uncapped.target_rate_cap_kbps = Some(0);
        uncapped.validate().unwrap();
        let err = error_of(|s| {
            s.min_rate_kbps = Some(600);
            s.min_rate_cap_kbps = Some(500);
        });
        assert_eq!(err.key(), Some("min_rate_kbps"));
    }

    #[test]
    fn rate_policy_ceiling() {
        let err = error_of(|s| {
            s.rate_policy = Some(RatePolicy::Fixed);
            s.rate_policy_allowed = Some(RatePolicy::High);
        });
        assert_eq!(
            (err.key(), err.value()),
            (Some("rate_policy"), Some("fixed"))
        );
        let mut ok = base();
        ok.rate_policy = Some(RatePolicy::Fair);
        ok.rate_policy_allowed = Some(RatePolicy::Fixed);
        ok.validate().unwrap();
        // The seed's node answer: allowed "fixed", policy "fair".
        ok.rate_policy = Some(RatePolicy::Low);
        ok.rate_policy_allowed = Some(RatePolicy::Low);
        ok.validate().unwrap();
    }

    #[test]
    fn credentials() {
        let err = error_of(|s| {
            s.remote_password = Some("one".into());
            s.ssh_private_key_passphrase = Some("two".into());
        });
        assert_eq!(
            (err.key(), err.value()),
            (Some("ssh_private_key_passphrase"), Some(REDACTED))
        );
        assert!(!err.to_string().contains("two"));
        let mut same = base();
        same.remote_password = Some("one".into());
        same.ssh_private_key_passphrase = Some("one".into());
        same.validate().unwrap();
        let err = error_of(|s| s.content_protection = Some(ContentProtection::Encrypt));
        assert_eq!(err.key(), Some("content_protection_password"));
        let err = error_of(|s| {
            s.content_protection = Some(ContentProtection::Decrypt);
            s.content_protection_password = Some("".into());
        });
        assert_eq!(err.key(), Some("content_protection_password"));
    }

    #[test]
    fn file_handling_conflicts() {
        let err = error_of(|s| {
            s.move_after_transfer = Some("/archive".into());
            s.remove_after_transfer = Some(true);
        });
        assert_eq!(
            (err.key(), err.value()),
            (Some("move_after_transfer"), Some("/archive"))
        );
        let err = error_of(|s| {
            s.delete_before_transfer = Some(true);
            s.http_fallback = Some(HttpFallback::Force);
        });
        assert_eq!(err.key(), Some("delete_before_transfer"));
        let err = error_of(|s| {
            s.delete_before_transfer = Some(true);
            s.paths.push(TransferPath::new("b"));
        });
        assert!(err.to_string().contains("several sources"));
        let err = error_of(|s| s.preserve_remote_acls = Some(PreserveMode::Metafile));
        assert_eq!(
            (err.key(), err.value()),
            (Some("preserve_remote_acls"), Some("metafile"))
        );
        let err = error_of(|s| {
            s.preserve_xattrs = Some(PreserveMode::Metafile);
            s.preserve_remote_xattrs = Some(PreserveMode::None);
        });
        assert_eq!(err.key(), Some("preserve_remote_xattrs"));
        let mut ok = base();
        ok.preserve_xattrs = Some(PreserveMode::Native);
        ok.preserve_remote_xattrs = Some(PreserveMode::Metafile);
        ok.validate().unwrap();
    }

    #[test]
    fn fallback_protocol_must_match_cipher() {
        let err = error_of(|s| {
            s.http_fallback = Some(HttpFallback::Enabled);
            s.http_fallback_protocol = Some(FallbackProtocol::Http);
        });
        assert_eq!(
            (err.key(), err.value()),
            (Some("http_fallback_protocol"), Some("http"))
        );
        let err = error_of(|s| {
            s.http_fallback = Some(HttpFallback::Enabled);
            s.http_fallback_protocol = Some(FallbackProtocol::Https);
            s.cipher = Some(Cipher::None);
        });
        assert_eq!(err.key(), Some("http_fallback_protocol"));
        let mut off = base();
        off.http_fallback_protocol = Some(FallbackProtocol::Http);
        off.validate().unwrap();
    }

    #[test]
    fn tags_size_and_proxy() {
        let err = error_of(|s| {
            let mut tags = crate::JsonMap::new();
            tags.insert("k".into(), "x".repeat(MAX_TAGS_BYTES).into());
            s.tags = Some(tags);
        });
        assert!(matches!(
            err,
            SpecError::TooLong {
                max: MAX_TAGS_BYTES,
                ..
            }
        ));
        assert_eq!(err.key(), Some("tags"));
        let mut exact = base();
        let mut tags = crate::JsonMap::new();
        tags.insert("k".into(), "x".repeat(MAX_TAGS_BYTES - 8).into());
        exact.tags = Some(tags);
        exact.validate().unwrap();
        let err = error_of(|s| s.proxy = Some("http://u:hunter2@proxy".into()));
        assert_eq!(err.key(), Some("proxy"));
        assert_eq!(err.value(), Some("http://u:<redacted>@proxy"));
        assert!(!err.to_string().contains("hunter2"));
    }
}
