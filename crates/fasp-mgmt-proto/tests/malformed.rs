//! A corpus of damaged streams, each with the exact error expected, and proof that decoding
//! goes on after the damage.

use bytes::BytesMut;
use fasp_mgmt_proto::{DecodeError, DecodeErrorKind as K, Frame, FrameParser};

const GOOD: &str = "FASPMGR 2\nType: DONE\nSessionId: s9\n\n";

#[derive(Debug, PartialEq)]
enum Item {
    Frame(String),
    Err(u64, K),
}

fn run(parser: &mut FrameParser, bytes: &[u8], chunk: usize) -> Vec<Item> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let push = |r: Result<Frame, DecodeError>, out: &mut Vec<Item>| match r {
        Ok(f) => out.push(Item::Frame(f.type_name().unwrap_or("").to_owned())),
        Err(e) => out.push(Item::Err(e.offset, e.kind)),
    };
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(f)) => push(Ok(f), &mut out),
                Ok(None) => break,
                Err(e) => push(Err(e), &mut out),
            }
        }
    }
    if let Some(e) = parser.finish(&mut buf) {
        push(Err(e), &mut out);
    }
    out
}

/// Decode `bad` followed by a good frame, whole and byte by byte: the expected error, then the
/// good frame.
fn check(bad: &[u8], expected: &[Item]) {
    let mut input = bad.to_vec();
    input.extend_from_slice(GOOD.as_bytes());
    for chunk in [input.len(), 1, 7] {
        let got = run(&mut FrameParser::new(), &input, chunk);
        let mut want: Vec<Item> = expected.iter().map(clone_item).collect();
        want.push(Item::Frame("DONE".into()));
        assert_eq!(
            got,
            want,
            "input {:?} in chunks of {chunk}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn clone_item(i: &Item) -> Item {
    match i {
        Item::Frame(s) => Item::Frame(s.clone()),
        Item::Err(o, k) => Item::Err(*o, k.clone()),
    }
}

#[test]
fn missing_header() {
    check(
        b"Type: INIT\nSessionId: x\n\n",
        &[Item::Err(0, K::MissingHeader)],
    );
}

#[test]
fn wrong_version() {
    check(
        b"FASPMGR 3\nType: INIT\n\n",
        &[Item::Err(
            0,
            K::UnsupportedVersion {
                version: "3".into(),
            },
        )],
    );
}

#[test]
fn line_without_separator() {
    // The error points at the offending line (offset 21), the frame is dropped.
    check(
        b"FASPMGR 2\nType: INIT\nSessionId=x\nUserStr: 1\n\n",
        &[Item::Err(21, K::MissingSeparator)],
    );
}

#[test]
fn invalid_key() {
    check(
        b"FASPMGR 2\nType: INIT\nSession Id: x\n\n",
        &[Item::Err(21, K::InvalidKey)],
    );
    check(
        b"FASPMGR 2\nType: INIT\n: x\n\n",
        &[Item::Err(21, K::InvalidKey)],
    );
}

#[test]
fn header_without_blank_line_before_it() {
    // The unterminated frame is reported at its start; the next frame is not lost.
    check(
        b"FASPMGR 2\nType: INIT\nSessionId: x\n",
        &[Item::Err(0, K::Unterminated)],
    );
}

#[test]
fn no_blank_line_at_eof() {
    let got = run(
        &mut FrameParser::new(),
        b"FASPMGR 2\nType: DONE\n\nFASPMGR 2\nType: INIT\nSessionId: x\n",
        5,
    );
    assert_eq!(
        got,
        [Item::Frame("DONE".into()), Item::Err(22, K::TruncatedAtEof)]
    );
    // Whitespace after the last frame is not damage.
    let got = run(
        &mut FrameParser::new(),
        b"FASPMGR 2\nType: DONE\n\n\r\n\n",
        3,
    );
    assert_eq!(got, [Item::Frame("DONE".into())]);
}

#[test]
fn oversized_field_and_oversized_frame() {
    let mut parser = FrameParser::with_max_frame_len(256);
    let mut bad = b"FASPMGR 2\nType: STATS\nFile: ".to_vec();
    bad.extend(std::iter::repeat_n(b'a', 10_000));
    bad.extend_from_slice(b"\nSize: 1\n\n");
    bad.extend_from_slice(GOOD.as_bytes());
    for chunk in [bad.len(), 1, 100] {
        let got = run(&mut FrameParser::with_max_frame_len(256), &bad, chunk);
        assert_eq!(
            got,
            [
                Item::Err(0, K::FrameTooLarge { limit: 256 }),
                Item::Frame("DONE".into())
            ],
            "chunk {chunk}"
        );
    }
    // Many short lines adding up beyond the limit.
    let mut many = b"FASPMGR 2\nType: STATS\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("Key{i}: value\n").as_bytes());
    }
    many.extend_from_slice(b"\n");
    many.extend_from_slice(GOOD.as_bytes());
    let got = run(&mut parser, &many, 64);
    assert_eq!(
        got,
        [
            Item::Err(0, K::FrameTooLarge { limit: 256 }),
            Item::Frame("DONE".into())
        ]
    );
}

#[test]
fn binary_garbage_without_line_breaks_is_dropped_as_it_arrives() {
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80)
        .collect();
    check(
        &[garbage.as_slice(), b"\n"].concat(),
        &[Item::Err(0, K::MissingHeader)],
    );
    // Memory stays bounded while the garbage streams in.
    let mut parser = FrameParser::with_max_frame_len(1024);
    let mut buf = BytesMut::new();
    for piece in garbage.chunks(4096) {
        buf.extend_from_slice(piece);
        while let Ok(Some(_)) | Err(_) = parser.parse(&mut buf) {}
        assert!(buf.len() <= 1024 + 4096, "{}", buf.len());
    }
}

#[test]
fn nul_bytes() {
    check(
        b"FASPMGR 2\nType: INIT\nSessionId: a\0b\n\n",
        &[Item::Err(
            21,
            K::NulInValue {
                key: "SessionId".into(),
            },
        )],
    );
    check(
        b"FASPMGR 2\nType: INIT\nSess\0ionId: ab\n\n",
        &[Item::Err(21, K::InvalidKey)],
    );
    check(b"\0\0\0\n", &[Item::Err(0, K::MissingHeader)]);
}

#[test]
fn invalid_utf8() {
    check(
        b"FASPMGR 2\nType: STATS\nFile: caf\xe9.txt\n\n",
        &[Item::Err(22, K::InvalidUtf8 { key: "File".into() })],
    );
}

#[test]
fn garbage_between_frames_is_one_error_per_stretch() {
    let input =
        format!("{GOOD}junk line 1\njunk line 2\n{GOOD}FASPMGR 2\nType: X\nno separator\n\n{GOOD}");
    let got = run(&mut FrameParser::new(), input.as_bytes(), 3);
    let g = GOOD.len() as u64;
    assert_eq!(
        got,
        [
            Item::Frame("DONE".into()),
            Item::Err(g, K::MissingHeader),
            Item::Frame("DONE".into()),
            Item::Err(2 * g + 24 + 18, K::MissingSeparator),
            Item::Frame("DONE".into()),
        ]
    );
}

#[test]
fn errors_display_offset_and_reason() {
    let e = DecodeError {
        offset: 42,
        kind: K::FrameTooLarge { limit: 65536 },
    };
    assert_eq!(
        e.to_string(),
        "malformed FASPMGR data at byte 42: frame exceeds the maximum of 65536 bytes"
    );
}

#[test]
fn long_header_split_between_cr_and_lf_decodes_as_in_one_piece() {
    // Found while fuzzing: a 64-byte header line ending in CRLF, fed byte by byte.
    let mut input = b"FASPMGR ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 56));
    input.extend_from_slice(b"\r\n");
    let whole = run(&mut FrameParser::new(), &input, input.len());
    let bytewise = run(&mut FrameParser::new(), &input, 1);
    assert_eq!(whole, bytewise);
    assert!(
        matches!(&whole[..], [Item::Err(0, K::UnsupportedVersion { .. })]),
        "{whole:?}"
    );
}
