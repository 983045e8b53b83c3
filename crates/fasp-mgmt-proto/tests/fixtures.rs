//! Bytes captured from a real ascp 3.9.0 and every example frame of the event reference decode
//! to the expected types and values.

use std::borrow::Cow;

use bytes::BytesMut;
use fasp_mgmt_proto::{
    Adaptive, Control, DecodeError, Direction, DoneOperation, Frame, FrameParser, Message,
    MessageType, Operation, StartFile, StopFile,
};

fn fixture(name: &str) -> Vec<u8> {
    let dir = if name.starts_with("seed") {
        ""
    } else {
        "real-ascp/"
    };
    let path = format!("{}/tests/fixtures/{dir}{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode(bytes: &[u8]) -> (Vec<Frame>, Vec<DecodeError>) {
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::from(bytes);
    let (mut frames, mut errors) = (Vec::new(), Vec::new());
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break,
            Err(e) => errors.push(e),
        }
    }
    errors.extend(parser.finish(&mut buf));
    (frames, errors)
}

fn clean(name: &str) -> Vec<Frame> {
    let (frames, errors) = decode(&fixture(name));
    assert!(errors.is_empty(), "{name}: {errors:?}");
    frames
}

const REAL: &[&str] = &[
    "auth-failure.faspmgr",
    "closed-ssh-port.faspmgr",
    "file-pair-list.faspmgr",
    "keepalive-license-abort.faspmgr",
    "license-abort-recv.faspmgr",
    "license-abort-send.faspmgr",
    "missing-source.faspmgr",
    "precalc-license-abort.faspmgr",
    "tags-two-sources.faspmgr",
];

/// (fixture, ERROR code, description)
const OUTCOMES: &[(&str, u64, &str)] = &[
    ("auth-failure.faspmgr", 19, "failed to authenticate"),
    (
        "closed-ssh-port.faspmgr",
        44,
        "Failed to open TCP connection for SSH",
    ),
    (
        "file-pair-list.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
    (
        "keepalive-license-abort.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
    (
        "license-abort-recv.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
    (
        "license-abort-send.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
    ("missing-source.faspmgr", 43, "No such file or directory"),
    (
        "precalc-license-abort.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
    (
        "tags-two-sources.faspmgr",
        38,
        "Server aborted session: Server has only a client license",
    ),
];

#[test]
fn every_real_capture_is_init_session_error_with_its_code() {
    for &(name, code, description) in OUTCOMES {
        let frames = clean(name);
        let kinds: Vec<_> = frames.iter().map(|f| f.kind()).collect();
        assert_eq!(
            kinds,
            [MessageType::Init, MessageType::Session, MessageType::Error],
            "{name}"
        );
        let ids: Vec<_> = frames.iter().map(|f| f.get("SessionId").unwrap()).collect();
        assert!(
            ids.iter().all(|id| *id == ids[0] && id.len() == 36),
            "{name}: {ids:?}"
        );
        let Message::Error(err) = Message::from_frame(&frames[2]).unwrap() else {
            panic!("{name}: not an ERROR")
        };
        assert_eq!(err.code, Some(code), "{name}");
        assert_eq!(err.description, Some(description), "{name}");
        assert_eq!(err.end.loss, Some(0), "{name}");
        assert_eq!(err.end.session_id, Some(ids[0]));
        // Each frame's bytes are exactly its stretch of the capture.
        let joined: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(joined, fixture(name), "{name}");
    }
    assert_eq!(OUTCOMES.len(), REAL.len());
}

#[test]
fn session_frames_read_into_typed_values() {
    let frames = clean("closed-ssh-port.faspmgr");
    let Message::Init(init) = Message::from_frame(&frames[0]).unwrap() else {
        panic!()
    };
    assert_eq!(init.direction, Some(Direction::Send));
    assert_eq!(init.operation, Some(Operation::Transfer));
    assert_eq!(init.user_str, Some("5492958869869553497"));
    let Message::Session(s) = Message::from_frame(&frames[1]).unwrap() else {
        panic!()
    };
    assert_eq!(s.rate_kbps, Some(10000));
    assert_eq!(s.min_rate_kbps, Some(0));
    assert_eq!(s.rate_cap_kbps, Some(18_446_744_073_709_551));
    assert_eq!(s.policy_cap, Some(Adaptive::Other("Unset")));
    assert_eq!(s.adaptive, Some(Adaptive::Adaptive));
    assert_eq!(s.user, Some("xfer"));
    assert_eq!(s.host, Some("127.0.0.1"));
    assert_eq!(s.port, Some(33001));
    assert_eq!(s.tcp_port, Some(39999));
    assert_eq!(s.encryption, Some(true));
    assert_eq!(s.remote, Some(false));
    assert_eq!(s.rate_lock, Some(false));
    assert_eq!(s.cipher, Some("aes-128"));
    assert_eq!(s.keepalive, Some(false));
    assert_eq!(s.precalc, Some(false));
    assert_eq!(s.destination.as_deref(), Some("/srv/inbox"));
    assert_eq!(s.sources().collect::<Vec<_>>(), ["/srv/outbox/report.txt"]);
    // Unknown keys stay readable, in wire order.
    assert_eq!(frames[1].get("RateControlAlgorithm"), Some("alg_none"));
    assert_eq!(
        frames[1].fields().last().unwrap().key,
        "RateControlAlgorithm"
    );
    assert_eq!(frames[1].field_count(), 54);
}

#[test]
fn two_sources_are_tab_separated_and_tags_are_echoed() {
    let frames = clean("tags-two-sources.faspmgr");
    let Message::Session(s) = Message::from_frame(&frames[1]).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.sources().collect::<Vec<_>>(),
        ["/srv/outbox/report.txt", "/srv/outbox/big.bin"]
    );
    assert_eq!(s.xfer_id, Some("abc"));
    assert_eq!(s.xfer_retry, Some(3600));
    assert_eq!(
        s.tags,
        Some(r#"{"aspera":{"xfer_id":"abc","xfer_retry":3600}}"#)
    );
    assert_eq!(s.rate_cap_kbps, Some(4_503_599_627_370_495));
    assert_eq!(s.policy_cap, Some(Adaptive::Fixed));
}

#[test]
fn options_show_up_in_session() {
    let s = |name: &str, key: &str| clean(name)[1].get(key).map(str::to_owned);
    assert_eq!(
        s("keepalive-license-abort.faspmgr", "Keepalive").as_deref(),
        Some("Yes")
    );
    assert_eq!(s("keepalive-license-abort.faspmgr", "Source"), None);
    assert_eq!(
        s("precalc-license-abort.faspmgr", "Precalc").as_deref(),
        Some("Yes")
    );
    assert_eq!(
        s("license-abort-recv.faspmgr", "Direction").as_deref(),
        Some("Receive")
    );
    assert_eq!(
        s("license-abort-send.faspmgr", "Rate").as_deref(),
        Some("200000")
    );
    assert_eq!(
        s("license-abort-send.faspmgr", "ResumePolicy").as_deref(),
        Some("policy_attrs")
    );
    assert_eq!(
        s("missing-source.faspmgr", "Source").as_deref(),
        Some("/srv/outbox/does-not-exist")
    );
    assert_eq!(s("auth-failure.faspmgr", "UserStr"), None);
}

#[test]
fn crlf_captures_decode_to_the_same_frames() {
    for name in REAL {
        let lf = fixture(name);
        let crlf: Vec<u8> = lf
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let (a, ea) = decode(&lf);
        let (b, eb) = decode(&crlf);
        assert!(ea.is_empty() && eb.is_empty());
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn seed_examples_decode_to_their_types_and_values() {
    let frames = clean("seed-examples.faspmgr");
    let kinds: Vec<_> = frames.iter().map(|f| f.type_name().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "INIT",
            "SESSION",
            "NOTIFICATION",
            "NOTIFICATION",
            "STATS",
            "STOP",
            "SKIP",
            "ARGSTOP",
            "DONE",
            "FILEERROR",
            "ERROR",
            "START",
            "STOP"
        ]
    );
    let sid = "03ef6778-7997-4fe1-9091-4f92ec29a806";
    let m: Vec<Message<'_>> = frames
        .iter()
        .map(|f| Message::from_frame(f).unwrap())
        .collect();

    let Message::Init(i) = &m[0] else { panic!() };
    assert_eq!(
        (i.session_id, i.direction, i.operation),
        (Some(sid), Some(Direction::Send), Some(Operation::Transfer))
    );
    assert_eq!(i.cookie.unwrap().expose(), "My data");
    assert!(!format!("{i:?}").contains("My data"));

    let Message::Session(s) = &m[1] else { panic!() };
    assert_eq!(s.token.unwrap().expose(), "8499385");
    assert_eq!(s.retry_timeout, Some(60));
    assert_eq!(s.fallback_protocol, Some("http"));
    assert_eq!(s.priority, Some(2));
    assert_eq!(s.rate_kbps, Some(1500));
    assert_eq!(s.destination.as_deref(), Some("C:/Temp"));
    assert!(!format!("{s:?}").contains("8499385"));
    assert_eq!(frames[1].get("ServiceLevel"), Some("1000000"));

    let Message::Notification(n) = &m[2] else {
        panic!()
    };
    assert_eq!(
        (n.bw_measurement_kbps, n.pmtu, n.pre_transfer),
        (Some(1487), Some(1492), None)
    );
    let Message::Notification(n) = &m[3] else {
        panic!()
    };
    let pre = n.pre_transfer.unwrap();
    assert_eq!(
        (pre.files, pre.bytes, pre.dirs),
        (Some(1), Some(104_857_600), None)
    );
    assert_eq!(n.adaptive, Some(Adaptive::Fixed));

    let Message::Stats(st) = &m[4] else { panic!() };
    assert_eq!(st.file.as_deref(), Some("AsperaConnect-1.1.1.0.exe"));
    assert_eq!(
        (st.size, st.written, st.arg_index),
        (Some(6_162_042), Some(0), Some(3))
    );
    assert_eq!(
        st.file_id,
        Some("52361574-d28b5e4b-83877b86-97fe091a-ebe6703b")
    );

    let Message::Stop(st) = &m[5] else { panic!() };
    assert_eq!(
        (st.checksum, st.checksum_type),
        (Some("080690692698a1e3dec9924b44b94ed4"), Some("md5"))
    );
    assert_eq!(
        (st.elapsed_usec, st.file_bytes, st.delay_ms),
        (Some(15_084_185), Some(5_736_852), Some(8))
    );

    let Message::Skip(sk) = &m[6] else { panic!() };
    assert_eq!(
        (sk.file.as_deref(), sk.size),
        (Some("aspera.aspx"), Some(0))
    );

    let Message::ArgStop(a) = &m[7] else { panic!() };
    assert_eq!(a.file, Some(Cow::Borrowed("sourcedir")));
    assert_eq!(
        (a.arg_index, a.status, a.attempted, a.passed, a.skipped),
        (Some(1), Some("Complete"), Some(2), Some(2), None)
    );

    let Message::Done(d) = &m[8] else { panic!() };
    assert_eq!(
        (d.elapsed_usec, d.file_bytes, d.transfer_bytes),
        (Some(24_186_433), Some(25_332_042), Some(25_332_042))
    );

    let Message::FileError(fe) = &m[9] else {
        panic!()
    };
    assert_eq!(
        (fe.code, fe.description),
        (Some(41), Some("Source: Access is denied."))
    );
    assert_eq!(
        fe.stats.file.as_deref(),
        Some("C:/Temp/IE7-WindowsXP-x86-enu.exe")
    );

    let Message::Error(e) = &m[10] else { panic!() };
    assert_eq!(
        (e.code, e.description),
        (Some(27), Some("One or more files failed"))
    );

    assert_eq!(
        Control::from_frame(&frames[11]).unwrap(),
        Control::Start(StartFile::new("/tmp/in", "/tmp/out").with_range(
            fasp_mgmt_proto::ByteRange {
                start: 10_485_760,
                end: 204_857_600
            }
        ))
    );
    assert_eq!(
        Control::from_frame(&frames[12]).unwrap(),
        Control::Stop(StopFile::new("/tmp/out"))
    );
    assert!(Control::from_frame(&frames[0]).is_err());
    let _ = DoneOperation::Linger;
}

#[test]
fn awkward_values_are_kept_exactly() {
    let raw = "FASPMGR 2\nType: SESSION\nCookie: my cookie: with colon\nDescription: Session initiation failed, \n\
               Source: /srv/outbox/\u{fc} dir/f\u{e9}: \u{e9}.txt\t/b\u{1b}nc\nDestination: /in\u{1b}\u{1b}box\nEmpty:\n\n";
    let f = Frame::parse(raw.as_bytes()).unwrap();
    assert_eq!(f.get("Cookie"), Some("my cookie: with colon"));
    assert_eq!(f.get("Description"), Some("Session initiation failed, "));
    assert_eq!(f.get("Empty"), Some(""));
    let Message::Session(s) = Message::from_frame(&f).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.sources().collect::<Vec<_>>(),
        ["/srv/outbox/\u{fc} dir/f\u{e9}: \u{e9}.txt", "/b\nc"]
    );
    assert_eq!(s.destination.as_deref(), Some("/in\u{1b}box"));
    let dbg = format!("{f:?}");
    assert!(
        !dbg.contains("with colon") && dbg.contains("<redacted>"),
        "{dbg}"
    );
}

#[test]
fn bad_field_values_are_typed_errors_naming_field_and_value() {
    let f = Frame::parse(b"FASPMGR 2\nType: STATS\nSize: 12x\n\n").unwrap();
    let e = Message::from_frame(&f).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"STATS frame: field `Size`: expected an unsigned integer, found "12x""#
    );
    let f = Frame::parse(b"FASPMGR 2\nType: SESSION\nEncryption: maybe\n\n").unwrap();
    assert_eq!(
        Message::from_frame(&f).unwrap_err().to_string(),
        r#"SESSION frame: field `Encryption`: expected Yes or No, found "maybe""#
    );
    let f = Frame::parse(b"FASPMGR 2\nType: DONE\nFileBytes: 18446744073709551616\n\n").unwrap();
    assert!(
        Message::from_frame(&f)
            .unwrap_err()
            .to_string()
            .contains("FileBytes")
    );
    let f = Frame::parse(b"FASPMGR 2\nType: RATE\nAdaptive: Turbo\n\n").unwrap();
    assert_eq!(
        Control::from_frame(&f).unwrap_err().to_string(),
        r#"RATE frame: field `Adaptive`: expected Fixed, Adaptive or Trickle, found "Turbo""#
    );
    // Unknown types are kept, not errors.
    let f = Frame::parse(b"FASPMGR 2\nType: FUTURE\nX: 1\n\n").unwrap();
    assert!(matches!(
        Message::from_frame(&f).unwrap(),
        Message::Other(_)
    ));
    assert_eq!(f.kind(), MessageType::Other("FUTURE"));
}
