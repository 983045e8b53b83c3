//! The `proxy` key: an Aspera proxy URL, `dnat[s]://[user[:password]@]host[:port]`, whose
//! password must travel in `ASPERA_PROXY_PASS`, never on the command line.

use crate::secret::REDACTED;

/// A proxy URL split around its password.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    /// The URL with the `:password` part of its user info removed: what goes on argv.
    pub(crate) without_password: String,
    /// The password, percent-decoded, if the URL had one.
    pub(crate) password: Option<String>,
}

/// Splits the URL into scheme, user info and the rest. Returns `(scheme, userinfo, host_and_rest)`.
fn split(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => Some((scheme, Some(&authority[..at]), &rest[at + 1..])),
        None => Some((scheme, None, rest)),
    }
}

/// Parses and checks a proxy URL. The error is a human reason (the caller adds key and value).
pub(crate) fn parse(url: &str) -> Result<ProxyUrl, String> {
    let Some((scheme, userinfo, host_and_rest)) = split(url) else {
        return Err("expected a URL like dnat://host:port or dnats://user@host:port".into());
    };
    if !scheme.eq_ignore_ascii_case("dnat") && !scheme.eq_ignore_ascii_case("dnats") {
        return Err(format!(
            "unknown scheme {scheme:?} (expected dnat or dnats)"
        ));
    }
    let authority_end = host_and_rest
        .find(['/', '?', '#'])
        .unwrap_or(host_and_rest.len());
    let host_port = &host_and_rest[..authority_end];
    let (host, port) = match host_port.rsplit_once(':') {
        // An IPv6 literal ([::1]) has colons inside the brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("bad port {port:?} (expected 1 to 65535)")),
        }
    }
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(user), Some(percent_decode(password))),
            None => (Some(info), None),
        },
        None => (None, None),
    };
    let without_password = match user {
        Some(user) => format!("{scheme}://{user}@{host_and_rest}"),
        None => format!("{scheme}://{host_and_rest}"),
    };
    Ok(ProxyUrl {
        without_password,
        password,
    })
}

/// The URL with its password (if any) replaced by `<redacted>`, for messages. Works on
/// malformed URLs too.
pub(crate) fn redacted_url(url: &str) -> String {
    match split(url) {
        Some((scheme, Some(info), host_and_rest)) => match info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host_and_rest}"),
            None => url.to_owned(),
        },
        Some(_) => url.to_owned(),
        // Not a URL at all: it could be anything, including a bare password.
        None => REDACTED.to_owned(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_split_off() {
        let p = parse("dnats://alice:s%40cret@proxy.example.com:9092").unwrap();
        assert_eq!(p.without_password, "dnats://alice@proxy.example.com:9092");
        assert_eq!(p.password.as_deref(), Some("s@cret"));
    }

    #[test]
    fn url_without_user_or_password() {
        let p = parse("dnat://10.0.0.1:9091").unwrap();
        assert_eq!(p.without_password, "dnat://10.0.0.1:9091");
        assert_eq!(p.password, None);
        let p = parse("dnat://bob@h").unwrap();
        assert_eq!(p.without_password, "dnat://bob@h");
        assert_eq!(p.password, None);
    }

    #[test]
    fn bad_urls_are_rejected() {
        assert!(parse("proxy.example.com:9091").is_err());
        assert!(
            parse("http://proxy.example.com")
                .unwrap_err()
                .contains("unknown scheme")
        );
        assert!(parse("dnat://:9091").is_err());
        assert!(parse("dnat://h:0").is_err());
        assert!(parse("dnat://h:70000").is_err());
        assert!(parse("dnat://u:p@").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(redacted_url("dnat://u:p@h:1"), "dnat://u:<redacted>@h:1");
        assert_eq!(redacted_url("dnat://u@h:1"), "dnat://u@h:1");
        assert_eq!(redacted_url("garbage"), REDACTED);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%"), "a b%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
