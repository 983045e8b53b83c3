//! Round trips: every known key and unknown keys come back unchanged.

use fasp_spec::{Direction, NodeAnswerReader, RenderOptions, TransferSpec};
use serde_json::{Value, json};

use crate::common::args;

/// A spec using every key this crate knows, in canonical spelling, plus unknown keys.
fn everything() -> Value {
    json!({
        "paths": [{"source": "a", "destination": "b", "type": "file"}],
        "source_root": "/src", "destination_root": "/dst",
        "source_root_id": "1", "destination_root_id": "2",
        "direction": "send", "remote_host": "h", "remote_user": "u",
        "ssh_port": 33001, "fasp_port": 33001, "fasp_url": "fasp://h", "use_ascp4": false,
        "token": "t", "authentication": "token", "remote_password": "p",
        "ssh_private_key": "k", "ssh_private_key_path": "/k",
        "ssh_private_key_passphrase": "p", "sshfp": "SHA256:x", "cookie": "c",
        "tags": {"aspera": {"xfer_id": "x", "n": [1, 2.5, null]}},
        "cipher": "aes-256", "rate_policy": "fair", "rate_policy_allowed": "fixed",
        "target_rate_kbps": 100, "min_rate_kbps": 10, "target_rate_cap_kbps": 1000,
        "min_rate_cap_kbps": 100, "lock_rate_policy": true, "lock_target_rate": false,
        "lock_min_rate": true, "dgram_size": 1400,
        "http_fallback": "force", "http_fallback_port": 8080, "https_fallback_port": 8443,
        "http_fallback_protocol": "https", "proxy": "dnats://u:p@proxy:9092",
        "resume_policy": "attrs", "overwrite": "diff+older", "create_dir": true,
        "symlink_policy": "copy+force", "file_checksum": "sha512",
        "precalculate_job_size": true, "keepalive": false, "multi_session": 4,
        "multi_session_threshold": 1000, "content_protection": "encrypt",
        "content_protection_password": "cp", "preserve_times": true,
        "preserve_access_time": true, "preserve_modification_time": false,
        "preserve_creation_time": true, "preserve_source_access_time": true,
        "preserve_file_owner_uid": true, "preserve_file_owner_gid": false,
        "preserve_acls": "metafile", "preserve_remote_acls": "metafile",
        "preserve_xattrs": "native", "preserve_remote_xattrs": "none",
        "remove_after_transfer": false, "remove_empty_directories": true,
        "remove_empty_source_directory": true, "move_after_transfer": "/arch",
        "delete_before_transfer": false, "save_before_overwrite": true,
        "skip_special_files": true, "partial_file_suffix": ".partial",
        "apply_local_docroot": true, "file_manifest": "text", "file_manifest_path": "/m",
        "exclude_newer_than": 2000000000, "exclude_older_than": 1000000000,
        "src_base": "/src", "retry_duration": 3600,
        "wss_enabled": true, "x_custom": {"deep": ["kept", 1, {"z": null}]}, "zero": null
    })
}

#[test]
fn the_fixture_uses_every_known_key() {
    let value = everything();
    let object = value.as_object().unwrap();
    for key in TransferSpec::KNOWN_KEYS {
        assert!(
            object.contains_key(*key),
            "the round-trip fixture misses {key}"
        );
    }
}

#[test]
fn json_to_spec_to_json_is_the_identity() {
    let original = everything();
    let spec = TransferSpec::from_json_value(original.clone()).unwrap();
    assert_eq!(
        spec.unknown_keys(),
        ["wss_enabled", "x_custom", "zero", "paths[0].type"]
    );
    assert_eq!(spec.to_json_value(), original);
    // Through text, with serde's own entry points too.
    let text = serde_json::to_string_pretty(&spec).unwrap();
    let again: TransferSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(again, spec);
    assert_eq!(TransferSpec::from_json(&text).unwrap(), spec);
}

#[test]
fn unknown_keys_keep_their_order() {
    let text = r#"{"zz": 1, "remote_host": "h", "aa": 2, "mm": {"b": 1, "a": 2}}"#;
    let spec = TransferSpec::from_json(text).unwrap();
    assert_eq!(
        serde_json::to_string(&spec).unwrap(),
        r#"{"remote_host":"h","zz":1,"aa":2,"mm":{"b":1,"a":2}}"#
    );
}

#[test]
fn lenient_inputs_come_back_canonical() {
    let spec = TransferSpec::from_json_value(json!({
        "ssh_port": "22", "cipher": "AES128", "http_fallback": "true", "create_dir": "false",
        "direction": "recv", "overwrite_policy": "none", "resume_policy": "full_checksum",
        "content_protection_passphrase": "pw"
    }))
    .unwrap();
    assert_eq!(
        spec.to_json_value(),
        json!({
            "direction": "receive", "ssh_port": 22, "cipher": "aes-128", "http_fallback": true,
            "resume_policy": "full_csum", "overwrite": "never", "create_dir": false,
            "content_protection_password": "pw"
        })
    );
}

/// Whether this build's `serde_json::Map` sorts its keys (serde_json's `preserve_order` feature
/// off, as when fasp-spec is built alone: `cargo xtask test` checks that none of its
/// dependencies turns the feature on).
fn serde_json_sorts_maps() -> bool {
    let map: serde_json::Map<String, Value> = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
    map.keys().next().map(String::as_str) == Some("a")
}

/// Keys in an order that is not alphabetical, at every depth, come back in that order through
/// every output of the crate, whether or not the build sorts `serde_json::Map`s.
#[test]
fn key_order_is_the_spec_own_in_every_build() {
    let sorted = serde_json_sorts_maps();
    eprintln!("serde_json sorts maps in this build: {sorted}");
    // `cargo xtask test` runs this crate's tests alone, without the feature, and says so.
    if std::env::var_os("FASP_SPEC_EXPECT_SORTED_MAPS").is_some_and(|v| v == "1") {
        assert!(
            sorted,
            "serde_json's preserve_order is on in fasp-spec's own test build"
        );
    }
    let text = r#"{"zulu": {"y": 1, "x": [{"d": 0, "c": 0}]}, "remote_host": "h",
        "tags": {"zz": {"b": 1, "a": 2}, "aa": "first"}, "token": "t",
        "paths": [{"source": "s", "z_kind": "file", "a_size": 3}],
        "destination_root": "/in", "direction": "send", "alpha": true, "mike_token": "m"}"#;
    let spec = TransferSpec::from_json(text).unwrap();
    assert_eq!(
        spec.unknown_keys(),
        [
            "zulu",
            "alpha",
            "mike_token",
            "paths[0].z_kind",
            "paths[0].a_size"
        ]
    );
    // Known keys in the crate's order (KNOWN_KEYS), unknown ones in theirs, nested ones too.
    let expected = concat!(
        r#"{"paths":[{"source":"s","z_kind":"file","a_size":3}],"destination_root":"/in","direction":"send","#,
        r#""remote_host":"h","token":"t","tags":{"zz":{"b":1,"a":2},"aa":"first"},"#,
        r#""zulu":{"y":1,"x":[{"d":0,"c":0}]},"alpha":true,"mike_token":"m"}"#
    );
    assert_eq!(serde_json::to_string(&spec).unwrap(), expected);
    assert_eq!(spec.to_json().to_string(), expected);
    assert_eq!(spec.to_json()["zulu"]["y"], json!(1));
    let shown = spec.to_redacted_json().to_string();
    assert_eq!(
        shown,
        expected
            .replace(r#""token":"t""#, r#""token":"<redacted>""#)
            .replace(r#""mike_token":"m""#, r#""mike_token":"<redacted>""#)
    );
    // Pretty text reads back to the same order.
    let pretty = serde_json::to_string_pretty(&spec).unwrap();
    let again = TransferSpec::from_json(&pretty).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), expected);
    let again: TransferSpec = serde_json::from_str(&pretty).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), expected);
    // The tags reach ascp in their order.
    let command = spec.render(&RenderOptions::new()).unwrap();
    let argv = args(&command);
    assert!(
        argv.contains(&r#"--tags={"zz":{"b":1,"a":2},"aa":"first"}"#.to_owned()),
        "{argv:?}"
    );
    // A node answer keeps its order too, and names dropped keys in the spec's order.
    let answer = format!(r#"{{"transfer_specs": [{{"transfer_spec": {text}}}]}}"#);
    let node = NodeAnswerReader::new(Direction::Send)
        .read(&answer)
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(node.dropped_keys, ["paths[].source"]);
    let kept = serde_json::to_string(&node.spec).unwrap();
    assert!(kept.contains(r#""tags":{"zz":{"b":1,"a":2},"aa":"first"},"zulu":{"y":1,"x":[{"d":0,"c":0}]},"alpha":true"#), "{kept}");
    let mut local = TransferSpec::from_json(
        r#"{"remove_after_transfer": true, "ssh_private_key_path": "/k", "remote_host": "h"}"#,
    )
    .unwrap();
    assert_eq!(
        local.restrict_to_node_keys(Direction::Send),
        ["ssh_private_key_path", "remove_after_transfer"]
    );
}
