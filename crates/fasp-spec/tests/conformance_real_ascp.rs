//! Conformance of `fasp-spec` against the real IBM ascp 3.9.0: spec in, SESSION out.
//!
//! Each case takes a transfer spec (JSON), renders it with [`TransferSpec::render`], runs the
//! real ascp with exactly the rendered arguments and environment (the test kit only adds
//! `-M <port>` in front) against an SSH port on 127.0.0.1 where nothing listens, parses the
//! management frames with `fasp-mgmt-proto`, and checks that
//!
//! 1. ascp accepted the command line: it connected to the management port and sent `INIT`
//!    and `SESSION` (a rejected option makes it exit 1 before connecting);
//! 2. `SESSION` (and `INIT` where relevant) echo what the spec asked for;
//! 3. the session ended with the `ERROR` code that case really yields (44, "Failed to open
//!    TCP connection for SSH", for the closed port; 47 when HTTP fallback finds no listener).
//!
//! The HTTP fallback test checks that the token travels in the environment only: it reaches
//! the fallback request and the HTTP session's `SESSION`, never argv or
//! `/proc/<pid>/cmdline`. The negative table (no ascp needed, so it always runs) checks specs
//! that must be refused before ascp is started, by key.
//!
//! The real-ascp tests skip outside CI when `FASP_ASCP` is unset and fail with `CI=true`.
//! Run them with
//! `FASP_ASCP=$PWD/target/ascp/cos_aspera/ascp cargo test -p fasp-spec --test conformance_real_ascp`
//! (add `-- --nocapture` for the per-case timings).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fasp_mgmt_proto::{Frame, FrameParser, Message};
use fasp_spec::{AscpCommand, RenderOptions, SpecError, TagsEncoding, TransferSpec};
use fasp_testkit::{AscpInvocation, AscpRun, HttpCapture, assert_no_leftover, require_real_ascp};
use serde_json::{Value, json};

/// Longest one ascp run may take before the kit kills it (a closed port answers at once).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Parallel ascp runs in the table test.
const WORKERS: usize = 6;

/// `ERROR Code` for an SSH port where nothing listens.
const CLOSED_SSH_PORT: u64 = 44;

/// `ERROR Code` when the HTTP fallback port has no listener.
const NO_HTTP_LISTENER: u64 = 47;

/// `ERROR Code` when the HTTP fallback server refuses the session (our capture's 403).
const HTTP_REFUSED: u64 = 5;

// ---------------------------------------------------------------------------------------------
// Running one rendered command and reading its frames.
// ---------------------------------------------------------------------------------------------

/// A fresh folder whose path is unique to one test: it holds the file lists and appears in
/// every ascp command line of that test, so it doubles as the leftover needle.
fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fasp-spec-conformance-{name}."))
        .tempdir()
        .expect("temp dir")
}

/// A TCP port on 127.0.0.1 where nothing listens, kept reserved while this lives.
///
/// A port from `free_port()` is free when it is returned, but every management listener
/// the kit binds afterwards (one per ascp run, dozens here) may be given the same port by the
/// kernel, and ascp would then talk SSH to it. Here the port is the local end of an
/// established loopback connection instead: a connection attempt to it is refused (it is
/// not listening), and no one else can bind it while the connection is open.
struct ClosedPort {
    port: u16,
    _client: TcpStream,
    _server: TcpStream,
}

impl ClosedPort {
    fn new() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let port = client.local_addr().expect("addr").port();
        ClosedPort {
            port,
            _client: client,
            _server: server,
        }
    }
}

/// The rendered command, run as is (program, args, env) with `-M <port>` added by the kit.
fn kit_command(rendered: &AscpCommand) -> AscpInvocation {
    let mut cmd = AscpInvocation::new(&rendered.program);
    cmd.args(&rendered.args).timeout(TIMEOUT);
    for (name, value) in &rendered.env {
        cmd.env(name, value.expose());
    }
    cmd
}

/// Every frame of a management stream, each checked to read as its typed message.
fn parse_frames(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut buf = BytesMut::from(bytes);
    let mut parser = FrameParser::new();
    let mut frames = Vec::new();
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(frame)) => {
                if let Err(e) = Message::from_frame(&frame) {
                    return Err(format!(
                        "frame does not read as its type: {e}\n{}",
                        String::from_utf8_lossy(frame.as_bytes())
                    ));
                }
                frames.push(frame);
            }
            Ok(None) => break,
            Err(e) => return Err(format!("management stream damaged: {e}")),
        }
    }
    if let Some(e) = parser.finish(&mut buf) {
        return Err(format!("management stream ends mid-frame: {e}"));
    }
    Ok(frames)
}

fn frames_of<'a>(frames: &'a [Frame], ty: &str) -> Vec<&'a Frame> {
    frames
        .iter()
        .filter(|f| f.type_name() == Some(ty))
        .collect()
}

fn args_text(rendered: &AscpCommand) -> String {
    rendered
        .args
        .iter()
        .map(|a| format!("{:?}", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything worth seeing when a case fails: argv, exit, stderr, the whole stream in clear
/// (these are test values, not real secrets).
fn describe(rendered: &AscpCommand, run: &AscpRun) -> String {
    let lists: Vec<String> = rendered
        .files
        .iter()
        .map(|f| {
            format!(
                "  {} ({}): {:?}",
                f.path.display(),
                f.kind.as_str(),
                f.lines
            )
        })
        .collect();
    format!(
        "argv (after -M): {}\nenv: {:?}\nfile lists:\n{}\nexit: {:?} (connected: {}, timed out: {}, {:?})\nstderr: {}\nstdout: {}\nmanagement stream:\n{}",
        args_text(rendered),
        rendered.env.keys().collect::<Vec<_>>(),
        lists.join("\n"),
        run.status,
        run.connected,
        run.timed_out,
        run.elapsed,
        run.stderr.trim_end(),
        run.stdout.trim_end(),
        run.mgmt_text(),
    )
}

// ---------------------------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------------------------

/// What one key of a frame must hold.
#[derive(Debug, Clone)]
enum Want {
    /// Exactly this text.
    Is(String),
    /// JSON text equal to this value (key order and escapes aside).
    Json(Value),
    /// No such field.
    Absent,
}

/// One conformance case: a spec, how to render it, what ascp must echo.
struct Case {
    name: &'static str,
    spec: Value,
    options: RenderOptions,
    /// Expected `INIT` fields (besides the automatic `Direction` and `Cookie`).
    init: Vec<(&'static str, Want)>,
    /// Expected fields of the first `SESSION` (besides the automatic ones, see [`Case::run`]).
    session: Vec<(&'static str, Want)>,
    /// Expected `Session::sources()` of the first `SESSION` (TAB-split, ESC-decoded).
    sources: Option<Vec<String>>,
    /// Expected fields of the second `SESSION` (HTTP fallback), when there is one.
    second_session: Vec<(&'static str, Want)>,
    /// How many INIT/SESSION pairs ascp sends.
    sessions: usize,
    /// The `Code` of every `ERROR` frame; the stream must end with one.
    code: u64,
    /// The `Description` of every `ERROR` frame, when the case names one.
    description: Option<String>,
}

/// Shared values of one table run.
struct Ctx {
    /// Test folder (file lists, fake sources); its path is in every command line.
    dir: PathBuf,
    /// An SSH port where nothing listens.
    ssh_port: u16,
    /// An HTTP fallback port where nothing listens.
    closed_http_port: u16,
}

impl Ctx {
    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_string_lossy().into_owned()
    }

    /// A complete upload spec (one source, a destination folder), with `overrides` merged
    /// in; a `null` override removes the key.
    fn spec(&self, overrides: Value) -> Value {
        let mut spec = json!({
            "direction": "send",
            "remote_host": "127.0.0.1",
            "remote_user": "xfer",
            "ssh_port": self.ssh_port,
            "paths": [{"source": self.path("src/report.txt")}],
            "destination_root": self.path("inbox"),
        });
        let map = spec.as_object_mut().expect("object");
        for (key, value) in overrides.as_object().expect("overrides are an object") {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.clone(), value.clone());
            }
        }
        spec
    }
}

fn case(name: &'static str, spec: Value) -> Case {
    Case {
        name,
        spec,
        options: RenderOptions::new(),
        init: Vec::new(),
        session: Vec::new(),
        sources: None,
        second_session: Vec::new(),
        sessions: 1,
        code: CLOSED_SSH_PORT,
        description: None,
    }
}

fn wants(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Want)> {
    pairs
        .iter()
        .map(|(k, v)| (*k, Want::Is((*v).to_owned())))
        .collect()
}

impl Case {
    fn session(mut self, pairs: &[(&'static str, &str)]) -> Self {
        self.session.extend(wants(pairs));
        self
    }

    fn absent(mut self, keys: &[&'static str]) -> Self {
        self.session.extend(keys.iter().map(|k| (*k, Want::Absent)));
        self
    }

    fn init(mut self, pairs: &[(&'static str, &str)]) -> Self {
        self.init.extend(wants(pairs));
        self
    }

    fn sources(mut self, sources: &[&str]) -> Self {
        self.sources = Some(sources.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    fn options(mut self, options: RenderOptions) -> Self {
        self.options = options;
        self
    }

    fn second_session(mut self, pairs: &[(&'static str, &str)]) -> Self {
        self.sessions = 2;
        self.second_session.extend(wants(pairs));
        self
    }

    fn code(mut self, code: u64) -> Self {
        self.code = code;
        self
    }

    fn error(mut self, code: u64, description: &str) -> Self {
        self.code = code;
        self.description = Some(description.to_owned());
        self
    }

    fn json(mut self, key: &'static str, value: Value) -> Self {
        self.session.push((key, Want::Json(value)));
        self
    }

    /// The keys this case checks, for the report: `SESSION{..} INIT{..} ERROR{..}`.
    fn checked_keys(&self) -> String {
        let keys = |wants: &[(&'static str, Want)]| -> String {
            wants.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",")
        };
        let mut out = format!(
            "SESSION{{{}}} INIT{{{}}}",
            keys(&self.session_wants()),
            keys(&self.init_wants())
        );
        if self.sources.is_some() {
            out.push_str(" sources()");
        }
        if !self.second_session.is_empty() {
            out.push_str(&format!(" SESSION#2{{{}}}", keys(&self.second_session)));
        }
        out.push_str(&format!(" ERROR{{Code={}", self.code));
        if self.description.is_some() {
            out.push_str(",Description");
        }
        out.push('}');
        out
    }

    /// Everything checked in the first `SESSION`: the automatic keys, then the case's own
    /// (which replace automatic ones of the same name).
    fn session_wants(&self) -> Vec<(&'static str, Want)> {
        merge(self.automatic(), &self.session)
    }

    /// Everything checked in the first `INIT`: `Direction` and `Cookie` from the spec, then
    /// the case's own.
    fn init_wants(&self) -> Vec<(&'static str, Want)> {
        let automatic = self
            .automatic()
            .into_iter()
            .filter(|(k, _)| matches!(*k, "Direction" | "Cookie"))
            .collect();
        merge(automatic, &self.init)
    }

    /// The checks every case gets from its own spec: `Direction`, `User`, `Host`, `TCPPort`,
    /// `Cookie` (absent without one). A key the case lists itself wins.
    fn automatic(&self) -> Vec<(&'static str, Want)> {
        let s = &self.spec;
        let text = |key: &str| match &s[key] {
            Value::String(v) => Some(v.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let mut auto = Vec::new();
        let direction = match text("direction").as_deref() {
            Some("send") => "Send",
            _ => "Receive",
        };
        auto.push(("Direction", Want::Is(direction.into())));
        if let Some(user) = text("remote_user") {
            auto.push(("User", Want::Is(user)));
        }
        auto.push((
            "Host",
            Want::Is(text("remote_host").expect("every case has a host")),
        ));
        auto.push((
            "TCPPort",
            Want::Is(text("ssh_port").expect("every case has an ssh_port")),
        ));
        auto.push((
            "Cookie",
            text("cookie")
                .filter(|c| !c.is_empty())
                .map_or(Want::Absent, Want::Is),
        ));
        auto
    }

    /// Render, run, check. `Err` holds every mismatch of the case and the full evidence.
    fn run(&self, ascp: &Path, ctx: &Ctx) -> Result<Duration, String> {
        let spec = TransferSpec::from_json_value(self.spec.clone())
            .map_err(|e| format!("spec does not read: {e}\nspec: {}", self.spec))?;
        let options = self
            .options
            .clone()
            .with_program(ascp)
            .with_workdir(&ctx.dir);
        let rendered = spec
            .render(&options)
            .map_err(|e| format!("render failed: {e}\nspec: {}", self.spec))?;
        let run = kit_command(&rendered)
            .run()
            .map_err(|e| format!("cannot run ascp: {e}"))?;
        let elapsed = run.elapsed;

        // 1. Accepted: connected, INIT and SESSION sent.
        if !run.connected {
            return Err(format!(
                "ascp refused the command line (no management connection)\n{}",
                describe(&rendered, &run)
            ));
        }
        let frames =
            parse_frames(&run.mgmt).map_err(|e| format!("{e}\n{}", describe(&rendered, &run)))?;
        let mut problems: Vec<String> = Vec::new();
        if run.timed_out {
            problems.push("ascp timed out".into());
        }
        if run.code() != Some(1) {
            problems.push(format!("exit status {:?}, expected 1", run.status));
        }
        let inits = frames_of(&frames, "INIT");
        let sessions = frames_of(&frames, "SESSION");
        if inits.len() != self.sessions || sessions.len() != self.sessions {
            problems.push(format!(
                "{} INIT and {} SESSION frames, expected {} of each",
                inits.len(),
                sessions.len(),
                self.sessions
            ));
        }

        // 2. The echoes.
        let (init_wants, session_wants) = (self.init_wants(), self.session_wants());
        if let Some(init) = inits.first() {
            check_fields("INIT", init, &init_wants, &mut problems);
        }
        if let Some(session) = sessions.first() {
            check_fields("SESSION", session, &session_wants, &mut problems);
            if let (Some(init), Some(id)) = (inits.first(), session.get("SessionId")) {
                if init.get("SessionId") != Some(id) {
                    problems.push(format!(
                        "SESSION SessionId {id:?} differs from INIT's {:?}",
                        init.get("SessionId")
                    ));
                }
            }
            if let Some(expected) = &self.sources {
                match Message::from_frame(session) {
                    Ok(Message::Session(typed)) => {
                        let got: Vec<String> = typed.sources().map(|s| s.into_owned()).collect();
                        if &got != expected {
                            problems.push(format!(
                                "Session::sources() = {got:?}, expected {expected:?}"
                            ));
                        }
                    }
                    other => problems.push(format!("SESSION reads as {other:?}")),
                }
            }
        }
        if let Some(second) = sessions.get(1) {
            check_fields(
                "second SESSION",
                second,
                &self.second_session,
                &mut problems,
            );
        }

        // 3. The end: ERROR frames with the expected code, the last frame being one.
        let errors = frames_of(&frames, "ERROR");
        if errors.is_empty() {
            problems.push("no ERROR frame".into());
        }
        for error in &errors {
            match Message::from_frame(error) {
                Ok(Message::Error(e)) => {
                    if e.code != Some(self.code) {
                        problems.push(format!(
                            "ERROR Code {:?} ({:?}), expected {}",
                            e.code, e.description, self.code
                        ));
                    }
                    if let Some(want) = &self.description {
                        if e.description != Some(want.as_str()) {
                            problems.push(format!(
                                "ERROR Description {:?}, expected {want:?}",
                                e.description
                            ));
                        }
                    }
                }
                other => problems.push(format!("ERROR reads as {other:?}")),
            }
        }
        if frames.last().and_then(Frame::type_name) != Some("ERROR") {
            problems.push(format!(
                "last frame is {:?}, expected ERROR",
                frames.last().and_then(Frame::type_name)
            ));
        }

        if problems.is_empty() {
            Ok(elapsed)
        } else {
            Err(format!(
                "{} mismatch(es):\n  - {}\nspec: {}\n{}",
                problems.len(),
                problems.join("\n  - "),
                self.spec,
                describe(&rendered, &run)
            ))
        }
    }
}

/// `automatic` without the keys `own` names, followed by `own`.
fn merge(
    automatic: Vec<(&'static str, Want)>,
    own: &[(&'static str, Want)],
) -> Vec<(&'static str, Want)> {
    let mut all: Vec<(&'static str, Want)> = automatic
        .into_iter()
        .filter(|(k, _)| !own.iter().any(|(key, _)| key == k))
        .collect();
    all.extend(own.iter().cloned());
    all
}

fn check_fields(what: &str, frame: &Frame, wants: &[(&str, Want)], problems: &mut Vec<String>) {
    for (key, want) in wants {
        let got = frame.get(key);
        match want {
            Want::Is(value) if got != Some(value.as_str()) => {
                problems.push(format!("{what} {key}: got {got:?}, expected {value:?}"));
            }
            Want::Json(value) => {
                let parsed = got.and_then(|g| serde_json::from_str::<Value>(g).ok());
                if parsed.as_ref() != Some(value) {
                    problems.push(format!(
                        "{what} {key}: got {got:?}, expected JSON equal to {value}"
                    ));
                }
            }
            Want::Absent if got.is_some() => {
                problems.push(format!("{what} {key}: got {got:?}, expected no such field"));
            }
            _ => {}
        }
    }
}

/// The cases. Every value is checked against what ascp echoes, not against the argv.
fn cases(ctx: &Ctx) -> Vec<Case> {
    let p = |rel: &str| ctx.path(rel);
    let http_port = ctx.closed_http_port.to_string();
    let tags = json!({"aspera": {"xfer_id": "5b1c9f2e-xfer", "xfer_retry": 3600}});
    let tags_text = r#"{"aspera":{"xfer_id":"5b1c9f2e-xfer","xfer_retry":3600}}"#;
    vec![
        // --- Where and who ---------------------------------------------------------------
        case("send_minimal", ctx.spec(json!({})))
            .session(&[
                ("Source", &p("src/report.txt")),
                ("Destination", &p("inbox")),
                ("Operation", "Transfer"),
                ("Remote", "No"),
            ])
            .sources(&[&p("src/report.txt")])
            .init(&[("Operation", "Transfer")]),
        // Nothing optional in the spec: ascp keeps its own defaults.
        case("defaults_untouched", ctx.spec(json!({})))
            .session(&[
                ("Port", "33001"),
                ("Rate", "10000"),
                ("MinRate", "0"),
                ("Adaptive", "Adaptive"),
                ("Priority", "2"),
                ("Encryption", "Yes"),
                ("Cipher", "aes-128"),
                ("ResumePolicy", "policy_none"),
                ("CreatePolicy", "0"),
                ("Precalc", "No"),
                ("Keepalive", "No"),
                ("DatagramSize", "0"),
                ("ClusterNumNodes", "1"),
                ("ClusterNodeId", "0"),
                ("FilesEncrypt", "No"),
                ("TimePolicy", "0"),
            ])
            .absent(&[
                "FallbackProtocol",
                "Tags",
                "XferId",
                "Token",
                "SourcePrefix",
            ]),
        case(
            "receive",
            ctx.spec(json!({
                "direction": "receive",
                "remote_user": "download-user",
                "paths": [{"source": "/remote/outbox/data.bin"}],
                "destination_root": p("downloads"),
            })),
        )
        .session(&[
            ("Source", "/remote/outbox/data.bin"),
            ("Destination", &p("downloads")),
        ])
        .init(&[("Direction", "Receive")]),
        case(
            "receive_alias_recv_several_sources",
            ctx.spec(json!({
                "direction": "recv",
                "paths": [{"source": "/remote/a.txt"}, {"source": "/remote/b c.txt"}],
                "destination_root": p("downloads"),
            })),
        )
        .session(&[
            ("Direction", "Receive"),
            ("Source", "/remote/a.txt\t/remote/b c.txt"),
        ])
        .sources(&["/remote/a.txt", "/remote/b c.txt"]),
        case(
            "ports_and_user",
            ctx.spec(json!({"fasp_port": 40001, "remote_user": "aspera_user_1"})),
        )
        .session(&[("Port", "40001"), ("User", "aspera_user_1")]),
        // Real nodes send ports as strings.
        case(
            "ports_as_strings",
            ctx.spec(json!({"ssh_port": ctx.ssh_port.to_string(), "fasp_port": "40002"})),
        )
        .session(&[("Port", "40002")]),
        // --- Rates and policies ------------------------------------------------------------
        case("target_rate", ctx.spec(json!({"target_rate_kbps": 50000})))
            .session(&[("Rate", "50000")]),
        case(
            "target_and_min_rate",
            ctx.spec(json!({"target_rate_kbps": 80000, "min_rate_kbps": 20000})),
        )
        .session(&[("Rate", "80000"), ("MinRate", "20000")]),
        case(
            "rate_at_ceiling",
            ctx.spec(json!({"target_rate_kbps": 1_000_000_000_000_u64, "min_rate_kbps": "5000"})),
        )
        .session(&[("Rate", "1000000000000"), ("MinRate", "5000")]),
        case("policy_fixed", ctx.spec(json!({"rate_policy": "fixed"})))
            .session(&[("Adaptive", "Fixed")]),
        case("policy_high", ctx.spec(json!({"rate_policy": "high"})))
            .session(&[("Adaptive", "Adaptive"), ("Priority", "1")]),
        case(
            "policy_fair_uppercase",
            ctx.spec(json!({"rate_policy": "FAIR", "rate_policy_allowed": "fixed"})),
        )
        .session(&[("Adaptive", "Adaptive"), ("Priority", "2")]),
        case("policy_low", ctx.spec(json!({"rate_policy": "low"})))
            .session(&[("Adaptive", "Trickle")]),
        // --- Encryption --------------------------------------------------------------------
        case("cipher_none", ctx.spec(json!({"cipher": "none"})))
            .session(&[("Encryption", "No"), ("Cipher", "none")]),
        case("cipher_aes128", ctx.spec(json!({"cipher": "aes-128"})))
            .session(&[("Encryption", "Yes"), ("Cipher", "aes-128")]),
        case("cipher_aes192", ctx.spec(json!({"cipher": "aes-192"})))
            .session(&[("Encryption", "Yes"), ("Cipher", "aes-192")]),
        case("cipher_aes256", ctx.spec(json!({"cipher": "aes-256"})))
            .session(&[("Encryption", "Yes"), ("Cipher", "aes-256")]),
        // The CFB spelling of node specs maps onto ascp 3.9's plain name.
        case(
            "cipher_alias_aes256cfb",
            ctx.spec(json!({"cipher": "AES-256-CFB"})),
        )
        .session(&[("Encryption", "Yes"), ("Cipher", "aes-256")]),
        // --- Sources and destinations -----------------------------------------------------
        case(
            "file_list_several_sources",
            ctx.spec(json!({"paths": [
                {"source": p("src/a.txt")},
                {"source": p("src/b.txt")},
                {"source": p("src/c.txt")},
            ]})),
        )
        .session(&[(
            "Source",
            &format!("{}\t{}\t{}", p("src/a.txt"), p("src/b.txt"), p("src/c.txt")),
        )])
        .sources(&[&p("src/a.txt"), &p("src/b.txt"), &p("src/c.txt")]),
        case(
            "source_root_prefix",
            ctx.spec(json!({"source_root": "/srv/outbox", "paths": [{"source": "report.txt"}]})),
        )
        .session(&[
            ("Source", "/srv/outbox/report.txt"),
            ("SourcePrefix", "/srv/outbox"),
        ]),
        case(
            "source_root_prefix_file_list",
            ctx.spec(json!({"source_root": "/srv/outbox", "paths": [
                {"source": "a.txt"},
                {"source": "/sub/b c.txt"},
            ]})),
        )
        .session(&[("Source", "/srv/outbox/a.txt\t/srv/outbox/sub/b c.txt")]),
        case(
            "path_with_spaces",
            ctx.spec(json!({
                "paths": [{"source": p("src/my report 2024.txt")}],
                "destination_root": p("in box/q 1"),
            })),
        )
        .session(&[
            ("Source", &p("src/my report 2024.txt")),
            ("Destination", &p("in box/q 1")),
        ]),
        // After `--`, a leading dash is a file name, not an option.
        case(
            "path_with_leading_dash",
            ctx.spec(json!({"paths": [{"source": "-rf"}], "destination_root": p("-inbox")})),
        )
        .session(&[("Source", "-rf"), ("Destination", &p("-inbox"))]),
        case(
            "path_utf8",
            ctx.spec(json!({
                "paths": [{"source": p("src/données/résumé été 😀.txt")}],
                "destination_root": p("réception/日本"),
            })),
        )
        .session(&[
            ("Source", &p("src/données/résumé été 😀.txt")),
            ("Destination", &p("réception/日本")),
        ])
        .sources(&[&p("src/données/résumé été 😀.txt")]),
        // A relative `a:b` would be read as host `a`: rendered `./a:b`, echoed as given.
        case(
            "path_with_colon_space",
            ctx.spec(json!({"paths": [{"source": "notes: draft.txt"}]})),
        )
        .session(&[("Source", "notes: draft.txt")]),
        case(
            "path_host_like_and_absolute_colon",
            ctx.spec(json!({"paths": [
                {"source": "srv:a.txt"},
                {"source": "/abs/x:y.txt"},
            ]})),
        )
        .session(&[("Source", "srv:a.txt\t/abs/x:y.txt")]),
        case(
            "file_pair_list",
            ctx.spec(json!({"paths": [
                {"source": p("src/a.txt"), "destination": "renamed-a.txt"},
                {"source": p("src/b c.txt"), "destination": "sub dir/b.txt"},
            ]})),
        )
        .session(&[
            (
                "Source",
                &format!("{}\t{}", p("src/a.txt"), p("src/b c.txt")),
            ),
            ("Destination", &p("inbox")),
        ]),
        // One path with a destination still uses a pair list (exact target name).
        case(
            "file_pair_list_single_with_source_root",
            ctx.spec(json!({
                "source_root": "/srv/outbox",
                "paths": [{"source": "a.txt", "destination": "b.txt"}],
            })),
        )
        .session(&[
            ("Source", "/srv/outbox/a.txt"),
            ("Destination", &p("inbox")),
        ]),
        // --- Secrets and tags ----------------------------------------------------------------
        // (The code-44 ERROR frame carries no Cookie: ascp echoes it in INIT and SESSION.)
        case(
            "cookie_in_init_and_session",
            ctx.spec(json!({"cookie": "app=fasp-rs; job=42: été"})),
        )
        .init(&[("Cookie", "app=fasp-rs; job=42: été")])
        .session(&[("Cookie", "app=fasp-rs; job=42: été")]),
        // Without HTTP fallback the token is not echoed (it is for the server only).
        case(
            "token_not_echoed_over_ssh",
            ctx.spec(json!({"token": "Basic dG9rZW4tdmFsdWU="})),
        )
        .absent(&["Token"]),
        case("tags_xfer_id", ctx.spec(json!({"tags": tags.clone()}))).session(&[
            ("Tags", tags_text),
            ("XferId", "5b1c9f2e-xfer"),
            ("XferRetry", "3600"),
        ]),
        case("tags64_xfer_id", ctx.spec(json!({"tags": tags.clone()})))
            .options(RenderOptions::new().with_tags_encoding(TagsEncoding::Base64))
            .session(&[
                ("Tags", tags_text),
                ("XferId", "5b1c9f2e-xfer"),
                ("XferRetry", "3600"),
            ]),
        // `--tags` is rendered with `\uXXXX` escapes for non-ASCII characters; ascp echoes
        // that text as is (so `Tags` is equal as JSON, not as text) and decodes it for
        // `XferId`.
        case(
            "tags_utf8_json",
            ctx.spec(json!({"tags": {"note": "été 😀", "aspera": {"xfer_id": "été-1"}}})),
        )
        .json(
            "Tags",
            json!({"note": "été 😀", "aspera": {"xfer_id": "été-1"}}),
        )
        .session(&[("XferId", "été-1")]),
        // `--tags64` carries the UTF-8 bytes: ascp echoes them verbatim.
        case(
            "tags_utf8_base64",
            ctx.spec(json!({"tags": {"note": "été 😀", "aspera": {"xfer_id": "été-1"}}})),
        )
        .options(RenderOptions::new().with_tags_encoding(TagsEncoding::Base64))
        .session(&[
            ("Tags", r#"{"note":"été 😀","aspera":{"xfer_id":"été-1"}}"#),
            ("XferId", "été-1"),
        ]),
        // --- Session behaviour --------------------------------------------------------------
        case(
            "keepalive",
            ctx.spec(json!({"keepalive": true, "paths": []})),
        )
        .session(&[("Keepalive", "Yes"), ("Destination", &p("inbox"))])
        .absent(&["Source"]),
        case("precalc", ctx.spec(json!({"precalculate_job_size": true})))
            .session(&[("Precalc", "Yes")]),
        case("resume_none", ctx.spec(json!({"resume_policy": "none"})))
            .session(&[("ResumePolicy", "policy_none")]),
        case("resume_attrs", ctx.spec(json!({"resume_policy": "attrs"})))
            .session(&[("ResumePolicy", "policy_attrs")]),
        case(
            "resume_sparse_csum",
            ctx.spec(json!({"resume_policy": "sparse_checksum"})),
        )
        .session(&[("ResumePolicy", "policy_sparse_csum_old")]),
        case(
            "resume_full_csum",
            ctx.spec(json!({"resume_policy": "full_csum"})),
        )
        .session(&[("ResumePolicy", "policy_full_csum")]),
        case("create_dir", ctx.spec(json!({"create_dir": true}))).session(&[("CreatePolicy", "8")]),
        case("create_dir_false", ctx.spec(json!({"create_dir": "false"})))
            .session(&[("CreatePolicy", "0")]),
        case("dgram_size", ctx.spec(json!({"dgram_size": 1400})))
            .session(&[("DatagramSize", "1400")]),
        case("preserve_times", ctx.spec(json!({"preserve_times": true})))
            .session(&[("TimePolicy", "7")]),
        case(
            "content_protection_encrypt",
            ctx.spec(json!({
                "content_protection": "encrypt",
                "content_protection_password": "file-pass 42",
            })),
        )
        .session(&[("FilesEncrypt", "Yes"), ("FilesDecrypt", "No")]),
        case(
            "multi_session_part_1_of_2",
            ctx.spec(json!({"multi_session": 2})),
        )
        .options(RenderOptions::new().with_multi_session_part(1, 2))
        .session(&[("ClusterNumNodes", "2"), ("ClusterNodeId", "0")]),
        case(
            "multi_session_part_3_of_4",
            ctx.spec(json!({"multi_session": 4})),
        )
        .options(RenderOptions::new().with_multi_session_part(3, 4))
        .session(&[("ClusterNumNodes", "4"), ("ClusterNodeId", "2")]),
        // Fallback on: with the SSH port closed ascp goes to HTTP at once (second session
        // on the fallback port), where nothing listens either.
        case(
            "http_fallback_true",
            ctx.spec(json!({
                "http_fallback": true,
                "http_fallback_port": http_port,
                "cipher": "none",
            })),
        )
        .session(&[("FallbackProtocol", "http"), ("Encryption", "No")])
        .second_session(&[("Port", &http_port), ("Source", &p("src/report.txt"))])
        .code(NO_HTTP_LISTENER),
        // Options ascp echoes only indirectly (or not at all): accepted as a whole.
        case(
            "accepted_options",
            ctx.spec(json!({
                "overwrite": "diff+older",
                "symlink_policy": "follow",
                "file_checksum": "sha256",
                "multi_session_threshold": 1_000_000,
                "preserve_file_owner_uid": true,
                "preserve_xattrs": "metafile",
                "preserve_remote_xattrs": "metafile",
                "remove_empty_directories": true,
                "save_before_overwrite": true,
                "skip_special_files": true,
                "partial_file_suffix": ".partial",
                "file_manifest": "text",
                "file_manifest_path": p("manifests"),
                "exclude_older_than": 1_600_000_000,
                "sshfp": "SHA256:AAAAfakefingerprintAAAA",
            })),
        )
        .session(&[
            ("FileChecksumType", "none"),
            ("ManifestPolicy", "manifest_text"),
            ("ManifestPath", &p("manifests")),
            ("PartialFiles", ".partial"),
        ]),
        // `-i` reaches ascp: it looks for the key before connecting, and says so (code 4).
        case(
            "ssh_private_key_path_missing",
            ctx.spec(json!({"ssh_private_key_path": p("keys/id_rsa")})),
        )
        .error(
            4,
            &format!("Private key file not found at path {}", p("keys/id_rsa")),
        ),
        // Nearly everything at once, from a pair list.
        case(
            "everything_together",
            ctx.spec(json!({
                "remote_user": "xfer_all",
                "fasp_port": 40003,
                "cipher": "aes-192",
                "rate_policy": "high",
                "target_rate_kbps": 250000,
                "min_rate_kbps": 1000,
                "resume_policy": "full_csum",
                "create_dir": true,
                "precalculate_job_size": true,
                "dgram_size": 9000,
                "preserve_times": true,
                "cookie": "together",
                "token": "ATM_together",
                "source_root": "/srv/out",
                "tags": {"aspera": {"xfer_id": "all-1", "xfer_retry": 60}},
                "paths": [
                    {"source": "a b.txt", "destination": "x.txt"},
                    {"source": "-c.txt", "destination": "y.txt"},
                ],
            })),
        )
        .options(RenderOptions::new().with_multi_session_part(2, 2))
        .init(&[("Cookie", "together")])
        .session(&[
            ("User", "xfer_all"),
            ("Port", "40003"),
            ("Encryption", "Yes"),
            ("Cipher", "aes-192"),
            ("Adaptive", "Adaptive"),
            ("Priority", "1"),
            ("Rate", "250000"),
            ("MinRate", "1000"),
            ("ResumePolicy", "policy_full_csum"),
            // A bit mask: 8 for `-d`, and ascp adds 1 when `-p` is given.
            ("CreatePolicy", "9"),
            ("Precalc", "Yes"),
            ("DatagramSize", "9000"),
            ("TimePolicy", "7"),
            ("Source", "/srv/out/a b.txt\t/srv/out/-c.txt"),
            ("Destination", &p("inbox")),
            ("XferId", "all-1"),
            ("XferRetry", "60"),
            ("ClusterNumNodes", "2"),
            ("ClusterNodeId", "1"),
        ])
        .absent(&["Token"]),
    ]
}

#[test]
fn session_echoes_what_the_spec_asked_for() {
    let ascp = require_real_ascp!();
    let dir = test_dir("table");
    let (ssh, http) = (ClosedPort::new(), ClosedPort::new());
    let ctx = Ctx {
        dir: dir.path().to_owned(),
        ssh_port: ssh.port,
        closed_http_port: http.port,
    };
    let cases = cases(&ctx);
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let names: std::collections::BTreeSet<_> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Duration, String>)>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..WORKERS.min(cases.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let result = case.run(&ascp, &ctx);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, result));
                }
            });
        }
    });
    let wall = started.elapsed();
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    assert_eq!(results.len(), cases.len());

    let mut failures = Vec::new();
    for (i, result) in &results {
        let case = &cases[*i];
        match result {
            Ok(elapsed) => eprintln!(
                "ok   {:<40} {:>4} ms  {}",
                case.name,
                elapsed.as_millis(),
                case.checked_keys()
            ),
            Err(e) => {
                eprintln!("FAIL {}", case.name);
                failures.push(format!("=== case {}: {e}", case.name));
            }
        }
    }
    eprintln!(
        "{} cases, {} failed, {:?} wall time with {WORKERS} workers",
        cases.len(),
        failures.len(),
        wall
    );
    assert_no_leftover(&dir.path().to_string_lossy());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP fallback: the token in the environment, not on the command line.
// ---------------------------------------------------------------------------------------------

#[test]
fn http_fallback_token_travels_in_env_only() {
    let ascp = require_real_ascp!();
    let dir = test_dir("fallback");
    let source = dir.path().join("report.txt");
    std::fs::write(&source, b"hello from the conformance test\n").expect("write source");
    // Characters XML would escape, to show that nothing on our side mangles the token.
    let token = "ATM3_conformance-<tok>&\"secret\"-7f3a";
    let http = HttpCapture::holding().expect("http capture");
    let ssh = ClosedPort::new();
    let spec = TransferSpec::from_json_value(json!({
        "direction": "send",
        "remote_host": "127.0.0.1",
        "remote_user": "xfer",
        "ssh_port": ssh.port,
        "http_fallback": "force",
        "http_fallback_port": http.port(),
        "http_fallback_protocol": "http",
        "cipher": "none",
        "token": token,
        "paths": [{"source": source.to_string_lossy()}],
        "destination_root": "/inbox",
    }))
    .expect("spec");
    let rendered = spec
        .render(
            &RenderOptions::new()
                .with_program(&ascp)
                .with_workdir(dir.path()),
        )
        .expect("render");

    // The rendered command: -y F, -t, -T, the token in env only.
    let args: Vec<String> = rendered
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for needle in ["-y", "F", "-t", "-T"] {
        assert!(args.iter().any(|a| a == needle), "{needle} not in {args:?}");
    }
    assert!(
        !args
            .iter()
            .any(|a| a.contains(token) || a.contains("secret") || a.contains("ATM3")),
        "token in argv: {args:?}"
    );
    assert_eq!(
        rendered.env.get("ASPERA_SCP_TOKEN").map(|s| s.expose()),
        Some(token)
    );
    assert!(!format!("{rendered:?}").contains("secret"));

    let mut proc = kit_command(&rendered).spawn().expect("spawn ascp");
    // ascp now waits for our held answer: it is certainly alive while we look at /proc.
    let reqs = http.wait_for_requests(1, TIMEOUT);
    assert!(
        !reqs.is_empty(),
        "no HTTP request arrived; argv {}; mgmt so far:\n{}",
        args_text(&rendered),
        String::from_utf8_lossy(&proc.mgmt_so_far())
    );
    assert!(!proc.has_exited(), "ascp exited while its request was held");
    let cmdline = proc.cmdline().expect("read cmdline");
    assert!(
        cmdline.iter().any(|a| a == "-y") && cmdline.iter().any(|a| a == "-T"),
        "cmdline not read from the live process: {cmdline:?}"
    );
    assert!(!proc.cmdline_contains(token).expect("cmdline"));
    assert!(!proc.cmdline_contains("secret").expect("cmdline"));
    assert!(
        proc.environ_contains(&format!("ASPERA_SCP_TOKEN={token}"))
            .expect("environ"),
        "the token is not in /proc/{}/environ",
        proc.pid()
    );
    http.release();
    let run = proc.wait().expect("wait ascp");
    let all_requests = http.wait_for_requests(2, Duration::from_secs(5));

    // The token reached the fallback server, verbatim, in the session_start body.
    let start = &reqs[0];
    assert!(
        start.request_line().starts_with("POST ")
            && start.request_line().contains("/session_start/"),
        "{start:#?}"
    );
    assert!(
        start
            .body_text()
            .contains(&format!("<token>{token}</token>")),
        "token not in the request body: {start:#?}"
    );

    // Two sessions on one management connection; the HTTP one echoes the token.
    let frames = parse_frames(&run.mgmt).unwrap_or_else(|e| panic!("{e}\n{run:#?}"));
    let inits = frames_of(&frames, "INIT");
    let sessions = frames_of(&frames, "SESSION");
    assert_eq!(inits.len(), 2, "{run:#?}");
    assert_eq!(sessions.len(), 2, "{run:#?}");
    assert_eq!(sessions[0].get("Token"), None, "{run:#?}");
    assert_eq!(sessions[1].get("Token"), Some(token), "{run:#?}");
    match Message::from_frame(sessions[1]) {
        Ok(Message::Session(s)) => {
            assert_eq!(s.token.map(|t| t.expose()), Some(token));
            assert_eq!(s.port, Some(u64::from(http.port())));
            assert_eq!(s.encryption, Some(false));
        }
        other => panic!("second SESSION reads as {other:?}"),
    }
    // With `-y F` the first (SSH) session names no source; the HTTP one does.
    assert_eq!(
        sessions[0].get("FallbackProtocol"),
        Some("http"),
        "{run:#?}"
    );
    assert_eq!(sessions[0].get("Cipher"), Some("none"), "{run:#?}");
    assert_eq!(sessions[0].get("Destination"), Some("/inbox"), "{run:#?}");
    assert_eq!(
        sessions[1].get("Source"),
        Some(source.to_string_lossy().as_ref()),
        "{run:#?}"
    );
    // The capture answered 403: both sessions end with code 5.
    let errors = frames_of(&frames, "ERROR");
    assert!(!errors.is_empty(), "{run:#?}");
    for error in errors {
        assert_eq!(
            error.get("Code"),
            Some(HTTP_REFUSED.to_string().as_str()),
            "{run:#?}"
        );
    }
    assert_eq!(frames.last().and_then(Frame::type_name), Some("ERROR"));
    assert_eq!(run.code(), Some(1), "{run:#?}");
    assert!(!run.timed_out, "{run:#?}");
    // Nothing else carried the token: not the HTTP heads, not the output.
    for req in &all_requests {
        assert!(
            !req.head().contains(token),
            "token in an HTTP head: {req:#?}"
        );
    }
    assert!(!run.stderr.contains(token) && !run.stdout.contains(token));
    drop(http);
    assert_no_leftover(&dir.path().to_string_lossy());
}

// ---------------------------------------------------------------------------------------------
// Refused before ascp runs.
// ---------------------------------------------------------------------------------------------

/// Where a bad spec was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Stage {
    /// Reading the JSON (values a `TransferSpec` cannot hold: unknown enumerations,
    /// negative numbers, ports beyond 65535).
    Read,
    /// `render()` (its `validate()`, or the render options).
    Render,
}

#[test]
fn invalid_specs_are_refused_before_ascp_runs() {
    let dir = test_dir("negative");
    let ctx = Ctx {
        dir: dir.path().to_owned(),
        ssh_port: 33001,
        closed_http_port: 8080,
    };
    let p = |rel: &str| ctx.path(rel);
    let options = || RenderOptions::new().with_workdir(dir.path());
    let long_tags = json!({"k": "x".repeat(fasp_spec::MAX_TAGS_BYTES)});
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, Value, RenderOptions, Stage, &str)> = vec![
        (
            "unknown policy",
            ctx.spec(json!({"rate_policy": "turbo"})),
            options(),
            Stage::Read,
            "rate_policy",
        ),
        (
            "negative rate",
            ctx.spec(json!({"target_rate_kbps": -1})),
            options(),
            Stage::Read,
            "target_rate_kbps",
        ),
        (
            "rate above the ceiling",
            ctx.spec(json!({"target_rate_kbps": 1_000_000_000_001_u64})),
            options(),
            Stage::Render,
            "target_rate_kbps",
        ),
        (
            "min above target",
            ctx.spec(json!({"target_rate_kbps": 1000, "min_rate_kbps": 2000})),
            options(),
            Stage::Render,
            "min_rate_kbps",
        ),
        (
            "policy beyond the allowed one",
            ctx.spec(json!({"rate_policy": "fixed", "rate_policy_allowed": "fair"})),
            options(),
            Stage::Render,
            "rate_policy",
        ),
        (
            "destination on only some paths",
            ctx.spec(json!({"paths": [
                {"source": p("a"), "destination": "x"},
                {"source": p("b")},
            ]})),
            options(),
            Stage::Render,
            "paths[1].destination",
        ),
        (
            "line feed in token",
            ctx.spec(json!({"token": "ATM3_abc\nInjected: yes"})),
            options(),
            Stage::Render,
            "token",
        ),
        (
            "carriage return in cookie",
            ctx.spec(json!({"cookie": "abc\rdef"})),
            options(),
            Stage::Render,
            "cookie",
        ),
        (
            "NUL in a path",
            ctx.spec(json!({"paths": [{"source": "/tmp/a\u{0}b"}]})),
            options(),
            Stage::Render,
            "paths[0].source",
        ),
        (
            "line feed in a destination",
            ctx.spec(json!({"paths": [
                {"source": p("a"), "destination": "x\ny"},
            ]})),
            options(),
            Stage::Render,
            "paths[0].destination",
        ),
        (
            "line feed in destination_root",
            ctx.spec(json!({"destination_root": "/in\nbox"})),
            options(),
            Stage::Render,
            "destination_root",
        ),
        (
            "ssh port 0",
            ctx.spec(json!({"ssh_port": 0})),
            options(),
            Stage::Render,
            "ssh_port",
        ),
        (
            "ssh port 70000",
            ctx.spec(json!({"ssh_port": 70000})),
            options(),
            Stage::Read,
            "ssh_port",
        ),
        (
            "fasp port 0",
            ctx.spec(json!({"fasp_port": "0"})),
            options(),
            Stage::Render,
            "fasp_port",
        ),
        (
            "fallback port 0 with fallback on",
            ctx.spec(json!({"http_fallback": true, "http_fallback_port": 0, "cipher": "none"})),
            options(),
            Stage::Render,
            "http_fallback_port",
        ),
        (
            "unknown cipher",
            ctx.spec(json!({"cipher": "aes-512"})),
            options(),
            Stage::Read,
            "cipher",
        ),
        (
            "content_protection without password",
            ctx.spec(json!({"content_protection": "encrypt"})),
            options(),
            Stage::Render,
            "content_protection_password",
        ),
        (
            "tags too long",
            ctx.spec(json!({"tags": long_tags})),
            options(),
            Stage::Render,
            "tags",
        ),
        (
            "datagram size too small",
            ctx.spec(json!({"dgram_size": 100})),
            options(),
            Stage::Render,
            "dgram_size",
        ),
        (
            "no direction",
            ctx.spec(json!({"direction": null})),
            options(),
            Stage::Render,
            "direction",
        ),
        (
            "unknown direction",
            ctx.spec(json!({"direction": "sideways"})),
            options(),
            Stage::Read,
            "direction",
        ),
        (
            "blank host",
            ctx.spec(json!({"remote_host": "  "})),
            options(),
            Stage::Render,
            "remote_host",
        ),
        (
            "no paths",
            ctx.spec(json!({"paths": []})),
            options(),
            Stage::Render,
            "paths",
        ),
        (
            "fallback protocol against the cipher",
            ctx.spec(json!({
                "http_fallback": true,
                "http_fallback_protocol": "http",
                "cipher": "aes-128",
            })),
            options(),
            Stage::Render,
            "http_fallback_protocol",
        ),
        (
            "delete_before_transfer with several paths",
            ctx.spec(json!({
                "delete_before_transfer": true,
                "paths": [{"source": p("a")}, {"source": p("b")}],
            })),
            options(),
            Stage::Render,
            "delete_before_transfer",
        ),
        (
            "proxy with a bad scheme",
            ctx.spec(json!({"proxy": "http://u:pw@proxy:9091"})),
            options(),
            Stage::Render,
            "proxy",
        ),
        (
            "multi-session part 3 of 2",
            ctx.spec(json!({})),
            options().with_multi_session_part(3, 2),
            Stage::Render,
            "RenderOptions::multi_session_part",
        ),
        (
            "several paths without a workdir",
            ctx.spec(json!({"paths": [{"source": p("a")}, {"source": p("b")}]})),
            RenderOptions::new(),
            Stage::Render,
            "RenderOptions::workdir",
        ),
    ];
    assert!(table.len() >= 10);

    let mut failures = Vec::new();
    for (name, value, options, stage, key) in table {
        let outcome: Result<AscpCommand, (Stage, SpecError)> =
            TransferSpec::from_json_value(value.clone())
                .map_err(|e| (Stage::Read, e))
                .and_then(|spec| spec.render(&options).map_err(|e| (Stage::Render, e)));
        match outcome {
            Ok(command) => failures.push(format!(
                "{name}: rendered instead of refused: {}",
                args_text(&command)
            )),
            Err((got_stage, err)) => {
                if err.key() != Some(key) || got_stage != stage {
                    failures.push(format!(
                        "{name}: refused at {got_stage:?} with key {:?} ({err}), expected {stage:?} with key {key:?}",
                        err.key()
                    ));
                }
                // Secrets never appear in the message.
                for secret in ["ATM3_abc", "abc\rdef", ":pw@"] {
                    if err.to_string().contains(secret) {
                        failures.push(format!("{name}: the error shows a secret: {err}"));
                    }
                }
            }
        }
    }
    // A refused render writes no file list.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if !left.is_empty() {
        failures.push(format!("refused renders left files behind: {left:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_no_leftover(&dir.path().to_string_lossy());
}
