//! [`FrameParser`]: the incremental, resynchronising FASPMGR stream decoder.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::frame::{Frame, HEADER, NO_TYPE, SPAN_LEN, valid_key};
use crate::scan::masks;

/// "Not found" for positions.
const NONE: usize = usize::MAX;

/// Default maximum size of one frame: 64 KiB (a real ascp caps a message near 10 KiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Initial capacity of the field-index arena. Frames take their index out of it without
/// allocating; it is reused or renewed once the frames holding parts of it are dropped.
const INDEX_ARENA: usize = 4 * 1024;

/// Every header line starts with this.
const HEADER_PREFIX: &[u8] = b"FASPMGR ";

/// A header line longer than this is not a header.
const MAX_HEADER_LINE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a `FASPMGR 2` line (blank lines between frames are skipped).
    Header,
    /// Inside a frame whose header started at `buf[0]`.
    Body,
    /// Skipping damaged bytes up to the next line starting with `FASPMGR `.
    Discard { mid_line: bool },
}

/// Incremental decoder of a FASPMGR byte stream.
///
/// Feed it a buffer that only ever grows at the end (bytes read from the socket are appended)
/// and call [`FrameParser::parse`] until it returns `Ok(None)`. Each complete frame is split
/// off the front of the buffer without copying. Lines already examined are not examined again
/// when more bytes arrive.
///
/// Damage is reported, never fatal: a stretch of bytes that is not a valid frame yields one
/// [`DecodeError`] (with its stream offset); the parser then skips to the next line starting
/// with `FASPMGR ` and decodes on. Memory stays bounded: a frame (or garbage without line
/// breaks) longer than the maximum frame length is reported and dropped as it arrives.
///
/// The parser accepts LF and CRLF line endings, values holding `": "`, TABs, trailing spaces
/// and any UTF-8; a line `Key:` with nothing after the colon is a field with an empty value.
/// Keys must be printable ASCII. Values must be UTF-8 without NUL bytes.
///
/// ```
/// use bytes::BytesMut;
/// use fasp_mgmt_proto::FrameParser;
///
/// let mut parser = FrameParser::new();
/// let mut buf = BytesMut::from(&b"FASPMGR 2\nType: INIT\nSessionId: s1\n"[..]);
/// assert!(parser.parse(&mut buf)?.is_none()); // not complete yet
/// buf.extend_from_slice(b"\n");
/// let frame = parser.parse(&mut buf)?.expect("complete");
/// assert_eq!(frame.get("SessionId"), Some("s1"));
/// assert!(buf.is_empty());
/// # Ok::<(), fasp_mgmt_proto::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct FrameParser {
    max_frame_len: usize,
    state: State,
    /// In `Body`: `buf[..scanned]` are complete lines of the current frame, already indexed.
    scanned: usize,
    /// Index arena; holds exactly the spans of the frame being parsed.
    index: BytesMut,
    type_field: u32,
    /// In `Body`: position of the first non-ASCII or NUL byte seen in the frame (or `NONE`).
    suspicious: usize,
    /// Stream offset of `buf[0]`.
    consumed: u64,
}

impl Default for FrameParser {
    fn default() -> Self {
        FrameParser::new()
    }
}

impl FrameParser {
    /// A parser with the default maximum frame length ([`DEFAULT_MAX_FRAME_LEN`]).
    pub fn new() -> FrameParser {
        FrameParser::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A parser that refuses frames longer than `max` bytes (at least 64).
    pub fn with_max_frame_len(max: usize) -> FrameParser {
        FrameParser {
            max_frame_len: max.max(MAX_HEADER_LINE),
            state: State::Header,
            scanned: 0,
            index: BytesMut::with_capacity(INDEX_ARENA),
            type_field: NO_TYPE,
            suspicious: NONE,
            consumed: 0,
        }
    }

    /// The maximum frame length in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Stream offset of the first byte not yet consumed (the front of the caller's buffer).
    pub fn stream_offset(&self) -> u64 {
        self.consumed
    }

    /// Whether the parser is between frames (no partial frame pending).
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.scanned == 0
    }

    /// Decode the next frame from the front of `buf`.
    ///
    /// * `Ok(Some(frame))`: a frame, removed from `buf`;
    /// * `Ok(None)`: more bytes are needed (`buf` may have been trimmed of skipped bytes);
    /// * `Err(e)`: a damaged stretch was removed from `buf`; call again to go on.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Header => {
                    if let Some(err) = self.header(buf) {
                        return Err(err);
                    }
                    if self.state == State::Header {
                        return Ok(None);
                    }
                }
                State::Body => return self.body(buf),
                State::Discard { mid_line } => {
                    if !self.discard(buf, mid_line) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Call at end of stream, after `parse` returned `Ok(None)`: reports a frame left
    /// incomplete, clears `buf` and resets the parser for a new stream position.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<DecodeError> {
        let err = match self.state {
            State::Discard { .. } => None,
            State::Header if buf.iter().all(|b| b.is_ascii_whitespace()) => None,
            State::Header | State::Body => Some(self.error_at(0, DecodeErrorKind::TruncatedAtEof)),
        };
        let n = buf.len();
        self.advance(buf, n);
        self.reset_frame(State::Header);
        err
    }

    /// Expecting a header line. `None` with the state still `Header` means "need more".
    fn header(&mut self, buf: &mut BytesMut) -> Option<DecodeError> {
        loop {
            // The common case, without a search: the buffer starts with the header line.
            if buf.starts_with(b"FASPMGR 2\n") {
                self.start_body(10);
                return None;
            }
            let Some(nl) = memchr(b'\n', buf) else {
                if buf.is_empty() || could_be_header(buf) {
                    return None;
                }
                let err = self.error_at(0, DecodeErrorKind::MissingHeader);
                let n = buf.len();
                self.advance(buf, n);
                self.state = State::Discard { mid_line: true };
                return Some(err);
            };
            let line = trim_cr(&buf[..nl]);
            if line.is_empty() {
                self.advance(buf, nl + 1);
                continue;
            }
            if line == HEADER {
                self.start_body(nl + 1);
                return None;
            }
            let kind = match line.strip_prefix(HEADER_PREFIX) {
                Some(v) if line.len() <= MAX_HEADER_LINE => DecodeErrorKind::UnsupportedVersion {
                    version: String::from_utf8_lossy(v).into_owned(),
                },
                _ => DecodeErrorKind::MissingHeader,
            };
            let err = self.error_at(0, kind);
            self.advance(buf, nl + 1);
            self.state = State::Discard { mid_line: false };
            return Some(err);
        }
    }

    /// A header line of `len` bytes starts `buf`: index the frame's fields from there.
    fn start_body(&mut self, len: usize) {
        self.reset_frame(State::Body);
        // Renew the index arena at the start of a frame, not at the end of the last one: by
        // now the caller has usually dropped earlier frames, so the arena is reclaimed in
        // place instead of reallocated.
        if self.index.capacity() < 64 * SPAN_LEN {
            self.index.reserve(INDEX_ARENA);
        }
        self.scanned = len;
    }

    /// Index the lines of the frame starting at `buf[0]`, 64 bytes at a time from the start of
    /// the first line not yet indexed. Lines already indexed are never looked at again; an
    /// incomplete last line is looked at again when more bytes arrive.
    fn body(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let mut line_start = self.scanned;
        let mut key_end = NONE;
        let mut pos = line_start;
        let mut tail = [0u8; 64];
        // Key-forbidden bytes of the previous block (keys may start there).
        let mut prev_bad = u64::MAX;
        loop {
            let len = buf.len();
            if pos >= len {
                self.scanned = line_start;
                if len > self.max_frame_len {
                    return Err(self.too_large(buf, len, true));
                }
                return Ok(None);
            }
            let (m, valid) = match buf.get(pos..pos + 64) {
                Some(block) => {
                    let block: &[u8; 64] = block.try_into().unwrap_or(&[0; 64]);
                    (masks(block), u64::MAX)
                }
                None => {
                    let n = len - pos;
                    tail[..n].copy_from_slice(&buf[pos..]);
                    tail[n..].fill(b' ');
                    (masks(&tail), (1u64 << n) - 1)
                }
            };
            let suspicious = m.suspicious & valid;
            if suspicious != 0 {
                self.suspicious = self
                    .suspicious
                    .min(pos + suspicious.trailing_zeros() as usize);
            }
            let nl = m.nl & valid;
            // Separators: a colon followed by a space (the space of bit 63 is in the next
            // block: look at the byte itself).
            let mut sep = m.colon & (m.space >> 1) & valid;
            if m.colon & valid & (1 << 63) != 0 && buf.get(pos + 64) == Some(&b' ') {
                sep |= 1 << 63;
            }
            let mut bits = nl | sep;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let p = pos + i;
                if nl & (1 << i) == 0 {
                    // The first separator of a line ends its key.
                    if key_end == NONE {
                        key_end = p;
                    }
                    continue;
                }
                let next = p + 1;
                if next > self.max_frame_len {
                    return Err(self.too_large(buf, next, false));
                }
                let end = if p > line_start && buf[p - 1] == b'\r' {
                    p - 1
                } else {
                    p
                };
                if end == line_start {
                    return self.complete(buf, next);
                }
                let (k_end, v_start) = if key_end != NONE && key_end < end {
                    (key_end, key_end + 2)
                } else if buf[end - 1] == b':' {
                    (end - 1, end)
                } else {
                    return Err(self.line_error(buf, line_start, end, next));
                };
                // The key: printable ASCII without colons. Within this block the masks say
                // it; a key reaching back into an earlier block is checked byte by byte.
                // The key must be printable ASCII without colons. The masks of this block and
                // the one before say it; a key starting further back is checked bytewise.
                let key_ok = k_end > line_start
                    && if line_start >= pos {
                        // k_end is before this line feed, so inside the block.
                        (m.key_bad | m.colon) & bit_span(line_start - pos, k_end - pos) == 0
                    } else if line_start + 64 >= pos {
                        let prev = bit_span(line_start + 64 - pos, (k_end + 64 - pos).min(64));
                        let cur = if k_end > pos {
                            bit_span(0, k_end - pos)
                        } else {
                            0
                        };
                        prev_bad & prev == 0 && (m.key_bad | m.colon) & cur == 0
                    } else {
                        valid_key(&buf[line_start..k_end])
                    };
                if !key_ok {
                    return Err(self.line_error(buf, line_start, end, next));
                }
                if self.type_field == NO_TYPE && &buf[line_start..k_end] == b"Type" {
                    self.type_field = (self.index.len() / SPAN_LEN) as u32;
                }
                self.index
                    .extend_from_slice(&span(line_start, k_end, v_start, end));
                line_start = next;
                key_end = NONE;
            }
            prev_bad = m.key_bad | m.colon;
            pos += 64;
        }
    }

    /// A line that is not `Key: Value`: a header (the open frame was never closed), or a bad
    /// line (the frame is dropped and the stream skipped to the next header).
    fn line_error(
        &mut self,
        buf: &mut BytesMut,
        start: usize,
        end: usize,
        next: usize,
    ) -> DecodeError {
        let line = &buf[start..end];
        if line.starts_with(HEADER_PREFIX) {
            let err = self.error_at(0, DecodeErrorKind::Unterminated);
            self.advance(buf, start);
            self.reset_frame(State::Header);
            return err;
        }
        let kind = match split_field(line) {
            Err(kind) => kind,
            Ok(_) => DecodeErrorKind::InvalidKey,
        };
        self.bad_line(buf, start, next, kind)
    }

    /// The frame `buf[..len]` is complete: check its values and split it off.
    fn complete(&mut self, buf: &mut BytesMut, len: usize) -> Result<Option<Frame>, DecodeError> {
        let bytes = &buf[..len];
        let bad = if self.suspicious >= len {
            None
        } else {
            match std::str::from_utf8(bytes) {
                Err(e) => Some((e.valid_up_to(), false)),
                Ok(_) => memchr(0, bytes).map(|at| (at, true)),
            }
        };
        if let Some((at, nul)) = bad {
            let key = self.key_at(bytes, at);
            let kind = if nul {
                DecodeErrorKind::NulInValue { key }
            } else {
                DecodeErrorKind::InvalidUtf8 { key }
            };
            let line_start = bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let err = self.error_at(line_start, kind);
            self.advance(buf, len);
            self.reset_frame(State::Header);
            return Err(err);
        }
        let raw: Bytes = buf.split_to(len).freeze();
        self.consumed += len as u64;
        let index = self.index.split().freeze();
        let frame = Frame::from_parts(raw, index, self.type_field);
        self.reset_frame(State::Header);
        Ok(Some(frame))
    }

    /// The key of the indexed field whose value holds byte `at`.
    fn key_at(&self, bytes: &[u8], at: usize) -> String {
        for span in self.index.chunks_exact(SPAN_LEN) {
            let n = |i: usize| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&span[i * 4..i * 4 + 4]);
                u32::from_ne_bytes(b) as usize
            };
            if (n(2)..=n(3)).contains(&at) {
                return String::from_utf8_lossy(&bytes[n(0)..n(1)]).into_owned();
            }
        }
        String::new()
    }

    /// A bad line at `buf[start..next]`: report it, drop the frame so far, skip the rest.
    fn bad_line(
        &mut self,
        buf: &mut BytesMut,
        start: usize,
        next: usize,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        let err = self.error_at(start, kind);
        self.advance(buf, next);
        self.reset_frame(State::Discard { mid_line: false });
        err
    }

    fn too_large(&mut self, buf: &mut BytesMut, drop: usize, mid_line: bool) -> DecodeError {
        let err = self.error_at(
            0,
            DecodeErrorKind::FrameTooLarge {
                limit: self.max_frame_len,
            },
        );
        self.advance(buf, drop);
        self.reset_frame(State::Discard { mid_line });
        err
    }

    /// Skip damaged bytes. Returns true when a header line may start at `buf[0]`.
    fn discard(&mut self, buf: &mut BytesMut, mut mid_line: bool) -> bool {
        loop {
            if mid_line {
                match memchr(b'\n', buf) {
                    None => {
                        let n = buf.len();
                        self.advance(buf, n);
                        self.state = State::Discard { mid_line: true };
                        return false;
                    }
                    Some(nl) => self.advance(buf, nl + 1),
                }
            }
            if buf.len() < HEADER_PREFIX.len() && HEADER_PREFIX.starts_with(buf) {
                self.state = State::Discard { mid_line: false };
                return false;
            }
            if buf.starts_with(HEADER_PREFIX) {
                self.state = State::Header;
                return true;
            }
            mid_line = true;
        }
    }

    fn error_at(&self, pos: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.consumed + pos as u64,
            kind,
        }
    }

    fn advance(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.consumed += n as u64;
    }

    fn reset_frame(&mut self, state: State) {
        self.state = state;
        self.scanned = 0;
        self.type_field = NO_TYPE;
        self.suspicious = NONE;
        self.index.clear();
    }
}

/// Split a body line at its first `": "` (or a final `:`): `(key length, value offset)`.
/// The key must be printable ASCII; one pass over the key bytes does both.
#[inline]
fn split_field(line: &[u8]) -> Result<(usize, usize), DecodeErrorKind> {
    for (i, &b) in line.iter().enumerate() {
        if b == b':' {
            match line.get(i + 1) {
                Some(b' ') if i > 0 => return Ok((i, i + 2)),
                None if i > 0 => return Ok((i, i + 1)),
                _ => break,
            }
        }
        if !b.is_ascii_graphic() {
            break;
        }
    }
    // Cold path: tell a bad key from a line with no separator at all.
    let has_sep = memchr::memmem::find(line, b": ").is_some() || line.last() == Some(&b':');
    Err(if has_sep {
        DecodeErrorKind::InvalidKey
    } else {
        DecodeErrorKind::MissingSeparator
    })
}

/// Bits `from..to` of a word (`from < 64`, `to <= 64`).
#[inline]
fn bit_span(from: usize, to: usize) -> u64 {
    let below_to = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    below_to & (u64::MAX << from)
}

/// One index entry: four offsets, native endian.
#[inline]
fn span(key_start: usize, key_end: usize, value_start: usize, value_end: usize) -> [u8; SPAN_LEN] {
    let n = |x: usize| (x as u32).to_ne_bytes();
    let (a, b, c, d) = (n(key_start), n(key_end), n(value_start), n(value_end));
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2],
        d[3],
    ]
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether an incomplete line may still become a header line.
fn could_be_header(partial: &[u8]) -> bool {
    if partial.len() <= HEADER_PREFIX.len() {
        HEADER_PREFIX.starts_with(partial) || partial == b"\r"
    } else {
        partial.starts_with(HEADER_PREFIX) && trim_cr(partial).len() <= MAX_HEADER_LINE
    }
}

impl Frame {
    /// Parse exactly one complete frame from `bytes` (copied). Bytes after the frame, or an
    /// incomplete frame, are an error.
    pub fn parse(bytes: &[u8]) -> Result<Frame, DecodeError> {
        let mut parser = FrameParser::with_max_frame_len(bytes.len().max(DEFAULT_MAX_FRAME_LEN));
        let mut buf = BytesMut::from(bytes);
        match parser.parse(&mut buf)? {
            Some(frame) if buf.iter().all(|b| b.is_ascii_whitespace()) => Ok(frame),
            Some(_) => Err(DecodeError {
                offset: parser.stream_offset(),
                kind: DecodeErrorKind::MissingHeader,
            }),
            None => Err(parser.finish(&mut buf).unwrap_or(DecodeError {
                offset: 0,
                kind: DecodeErrorKind::TruncatedAtEof,
            })),
        }
    }
}
