//! The borrowed parse path (`FrameParser::parse_in`, `FrameRef`, `StatsRef`) against the owned
//! one (`FrameParser::parse`, `Frame`, `StatsView`): the same frames, errors and stream offsets
//! on valid and damaged streams, whole or in reads of any size, whenever the caller drops the
//! bytes it has read. `PROPTEST_CASES` sets the case count.

use bytes::{Buf, BytesMut};
use fasp_mgmt_proto::{DecodeError, Frame, FrameParser, FrameRef, StatsRef, StatsView};
use proptest::prelude::*;

/// One decoder output: a frame and the stream offset after it, or an error.
#[derive(Debug, PartialEq)]
enum Out {
    Frame {
        fields: Vec<(String, String)>,
        bytes: Vec<u8>,
        type_name: Option<String>,
        end: u64,
    },
    Error(DecodeError),
}

fn describe(frame: &Frame, end: u64) -> Out {
    Out::Frame {
        fields: frame
            .fields()
            .map(|f| (f.key.to_owned(), f.value.to_owned()))
            .collect(),
        bytes: frame.as_bytes().to_vec(),
        type_name: frame.type_name().map(str::to_owned),
        end,
    }
}

/// `input` in reads cut at `cuts` (positions, taken modulo the length and sorted).
fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    let mut at = 0;
    bounds
        .into_iter()
        .map(|end| {
            let p = &input[at..end];
            at = end;
            p
        })
        .collect()
}

fn owned(input: &[u8], cuts: &[usize], max: usize) -> Vec<Out> {
    let mut parser = FrameParser::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces(input, cuts) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(f)) => out.push(describe(&f, parser.stream_offset())),
                Ok(None) => break,
                Err(e) => out.push(Out::Error(e)),
            }
        }
    }
    out.extend(parser.finish(&mut buf).map(Out::Error));
    out
}

/// The borrowed path; `release[i]`: whether the caller drops the bytes read after read `i`
/// (otherwise they stay at the front of its buffer and the parser reads on past them).
fn borrowed(input: &[u8], cuts: &[usize], max: usize, release: &[bool]) -> Vec<Out> {
    let mut parser = FrameParser::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // Stream offset of `buf[0]`.
    let mut front = 0u64;
    for (i, piece) in pieces(input, cuts).into_iter().enumerate() {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse_in(&buf) {
                Ok(Some(f)) => {
                    let owned = f.to_frame();
                    // The view and its owned copy read alike.
                    assert_eq!(Frame::from(f), owned);
                    assert_eq!(f.field_count(), owned.field_count());
                    assert_eq!(f.as_bytes(), owned.as_bytes());
                    assert_eq!(f.kind(), owned.kind());
                    for i in 0..=f.field_count() {
                        assert_eq!(f.field(i), owned.field(i));
                    }
                    stats_agree(f, &owned);
                    out.push(describe(&owned, parser.stream_offset()));
                }
                Ok(None) => break,
                Err(e) => out.push(Out::Error(e)),
            }
            // The frames and skipped bytes are the front of the buffer, up to the parser's
            // stream offset.
            assert_eq!(front + parser.consumed() as u64, parser.stream_offset());
        }
        if release.get(i).copied().unwrap_or(true) {
            let n = parser.release();
            buf.advance(n);
            front += n as u64;
            assert_eq!(parser.consumed(), 0);
        }
    }
    out.extend(parser.finish_in(&buf).map(Out::Error));
    buf.advance(parser.release());
    assert!(buf.is_empty() && parser.is_idle());
    out
}

/// `StatsRef` of the borrowed frame reads what `StatsView` reads of the owned one.
fn stats_agree(frame: FrameRef<'_>, owned: &Frame) {
    let (lazy, eager) = match (
        StatsRef::from_frame_ref(frame),
        StatsView::from_frame(owned),
    ) {
        (Ok(l), Ok(e)) => (l, e),
        (Err(l), Err(e)) => {
            assert_eq!(l, e);
            return;
        }
        (l, e) => panic!("views disagree: {l:?} / {e:?}"),
    };
    assert_eq!(lazy.message(), eager.message());
    assert_eq!(lazy.file(), eager.file());
    assert_eq!(lazy.session_id(), eager.session_id());
    assert_eq!(lazy.user_str(), eager.user_str());
    assert_eq!(lazy.checksum(), eager.checksum());
    assert_eq!(lazy.written(), eager.written());
    assert_eq!(lazy.size(), eager.size());
    assert_eq!(lazy.loss(), eager.loss());
    assert_eq!(lazy.file_bytes(), eager.file_bytes());
    assert_eq!(lazy.transfer_bytes(), eager.transfer_bytes());
    assert_eq!(lazy.elapsed_usec(), eager.elapsed_usec());
}

/// Lines of valid frames and damage: headers (good, of another version, unterminated), fields
/// (STATS keys, others, non-ASCII, bad keys, lines without a separator), NUL, CRLF, blank
/// lines, long lines.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("FASPMGR 2".to_owned()),
        1 => Just("FASPMGR 3".to_owned()),
        2 => Just("Type: STATS".to_owned()),
        6 => ("(Written|Size|File|Loss|SessionId|FileBytes|[A-Za-z]{1,20})", "[ -~\u{e9}]{0,60}")
            .prop_map(|(k, v)| format!("{k}: {v}")),
        1 => "[A-Za-z :\t\u{0}]{0,20}",
        1 => "[a-z]{100,400}",
        3 => Just(String::new()),
    ]
}

proptest! {
    #[test]
    fn proptest_borrowed_and_owned_paths_agree(
        lines in proptest::collection::vec((line(), any::<bool>()), 1..80),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        release in proptest::collection::vec(any::<bool>(), 0..13),
        max in prop_oneof![Just(64 * 1024), 64usize..2000],
    ) {
        let input: String = lines
            .iter()
            .map(|(l, crlf)| format!("{l}{}", if *crlf { "\r\n" } else { "\n" }))
            .collect();
        let input = input.as_bytes();
        let expected = owned(input, &[], max);
        prop_assert_eq!(&owned(input, &cuts, max), &expected);
        prop_assert_eq!(&borrowed(input, &cuts, max, &release), &expected);
    }
}

/// Fed one byte at a time without releasing anything, the borrowed path still returns every
/// frame and error (the parser's position in the buffer moves on by itself).
#[test]
fn byte_at_a_time_without_release() {
    let mut input = Vec::new();
    for i in 0..40 {
        input.extend(
            format!(
                "FASPMGR 2\nType: STATS\nWritten: {i}\nFile: /a/{}\n\n",
                "x".repeat(i * 7)
            )
            .as_bytes(),
        );
        if i % 9 == 0 {
            input.extend(b"garbage line\nFASPMGR 2\nNo separator\n\n");
        }
    }
    let cuts: Vec<usize> = (1..input.len()).collect();
    let never = vec![false; input.len()];
    let expected = owned(&input, &[], 64 * 1024);
    assert_eq!(expected.len(), 40 + 2 * 5);
    assert_eq!(borrowed(&input, &cuts, 64 * 1024, &never), expected);
}

/// A frame of many fields (its index spilled past the inline ones) reads the same borrowed.
#[test]
fn a_spilled_index_reads_the_same() {
    let mut raw = String::from("FASPMGR 2\nType: DONE\n");
    for i in 0..60 {
        raw.push_str(&format!("Key{i}: value {i}\r\n"));
    }
    raw.push('\n');
    let mut parser = FrameParser::new();
    let f = parser.parse_in(raw.as_bytes()).unwrap().expect("complete");
    assert_eq!(f.field_count(), 61);
    assert_eq!(f.type_name(), Some("DONE"));
    assert_eq!(f.get("Key59"), Some("value 59"));
    assert_eq!(f.get_all("Key3").collect::<Vec<_>>(), ["value 3"]);
    assert_eq!(f.to_frame(), Frame::parse(raw.as_bytes()).unwrap());
    assert_eq!(parser.consumed(), raw.len());
}
