//! Rendering: argv exactly as expected, secrets in the environment only, file lists.

use std::path::Path;

use fasp_spec::{
    ASPERA_PROXY_PASS, ASPERA_SCP_COOKIE, ASPERA_SCP_FILEPASS, ASPERA_SCP_KEY, ASPERA_SCP_PASS,
    ASPERA_SCP_TOKEN, FileListKind, RenderOptions, SpecError, TagsEncoding,
};
use serde_json::json;

use crate::common::{args, env_names, render, spec};

#[test]
fn minimal_upload() {
    let command = render(json!({
        "direction": "send", "remote_host": "ats.example.com",
        "paths": [{"source": "report.pdf"}]
    }));
    assert_eq!(command.program, Path::new("ascp"));
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--host=ats.example.com",
            "--",
            "report.pdf",
            "."
        ]
    );
    assert!(command.env.is_empty());
    assert!(command.files.is_empty());
}

#[test]
fn download_with_roots() {
    let command = render(json!({
        "direction": "receive", "remote_host": "h", "remote_user": "xfer",
        "ssh_port": "33001", "fasp_port": 33002,
        "source_root": "/srv/outbox", "destination_root": "/home/me/in",
        "paths": [{"source": "big.bin"}]
    }));
    assert_eq!(
        args(&command),
        [
            "--mode=recv",
            "--user=xfer",
            "--host=h",
            "-P",
            "33001",
            "-O",
            "33002",
            "--source-prefix=/srv/outbox",
            "--",
            "big.bin",
            "/home/me/in",
        ]
    );
}

#[test]
fn empty_roots_are_ignored() {
    // The seed's node answer has "source_root": "".
    let command = render(json!({
        "direction": "send", "remote_host": "h", "source_root": "", "destination_root": "",
        "paths": [{"source": "a"}]
    }));
    assert_eq!(args(&command), ["--mode=send", "--host=h", "--", "a", "."]);
}

#[test]
fn every_option_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "remote_user": "u",
        "ssh_port": 22, "fasp_port": 33001,
        "cipher": "aes-192", "rate_policy": "high", "target_rate_kbps": 100000,
        "min_rate_kbps": 1000, "ssh_private_key_path": "/keys/id_rsa", "sshfp": "SHA256:abc",
        "resume_policy": "sparse_csum", "overwrite": "diff+older", "create_dir": true,
        "symlink_policy": "copy+force", "file_checksum": "sha-256",
        "precalculate_job_size": true, "multi_session_threshold": 1048576, "dgram_size": 1400,
        "content_protection": "encrypt", "content_protection_password": "cp-pass",
        "preserve_times": true, "preserve_access_time": true,
        "preserve_modification_time": true, "preserve_creation_time": true,
        "preserve_source_access_time": true, "preserve_file_owner_uid": true,
        "preserve_file_owner_gid": true, "preserve_acls": "metafile",
        "preserve_remote_acls": "metafile", "preserve_xattrs": "native",
        "preserve_remote_xattrs": "metafile", "remove_empty_directories": true,
        "remove_empty_source_directory": true, "move_after_transfer": "/archive",
        "save_before_overwrite": true, "skip_special_files": true,
        "partial_file_suffix": ".part", "apply_local_docroot": true, "file_manifest": "text",
        "file_manifest_path": "/manifests", "exclude_newer_than": 1700000000,
        "exclude_older_than": "1600000000", "src_base": "/data", "source_root": "/data",
        "destination_root": "/in", "tags": {"aspera": {"xfer_id": "abc"}},
        "http_fallback": true, "http_fallback_port": 8080, "https_fallback_port": 8443,
        "lock_rate_policy": true, "rate_policy_allowed": "fixed", "multi_session": 4,
        "retry_duration": 600, "use_ascp4": false, "fasp_url": "fasp://h:33001",
        "paths": [{"source": "x", "destination": "y"}, {"source": "z", "destination": "w"}]
    }));
    let options = RenderOptions::new()
        .with_program("/opt/aspera/bin/ascp")
        .with_workdir(dir.path())
        .with_multi_session_part(2, 4)
        .with_https_cert_and_key("/certs/c.pem", "/certs/k.pem")
        .with_http_fallback_proxy("proxy.example:3128");
    let command = spec.render(&options).unwrap();
    assert_eq!(command.program, Path::new("/opt/aspera/bin/ascp"));
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--user=u",
            "--host=h",
            "-P",
            "22",
            "-O",
            "33001",
            "-c",
            "aes192",
            "--policy=high",
            "-l",
            "100000",
            "-m",
            "1000",
            "-i",
            "/keys/id_rsa",
            "--check-sshfp=SHA256:abc",
            "-k",
            "2",
            "--overwrite=diff+older",
            "-d",
            "--symbolic-links=copy+force",
            "--file-checksum=sha256",
            "--precalculate-job-size",
            "--multi-session-threshold=1048576",
            "-C",
            "2:4",
            "-Z",
            "1400",
            "--file-crypt=encrypt",
            "-p",
            "--preserve-access-time",
            "--preserve-modification-time",
            "--preserve-creation-time",
            "--preserve-source-access-time",
            "--preserve-file-owner-uid",
            "--preserve-file-owner-gid",
            "--preserve-acls=metafile",
            "--remote-preserve-acls=metafile",
            "--preserve-xattrs=native",
            "--remote-preserve-xattrs=metafile",
            "--remove-empty-directories",
            "--remove-empty-source-directory",
            "--move-after-transfer=/archive",
            "--save-before-overwrite",
            "--skip-special-files",
            "--partial-file-suffix=.part",
            "--apply-local-docroot",
            "--file-manifest=text",
            "--file-manifest-path=/manifests",
            "--exclude-newer-than=1700000000",
            "--exclude-older-than=1600000000",
            "--src-base=/data",
            "--source-prefix=/data",
            r#"--tags={"aspera":{"xfer_id":"abc"}}"#,
            "-y",
            "1",
            "-t",
            "8443",
            "-x",
            "proxy.example:3128",
            "-I",
            "/certs/c.pem",
            "-Y",
            "/certs/k.pem",
            "--file-pair-list=<LIST>",
            "--",
            "/in",
        ]
    );
    assert_eq!(env_names(&command), [ASPERA_SCP_FILEPASS]);
    assert_eq!(command.files.len(), 1);
    assert_eq!(command.files[0].lines, ["x", "y", "z", "w"]);
}

#[test]
fn ciphers() {
    for (cipher, expected) in [
        ("none", vec!["-T"]),
        ("aes-128", vec!["-c", "aes128"]),
        ("aes128", vec!["-c", "aes128"]),
        ("aes-128-cfb", vec!["-c", "aes128"]),
        ("aes256cfb", vec!["-c", "aes256"]),
        ("AES-256", vec!["-c", "aes256"]),
        ("aes-128-gcm", vec!["-c", "aes-128-gcm"]),
    ] {
        let command = render(json!({
            "direction": "send", "remote_host": "h", "cipher": cipher, "paths": [{"source": "a"}]
        }));
        let mut want = vec!["--mode=send", "--host=h"];
        want.extend(expected);
        want.extend(["--", "a", "."]);
        assert_eq!(args(&command), want, "cipher {cipher}");
    }
}

#[test]
fn http_fallback_port_follows_encryption() {
    let base = |extra: serde_json::Value| {
        let mut value = json!({
            "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
            "http_fallback_port": 8080, "https_fallback_port": 8443
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args(&render(value))
    };
    // Encrypted (the default cipher): HTTPS, so the HTTPS port.
    assert_eq!(
        base(json!({"http_fallback": true})),
        [
            "--mode=send",
            "--host=h",
            "-y",
            "1",
            "-t",
            "8443",
            "--",
            "a",
            "."
        ]
    );
    // No encryption: plain HTTP (-T) on the HTTP port.
    assert_eq!(
        base(json!({"http_fallback": "force", "cipher": "none", "http_fallback_protocol": "http"})),
        [
            "--mode=send",
            "--host=h",
            "-T",
            "-y",
            "F",
            "-t",
            "8080",
            "--",
            "a",
            "."
        ]
    );
    // Off: no fallback option at all, whatever the ports.
    assert_eq!(
        base(json!({"http_fallback": false})),
        ["--mode=send", "--host=h", "--", "a", "."]
    );
    assert_eq!(base(json!({})), ["--mode=send", "--host=h", "--", "a", "."]);
    // HTTPS without a separate HTTPS port: the one port there is.
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "http_fallback": "true", "http_fallback_port": "8443"
    }));
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--host=h",
            "-y",
            "1",
            "-t",
            "8443",
            "--",
            "a",
            "."
        ]
    );
}

#[test]
fn fallback_render_options_only_with_fallback() {
    let spec = spec(json!({"direction": "send", "remote_host": "h", "paths": [{"source": "a"}]}));
    let options = RenderOptions::new()
        .with_https_cert_and_key("/c", "/k")
        .with_http_fallback_proxy("p:1");
    assert_eq!(
        args(&spec.render(&options).unwrap()),
        ["--mode=send", "--host=h", "--", "a", "."]
    );
}

#[test]
fn secrets_go_to_the_environment_only() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "token": "tok-AAAA1111", "cookie": "cookie-BBBB2222",
        "remote_password": "pw-CCCC3333", "ssh_private_key": "-----BEGIN KEY-----\nkey-DDDD4444\n-----END KEY-----\n",
        "content_protection": "decrypt", "content_protection_password": "cp-EEEE5555",
        "proxy": "dnats://alice:px-FFFF6666@proxy.example:9092"
    }));
    assert_eq!(
        env_names(&command),
        [
            ASPERA_PROXY_PASS,
            ASPERA_SCP_COOKIE,
            ASPERA_SCP_FILEPASS,
            ASPERA_SCP_KEY,
            ASPERA_SCP_PASS,
            ASPERA_SCP_TOKEN,
        ]
    );
    assert_eq!(command.env[ASPERA_SCP_TOKEN].expose(), "tok-AAAA1111");
    assert_eq!(command.env[ASPERA_SCP_COOKIE].expose(), "cookie-BBBB2222");
    assert_eq!(command.env[ASPERA_SCP_PASS].expose(), "pw-CCCC3333");
    assert!(
        command.env[ASPERA_SCP_KEY]
            .expose()
            .contains("key-DDDD4444")
    );
    assert_eq!(command.env[ASPERA_SCP_FILEPASS].expose(), "cp-EEEE5555");
    assert_eq!(command.env[ASPERA_PROXY_PASS].expose(), "px-FFFF6666");
    let argv = args(&command);
    for secret in [
        "AAAA1111", "BBBB2222", "CCCC3333", "DDDD4444", "EEEE5555", "FFFF6666",
    ] {
        assert!(
            argv.iter().all(|a| !a.contains(secret)),
            "{secret} in {argv:?}"
        );
    }
    assert!(argv.contains(&"--proxy=dnats://alice@proxy.example:9092".to_owned()));
    assert!(!argv.iter().any(|a| a == "-W"));
    let debug = format!("{command:?}");
    assert!(
        !debug.contains("1111") && !debug.contains("6666"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
}

#[test]
fn key_passphrase_takes_ascp_scp_pass() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "ssh_private_key_path": "/k", "ssh_private_key_passphrase": "phrase"
    }));
    assert_eq!(command.env[ASPERA_SCP_PASS].expose(), "phrase");
    // Equal values are allowed together.
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "remote_password": "same", "ssh_private_key_passphrase": "same"
    }));
    assert_eq!(command.env[ASPERA_SCP_PASS].expose(), "same");
}

#[test]
fn filepass_only_with_content_protection_and_empty_secrets_skipped() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "content_protection_password": "unused", "token": "", "cookie": "c"
    }));
    assert_eq!(env_names(&command), [ASPERA_SCP_COOKIE]);
}

#[test]
fn proxy_without_password() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "proxy": "dnat://proxy.example:9091"
    }));
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--host=h",
            "--proxy=dnat://proxy.example:9091",
            "--",
            "a",
            "."
        ]
    );
    assert!(command.env.is_empty());
}

#[test]
fn tags_encodings() {
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "tags": {"é": "x y"}
    }));
    let json = spec.render(&RenderOptions::new()).unwrap();
    assert_eq!(args(&json)[2], r#"--tags={"\u00e9":"x y"}"#);
    let b64 = spec
        .render(&RenderOptions::new().with_tags_encoding(TagsEncoding::Base64))
        .unwrap();
    // Verified with the real ascp 3.9: both echo Tags {"é":"x y"} in SESSION.
    assert_eq!(args(&b64)[2], "--tags64=eyLDqSI6InggeSJ9");
}

#[test]
fn tags_escaped_beyond_the_limit_are_refused() {
    // 2000 'é' are 4000 bytes of UTF-8 (valid) but 12000 bytes once escaped for --tags.
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "tags": {"k": "é".repeat(2000)}
    }));
    let err = spec.render(&RenderOptions::new()).unwrap_err();
    assert!(matches!(err, SpecError::TooLong { .. }), "{err}");
    spec.render(&RenderOptions::new().with_tags_encoding(TagsEncoding::Base64))
        .unwrap();
}

#[test]
fn keepalive_renders_no_sources() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "keepalive": true, "destination_root": "/in",
        "paths": [{"source": "a"}, {"source": "b"}]
    }));
    assert_eq!(
        args(&command),
        ["--mode=send", "--host=h", "--keepalive", "--", "/in"]
    );
    assert!(command.files.is_empty());
    let command = render(json!({"direction": "send", "remote_host": "h", "keepalive": true}));
    assert_eq!(args(&command), ["--mode=send", "--host=h", "--keepalive"]);
}

#[test]
fn awkward_positional_paths() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "destination_root": "x:y",
        "paths": [{"source": "-rf"}]
    }));
    assert_eq!(
        args(&command),
        ["--mode=send", "--host=h", "--", "-rf", "./x:y"]
    );
    let command = render(json!({
        "direction": "receive", "remote_host": "h", "destination_root": "/tmp/in",
        "paths": [{"source": "a:b.txt"}]
    }));
    assert_eq!(
        args(&command),
        ["--mode=recv", "--host=h", "--", "./a:b.txt", "/tmp/in"]
    );
    // ascp glues the prefix to the source before it looks for "host:".
    let command = render(json!({
        "direction": "send", "remote_host": "h", "source_root": "x:y", "src_base": "x:y",
        "paths": [{"source": "a"}]
    }));
    assert_eq!(
        args(&command),
        [
            "--mode=send",
            "--host=h",
            "--src-base=./x:y",
            "--source-prefix=./x:y",
            "--",
            "a",
            "."
        ]
    );
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn file_list_for_several_sources() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "destination_root": "/in",
        "paths": [{"source": "a.txt"}, {"source": "-dash.txt"}, {"source": "c:d.txt"},
                  {"source": "dir/ü é.txt"}]
    }));
    assert!(spec.needs_workdir());
    let command = spec
        .render(&RenderOptions::new().with_workdir(dir.path()))
        .unwrap();
    assert_eq!(
        args(&command),
        ["--mode=send", "--host=h", "--file-list=<LIST>", "--", "/in"]
    );
    let file = &command.files[0];
    assert_eq!(file.kind, FileListKind::FileList);
    assert_eq!(file.path.parent().unwrap(), dir.path());
    assert_eq!(
        file.lines,
        ["a.txt", "-dash.txt", "./c:d.txt", "dir/ü é.txt"]
    );
    let contents = std::fs::read_to_string(&file.path).unwrap();
    assert_eq!(contents, "a.txt\n-dash.txt\n./c:d.txt\ndir/ü é.txt\n");
    #[cfg(unix)]
    assert_eq!(mode_of(&file.path), 0o600);
    command.cleanup().unwrap();
    assert!(!file.path.exists());
    command.cleanup().unwrap();
}

#[test]
fn file_pair_list_for_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "direction": "receive", "remote_host": "h",
        "paths": [{"source": "/r/a", "destination": "x/a"}]
    }));
    assert!(spec.needs_workdir());
    let command = spec
        .render(&RenderOptions::new().with_workdir(dir.path()))
        .unwrap();
    assert_eq!(
        args(&command),
        [
            "--mode=recv",
            "--host=h",
            "--file-pair-list=<LIST>",
            "--",
            "."
        ]
    );
    let file = &command.files[0];
    assert_eq!(file.kind, FileListKind::FilePairList);
    assert_eq!(std::fs::read_to_string(&file.path).unwrap(), "/r/a\nx/a\n");
    #[cfg(unix)]
    assert_eq!(mode_of(&file.path), 0o600);
}

#[test]
fn each_render_writes_a_fresh_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}, {"source": "b"}]
    }));
    let options = RenderOptions::new().with_workdir(dir.path());
    let one = spec.render(&options).unwrap();
    let two = spec.render(&options).unwrap();
    assert_ne!(one.files[0].path, two.files[0].path);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn relative_workdir_is_made_absolute() {
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}, {"source": "b"}]
    }));
    let base = tempfile::tempdir_in(".").unwrap();
    let relative = base.path().file_name().unwrap();
    let command = spec
        .render(&RenderOptions::new().with_workdir(relative))
        .unwrap();
    assert!(command.files[0].path.is_absolute());
    assert!(command.files[0].path.exists());
}

#[test]
fn file_list_needs_a_workdir() {
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}, {"source": "b"}]
    }));
    let err = spec.render(&RenderOptions::new()).unwrap_err();
    assert_eq!(err.key(), Some("RenderOptions::workdir"));
    let err = spec
        .render(&RenderOptions::new().with_workdir("/nonexistent/fasp-spec-test"))
        .unwrap_err();
    assert!(matches!(err, SpecError::Io { .. }), "{err}");
}

#[test]
fn an_invalid_spec_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(json!({
        "direction": "send", "remote_host": "h", "token": "a\nb",
        "paths": [{"source": "a"}, {"source": "b"}]
    }));
    let err = spec
        .render(&RenderOptions::new().with_workdir(dir.path()))
        .unwrap_err();
    assert_eq!(err.key(), Some("token"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A bad render option is caught before any file is written too.
    let spec = spec_ok_two_paths();
    let options = RenderOptions::new()
        .with_workdir(dir.path())
        .with_multi_session_part(5, 4);
    assert!(spec.render(&options).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn spec_ok_two_paths() -> fasp_spec::TransferSpec {
    spec(
        json!({"direction": "send", "remote_host": "h", "paths": [{"source": "a"}, {"source": "b"}]}),
    )
}

#[test]
fn unknown_keys_are_not_rendered() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "wss_enabled": true, "remote_access_key": "k"
    }));
    assert_eq!(args(&command), ["--mode=send", "--host=h", "--", "a", "."]);
}

#[test]
fn to_command_carries_program_args_and_env() {
    let command = render(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}], "token": "t0k"
    }));
    let std_command = command.to_command();
    assert_eq!(std_command.get_program(), "ascp");
    let argv: Vec<_> = std_command.get_args().collect();
    assert_eq!(argv, ["--mode=send", "--host=h", "--", "a", "."]);
    let envs: Vec<_> = std_command.get_envs().collect();
    assert_eq!(
        envs,
        [(
            std::ffi::OsStr::new("ASPERA_SCP_TOKEN"),
            Some(std::ffi::OsStr::new("t0k"))
        )]
    );
}

#[test]
fn render_validates_first() {
    let err = spec(json!({
        "direction": "send", "remote_host": "h", "paths": [{"source": "a"}],
        "target_rate_kbps": 10, "min_rate_kbps": 20
    }))
    .render(&RenderOptions::new())
    .unwrap_err();
    assert_eq!(err.key(), Some("min_rate_kbps"));
    assert_eq!(err.value(), Some("20"));
}
