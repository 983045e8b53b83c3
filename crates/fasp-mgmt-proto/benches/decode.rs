//! Decoding throughput on a realistic stream (mostly STATS, as ascp sends during a transfer):
//!
//! * `fasp/index`: our parser, every field indexed;
//! * `fasp/typed-stats`: the same, plus what a manager reads from each STATS and STOP (file,
//!   size, written, start byte, session bytes, argument index) through the lazy `StatsView`;
//! * `fasp/message`: the same plus `Message::from_frame` on every frame (every field of every
//!   frame typed, every number parsed);
//! * `fasp/borrowed`, `fasp/borrowed-typed`: `fasp/index` and `fasp/typed-stats` through the
//!   borrowed path (`FrameParser::parse_in`, `FrameRef`, `StatsRef`): each frame a view of the
//!   read buffer, nothing owned, the bytes read dropped after the reads' frames;
//! * `.../64K`, `.../2K`: the same bytes fed to the parser in 64 KiB or 2 KiB reads, appended to
//!   one read buffer as a socket delivers them (the manager starts with 2 KiB reads);
//! * `httparse`: `httparse::parse_headers` on the same `Key: Value` lines, whole stream in one
//!   buffer (the baseline of every ratio);
//! * `httparse/64K`: httparse fed in 64 KiB reads; it is not incremental, so a frame cut by a
//!   read is parsed again from its start once the next read arrives;
//! * `copy/64K`, `copy/2K`: the reads alone, nothing decoded (the floor of every chunked row);
//! * `naive`: `String` + `HashMap`, what a hand-written client does.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p fasp-mgmt-proto --bench decode`). After the
//! criterion groups (on the first stream), summary tables give MB/s, frames/s and the ratio to
//! httparse for two streams (paths of 30 and of about 110 bytes), all measured in the same
//! run: the decoders take turns, pass after pass, and each keeps the median of its passes.
//! `cargo bench -p fasp-mgmt-proto --bench decode -- --summary` prints the summary only.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use fasp_mgmt_proto::{Frame, FrameParser, FrameRef, Message, StatsRef, StatsView};

/// A stream of `n` frames: INIT, SESSION, then STATS with a STOP every 50 frames and a
/// NOTIFICATION every 200, then DONE.
fn realistic_stream(n: usize, dir: &str) -> Vec<u8> {
    let sid = "03ef6778-7997-4fe1-9091-4f92ec29a806";
    let mut s = String::new();
    s.push_str(&format!(
        "FASPMGR 2\nType: INIT\nSessionId: {sid}\nDirection: Send\nUserStr: 5492958869869553497\nOperation: Transfer\n\n"
    ));
    s.push_str(&format!(
        "FASPMGR 2\nType: SESSION\nRate: 10000\nMinRate: 0\nSessionId: {sid}\nUser: xfer\nHost: 10.0.0.8\nEncryption: Yes\n\
         Adaptive: Adaptive\nDirection: Send\nRemote: No\nPort: 33001\nSource: {dir}\nDestination: /inbox\n\
         Operation: Transfer\nPriority: 2\nRateCap: 18446744073709551\nMinRateCap: 18446744073709551\nPolicyCap: Unset\n\
         RateLock: No\nMinRateLock: No\nPolicyLock: No\nTCPPort: 33001\nCipher: aes-128\nKeepalive: No\n\n"
    ));
    let mut written = 0u64;
    for i in 0..n {
        let file = i / 50;
        written += 65_536;
        let ty = if i % 50 == 49 { "STOP" } else { "STATS" };
        s.push_str(&format!(
            "FASPMGR 2\nType: {ty}\nBytescont: {written}\nStartByte: 0\nDelay: 12\nElapsedusec: {}\n\
             File: {dir}/part-{file:05}.bin\nFileBytes: {written}\nLoss: {}\nSessionId: {sid}\n\
             Size: 3276800\nTransferBytes: {written}\nUserStr: 5492958869869553497\nWritten: {}\n\
             FaspFileArgIndex: 1\nFaspFileID: 52361574-d28b5e4b-83877b86-97fe091a-{file:08x}\n\n",
            i as u64 * 5_000,
            i % 13,
            (i % 50 + 1) * 65_536
        ));
        if i % 200 == 199 {
            s.push_str(&format!(
                "FASPMGR 2\nType: NOTIFICATION\nAdaptive: Adaptive\nBWMeasurement: 98000\nMinRate: 0\nPMTU: 1492\n\
                 Priority: 2\nRate: 100000\nSessionId: {sid}\nUserStr: 5492958869869553497\n\n"
            ));
        }
    }
    s.push_str(&format!(
        "FASPMGR 2\nType: DONE\nElapsedusec: 99000000\nFileBytes: {written}\nLoss: 0\nSessionId: {sid}\nTransferBytes: {written}\n\n"
    ));
    s.into_bytes()
}

/// What each fasp decoder does with a frame: count its fields;
const INDEX: u8 = 0;
/// read, from each STATS and STOP, what the manager reads (file, size, written, start byte,
/// session bytes, argument index) through the lazy `StatsView`;
const STATS: u8 = 1;
/// `Message::from_frame` on every frame: every field typed and every number parsed.
const MESSAGE: u8 = 2;

/// What the manager reads from a STATS or STOP view (`StatsView` or `StatsRef`).
macro_rules! six_figures {
    ($s:expr) => {{
        let s = $s;
        let file = s.file().map_or(0, |f| f.len());
        let session = match s.transfer_bytes().expect("a number") {
            Some(n) => Some(n),
            None => s.file_bytes().expect("a number"),
        };
        let size = s.size().expect("a number");
        let start = s.start_byte().expect("a number");
        let arg = s.arg_index().expect("a number");
        black_box((file, session, size, start, arg));
        s.written().expect("a number").unwrap_or(0) as usize
    }};
}

#[inline(always)]
fn consume<const USE: u8>(frame: &Frame) -> usize {
    let n = match USE {
        INDEX => frame.field_count(),
        STATS => match frame.type_name() {
            Some("STATS" | "STOP") => {
                six_figures!(StatsView::from_frame(frame).expect("a STATS view"))
            }
            _ => 0,
        },
        _ => match Message::from_frame(frame).expect("valid frame") {
            Message::Stats(s) | Message::Stop(s) => s.written.unwrap_or(0) as usize,
            _ => 0,
        },
    };
    black_box(frame);
    n
}

/// [`consume`] of a borrowed frame (`INDEX` or `STATS`).
#[inline(always)]
fn consume_ref<const USE: u8>(frame: FrameRef<'_>) -> usize {
    let n = match USE {
        INDEX => frame.field_count(),
        _ => match frame.type_name() {
            Some("STATS" | "STOP") => {
                six_figures!(StatsRef::from_frame_ref(frame).expect("a STATS view"))
            }
            _ => 0,
        },
    };
    black_box(frame);
    n
}

/// The whole stream in one buffer, every frame a borrowed view of it.
fn fasp_borrowed<const USE: u8>(mut buf: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut n = 0;
    while let Some(frame) = parser.parse_in(&buf).expect("valid stream") {
        n += consume_ref::<USE>(frame);
    }
    buf.advance(parser.release());
    (n, buf)
}

/// [`fasp_chunked`] on the borrowed path: after each read, every complete frame is viewed,
/// then the bytes read dropped (`advance`), as a reader of the socket would.
fn fasp_borrowed_chunked<const USE: u8, const CHUNK: usize>(src: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::with_capacity(CHUNK.max(8 * 1024));
    let mut n = 0;
    for read in src.chunks(CHUNK) {
        buf.reserve(read.len());
        buf.extend_from_slice(read);
        while let Some(frame) = parser.parse_in(&buf).expect("valid stream") {
            n += consume_ref::<USE>(frame);
        }
        buf.advance(parser.release());
    }
    assert!(buf.is_empty() && parser.is_idle());
    (n, src)
}

fn fasp_whole<const USE: u8>(mut buf: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut n = 0;
    while let Some(frame) = parser.parse(&mut buf).expect("valid stream") {
        n += consume::<USE>(&frame);
    }
    (n, buf)
}

/// The stream in `src` arrives in reads of `CHUNK` bytes, appended to one read buffer (as
/// `FramedRead` or the manager's reader do: reserve, read at the end, parse).
fn fasp_chunked<const USE: u8, const CHUNK: usize>(src: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::with_capacity(CHUNK.max(8 * 1024));
    let mut n = 0;
    for read in src.chunks(CHUNK) {
        buf.reserve(read.len());
        buf.extend_from_slice(read);
        while let Some(frame) = parser.parse(&mut buf).expect("valid stream") {
            n += consume::<USE>(&frame);
        }
    }
    assert!(buf.is_empty() && parser.is_idle());
    (n, src)
}

/// httparse finds each frame's end itself (the empty line); we only step over the header line.
fn httparse_all(buf: BytesMut) -> (usize, BytesMut) {
    let data = &buf[..];
    let mut at = 0;
    let mut n = 0;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    while at < data.len() {
        let rest = &data[at..];
        let body = rest.strip_prefix(b"FASPMGR 2\n").expect("header");
        match httparse::parse_headers(body, &mut headers).expect("valid headers") {
            httparse::Status::Complete((used, hs)) => {
                n += hs.len();
                black_box(hs);
                at += 10 + used;
            }
            httparse::Status::Partial => unreachable!("complete input"),
        }
    }
    (n, buf)
}

/// httparse fed in reads of `CHUNK` bytes: a frame cut by a read is parsed again from its start.
fn httparse_chunked<const CHUNK: usize>(src: BytesMut) -> (usize, BytesMut) {
    let mut buf = BytesMut::with_capacity(CHUNK.max(8 * 1024));
    let mut n = 0;
    for read in src.chunks(CHUNK) {
        buf.reserve(read.len());
        buf.extend_from_slice(read);
        // One header array per read (it borrows the buffer until the complete frames are cut).
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut at = 0;
        while buf.len() - at > 10 {
            let body = buf[at..].strip_prefix(b"FASPMGR 2\n").expect("header");
            match httparse::parse_headers(body, &mut headers).expect("valid headers") {
                httparse::Status::Complete((used, hs)) => {
                    n += hs.len();
                    black_box(hs);
                    at += 10 + used;
                }
                httparse::Status::Partial => break,
            }
        }
        buf.advance(at);
    }
    assert!(buf.is_empty());
    (n, src)
}

/// The reads alone, nothing decoded: what feeding a buffer costs every chunked decoder (a
/// socket read is such a copy).
fn copy_chunked<const CHUNK: usize>(src: BytesMut) -> (usize, BytesMut) {
    let mut buf = BytesMut::with_capacity(CHUNK.max(8 * 1024));
    for read in src.chunks(CHUNK) {
        buf.reserve(read.len());
        buf.extend_from_slice(read);
        black_box(&buf);
        // Keep a partial frame's worth, as the decoders do.
        let keep = buf.len().min(200);
        buf.advance(buf.len() - keep);
    }
    (0, src)
}

fn naive(buf: BytesMut) -> (usize, BytesMut) {
    let text = std::str::from_utf8(&buf).expect("utf-8");
    let mut n = 0;
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        let mut map: HashMap<String, String> = HashMap::new();
        for line in block.lines().skip(1) {
            if let Some((k, v)) = line.split_once(": ") {
                map.insert(k.to_string(), v.to_string());
            }
        }
        n += map.len();
        black_box(&map);
    }
    (n, buf)
}

/// Every decoder gets the bytes as they come from a socket read: in a `BytesMut` it owns
/// (filled before the clock starts) and hands it back, so that freeing it is not timed.
type Decoder = fn(BytesMut) -> (usize, BytesMut);

const DECODERS: [(&str, Decoder); 19] = [
    ("fasp/index", fasp_whole::<INDEX>),
    ("fasp/typed-stats", fasp_whole::<STATS>),
    ("fasp/message", fasp_whole::<MESSAGE>),
    ("fasp/borrowed", fasp_borrowed::<INDEX>),
    ("fasp/borrowed-typed", fasp_borrowed::<STATS>),
    ("fasp/index/64K", fasp_chunked::<INDEX, 65_536>),
    ("fasp/typed/64K", fasp_chunked::<STATS, 65_536>),
    ("fasp/index/2K", fasp_chunked::<INDEX, 2_048>),
    ("fasp/typed/2K", fasp_chunked::<STATS, 2_048>),
    ("fasp/borrowed/64K", fasp_borrowed_chunked::<INDEX, 65_536>),
    (
        "fasp/borrowed-typed/64K",
        fasp_borrowed_chunked::<STATS, 65_536>,
    ),
    ("fasp/borrowed/2K", fasp_borrowed_chunked::<INDEX, 2_048>),
    (
        "fasp/borrowed-typed/2K",
        fasp_borrowed_chunked::<STATS, 2_048>,
    ),
    ("httparse", httparse_all),
    ("httparse/64K", httparse_chunked::<65_536>),
    ("httparse/2K", httparse_chunked::<2_048>),
    ("copy/64K", copy_chunked::<65_536>),
    ("copy/2K", copy_chunked::<2_048>),
    ("naive", naive),
];

/// Position of a decoder in [`DECODERS`].
fn decoder(name: &str) -> usize {
    DECODERS
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a decoder name")
}

/// Passes per decoder in the summary.
const PASSES: usize = 25;

fn summary(label: &str, data: &[u8]) {
    let frames = {
        let mut buf = BytesMut::from(data);
        let mut p = FrameParser::new();
        std::iter::from_fn(|| p.parse(&mut buf).unwrap()).count()
    };
    // Every decoder sees the same fields (typed ones: the same sum of `Written`).
    let count = |i: usize| DECODERS[i].1(BytesMut::from(data)).0;
    for (i, (name, _)) in DECODERS.iter().enumerate() {
        let want = if name.starts_with("fasp/typed")
            || name.starts_with("fasp/borrowed-typed")
            || name.starts_with("fasp/message")
        {
            count(decoder("fasp/message"))
        } else if name.starts_with("copy") {
            0
        } else {
            count(decoder("httparse"))
        };
        assert_eq!(count(i), want, "{name} sees other fields");
    }
    // Turns: pass p of every decoder before pass p + 1 of any, so that a slow spell of this
    // shared machine hits them all alike.
    let mut times = vec![Vec::with_capacity(PASSES); DECODERS.len()];
    for _ in 0..PASSES {
        for (i, (_, f)) in DECODERS.iter().enumerate() {
            let buf = BytesMut::from(data);
            let t = Instant::now();
            black_box(f(black_box(buf)));
            times[i].push(t.elapsed());
        }
    }
    let median = |i: usize| {
        let mut t = times[i].clone();
        t.sort();
        t[t.len() / 2]
    };
    let base = median(decoder("httparse")).as_secs_f64();
    println!(
        "\n{label}: {} bytes, {frames} frames ({} bytes/frame on average)",
        data.len(),
        data.len() / frames
    );
    println!(
        "{:<24} {:>10} {:>14} {:>12}",
        "decoder", "MB/s", "frames/s", "vs httparse"
    );
    for (i, (name, _)) in DECODERS.iter().enumerate() {
        let secs = median(i).as_secs_f64();
        println!(
            "{:<24} {:>10.1} {:>14.0} {:>11.2}x",
            name,
            data.len() as f64 / secs / 1e6,
            frames as f64 / secs,
            base / secs
        );
    }
}

fn main() {
    let short = realistic_stream(20_000, "/srv/outbox/data");
    let long = realistic_stream(
        20_000,
        "/srv/outbox/projects/2026/customer-archive-7731/deliveries/batch-0042/raw-footage/camera-a",
    );
    let args: Vec<String> = std::env::args().collect();
    // `--only NAME [long] [N]`: N passes (default 1) of one decoder and nothing else, for
    // instruction or cycle counts (`valgrind --tool=callgrind --toggle-collect='decode::fasp_*'
    // --toggle-collect='decode::httparse_*'`, or `perf stat` against `N = 0`).
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let name = args.get(i + 1).map_or("", String::as_str);
        let data = if args.iter().any(|a| a == "long") {
            &long
        } else {
            &short
        };
        let (_, f) = DECODERS[decoder(name)];
        let passes = args.last().and_then(|a| a.parse().ok()).unwrap_or(1);
        for _ in 0..passes {
            black_box(f(BytesMut::from(&data[..])));
        }
        return;
    }
    let summary_only = args.iter().any(|a| a == "--summary");
    if !summary_only {
        let mut c = Criterion::default()
            .configure_from_args()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        let mut g = c.benchmark_group("decode");
        g.throughput(Throughput::Bytes(short.len() as u64));
        for (name, f) in DECODERS {
            g.bench_function(name, |b| {
                b.iter_batched(
                    || BytesMut::from(&short[..]),
                    |buf| f(black_box(buf)),
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
        c.final_summary();
    }
    summary("stream (paths of 30 bytes)", &short);
    summary("stream (paths of 110 bytes)", &long);
}
