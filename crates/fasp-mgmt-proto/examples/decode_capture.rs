//! Decode a FASPMGR capture (the raw bytes ascp wrote on its management socket) and print
//! each frame as a typed [`Message`].
//!
//! ```text
//! cargo run -p fasp-mgmt-proto --example decode_capture [CAPTURE]
//! ```
//!
//! Without an argument it decodes `tests/fixtures/real-ascp/tags-two-sources.faspmgr`, a
//! capture of the real ascp 3.9 uploading two sources. Secrets (tokens, cookies) print as
//! `<redacted>`. Damaged stretches are reported with their stream offset, and decoding goes on
//! at the next header.

use std::path::PathBuf;
use std::process::ExitCode;

use bytes::BytesMut;
use fasp_mgmt_proto::{FrameParser, Message};

fn main() -> ExitCode {
    let path = std::env::args_os().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/real-ascp/tags-two-sources.faspmgr")
        },
        PathBuf::from,
    );
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    println!("{} ({} bytes)", path.display(), bytes.len());

    // A live reader would append each socket read to `buf` and call `parse` until it returns
    // `Ok(None)`; a file is simply one big read.
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::from(&bytes[..]);
    let (mut frames, mut damaged) = (0usize, 0usize);
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(frame)) => {
                frames += 1;
                match Message::from_frame(&frame) {
                    Ok(message) => println!("#{frames} {}", describe(&message)),
                    // A frame whose fields do not parse: the raw frame (secrets redacted).
                    Err(e) => println!("#{frames} invalid fields ({e}): {frame:?}"),
                }
            }
            Ok(None) => break,
            Err(e) => {
                damaged += 1;
                eprintln!("damaged input: {e}");
            }
        }
    }
    // Bytes left over at the end of the stream: a truncated last frame.
    if let Some(e) = parser.finish(&mut buf) {
        damaged += 1;
        eprintln!("damaged input: {e}");
    }
    println!("{frames} frames, {damaged} damaged stretches");
    if damaged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per message: the highlights of per-file messages, `Debug` for the rest (secrets
/// are redacted in `Debug`).
fn describe(message: &Message<'_>) -> String {
    let sid = message.session_id().unwrap_or("-");
    let file = |kind: &str, s: &fasp_mgmt_proto::FileStats<'_>| {
        format!(
            "{kind:<5} session {sid} file {:?}: {} of {} bytes",
            s.file.as_deref().unwrap_or(""),
            s.written.unwrap_or(0),
            s.size.map_or_else(|| "?".to_string(), |n| n.to_string()),
        )
    };
    match message {
        Message::Stats(s) => file("STATS", s),
        Message::Stop(s) => file("STOP", s),
        Message::Skip(s) => file("SKIP", s),
        other => format!("{other:?}"),
    }
}
