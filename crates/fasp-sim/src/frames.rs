//! The frames ascp-sim writes, field by field in ascp's order.

use fasp_mgmt_proto::{Frame, FrameBuilder};

use crate::options::{Cipher, FileCrypt, Mode, Options, Overwrite, Symlinks};

/// A frame under construction. Values are written as given, except that a line break or NUL
/// (which a frame cannot hold) becomes a space; paths are ESC-escaped.
pub(crate) struct Out(FrameBuilder);

impl Out {
    pub(crate) fn new(type_name: &str) -> Out {
        match Frame::builder(type_name) {
            Ok(b) => Out(b),
            // Only this crate's constant type names reach here.
            Err(_) => unreachable!("invalid frame type {type_name:?}"),
        }
    }

    pub(crate) fn text(&mut self, key: &str, value: &str) -> &mut Out {
        if self.0.push(key, value).is_err() {
            let clean: String = value
                .chars()
                .map(|c| {
                    if matches!(c, '\n' | '\r' | '\0') {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            let _ = self.0.push(key, &clean);
        }
        self
    }

    pub(crate) fn num(&mut self, key: &str, value: u64) -> &mut Out {
        self.text(key, &value.to_string())
    }

    pub(crate) fn yes_no(&mut self, key: &str, value: bool) -> &mut Out {
        self.text(key, if value { "Yes" } else { "No" })
    }

    pub(crate) fn path(&mut self, key: &str, value: &str) -> &mut Out {
        if self.0.push_path(key, value).is_err() {
            let _ = self.0.push_path(key, &value.replace('\0', ""));
        }
        self
    }

    pub(crate) fn finish(self) -> Frame {
        self.0.finish()
    }
}

/// Which SESSION a real ascp 3.9 would write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The session failed before the two ascp negotiated (no SSH, failed login, bad
    /// arguments): the local defaults (`RateCap: 18446744073709551`, `PolicyCap: Unset`,
    /// `PeerVLinkVersion: 0`...). `connected` adds `RemoteAddress` (SSH was reached).
    Initial { connected: bool },
    /// The session was negotiated with the peer: what the peer granted.
    Negotiated,
}

/// The per-run values of INIT and SESSION that do not come from the options.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ident {
    pub(crate) session_id: String,
    pub(crate) cookie: Option<String>,
    /// Echoed only by the HTTP-fallback SESSION.
    pub(crate) token: Option<String>,
    /// Sources as SESSION shows them (prefix glued, normalised); `None`: no `Source` key.
    pub(crate) sources: Option<Vec<String>>,
    pub(crate) destination: Option<String>,
    pub(crate) client_user: String,
    pub(crate) remote_address: String,
    /// `Port` override (the HTTP fallback port for the second session).
    pub(crate) port: Option<u16>,
}

pub(crate) fn direction(o: &Options) -> &'static str {
    match o.mode {
        Mode::Send => "Send",
        Mode::Recv => "Receive",
    }
}

/// `INIT`: SessionId, Direction, UserStr, Cookie, Operation (the real order).
pub(crate) fn init(o: &Options, id: &Ident) -> Frame {
    let mut f = Out::new("INIT");
    f.text("SessionId", &id.session_id)
        .text("Direction", direction(o));
    if let Some(u) = &o.user_str {
        f.text("UserStr", u);
    }
    if let Some(c) = &id.cookie {
        f.text("Cookie", c);
    }
    f.text("Operation", "Transfer");
    f.finish()
}

/// `SESSION`, with the keys, order and value formats of the real ascp 3.9 captures.
pub(crate) fn session(o: &Options, id: &Ident, stage: Stage, host_user: &str) -> Frame {
    let negotiated = stage == Stage::Negotiated;
    let mut f = Out::new("SESSION");
    f.num("Rate", o.target_rate())
        .num("MinRate", o.min_rate())
        .text("SessionId", &id.session_id)
        .text("User", o.user.as_deref().unwrap_or(host_user));
    if let Some(h) = &o.host {
        f.text("Host", h);
    }
    f.yes_no("Encryption", o.cipher != Cipher::None)
        .text("Adaptive", o.policy.adaptive_word())
        .text("Direction", direction(o))
        .text("Remote", "No")
        .num("Port", u64::from(id.port.or(o.udp_port).unwrap_or(33001)));
    if let Some(u) = &o.user_str {
        f.text("UserStr", u);
    }
    if let Some(c) = &id.cookie {
        f.text("Cookie", c);
    }
    if let Some(s) = &id.sources {
        f.path("Source", &s.join("\t"));
    }
    if let Some(d) = &id.destination {
        f.path("Destination", d);
    }
    f.text("Operation", "Transfer")
        .num("Priority", u64::from(o.policy.priority()));
    if o.fallback.is_some() {
        f.text("FallbackProtocol", "http");
    }
    if let Some(tags) = &o.tags {
        let aspera = serde_json::from_str::<serde_json::Value>(tags)
            .ok()
            .and_then(|v| v.get("aspera").cloned());
        let field = |k: &str| {
            aspera.as_ref().and_then(|a| a.get(k)).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        if let Some(x) = field("xfer_id") {
            f.text("XferId", &x);
        }
        if let Some(x) = field("xfer_retry") {
            f.text("XferRetry", &x);
        }
        f.text("Tags", tags);
    }
    if let Some(t) = &id.token {
        f.text("Token", t);
    }
    let cap = if negotiated {
        "4503599627370495"
    } else {
        "18446744073709551"
    };
    f.text("RateCap", cap)
        .text("MinRateCap", cap)
        .text("PolicyCap", if negotiated { "Fixed" } else { "Unset" })
        .text("RateLock", "No")
        .text("MinRateLock", "No")
        .text("PolicyLock", "No")
        .text("ServerHostname", o.host.as_deref().unwrap_or(""))
        .text("FileChecksumType", "none")
        .text("ClientUser", &id.client_user);
    if let Some(p) = &o.source_prefix {
        f.path("SourcePrefix", p);
    }
    if negotiated || stage == (Stage::Initial { connected: true }) {
        f.text("RemoteAddress", &id.remote_address);
    }
    f.num("TCPPort", u64::from(o.ssh_port.unwrap_or(22)))
        .text("Cipher", o.cipher.session_word())
        .text(
            "ResumePolicy",
            match o.resume {
                0 => "policy_none",
                1 => "policy_attrs",
                2 => "policy_sparse_csum_old",
                _ => "policy_full_csum",
            },
        )
        .num("CreatePolicy", create_policy(o))
        .text(
            "ManifestPolicy",
            if o.manifest_text {
                "manifest_text"
            } else {
                "manifest_none"
            },
        )
        .yes_no("Precalc", o.precalc)
        .text(
            "OverwritePolicy",
            if o.overwrite == Overwrite::Diff {
                "overwrite_deny"
            } else {
                "overwrite_none"
            },
        )
        .text("RTTAutocorrect", "Yes")
        .num("TimePolicy", time_policy(o));
    if let Some(p) = &o.manifest_path {
        f.path("ManifestPath", p);
    }
    f.text(
        "ManifestInprogress",
        o.manifest_inprogress
            .as_deref()
            .unwrap_or(".aspera-inprogress"),
    );
    if let Some(p) = &o.partial_suffix {
        f.text("PartialFiles", p);
    }
    f.yes_no("FilesEncrypt", o.file_crypt == Some(FileCrypt::Encrypt))
        .yes_no("FilesDecrypt", o.file_crypt == Some(FileCrypt::Decrypt))
        .num("DatagramSize", u64::from(o.dgram_size.unwrap_or(0)))
        .num("XoptFlags", xopt_flags(o, negotiated))
        .text("VLinkVersion", "1")
        .text("PeerVLinkVersion", if negotiated { "1" } else { "0" })
        .text("VLinkLocalEnabled", "No")
        .text("VLinkRemoteEnabled", "No")
        .text("DSPipelineDepth", "32")
        .text("PeerDSPipelineDepth", "0");
    if let Some(b) = &o.src_base {
        f.path("SourceBase", &clean_path(b));
    }
    let (nodes, node) = o.cluster.map_or((1, 0), |(m, n)| (n, m - 1));
    f.num("ReadBlockSize", o.read_block)
        .num("WriteBlockSize", o.write_block)
        .num("ClusterNumNodes", u64::from(nodes))
        .num("ClusterNodeId", u64::from(node))
        .yes_no("MoveRange", o.range.is_some());
    if let Some((low, high)) = o.range {
        f.num("MoveRangeLow", low).num("MoveRangeHigh", high);
    }
    f.yes_no("Keepalive", o.keepalive)
        .text("TestLogin", "No")
        .text("UseProxy", "No")
        .text(
            "RateControlAlgorithm",
            if negotiated || o.mode == Mode::Recv {
                "alg_delay"
            } else {
                "alg_none"
            },
        );
    f.finish()
}

/// `CreatePolicy` bits seen from the real ascp: 1 modification time kept (`-p` or
/// `--preserve-modification-time`), 8 `-d`, 32 uid, 64 gid.
fn create_policy(o: &Options) -> u64 {
    let mut bits = 0;
    if o.preserve_times || o.preserve_mtime {
        bits |= 1;
    }
    if o.create_dir {
        bits |= 8;
    }
    if o.preserve_uid {
        bits |= 32;
    }
    if o.preserve_gid {
        bits |= 64;
    }
    bits
}

/// `TimePolicy` bits: 1 modification, 2 access, 4 creation (all three with `-p`), 16
/// source access time.
fn time_policy(o: &Options) -> u64 {
    let mut bits = 0;
    if o.preserve_times {
        bits |= 7;
    }
    if o.preserve_mtime {
        bits |= 1;
    }
    if o.preserve_atime {
        bits |= 2;
    }
    if o.preserve_ctime {
        bits |= 4;
    }
    if o.preserve_source_atime {
        bits |= 16;
    }
    bits
}

/// `XoptFlags` as far as the real ascp showed its bits: symbolic links (16 follow, 8 copy,
/// 4 skip, 8 + 262144 copy+force), 32 skip special files, 65536 remove after transfer,
/// 131072 remove empty directories, 2^24 move after transfer; before negotiation 256, 2048
/// with a file list, 64 / 128 with `--file-crypt=encrypt` / `decrypt`; after it 2048, 64
/// (send) or 128 (receive), and 2^31 when encrypted in transit.
fn xopt_flags(o: &Options, negotiated: bool) -> u64 {
    let mut bits = match o.symlinks {
        Symlinks::Follow => 16,
        Symlinks::Copy => 8,
        Symlinks::Skip => 4,
        Symlinks::CopyForce => 8 | 262_144,
    };
    if o.skip_special {
        bits |= 32;
    }
    if o.remove_after {
        bits |= 65_536;
    }
    if o.remove_empty_dirs {
        bits |= 131_072;
    }
    if o.move_after.is_some() {
        bits |= 1 << 24;
    }
    if negotiated {
        bits |= 2048;
        bits |= if o.mode == Mode::Send { 64 } else { 128 };
        if o.cipher != Cipher::None {
            bits |= 1 << 31;
        }
    } else {
        bits |= 256;
        if o.file_list.is_some() || o.file_pair_list.is_some() {
            bits |= 2048;
        }
        bits |= match o.file_crypt {
            Some(FileCrypt::Encrypt) => 64,
            Some(FileCrypt::Decrypt) => 128,
            None => 0,
        };
    }
    bits
}

/// The `ERROR` ascp writes when a session fails before any file moved: Loss, Code,
/// Description, SessionId, UserStr (the real order).
pub(crate) fn early_error(o: &Options, session_id: &str, code: u64, description: &str) -> Frame {
    let mut f = Out::new("ERROR");
    f.num("Loss", 0)
        .num("Code", code)
        .text("Description", description)
        .text("SessionId", session_id);
    if let Some(u) = &o.user_str {
        f.text("UserStr", u);
    }
    f.finish()
}

/// Normalise a path the way ascp shows it: `.` components and repeated slashes removed,
/// `dir/..` folded, a trailing slash dropped (`./x.txt` is `x.txt`, `dir/../x` is `x`).
pub(crate) fn clean_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Glue `--source-prefix` to a source as ascp does (exactly one `/` between them), then
/// normalise.
pub(crate) fn with_prefix(prefix: Option<&str>, source: &str) -> String {
    match prefix.filter(|p| !p.is_empty()) {
        None => clean_path(source),
        Some(p) => clean_path(&format!("{}/{}", p.trim_end_matches('/'), source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_like_ascp() {
        for (input, want) in [
            ("./x.txt", "x.txt"),
            ("./a:b", "a:b"),
            ("dir/../x", "x"),
            ("/srv//inbox/", "/srv/inbox"),
            (".", "."),
            ("/", "/"),
            ("../a", "../a"),
            ("/../a", "/a"),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
        assert_eq!(with_prefix(Some("/pre/"), "/a.txt"), "/pre/a.txt");
        assert_eq!(with_prefix(Some("./pre"), "a.txt"), "pre/a.txt");
        assert_eq!(with_prefix(None, "./a"), "a");
    }

    #[test]
    fn values_with_line_breaks_are_made_writable() {
        let mut f = Out::new("SESSION");
        f.text("Tags", "{\"a\":\n1}").path("Source", "a\nb");
        let f = f.finish();
        assert_eq!(f.get("Tags"), Some("{\"a\": 1}"));
        assert_eq!(f.get("Source"), Some("a\u{1b}nb"));
    }
}
