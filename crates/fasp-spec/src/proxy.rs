//! The `proxy` key: an Aspera proxy URL, `dnat[s]://[user[:password]@]host[:port]`, whose
//! password must travel in `ASPERA_PROXY_PASS`, never on the command line.
//!
//! # How the URL is split
//!
//! An Aspera proxy URL has no path, query or fragment. So everything between `://` and the
//! **last** `@` is user info, whatever it holds: `#`, `/`, `?`, `@` and `:` in a password are
//! taken literally, percent-encoded or not (`p#ss`, `p%23ss` and the two spellings of every
//! other character give the same password). Only the first `:` of the user info separates the
//! user from the password, so a `:` in a user name must be written `%3A`. `%XX` sequences are
//! decoded in both parts (write `%25` for a literal `%`; a `%` not followed by two hex digits is
//! kept as it is), and the decoded password must be UTF-8.
//!
//! Strict RFC 3986 parsing (what the `url` crate does on the whole text) would read an
//! unencoded `#`, `/` or `?` in a password as the start of a fragment, path or query, and take a
//! piece of the password for the host or the port: that is how a password used to land on
//! ascp's argv. So the user info is cut off by the rule above, and only `scheme://host[:port]`
//! goes through `url::Url` (IPv6 literals, port range). After the last `@`, a `/`, `?` or `#`
//! is an error: a proxy URL has nothing there.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::secret::{REDACTED, Secret};

/// Characters escaped when the user name is written back into the URL: what RFC 3986 does not
/// allow in user info (`%` included, so that a decoded `%` is written `%25` again).
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A proxy URL split around its password.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    /// The URL with the `:password` part of its user info removed: what goes on argv.
    pub(crate) without_password: String,
    /// The password, percent-decoded, if the URL had one (possibly empty).
    pub(crate) password: Option<Secret>,
}

/// The parts of a proxy URL: scheme, raw user info (if any), raw `host[:port]`.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host_port: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    Some(match rest.rfind('@') {
        Some(at) => Parts {
            scheme,
            userinfo: Some(&rest[..at]),
            host_port: &rest[at + 1..],
        },
        None => Parts {
            scheme,
            userinfo: None,
            host_port: rest,
        },
    })
}

/// Parses and checks a proxy URL. The error is a human reason that never repeats the URL (the
/// caller adds the key and the redacted URL).
pub(crate) fn parse(url: &str) -> Result<ProxyUrl, String> {
    let Some(parts) = split(url) else {
        return Err("expected a URL like dnat://host:port or dnats://user@host:port".into());
    };
    let scheme = parts.scheme.to_ascii_lowercase();
    if scheme != "dnat" && scheme != "dnats" {
        // The scheme is before any user info: safe to show.
        return Err(format!(
            "unknown scheme {:?} (expected dnat or dnats)",
            parts.scheme
        ));
    }
    if parts.host_port.contains(['/', '?', '#']) {
        return Err("a proxy URL has no path, query or fragment after host[:port]".into());
    }
    if parts.host_port.is_empty() || parts.host_port.starts_with(':') {
        return Err("no host".into());
    }
    let parsed = Url::parse(&format!("{scheme}://{}", parts.host_port))
        .map_err(|e| format!("bad host or port: {e}"))?;
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => return Err("no host".into()),
    };
    if parsed.port() == Some(0) {
        return Err("bad port 0 (expected 1 to 65535)".into());
    }
    let host_port = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let (user, password) = match parts.userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (info, None),
            };
            let user = percent_decode_str(user)
                .decode_utf8()
                .map_err(|_| "the user name is not UTF-8 once percent-decoded".to_owned())?
                .into_owned();
            let password = match password {
                None => None,
                Some(raw) => Some(Secret::new(
                    percent_decode_str(raw)
                        .decode_utf8()
                        .map_err(|_| "the password is not UTF-8 once percent-decoded".to_owned())?
                        .into_owned(),
                )),
            };
            (Some(user), password)
        }
    };
    let without_password = match user.filter(|u| !u.is_empty()) {
        Some(user) => format!(
            "{scheme}://{}@{host_port}",
            utf8_percent_encode(&user, USERINFO)
        ),
        None => format!("{scheme}://{host_port}"),
    };
    Ok(ProxyUrl {
        without_password,
        password,
    })
}

/// The URL with its password (if any) replaced by `<redacted>`, for messages. Works on
/// malformed URLs too; anything that is not `scheme://...` is redacted whole.
pub(crate) fn redacted_url(url: &str) -> String {
    match split(url) {
        Some(Parts {
            scheme,
            userinfo: Some(info),
            host_port,
        }) => match info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host_port}"),
            None => url.to_owned(),
        },
        Some(_) => url.to_owned(),
        // Not a URL at all: it could be anything, including a bare password.
        None => REDACTED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(url: &str) -> Option<String> {
        parse(url).unwrap().password.map(|p| p.expose().to_owned())
    }

    #[test]
    fn password_is_split_off() {
        let p = parse("dnats://alice:s%40cret@proxy.example.com:9092").unwrap();
        assert_eq!(p.without_password, "dnats://alice@proxy.example.com:9092");
        assert_eq!(p.password.unwrap().expose(), "s@cret");
    }

    #[test]
    fn url_without_user_or_password() {
        let p = parse("dnat://10.0.0.1:9091").unwrap();
        assert_eq!(p.without_password, "dnat://10.0.0.1:9091");
        assert_eq!(p.password, None);
        let p = parse("dnat://bob@h").unwrap();
        assert_eq!(p.without_password, "dnat://bob@h");
        assert_eq!(p.password, None);
        let p = parse("DNATS://[::1]:9092").unwrap();
        assert_eq!(p.without_password, "dnats://[::1]:9092");
    }

    #[test]
    fn every_special_character_of_a_password_encoded_or_not() {
        for (raw, encoded) in [
            ("#", "%23"),
            ("/", "%2F"),
            ("?", "%3F"),
            ("@", "%40"),
            (":", "%3A"),
            ("%", "%25"),
            (" ", "%20"),
        ] {
            let expected = format!("pa{raw}ss{raw}");
            for written in [format!("pa{raw}ss{raw}"), format!("pa{encoded}ss{encoded}")] {
                let url = format!("dnats://alice:{written}@proxy.example:9092");
                let p = parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_eq!(
                    p.without_password, "dnats://alice@proxy.example:9092",
                    "{url}"
                );
                assert_eq!(p.password.unwrap().expose(), expected, "{url}");
                let shown = redacted_url(&url);
                assert_eq!(shown, "dnats://alice:<redacted>@proxy.example:9092");
            }
        }
    }

    #[test]
    fn an_unencoded_hash_belongs_to_the_password() {
        // The documented rule: the user info runs to the last `@`.
        assert_eq!(
            password("dnat://u:a#b/c?d@e@h:1").as_deref(),
            Some("a#b/c?d@e")
        );
        // After the last `@`, a `#` is an error, and the message does not repeat the URL.
        let err = parse("dnat://u:pw-Hx9@h:1#frag").unwrap_err();
        assert!(err.contains("no path, query or fragment"), "{err}");
        assert!(!err.contains("pw-Hx9"));
    }

    #[test]
    fn user_names_are_decoded_and_written_back_encoded() {
        let p = parse("dnat://d%3Aomain%5Cbob:pw@h:1").unwrap();
        assert_eq!(p.without_password, "dnat://d%3Aomain%5Cbob@h:1");
        let p = parse("dnat://:pw@h:1").unwrap();
        assert_eq!(p.without_password, "dnat://h:1");
        assert_eq!(p.password.unwrap().expose(), "pw");
        let p = parse("dnat://u:@h:1").unwrap();
        assert_eq!(p.password.unwrap().expose(), "");
    }

    #[test]
    fn bad_urls_are_rejected_without_the_password() {
        assert!(parse("proxy.example.com:9091").is_err());
        assert!(
            parse("http://proxy.example.com")
                .unwrap_err()
                .contains("unknown scheme")
        );
        for bad in [
            "dnat://:9091",
            "dnat://h:0",
            "dnat://h:70000",
            "dnat://u:p@",
            "dnat://u:p@h/path",
            "dnat://u:p@h?q",
            "dnat://u:p@h:x",
            "dnat://u:%FF@h:1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.contains("u:p"), "{bad}: {err}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redacted_url("dnat://u:p@h:1"), "dnat://u:<redacted>@h:1");
        assert_eq!(
            redacted_url("dnat://u:p#/?@x@h:1"),
            "dnat://u:<redacted>@h:1"
        );
        assert_eq!(redacted_url("dnat://u@h:1"), "dnat://u@h:1");
        assert_eq!(redacted_url("garbage"), REDACTED);
    }
}
