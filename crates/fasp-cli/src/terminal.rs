//! Human output: text from outside the machine made safe for a terminal, and one convention
//! for units (sizes in decimal megabytes, rates in Mbit/s as ascp users read them).

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every character that could steer a terminal escaped: C0 and C1 controls (ESC,
/// BEL, CR, backspace, ...) and DEL as `\xNN` (`\u{NNNN}` above 0xFF), and the bidirectional
/// overrides that reorder what a line shows. Node messages, ascp's descriptions and file
/// names go through this before reaching a terminal. A backslash is doubled only when
/// something was escaped, so ordinary Windows-style paths stay readable.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            let n = u32::from(c);
            if n <= 0xff {
                let _ = write!(out, "\\x{n:02x}");
            } else {
                let _ = write!(out, "\\u{{{n:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`escape`], line by line: the line breaks of a message of several lines are kept
/// (fasp's own messages have some), everything else that could steer a terminal is escaped.
pub(crate) fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A size in decimal megabytes (`12.3 MB`; bytes below 1 MB: `512 B`, `12.3 kB`).
pub(crate) fn megabytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1_000 {
        format!("{bytes} B")
    } else if bytes < 1_000_000 {
        format!("{:.1} kB", b / 1e3)
    } else if bytes < 1_000_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

/// A throughput given in bytes per second, as Mbit/s.
pub(crate) fn mbits(bytes_per_second: f64) -> String {
    format!("{:.1} Mbit/s", bytes_per_second * 8.0 / 1e6)
}

/// A rate given in kbit/s (ascp's unit in specs and controls), as Mbit/s.
pub(crate) fn kbps_as_mbits(kbps: u64) -> String {
    if kbps % 1000 == 0 {
        format!("{} Mbit/s", kbps / 1000)
    } else {
        format!("{:.3} Mbit/s", kbps as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain/path.bin"), "plain/path.bin");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("bell\x07\rover"), "bell\\x07\\x0dover");
        assert_eq!(escape("c1\u{9b}31m"), "c1\\x9b31m");
        assert_eq!(escape("del\x7f"), "del\\x7f");
        assert_eq!(escape("rtl\u{202e}txt.exe"), "rtl\\u{202e}txt.exe");
        // A backslash is doubled once something is escaped: the output is unambiguous.
        assert_eq!(escape("C:\\x1b\x1b"), "C:\\\\x1b\\x1b");
        assert_eq!(escape("C:\\dir"), "C:\\dir");
        assert_eq!(escape("naïve 日本"), "naïve 日本");
        for s in ["\x1b]0;title\x07", "\u{85}", "\t\n"] {
            assert!(!escape(s).chars().any(needs_escape), "{s:?}");
        }
    }

    #[test]
    fn messages_keep_their_lines() {
        assert_eq!(escape_lines("a\n  b\x1b"), "a\n  b\\x1b");
        assert_eq!(escape_lines("one"), "one");
    }

    #[test]
    fn units() {
        assert_eq!(megabytes(999), "999 B");
        assert_eq!(megabytes(12_345), "12.3 kB");
        assert_eq!(megabytes(240_000_000), "240.0 MB");
        assert_eq!(megabytes(3_500_000_000), "3.50 GB");
        assert_eq!(mbits(12_500_000.0), "100.0 Mbit/s");
        assert_eq!(kbps_as_mbits(200_000), "200 Mbit/s");
        assert_eq!(kbps_as_mbits(1_500), "1.500 Mbit/s");
    }
}
