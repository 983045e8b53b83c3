//! `fasp decode [FILE|-] [--show-secrets]`: a raw FASPMGR byte stream in, one JSON object per
//! frame out: `{"type": "<Type>", "fields": {"<Key>": "<Value>", ...}}`, keys in wire order.
//!
//! Path values (`File`, `Source`, `Destination`) are printed ESC-decoded. Secret fields print
//! as `"<redacted>"` unless `--show-secrets`. A malformed stretch of input gives one line on
//! stderr naming its byte offset and what was wrong; decoding resumes at the next header, and
//! the exit status is 1 at the end. Clean input: exit 0. Input is read and decoded as it
//! arrives, so `fasp decode -` can follow a live stream.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::BytesMut;
use fasp_mgmt_proto::{Frame, FrameParser, REDACTED, unescape_path};

/// Arguments of `fasp decode`.
#[derive(clap::Args)]
pub struct Args {
    /// The capture to decode; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Print secret fields (Token, Cookie, Password...) instead of "<redacted>".
    // The doc comment is the --help text, kept verbatim: not rustdoc HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    show_secrets: bool,
}

/// Keys whose values are ESC-escaped paths.
const PATH_KEYS: [&str; 3] = ["File", "Source", "Destination"];

pub(crate) fn run(args: Args) -> ExitCode {
    let input: Box<dyn Read> = match &args.file {
        None => Box::new(io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("fasp decode: cannot open {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
    };
    let name = match &args.file {
        Some(p) if p.as_os_str() != "-" => p.display().to_string(),
        _ => "standard input".to_owned(),
    };
    let stdout = io::stdout().lock();
    match decode_stream(input, &name, stdout, args.show_secrets) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fasp decode: {e}");
            ExitCode::from(2)
        }
    }
}

/// Decode everything from `input`, printing frames to `out` and damage to stderr. Returns the
/// number of malformed stretches.
fn decode_stream(
    mut input: impl Read,
    name: &str,
    out: impl Write,
    show_secrets: bool,
) -> io::Result<usize> {
    let mut out = BufWriter::new(out);
    let mut parser = FrameParser::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut errors = 0;
    let mut line = String::new();
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Named: "Is a directory" alone does not say which.
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot read {name}: {e}"))),
        };
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
        }
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(frame)) => {
                    line.clear();
                    frame_json(&frame, show_secrets, &mut line);
                    writeln!(out, "{line}")?;
                }
                Ok(None) => break,
                Err(e) => {
                    errors += 1;
                    out.flush()?;
                    eprintln!("fasp decode: {e}");
                }
            }
        }
        if n == 0 {
            if let Some(e) = parser.finish(&mut buf) {
                errors += 1;
                out.flush()?;
                eprintln!("fasp decode: {e}");
            }
            break;
        }
        // A live stream: show what we have before blocking on the next read.
        out.flush()?;
    }
    out.flush()?;
    Ok(errors)
}

/// `{"type": ..., "fields": {...}}` with keys in wire order (a repeated key is printed as
/// often as it occurs, as on the wire).
fn frame_json(frame: &Frame, show_secrets: bool, out: &mut String) {
    out.push_str("{\"type\": ");
    push_json_str(out, frame.type_name().unwrap_or(""));
    out.push_str(", \"fields\": {");
    for (i, field) in frame.fields().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_json_str(out, field.key);
        out.push_str(": ");
        if field.is_secret() && !show_secrets {
            push_json_str(out, REDACTED);
        } else if PATH_KEYS.contains(&field.key) {
            push_json_str(out, &unescape_path(field.value));
        } else {
            push_json_str(out, field.value);
        }
    }
    out.push_str("}}");
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json's string escaping, without building a Value.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_wire_order_duplicates_and_redacts() {
        let f = Frame::parse(
            b"FASPMGR 2\nType: SESSION\nZ: 1\nA: \"q\"\nCookie: c: d\nA: 2\nFile: a\x1bnb\n\n",
        )
        .unwrap();
        let mut s = String::new();
        frame_json(&f, false, &mut s);
        assert_eq!(
            s,
            r#"{"type": "SESSION", "fields": {"Type": "SESSION", "Z": "1", "A": "\"q\"", "Cookie": "<redacted>", "A": "2", "File": "a\nb"}}"#
        );
        s.clear();
        frame_json(&f, true, &mut s);
        assert!(s.contains(r#""Cookie": "c: d""#));
    }
}
