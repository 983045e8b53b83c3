//! [`FrameParser`]: the incremental, resynchronising FASPMGR stream decoder.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::frame::{
    Frame, FrameRef, HEADER, INLINE_FIELDS, Index, IndexRef, NO_TYPE, SPAN_LEN, Span, next_line,
    put_span,
};
use crate::scan::{Masks, avx2_available, masks};

/// "Not found" for positions.
const NONE: usize = usize::MAX;

/// Default maximum size of one frame: 64 KiB (a real ascp caps a message near 10 KiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Initial capacity of the arena of spilled field indexes (frames with more than
/// [`INLINE_FIELDS`] fields or longer than 64 KiB). Such frames take their index out of it
/// without allocating; it is reused or renewed once the frames holding parts of it are dropped.
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
/// when more bytes arrive: a partial frame is never rescanned, and of a partial line only its
/// last 64-byte block is.
///
/// [`FrameParser::parse_in`] is the borrowed twin: the frame is a [`FrameRef`] view of the
/// caller's buffer (nothing split, copied or reference-counted), and the caller drops the bytes
/// read when it likes ([`FrameParser::release`]). Both decode alike, errors and offsets
/// included.
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
    /// In `Body`: `buf[..scanned]` has been examined; the scan resumes there.
    scanned: usize,
    /// In `Body`: where the line being read starts (`<= scanned`).
    line_start: usize,
    /// In `Body`: the first colon of the line being read, when `buf[..scanned]` holds it, or
    /// `line_start` when a byte before it cannot be in a key (the line is bad either way).
    key_end: usize,
    /// Fields of the frame being parsed.
    fields: usize,
    /// Their key and value ends while they fit inline (as in [`Index::Inline`]).
    inline: [[u16; 2]; INLINE_FIELDS],
    /// Their offsets once they do not (`SPAN_LEN` bytes each); holds exactly the spans of the
    /// frame being parsed.
    spilled: BytesMut,
    /// In `Body`: position of the first non-ASCII or NUL byte seen in the frame (or `NONE`).
    suspicious: usize,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    /// Whether the CPU has AVX2 (the block loop then runs compiled for it).
    avx2: bool,
    /// In `Body`: whether a line of the frame ended with CRLF.
    saw_cr: bool,
    /// [`FrameParser::parse_in`]: bytes at the front of the caller's buffer already consumed
    /// (the parser's position in it) and not yet released.
    base: usize,
}

/// The bytes a parse reads, from the parser's position on, and how it drops them: the one
/// block loop serves the owned front-end ([`FrameParser::parse`], a `BytesMut` it splits) and
/// the borrowed one ([`FrameParser::parse_in`], a slice it only moves a position over).
trait Input {
    /// The bytes from the parser's position on.
    fn view(&self) -> &[u8];
    /// The parser is done with the first `n` bytes of the view.
    fn skip(&mut self, n: usize);
}

impl Input for BytesMut {
    #[inline(always)]
    fn view(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) {
        Buf::advance(self, n);
    }
}

/// The caller's buffer and the parser's position in it.
struct Window<'b> {
    buf: &'b [u8],
    base: usize,
}

impl Input for Window<'_> {
    #[inline(always)]
    fn view(&self) -> &[u8] {
        // A buffer shorter than the position (the caller dropped more than released) reads
        // as empty rather than panicking.
        self.buf.get(self.base..).unwrap_or_default()
    }

    #[inline(always)]
    fn skip(&mut self, n: usize) {
        self.base += n;
    }
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
            line_start: 0,
            key_end: NONE,
            fields: 0,
            inline: [[0; 2]; INLINE_FIELDS],
            spilled: BytesMut::new(),
            suspicious: NONE,
            consumed: 0,
            avx2: avx2_available(),
            saw_cr: false,
            base: 0,
        }
    }

    /// The same parser on the SSE2 (or portable) path even where the CPU has AVX2: the tests
    /// and the fuzz harness check that both paths decode alike.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn without_avx2(mut self) -> FrameParser {
        self.avx2 = false;
        self
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
    #[inline]
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(len) = self.next_frame(buf)? else {
            return Ok(None);
        };
        let type_field = self.type_field(&buf[..len]);
        let raw: Bytes = buf.split_to(len).freeze();
        self.consumed += len as u64;
        let index = if self.spilled.is_empty() {
            Index::Inline {
                len: self.fields as u8,
                crlf: self.saw_cr,
                ends: self.inline,
            }
        } else {
            Index::Shared(self.spilled.split().freeze())
        };
        let frame = Frame::from_parts(raw, index, type_field);
        self.reset_frame(State::Header);
        Ok(Some(frame))
    }

    /// Index the next frame of `buf` in place, without copying, allocating or taking a
    /// reference count: the borrowed twin of [`FrameParser::parse`].
    ///
    /// `buf` is the caller's read buffer from its front: the first
    /// [`FrameParser::consumed`] bytes of it are frames already returned or bytes skipped;
    /// the parser reads on from there. Between calls the buffer may only grow at the end,
    /// or lose at its front exactly the bytes [`FrameParser::release`] hands back. A partial
    /// frame is not rescanned when more bytes arrive, as with `parse`.
    ///
    /// * `Ok(Some(frame))`: a frame borrowing `buf` (and the parser's field index, which the
    ///   next call reuses); [`FrameRef::to_frame`] keeps it;
    /// * `Ok(None)`: more bytes are needed;
    /// * `Err(e)`: a damaged stretch was skipped (the same errors, at the same stream
    ///   offsets, as `parse` reports); call again to go on.
    ///
    /// ```
    /// use bytes::{Buf, BytesMut};
    /// use fasp_mgmt_proto::FrameParser;
    ///
    /// let mut parser = FrameParser::new();
    /// let mut buf = BytesMut::from(&b"FASPMGR 2\nType: STATS\nWritten: 7\n\nFASPMGR 2\nType"[..]);
    /// let mut written = Vec::new();
    /// while let Some(frame) = parser.parse_in(&buf)? {
    ///     written.push(frame.get("Written").map(str::to_owned));
    /// }
    /// buf.advance(parser.release()); // drop the frames read; the partial one stays
    /// assert_eq!(written, [Some("7".to_owned())]);
    /// assert_eq!(&buf[..], b"FASPMGR 2\nType");
    /// buf.extend_from_slice(b": STOP\n\n");
    /// let frame = parser.parse_in(&buf)?.expect("complete");
    /// assert_eq!(frame.type_name(), Some("STOP"));
    /// # Ok::<(), fasp_mgmt_proto::DecodeError>(())
    /// ```
    #[inline]
    pub fn parse_in<'p>(&'p mut self, buf: &'p [u8]) -> Result<Option<FrameRef<'p>>, DecodeError> {
        let mut window = Window {
            buf,
            base: self.base,
        };
        let found = self.next_frame(&mut window);
        self.base = window.base;
        let Some(len) = found? else {
            return Ok(None);
        };
        let start = self.base;
        let raw = buf.get(start..start + len).unwrap_or_default();
        let type_field = self.type_field(raw);
        self.consumed += len as u64;
        self.base += len;
        // The scan state is reset; the field index stays for the frame returned and is
        // cleared when the next frame starts.
        self.state = State::Header;
        self.scanned = 0;
        self.key_end = NONE;
        self.suspicious = NONE;
        let index = if self.spilled.is_empty() {
            IndexRef::Inline {
                ends: self.inline.get(..self.fields).unwrap_or_default(),
                crlf: self.saw_cr,
            }
        } else {
            IndexRef::Shared(&self.spilled)
        };
        Ok(Some(FrameRef::from_parts(raw, index, type_field)))
    }

    /// Bytes at the front of the buffer given to [`FrameParser::parse_in`] that the parser is
    /// done with: frames returned and bytes skipped.
    pub fn consumed(&self) -> usize {
        self.base
    }

    /// Hand back the [`FrameParser::consumed`] bytes: the caller must drop exactly that many
    /// bytes from the front of its buffer (`buf.advance(parser.release())`) before the next
    /// [`FrameParser::parse_in`]. Frames already returned must not be used afterwards.
    pub fn release(&mut self) -> usize {
        std::mem::take(&mut self.base)
    }

    /// [`FrameParser::finish`] for [`FrameParser::parse_in`]: reports a frame left
    /// incomplete at end of stream; every byte of `buf` is then consumed (release them).
    pub fn finish_in(&mut self, buf: &[u8]) -> Option<DecodeError> {
        let mut window = Window {
            buf,
            base: self.base,
        };
        let err = self.finish_input(&mut window);
        self.base = window.base;
        err
    }

    /// The parse loop both front-ends share: `Some(len)` when a complete frame is the first
    /// `len` bytes of the view, its index in the parser (the front-end takes it and resets).
    #[inline(always)]
    fn next_frame<I: Input>(&mut self, buf: &mut I) -> Result<Option<usize>, DecodeError> {
        loop {
            match self.state {
                State::Header => {
                    // The usual case inline: the next frame starts the view.
                    if buf.view().starts_with(b"FASPMGR 2\n") {
                        self.start_body(10);
                        return self.body(buf);
                    }
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
        self.finish_input(buf)
    }

    fn finish_input<I: Input>(&mut self, buf: &mut I) -> Option<DecodeError> {
        let err = match self.state {
            State::Discard { .. } => None,
            State::Header if buf.view().iter().all(|b| b.is_ascii_whitespace()) => None,
            State::Header | State::Body => Some(self.error_at(0, DecodeErrorKind::TruncatedAtEof)),
        };
        let n = buf.view().len();
        self.advance(buf, n);
        self.reset_frame(State::Header);
        err
    }

    /// Expecting a header line. `None` with the state still `Header` means "need more".
    fn header<I: Input>(&mut self, buf: &mut I) -> Option<DecodeError> {
        loop {
            let data = buf.view();
            // The common case, without a search: the buffer starts with the header line.
            if data.starts_with(b"FASPMGR 2\n") {
                self.start_body(10);
                return None;
            }
            let Some(nl) = memchr(b'\n', data) else {
                if data.is_empty() || could_be_header(data) {
                    return None;
                }
                let err = self.error_at(0, DecodeErrorKind::MissingHeader);
                let n = data.len();
                self.advance(buf, n);
                self.state = State::Discard { mid_line: true };
                return Some(err);
            };
            let line = trim_cr(&data[..nl]);
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
        // Every way into `Header` reset the scan state; the index of the frame `parse_in`
        // returned last is cleared only now.
        debug_assert!(self.suspicious == NONE && self.key_end == NONE);
        self.fields = 0;
        self.saw_cr = false;
        self.spilled.clear();
        self.state = State::Body;
        self.scanned = len;
        self.line_start = len;
    }

    /// Index the lines of the frame starting at `buf[0]`, 64 bytes at a time from where the
    /// last call stopped. A block is classified once (line feeds, colons, bytes a key cannot
    /// hold); each line then costs a few bit operations. What is known of a line still open at
    /// the end of a full block (its first colon, a bad key byte) is kept, so bytes are looked at
    /// again only in an incomplete last block.
    #[inline(always)]
    fn body<I: Input>(&mut self, buf: &mut I) -> Result<Option<usize>, DecodeError> {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            #[allow(unsafe_code)]
            // SAFETY: `avx2` is set only when the CPU has AVX2, BMI1 and BMI2
            // (`avx2_available`, in `FrameParser::with_max_frame_len`).
            return unsafe { self.body_avx2(buf) };
        }
        self.blocks::<false, I>(buf)
    }

    /// [`FrameParser::body`] compiled for AVX2 (and BMI1/BMI2, for the bit operations of each
    /// line): the whole block loop, not only the classification, so that nothing is dispatched
    /// per block.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2, BMI1 and BMI2 ([`avx2_available`]).
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2,bmi1,bmi2")]
    unsafe fn body_avx2<I: Input>(&mut self, buf: &mut I) -> Result<Option<usize>, DecodeError> {
        self.blocks::<true, I>(buf)
    }

    /// The block loop of [`FrameParser::body`]; `AVX2` only where the CPU has it.
    #[inline(always)]
    fn blocks<const AVX2: bool, I: Input>(
        &mut self,
        buf: &mut I,
    ) -> Result<Option<usize>, DecodeError> {
        let mut pos = self.scanned;
        let mut line_start = self.line_start;
        let mut key_end = self.key_end;
        let max = self.max_frame_len;
        // The incomplete last block, padded.
        let mut tail = [b' '; 64];
        // Whether a CR may end the block before (a line of this one may end with its last byte).
        // The bytes do not change during the loop: read once (every exit returns).
        let data: &[u8] = buf.view();
        let mut cr_before = data.get(pos.wrapping_sub(1)) == Some(&b'\r');
        let len = data.len();
        loop {
            if pos >= len {
                break;
            }
            let full = pos + 64 <= len;
            let (block, valid): (&[u8; 64], u64) = match data.get(pos..pos + 64) {
                Some(block) => (block.try_into().unwrap_or(&[0; 64]), u64::MAX),
                None => {
                    let n = len - pos;
                    tail[..n].copy_from_slice(&data[pos..]);
                    tail[n..].fill(b' ');
                    (&tail, (1u64 << n) - 1)
                }
            };
            let m = classify::<AVX2>(block);
            if m.suspicious && self.suspicious == NONE {
                // The exact place, for the frame's check (rare: non-ASCII text or NUL).
                if let Some(at) = data[pos..(pos + 64).min(len)]
                    .iter()
                    .position(|&b| b == 0 || b >= 0x80)
                {
                    self.suspicious = pos + at;
                }
            }
            // Colons and bad key bytes from the start of the open line on: each line's first
            // colon is then the lowest bit left, and its key the bits below.
            let from = line_start.saturating_sub(pos);
            debug_assert!(from < 64, "a line starts in the block or before it");
            let mut colons = m.colon & (u64::MAX << from);
            let mut bad = m.key_bad & (u64::MAX << from);
            // A CR may end a line of this block (the byte before the block included).
            let cr = m.cr || cr_before;
            cr_before = m.cr;
            let limit_near = pos + 64 > max;
            let mut nls = m.nl & valid;
            // A line begun in an earlier block ends at the first line feed of this one: what is
            // known of its key comes from there.
            if line_start < pos && nls != 0 {
                let i = nls.trailing_zeros() as usize;
                nls &= nls - 1;
                let p = pos + i;
                let next = p + 1;
                if limit_near && next > max {
                    return Err(self.too_large(buf, next, false));
                }
                let end = if cr && data[p - 1] == b'\r' {
                    self.saw_cr = true;
                    p - 1
                } else {
                    p
                };
                if end == line_start {
                    return self.complete(buf, next);
                }
                if key_end == NONE {
                    let c = colons.trailing_zeros() as usize;
                    if c >= i {
                        return Err(self.line_error(buf, line_start, end, next));
                    }
                    // A byte a key cannot hold marks the key empty: an error below.
                    key_end = if bad & ((1u64 << c) - 1) != 0 {
                        line_start
                    } else {
                        pos + c
                    };
                }
                if key_end == line_start || (key_end + 1 < end && data[key_end + 1] != b' ') {
                    return Err(self.line_error(buf, line_start, end, next));
                }
                self.push(data, line_start, key_end, end);
                line_start = next;
                key_end = NONE;
                let rest = (u64::MAX << i) << 1;
                colons &= rest;
                bad &= rest;
            }
            // Lines that start in this block: each one's key ends at the lowest colon left,
            // and its bytes are the bad-byte bits below it.
            while nls != 0 {
                let i = nls.trailing_zeros() as usize;
                nls &= nls - 1;
                let p = pos + i;
                let next = p + 1;
                if limit_near && next > max {
                    return Err(self.too_large(buf, next, false));
                }
                let end = if cr && data[p - 1] == b'\r' {
                    self.saw_cr = true;
                    p - 1
                } else {
                    p
                };
                if end == line_start {
                    return self.complete(buf, next);
                }
                let c = colons.trailing_zeros() as usize;
                let k = pos + c;
                // A key of printable ASCII, then `": "` or the end of the line.
                if c >= i
                    || bad & ((1u64 << c) - 1) != 0
                    || k == line_start
                    // The byte after the colon, in this block: `c < i < 64`.
                    || (k + 1 < end && block[(c + 1) & 63] != b' ')
                {
                    return Err(self.line_error(buf, line_start, end, next));
                }
                self.push(data, line_start, k, end);
                line_start = next;
                let rest = (u64::MAX << i) << 1;
                colons &= rest;
                bad &= rest;
            }
            if !full {
                break;
            }
            // The line still open: its first colon and bad key bytes in this block.
            if key_end == NONE && line_start < pos + 64 {
                let c = colons.trailing_zeros() as usize;
                if c < 64 {
                    key_end = if bad & ((1u64 << c) - 1) != 0 {
                        line_start
                    } else {
                        pos + c
                    };
                } else if bad != 0 {
                    // Not a key, whatever follows: marked as an empty one.
                    key_end = line_start;
                }
            }
            pos += 64;
        }
        // Resume at the incomplete last block, or at the open line if it starts there.
        if line_start >= pos {
            self.scanned = line_start;
            self.key_end = NONE;
        } else {
            self.scanned = pos;
            self.key_end = key_end;
        }
        self.line_start = line_start;
        if len > self.max_frame_len {
            return Err(self.too_large(buf, len, true));
        }
        Ok(None)
    }

    /// Record the offsets of the next field.
    #[inline]
    fn push(&mut self, data: &[u8], key_start: usize, key_end: usize, value_end: usize) {
        let i = self.fields;
        self.fields += 1;
        // Fields and offsets only grow: once a frame has spilled, it stays spilled.
        if i < INLINE_FIELDS && value_end <= usize::from(u16::MAX) {
            // The key starts where the line before ended: not stored.
            debug_assert_eq!(
                key_start,
                next_line(
                    data,
                    self.inline[..i]
                        .last()
                        .map_or(HEADER.len(), |e| e[1].into())
                )
            );
            self.inline[i] = [key_end as u16, value_end as u16];
            return;
        }
        // Offsets as separate arguments: they stay in registers on the hot path.
        self.spill(data, i, key_start as u32, key_end as u32, value_end as u32);
    }

    /// The frame does not fit inline: its index goes to the arena.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, data: &[u8], i: usize, key_start: u32, key_end: u32, value_end: u32) {
        let span = [key_start, key_end, value_end];
        if self.spilled.is_empty() {
            // Renew the arena only when needed: by now the caller has usually dropped earlier
            // frames, so it is reclaimed in place instead of reallocated.
            self.spilled.reserve(INDEX_ARENA.max((i + 1) * SPAN_LEN));
            for s in self.inline_spans(data, i) {
                put_span(&mut self.spilled, s);
            }
        }
        put_span(&mut self.spilled, span);
    }

    /// The offsets of the first `n` fields, indexed inline, of the frame starting `data`.
    fn inline_spans(&self, data: &[u8], n: usize) -> Vec<Span> {
        let mut start = next_line(data, HEADER.len());
        self.inline[..n]
            .iter()
            .map(|&[b, c]| {
                let a = start;
                start = next_line(data, c.into());
                [a as u32, u32::from(b), u32::from(c)]
            })
            .collect()
    }

    /// The offsets of the fields indexed so far of the frame starting `data`.
    fn spans(&self, data: &[u8]) -> Vec<Span> {
        if self.spilled.is_empty() {
            self.inline_spans(data, self.fields.min(INLINE_FIELDS))
        } else {
            self.spilled
                .chunks_exact(SPAN_LEN)
                .map(crate::frame::read_span)
                .collect()
        }
    }

    /// A line that is not `Key: Value`: a header (the open frame was never closed), or a bad
    /// line (the frame is dropped and the stream skipped to the next header).
    fn line_error<I: Input>(
        &mut self,
        buf: &mut I,
        start: usize,
        end: usize,
        next: usize,
    ) -> DecodeError {
        let line = &buf.view()[start..end];
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

    /// The frame `buf[..len]` is complete: check its values (the front-end takes it).
    fn complete<I: Input>(
        &mut self,
        buf: &mut I,
        len: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let bytes = &buf.view()[..len];
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
        Ok(Some(len))
    }

    /// Which field is the first `Type` (ascp always sends it first).
    #[inline(always)]
    fn type_field(&self, bytes: &[u8]) -> u32 {
        // The usual frame, `FASPMGR 2\nType: ...`: its first line (a field: the frame is
        // complete) has the key `Type`, whatever the index holds. After a CRLF header byte 10
        // is the line feed, so this cannot match.
        if bytes.get(10..15) == Some(b"Type:") {
            return 0;
        }
        let is_type = |a: usize, b: usize| b - a == 4 && bytes.get(a..b) == Some(b"Type");
        if self.spilled.is_empty() {
            let n = self.fields.min(INLINE_FIELDS);
            let mut a = next_line(bytes, HEADER.len());
            for (i, &[b, c]) in self.inline[..n].iter().enumerate() {
                if is_type(a, b.into()) {
                    return i as u32;
                }
                a = next_line(bytes, c.into());
            }
            NO_TYPE
        } else {
            self.spilled
                .chunks_exact(SPAN_LEN)
                .position(|s| {
                    let [a, b, _] = crate::frame::read_span(s);
                    is_type(a as usize, b as usize)
                })
                .map_or(NO_TYPE, |i| i as u32)
        }
    }

    /// The key of the indexed field whose value holds byte `at`.
    fn key_at(&self, bytes: &[u8], at: usize) -> String {
        for [a, b, c] in self.spans(bytes) {
            let (a, b, c) = (a as usize, b as usize, c as usize);
            if ((b + 2).min(c)..=c).contains(&at) {
                return String::from_utf8_lossy(&bytes[a..b]).into_owned();
            }
        }
        String::new()
    }

    /// A bad line at `buf[start..next]`: report it, drop the frame so far, skip the rest.
    fn bad_line<I: Input>(
        &mut self,
        buf: &mut I,
        start: usize,
        next: usize,
        kind: DecodeErrorKind,
    ) -> DecodeError {
        let err = self.error_at(start, kind);
        self.advance(buf, next);
        self.reset_frame(State::Discard { mid_line: false });
        err
    }

    fn too_large<I: Input>(&mut self, buf: &mut I, drop: usize, mid_line: bool) -> DecodeError {
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
    fn discard<I: Input>(&mut self, buf: &mut I, mut mid_line: bool) -> bool {
        loop {
            if mid_line {
                match memchr(b'\n', buf.view()) {
                    None => {
                        let n = buf.view().len();
                        self.advance(buf, n);
                        self.state = State::Discard { mid_line: true };
                        return false;
                    }
                    Some(nl) => self.advance(buf, nl + 1),
                }
            }
            let data = buf.view();
            if data.len() < HEADER_PREFIX.len() && HEADER_PREFIX.starts_with(data) {
                self.state = State::Discard { mid_line: false };
                return false;
            }
            if data.starts_with(HEADER_PREFIX) {
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

    fn advance<I: Input>(&mut self, buf: &mut I, n: usize) {
        buf.skip(n);
        self.consumed += n as u64;
    }

    fn reset_frame(&mut self, state: State) {
        self.state = state;
        self.scanned = 0;
        self.line_start = 0;
        self.key_end = NONE;
        self.fields = 0;
        self.suspicious = NONE;
        self.saw_cr = false;
        self.spilled.clear();
    }
}

/// Classify a block, with AVX2 when `AVX2` (only instantiated so from
/// [`FrameParser::body_avx2`]).
#[inline(always)]
fn classify<const AVX2: bool>(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        #[allow(unsafe_code)]
        // SAFETY: `classify::<true>` is reached only through `FrameParser::body_avx2`, which
        // runs only on a CPU with AVX2.
        return unsafe { crate::scan::masks_avx2(block) };
    }
    masks(block)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Fed one byte at a time, the parser resumes where it stopped: at most the last 64-byte
    /// block (the one holding the incomplete line) is looked at again, never the frame from its
    /// start, whatever the line lengths.
    #[test]
    fn a_partial_frame_is_not_rescanned() {
        let mut frame = b"FASPMGR 2\nType: STATS\n".to_vec();
        frame.extend(format!("File: /{}\n", "p".repeat(3000)).as_bytes());
        for i in 0..200 {
            frame.extend(format!("Key{i}: {i}\r\n").as_bytes());
        }
        frame.extend(format!("{}: long key\n\n", "K".repeat(500)).as_bytes());
        let mut parser = FrameParser::new();
        let mut buf = BytesMut::new();
        for (n, &b) in frame.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            match parser.parse(&mut buf).unwrap() {
                None => {
                    if parser.state == State::Body {
                        assert!(parser.scanned + 64 > buf.len(), "rescan from {n}");
                        assert!(parser.line_start <= parser.scanned);
                    }
                }
                Some(f) => {
                    assert_eq!(n + 1, frame.len());
                    assert_eq!(f.field_count(), 203);
                    assert_eq!(f.get("Key199"), Some("199"));
                    assert_eq!(f.fields().last().unwrap().value, "long key");
                }
            }
        }
        assert!(parser.is_idle() && buf.is_empty());
    }

    /// `Type` is found where ascp sends it (the fast test on the first line) and elsewhere,
    /// and a first key that merely starts with `Type` or a CRLF header does not fool the fast
    /// test; both front-ends agree with a search of the fields.
    #[test]
    fn the_type_field_is_the_first_key_named_type() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (b"FASPMGR 2\nType: STATS\nFile: a\n\n", Some("STATS")),
            (b"FASPMGR 2\nTypes: X\nType: STOP\n\n", Some("STOP")),
            (b"FASPMGR 2\nTyp: X\nType: DONE\n\n", Some("DONE")),
            (b"FASPMGR 2\r\nType: INIT\r\n\r\n", Some("INIT")),
            (b"FASPMGR 2\nSessionId: s\nType: ERROR\n\n", Some("ERROR")),
            (b"FASPMGR 2\nType:\n\n", Some("")),
            (b"FASPMGR 2\nTypeX: 1\nUserStr: Type: no\n\n", None),
        ];
        for (bytes, want) in cases {
            let mut parser = FrameParser::new();
            let frame = parser.parse_in(bytes).unwrap().expect("complete");
            let searched = frame.fields().find(|f| f.key == "Type").map(|f| f.value);
            assert_eq!(searched, want, "{bytes:?}");
            assert_eq!(frame.type_name(), want, "{bytes:?}");
            let mut buf = BytesMut::from(bytes);
            let owned = FrameParser::new()
                .parse(&mut buf)
                .unwrap()
                .expect("complete");
            assert_eq!(owned.type_name(), want, "{bytes:?}");
        }
    }

    /// Everything a parser returns for `input` fed in reads of `chunk` bytes.
    fn decode(mut parser: FrameParser, input: &[u8], chunk: usize) -> Vec<String> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match parser.parse(&mut buf) {
                    Ok(Some(f)) => out.push(format!(
                        "{:?} {:?}",
                        f.fields().collect::<Vec<_>>(),
                        f.as_bytes()
                    )),
                    Ok(None) => break,
                    Err(e) => out.push(format!("{e:?}")),
                }
            }
        }
        out.extend(parser.finish(&mut buf).map(|e| format!("{e:?}")));
        out
    }

    proptest::proptest! {
        /// The AVX2 block loop (where the CPU has it) and the SSE2 one decode alike, whole or
        /// in reads of any size, valid or damaged input.
        #[test]
        fn proptest_avx2_and_sse2_paths_agree(
            lines in proptest::collection::vec("(FASPMGR 2|[A-Za-z]{1,70}: [ -~\u{e9}]{0,90}|[A-Za-z :\r]{0,20}|)\r?", 1..60),
            chunk in 1usize..200,
            max in 64usize..3000,
        ) {
            let input = lines.join("\n");
            let avx2 = FrameParser::with_max_frame_len(max);
            let sse2 = FrameParser::with_max_frame_len(max).without_avx2();
            proptest::prop_assert_eq!(
                decode(avx2, input.as_bytes(), chunk),
                decode(sse2, input.as_bytes(), input.len().max(1))
            );
        }
    }
}
