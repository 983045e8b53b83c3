//! Running an ascp with a management listener and capturing everything it says.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::procs;

/// Timeout of [`AscpInvocation`] when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the capture waits for the management socket to reach end-of-file once ascp
/// has exited (the kernel closes it at exit, so this is only a safety net).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How often waiting loops look at the child and the socket.
const POLL: Duration = Duration::from_millis(10);

/// Variables passed through from the test's own environment; everything else is cleared.
const KEPT_ENV: &[&str] = &["PATH", "HOME"];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A management listener on `127.0.0.1` with an ephemeral port.
///
/// It is bound and listening as soon as it exists, which is what ascp needs: it connects
/// to the port given with `-M` right after starting and exits with status 1
/// (`required management connection to port localhost:N failed.`) when nothing listens.
/// One capture serves one ascp: the first connection is accepted, later ones are ignored.
#[derive(Debug)]
pub struct MgmtCapture {
    listener: TcpListener,
    port: u16,
}

impl MgmtCapture {
    /// Bind `127.0.0.1:0` and listen.
    pub fn bind() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port })
    }

    /// The port to pass with `-M`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start `cmd` with `-M <port>` placed before its own arguments.
    pub fn spawn(self, cmd: &AscpInvocation) -> io::Result<AscpProcess> {
        let mut argv: Vec<OsString> = vec!["-M".into(), self.port.to_string().into()];
        argv.extend(cmd.args.iter().cloned());

        let mut command = Command::new(&cmd.program);
        command
            .args(&argv)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in KEPT_ENV {
            if let Some(v) = std::env::var_os(name) {
                command.env(name, v);
            }
        }
        for (k, v) in &cmd.env {
            command.env(k, v);
        }
        if let Some(dir) = &cmd.current_dir {
            command.current_dir(dir);
        }

        self.listener.set_nonblocking(true)?;
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", cmd.program.display()),
            )
        })?;
        let pid = child.id();
        let stdout = child.stdout.take().map(drain_pipe);
        let stderr = child.stderr.take().map(drain_pipe);

        let shared = Arc::new(Shared::default());
        let mgmt_thread = {
            let shared = Arc::clone(&shared);
            let listener = self.listener;
            thread::Builder::new()
                .name(format!("mgmt-capture-{pid}"))
                .spawn(move || serve_mgmt(&listener, &shared))?
        };

        Ok(AscpProcess {
            child,
            pid,
            argv,
            started,
            timeout: cmd.timeout,
            shared,
            mgmt_thread: Some(mgmt_thread),
            stdout,
            stderr,
        })
    }

    /// Start `cmd`, capture it to the end (or its timeout) and reap it.
    pub fn run(self, cmd: &AscpInvocation) -> io::Result<AscpRun> {
        self.spawn(cmd)?.wait()
    }
}

/// What the management thread and the test share.
#[derive(Default)]
struct Shared {
    /// Bytes read from the management connection so far.
    bytes: Mutex<Vec<u8>>,
    /// A second handle on the accepted connection, for writing control frames.
    stream: Mutex<Option<TcpStream>>,
    connected: AtomicBool,
    eof: AtomicBool,
    stop: AtomicBool,
}

/// Accept one connection, then read it to end-of-file or until told to stop.
fn serve_mgmt(listener: &TcpListener, shared: &Shared) {
    // Accept before looking at the stop flag: a short-lived ascp may have connected,
    // written everything and exited before this thread first looked, and its connection
    // (data and FIN included) then waits in the backlog.
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {}
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        thread::sleep(POLL);
    };
    // The accepted socket may inherit non-blocking mode; reads use a timeout instead so
    // that the stop flag is seen.
    if conn.set_nonblocking(false).is_err()
        || conn
            .set_read_timeout(Some(Duration::from_millis(50)))
            .is_err()
    {
        return;
    }
    if let Ok(writer) = conn.try_clone() {
        *lock(&shared.stream) = Some(writer);
    }
    shared.connected.store(true, Ordering::SeqCst);

    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => {
                shared.eof.store(true, Ordering::SeqCst);
                return;
            }
            Ok(n) => lock(&shared.bytes).extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(_) => {
                // A reset counts as the end of the stream.
                shared.eof.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn drain_pipe<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// How to start an ascp: program, arguments, extra environment, timeout.
///
/// The child gets a clean environment: only `PATH` and `HOME` are passed through from the
/// test, plus what [`AscpInvocation::env`] adds. Standard input is `/dev/null`. `-M <port>` is
/// put first on the command line, so positional arguments stay last.
///
/// This is the kit's way to run a program and watch it, not `fasp_spec::AscpCommand` (what a
/// transfer spec renders to: argv, secrets, file lists); a test that runs a rendered command
/// copies its program, arguments and environment into one of these.
#[derive(Debug, Clone)]
pub struct AscpInvocation {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
}

impl AscpInvocation {
    /// A command for the ascp at `program`, with no arguments yet.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Add one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable for the child (on top of the kept `PATH` and `HOME`).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Run the child in this folder.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// How long [`AscpProcess::wait`] lets the child run before killing it.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Bind a fresh [`MgmtCapture`] and start the child; the test can watch it run.
    pub fn spawn(&self) -> io::Result<AscpProcess> {
        MgmtCapture::bind()?.spawn(self)
    }

    /// Bind a fresh [`MgmtCapture`], run the child to its end (or timeout) and reap it.
    pub fn run(&self) -> io::Result<AscpRun> {
        MgmtCapture::bind()?.run(self)
    }
}

/// Run `ascp` with `-M <port>` prepended to `args`, a clean environment plus `env`, and
/// capture its exit status, output and management bytes. See [`AscpInvocation`].
pub fn run_ascp(
    ascp: &Path,
    args: &[OsString],
    env: &[(String, String)],
    timeout: Duration,
) -> io::Result<AscpRun> {
    let mut cmd = AscpInvocation::new(ascp);
    cmd.args(args).timeout(timeout);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.run()
}

/// A running ascp whose management connection is being captured.
///
/// Dropping it without [`wait`](Self::wait) kills and reaps the child.
pub struct AscpProcess {
    child: Child,
    pid: u32,
    argv: Vec<OsString>,
    started: Instant,
    timeout: Duration,
    shared: Arc<Shared>,
    mgmt_thread: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl fmt::Debug for AscpProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AscpProcess")
            .field("pid", &self.pid)
            .field("argv", &self.argv)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl AscpProcess {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The arguments the child was given (after the program), `-M <port>` first.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }

    /// The child's command line as the system shows it (`/proc/<pid>/cmdline`), which is
    /// what `ps` and other users of the machine see. Empty once the child has exited.
    pub fn cmdline(&self) -> io::Result<Vec<OsString>> {
        procs::cmdline(self.pid)
    }

    /// Whether `/proc/<pid>/cmdline` contains `needle` anywhere (across argument
    /// boundaries too).
    pub fn cmdline_contains(&self, needle: &str) -> io::Result<bool> {
        let raw = std::fs::read(format!("/proc/{}/cmdline", self.pid))?;
        Ok(contains_bytes(&raw, needle.as_bytes()))
    }

    /// Whether the child's environment (`/proc/<pid>/environ`) contains `needle`, for
    /// example `ASPERA_SCP_TOKEN=...`.
    pub fn environ_contains(&self, needle: &str) -> io::Result<bool> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.pid))?;
        Ok(contains_bytes(&raw, needle.as_bytes()))
    }

    /// Whether ascp has connected to the management port.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The management bytes received so far.
    pub fn mgmt_so_far(&self) -> Vec<u8> {
        lock(&self.shared.bytes).clone()
    }

    /// Wait until the management bytes contain `needle` (true), or the child exits, or
    /// `timeout` passes (false).
    pub fn wait_for_mgmt(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut exited_at: Option<Instant> = None;
        loop {
            if contains_bytes(&lock(&self.shared.bytes), needle.as_bytes()) {
                return true;
            }
            if exited_at.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
                exited_at = Some(Instant::now());
            }
            // Once the child is gone nothing more can come: stop at end-of-file, or after
            // a grace period when the connection was never (or not yet) accepted.
            let finished = exited_at.is_some_and(|t| {
                self.shared.eof.load(Ordering::SeqCst) || t.elapsed() >= DRAIN_GRACE
            });
            if finished || Instant::now() >= deadline {
                return contains_bytes(&lock(&self.shared.bytes), needle.as_bytes());
            }
            thread::sleep(POLL);
        }
    }

    /// Write raw bytes (for example a control frame) to the management connection.
    pub fn send_mgmt(&self, bytes: &[u8]) -> io::Result<()> {
        let mut guard = lock(&self.shared.stream);
        match guard.as_mut() {
            Some(stream) => stream.write_all(bytes),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "ascp has not connected to the management port",
            )),
        }
    }

    /// Whether the child has exited (it is reaped by [`wait`](Self::wait) either way).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Send SIGTERM.
    pub fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Send SIGKILL.
    pub fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Send a signal, unless the child has already exited (its pid might be reused).
    pub fn signal(&mut self, sig: Signal) -> io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        procs::send_signal(self.pid, sig)
    }

    /// Wait for the child to exit (killing it at the command's timeout), read the rest of
    /// the management stream, reap the child and return everything captured.
    pub fn wait(mut self) -> io::Result<AscpRun> {
        let deadline = self.started + self.timeout;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = self.child.kill();
                break self.child.wait()?;
            }
            thread::sleep(POLL);
        };
        let elapsed = self.started.elapsed();

        // The socket reaches EOF when the child exits; give the reader a moment to see it.
        let drain_until = Instant::now() + DRAIN_GRACE;
        while self.shared.connected.load(Ordering::SeqCst)
            && !self.shared.eof.load(Ordering::SeqCst)
            && Instant::now() < drain_until
        {
            thread::sleep(POLL);
        }
        self.finish_threads();

        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mgmt = std::mem::take(&mut *lock(&self.shared.bytes));
        Ok(AscpRun {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            mgmt,
            connected: self.shared.connected.load(Ordering::SeqCst),
            pid: self.pid,
            timed_out,
            elapsed,
        })
    }

    fn finish_threads(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(stream) = lock(&self.shared.stream).take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(h) = self.mgmt_thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for AscpProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.finish_threads();
        // The pipe readers end once the child is gone; join them so nothing outlives us.
        for h in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.join();
        }
    }
}

/// Everything one ascp run produced.
#[derive(Clone)]
pub struct AscpRun {
    /// How the child ended.
    pub status: ExitStatus,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
    /// The raw bytes it wrote to the management connection.
    pub mgmt: Vec<u8>,
    /// Whether it connected to the management port at all.
    pub connected: bool,
    /// Its process id (already reaped: for messages only).
    pub pid: u32,
    /// Whether it was killed because it outlived the timeout.
    pub timed_out: bool,
    /// Time from spawn to exit.
    pub elapsed: Duration,
}

impl AscpRun {
    /// The management bytes as text (invalid UTF-8 replaced). No frame parsing.
    pub fn mgmt_text(&self) -> String {
        String::from_utf8_lossy(&self.mgmt).into_owned()
    }

    /// Whether the management stream holds this exact line (for example `Code: 44`),
    /// LF or CRLF terminated.
    pub fn mgmt_has_line(&self, line: &str) -> bool {
        self.mgmt
            .split(|&b| b == b'\n')
            .any(|l| l.strip_suffix(b"\r").unwrap_or(l) == line.as_bytes())
    }

    /// The exit code, or `None` when the child was ended by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl fmt::Debug for AscpRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AscpRun")
            .field("status", &self.status)
            .field("connected", &self.connected)
            .field("timed_out", &self.timed_out)
            .field("elapsed", &self.elapsed)
            .field("pid", &self.pid)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("mgmt", &self.mgmt_text())
            .finish()
    }
}

pub(crate) fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
