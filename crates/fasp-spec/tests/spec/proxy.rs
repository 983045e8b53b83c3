//! Proxy URLs whose password holds the characters that cut URLs: the password goes only to
//! `ASPERA_PROXY_PASS`, never to argv, and never into an error, `Debug` or `Display`.

use fasp_spec::{ASPERA_PROXY_PASS, RenderOptions, SpecError, TransferSpec};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{args, spec};

fn with_proxy(url: &str) -> TransferSpec {
    spec(json!({
        "direction": "send", "remote_host": "h", "remote_user": "u", "token": "t",
        "paths": [{"source": "a"}], "proxy": url,
    }))
}

/// Percent-encodes every byte that is not alphanumeric.
fn encode_all(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn an_unencoded_hash_and_friends_stay_in_the_password() {
    for password in [
        "p#ss", "p/ss", "p?ss", "p@ss", "p:ss", "#/?@:", "@", "pa ss",
    ] {
        for written in [password.to_owned(), encode_all(password)] {
            let url = format!("dnats://alice:{written}@proxy.example.com:9092");
            let command = with_proxy(&url)
                .render(&RenderOptions::new())
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let argv = args(&command);
            assert!(
                argv.contains(&"--proxy=dnats://alice@proxy.example.com:9092".to_owned()),
                "{url}: {argv:?}"
            );
            assert_eq!(command.env[ASPERA_PROXY_PASS].expose(), password, "{url}");
            let shown = format!("{command:?} {:?}", with_proxy(&url));
            if password.contains("ss") {
                assert!(!shown.contains(&written), "{url}: {shown}");
            }
        }
    }
}

#[test]
fn refused_urls_never_show_the_password() {
    for url in [
        "dnats://alice:Pw-9xQ#frag@proxy.example.com:0",
        "dnats://alice:Pw-9xQ@proxy.example.com:99999",
        "dnats://alice:Pw-9xQ@proxy.example.com/path",
        "dnats://alice:Pw-9xQ@",
        "https://alice:Pw-9xQ@proxy.example.com",
        "alice:Pw-9xQ@proxy.example.com",
        "dnats://alice:Pw-9xQ%FF@proxy.example.com",
    ] {
        let err = with_proxy(url).validate().unwrap_err();
        assert!(matches!(err, SpecError::Invalid { .. }), "{url}: {err:?}");
        assert_eq!(err.key(), Some("proxy"));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("Pw-9xQ"), "{url}: {shown}");
        let err = with_proxy(url).render(&RenderOptions::new()).unwrap_err();
        assert!(!err.to_string().contains("Pw-9xQ"), "{url}: {err}");
    }
}

proptest! {
    /// Any password, written raw or fully percent-encoded (a raw `%` must be written `%25`):
    /// the same password in the environment, none of it on argv.
    #[test]
    fn any_password_goes_to_the_environment_only(
        password in "[ -~]{1,24}",
        encode in any::<bool>(),
    ) {
        let written = if encode || password.contains('%') {
            encode_all(&password)
        } else {
            password.clone()
        };
        let url = format!("dnats://alice:{written}@proxy.example.com:9092");
        let command = with_proxy(&url).render(&RenderOptions::new()).unwrap();
        prop_assert_eq!(command.env[ASPERA_PROXY_PASS].expose(), password.as_str());
        let argv = args(&command);
        prop_assert!(argv.contains(&"--proxy=dnats://alice@proxy.example.com:9092".to_owned()));
    }
}
