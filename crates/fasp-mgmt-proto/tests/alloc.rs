//! Decoding N frames from one buffer does not allocate per frame: frames are split off the
//! read buffer and their field index comes from a reused arena; the borrowed path
//! (`parse_in`) allocates nothing at all once its index arena exists.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Buf, BytesMut};
use fasp_mgmt_proto::{FrameParser, Message, StatsRef};

struct Counting;

thread_local! {
    /// Allocations made by this thread. Per thread, not global: the test harness's own
    /// threads (reporting a test that just ended, capturing output) allocate while a test
    /// runs, and a global count charged them to it (14 allocations seen once in a run of
    /// 10,000 borrowed frames that makes none).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: an allocation while this thread's locals are torn down is not counted.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations made so far by the calling thread.
fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn stats_stream(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "FASPMGR 2\nType: STATS\nBytescont: {i}\nStartByte: 0\nDelay: 3\nElapsedusec: {}\nFile: /data/file-{}.bin\n\
             FileBytes: {i}\nLoss: 0\nSessionId: 03ef6778-7997-4fe1-9091-4f92ec29a806\nSize: 104857600\n\
             TransferBytes: {i}\nUserStr: 5492958869869553497\nWritten: {i}\nFaspFileArgIndex: 1\n\
             FaspFileID: 52361574-d28b5e4b-83877b86-97fe091a-ebe6703b\n\n",
            i * 1000,
            i % 7
        ));
    }
    s.into_bytes()
}

#[test]
fn decoding_does_not_allocate_per_frame() {
    const N: usize = 10_000;
    let mut buf = BytesMut::from(&stats_stream(N)[..]);
    let mut parser = FrameParser::new();
    let mut frames = 0usize;
    let mut written = 0u64;
    let before = allocs();
    while let Some(frame) = parser.parse(&mut buf).unwrap() {
        if let Message::Stats(s) = Message::from_frame(&frame).unwrap() {
            written += s.written.unwrap();
        }
        frames += 1;
    }
    let allocs = allocs() - before;
    assert_eq!(frames, N);
    assert_eq!(written, (0..N as u64).sum::<u64>());
    // The read buffer and the index arena are reused: a handful of allocations in all.
    assert!(allocs < 10, "{allocs} allocations for {N} frames");
}

#[test]
fn borrowed_decoding_does_not_allocate() {
    const N: usize = 10_000;
    let stream = stats_stream(N);
    // Read as the socket delivers it: 2 KiB at a time into one buffer, every complete frame
    // parsed borrowed, the bytes read dropped.
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut parser = FrameParser::new();
    let mut frames = 0usize;
    let mut written = 0u64;
    let before = allocs();
    for piece in stream.chunks(2048) {
        buf.extend_from_slice(piece);
        while let Some(frame) = parser.parse_in(&buf).unwrap() {
            written += StatsRef::from_frame_ref(frame)
                .unwrap()
                .written()
                .unwrap()
                .unwrap();
            frames += 1;
        }
        buf.advance(parser.release());
    }
    assert!(parser.finish_in(&buf).is_none());
    let allocs = allocs() - before;
    assert_eq!(frames, N);
    assert_eq!(written, (0..N as u64).sum::<u64>());
    // The read buffer is reclaimed in place; nothing per frame.
    assert!(allocs < 4, "{allocs} allocations for {N} frames");
}
