//! Property tests: arbitrary valid specs never leak a secret into argv or file lists, and
//! survive a JSON round trip.

use fasp_spec::{
    Cipher, ContentProtection, Direction, FileChecksum, HttpFallback, JsonMap, JsonValue,
    OverwritePolicy, RatePolicy, RenderOptions, ResumePolicy, Secret, SymlinkPolicy, TagsEncoding,
    TransferPath, TransferSpec,
};
use proptest::prelude::*;
use proptest::sample::select;

/// A secret: at least 8 random alphanumerics, so that finding it inside another string by
/// accident is practically impossible.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{8,24}"
}

/// Path-like text with the characters that make rendering interesting (spaces, dashes,
/// colons, UTF-8), but no line break.
fn path_text() -> impl Strategy<Value = String> {
    "[-a-z0-9 ._:/éü]{1,24}"
}

fn paths() -> impl Strategy<Value = Vec<TransferPath>> {
    (
        prop::collection::vec((path_text(), path_text()), 1..5),
        any::<bool>(),
    )
        .prop_map(|(items, with_destinations)| {
            items
                .into_iter()
                .map(|(source, destination)| {
                    if with_destinations {
                        TransferPath::pair(source, destination)
                    } else {
                        TransferPath::new(source)
                    }
                })
                .collect()
        })
}

/// Tags in any key order (not sorted), so that the round trip checks the order is kept.
fn tags() -> impl Strategy<Value = Option<JsonMap>> {
    prop::option::of(
        prop::collection::vec(("[a-z_é]{1,8}", "[ -~é😀]{0,16}"), 0..4).prop_map(|entries| {
            entries
                .into_iter()
                .map(|(k, v)| (k, JsonValue::String(v)))
                .collect()
        }),
    )
}

#[derive(Debug, Clone)]
struct Secrets {
    token: Option<String>,
    cookie: Option<String>,
    password: Option<String>,
    key: Option<String>,
    passphrase_same_as_password: bool,
    file_password: Option<String>,
    proxy_password: Option<String>,
}

impl Secrets {
    fn values(&self) -> Vec<&str> {
        [
            &self.token,
            &self.cookie,
            &self.password,
            &self.key,
            &self.file_password,
            &self.proxy_password,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
    }
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        prop::option::of(secret()),
        prop::option::of(secret()),
        prop::option::of(secret()),
        prop::option::of(secret()),
        any::<bool>(),
        prop::option::of(secret()),
        prop::option::of(secret()),
    )
        .prop_map(
            |(token, cookie, password, key, same, file_password, proxy_password)| Secrets {
                token,
                cookie,
                password,
                key,
                passphrase_same_as_password: same,
                file_password,
                proxy_password,
            },
        )
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop::option::of(1..=u16::MAX)
}

/// Rates with min <= target.
fn rates() -> impl Strategy<Value = (Option<u64>, Option<u64>)> {
    (
        prop::option::of(0..=fasp_spec::MAX_RATE_KBPS),
        any::<bool>(),
        0.0..=1.0f64,
    )
        .prop_map(|(target, with_min, fraction)| {
            let min = match target {
                Some(t) if with_min => Some((t as f64 * fraction) as u64).map(|m| m.min(t)),
                _ => None,
            };
            (target, min)
        })
}

fn valid_spec() -> impl Strategy<Value = (TransferSpec, Secrets)> {
    let connection = (
        select(vec![Direction::Send, Direction::Receive]),
        "[a-z]{1,12}(\\.example)?",
        prop::option::of("[a-z][a-z0-9_]{0,8}"),
        port(),
        port(),
        prop::option::of(select(Cipher::ALL.to_vec())),
        prop::option::of(select(RatePolicy::ALL.to_vec())),
        rates(),
    );
    let files = (
        paths(),
        prop::option::of(path_text()),
        prop::option::of(path_text()),
        prop::option::of(select(ResumePolicy::ALL.to_vec())),
        prop::option::of(select(OverwritePolicy::ALL.to_vec())),
        prop::option::of(select(SymlinkPolicy::ALL.to_vec())),
        prop::option::of(select(FileChecksum::ALL.to_vec())),
        prop::option::of(any::<bool>()),
        any::<bool>(),
        tags(),
    );
    let extras = (
        secrets(),
        prop::option::of(select(vec![
            HttpFallback::Disabled,
            HttpFallback::Enabled,
            HttpFallback::Force,
        ])),
        port(),
        port(),
        prop::option::of(select(vec![
            ContentProtection::Encrypt,
            ContentProtection::Decrypt,
        ])),
        prop::collection::vec(("x_[a-z]{1,6}", "[a-z0-9]{0,6}"), 0..3),
    );
    (connection, files, extras).prop_map(|(connection, files, extras)| {
        let (direction, host, user, ssh_port, fasp_port, cipher, policy, (target, min)) =
            connection;
        let (
            paths,
            source_root,
            destination_root,
            resume,
            overwrite,
            symlinks,
            checksum,
            create_dir,
            keepalive,
            tags,
        ) = files;
        let (secrets, fallback, http_port, https_port, protection, unknown) = extras;

        let mut spec = TransferSpec::default();
        spec.direction = Some(direction);
        spec.remote_host = Some(host);
        spec.remote_user = user;
        spec.ssh_port = ssh_port;
        spec.fasp_port = fasp_port;
        spec.cipher = cipher;
        spec.rate_policy = policy;
        spec.rate_policy_allowed = policy.map(|_| RatePolicy::Fixed);
        spec.target_rate_kbps = target;
        spec.min_rate_kbps = min;
        spec.paths = paths;
        spec.source_root = source_root;
        spec.destination_root = destination_root;
        spec.resume_policy = resume;
        spec.overwrite = overwrite;
        spec.symlink_policy = symlinks;
        spec.file_checksum = checksum;
        spec.create_dir = create_dir;
        spec.keepalive = keepalive.then_some(true);
        spec.tags = tags;
        spec.token = secrets.token.clone().map(Secret::from);
        spec.cookie = secrets.cookie.clone().map(Secret::from);
        spec.remote_password = secrets.password.clone().map(Secret::from);
        spec.ssh_private_key = secrets.key.as_ref().map(|k| {
            Secret::new(format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{k}\n-----END RSA PRIVATE KEY-----\n"
            ))
        });
        if secrets.passphrase_same_as_password {
            spec.ssh_private_key_passphrase = spec.remote_password.clone();
        }
        if let Some(password) = &secrets.file_password {
            spec.content_protection = Some(protection.unwrap_or(ContentProtection::Encrypt));
            spec.content_protection_password = Some(Secret::from(password.as_str()));
        }
        spec.proxy = secrets
            .proxy_password
            .as_ref()
            .map(|p| Secret::new(format!("dnats://proxyuser:{p}@proxy.example:9092")));
        spec.http_fallback = fallback;
        spec.http_fallback_port = http_port;
        spec.https_fallback_port = https_port;
        for (key, value) in unknown {
            spec.extra.insert(key, JsonValue::String(value));
        }
        (spec, secrets)
    })
}

proptest! {
    // The number of cases comes from PROPTEST_CASES (256 by default; `cargo xtask proptest`
    // raises it).

    #[test]
    fn proptest_render_never_leaks_secrets(
        (spec, secrets) in valid_spec(),
        base64_tags in any::<bool>(),
    ) {
        prop_assert!(spec.validate().is_ok(), "{:?}", spec.validate());
        let dir = tempfile::tempdir().unwrap();
        let encoding = if base64_tags { TagsEncoding::Base64 } else { TagsEncoding::Json };
        let options = RenderOptions::new().with_workdir(dir.path()).with_tags_encoding(encoding);
        let command = match spec.render(&options) {
            Ok(command) => command,
            // Escaped UTF-8 tags can outgrow --tags' limit; that is the only acceptable refusal.
            Err(fasp_spec::SpecError::TooLong { key, .. }) if key == "tags" && !base64_tags => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("valid spec refused: {e}"))),
        };
        let argv: Vec<String> = command.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        for secret in secrets.values() {
            for arg in &argv {
                prop_assert!(!arg.contains(secret), "secret {secret:?} in argument {arg:?}");
            }
            for file in &command.files {
                let contents = std::fs::read_to_string(&file.path).unwrap();
                prop_assert!(!contents.contains(secret), "secret in {}", file.path.display());
            }
            let debug = format!("{command:?} {spec:?}");
            prop_assert!(!debug.contains(secret), "secret in Debug output");
        }
        // Every secret is in the environment, under the right name.
        let env = |name: &str| command.env.get(name).map(|s| s.expose().to_owned());
        prop_assert_eq!(env("ASPERA_SCP_TOKEN"), secrets.token.clone());
        prop_assert_eq!(env("ASPERA_SCP_COOKIE"), secrets.cookie.clone());
        prop_assert_eq!(env("ASPERA_SCP_PASS"), secrets.password.clone());
        prop_assert_eq!(env("ASPERA_SCP_FILEPASS"), secrets.file_password.clone());
        prop_assert_eq!(env("ASPERA_PROXY_PASS"), secrets.proxy_password.clone());
        prop_assert_eq!(
            env("ASPERA_SCP_KEY").is_some_and(|k| k.contains(secrets.key.as_deref().unwrap_or("\u{0}"))),
            secrets.key.is_some()
        );
        // Positional arguments always follow "--".
        if !command.args.is_empty() && spec.keepalive != Some(true) {
            prop_assert!(argv.iter().any(|a| a == "--"));
        }
        command.cleanup().unwrap();
    }

    #[test]
    fn proptest_json_round_trip_is_lossless((spec, _secrets) in valid_spec()) {
        let text = serde_json::to_string(&spec).unwrap();
        let back = TransferSpec::from_json(&text).unwrap();
        prop_assert_eq!(&back, &spec);
        // The same text again: key order included (equality of maps ignores it).
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text.clone());
        prop_assert_eq!(spec.to_json().to_string(), text);
        let tree = spec.to_json();
        prop_assert_eq!(TransferSpec::from_json_tree(tree.clone()).unwrap().to_json().to_string(), tree.to_string());
        let value = spec.to_json_value();
        prop_assert_eq!(TransferSpec::from_json_value(value.clone()).unwrap().to_json_value(), value);
    }
}
