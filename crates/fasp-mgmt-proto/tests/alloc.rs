//! Decoding N frames from one buffer does not allocate per frame: frames are split off the
//! read buffer and their field index comes from a reused arena; the borrowed path
//! (`parse_in`) allocates nothing at all once its index arena exists.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BytesMut};
use fasp_mgmt_proto::{FrameParser, Message, StatsRef};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is global: the tests take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut buf = BytesMut::from(&stats_stream(N)[..]);
    let mut parser = FrameParser::new();
    let mut frames = 0usize;
    let mut written = 0u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    while let Some(frame) = parser.parse(&mut buf).unwrap() {
        if let Message::Stats(s) = Message::from_frame(&frame).unwrap() {
            written += s.written.unwrap();
        }
        frames += 1;
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(frames, N);
    assert_eq!(written, (0..N as u64).sum::<u64>());
    // The read buffer and the index arena are reused: a handful of allocations in all.
    assert!(allocs < 10, "{allocs} allocations for {N} frames");
}

#[test]
fn borrowed_decoding_does_not_allocate() {
    const N: usize = 10_000;
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let stream = stats_stream(N);
    // Read as the socket delivers it: 2 KiB at a time into one buffer, every complete frame
    // parsed borrowed, the bytes read dropped.
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut parser = FrameParser::new();
    let mut frames = 0usize;
    let mut written = 0u64;
    let before = ALLOCS.load(Ordering::Relaxed);
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
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(frames, N);
    assert_eq!(written, (0..N as u64).sum::<u64>());
    // The read buffer is reclaimed in place; nothing per frame.
    assert!(allocs < 4, "{allocs} allocations for {N} frames");
}
