//! Decoding throughput on a realistic stream (mostly STATS, as ascp sends during a transfer):
//!
//! * `fasp/index`: our parser, every field indexed;
//! * `fasp/typed-stats`: the same plus a typed view of every frame;
//! * `httparse`: `httparse::parse_headers` on the same `Key: Value` lines;
//! * `naive`: `String` + `HashMap`, what a hand-written client does.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p fasp-mgmt-proto --bench decode`). After the
//! criterion groups, a summary table gives MB/s, frames/s and the ratio to httparse, all
//! measured in the same run.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use fasp_mgmt_proto::{FrameParser, Message};

/// A stream of `n` frames: INIT, SESSION, then STATS with a STOP every 50 frames and a
/// NOTIFICATION every 200, then DONE.
fn realistic_stream(n: usize) -> Vec<u8> {
    let sid = "03ef6778-7997-4fe1-9091-4f92ec29a806";
    let mut s = String::new();
    s.push_str(&format!(
        "FASPMGR 2\nType: INIT\nSessionId: {sid}\nDirection: Send\nUserStr: 5492958869869553497\nOperation: Transfer\n\n"
    ));
    s.push_str(&format!(
        "FASPMGR 2\nType: SESSION\nRate: 10000\nMinRate: 0\nSessionId: {sid}\nUser: xfer\nHost: 10.0.0.8\nEncryption: Yes\n\
         Adaptive: Adaptive\nDirection: Send\nRemote: No\nPort: 33001\nSource: /srv/outbox/data\nDestination: /inbox\n\
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
             File: /srv/outbox/data/part-{file:05}.bin\nFileBytes: {written}\nLoss: {}\nSessionId: {sid}\n\
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

fn fasp_index(mut buf: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut n = 0;
    while let Some(frame) = parser.parse(&mut buf).expect("valid stream") {
        n += frame.field_count();
        black_box(&frame);
    }
    (n, buf)
}

fn fasp_typed(mut buf: BytesMut) -> (usize, BytesMut) {
    let mut parser = FrameParser::new();
    let mut n = 0;
    while let Some(frame) = parser.parse(&mut buf).expect("valid stream") {
        if let Message::Stats(s) | Message::Stop(s) =
            Message::from_frame(&frame).expect("valid frame")
        {
            n += s.written.unwrap_or(0) as usize;
        }
        black_box(&frame);
    }
    (n, buf)
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

const DECODERS: [(&str, Decoder); 4] = [
    ("fasp/index", fasp_index),
    ("fasp/typed-stats", fasp_typed),
    ("httparse", httparse_all),
    ("naive", naive),
];

fn main() {
    let data = realistic_stream(20_000);
    let frames = {
        let mut buf = BytesMut::from(&data[..]);
        let mut p = FrameParser::new();
        std::iter::from_fn(|| p.parse(&mut buf).unwrap()).count()
    };
    assert_eq!(
        fasp_index(BytesMut::from(&data[..])).0,
        httparse_all(BytesMut::from(&data[..])).0,
        "both see the same fields"
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut g = c.benchmark_group("decode");
        g.throughput(Throughput::Bytes(data.len() as u64));
        for (name, f) in DECODERS {
            g.bench_function(name, |b| {
                b.iter_batched(
                    || BytesMut::from(&data[..]),
                    |buf| f(black_box(buf)),
                    BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
    c.final_summary();

    // Summary measured here, in the same run: median of 25 passes over the whole stream.
    let median = |f: Decoder| {
        let mut times: Vec<Duration> = (0..25)
            .map(|_| {
                let buf = BytesMut::from(&data[..]);
                let t = Instant::now();
                black_box(f(black_box(buf)));
                t.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let results: Vec<(&str, Duration)> = DECODERS.iter().map(|(n, f)| (*n, median(*f))).collect();
    let base = results
        .iter()
        .find(|(n, _)| *n == "httparse")
        .map(|(_, t)| *t)
        .unwrap();
    println!(
        "\nstream: {} bytes, {frames} frames ({} bytes/frame on average)",
        data.len(),
        data.len() / frames
    );
    println!(
        "{:<18} {:>10} {:>14} {:>12}",
        "decoder", "MB/s", "frames/s", "vs httparse"
    );
    for (name, t) in &results {
        let secs = t.as_secs_f64();
        println!(
            "{:<18} {:>10.1} {:>14.0} {:>11.2}x",
            name,
            data.len() as f64 / secs / 1e6,
            frames as f64 / secs,
            base.as_secs_f64() / secs
        );
    }
}
