//! Fuzz harnesses (compiled only under `cfg(fuzzing)`, as cargo-fuzz sets it). The targets in
//! `fuzz/` are one-line calls into these, so the invariants live beside the code they check.

use bytes::{Buf, BytesMut};

use crate::{Control, FileStats, Frame, FrameParser, Message, StatsRef, StatsView};

/// Feed `data` to a parser in chunks whose sizes come from the first bytes of `data`, with a
/// small maximum frame length, and check:
/// * nothing panics, and the pending buffer never exceeds the limit plus one chunk;
/// * each frame's bytes are the input bytes just before the parser's stream offset (zero-copy
///   split, nothing rewritten), and frames and errors come in stream order;
/// * after `finish` every input byte is consumed and the parser is idle;
/// * the frames (and errors) equal those of decoding the same bytes in one piece, those of the
///   SSE2 block loop where the CPU has AVX2, those of the borrowed path (`parse_in`, the
///   bytes read dropped after every other read) and those of the `tokio_util` codec;
/// * every frame re-encodes to bytes that decode to an equal frame;
/// * typed views never panic, and the lazy [`StatsView`] reads what [`FileStats`] reads.
///
/// Byte 0 sets the maximum frame length (`64 + 8 * byte`), byte 1 the chunk size
/// (`1 + byte % 97`); the stream is `data[2..]`.
pub fn stream(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let max = 64 + usize::from(data[0]) * 8;
    let chunk_seed = usize::from(data[1]);
    let input = &data[2..];

    let whole = decode_all(input, max, input.len().max(1), true);
    let chunked = decode_all(input, max, 1 + chunk_seed % 97, true);
    assert_eq!(whole, chunked, "chunking changed the result");
    let sse2 = decode_all(input, max, 1 + chunk_seed % 89, false);
    assert_eq!(whole, sse2, "the AVX2 and SSE2 block loops differ");
    let borrowed = decode_borrowed(input, max, 1 + chunk_seed % 83);
    assert_eq!(whole, borrowed, "the borrowed path differs");
    #[cfg(feature = "codec")]
    assert_eq!(whole, codec_decode_all(input, max), "the codec differs");

    for frame in whole.iter().filter_map(|r| r.as_ref().ok()) {
        let again = Frame::parse(frame.as_bytes()).expect("a decoded frame re-decodes");
        assert_eq!(&again, frame);
        let _ = Message::from_frame(frame);
        stats_view_agrees(frame);
        let _ = Control::from_frame(frame);
        let _ = format!("{frame:?}{frame}");
    }
}

/// Wherever the eager view reads the frame, the lazy one reads the same figures.
fn stats_view_agrees(frame: &Frame) {
    let Ok(view) = StatsView::from_frame(frame) else {
        return;
    };
    let _ = format!("{view:?}");
    let Ok(s) = FileStats::from_frame(frame) else {
        return;
    };
    assert_eq!(view.file(), s.file);
    assert_eq!(view.session_id(), s.session_id);
    assert_eq!(view.user_str(), s.user_str);
    assert_eq!(view.file_id(), s.file_id);
    assert_eq!(view.checksum(), s.checksum);
    assert_eq!(view.checksum_type(), s.checksum_type);
    for (lazy, eager) in [
        (view.size(), s.size),
        (view.loss(), s.loss),
        (view.delay_ms(), s.delay_ms),
        (view.written(), s.written),
        (view.end_byte(), s.end_byte),
        (view.bytes_contiguous(), s.bytes_contiguous),
        (view.file_bytes(), s.file_bytes),
        (view.start_byte(), s.start_byte),
        (view.elapsed_usec(), s.elapsed_usec),
        (view.transfer_bytes(), s.transfer_bytes),
        (view.arg_index(), s.arg_index),
    ] {
        assert_eq!(lazy, Ok(eager), "{frame:?}");
    }
}

/// `avx2`: whether the parser may take its AVX2 block loop (where the CPU has AVX2).
fn decode_all(
    input: &[u8],
    max: usize,
    chunk: usize,
    avx2: bool,
) -> Vec<Result<Frame, crate::DecodeError>> {
    let mut parser = FrameParser::with_max_frame_len(max);
    if !avx2 {
        parser = parser.without_avx2();
    }
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // Stream position of the previous frame's end or error, and of the bytes fed so far.
    let mut last = 0u64;
    let mut fed = 0u64;
    let mut check_order = |r: &Result<Frame, crate::DecodeError>, at: u64, fed: u64| {
        let pos = match r {
            Ok(f) => at - f.encoded_len() as u64,
            Err(e) => e.offset,
        };
        assert!(
            last <= pos && pos <= fed,
            "out of order: {r:?} at {pos}, after {last}, with {fed} bytes fed"
        );
        last = match r {
            Ok(_) => at,
            Err(_) => pos,
        };
    };
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len() as u64;
        loop {
            let r = match parser.parse(&mut buf) {
                Ok(Some(f)) => {
                    let end = parser.stream_offset();
                    let start = end
                        .checked_sub(f.encoded_len() as u64)
                        .expect("a frame ends after it starts");
                    assert_eq!(
                        &input[start as usize..end as usize],
                        f.as_bytes(),
                        "a frame's bytes are not the input's"
                    );
                    Ok(f)
                }
                Ok(None) => break,
                Err(e) => Err(e),
            };
            check_order(&r, parser.stream_offset(), fed);
            out.push(r);
        }
        assert_eq!(
            parser.stream_offset() + buf.len() as u64,
            fed,
            "consumed and pending bytes do not add up"
        );
        assert!(
            buf.len() <= parser.max_frame_len() + chunk,
            "buffer grew to {} with limit {} and chunk {}",
            buf.len(),
            parser.max_frame_len(),
            chunk
        );
    }
    if let Some(e) = parser.finish(&mut buf) {
        let r = Err(e);
        check_order(&r, parser.stream_offset(), fed);
        out.push(r);
    }
    assert!(buf.is_empty() && parser.is_idle(), "finish left a frame");
    assert_eq!(
        parser.stream_offset(),
        fed,
        "finish did not consume everything"
    );
    out
}

/// The same bytes through [`FrameParser::parse_in`], each frame checked against its owned copy
/// (and `StatsRef` against `StatsView`), with the stream offset after each frame and error.
fn decode_borrowed(
    input: &[u8],
    max: usize,
    chunk: usize,
) -> Vec<Result<Frame, crate::DecodeError>> {
    let mut parser = FrameParser::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut front = 0u64;
    for (i, piece) in input.chunks(chunk).enumerate() {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse_in(&buf) {
                Ok(Some(f)) => {
                    let owned = f.to_frame();
                    assert_eq!(f.as_bytes(), owned.as_bytes());
                    assert_eq!(f.type_name(), owned.type_name());
                    assert!(f.fields().eq(owned.fields()));
                    match (StatsRef::from_frame_ref(f), StatsView::from_frame(&owned)) {
                        (Ok(l), Ok(e)) => {
                            assert_eq!(l.file(), e.file());
                            assert_eq!(l.session_id(), e.session_id());
                            assert_eq!(l.written(), e.written());
                            assert_eq!(l.size(), e.size());
                            assert_eq!(l.transfer_bytes(), e.transfer_bytes());
                        }
                        (Err(l), Err(e)) => assert_eq!(l, e),
                        _ => panic!("StatsRef and StatsView disagree on {owned:?}"),
                    }
                    // The frame is the input's bytes just before the parser's offset.
                    let end = parser.stream_offset();
                    let start = end - owned.encoded_len() as u64;
                    assert_eq!(&input[start as usize..end as usize], owned.as_bytes());
                    out.push(Ok(owned));
                }
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
            assert_eq!(front + parser.consumed() as u64, parser.stream_offset());
        }
        if i % 2 == 1 {
            let n = parser.release();
            buf.advance(n);
            front += n as u64;
        }
    }
    out.extend(parser.finish_in(&buf).map(Err));
    buf.advance(parser.release());
    assert!(buf.is_empty() && parser.is_idle(), "finish_in left a frame");
    out
}

/// The same bytes through `MgmtCodec` (`decode`, then `decode_eof` as a `Framed` stream does).
#[cfg(feature = "codec")]
fn codec_decode_all(input: &[u8], max: usize) -> Vec<Result<Frame, crate::DecodeError>> {
    use tokio_util::codec::Decoder;

    let mut codec = crate::MgmtCodec::with_max_frame_len(max);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut buf).expect("no I/O error") {
        out.push(item);
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("no I/O error") {
        out.push(item);
    }
    out
}

/// A control message encodes, decodes back equal, and its predicted length is the written
/// length; one that does not encode is one that `validate` refuses. The fuzz target builds the
/// message from its input with the `arbitrary` crate.
pub fn control_message(msg: Control) {
    let mut out = BytesMut::new();
    match msg.encode(&mut out) {
        Ok(()) => {
            assert_eq!(out.len(), msg.encoded_len());
            let frame = Frame::parse(&out).expect("an encoded control decodes");
            assert_eq!(Control::from_frame(&frame).expect("and reads back"), msg);
        }
        Err(_) => assert!(msg.validate().is_err()),
    }
}

/// `data` read as a frame: if it is a valid control message, it survives a round trip.
pub fn control_frame(data: &[u8]) {
    if let Ok(frame) = Frame::parse(data) {
        if let Ok(msg) = Control::from_frame(&frame) {
            let again = Frame::parse(
                msg.to_frame()
                    .expect("a read control re-encodes")
                    .as_bytes(),
            )
            .expect("re-decodes");
            assert_eq!(Control::from_frame(&again).expect("reads back"), msg);
        }
    }
}
