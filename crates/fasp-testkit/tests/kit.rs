//! The kit's own machinery, with small shell scripts standing in for ascp: these run
//! everywhere, with or without the real ascp.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fasp_testkit::{
    AscpInvocation, HttpCapture, MgmtCapture, assert_no_leftover, leftover_processes,
};

/// Write an executable bash script; `$2` is the management port (`-M <port>` comes first).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fasp-testkit-kit.")
        .tempdir()
        .unwrap()
}

#[test]
fn captures_management_bytes_output_and_status() {
    let dir = tempdir();
    let fake = script(
        dir.path(),
        "fake-ascp",
        r#"[ "$1" = -M ] || exit 9
exec 3<>/dev/tcp/127.0.0.1/$2
printf 'FASPMGR 2\nType: INIT\nUserStr: %s\n\n' "$3" >&3
echo "out:$FAKE_VAR:${SECRET_FROM_PARENT:-unset}"
echo err >&2
exit 3"#,
    );
    let mut cmd = AscpInvocation::new(&fake);
    cmd.arg("nonce-1").env("FAKE_VAR", "v");
    let run = cmd.run().unwrap();
    assert_eq!(run.code(), Some(3), "{run:#?}");
    assert!(run.connected);
    assert!(!run.timed_out);
    assert_eq!(
        run.mgmt_text(),
        "FASPMGR 2\nType: INIT\nUserStr: nonce-1\n\n"
    );
    assert!(run.mgmt_has_line("Type: INIT"));
    assert!(!run.mgmt_has_line("Type: INI"));
    assert_eq!(run.stdout, "out:v:unset\n");
    assert_eq!(run.stderr, "err\n");
}

#[test]
fn the_environment_is_clean() {
    let dir = tempdir();
    let fake = script(dir.path(), "fake-env", "env | sort");
    let run = AscpInvocation::new(&fake).run().unwrap();
    let names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| !matches!(*k, "PWD" | "SHLVL" | "_" | "OLDPWD"))
        .collect();
    for n in &names {
        assert!(
            matches!(*n, "PATH" | "HOME"),
            "unexpected variable {n}: {run:#?}"
        );
    }
}

#[test]
fn a_child_that_never_connects_is_noticed_at_once() {
    let dir = tempdir();
    let fake = script(
        dir.path(),
        "fake-bad-option",
        "echo \"unrecognized option \\`--x'\" >&2; exit 1",
    );
    let started = Instant::now();
    let mut cmd = AscpInvocation::new(&fake);
    cmd.timeout(Duration::from_secs(30));
    let run = cmd.run().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{run:#?}");
    assert_eq!(run.code(), Some(1));
    assert!(!run.connected);
    assert!(run.mgmt.is_empty());
    assert!(run.stderr.contains("--x"));
}

#[test]
fn a_child_that_outlives_its_timeout_is_killed_and_reaped() {
    let dir = tempdir();
    let fake = script(
        dir.path(),
        "fake-hang",
        "exec 3<>/dev/tcp/127.0.0.1/$2\nprintf 'FASPMGR 2\\nType: INIT\\n\\n' >&3\nexec sleep 60",
    );
    let mut cmd = AscpInvocation::new(&fake);
    cmd.timeout(Duration::from_millis(500));
    let run = cmd.run().unwrap();
    assert!(run.timed_out, "{run:#?}");
    assert_eq!(run.code(), None);
    assert!(run.mgmt_has_line("Type: INIT"), "{run:#?}");
    assert_no_leftover(&dir.path().to_string_lossy());
}

#[test]
fn a_running_child_can_be_observed_and_controlled() {
    let dir = tempdir();
    let fake = script(
        dir.path(),
        "fake-interactive",
        r#"exec 3<>/dev/tcp/127.0.0.1/$2
printf 'FASPMGR 2\nType: INIT\n\n' >&3
read -r line <&3
printf 'FASPMGR 2\nType: ERROR\nGot: %s\n\n' "$line" >&3
exit 0"#,
    );
    let capture = MgmtCapture::bind().unwrap();
    assert_ne!(capture.port(), 0);
    let mut cmd = AscpInvocation::new(&fake);
    cmd.arg("visible-arg").env("HIDDEN_VALUE", "in-env-only");
    let mut proc = capture.spawn(&cmd).unwrap();
    assert!(proc.wait_for_mgmt("Type: INIT", Duration::from_secs(10)));
    assert!(proc.connected());
    assert!(proc.cmdline_contains("visible-arg").unwrap());
    assert!(!proc.cmdline_contains("in-env-only").unwrap());
    assert!(proc.environ_contains("HIDDEN_VALUE=in-env-only").unwrap());
    assert_eq!(proc.argv()[0], "-M");
    assert!(!proc.has_exited());
    proc.send_mgmt(b"FASPMGR 2\n").unwrap();
    let run = proc.wait().unwrap();
    assert_eq!(run.code(), Some(0), "{run:#?}");
    assert!(run.mgmt_has_line("Got: FASPMGR 2"), "{run:#?}");
}

#[test]
fn dropping_a_process_kills_it() {
    let dir = tempdir();
    let fake = script(dir.path(), "fake-sleeper", "exec sleep 60");
    let mut proc = AscpInvocation::new(&fake).spawn().unwrap();
    let pid = proc.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    proc.terminate().unwrap();
    drop(proc);
    assert_no_leftover(&dir.path().to_string_lossy());
}

#[test]
fn leftovers_are_found() {
    let needle = format!("fasp-testkit-needle-{}", std::process::id());
    let mut child = Command::new("sh")
        .args(["-c", "sleep 60", &needle])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while leftover_processes(&needle).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let found = leftover_processes(&needle);
    assert!(found.iter().any(|p| p.pid == child.id()), "{found:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_leftover(&needle);
}

#[test]
fn http_capture_records_and_answers() {
    let http = HttpCapture::start().unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", http.port())).unwrap();
    conn.write_all(
        b"POST /aspera/http/x/session_start HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n<token>t</token>",
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    let reqs = http.wait_for_requests(1, Duration::from_secs(5));
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        r.request_line(),
        "POST /aspera/http/x/session_start HTTP/1.1"
    );
    assert_eq!(r.header("content-length").as_deref(), Some("11"));
    assert_eq!(r.header("host").as_deref(), Some("h"));
    // Only Content-Length bytes of body are kept.
    assert_eq!(r.body_text(), "<token>t</t");
    assert!(r.contains("<token>t"));
}

#[test]
fn http_capture_reads_heads_and_bodies_that_come_in_pieces() {
    let http = HttpCapture::start().unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", http.port())).unwrap();
    conn.set_nodelay(true).unwrap();
    for piece in [
        &b"POST http://127.0.0.1:1/aspera/http/s/session_start/OOB/u.ashttp HTTP/1.1\r\n"[..],
        b"User-Agent:   Aspera FASP HTTP Client  \r\nContent-Le",
        b"ngth: 9\r\n\r",
        b"\n<a>&\"</",
        b"a>",
    ] {
        conn.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let reqs = http.wait_for_requests(1, Duration::from_secs(5));
    let r = &reqs[0];
    assert_eq!(r.method().as_deref(), Some("POST"));
    assert_eq!(
        r.target().as_deref(),
        Some("http://127.0.0.1:1/aspera/http/s/session_start/OOB/u.ashttp")
    );
    assert_eq!(
        r.header("user-agent").as_deref(),
        Some("Aspera FASP HTTP Client")
    );
    assert_eq!(r.header("x-missing"), None);
    assert_eq!(r.body_text(), "<a>&\"</a>");
    assert!(r.head().ends_with("\r\n\r\n"));
}

#[test]
fn http_capture_keeps_a_request_it_cannot_parse_as_it_came() {
    let http = HttpCapture::start().unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", http.port())).unwrap();
    conn.write_all(b"NOT\x01HTTP\r\n\r\nrest").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let reqs = http.wait_for_requests(1, Duration::from_secs(5));
    let r = &reqs[0];
    assert!(r.raw.starts_with(b"NOT\x01HTTP"), "{r:?}");
    assert_eq!(r.method(), None);
    assert_eq!(r.header("host"), None);
    assert!(r.body().is_empty());
}

#[test]
fn http_capture_can_hold_its_answers() {
    let http = HttpCapture::holding().unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", http.port())).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(http.wait_for_requests(1, Duration::from_secs(5)).len(), 1);
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(conn.read(&mut buf).is_err(), "answered while held");
    http.release();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = conn.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 403"));
}
