//! A small manager for driving `ascp-sim` as a child process: a loopback listener bound
//! before the spawn, a reader thread that timestamps every frame, control frames written
//! back, and the child's exit status and output. The work folder, file patterns and STATS
//! series come from `fasp_testkit::sim`, shared with the other crates' tests.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fasp_mgmt_proto::{Control, Frame, FrameParser};

pub const SIM: &str = env!("CARGO_BIN_EXE_ascp-sim");

// Each test file uses part of these.
#[allow(unused_imports)]
pub use fasp_testkit::sim::{ROOT_ENV, STATS_INTERVAL_ENV, Work, num, series, stats_bytes};

/// One run of ascp-sim under a test manager.
pub struct Sim {
    pub child: Child,
    pub frames: Arc<Mutex<Vec<(Instant, Frame)>>>,
    pub errors: Arc<Mutex<usize>>,
    writer: Arc<Mutex<Option<TcpStream>>>,
    pub connected: Arc<AtomicBool>,
    pub eof: Arc<AtomicBool>,
    exited: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    pub started: Instant,
    pub port: u16,
}

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub frames: Vec<Frame>,
    pub times: Vec<Instant>,
    pub connected: bool,
    pub malformed: usize,
    pub elapsed: Duration,
}

impl Run {
    pub fn types(&self) -> Vec<String> {
        self.frames
            .iter()
            .map(|f| f.type_name().unwrap_or("").to_owned())
            .collect()
    }
    pub fn of(&self, t: &str) -> Vec<&Frame> {
        self.frames
            .iter()
            .filter(|f| f.type_name() == Some(t))
            .collect()
    }
    pub fn one(&self, t: &str) -> &Frame {
        let v = self.of(t);
        assert_eq!(v.len(), 1, "one {t} expected: {self:#?}");
        v[0]
    }
    pub fn last(&self) -> &Frame {
        self.frames.last().expect("no frame")
    }
}

pub struct Spawn<'a> {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<&'a Path>,
    pub mgmt: bool,
}

impl<'a> Spawn<'a> {
    pub fn new(args: &[&str]) -> Spawn<'a> {
        Spawn {
            program: PathBuf::from(SIM),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![(STATS_INTERVAL_ENV.into(), "50".into())],
            cwd: None,
            mgmt: true,
        }
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn root(self, w: &Work) -> Self {
        let r = w.root();
        self.env(ROOT_ENV, &r)
    }
    /// Run another binary (the real ascp) with the same arguments.
    pub fn program(mut self, p: &Path) -> Self {
        self.program = p.to_owned();
        self
    }
    pub fn cwd(mut self, p: &'a Path) -> Self {
        self.cwd = Some(p);
        self
    }
    pub fn no_mgmt(mut self) -> Self {
        self.mgmt = false;
        self
    }
    pub fn spawn(self) -> Sim {
        Sim::start(self)
    }
    pub fn run(self) -> Run {
        self.spawn().wait(Duration::from_secs(30))
    }
}

impl Sim {
    fn start(s: Spawn<'_>) -> Sim {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cmd = Command::new(&s.program);
        if s.mgmt {
            cmd.arg("-M").arg(port.to_string());
        }
        cmd.args(&s.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &s.env {
            cmd.env(k, v);
        }
        if let Some(d) = s.cwd {
            cmd.current_dir(d);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        let frames = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0));
        let writer = Arc::new(Mutex::new(None));
        let connected = Arc::new(AtomicBool::new(false));
        let eof = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let reader = {
            let (frames, errors, writer, connected, eof, exited) = (
                frames.clone(),
                errors.clone(),
                writer.clone(),
                connected.clone(),
                eof.clone(),
                exited.clone(),
            );
            thread::spawn(move || {
                let mut conn = loop {
                    // Look at the flag before accepting: a child that connected and exited
                    // left its connection in the backlog, and this accept still finds it.
                    let gone = exited.load(Ordering::SeqCst);
                    match listener.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if gone => return,
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                };
                conn.set_nonblocking(false).unwrap();
                *writer.lock().unwrap() = Some(conn.try_clone().unwrap());
                connected.store(true, Ordering::SeqCst);
                let mut parser = FrameParser::new();
                let mut buf = BytesMut::new();
                let mut chunk = [0u8; 65536];
                loop {
                    let n = match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        match parser.parse(&mut buf) {
                            Ok(Some(f)) => frames.lock().unwrap().push((Instant::now(), f)),
                            Ok(None) => break,
                            Err(_) => *errors.lock().unwrap() += 1,
                        }
                    }
                }
                eof.store(true, Ordering::SeqCst);
            })
        };
        Sim {
            child,
            frames,
            errors,
            writer,
            connected,
            eof,
            exited,
            reader: Some(reader),
            out,
            err,
            started,
            port,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until a frame matching `pred` has arrived (true) or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Frame) -> bool) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, f)) = self.frames.lock().unwrap().iter().find(|(_, f)| pred(f)) {
                return Some(f.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn wait_type(&self, t: &str, timeout: Duration) -> Frame {
        self.wait_for(timeout, |f| f.type_name() == Some(t))
            .unwrap_or_else(|| panic!("no {t} within {timeout:?}: {:#?}", self.snapshot()))
    }

    pub fn snapshot(&self) -> Vec<Frame> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    pub fn timed(&self) -> Vec<(Instant, Frame)> {
        self.frames.lock().unwrap().clone()
    }

    pub fn send(&self, c: &Control) {
        let mut out = BytesMut::new();
        c.encode(&mut out).unwrap();
        self.send_raw(&out);
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        let mut w = self.writer.lock().unwrap();
        w.as_mut().expect("not connected").write_all(bytes).unwrap();
    }

    /// Close our side of the management connection.
    pub fn hang_up(&self) {
        if let Some(w) = self.writer.lock().unwrap().take() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn terminate(&mut self) {
        let _ = nix_kill(self.child.id(), "TERM");
    }

    /// Wait for the child (killing it at `timeout`), then for the reader to see EOF.
    pub fn wait(mut self, timeout: Duration) -> Run {
        let deadline = self.started + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let s = self.child.wait().unwrap();
                panic!(
                    "ascp-sim did not exit within {timeout:?} ({s}); frames: {:#?}",
                    self.snapshot()
                );
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        self.exited.store(true, Ordering::SeqCst);
        // The child is gone, so its end of the connection is closed: the reader reaches
        // end-of-file (or finds no connection at all) and ends.
        let _ = self.reader.take().unwrap().join();
        self.hang_up();
        let connected = self.connected.load(Ordering::SeqCst);
        let stdout = self.out.take().unwrap().join().unwrap();
        let stderr = self.err.take().unwrap().join().unwrap();
        let timed = self.timed();
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            times: timed.iter().map(|(t, _)| *t).collect(),
            frames: timed.into_iter().map(|(_, f)| f).collect(),
            connected,
            malformed: *self.errors.lock().unwrap(),
            elapsed,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

fn nix_kill(pid: u32, sig: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
}

/// A loopback port where nothing listens, kept so for the life of the value: the local end
/// of an open connection (the kernel cannot hand it to a listener meanwhile).
pub struct ClosedPort {
    pub port: u16,
    _client: TcpStream,
    _server: TcpStream,
    _listener: TcpListener,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        ClosedPort {
            port: client.local_addr().unwrap().port(),
            _client: client,
            _server: server,
            _listener: listener,
        }
    }
}
