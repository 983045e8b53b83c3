//! [`MgmtCodec`]: the `tokio_util::codec` face of [`FrameParser`] and the encoders.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::control::Control;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{Frame, encode_frame};
use crate::parser::FrameParser;

/// `Decoder` + `Encoder` for FASPMGR over any byte transport (a thin wrapper over
/// [`FrameParser::parse`], [`encode_frame`] and [`Control::encode`]).
///
/// Items are `Result<Frame, DecodeError>`: a malformed stretch of the stream is an item, not
/// the end of the stream, so frames after it keep coming (a `Framed` stream ends after the
/// first `Err` its decoder returns, which would lose them). The decoder's own error type is
/// only `std::io::Error` from the transport.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use futures::StreamExt;
/// use fasp_mgmt_proto::MgmtCodec;
/// use tokio_util::codec::FramedRead;
///
/// let bytes: &[u8] = b"FASPMGR 2\nType: INIT\nSessionId: s1\n\ngarbage\nFASPMGR 2\nType: DONE\n\n";
/// let mut frames = FramedRead::new(bytes, MgmtCodec::new());
/// assert_eq!(frames.next().await.unwrap().unwrap().unwrap().type_name(), Some("INIT"));
/// let damage = frames.next().await.unwrap().unwrap().unwrap_err();
/// assert_eq!(damage.offset, 36);
/// assert_eq!(frames.next().await.unwrap().unwrap().unwrap().type_name(), Some("DONE"));
/// assert!(frames.next().await.is_none());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MgmtCodec {
    parser: FrameParser,
}

impl MgmtCodec {
    /// A codec with the default maximum frame length (64 KiB).
    pub fn new() -> MgmtCodec {
        MgmtCodec::default()
    }

    /// A codec that refuses frames longer than `max` bytes.
    pub fn with_max_frame_len(max: usize) -> MgmtCodec {
        MgmtCodec {
            parser: FrameParser::with_max_frame_len(max),
        }
    }

    /// The parser inside (for its stream offset and limits).
    pub fn parser(&self) -> &FrameParser {
        &self.parser
    }
}

impl Decoder for MgmtCodec {
    type Item = Result<Frame, DecodeError>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        Ok(self.parser.parse(src).transpose())
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.parser.parse(src).transpose() {
            Some(item) => Ok(Some(item)),
            None => Ok(self.parser.finish(src).map(Err)),
        }
    }
}

impl Encoder<&Frame> for MgmtCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_frame(frame, dst);
        Ok(())
    }
}

impl Encoder<Frame> for MgmtCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_frame(&frame, dst);
        Ok(())
    }
}

impl Encoder<&Control> for MgmtCodec {
    type Error = EncodeError;

    fn encode(&mut self, msg: &Control, dst: &mut BytesMut) -> Result<(), EncodeError> {
        msg.encode(dst)
    }
}

impl Encoder<Control> for MgmtCodec {
    type Error = EncodeError;

    fn encode(&mut self, msg: Control, dst: &mut BytesMut) -> Result<(), EncodeError> {
        msg.encode(dst)
    }
}
