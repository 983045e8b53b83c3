//! Property tests: encode then decode gives the same frames, whatever the keys, values and
//! chunking; predicted lengths equal written lengths. `PROPTEST_CASES` sets the case count
//! (`cargo xtask proptest --cases N`).

use bytes::BytesMut;
use fasp_mgmt_proto::{
    Adaptive, ByteRange, Control, DoneOperation, Frame, FrameParser, Priority, QueryAnswer,
    RateChange, StartFile, StopFile, encode_frame,
};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    "[!-9;-~]{1,24}"
}

/// Any value a frame can carry: UTF-8 without CR, LF or NUL (TABs, `": "`, ESC, trailing spaces
/// and non-ASCII included).
fn value() -> impl Strategy<Value = String> {
    proptest::string::string_regex("([^\r\n\u{0}]|: |\t|\u{1b}| ){0,40}").unwrap()
}

/// Any path, line breaks and ESC included.
fn path() -> impl Strategy<Value = String> {
    proptest::string::string_regex("([^\u{0}]|\n|\r|\u{1b}){0,40}").unwrap()
}

fn frame() -> impl Strategy<Value = (Frame, Vec<(String, String)>)> {
    (
        "[A-Z]{1,12}",
        proptest::collection::vec((key(), value(), any::<bool>()), 0..12),
    )
        .prop_map(|(ty, fields)| {
            let mut b = Frame::builder(&ty).unwrap();
            let mut expected = vec![("Type".to_string(), ty)];
            for (k, v, is_path) in fields {
                if is_path {
                    b.push_path(&k, &v).unwrap();
                    expected.push((k, fasp_mgmt_proto::escape_path(&v).into_owned()));
                } else {
                    b.push(&k, &v).unwrap();
                    expected.push((k, v));
                }
            }
            let predicted = b.encoded_len();
            let f = b.finish();
            assert_eq!(predicted, f.encoded_len());
            (f, expected)
        })
}

fn decode_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(bytes.len());
    for end in bounds {
        buf.extend_from_slice(&bytes[at..end.max(at)]);
        at = end.max(at);
        while let Some(f) = parser.parse(&mut buf).expect("valid stream") {
            out.push(f);
        }
    }
    assert_eq!(parser.finish(&mut buf), None);
    out
}

fn control() -> impl Strategy<Value = Control> {
    let policy = prop_oneof![
        Just(None),
        Just(Some(Adaptive::Fixed)),
        Just(Some(Adaptive::Adaptive)),
        Just(Some(Adaptive::Trickle))
    ];
    let priority = prop_oneof![
        Just(None),
        Just(Some(Priority::High)),
        Just(Some(Priority::Regular))
    ];
    let rate = (any::<Option<u64>>(), any::<Option<u64>>(), policy, priority)
        .prop_filter("RATE needs a field", |(a, b, c, d)| {
            a.is_some() || b.is_some() || c.is_some() || d.is_some()
        })
        .prop_map(|(rate_kbps, min_rate_kbps, policy, priority)| {
            Control::Rate(RateChange {
                rate_kbps,
                min_rate_kbps,
                policy,
                priority,
            })
        });
    let range = proptest::option::of((any::<u64>(), any::<u64>()).prop_map(|(a, b)| ByteRange {
        start: a.min(b),
        end: a.max(b),
    }));
    prop_oneof![
        rate,
        Just(Control::Cancel),
        Just(Control::Done(DoneOperation::Shutdown)),
        Just(Control::Done(DoneOperation::Linger)),
        (path(), path(), range).prop_map(|(s, d, r)| Control::Start(StartFile {
            source: s,
            destination: d,
            range: r
        })),
        path().prop_map(|s| Control::Stop(StopFile::new(s))),
        Just(Control::QueryResponse(QueryAnswer::Allowed)),
        Just(Control::QueryResponse(QueryAnswer::Denied)),
    ]
}

proptest! {
    #[test]
    fn proptest_frames_round_trip_in_any_chunking(
        frames in proptest::collection::vec(frame(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        crlf in any::<bool>(),
    ) {
        let mut wire = BytesMut::new();
        for (f, _) in &frames {
            encode_frame(f, &mut wire);
        }
        let total: usize = frames.iter().map(|(f, _)| f.encoded_len()).sum();
        prop_assert_eq!(wire.len(), total);
        let wire: Vec<u8> = if crlf {
            wire.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect()
        } else {
            wire.to_vec()
        };
        let whole = decode_in_chunks(&wire, &[]);
        let chunked = decode_in_chunks(&wire, &cuts);
        prop_assert_eq!(&whole, &chunked);
        prop_assert_eq!(whole.len(), frames.len());
        for (got, (sent, fields)) in whole.iter().zip(&frames) {
            prop_assert_eq!(got, sent);
            let got_fields: Vec<(String, String)> =
                got.fields().map(|f| (f.key.to_owned(), f.value.to_owned())).collect();
            prop_assert_eq!(&got_fields, fields);
            for (f, (_, v)) in got.fields().zip(fields) {
                prop_assert_eq!(f.path_value(), fasp_mgmt_proto::unescape_path(v));
            }
        }
    }

    #[test]
    fn proptest_controls_round_trip(msg in control()) {
        let mut out = BytesMut::new();
        msg.encode(&mut out).unwrap();
        prop_assert_eq!(out.len(), msg.encoded_len());
        let frame = Frame::parse(&out).unwrap();
        prop_assert_eq!(Control::from_frame(&frame).unwrap(), msg);
    }

    #[test]
    fn proptest_arbitrary_bytes_never_panic_and_stay_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..64,
    ) {
        let mut parser = FrameParser::with_max_frame_len(128);
        let mut buf = BytesMut::new();
        for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Ok(Some(_)) | Err(_) = parser.parse(&mut buf) {}
            prop_assert!(buf.len() <= 128 + chunk);
        }
        let _ = parser.finish(&mut buf);
        prop_assert!(buf.is_empty());
    }
}
