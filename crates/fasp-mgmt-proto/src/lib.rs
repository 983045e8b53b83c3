//! # fasp-mgmt-proto
//!
//! The FASPMGR management protocol of IBM Aspera `ascp`, as a zero-copy parser and encoder
//! with no processes, sockets or runtime of its own.
//!
//! A manager starts `ascp -M <port>`; ascp connects to that local TCP port and reports its
//! session on it as text frames, and the manager steers the session with frames of its own:
//!
//! ```text
//! FASPMGR 2
//! Type: STATS
//! SessionId: 03ef6778-7997-4fe1-9091-4f92ec29a806
//! File: /data/big.bin
//! Written: 1048576
//!
//! ```
//!
//! This crate gives you:
//!
//! * [`FrameParser`]: an incremental decoder that splits each complete [`Frame`] off your read
//!   buffer without copying, indexes its fields by offset (no allocation per frame; the index
//!   of a frame of up to 21 fields lives in the frame itself), never rescans a partial frame
//!   when the next read arrives, accepts LF
//!   and CRLF, bounds memory with a maximum frame length, and reports damage as a
//!   [`DecodeError`] with the stream offset before resynchronising at the next header;
//! * [`Frame`]: borrowed access to the `Type`, any field by key, all fields in wire order, the
//!   raw bytes; unknown keys and types are kept; secrets are redacted in `Debug`/`Display`;
//! * [`Message`]: typed views of everything ascp sends (`INIT`, `SESSION`, `NOTIFICATION`,
//!   `STATS`, `STOP`, `SKIP`, `FILEERROR`, `ARGSTOP`, `DONE`, `ERROR`, `QUERY`), every field
//!   read at once;
//! * [`StatsView`]: the lazy view of the per-file messages (`STATS`, `STOP`, `SKIP`,
//!   `FILEERROR`) for the hot path: building it parses nothing, each figure is read when asked;
//! * [`Control`]: what a manager sends (`RATE`, `CANCEL`, `DONE`, `START`, `STOP`,
//!   `QUERYRSP`), with paths ESC-escaped and line breaks elsewhere refused;
//! * [`MgmtCodec`] (feature `codec`, off by default): the `tokio_util::codec` wrapper;
//! * [`codes`]: what each FASP error code means and whether it is worth a retry.
//!
//! The parser reads from a [`bytes::BytesMut`]; the crate re-exports [`bytes`], so you need no
//! dependency of your own to call it.
//!
//! ```
//! use fasp_mgmt_proto::bytes::BytesMut;
//! use fasp_mgmt_proto::{FrameParser, Message};
//!
//! let mut parser = FrameParser::new();
//! let mut buf = BytesMut::from(
//!     &b"FASPMGR 2\nType: STATS\nSessionId: s1\nFile: /data/big.bin\nSize: 4096\nWritten: 1024\n\n"[..],
//! );
//! let frame = parser.parse(&mut buf)?.expect("a complete frame");
//! assert_eq!(frame.get("Written"), Some("1024"));
//! match Message::from_frame(&frame)? {
//!     Message::Stats(s) => {
//!         assert_eq!(s.file.as_deref(), Some("/data/big.bin"));
//!         assert_eq!((s.written, s.size), (Some(1024), Some(4096)));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! * `codec` (off by default): [`MgmtCodec`], a `tokio_util::codec` `Decoder` and `Encoder`
//!   over [`FrameParser`], [`encode_frame`] and [`Control::encode`], for `FramedRead` /
//!   `FramedWrite` on any async transport. It adds the `tokio-util` dependency.
//!
//! The protocol as this crate implements it is described in `docs/protocol.md` of the
//! repository.
//!

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the feature there is no `MgmtCodec` to link to: point at the feature list instead
// (the empty `//!` line that ends the docs above makes this a link definition of its own).
#![cfg_attr(not(feature = "codec"), doc = "[`MgmtCodec`]: crate#feature-flags")]

// The README's example, compiled and run as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use bytes;

#[cfg(feature = "codec")]
mod codec;
pub mod codes;
mod control;
mod error;
mod escape;
mod frame;
#[cfg(fuzzing)]
pub mod fuzzing;
mod message;
mod parser;
mod scan;
mod view;

#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub use codec::MgmtCodec;
pub use control::{
    ByteRange, Control, DoneOperation, Priority, QueryAnswer, RateChange, StartFile, StopFile,
};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, FieldError, FieldErrorKind};
pub use escape::{ESC, escape_path, unescape_path};
pub use frame::{
    Field, Fields, Frame, FrameBuilder, FrameRef, HEADER, MessageType, REDACTED, encode_frame,
    is_secret_key,
};
pub use message::{
    Adaptive, ArgStop, Direction, FileError, FileStats, Init, Message, Notification, Operation,
    PreTransfer, Query, Secret, Session, SessionEnd, SessionError,
};
pub use parser::{DEFAULT_MAX_FRAME_LEN, FrameParser};
pub use view::{StatsRef, StatsView};
