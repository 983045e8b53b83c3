//! [`Frame`]: one FASPMGR message, owning its bytes and indexing its fields by offset.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;
use crate::escape::{escape_path, escaped_len, unescape_path};

/// The first line of every frame.
pub const HEADER: &[u8] = b"FASPMGR 2";

/// Fields a frame indexes inline, without a buffer of its own: the messages ascp sends during
/// a transfer (`STATS` has 15 fields, `STOP` 17) fit; a `DONE` (about 25) or a `SESSION`
/// (about 55) spills into a shared buffer. 21 keeps a [`Frame`] within 128 bytes, which the
/// compiler moves without a `memcpy` call.
pub(crate) const INLINE_FIELDS: usize = 21;
/// Bytes of one spilled index entry: key start, key end, value end (u32 each, native endian).
pub(crate) const SPAN_LEN: usize = 12;
/// `type_field` value when the frame has no `Type` field.
pub(crate) const NO_TYPE: u32 = u32::MAX;

/// One field's offsets in the frame: key start, key end (the colon), value end (before the
/// line break). The value starts two bytes after the key (`": "`), or at its end when the line
/// ends right after the colon: `min(key_end + 2, value_end)`.
pub(crate) type Span = [u32; 3];

/// Start of the line after the header or field line whose text ends at `end` (before its LF
/// or CRLF). The header's text ends at 9 (`FASPMGR 2`), so `next_line(raw, 9)` is where the
/// first key starts.
#[inline(always)]
pub(crate) fn next_line(raw: &[u8], end: usize) -> usize {
    end + 1 + usize::from(raw.get(end) == Some(&b'\r'))
}

/// [`next_line`] of a field line; `crlf` false: the frame's field lines all end with a bare LF,
/// so nothing needs to be read.
#[inline(always)]
pub(crate) fn after_field(raw: &[u8], end: usize, crlf: bool) -> usize {
    if crlf { next_line(raw, end) } else { end + 1 }
}

/// Where a frame keeps the offsets of its fields.
#[derive(Clone)]
pub(crate) enum Index {
    /// Up to [`INLINE_FIELDS`] fields of a frame shorter than 64 KiB, in the frame itself: no
    /// second reference count per frame. Key end and value end of each field; its key starts
    /// on the next line after the one before ([`next_line`]). `crlf`: a CR may end a field
    /// line (when false, each key starts right after the line feed before it).
    Inline {
        len: u8,
        crlf: bool,
        ends: [[u16; 2]; INLINE_FIELDS],
    },
    /// Larger frames: [`SPAN_LEN`]-byte entries in a shared buffer.
    Shared(Bytes),
}

impl Index {
    /// An index of the frame `raw` from a list of spans (the builder's way; the parser builds
    /// its own). Inline when the fields are few, the frame short and each key starts the line
    /// after the one before.
    pub(crate) fn from_spans(raw: &[u8], spans: &[Span]) -> Index {
        let crlf = raw.contains(&b'\r');
        let mut start = next_line(raw, HEADER.len());
        let fits = |s: &Span| {
            let ok = s[2] <= u32::from(u16::MAX) && s[0] as usize == start;
            start = after_field(raw, s[2] as usize, crlf);
            ok
        };
        if spans.len() <= INLINE_FIELDS && spans.iter().all(fits) {
            let mut ends = [[0u16; 2]; INLINE_FIELDS];
            for (dst, s) in ends.iter_mut().zip(spans) {
                *dst = [s[1] as u16, s[2] as u16];
            }
            Index::Inline {
                len: spans.len() as u8,
                crlf,
                ends,
            }
        } else {
            let mut b = BytesMut::with_capacity(spans.len() * SPAN_LEN);
            for s in spans {
                put_span(&mut b, *s);
            }
            Index::Shared(b.freeze())
        }
    }
}

/// Append a spilled index entry.
#[inline]
pub(crate) fn put_span(dst: &mut BytesMut, [a, b, c]: Span) {
    let (a, b, c) = (a.to_ne_bytes(), b.to_ne_bytes(), c.to_ne_bytes());
    dst.extend_from_slice(&[
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3],
    ]);
}

/// The offsets of a spilled index entry.
#[inline]
pub(crate) fn read_span(span: &[u8]) -> Span {
    let s: [u8; SPAN_LEN] = span.try_into().unwrap_or([0; SPAN_LEN]);
    let n = |i: usize| u32::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    [n(0), n(4), n(8)]
}

/// One FASPMGR frame: `FASPMGR 2`, `Key: Value` lines, an empty line.
///
/// A frame owns its wire bytes (a [`Bytes`] split off the read buffer, so decoding copies
/// nothing) and an index of field offsets. Every accessor borrows from those bytes. Fields keep
/// their wire order; unknown keys and repeated keys are kept. Values are raw wire text: use
/// [`Field::path_value`] (or the typed views in [`crate::Message`]) to decode ESC-escaped paths.
///
/// Equality compares the fields (keys and values, in order), not the line endings, so a frame
/// read with CRLF equals the same frame read with LF.
///
/// `Debug` and `Display` print secret fields (see [`is_secret_key`]) as `<redacted>`.
#[derive(Clone)]
pub struct Frame {
    raw: Bytes,
    index: Index,
    type_field: u32,
}

impl Frame {
    /// Assemble a frame from already validated parts (the parser and the builder do this).
    pub(crate) fn from_parts(raw: Bytes, index: Index, type_field: u32) -> Frame {
        Frame {
            raw,
            index,
            type_field,
        }
    }

    /// Start building a frame of the given `Type` (for emulators, tests and custom controls).
    ///
    /// ```
    /// # use fasp_mgmt_proto::Frame;
    /// let frame = Frame::builder("STATS")?
    ///     .field("SessionId", "s1")?
    ///     .path("File", "/data/a\nb.txt")?
    ///     .finish();
    /// assert_eq!(frame.get("File"), Some("/data/a\u{1b}nb.txt"));
    /// # Ok::<(), fasp_mgmt_proto::EncodeError>(())
    /// ```
    pub fn builder(type_name: &str) -> Result<FrameBuilder, EncodeError> {
        FrameBuilder::new(type_name)
    }

    /// The frame as a borrowed [`FrameRef`] (what [`FrameParser::parse_in`] gives): every
    /// accessor of `Frame` is the `FrameRef` one.
    ///
    /// [`FrameParser::parse_in`]: crate::FrameParser::parse_in
    #[inline(always)]
    pub fn as_frame_ref(&self) -> FrameRef<'_> {
        let index = match &self.index {
            Index::Inline { len, crlf, ends } => IndexRef::Inline {
                ends: ends.get(..usize::from(*len)).unwrap_or_default(),
                crlf: *crlf,
            },
            Index::Shared(b) => IndexRef::Shared(b),
        };
        FrameRef::from_parts(&self.raw, index, self.type_field)
    }

    /// The value of the `Type` field, if the frame has one.
    #[inline]
    pub fn type_name(&self) -> Option<&str> {
        // Read from the owned index directly (a hot path: no view built).
        if self.type_field == NO_TYPE {
            return None;
        }
        let [b, c] = match &self.index {
            Index::Inline { ends, .. } => *ends.get(self.type_field as usize)?,
            Index::Shared(_) => return self.as_frame_ref().type_name(),
        };
        let (b, c) = (usize::from(b), usize::from(c));
        Some(text(self.raw.get((b + 2).min(c)..c).unwrap_or_default()))
    }

    /// The message type, from the `Type` field.
    #[inline]
    pub fn kind(&self) -> MessageType<'_> {
        self.as_frame_ref().kind()
    }

    /// The raw value of the first field named `key` (case-sensitive, as ascp writes them).
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.as_frame_ref().get(key)
    }

    /// The raw values of every field named `key`, in wire order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.as_frame_ref().get_all(key)
    }

    /// The `i`-th field in wire order.
    #[inline]
    pub fn field(&self, i: usize) -> Option<Field<'_>> {
        self.as_frame_ref().field(i)
    }

    /// All fields in wire order (the `Type` field included).
    #[inline]
    pub fn fields(&self) -> Fields<'_> {
        self.as_frame_ref().fields()
    }

    /// Every field as its key and the offsets of its value in [`Frame::as_bytes`] (for the
    /// typed views, which read numbers straight from the frame's bytes).
    #[inline]
    pub(crate) fn raw_fields(&self) -> RawFields<'_> {
        RawFields(self.fields())
    }

    /// See [`FrameRef::inline_ends`].
    #[cfg(test)]
    pub(crate) fn inline_ends(&self) -> Option<(&[[u16; 2]], bool)> {
        self.as_frame_ref().inline_ends()
    }

    /// Number of fields (the `Type` field included).
    #[inline]
    pub fn field_count(&self) -> usize {
        match &self.index {
            Index::Inline { len, .. } => usize::from(*len),
            Index::Shared(b) => b.len() / SPAN_LEN,
        }
    }

    /// The frame's wire bytes, header and final empty line included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The frame's wire bytes as a cheap shared handle.
    pub fn to_bytes(&self) -> Bytes {
        self.raw.clone()
    }

    /// Length of the frame on the wire.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// Whether any field of this frame holds a secret (see [`is_secret_key`]).
    #[inline]
    pub fn has_secrets(&self) -> bool {
        self.as_frame_ref().has_secrets()
    }
}

/// Where a [`FrameRef`] finds the offsets of its fields: the borrowed form of [`Index`].
#[derive(Clone, Copy)]
pub(crate) enum IndexRef<'a> {
    /// As [`Index::Inline`]: the key end and value end of each field.
    Inline { ends: &'a [[u16; 2]], crlf: bool },
    /// As [`Index::Shared`]: [`SPAN_LEN`]-byte entries.
    Shared(&'a [u8]),
}

/// One FASPMGR frame borrowed from a read buffer: what [`FrameParser::parse_in`] returns,
/// with the accessors of [`Frame`] (which are these) and nothing owned.
///
/// It borrows the caller's buffer and the parser's field index: nothing was copied,
/// allocated or reference-counted to make it. [`FrameRef::to_frame`] (or `Frame::from`) makes
/// an owned [`Frame`] of it for a caller that keeps it. `Debug` redacts secrets as `Frame`
/// does.
///
/// [`FrameParser::parse_in`]: crate::FrameParser::parse_in
#[derive(Clone, Copy)]
pub struct FrameRef<'a> {
    raw: &'a [u8],
    index: IndexRef<'a>,
    type_field: u32,
}

impl<'a> FrameRef<'a> {
    /// Assemble a view from validated parts (the parser and [`Frame::as_frame_ref`] do this).
    #[inline(always)]
    pub(crate) fn from_parts(raw: &'a [u8], index: IndexRef<'a>, type_field: u32) -> Self {
        FrameRef {
            raw,
            index,
            type_field,
        }
    }

    /// The value of the `Type` field, if the frame has one.
    #[inline]
    pub fn type_name(&self) -> Option<&'a str> {
        if self.type_field == NO_TYPE {
            return None;
        }
        // Only the value's offsets: the key start (a walk over the lines before) is not needed.
        let [b, c] = match self.index {
            IndexRef::Inline { ends, .. } => *ends.get(self.type_field as usize)?,
            IndexRef::Shared(_) => return self.type_name_shared(),
        };
        let (b, c) = (usize::from(b), usize::from(c));
        Some(text(self.raw.get((b + 2).min(c)..c).unwrap_or_default()))
    }

    /// [`FrameRef::type_name`] of a frame whose index spilled.
    #[cold]
    #[inline(never)]
    fn type_name_shared(&self) -> Option<&'a str> {
        self.field(self.type_field as usize).map(|f| f.value)
    }

    /// The message type, from the `Type` field.
    #[inline]
    pub fn kind(&self) -> MessageType<'a> {
        match self.type_name() {
            Some(t) => MessageType::from_name(t),
            None => MessageType::Missing,
        }
    }

    /// The raw value of the first field named `key` (case-sensitive, as ascp writes them).
    #[inline]
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields().find(|f| f.key == key).map(|f| f.value)
    }

    /// The raw values of every field named `key`, in wire order.
    pub fn get_all(self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields().filter(move |f| f.key == key).map(|f| f.value)
    }

    /// The `i`-th field in wire order.
    #[inline]
    pub fn field(&self, i: usize) -> Option<Field<'a>> {
        let [a, b, c] = match self.index {
            IndexRef::Inline { ends, crlf } => {
                let start = match i.checked_sub(1) {
                    Some(j) => after_field(self.raw, usize::from(ends.get(j)?[1]), crlf),
                    None => next_line(self.raw, HEADER.len()),
                };
                let [b, c] = *ends.get(i)?;
                [start, usize::from(b), usize::from(c)]
            }
            IndexRef::Shared(b) => {
                let at = i.checked_mul(SPAN_LEN)?;
                read_span(b.get(at..at + SPAN_LEN)?).map(|n| n as usize)
            }
        };
        Some(Field {
            key: text(self.raw.get(a..b).unwrap_or_default()),
            value: text(self.raw.get((b + 2).min(c)..c).unwrap_or_default()),
        })
    }

    /// All fields in wire order (the `Type` field included).
    #[inline]
    pub fn fields(&self) -> Fields<'a> {
        let spans = match self.index {
            IndexRef::Inline { ends, crlf } => SpanIter::Inline {
                ends: ends.iter(),
                start: next_line(self.raw, HEADER.len()),
                crlf,
            },
            IndexRef::Shared(b) => SpanIter::Shared(b.chunks_exact(SPAN_LEN)),
        };
        Fields {
            raw: self.raw,
            spans,
        }
    }

    /// See [`Frame::raw_fields`].
    #[inline]
    pub(crate) fn raw_fields(&self) -> RawFields<'a> {
        RawFields(self.fields())
    }

    /// The index entries (key end, value end) when they are inline, and whether a CR may end
    /// a field line: the first key starts at `next_line(raw, HEADER.len())`, each next one at
    /// [`after_field`] of the value end before.
    #[inline]
    pub(crate) fn inline_ends(&self) -> Option<(&'a [[u16; 2]], bool)> {
        match self.index {
            IndexRef::Inline { ends, crlf } => Some((ends, crlf)),
            IndexRef::Shared(_) => None,
        }
    }

    /// Number of fields (the `Type` field included).
    #[inline]
    pub fn field_count(&self) -> usize {
        match self.index {
            IndexRef::Inline { ends, .. } => ends.len(),
            IndexRef::Shared(b) => b.len() / SPAN_LEN,
        }
    }

    /// The frame's wire bytes, header and final empty line included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Length of the frame on the wire.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// Whether any field of this frame holds a secret (see [`is_secret_key`]).
    pub fn has_secrets(&self) -> bool {
        self.fields().any(|f| f.is_secret())
    }

    /// An owned copy: the frame's bytes and index copied into a new [`Frame`].
    pub fn to_frame(&self) -> Frame {
        let index = match self.index {
            IndexRef::Inline { ends, crlf } => {
                let mut all = [[0u16; 2]; INLINE_FIELDS];
                for (dst, e) in all.iter_mut().zip(ends) {
                    *dst = *e;
                }
                Index::Inline {
                    len: ends.len() as u8,
                    crlf,
                    ends: all,
                }
            }
            IndexRef::Shared(b) => Index::Shared(Bytes::copy_from_slice(b)),
        };
        Frame::from_parts(Bytes::copy_from_slice(self.raw), index, self.type_field)
    }
}

impl From<FrameRef<'_>> for Frame {
    fn from(frame: FrameRef<'_>) -> Frame {
        frame.to_frame()
    }
}

impl PartialEq for FrameRef<'_> {
    fn eq(&self, other: &FrameRef<'_>) -> bool {
        self.field_count() == other.field_count() && self.fields().eq(other.fields())
    }
}

impl Eq for FrameRef<'_> {}

impl fmt::Debug for FrameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct FieldsDebug<'a>(Fields<'a>);
        impl fmt::Debug for FieldsDebug<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.clone().map(|fl| (fl.key, fl.display_value())))
                    .finish()
            }
        }
        f.debug_struct("FrameRef")
            .field("type", &self.type_name())
            .field("fields", &FieldsDebug(self.fields()))
            .finish()
    }
}

/// A key or value of a frame as text.
///
/// Every `Frame` is UTF-8 by construction: the parser checks each complete frame once (an ASCII
/// scan, or `str::from_utf8` when it holds other bytes) and the builder writes only `&str`
/// input at ASCII delimiters. Checking again on every access cost half of the typed-view
/// throughput (`cargo xtask bench`, see docs/benchmarks.md), so this is the crate's one
/// `unsafe` block. Debug builds still check.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn text(b: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(b).is_ok());
    // SAFETY: `b` is a slice of a frame's bytes between ASCII delimiters (line starts, `": "`,
    // line ends), and those bytes were validated as UTF-8 when the frame was parsed or built,
    // so `b` is valid UTF-8 (a slice of valid UTF-8 cut at ASCII bytes stays valid).
    unsafe { std::str::from_utf8_unchecked(b) }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self.field_count() == other.field_count() && self.fields().eq(other.fields())
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct FieldsDebug<'a>(&'a Frame);
        impl fmt::Debug for FieldsDebug<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.fields().map(|fl| (fl.key, fl.display_value())))
                    .finish()
            }
        }
        f.debug_struct("Frame")
            .field("type", &self.type_name())
            .field("fields", &FieldsDebug(self))
            .finish()
    }
}

/// The frame as wire text, secrets redacted (LF line endings).
impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FASPMGR 2\n")?;
        for field in self.fields() {
            writeln!(f, "{}: {}", field.key, field.display_value())?;
        }
        f.write_str("\n")
    }
}

/// One `Key: Value` line of a frame, borrowed from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The key, before the first `": "`.
    pub key: &'a str,
    /// The raw value, after the first `": "` (may itself contain `": "`, TABs, trailing
    /// spaces, ESC sequences).
    pub value: &'a str,
}

impl<'a> Field<'a> {
    /// Whether this field holds a secret (token, cookie, password...).
    pub fn is_secret(&self) -> bool {
        is_secret_key(self.key)
    }

    /// The value with ESC escapes decoded, as for path fields.
    pub fn path_value(&self) -> std::borrow::Cow<'a, str> {
        unescape_path(self.value)
    }

    /// The value, or `<redacted>` for a secret field.
    pub fn display_value(&self) -> &'a str {
        if self.is_secret() {
            REDACTED
        } else {
            self.value
        }
    }
}

impl fmt::Debug for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:?}", self.key, self.display_value())
    }
}

/// What secrets print as.
pub const REDACTED: &str = "<redacted>";

/// Whether a key names a secret: it contains `token`, `cookie`, `password`, `passphrase` or
/// `secret`, in any case. Such values print as `<redacted>` in `Debug`/`Display`.
pub fn is_secret_key(key: &str) -> bool {
    const WORDS: [&[u8]; 5] = [b"token", b"cookie", b"password", b"passphrase", b"secret"];
    let k = key.as_bytes();
    WORDS
        .iter()
        .any(|w| k.len() >= w.len() && k.windows(w.len()).any(|win| win.eq_ignore_ascii_case(w)))
}

/// Iterator over a frame's fields in wire order.
#[derive(Clone)]
pub struct Fields<'a> {
    raw: &'a [u8],
    spans: SpanIter<'a>,
}

#[derive(Clone)]
enum SpanIter<'a> {
    /// Inline ends, where the next key starts, whether a CR may end a line.
    Inline {
        ends: std::slice::Iter<'a, [u16; 2]>,
        start: usize,
        crlf: bool,
    },
    Shared(std::slice::ChunksExact<'a, u8>),
}

impl SpanIter<'_> {
    /// Key start, key end and value end of the next field of `raw`.
    #[inline(always)]
    fn next_span(&mut self, raw: &[u8]) -> Option<[usize; 3]> {
        Some(match self {
            SpanIter::Inline { ends, start, crlf } => {
                let &[b, c] = ends.next()?;
                let (a, b, c) = (*start, usize::from(b), usize::from(c));
                *start = after_field(raw, c, *crlf);
                [a, b, c]
            }
            SpanIter::Shared(it) => read_span(it.next()?).map(|n| n as usize),
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        let [a, b, c] = self.spans.next_span(self.raw)?;
        Some(Field {
            key: text(self.raw.get(a..b).unwrap_or_default()),
            value: text(self.raw.get((b + 2).min(c)..c).unwrap_or_default()),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.spans {
            SpanIter::Inline { ends, .. } => ends.size_hint(),
            SpanIter::Shared(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Fields<'_> {}

/// See [`Frame::raw_fields`].
pub(crate) struct RawFields<'a>(Fields<'a>);

impl<'a> Iterator for RawFields<'a> {
    /// Key, value start, value end.
    type Item = (&'a str, usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, usize, usize)> {
        let [a, b, c] = self.0.spans.next_span(self.0.raw)?;
        Some((
            text(self.0.raw.get(a..b).unwrap_or_default()),
            (b + 2).min(c),
            c,
        ))
    }
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The `Type` of a frame. Names are matched exactly as ascp writes them (upper case).
///
/// `STOP` and `DONE` are used in both directions: from ascp they report a finished file and a
/// finished session; from a manager they stop a file and end a persistent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType<'a> {
    /// `INIT`
    Init,
    /// `SESSION`
    Session,
    /// `NOTIFICATION`
    Notification,
    /// `STATS`
    Stats,
    /// `STOP`
    Stop,
    /// `SKIP`
    Skip,
    /// `ARGSTOP`
    ArgStop,
    /// `DONE`
    Done,
    /// `FILEERROR`
    FileError,
    /// `ERROR`
    Error,
    /// `QUERY`
    Query,
    /// `QUERYRSP`
    QueryResponse,
    /// `RATE`
    Rate,
    /// `CANCEL`
    Cancel,
    /// `START`
    Start,
    /// Any other type name, kept as written.
    Other(&'a str),
    /// The frame has no `Type` field.
    Missing,
}

impl<'a> MessageType<'a> {
    /// Map a type name to its variant.
    pub fn from_name(name: &'a str) -> MessageType<'a> {
        match name {
            "INIT" => MessageType::Init,
            "SESSION" => MessageType::Session,
            "NOTIFICATION" => MessageType::Notification,
            "STATS" => MessageType::Stats,
            "STOP" => MessageType::Stop,
            "SKIP" => MessageType::Skip,
            "ARGSTOP" => MessageType::ArgStop,
            "DONE" => MessageType::Done,
            "FILEERROR" => MessageType::FileError,
            "ERROR" => MessageType::Error,
            "QUERY" => MessageType::Query,
            "QUERYRSP" => MessageType::QueryResponse,
            "RATE" => MessageType::Rate,
            "CANCEL" => MessageType::Cancel,
            "START" => MessageType::Start,
            other => MessageType::Other(other),
        }
    }

    /// The wire name (empty for [`MessageType::Missing`]).
    pub fn as_str(&self) -> &'a str {
        match self {
            MessageType::Init => "INIT",
            MessageType::Session => "SESSION",
            MessageType::Notification => "NOTIFICATION",
            MessageType::Stats => "STATS",
            MessageType::Stop => "STOP",
            MessageType::Skip => "SKIP",
            MessageType::ArgStop => "ARGSTOP",
            MessageType::Done => "DONE",
            MessageType::FileError => "FILEERROR",
            MessageType::Error => "ERROR",
            MessageType::Query => "QUERY",
            MessageType::QueryResponse => "QUERYRSP",
            MessageType::Rate => "RATE",
            MessageType::Cancel => "CANCEL",
            MessageType::Start => "START",
            MessageType::Other(s) => s,
            MessageType::Missing => "",
        }
    }
}

impl fmt::Display for MessageType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a [`Frame`] field by field, validating as it goes.
///
/// Keys must be non-empty printable ASCII without `:` or spaces. Values must not hold a line
/// break or a NUL byte: use [`FrameBuilder::path`] for paths, which escapes line breaks.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    raw: BytesMut,
    index: Vec<Span>,
    type_field: u32,
}

impl FrameBuilder {
    fn new(type_name: &str) -> Result<FrameBuilder, EncodeError> {
        let mut b = FrameBuilder {
            raw: BytesMut::with_capacity(64),
            index: Vec::with_capacity(8),
            type_field: NO_TYPE,
        };
        b.raw.extend_from_slice(HEADER);
        b.raw.put_u8(b'\n');
        b.push("Type", type_name)?;
        Ok(b)
    }

    /// Add a field (chaining form of [`FrameBuilder::push`]).
    pub fn field(mut self, key: &str, value: &str) -> Result<FrameBuilder, EncodeError> {
        self.push(key, value)?;
        Ok(self)
    }

    /// Add a field holding a number.
    pub fn number(mut self, key: &str, value: u64) -> Result<FrameBuilder, EncodeError> {
        self.push(key, itoa_u64(value, &mut [0u8; 20]))?;
        Ok(self)
    }

    /// Add a path field, ESC-escaping line breaks (chaining form of [`FrameBuilder::push_path`]).
    pub fn path(mut self, key: &str, path: &str) -> Result<FrameBuilder, EncodeError> {
        self.push_path(key, path)?;
        Ok(self)
    }

    /// Add a field. A `Type` key after the first is kept as an ordinary field.
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), EncodeError> {
        check_key(key)?;
        check_value(key, value)?;
        self.push_unchecked(key, value);
        Ok(())
    }

    /// Add a path field, ESC-escaping LF, CR and ESC.
    pub fn push_path(&mut self, key: &str, path: &str) -> Result<(), EncodeError> {
        check_key(key)?;
        if path.as_bytes().contains(&0) {
            return Err(EncodeError::NulInValue { key: key.into() });
        }
        self.push_unchecked(key, &escape_path(path));
        Ok(())
    }

    fn push_unchecked(&mut self, key: &str, value: &str) {
        let key_start = self.raw.len();
        self.raw.extend_from_slice(key.as_bytes());
        let key_end = self.raw.len();
        self.raw.extend_from_slice(b": ");
        self.raw.extend_from_slice(value.as_bytes());
        let value_end = self.raw.len();
        self.raw.put_u8(b'\n');
        if self.type_field == NO_TYPE && key == "Type" {
            self.type_field = self.index.len() as u32;
        }
        self.index
            .push([key_start as u32, key_end as u32, value_end as u32]);
    }

    /// The length the finished frame will have on the wire.
    pub fn encoded_len(&self) -> usize {
        self.raw.len() + 1
    }

    /// Finish the frame (appends the terminating empty line).
    pub fn finish(mut self) -> Frame {
        self.raw.put_u8(b'\n');
        let index = Index::from_spans(&self.raw, &self.index);
        Frame::from_parts(self.raw.freeze(), index, self.type_field)
    }
}

/// Append a frame's wire bytes to `dst` (frames are valid by construction, so this cannot
/// fail).
pub fn encode_frame(frame: &Frame, dst: &mut BytesMut) {
    dst.extend_from_slice(frame.as_bytes());
}

/// Wire length of a field line `key: value\n`.
pub(crate) fn field_len(key: &str, value_len: usize) -> usize {
    key.len() + 2 + value_len + 1
}

/// Wire length of a path field line once escaped.
pub(crate) fn path_field_len(key: &str, path: &str) -> usize {
    field_len(key, escaped_len(path))
}

/// Keys: non-empty, printable ASCII, no space, no colon.
pub(crate) fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

fn check_key(key: &str) -> Result<(), EncodeError> {
    if valid_key(key.as_bytes()) {
        Ok(())
    } else {
        Err(EncodeError::InvalidKey { key: key.into() })
    }
}

fn check_value(key: &str, value: &str) -> Result<(), EncodeError> {
    match value.bytes().find(|b| matches!(b, b'\n' | b'\r' | 0)) {
        None => Ok(()),
        Some(0) => Err(EncodeError::NulInValue { key: key.into() }),
        Some(_) => Err(EncodeError::LineBreakInValue { key: key.into() }),
    }
}

/// Format a u64 into a stack buffer (no allocation).
pub(crate) fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Number of decimal digits of `n`.
pub(crate) fn digits(n: u64) -> usize {
    itoa_u64(n, &mut [0u8; 20]).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moved without a `memcpy` call (see [`INLINE_FIELDS`]), also as a parse result.
    #[test]
    fn a_frame_fits_in_128_bytes() {
        assert!(std::mem::size_of::<Frame>() <= 128);
        assert!(std::mem::size_of::<Result<Option<Frame>, crate::DecodeError>>() <= 128);
    }

    /// Inline frames keep key starts implicit: LF, CRLF and mixed frames read back alike,
    /// and so do the builder's frames, inline or not.
    #[test]
    fn implicit_key_starts_follow_lf_and_crlf_lines() {
        let lf = Frame::parse(b"FASPMGR 2\nType: STATS\nA: 1\nB:\nC: x: y\n\n").unwrap();
        let crlf =
            Frame::parse(b"FASPMGR 2\r\nType: STATS\r\nA: 1\nB:\r\nC: x: y\r\n\r\n").unwrap();
        for f in [&lf, &crlf] {
            assert!(f.inline_ends().is_some());
            let fields: Vec<_> = f.fields().map(|x| (x.key, x.value)).collect();
            assert_eq!(
                fields,
                [("Type", "STATS"), ("A", "1"), ("B", ""), ("C", "x: y")]
            );
            assert_eq!(f.field(3).map(|x| x.key), Some("C"));
            assert_eq!(f.type_name(), Some("STATS"));
        }
        // A CR inside a value is not a line end.
        let cr_inside = Frame::parse(b"FASPMGR 2\nType: STATS\nA: x\ry\nB: 2\n\n").unwrap();
        assert_eq!(cr_inside.inline_ends().map(|(_, crlf)| crlf), Some(false));
        assert_eq!(
            (cr_inside.get("A"), cr_inside.get("B")),
            (Some("x\ry"), Some("2"))
        );
        for n in [INLINE_FIELDS - 1, INLINE_FIELDS + 1] {
            let mut b = Frame::builder("STATS").unwrap();
            for i in 0..n {
                b = b.field(&format!("K{i}"), &i.to_string()).unwrap();
            }
            let f = b.finish();
            assert_eq!(f.inline_ends().is_some(), n < INLINE_FIELDS);
            assert_eq!(
                f.get(&format!("K{}", n - 1)),
                Some((n - 1).to_string().as_str())
            );
            assert_eq!(Frame::parse(f.as_bytes()).unwrap(), f);
            assert_eq!(f.type_name(), Some("STATS"));
            assert_eq!(
                Frame::parse(f.as_bytes()).unwrap().type_name(),
                Some("STATS")
            );
        }
        // `Type` after other fields, inline and spilled, LF and CRLF.
        for n in [2, INLINE_FIELDS + 4] {
            for eol in ["\n", "\r\n"] {
                let mut raw = format!("FASPMGR 2{eol}");
                for i in 0..n {
                    raw.push_str(&format!("K{i}: {i}{eol}"));
                }
                raw.push_str(&format!("Type: SKIP{eol}Z: 1{eol}{eol}"));
                let f = Frame::parse(raw.as_bytes()).unwrap();
                assert_eq!(f.inline_ends().is_some(), n < INLINE_FIELDS);
                assert_eq!(f.type_name(), Some("SKIP"), "{raw:?}");
            }
        }
    }

    #[test]
    fn secret_keys() {
        for k in [
            "Token",
            "Cookie",
            "Password",
            "ProxyPassword",
            "AccessTOKEN",
            "KeyPassphrase",
            "ClientSecret",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "TransfersPassed",
            "ArgTransfersPassed",
            "File",
            "Source",
            "UserStr",
            "",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn builder_validates() {
        assert!(matches!(
            Frame::builder("RATE").unwrap().field("Bad Key", "1"),
            Err(EncodeError::InvalidKey { .. })
        ));
        assert!(matches!(
            Frame::builder("RATE").unwrap().field("Rate", "1\n2"),
            Err(EncodeError::LineBreakInValue { .. })
        ));
        assert!(matches!(
            Frame::builder("RATE").unwrap().field("Rate", "1\u{0}2"),
            Err(EncodeError::NulInValue { .. })
        ));
        assert!(matches!(
            Frame::builder("A\nB"),
            Err(EncodeError::LineBreakInValue { .. })
        ));
    }

    #[test]
    fn builder_predicts_its_length() {
        let b = Frame::builder("STATS")
            .unwrap()
            .number("Size", 18446744073709551615)
            .unwrap();
        let predicted = b.encoded_len();
        let f = b.finish();
        assert_eq!(predicted, f.encoded_len());
        assert_eq!(f.get("Size"), Some("18446744073709551615"));
        assert_eq!(digits(0), 1);
        assert_eq!(digits(u64::MAX), 20);
    }

    #[test]
    fn debug_and_display_redact() {
        let f = Frame::builder("SESSION")
            .unwrap()
            .field("Token", "sekrit-token")
            .unwrap()
            .field("Cookie", "my cookie: with colon")
            .unwrap()
            .field("User", "xfer")
            .unwrap()
            .finish();
        let dbg = format!("{f:?}");
        let disp = f.to_string();
        for s in [&dbg, &disp] {
            assert!(!s.contains("sekrit"), "{s}");
            assert!(!s.contains("colon"), "{s}");
            assert!(s.contains("<redacted>") && s.contains("xfer"), "{s}");
        }
        assert_eq!(f.get("Token"), Some("sekrit-token"));
    }
}
