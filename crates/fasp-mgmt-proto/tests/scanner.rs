//! The block scanner against the frame grammar, where the earlier tests reach less: keys and
//! values longer than a 64-byte block (so lines cross blocks, and reads cut them anywhere),
//! CRLF on some lines only, more fields than the inline index holds, frames past 64 KiB, and
//! bad key bytes deep inside long keys.

use bytes::BytesMut;
use fasp_mgmt_proto::{DecodeErrorKind, Frame, FrameParser, StatsView};
use proptest::prelude::*;

type Fields = Vec<(String, String)>;

/// Decode `bytes` fed in reads cut at `cuts` (sizes, cycled), errors included, until the end.
fn decode(bytes: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Frame, DecodeErrorKind>> {
    let mut parser = FrameParser::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = cuts
            .get(i % cuts.len().max(1))
            .copied()
            .unwrap_or(bytes.len())
            .max(1);
        let end = (at + n).min(bytes.len());
        buf.extend_from_slice(&bytes[at..end]);
        at = end;
        i += 1;
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => out.push(Err(e.kind)),
            }
        }
    }
    out.extend(parser.finish(&mut buf).map(|e| Err(e.kind)));
    out
}

fn wire(ty: &str, fields: &[(String, String)], crlf: &[bool]) -> Vec<u8> {
    let eol = |i: usize| {
        if crlf.get(i % crlf.len().max(1)) == Some(&true) {
            "\r\n"
        } else {
            "\n"
        }
    };
    let mut s = format!("FASPMGR 2{}Type: {ty}{}", eol(0), eol(1));
    for (i, (k, v)) in fields.iter().enumerate() {
        s.push_str(&format!("{k}: {v}{}", eol(i + 2)));
    }
    s.push_str(eol(fields.len() + 2));
    s.into_bytes()
}

fn fields_of(f: &Frame) -> Fields {
    f.fields()
        .map(|x| (x.key.to_string(), x.value.to_string()))
        .collect()
}

fn long_key() -> impl Strategy<Value = String> {
    "[!-9;-~]{1,100}"
}

/// Values without CR or LF (which the wire cannot carry) nor a final space before a CR.
fn long_value() -> impl Strategy<Value = String> {
    proptest::string::string_regex("([^\r\n\u{0}]|: |\t){0,150}").unwrap()
}

proptest! {
    #[test]
    fn proptest_long_lines_and_many_fields_decode_in_any_reads(
        frames in proptest::collection::vec(
            ("[A-Z]{1,10}", proptest::collection::vec((long_key(), long_value()), 0..40)),
            1..4,
        ),
        crlf in proptest::collection::vec(any::<bool>(), 1..7),
        cuts in proptest::collection::vec(1usize..200, 1..8),
    ) {
        let mut bytes = Vec::new();
        for (ty, fields) in &frames {
            bytes.extend(wire(ty, fields, &crlf));
        }
        for cuts in [&[bytes.len()][..], &cuts[..]] {
            let got = decode(&bytes, cuts, 1 << 20);
            prop_assert_eq!(got.len(), frames.len());
            for (r, (ty, fields)) in got.iter().zip(&frames) {
                let f = r.as_ref().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let mut want = vec![("Type".to_string(), ty.clone())];
                want.extend(fields.iter().cloned());
                prop_assert_eq!(fields_of(f), want.clone());
                prop_assert_eq!(f.type_name(), Some(ty.as_str()));
                prop_assert_eq!(f.field_count(), want.len());
                for (i, (k, v)) in want.iter().enumerate() {
                    let field = f.field(i).unwrap();
                    prop_assert_eq!((field.key, field.value), (k.as_str(), v.as_str()));
                }
                prop_assert!(f.field(want.len()).is_none());
            }
        }
    }

    #[test]
    fn proptest_a_bad_byte_deep_in_a_key_is_refused_and_the_next_frame_kept(
        key in "[!-9;-~]{1,150}",
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![" ", "\t", "\u{7f}", "é", "\u{1}", "\r"]),
        cut in 1usize..300,
    ) {
        let mut k = key.clone();
        let i = at.index(k.len() + 1);
        k.insert_str(i, bad);
        let mut bytes = format!("FASPMGR 2\nType: STATS\nFile: /a\n{k}: v\nSize: 1\n\n").into_bytes();
        bytes.extend(b"FASPMGR 2\nType: DONE\n\n");
        for cuts in [&[bytes.len()][..], &[cut][..]] {
            let got = decode(&bytes, cuts, 1 << 20);
            prop_assert_eq!(got.len(), 2, "{:?}", got);
            prop_assert!(got[0].is_err(), "{:?}", got[0]);
            let done = got[1].as_ref().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(done.type_name(), Some("DONE"));
        }
    }
}

#[test]
fn frames_past_64_kib_and_past_the_inline_index_spill_and_read_alike() {
    let big = "x".repeat(70_000);
    let many: Fields = (0..30)
        .map(|i| (format!("K{i}"), format!("v{i}")))
        .collect();
    let mut bytes = wire(
        "STATS",
        &[("File".into(), big.clone()), ("Written".into(), "7".into())],
        &[false],
    );
    bytes.extend(wire("DONE", &many, &[false, true]));
    bytes.extend(wire("STOP", &[("Written".into(), "9".into())], &[false]));
    for cuts in [&[bytes.len()][..], &[2048][..], &[65_536][..], &[333][..]] {
        let got = decode(&bytes, cuts, 1 << 20);
        let frames: Vec<&Frame> = got.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].get("File").map(str::len), Some(70_000));
        assert_eq!(frames[0].get("Written"), Some("7"));
        let v = StatsView::from_frame(frames[0]).unwrap();
        assert_eq!(
            (v.written(), v.file().map(|f| f.len())),
            (Ok(Some(7)), Some(70_000))
        );
        assert_eq!(frames[1].field_count(), 31);
        assert_eq!(frames[1].get("K29"), Some("v29"));
        assert_eq!(frames[1].type_name(), Some("DONE"));
        assert_eq!(frames[2].get("Written"), Some("9"));
        // Clones and equality see the same fields, whatever the index's place.
        assert_eq!(frames[1].clone(), *frames[1]);
        assert_eq!(
            Frame::parse(frames[1].as_bytes()).unwrap().get("K0"),
            Some("v0")
        );
    }
}
