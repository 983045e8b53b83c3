//! ESC (0x1B) escaping of line breaks inside path values.
//!
//! Newer ascp versions cannot put a raw line break in a frame, so path values (`File`, `Source`,
//! `Destination`) escape them: `ESC n` is LF, `ESC r` is CR and `ESC ESC` is ESC itself. Any
//! other byte after ESC, or an ESC at the very end, is kept as it is: decoding never fails.

use std::borrow::Cow;

/// The escape byte.
pub const ESC: char = '\u{1b}';

/// Decode an ESC-escaped path value. Borrows when the value holds no ESC.
pub fn unescape_path(value: &str) -> Cow<'_, str> {
    if memchr::memchr(0x1b, value.as_bytes()).is_none() {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            Some('r') => {
                out.push('\r');
                chars.next();
            }
            Some(ESC) => {
                out.push(ESC);
                chars.next();
            }
            _ => out.push(ESC),
        }
    }
    Cow::Owned(out)
}

/// Escape a path for a frame value: LF, CR and ESC become two-byte ESC sequences.
/// Borrows when nothing needs escaping.
pub fn escape_path(path: &str) -> Cow<'_, str> {
    if !path.bytes().any(|b| matches!(b, b'\n' | b'\r' | 0x1b)) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        match c {
            '\n' => out.push_str("\u{1b}n"),
            '\r' => out.push_str("\u{1b}r"),
            ESC => out.push_str("\u{1b}\u{1b}"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Length of `escape_path(path)` without building it.
pub(crate) fn escaped_len(path: &str) -> usize {
    path.len()
        + path
            .bytes()
            .filter(|b| matches!(b, b'\n' | b'\r' | 0x1b))
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_awkward_paths() {
        for p in [
            "plain",
            "a\nb",
            "a\rb\n",
            "\u{1b}",
            "\u{1b}n",
            "x\u{1b}\u{1b}y",
            "fé: é\n",
        ] {
            let e = escape_path(p);
            assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
            assert_eq!(e.len(), escaped_len(p));
            assert_eq!(unescape_path(&e), p);
        }
    }

    #[test]
    fn decoding_is_liberal() {
        assert_eq!(unescape_path("a\u{1b}"), "a\u{1b}");
        assert_eq!(unescape_path("a\u{1b}xb"), "a\u{1b}xb");
        assert_eq!(unescape_path("a\u{1b}nb"), "a\nb");
        assert!(matches!(unescape_path("no escapes"), Cow::Borrowed(_)));
    }
}
