//! ESC (0x1B) escaping of line breaks inside path values.
//!
//! Newer ascp versions cannot put a raw line break in a frame, so path values (`File`, `Source`,
//! `Destination`) escape them: `ESC n` is LF, `ESC r` is CR and `ESC ESC` is ESC itself. Any
//! other byte after ESC, or an ESC at the very end, is kept as it is: decoding never fails.

use std::borrow::Cow;

/// The escape byte.
pub const ESC: char = '\u{1b}';

/// Decode an ESC-escaped path value. Borrows when the value holds no ESC.
#[inline]
pub fn unescape_path(value: &str) -> Cow<'_, str> {
    if !has_esc(value.as_bytes()) {
        return Cow::Borrowed(value);
    }
    unescape_slow(value)
}

/// Whether `b` holds an ESC. Paths are mostly short: eight bytes at a time without a call up to
/// 64 bytes, `memchr` beyond.
#[inline]
fn has_esc(b: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if b.len() > 64 {
        return memchr::memchr(0x1b, b).is_some();
    }
    // A zero byte of `x` is an ESC of the word; the usual test finds any (and, past the first
    // zero, may flag a 0x01 byte: only the "any" answer is used).
    let esc_in = |w: &[u8]| {
        let x = u64::from_le_bytes(w.try_into().unwrap_or([0; 8])) ^ (0x1b * LOW);
        x.wrapping_sub(LOW) & !x & HIGH != 0
    };
    if b.len() < 8 {
        // Not `contains`, which calls `memchr`: a call for at most seven bytes.
        #[allow(clippy::manual_contains)]
        return b.iter().any(|&c| c == 0x1b);
    }
    // The last word overlaps the one before: no byte-by-byte remainder.
    b.chunks_exact(8).any(esc_in) || esc_in(&b[b.len() - 8..])
}

/// [`unescape_path`] once an ESC was seen.
#[cold]
fn unescape_slow(value: &str) -> Cow<'_, str> {
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
mod esc_scan_tests {
    use super::has_esc;

    #[test]
    fn an_esc_is_found_at_every_place_in_every_length() {
        for len in 0..80 {
            let clean = vec![b'a'; len];
            assert!(!has_esc(&clean), "{len}");
            // Bytes next to ESC in value (0x1a, 0x1c, 0x01, 0x9b) are not ESC.
            let near: Vec<u8> = (0..len).map(|i| [0x1a, 0x1c, 0x01, 0x9b][i % 4]).collect();
            assert!(!has_esc(&near), "{len} near");
            for at in 0..len {
                let mut b = clean.clone();
                b[at] = 0x1b;
                assert!(has_esc(&b), "{len} {at}");
            }
        }
    }
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
