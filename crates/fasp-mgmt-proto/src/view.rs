//! [`StatsView`]: a lazy typed view of the per-file messages (`STATS`, `STOP`, `SKIP`,
//! `FILEERROR`), the bulk of what ascp sends during a transfer.

use std::borrow::Cow;

use crate::error::{FieldError, FieldErrorKind};
use crate::escape::unescape_path;
use crate::frame::{Frame, FrameRef, HEADER, after_field, next_line, text};
use crate::message::{FileStats, not_a_number, number_in};

/// The keys the view knows, in slot order.
const KEYS: [&str; 17] = [
    "File",
    "Size",
    "Loss",
    "Delay",
    "Written",
    "EndByte",
    "UserStr",
    "Bytescont",
    "FileBytes",
    "SessionId",
    "StartByte",
    "FaspFileID",
    "Elapsedusec",
    "FileChecksum",
    "TransferBytes",
    "FaspFileArgIndex",
    "FileChecksumType",
];

/// Per known key, the offsets of its last value (`ABSENT` when none).
type Notes = [(u32, u32); KEYS.len()];

/// No field for this slot.
const ABSENT: u32 = u32::MAX;

/// The slot of a key: dispatched on its length, first and last bytes (distinct for the
/// seventeen keys), then the whole key compared with the one literal left.
#[inline(always)]
fn slot(key: &[u8]) -> Option<usize> {
    let (first, last) = (*key.first()?, *key.last()?);
    Some(match (key.len(), first, last) {
        (4, b'F', b'e') if key == b"File" => 0,
        (4, b'S', b'e') if key == b"Size" => 1,
        (4, b'L', b's') if key == b"Loss" => 2,
        (5, b'D', b'y') if key == b"Delay" => 3,
        (7, b'W', b'n') if key == b"Written" => 4,
        (7, b'E', b'e') if key == b"EndByte" => 5,
        (7, b'U', b'r') if key == b"UserStr" => 6,
        (9, b'B', b't') if key == b"Bytescont" => 7,
        (9, b'F', b's') if key == b"FileBytes" => 8,
        (9, b'S', b'd') if key == b"SessionId" => 9,
        (9, b'S', b'e') if key == b"StartByte" => 10,
        (10, b'F', b'D') if key == b"FaspFileID" => 11,
        (11, b'E', b'c') if key == b"Elapsedusec" => 12,
        (12, b'F', b'm') if key == b"FileChecksum" => 13,
        (13, b'T', b's') if key == b"TransferBytes" => 14,
        (16, b'F', b'x') if key == b"FaspFileArgIndex" => 15,
        (16, b'F', b'e') if key == b"FileChecksumType" => 16,
        _ => return None,
    })
}

/// A key as its length and its first and last eight bytes (little-endian words; keys of eight
/// bytes or fewer: the key itself and 0). Keys of 1 to 16 bytes are told apart exactly by it.
type Words = (usize, u64, u64);

/// The first `min(8, len)` bytes of `s` from `at`, as a little-endian word.
const fn word(s: &[u8], at: usize) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < 8 && at + i < s.len() {
        w |= (s[at + i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// [`Words`] of a known key.
const fn words(key: &str) -> Words {
    let k = key.as_bytes();
    if k.len() <= 8 {
        (k.len(), word(k, 0), 0)
    } else {
        (k.len(), word(k, 0), word(k, k.len() - 8))
    }
}

const W_FILE: Words = words(KEYS[0]);
const W_SIZE: Words = words(KEYS[1]);
const W_LOSS: Words = words(KEYS[2]);
const W_DELAY: Words = words(KEYS[3]);
const W_WRITTEN: Words = words(KEYS[4]);
const W_END_BYTE: Words = words(KEYS[5]);
const W_USER_STR: Words = words(KEYS[6]);
const W_BYTESCONT: Words = words(KEYS[7]);
const W_FILE_BYTES: Words = words(KEYS[8]);
const W_SESSION_ID: Words = words(KEYS[9]);
const W_START_BYTE: Words = words(KEYS[10]);
const W_FILE_ID: Words = words(KEYS[11]);
const W_ELAPSED: Words = words(KEYS[12]);
const W_CHECKSUM: Words = words(KEYS[13]);
const W_TRANSFER_BYTES: Words = words(KEYS[14]);
const W_ARG_INDEX: Words = words(KEYS[15]);
const W_CHECKSUM_TYPE: Words = words(KEYS[16]);

/// The slot of the key `raw[a..b]` of a frame: one or two 8-byte loads, then the key's
/// [`Words`] matched against those of the known keys (no byte-by-byte compare). A key too close
/// to the end of the frame for the load goes through [`slot`].
#[inline(always)]
fn slot_at(raw: &[u8], a: usize, b: usize) -> Option<usize> {
    let len = b.wrapping_sub(a);
    let Some(head) = raw.get(a..a.wrapping_add(8)) else {
        return slot(raw.get(a..b)?);
    };
    let head = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    let key: Words = if len.wrapping_sub(1) < 8 {
        (len, head & (u64::MAX >> (64 - 8 * len)), 0)
    } else if len <= 16 {
        // The key's last eight bytes end at `b`, and `b >= a + 9`.
        let tail = raw.get(b - 8..b)?;
        (
            len,
            head,
            u64::from_le_bytes(tail.try_into().unwrap_or([0; 8])),
        )
    } else {
        return None;
    };
    Some(match key {
        W_FILE => 0,
        W_SIZE => 1,
        W_LOSS => 2,
        W_DELAY => 3,
        W_WRITTEN => 4,
        W_END_BYTE => 5,
        W_USER_STR => 6,
        W_BYTESCONT => 7,
        W_FILE_BYTES => 8,
        W_SESSION_ID => 9,
        W_START_BYTE => 10,
        W_FILE_ID => 11,
        W_ELAPSED => 12,
        W_CHECKSUM => 13,
        W_TRANSFER_BYTES => 14,
        W_ARG_INDEX => 15,
        W_CHECKSUM_TYPE => 16,
        _ => return None,
    })
}

/// A key expected at a place: its length and, for keys of up to 15 bytes, the words of the
/// key with its colon (the first eight bytes, masked to the length when shorter, and past eight
/// the last eight), so that a match needs neither the key's end nor a length compare: the
/// colon is the line's first (a key holds none). Longer keys are compared as in [`slot_at`].
struct Expected {
    len: usize,
    mask: u64,
    head: u64,
    tail: u64,
}

impl Expected {
    const fn new(key: &str) -> Expected {
        let len = key.len();
        if len >= 16 {
            let (len, head, tail) = words(key);
            return Expected {
                len,
                mask: u64::MAX,
                head,
                tail,
            };
        }
        // The key and its colon, as bytes.
        let mut with_colon = [b':'; 16];
        let mut i = 0;
        while i < len {
            with_colon[i] = key.as_bytes()[i];
            i += 1;
        }
        let n = len + 1;
        let mut head = 0u64;
        let mut tail = 0u64;
        let mut i = 0;
        while i < 8 {
            if i < n {
                head |= (with_colon[i] as u64) << (8 * i);
            }
            if n > 8 {
                tail |= (with_colon[n - 8 + i] as u64) << (8 * i);
            }
            i += 1;
        }
        let mask = if n >= 8 {
            u64::MAX
        } else {
            u64::MAX >> (64 - 8 * n)
        };
        Expected {
            len,
            mask,
            head,
            tail,
        }
    }

    /// Whether the key of the field whose key starts at `a` and ends at `b` is this one (false
    /// as well when `raw` is too short to tell by words: the search decides then).
    #[inline(always)]
    fn is_at(&self, raw: &[u8], a: usize, b: usize) -> bool {
        let word = |at: usize| {
            raw.get(at..at.wrapping_add(8))
                .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        };
        if self.len >= 16 {
            // Keys of more than eight bytes: `b >= a + 9`.
            return b.wrapping_sub(a) == self.len
                && word(a) == Some(self.head)
                && word(b.wrapping_sub(8)) == Some(self.tail);
        }
        let Some(head) = word(a) else {
            return false;
        };
        head & self.mask == self.head
            && (self.len < 8 || word(a + self.len + 1 - 8) == Some(self.tail))
    }
}

/// Not a known key (`Type`): nothing to note.
const NO_SLOT: usize = usize::MAX;

/// The keys of a STATS or STOP in the order ascp sends them (its documented example), each
/// with its slot: `note_inline` tries the key expected at a field's place before searching.
/// Any other order or key still works, through the search.
const ORDER: [(Expected, usize); 15] = [
    (Expected::new("Type"), NO_SLOT),
    (Expected::new(KEYS[7]), 7),
    (Expected::new(KEYS[10]), 10),
    (Expected::new(KEYS[3]), 3),
    (Expected::new(KEYS[12]), 12),
    (Expected::new(KEYS[0]), 0),
    (Expected::new(KEYS[8]), 8),
    (Expected::new(KEYS[2]), 2),
    (Expected::new(KEYS[9]), 9),
    (Expected::new(KEYS[1]), 1),
    (Expected::new(KEYS[14]), 14),
    (Expected::new(KEYS[6]), 6),
    (Expected::new(KEYS[4]), 4),
    (Expected::new(KEYS[15]), 15),
    (Expected::new(KEYS[11]), 11),
];

/// [`StatsView::from_frame`] over an inline index: the value offsets of each known key into
/// `at`. `CRLF`: whether a CR may end a line (see [`FrameRef::inline_ends`]).
#[inline(always)]
fn note_inline<const CRLF: bool>(at: &mut [(u32, u32); KEYS.len()], raw: &[u8], ends: &[[u16; 2]]) {
    let mut a = next_line(raw, HEADER.len());
    let mut rest = ends;
    // The key ascp sends at each place first (one or two word compares against constants),
    // else a search; once a frame has fewer fields, the search alone.
    macro_rules! expect {
        ($($n:literal)*) => {$(
            let Some((&[b, c], more)) = rest.split_first() else {
                return;
            };
            let (key, s) = &ORDER[$n];
            let s = if key.is_at(raw, a, usize::from(b)) {
                Some(*s)
            } else {
                slot_at(raw, a, usize::from(b))
            };
            note(at, s, b, c);
            a = after_field(raw, usize::from(c), CRLF);
            rest = more;
        )*};
    }
    expect!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14);
    for &[b, c] in rest {
        note(at, slot_at(raw, a, usize::from(b)), b, c);
        a = after_field(raw, usize::from(c), CRLF);
    }
}

/// The value of a field with key end `b` and value end `c` into `at[s]`.
#[inline(always)]
fn note(at: &mut [(u32, u32); KEYS.len()], s: Option<usize>, b: u16, c: u16) {
    if let Some(s) = s
        && let Some(v) = at.get_mut(s)
    {
        *v = (u32::from((b + 2).min(c)), u32::from(c));
    }
}

/// [`StatsView::from_frame`] over a spilled index (frames of many fields or past 64 KiB).
#[cold]
#[inline(never)]
fn note_shared(at: &mut [(u32, u32); KEYS.len()], frame: FrameRef<'_>) {
    for (key, start, end) in frame.raw_fields() {
        if let Some(s) = slot(key.as_bytes()) {
            at[s] = (start as u32, end as u32);
        }
    }
}

/// What both views note of a frame: its message type and where each known key's last value
/// is (or the error on another message).
#[inline(always)]
fn notes(frame: FrameRef<'_>) -> Result<(&'static str, Notes), FieldError> {
    let message = match frame.type_name() {
        Some("STATS") => "STATS",
        Some("STOP") => "STOP",
        Some("SKIP") => "SKIP",
        Some("FILEERROR") => "FILEERROR",
        other => return Err(wrong_type(other)),
    };
    let mut at = [(ABSENT, ABSENT); KEYS.len()];
    let raw = frame.as_bytes();
    if let Some((ends, crlf)) = frame.inline_ends() {
        if crlf {
            note_inline::<true>(&mut at, raw, ends);
        } else {
            note_inline::<false>(&mut at, raw, ends);
        }
    } else {
        note_shared(&mut at, frame);
    }
    Ok((message, at))
}

/// The error of [`StatsView::from_frame`] on another message.
#[cold]
#[inline(never)]
fn wrong_type(type_name: Option<&str>) -> FieldError {
    FieldError {
        message: type_name.unwrap_or("").into(),
        key: "Type".into(),
        kind: FieldErrorKind::WrongType {
            expected: "STATS, STOP, SKIP or FILEERROR",
        },
    }
}

/// The accessors [`StatsView`] and [`StatsRef`] share (each has a `frame` whose `as_bytes`
/// are the bytes viewed, and the notes of [`notes`]).
macro_rules! stats_accessors {
    () => {
        /// `File`, ESC-decoded.
        #[inline]
        pub fn file(&self) -> Option<Cow<'a, str>> {
            self.find(0).map(|(s, e)| unescape_path(self.text(s, e)))
        }

        texts! {
            /// `UserStr`
            user_str = 6;
            /// `SessionId`
            session_id = 9;
            /// `FaspFileID`
            file_id = 11;
            /// `FileChecksum` (STOP, with `--file-checksum`)
            checksum = 13;
            /// `FileChecksumType` (`md5`, `sha1`...)
            checksum_type = 16;
        }

        numbers! {
            /// `Size`: file size in bytes.
            size = 1;
            /// `Loss`: bytes lost in the session so far.
            loss = 2;
            /// `Delay`: last round-trip time measured, ms.
            delay_ms = 3;
            /// `Written`: bytes of this file written.
            written = 4;
            /// `EndByte`: last byte to transfer (range transfers).
            end_byte = 5;
            /// `Bytescont`: contiguous bytes at the destination.
            bytes_contiguous = 7;
            /// `FileBytes`: bytes written in the session so far.
            file_bytes = 8;
            /// `StartByte`: where the transfer of this file started (resume offset).
            start_byte = 10;
            /// `Elapsedusec`: session time elapsed, µs.
            elapsed_usec = 12;
            /// `TransferBytes`: bytes transferred in the session so far.
            transfer_bytes = 14;
            /// `FaspFileArgIndex`: the source argument this file came from.
            arg_index = 15;
        }

        #[inline(always)]
        fn text(&self, start: usize, end: usize) -> &'a str {
            text(self.frame.as_bytes().get(start..end).unwrap_or_default())
        }

        #[inline(always)]
        fn number(&self, slot: usize) -> Result<Option<u64>, FieldError> {
            let Some((start, end)) = self.find(slot) else {
                return Ok(None);
            };
            match number_in(self.frame.as_bytes(), start, end) {
                Some(n) => Ok(Some(n)),
                None => Err(not_a_number(
                    self.message,
                    KEYS[slot],
                    self.text(start, end),
                )),
            }
        }

        /// The value offsets of the last field named `KEYS[slot]`.
        #[inline(always)]
        fn find(&self, slot: usize) -> Option<(usize, usize)> {
            let (start, end) = self.at[slot];
            (start != ABSENT).then_some((start as usize, end as usize))
        }
    };
}

/// A lazy, borrowed view of a `STATS`, `STOP`, `SKIP` or `FILEERROR` frame: the same figures
/// as [`FileStats`], read when asked for.
///
/// Building the view notes where the value of each known field is (one pass over the frame's
/// index, keys dispatched on their length and first and last bytes, nothing parsed); each
/// accessor then reads its one value. A number that does not parse is a [`FieldError`] from its accessor
/// (not from [`StatsView::from_frame`], which only checks the `Type`). As in [`FileStats`], a
/// key sent twice gives its last value. Use it on the hot path (a manager reading a handful of
/// figures from each `STATS`); [`crate::Message::from_frame`] gives every figure at once.
///
/// ```
/// use fasp_mgmt_proto::{Frame, StatsView};
///
/// let frame = Frame::parse(b"FASPMGR 2\nType: STATS\nFile: /data/a.bin\nSize: 4096\nWritten: 1024\n\n")?;
/// let stats = StatsView::from_frame(&frame)?;
/// assert_eq!(stats.file().as_deref(), Some("/data/a.bin"));
/// assert_eq!(stats.written()?, Some(1024));
/// assert_eq!(stats.size()?, Some(4096));
/// assert_eq!(stats.loss()?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct StatsView<'a> {
    frame: &'a Frame,
    message: &'static str,
    /// Per known key, the offsets of the last value given (`ABSENT` when none).
    at: [(u32, u32); KEYS.len()],
}

impl std::fmt::Debug for StatsView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsView")
            .field("message", &self.message)
            .field("frame", self.frame)
            .finish()
    }
}

/// One number accessor per numeric field.
macro_rules! numbers {
    ($($(#[$m:meta])* $name:ident = $slot:expr;)+) => {
        $(
            $(#[$m])*
            #[inline]
            pub fn $name(&self) -> Result<Option<u64>, FieldError> {
                self.number($slot)
            }
        )+
    };
}

/// One text accessor per text field.
macro_rules! texts {
    ($($(#[$m:meta])* $name:ident = $slot:expr;)+) => {
        $(
            $(#[$m])*
            #[inline]
            pub fn $name(&self) -> Option<&'a str> {
                self.find($slot).map(|(s, e)| self.text(s, e))
            }
        )+
    };
}

impl<'a> StatsView<'a> {
    /// View a `STATS`, `STOP`, `SKIP` or `FILEERROR` frame (any other `Type` is an error).
    // Inlined into the caller: the view is built where it is used, not copied out.
    #[inline(always)]
    pub fn from_frame(frame: &'a Frame) -> Result<StatsView<'a>, FieldError> {
        let (message, at) = notes(frame.as_frame_ref())?;
        Ok(StatsView { frame, message, at })
    }

    /// The frame viewed.
    pub fn frame(&self) -> &'a Frame {
        self.frame
    }

    /// The message type: `STATS`, `STOP`, `SKIP` or `FILEERROR`.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// Every figure at once, as [`FileStats::from_frame`] reads them.
    pub fn to_file_stats(&self) -> Result<FileStats<'a>, FieldError> {
        FileStats::from_frame(self.frame)
    }

    stats_accessors!();
}

/// [`StatsView`] of a borrowed frame ([`FrameRef`], what [`crate::FrameParser::parse_in`]
/// gives): the same accessors, nothing owned.
///
/// ```
/// use bytes::BytesMut;
/// use fasp_mgmt_proto::{FrameParser, StatsRef};
///
/// let mut parser = FrameParser::new();
/// let buf = BytesMut::from(&b"FASPMGR 2\nType: STATS\nWritten: 1024\n\n"[..]);
/// let frame = parser.parse_in(&buf)?.expect("complete");
/// let stats = StatsRef::from_frame_ref(frame)?;
/// assert_eq!(stats.written()?, Some(1024));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct StatsRef<'a> {
    frame: FrameRef<'a>,
    message: &'static str,
    /// As in [`StatsView`].
    at: [(u32, u32); KEYS.len()],
}

impl std::fmt::Debug for StatsRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsRef")
            .field("message", &self.message)
            .field("frame", &self.frame)
            .finish()
    }
}

impl<'a> StatsRef<'a> {
    /// View a borrowed `STATS`, `STOP`, `SKIP` or `FILEERROR` frame (any other `Type` is an
    /// error).
    #[inline(always)]
    pub fn from_frame_ref(frame: FrameRef<'a>) -> Result<StatsRef<'a>, FieldError> {
        let (message, at) = notes(frame)?;
        Ok(StatsRef { frame, message, at })
    }

    /// The frame viewed.
    pub fn frame(&self) -> FrameRef<'a> {
        self.frame
    }

    /// The message type: `STATS`, `STOP`, `SKIP` or `FILEERROR`.
    pub fn message(&self) -> &'static str {
        self.message
    }

    stats_accessors!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_match_their_keys() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(slot(k.as_bytes()), Some(i), "{k}");
        }
        assert_eq!(slot(b""), None);
        assert_eq!(slot(b"Type"), None);
        assert_eq!(slot(b"Wxxxxxn"), None);
    }

    #[test]
    fn word_slots_match_byte_slots() {
        let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        // Near misses: one byte changed anywhere, one byte more or less, other keys.
        for k in KEYS {
            for i in 0..k.len() {
                let mut b = k.as_bytes().to_vec();
                b[i] ^= 0x20;
                keys.push(String::from_utf8(b).unwrap());
            }
            keys.push(format!("{k}s"));
            keys.push(k[1..].to_string());
            keys.push(k[..k.len() - 1].to_string());
        }
        keys.extend(["Type", "Rate", "X", "FileChecksumTypes", "TransferBytesX"].map(String::from));
        for k in &keys {
            // The key at the start, in the middle and at the very end of the bytes.
            for (before, after) in [
                ("", ": 1\n\n"),
                ("FASPMGR 2\n", ": 1\n\n"),
                ("FASPMGR 2\n", ""),
            ] {
                let raw = format!("{before}{k}{after}");
                let (a, b) = (before.len(), before.len() + k.len());
                assert_eq!(
                    slot_at(raw.as_bytes(), a, b),
                    slot(k.as_bytes()),
                    "{k:?} in {raw:?}"
                );
            }
        }
    }

    #[test]
    fn a_key_on_the_same_slot_is_not_taken_for_the_known_one() {
        let frame = Frame::parse(
            b"FASPMGR 2\nType: STATS\nWritten: 5\nWxxxxxn: 7\nSize: x\nFile: /a\x1bnb\n\n",
        )
        .unwrap();
        let v = StatsView::from_frame(&frame).unwrap();
        assert_eq!(v.written(), Ok(Some(5)));
        assert_eq!(v.file().as_deref(), Some("/a\nb"));
        assert_eq!(v.loss(), Ok(None));
        let err = v.size().unwrap_err();
        assert_eq!((err.message.as_str(), err.key.as_str()), ("STATS", "Size"));
        let only_other = Frame::parse(b"FASPMGR 2\nType: STOP\nWxxxxxn: 7\n\n").unwrap();
        let v = StatsView::from_frame(&only_other).unwrap();
        assert_eq!((v.message(), v.written()), ("STOP", Ok(None)));
        let init = Frame::parse(b"FASPMGR 2\nType: INIT\n\n").unwrap();
        assert!(StatsView::from_frame(&init).is_err());
    }

    /// Frames in ascp's order and in altered ones (keys swapped, dropped, repeated, near
    /// misses at the expected place, unknown keys, CRLF): each known key's value is the last
    /// field of that name, found by name.
    #[test]
    fn keys_in_any_order_are_noted_as_by_name() {
        let ascp: Vec<String> = ORDER
            .iter()
            .map(|(_, s)| KEYS.get(*s).copied().unwrap_or("Type").to_string())
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut checked = 0;
        for round in 0..4000 {
            let mut keys = ascp.clone();
            for _ in 0..next(4) {
                let (i, j) = (next(keys.len()), next(keys.len()));
                match next(6) {
                    0 => keys.swap(i, j),
                    1 if keys.len() > 2 => {
                        keys.remove(i.max(1));
                    }
                    2 => {
                        let k = keys[j].clone();
                        keys.insert(i.max(1), k);
                    }
                    3 => {
                        // A near miss: one byte changed, added or dropped.
                        let mut k = keys[i].clone().into_bytes();
                        match next(3) {
                            0 => {
                                let at = next(k.len());
                                k[at] ^= 0x20;
                            }
                            1 => k.push(b's'),
                            _ => {
                                k.pop();
                            }
                        }
                        if !k.is_empty() {
                            keys[i] = String::from_utf8(k).unwrap();
                        }
                    }
                    4 => keys.insert(i.max(1), "Rate".into()),
                    _ => keys.truncate(i.max(2)),
                }
            }
            if keys[0] != "Type" {
                keys.insert(0, "Type".into());
            }
            let eol = if round % 5 == 0 { "\r\n" } else { "\n" };
            let mut raw = format!("FASPMGR 2{eol}");
            for (n, k) in keys.iter().enumerate() {
                let v = if k == "Type" {
                    "STATS".to_string()
                } else {
                    format!("{}", n * 7 + next(1000))
                };
                raw.push_str(&format!("{k}: {v}{eol}"));
            }
            raw.push_str(eol);
            let frame = Frame::parse(raw.as_bytes()).unwrap();
            let Ok(view) = StatsView::from_frame(&frame) else {
                continue; // a `Type` of another kind moved first
            };
            for (slot, key) in KEYS.iter().enumerate() {
                let by_name = frame.fields().filter(|f| f.key == *key).last();
                let noted = view.find(slot).map(|(s, e)| view.text(s, e));
                assert_eq!(noted, by_name.map(|f| f.value), "{key} in {raw:?}");
            }
            checked += 1;
        }
        assert!(checked > 3000, "only {checked} frames were STATS");
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_as_in_file_stats() {
        let frame = Frame::parse(b"FASPMGR 2\nType: STATS\nWritten: 1\nWritten: 2\n\n").unwrap();
        let v = StatsView::from_frame(&frame).unwrap();
        assert_eq!(v.written(), Ok(Some(2)));
        assert_eq!(v.to_file_stats().unwrap().written, Some(2));
    }
}
