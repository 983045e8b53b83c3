//! What comes from outside the machine: the same bytes read (a) as a transfer spec file
//! (`TransferSpec::from_document`, `validate`, `render`) and (b) as a node API answer
//! (`NodeAnswerReader` with its bound and allow-list, the local side added as fasp-token's
//! `prepare_*` do, `render`), for both directions.
//!
//! Checked on every input:
//! - no panic, and every refusal is a `SpecError` with a message;
//! - the argv does not depend on the secrets: rendering the same spec with every secret removed
//!   (the proxy URL replaced by its password-less form) gives the same argv, so no secret can be
//!   on it; every environment variable holds one of the spec's secrets;
//! - a spec read from a node answer holds only keys a node may set, and its argv has none of
//!   the local-side options (`--remove-*`, `-i`, `--file-manifest*`, `--proxy`, ...);
//! - an answer never yields more specs than the reader allows.
#![no_main]

use fasp_spec::{
    Direction, NodeAnswerReader, RenderOptions, Secret, SpecError, TransferPath, TransferSpec,
    node_may_set,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the reader's bound; the rest is the document. Bytes that are not
    // UTF-8 are replaced, as fasp-token does with a body.
    let (max_specs, rest) = match data.split_first() {
        Some((first, rest)) => (usize::from(first % 4), rest),
        None => (1, data),
    };
    let text = String::from_utf8_lossy(rest);
    spec_file(&text);
    for direction in [Direction::Send, Direction::Receive] {
        node_answer(&text, direction, max_specs);
    }
});

/// (a) A spec file as a user gives it.
fn spec_file(text: &str) {
    match TransferSpec::from_document(text) {
        Ok(spec) => {
            let _ = spec.validate().map_err(typed);
            let _ = format!("{spec:?}");
            check_render(&spec);
        }
        Err(e) => typed(e),
    }
}

/// (b) A node answer, restricted, then completed with the local side and rendered.
fn node_answer(text: &str, direction: Direction, max_specs: usize) {
    let reader = NodeAnswerReader::new(direction).with_max_specs(max_specs);
    let results = match reader.read(text) {
        Ok(results) => results,
        Err(e) => return typed(e),
    };
    assert!(results.len() <= max_specs, "{} > {max_specs}", results.len());
    for result in results {
        let node = match result {
            Ok(node) => node,
            Err(e) => {
                typed(e);
                continue;
            }
        };
        for key in &node.dropped_keys {
            let top = key.strip_prefix("paths[].").map_or(key.as_str(), |_| "");
            assert!(top.is_empty() || !node_may_set(top, direction), "{key} dropped");
        }
        let mut spec = node.spec;
        if let serde_json::Value::Object(map) = spec.to_json_value() {
            for key in map.keys() {
                assert!(node_may_set(key, direction), "{key} kept from a node answer");
            }
        }
        for path in &spec.paths {
            if direction == Direction::Send {
                assert!(path.source.is_none());
            } else {
                assert!(path.destination.is_none());
            }
        }
        // The local side, as fasp-token's prepare_upload / prepare_download add it (one path,
        // so that no file list is needed).
        if direction == Direction::Send {
            if let Some(folder) = spec.paths.iter().find_map(|p| p.destination.clone()) {
                spec.destination_root = Some(folder);
            }
            spec.paths = vec![TransferPath::new("/home/me/file")];
        } else {
            spec.paths.truncate(1);
            if spec.paths.first().is_none_or(|p| p.source.is_none()) {
                spec.paths = vec![TransferPath::new("/outgoing/file")];
            }
            spec.destination_root = Some("/home/me/downloads".into());
        }
        spec.direction = Some(direction);
        if let Some(args) = check_render(&spec) {
            // Options only: what follows `--` is paths.
            for arg in args.iter().take_while(|a| *a != "--") {
                for local in LOCAL_OPTIONS {
                    assert!(!arg.starts_with(local), "{arg} from a node answer");
                }
            }
        }
    }
}

/// Options only the user may ask for: a node answer must never produce them.
const LOCAL_OPTIONS: &[&str] = &[
    "-i",
    "--remove-",
    "--delete-before-transfer",
    "--move-after-transfer",
    "--file-manifest",
    "--proxy",
    "--src-base",
    "--preserve-",
    "--remote-preserve-",
    "--overwrite",
    "--file-crypt",
    "--partial-file-suffix",
    "--keepalive",
    "--symbolic-links",
    "--save-before-overwrite",
    "--skip-special-files",
    "--apply-local-docroot",
    "--exclude-",
    "-k",
    "-d",
    "-Z",
    "-p",
];

/// Renders `spec` (no workdir: several paths are a typed error, and no file is written) and
/// checks that its argv does not depend on its secrets. The argv when it rendered.
fn check_render(spec: &TransferSpec) -> Option<Vec<String>> {
    let options = RenderOptions::new();
    let command = match spec.render(&options) {
        Ok(command) => command,
        Err(e) => {
            typed(e);
            return None;
        }
    };
    let args: Vec<String> = command
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    let secrets: Vec<&Secret> = [
        &spec.token,
        &spec.cookie,
        &spec.remote_password,
        &spec.ssh_private_key,
        &spec.ssh_private_key_passphrase,
        &spec.content_protection_password,
    ]
    .into_iter()
    .flatten()
    .collect();
    for (name, value) in &command.env {
        let from_spec = secrets.iter().any(|s| s.expose() == value.expose());
        assert!(
            from_spec || name == "ASPERA_PROXY_PASS",
            "{name} holds no secret of the spec"
        );
        assert!(!value.is_empty(), "{name} is empty");
    }

    // The same spec without its secrets renders the same argv.
    let mut bare = spec.clone();
    bare.token = None;
    bare.cookie = None;
    bare.remote_password = None;
    bare.ssh_private_key = None;
    bare.ssh_private_key_passphrase = None;
    bare.content_protection_password = None;
    if spec.proxy.is_some() {
        let shown = args.iter().find_map(|a| a.strip_prefix("--proxy="));
        bare.proxy = shown.map(Secret::new);
    }
    if let Ok(bare_command) = bare.render(&options) {
        let bare_args: Vec<String> = bare_command
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, bare_args, "argv depends on a secret");
        assert!(
            !bare_command.env.contains_key("ASPERA_PROXY_PASS"),
            "a password left in the proxy URL on argv"
        );
    }
    Some(args)
}

/// A refusal: a typed error with something to say.
fn typed(e: SpecError) {
    assert!(!e.to_string().is_empty());
    let _ = (e.key(), e.value());
}
