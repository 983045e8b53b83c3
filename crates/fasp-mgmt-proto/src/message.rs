//! Typed, borrowed views of the messages ascp sends.
//!
//! Each view is built from a [`Frame`] in one pass over its fields. Numbers are `u64` (ascp
//! sends values such as `RateCap: 18446744073709551`), `Yes`/`No` are `bool`, policy,
//! direction and operation are enums that keep unknown words, path values (`File`, `Source`,
//! `Destination`) are ESC-decoded. A value that does not parse is a [`FieldError`] naming the
//! message, the field and the value; fields a view does not know stay readable on the frame.

use std::borrow::Cow;
use std::fmt;

use crate::error::{FieldError, FieldErrorKind};
use crate::escape::unescape_path;
use crate::frame::{Frame, MessageType};

/// A message from ascp, typed by its `Type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// `INIT`: sent right after ascp connects.
    Init(Init<'a>),
    /// `SESSION`: sent once SSH is connected and both ascp have negotiated.
    Session(Box<Session<'a>>),
    /// `NOTIFICATION`: rate/path MTU/bandwidth news, or the pre-calculated job size.
    Notification(Notification<'a>),
    /// `STATS`: periodic progress of one file (the first for a file means it started).
    Stats(FileStats<'a>),
    /// `STOP`: a file finished.
    Stop(FileStats<'a>),
    /// `SKIP`: a file was left alone (already there, overwrite policy...).
    Skip(FileStats<'a>),
    /// `FILEERROR`: a file failed (sent instead of `STOP`).
    FileError(FileError<'a>),
    /// `ARGSTOP`: every file of one source argument was handled.
    ArgStop(ArgStop<'a>),
    /// `DONE`: the session ended successfully.
    Done(SessionEnd<'a>),
    /// `ERROR`: the session ended with an error (sent instead of `DONE`).
    Error(SessionError<'a>),
    /// `QUERY`: ascp asks the manager a question (answer with a `QUERYRSP`).
    Query(Query<'a>),
    /// Any other type, or a frame without `Type`: read it through the frame.
    Other(&'a Frame),
}

impl<'a> Message<'a> {
    /// Read a frame sent by ascp into its typed view.
    pub fn from_frame(frame: &'a Frame) -> Result<Message<'a>, FieldError> {
        Ok(match frame.kind() {
            MessageType::Init => Message::Init(Init::from_frame(frame)?),
            MessageType::Session => Message::Session(Box::new(Session::from_frame(frame)?)),
            MessageType::Notification => Message::Notification(Notification::from_frame(frame)?),
            // Filled in place: these views are large and STATS is the hot path.
            MessageType::Stats => {
                let mut m = Message::Stats(FileStats::default());
                if let Message::Stats(s) = &mut m {
                    s.fill(frame, "STATS")?;
                }
                m
            }
            MessageType::Stop => Message::Stop(FileStats::from_frame(frame)?),
            MessageType::Skip => Message::Skip(FileStats::from_frame(frame)?),
            MessageType::FileError => Message::FileError(FileError::from_frame(frame)?),
            MessageType::ArgStop => Message::ArgStop(ArgStop::from_frame(frame)?),
            MessageType::Done => Message::Done(SessionEnd::from_frame(frame)?),
            MessageType::Error => Message::Error(SessionError::from_frame(frame)?),
            MessageType::Query => Message::Query(Query::from_frame(frame)?),
            _ => Message::Other(frame),
        })
    }

    /// The `SessionId` the message belongs to, when it names one.
    pub fn session_id(&self) -> Option<&'a str> {
        match self {
            Message::Init(m) => m.session_id,
            Message::Session(m) => m.session_id,
            Message::Notification(m) => m.session_id,
            Message::Stats(m) | Message::Stop(m) | Message::Skip(m) => m.session_id,
            Message::FileError(m) => m.stats.session_id,
            Message::ArgStop(m) => m.session_id,
            Message::Done(m) => m.session_id,
            Message::Error(m) => m.end.session_id,
            Message::Query(m) => m.session_id,
            Message::Other(f) => f.get("SessionId"),
        }
    }
}

/// A field value the protocol defines as secret (`Cookie`, `Token`): `Debug` prints
/// `<redacted>`; [`Secret::expose`] gives the value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret<'a>(&'a str);

impl<'a> Secret<'a> {
    /// The secret value. Do not log it.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::frame::REDACTED)
    }
}

macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $($word:literal)|+),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name<'a> {
            $($(#[$vm])* $variant,)+
            /// A word this crate does not know, kept as written.
            Other(&'a str),
        }

        impl<'a> $name<'a> {
            /// Read the wire word (unknown words become `Other`).
            pub fn parse(word: &'a str) -> $name<'a> {
                match word {
                    $($($word)|+ => $name::$variant,)+
                    other => $name::Other(other),
                }
            }

            /// The wire word.
            pub fn as_str(&self) -> &'a str {
                match self {
                    $($name::$variant => word_enum!(@first $($word)|+),)+
                    $name::Other(s) => s,
                }
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    (@first $first:literal $(| $rest:literal)*) => { $first };
}

word_enum!(
    /// Transfer direction (`Direction`).
    Direction {
        /// `Send`: this ascp uploads.
        Send = "Send",
        /// `Receive`: this ascp downloads.
        Receive = "Receive",
    }
);

word_enum!(
    /// What the session does (`Operation`).
    Operation {
        /// `Transfer`
        Transfer = "Transfer",
        /// `BWMeasurement`: a bandwidth measurement only.
        BwMeasurement = "BWMeasurement",
        /// `Stream`
        Stream = "Stream",
    }
);

word_enum!(
    /// Rate policy as ascp reports it (`Adaptive`, `PolicyCap`). The manager's words "high"
    /// and "fair" are both `Adaptive` (with priority 1 and 2); "low" is `Trickle`.
    Adaptive {
        /// `Fixed`
        Fixed = "Fixed",
        /// `Adaptive`
        Adaptive = "Adaptive",
        /// `Trickle`
        Trickle = "Trickle",
    }
);

/// Helpers shared by the views: parse one field value.
struct Ctx(&'static str);

impl Ctx {
    fn num(&self, key: &str, v: &str) -> Result<Option<u64>, FieldError> {
        parse_u64(v)
            .map(Some)
            .ok_or_else(|| FieldError::invalid(self.0, key, "an unsigned integer", v))
    }

    fn flag(&self, key: &str, v: &str) -> Result<Option<bool>, FieldError> {
        if v.eq_ignore_ascii_case("yes") {
            Ok(Some(true))
        } else if v.eq_ignore_ascii_case("no") {
            Ok(Some(false))
        } else {
            Err(FieldError::invalid(self.0, key, "Yes or No", v))
        }
    }

    fn expect(
        &self,
        frame: &Frame,
        types: &[&str],
        expected: &'static str,
    ) -> Result<(), FieldError> {
        let t = frame.type_name().unwrap_or("");
        if types.contains(&t) {
            Ok(())
        } else {
            Err(FieldError {
                message: t.into(),
                key: "Type".into(),
                kind: FieldErrorKind::WrongType { expected },
            })
        }
    }
}

/// Decimal u64 without sign (surrounding spaces tolerated), checked for overflow.
///
/// Up to 16 digits are read eight at a time (SWAR: one load, two checks, three multiplies per
/// eight digits); longer values and values with spaces take the bytewise path.
#[inline]
pub(crate) fn parse_u64(v: &str) -> Option<u64> {
    let b = v.as_bytes();
    match b.len() {
        1..=8 => eight_digits(b),
        9..=16 => {
            let (hi, lo) = b.split_at(b.len() - 8);
            Some(eight_digits(hi)? * 100_000_000 + eight_digits(lo)?)
        }
        _ => parse_u64_slow(v),
    }
    .or_else(|| parse_u64_slow(v))
}

/// One to eight ASCII digits as a number, or `None` if any byte is not a digit.
#[inline]
fn eight_digits(b: &[u8]) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let n = b.len();
    if n == 0 || n > 8 {
        return None;
    }
    // The digits as a little-endian word (fixed-size reads, no copy loop), then left-padded
    // with '0': the first digit lands in byte 8 - n.
    let word = if n >= 4 {
        let four = |s: &[u8]| u64::from(u32::from_le_bytes(s.try_into().unwrap_or([0; 4])));
        four(&b[..4]) | four(&b[n - 4..]) << ((n - 4) * 8)
    } else {
        u64::from(b[0]) | u64::from(b[n / 2]) << (n / 2 * 8) | u64::from(b[n - 1]) << ((n - 1) * 8)
    };
    let x = if n == 8 {
        word
    } else {
        word << ((8 - n) * 8) | ZEROS >> (n * 8)
    };
    swar_digits(x)
}

/// The number in `raw[start..end]`, as [`parse_u64`] reads it. Up to 16 digits, the digits are
/// read with one or two 8-byte loads ending at `end` (a value in a frame has at least the
/// header line and its key before it), the bytes before the value masked off. Inlined into
/// its two callers (the eager `FileStats` loop and the lazy `StatsView` accessors).
#[inline(always)]
pub(crate) fn number_in(raw: &[u8], start: usize, end: usize) -> Option<u64> {
    let n = end.wrapping_sub(start);
    let word = |at: usize| u64::from_le_bytes(raw[at - 8..at].try_into().unwrap_or([0; 8]));
    if end <= raw.len() {
        // One or two digits (`StartByte: 0`, `Delay: 12`...): bytewise is cheaper.
        if n.wrapping_sub(1) < 2 {
            let d = |i: usize| u64::from(raw[i].wrapping_sub(b'0'));
            let (a, b) = (d(start), d(end - 1));
            if a <= 9 && b <= 9 {
                return Some(if n == 1 { a } else { a * 10 + b });
            }
        } else if n.wrapping_sub(1) < 8 && end >= 8 {
            if let Some(v) = last_digits(word(end), n) {
                return Some(v);
            }
        } else if n.wrapping_sub(9) < 8 && end >= 16 {
            if let (Some(hi), Some(lo)) =
                (last_digits(word(end - 8), n - 8), swar_digits(word(end)))
            {
                return Some(hi * 100_000_000 + lo);
            }
        }
    }
    number_in_slow(raw, start, end)
}

/// [`number_in`] for 17 digits or more, spaces, or a value too close to the frame's start.
#[cold]
#[inline(never)]
fn number_in_slow(raw: &[u8], start: usize, end: usize) -> Option<u64> {
    parse_u64(crate::frame::text(raw.get(start..end)?))
}

/// The number written by the last `n` bytes (1 to 8) of a little-endian word, or `None` if one
/// of them is not a digit.
#[inline]
fn last_digits(word: u64, n: usize) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Bytes before the digits become '0'.
    let x = if n >= 8 {
        word
    } else {
        let keep = u64::MAX << ((8 - n) * 8);
        (word & keep) | (ZEROS & !keep)
    };
    swar_digits(x)
}

/// Eight ASCII digits (the first in the lowest byte) as a number, or `None`.
#[inline]
fn swar_digits(x: u64) -> Option<u64> {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Every byte is 0x30..=0x3f, and stays so plus 6 (so at most 0x39).
    if x & HIGH != ZEROS || x.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    let d = x - ZEROS;
    // Pairs of digits, then fours, then the eight.
    let d = (d & 0x000f_000f_000f_000f) * 10 + ((d >> 8) & 0x000f_000f_000f_000f);
    let d = (d & 0x0000_00ff_0000_00ff) * 100 + ((d >> 16) & 0x0000_00ff_0000_00ff);
    Some((d & 0xffff) * 10_000 + (d >> 32))
}

/// 20 digits (checked for overflow), or digits with spaces around them.
#[cold]
fn parse_u64_slow(v: &str) -> Option<u64> {
    let t = v.trim_matches(' ');
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    t.bytes().try_fold(0u64, |n, c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `INIT`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Init<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `Direction`
    pub direction: Option<Direction<'a>>,
    /// `Operation`
    pub operation: Option<Operation<'a>>,
    /// `UserStr`: the manager's `-u` value, echoed.
    pub user_str: Option<&'a str>,
    /// `Cookie`
    pub cookie: Option<Secret<'a>>,
}

impl<'a> Init<'a> {
    /// Read an `INIT` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<Init<'a>, FieldError> {
        Ctx("INIT").expect(frame, &["INIT"], "INIT")?;
        let mut m = Init::default();
        for f in frame.fields() {
            match f.key {
                "SessionId" => m.session_id = Some(f.value),
                "Direction" => m.direction = Some(Direction::parse(f.value)),
                "Operation" => m.operation = Some(Operation::parse(f.value)),
                "UserStr" => m.user_str = Some(f.value),
                "Cookie" => m.cookie = Some(Secret(f.value)),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// `SESSION`: the negotiated session parameters.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Session<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `Direction`
    pub direction: Option<Direction<'a>>,
    /// `Operation`
    pub operation: Option<Operation<'a>>,
    /// `Adaptive`: the rate policy.
    pub adaptive: Option<Adaptive<'a>>,
    /// `Priority`: 1 high, 2 regular.
    pub priority: Option<u64>,
    /// `Rate`: target rate, Kbps.
    pub rate_kbps: Option<u64>,
    /// `MinRate`: minimum rate, Kbps.
    pub min_rate_kbps: Option<u64>,
    /// `RateCap`: highest target rate the server allows.
    pub rate_cap_kbps: Option<u64>,
    /// `MinRateCap`
    pub min_rate_cap_kbps: Option<u64>,
    /// `PolicyCap` (`Unset` when the server sets none).
    pub policy_cap: Option<Adaptive<'a>>,
    /// `PriorityCap`
    pub priority_cap: Option<u64>,
    /// `RateLock`: the server forbids target rate changes.
    pub rate_lock: Option<bool>,
    /// `MinRateLock`
    pub min_rate_lock: Option<bool>,
    /// `PolicyLock`
    pub policy_lock: Option<bool>,
    /// `Host`
    pub host: Option<&'a str>,
    /// `User`
    pub user: Option<&'a str>,
    /// `Port`: UDP port for FASP.
    pub port: Option<u64>,
    /// `TCPPort`: SSH port.
    pub tcp_port: Option<u64>,
    /// `Encryption`
    pub encryption: Option<bool>,
    /// `Cipher`
    pub cipher: Option<&'a str>,
    /// `Remote`: this ascp is the server side.
    pub remote: Option<bool>,
    /// `Source`, raw (sources are TAB-separated; see [`Session::sources`]).
    pub source: Option<&'a str>,
    /// `Destination`, ESC-decoded.
    pub destination: Option<Cow<'a, str>>,
    /// `Cookie`
    pub cookie: Option<Secret<'a>>,
    /// `Token` (echoed for HTTP fallback sessions)
    pub token: Option<Secret<'a>>,
    /// `RetryTimeout`, seconds.
    pub retry_timeout: Option<u64>,
    /// `FallbackProtocol`
    pub fallback_protocol: Option<&'a str>,
    /// `XferId` (from `--tags`)
    pub xfer_id: Option<&'a str>,
    /// `XferRetry` (from `--tags`)
    pub xfer_retry: Option<u64>,
    /// `Tags`: the JSON tags.
    pub tags: Option<&'a str>,
    /// `Keepalive`: a persistent session.
    pub keepalive: Option<bool>,
    /// `Precalc`: job size pre-calculation.
    pub precalc: Option<bool>,
    /// `FileChecksumType`
    pub file_checksum_type: Option<&'a str>,
    /// `ResumePolicy`
    pub resume_policy: Option<&'a str>,
    /// `OverwritePolicy`
    pub overwrite_policy: Option<&'a str>,
    /// `DatagramSize`
    pub datagram_size: Option<u64>,
    /// `ServerHostname`
    pub server_hostname: Option<&'a str>,
    /// `ClientUser`
    pub client_user: Option<&'a str>,
    /// `RemoteAddress`
    pub remote_address: Option<&'a str>,
}

impl<'a> Session<'a> {
    /// Read a `SESSION` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<Session<'a>, FieldError> {
        let c = Ctx("SESSION");
        c.expect(frame, &["SESSION"], "SESSION")?;
        let mut m = Session::default();
        for f in frame.fields() {
            let (k, v) = (f.key, f.value);
            match k {
                "SessionId" => m.session_id = Some(v),
                "UserStr" => m.user_str = Some(v),
                "Direction" => m.direction = Some(Direction::parse(v)),
                "Operation" => m.operation = Some(Operation::parse(v)),
                "Adaptive" => m.adaptive = Some(Adaptive::parse(v)),
                "Priority" => m.priority = c.num(k, v)?,
                "Rate" => m.rate_kbps = c.num(k, v)?,
                "MinRate" => m.min_rate_kbps = c.num(k, v)?,
                "RateCap" => m.rate_cap_kbps = c.num(k, v)?,
                "MinRateCap" => m.min_rate_cap_kbps = c.num(k, v)?,
                "PolicyCap" => m.policy_cap = Some(Adaptive::parse(v)),
                "PriorityCap" => m.priority_cap = c.num(k, v)?,
                "RateLock" => m.rate_lock = c.flag(k, v)?,
                "MinRateLock" => m.min_rate_lock = c.flag(k, v)?,
                "PolicyLock" => m.policy_lock = c.flag(k, v)?,
                "Host" => m.host = Some(v),
                "User" => m.user = Some(v),
                "Port" => m.port = c.num(k, v)?,
                "TCPPort" => m.tcp_port = c.num(k, v)?,
                "Encryption" => m.encryption = c.flag(k, v)?,
                "Cipher" => m.cipher = Some(v),
                "Remote" => m.remote = c.flag(k, v)?,
                "Source" => m.source = Some(v),
                "Destination" => m.destination = Some(unescape_path(v)),
                "Cookie" => m.cookie = Some(Secret(v)),
                "Token" => m.token = Some(Secret(v)),
                "RetryTimeout" => m.retry_timeout = c.num(k, v)?,
                "FallbackProtocol" => m.fallback_protocol = Some(v),
                "XferId" => m.xfer_id = Some(v),
                "XferRetry" => m.xfer_retry = c.num(k, v)?,
                "Tags" => m.tags = Some(v),
                "Keepalive" => m.keepalive = c.flag(k, v)?,
                "Precalc" => m.precalc = c.flag(k, v)?,
                "FileChecksumType" => m.file_checksum_type = Some(v),
                "ResumePolicy" => m.resume_policy = Some(v),
                "OverwritePolicy" => m.overwrite_policy = Some(v),
                "DatagramSize" => m.datagram_size = c.num(k, v)?,
                "ServerHostname" => m.server_hostname = Some(v),
                "ClientUser" => m.client_user = Some(v),
                "RemoteAddress" => m.remote_address = Some(v),
                _ => {}
            }
        }
        Ok(m)
    }

    /// The source arguments: `Source` split on TAB, each ESC-decoded.
    pub fn sources(&self) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        self.source
            .into_iter()
            .flat_map(|s| s.split('\t'))
            .filter(|s| !s.is_empty())
            .map(unescape_path)
    }
}

/// Job size counted before the transfer (`--precalculate-job-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PreTransfer {
    /// `PreTransferFiles`: regular files.
    pub files: Option<u64>,
    /// `PreTransferDirs`: directories.
    pub dirs: Option<u64>,
    /// `PreTransferSpecial`: special files.
    pub special: Option<u64>,
    /// `PreTransferFailed`: files and directories that could not be read.
    pub failed: Option<u64>,
    /// `PreTransferBytes`: total size in bytes.
    pub bytes: Option<u64>,
}

/// `NOTIFICATION`: the rate/PMTU/bandwidth form, or the pre-calculation form.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Notification<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `Adaptive`
    pub adaptive: Option<Adaptive<'a>>,
    /// `Priority`
    pub priority: Option<u64>,
    /// `Rate`, Kbps.
    pub rate_kbps: Option<u64>,
    /// `MinRate`, Kbps.
    pub min_rate_kbps: Option<u64>,
    /// `BWMeasurement`, Kbps.
    pub bw_measurement_kbps: Option<u64>,
    /// `PMTU`
    pub pmtu: Option<u64>,
    /// The `PreTransfer*` counts, when this is the pre-calculation form.
    pub pre_transfer: Option<PreTransfer>,
}

impl<'a> Notification<'a> {
    /// Read a `NOTIFICATION` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<Notification<'a>, FieldError> {
        let c = Ctx("NOTIFICATION");
        c.expect(frame, &["NOTIFICATION"], "NOTIFICATION")?;
        let mut m = Notification::default();
        let mut pre = PreTransfer::default();
        let mut has_pre = false;
        for f in frame.fields() {
            let (k, v) = (f.key, f.value);
            match k {
                "SessionId" => m.session_id = Some(v),
                "UserStr" => m.user_str = Some(v),
                "Adaptive" => m.adaptive = Some(Adaptive::parse(v)),
                "Priority" => m.priority = c.num(k, v)?,
                "Rate" => m.rate_kbps = c.num(k, v)?,
                "MinRate" => m.min_rate_kbps = c.num(k, v)?,
                "BWMeasurement" => m.bw_measurement_kbps = c.num(k, v)?,
                "PMTU" => m.pmtu = c.num(k, v)?,
                "PreTransferFiles" => (pre.files, has_pre) = (c.num(k, v)?, true),
                "PreTransferDirs" => (pre.dirs, has_pre) = (c.num(k, v)?, true),
                "PreTransferSpecial" => (pre.special, has_pre) = (c.num(k, v)?, true),
                "PreTransferFailed" => (pre.failed, has_pre) = (c.num(k, v)?, true),
                "PreTransferBytes" => (pre.bytes, has_pre) = (c.num(k, v)?, true),
                _ => {}
            }
        }
        m.pre_transfer = has_pre.then_some(pre);
        Ok(m)
    }
}

/// Per-file figures of `STATS`, `STOP` and `SKIP` (and the base of `FILEERROR`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FileStats<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `File`, ESC-decoded.
    pub file: Option<Cow<'a, str>>,
    /// `Size`: file size in bytes.
    pub size: Option<u64>,
    /// `Written`: bytes of this file written.
    pub written: Option<u64>,
    /// `Bytescont`: contiguous bytes at the destination.
    pub bytes_contiguous: Option<u64>,
    /// `StartByte`: where the transfer of this file started (resume offset).
    pub start_byte: Option<u64>,
    /// `EndByte`: last byte to transfer (range transfers).
    pub end_byte: Option<u64>,
    /// `Delay`: last round-trip time measured, ms.
    pub delay_ms: Option<u64>,
    /// `Elapsedusec`: session time elapsed, µs.
    pub elapsed_usec: Option<u64>,
    /// `FileBytes`: bytes written in the session so far.
    pub file_bytes: Option<u64>,
    /// `TransferBytes`: bytes transferred in the session so far.
    pub transfer_bytes: Option<u64>,
    /// `Loss`: bytes lost in the session so far.
    pub loss: Option<u64>,
    /// `FaspFileArgIndex`: the source argument this file came from.
    pub arg_index: Option<u64>,
    /// `FaspFileID`
    pub file_id: Option<&'a str>,
    /// `FileChecksum` (STOP, with `--file-checksum`)
    pub checksum: Option<&'a str>,
    /// `FileChecksumType` (`md5`, `sha1`...)
    pub checksum_type: Option<&'a str>,
}

impl<'a> FileStats<'a> {
    /// Read a `STATS`, `STOP`, `SKIP` or `FILEERROR` frame's per-file figures.
    pub fn from_frame(frame: &'a Frame) -> Result<FileStats<'a>, FieldError> {
        let c = Ctx(match frame.kind() {
            MessageType::Stop => "STOP",
            MessageType::Skip => "SKIP",
            MessageType::FileError => "FILEERROR",
            _ => "STATS",
        });
        c.expect(
            frame,
            &["STATS", "STOP", "SKIP", "FILEERROR"],
            "STATS, STOP, SKIP or FILEERROR",
        )?;
        let mut m = FileStats::default();
        m.fill(frame, c.0)?;
        Ok(m)
    }

    fn fill(&mut self, frame: &'a Frame, message: &'static str) -> Result<(), FieldError> {
        let raw = frame.as_bytes();
        for (k, start, end) in frame.raw_fields() {
            if self.take(k, raw, start, end) == Some(false) {
                let v = crate::frame::text(raw.get(start..end).unwrap_or_default());
                return Err(not_a_number(message, k, v));
            }
        }
        Ok(())
    }

    /// Take one field, its value being `raw[start..end]`: `None` when the key is not a
    /// per-file one, `Some(false)` when its number does not parse. Dispatches on the key's
    /// length and first byte: this runs for every field of every STATS frame.
    #[inline(always)]
    fn take(&mut self, k: &str, raw: &'a [u8], start: usize, end: usize) -> Option<bool> {
        let text = || crate::frame::text(raw.get(start..end).unwrap_or_default());
        let slot = match (k.len(), k.as_bytes().first().copied().unwrap_or(0)) {
            (4, b'F') if k == "File" => {
                self.file = Some(unescape_path(text()));
                return Some(true);
            }
            (4, b'S') if k == "Size" => &mut self.size,
            (4, b'L') if k == "Loss" => &mut self.loss,
            (5, b'D') if k == "Delay" => &mut self.delay_ms,
            (7, b'W') if k == "Written" => &mut self.written,
            (7, b'E') if k == "EndByte" => &mut self.end_byte,
            (7, b'U') if k == "UserStr" => {
                self.user_str = Some(text());
                return Some(true);
            }
            (9, b'B') if k == "Bytescont" => &mut self.bytes_contiguous,
            (9, b'F') if k == "FileBytes" => &mut self.file_bytes,
            (9, b'S') if k == "SessionId" => {
                self.session_id = Some(text());
                return Some(true);
            }
            (9, b'S') if k == "StartByte" => &mut self.start_byte,
            (10, b'F') if k == "FaspFileID" => {
                self.file_id = Some(text());
                return Some(true);
            }
            (11, b'E') if k == "Elapsedusec" => &mut self.elapsed_usec,
            (12, b'F') if k == "FileChecksum" => {
                self.checksum = Some(text());
                return Some(true);
            }
            (13, b'T') if k == "TransferBytes" => &mut self.transfer_bytes,
            (16, b'F') if k == "FaspFileArgIndex" => &mut self.arg_index,
            (16, b'F') if k == "FileChecksumType" => {
                self.checksum_type = Some(text());
                return Some(true);
            }
            _ => return None,
        };
        *slot = number_in(raw, start, end);
        Some(slot.is_some())
    }

    /// [`FileStats::take`] for the views that embed these figures.
    fn read(
        &mut self,
        message: &'static str,
        k: &str,
        raw: &'a [u8],
        start: usize,
        end: usize,
    ) -> Result<(), FieldError> {
        match self.take(k, raw, start, end) {
            Some(false) => {
                let v = crate::frame::text(raw.get(start..end).unwrap_or_default());
                Err(not_a_number(message, k, v))
            }
            _ => Ok(()),
        }
    }
}

/// The error for a number field whose value is not one.
#[cold]
#[inline(never)]
pub(crate) fn not_a_number(message: &'static str, key: &str, value: &str) -> FieldError {
    FieldError::invalid(message, key, "an unsigned integer", value)
}

/// `FILEERROR`: one file failed.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FileError<'a> {
    /// `Code`: FASP error code.
    pub code: Option<u64>,
    /// `Description`
    pub description: Option<&'a str>,
    /// The per-file figures.
    pub stats: FileStats<'a>,
}

impl<'a> FileError<'a> {
    /// Read a `FILEERROR` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<FileError<'a>, FieldError> {
        let c = Ctx("FILEERROR");
        c.expect(frame, &["FILEERROR"], "FILEERROR")?;
        let mut m = FileError::default();
        let raw = frame.as_bytes();
        for (k, start, end) in frame.raw_fields() {
            let v = || crate::frame::text(raw.get(start..end).unwrap_or_default());
            match k {
                "Code" => m.code = c.num(k, v())?,
                "Description" => m.description = Some(v()),
                _ => m.stats.read(c.0, k, raw, start, end)?,
            }
        }
        Ok(m)
    }
}

/// `ARGSTOP`: every file of one source argument was handled.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ArgStop<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `File`: the source argument, ESC-decoded.
    pub file: Option<Cow<'a, str>>,
    /// `FaspFileArgIndex`
    pub arg_index: Option<u64>,
    /// `ArgTransfersStatus` (`Complete`...)
    pub status: Option<&'a str>,
    /// `ArgTransfersAttempted`
    pub attempted: Option<u64>,
    /// `ArgTransfersPassed`: transferred or skipped.
    pub passed: Option<u64>,
    /// `ArgTransfersSkipped` (absent when zero)
    pub skipped: Option<u64>,
    /// `ArgTransfersFailed`
    pub failed: Option<u64>,
}

impl<'a> ArgStop<'a> {
    /// Read an `ARGSTOP` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<ArgStop<'a>, FieldError> {
        let c = Ctx("ARGSTOP");
        c.expect(frame, &["ARGSTOP"], "ARGSTOP")?;
        let mut m = ArgStop::default();
        for f in frame.fields() {
            let (k, v) = (f.key, f.value);
            match k {
                "SessionId" => m.session_id = Some(v),
                "UserStr" => m.user_str = Some(v),
                "File" => m.file = Some(unescape_path(v)),
                "FaspFileArgIndex" => m.arg_index = c.num(k, v)?,
                "ArgTransfersStatus" => m.status = Some(v),
                "ArgTransfersAttempted" => m.attempted = c.num(k, v)?,
                "ArgTransfersPassed" => m.passed = c.num(k, v)?,
                "ArgTransfersSkipped" => m.skipped = c.num(k, v)?,
                "ArgTransfersFailed" => m.failed = c.num(k, v)?,
                _ => {}
            }
        }
        Ok(m)
    }
}

/// `DONE` (and the totals part of `ERROR`): the session's final figures.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SessionEnd<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `Delay`, ms.
    pub delay_ms: Option<u64>,
    /// `Elapsedusec`, µs.
    pub elapsed_usec: Option<u64>,
    /// `Loss`, bytes.
    pub loss: Option<u64>,
    /// `FileBytes`: bytes written.
    pub file_bytes: Option<u64>,
    /// `TransferBytes`: bytes transferred.
    pub transfer_bytes: Option<u64>,
    /// `ArgScansAttempted`
    pub arg_scans_attempted: Option<u64>,
    /// `ArgScansCompleted`
    pub arg_scans_completed: Option<u64>,
    /// `PathScansAttempted`
    pub path_scans_attempted: Option<u64>,
    /// `PathScansFailed`
    pub path_scans_failed: Option<u64>,
    /// `PathScansIrregular`
    pub path_scans_irregular: Option<u64>,
    /// `PathScansExcluded`
    pub path_scans_excluded: Option<u64>,
    /// `DirScansCompleted`
    pub dir_scans_completed: Option<u64>,
    /// `FileScansCompleted`
    pub file_scans_completed: Option<u64>,
    /// `DirCreatesAttempted`
    pub dir_creates_attempted: Option<u64>,
    /// `DirCreatesFailed`
    pub dir_creates_failed: Option<u64>,
    /// `DirCreatesPassed`
    pub dir_creates_passed: Option<u64>,
    /// `TransfersAttempted`
    pub transfers_attempted: Option<u64>,
    /// `TransfersFailed`
    pub transfers_failed: Option<u64>,
    /// `TransfersPassed`: transferred or skipped.
    pub transfers_passed: Option<u64>,
    /// `TransfersSkipped`
    pub transfers_skipped: Option<u64>,
}

impl<'a> SessionEnd<'a> {
    /// Read a `DONE` frame (an `ERROR` frame is read by [`SessionError`]).
    pub fn from_frame(frame: &'a Frame) -> Result<SessionEnd<'a>, FieldError> {
        let c = Ctx("DONE");
        c.expect(frame, &["DONE"], "DONE")?;
        let mut m = SessionEnd::default();
        for f in frame.fields() {
            m.read(&c, f.key, f.value)?;
        }
        Ok(m)
    }

    fn read(&mut self, c: &Ctx, k: &str, v: &'a str) -> Result<(), FieldError> {
        let slot = match k {
            "SessionId" => {
                self.session_id = Some(v);
                return Ok(());
            }
            "UserStr" => {
                self.user_str = Some(v);
                return Ok(());
            }
            "Delay" => &mut self.delay_ms,
            "Elapsedusec" => &mut self.elapsed_usec,
            "Loss" => &mut self.loss,
            "FileBytes" => &mut self.file_bytes,
            "TransferBytes" => &mut self.transfer_bytes,
            "ArgScansAttempted" => &mut self.arg_scans_attempted,
            "ArgScansCompleted" => &mut self.arg_scans_completed,
            "PathScansAttempted" => &mut self.path_scans_attempted,
            "PathScansFailed" => &mut self.path_scans_failed,
            "PathScansIrregular" => &mut self.path_scans_irregular,
            "PathScansExcluded" => &mut self.path_scans_excluded,
            "DirScansCompleted" => &mut self.dir_scans_completed,
            "FileScansCompleted" => &mut self.file_scans_completed,
            "DirCreatesAttempted" => &mut self.dir_creates_attempted,
            "DirCreatesFailed" => &mut self.dir_creates_failed,
            "DirCreatesPassed" => &mut self.dir_creates_passed,
            "TransfersAttempted" => &mut self.transfers_attempted,
            "TransfersFailed" => &mut self.transfers_failed,
            "TransfersPassed" => &mut self.transfers_passed,
            "TransfersSkipped" => &mut self.transfers_skipped,
            _ => return Ok(()),
        };
        *slot = c.num(k, v)?;
        Ok(())
    }
}

/// `ERROR`: the session failed.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SessionError<'a> {
    /// `Code`: the FASP error code (see [`crate::codes`]).
    pub code: Option<u64>,
    /// `Description` (kept as sent, trailing spaces included).
    pub description: Option<&'a str>,
    /// The totals sent with the error.
    pub end: SessionEnd<'a>,
}

impl<'a> SessionError<'a> {
    /// Read an `ERROR` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<SessionError<'a>, FieldError> {
        let c = Ctx("ERROR");
        c.expect(frame, &["ERROR"], "ERROR")?;
        let mut m = SessionError::default();
        for f in frame.fields() {
            match f.key {
                "Code" => m.code = c.num(f.key, f.value)?,
                "Description" => m.description = Some(f.value),
                _ => m.end.read(&c, f.key, f.value)?,
            }
        }
        Ok(m)
    }
}

/// `QUERY`: ascp asks the manager (`AUTHORIZATION`, `LICENSE`); answer with
/// [`crate::Control::QueryResponse`].
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Query<'a> {
    /// `SessionId`
    pub session_id: Option<&'a str>,
    /// `UserStr`
    pub user_str: Option<&'a str>,
    /// `Query`: what is asked.
    pub query: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// Read a `QUERY` frame.
    pub fn from_frame(frame: &'a Frame) -> Result<Query<'a>, FieldError> {
        Ctx("QUERY").expect(frame, &["QUERY"], "QUERY")?;
        let mut m = Query::default();
        for f in frame.fields() {
            match f.key {
                "SessionId" => m.session_id = Some(f.value),
                "UserStr" => m.user_str = Some(f.value),
                "Query" => m.query = Some(f.value),
                _ => {}
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::{number_in, parse_u64};
    use proptest::prelude::*;

    #[test]
    fn numbers_parse_like_std() {
        for s in [
            "0",
            "7",
            "10",
            "99999999",
            "100000000",
            "1234567890123456",
            "12345678901234567",
            "18446744073709551",
            "18446744073709551615",
            "18446744073709551616",
            "",
            " ",
            " 42 ",
            "4 2",
            "-1",
            "+1",
            "12x",
            "x",
            "1.5",
            "٣",
            "00000000000000000000001",
        ] {
            let want = s
                .trim_matches(' ')
                .parse::<u64>()
                .ok()
                .filter(|_| !s.trim_matches(' ').starts_with('+'));
            let want = if s.trim_matches(' ').len() > 20 {
                None
            } else {
                want
            };
            assert_eq!(parse_u64(s), want, "{s:?}");
        }
    }

    proptest! {
        /// Numbers read in place (word loads ending at the value, the bytes before masked off)
        /// equal numbers read from the value alone, whatever precedes the value.
        #[test]
        fn proptest_numbers_in_place_match(
            before in proptest::collection::vec(any::<u8>(), 0..24),
            value in "[0-9]{0,21}|[0-9a-z:/ +-]{0,20}",
        ) {
            let mut raw = before.clone();
            raw.extend_from_slice(value.as_bytes());
            prop_assert_eq!(number_in(&raw, before.len(), raw.len()), parse_u64(&value));
        }

        #[test]
        fn proptest_numbers_parse_like_std(n in any::<u64>(), junk in "[0-9a-z:/ +-]{0,24}") {
            prop_assert_eq!(parse_u64(&n.to_string()), Some(n));
            let want = junk.trim_matches(' ').parse::<u64>().ok()
                .filter(|_| !junk.trim_matches(' ').starts_with('+') && junk.trim_matches(' ').len() <= 20);
            prop_assert_eq!(parse_u64(&junk), want);
        }
    }
}
