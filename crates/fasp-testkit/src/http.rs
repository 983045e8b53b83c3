//! A tiny HTTP listener that records what ascp's HTTP fallback sends.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::ascp::contains_bytes;

/// The answer given to every request unless another one is set.
pub const FORBIDDEN: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// At most this much of one request is kept (headers and body together).
const MAX_REQUEST: usize = 1 << 20;

/// A client that sends nothing for this long is given up on.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many header lines one request may have (ascp sends about ten).
const MAX_HEADERS: usize = 64;

/// The head of a request as `httparse` reads it, borrowing from the raw bytes.
struct Head<'a> {
    /// Bytes of the request line and header lines, blank line included.
    len: usize,
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
}

impl Head<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// The announced `Content-Length`, or 0 (absent or not a number).
    fn content_length(&self) -> usize {
        self.header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Parse the head at the start of `raw`: `Ok(None)` while it is incomplete, an error when
/// `httparse` refuses it.
fn parse_head(raw: &[u8]) -> Result<Option<Head<'_>>, httparse::Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let httparse::Status::Complete(len) = req.parse(raw)? else {
        return Ok(None);
    };
    Ok(Some(Head {
        len,
        method: req.method.unwrap_or_default(),
        target: req.path.unwrap_or_default(),
        headers: req.headers.iter().map(|h| (h.name, h.value)).collect(),
    }))
}

/// One request as received: the raw bytes of the head and of the body (as far as
/// `Content-Length` announced, capped at 1 MiB). The head is read by `httparse`; a head it
/// refuses is kept as it arrived, with no body and no headers.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Everything read from the connection, head and body.
    pub raw: Vec<u8>,
}

impl HttpRequest {
    fn parsed(&self) -> Option<Head<'_>> {
        parse_head(&self.raw).ok().flatten()
    }

    fn head_len(&self) -> usize {
        self.parsed().map_or(self.raw.len(), |h| h.len)
    }

    /// The head (request line and header lines) as text.
    pub fn head(&self) -> String {
        String::from_utf8_lossy(&self.raw[..self.head_len()]).into_owned()
    }

    /// The request line, for example `POST http://127.0.0.1:1234/aspera/http/... HTTP/1.1`.
    pub fn request_line(&self) -> String {
        self.head().lines().next().unwrap_or_default().to_owned()
    }

    /// The method (`POST`), when the head could be parsed.
    pub fn method(&self) -> Option<String> {
        self.parsed().map(|h| h.method.to_owned())
    }

    /// The request target as sent (ascp sends the absolute form,
    /// `http://127.0.0.1:<port>/aspera/http/...`), when the head could be parsed.
    pub fn target(&self) -> Option<String> {
        self.parsed().map(|h| h.target.to_owned())
    }

    /// The value of the first header with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.parsed()?;
        let value = head.header(name)?;
        Some(String::from_utf8_lossy(value).trim().to_owned())
    }

    /// The body bytes received.
    pub fn body(&self) -> &[u8] {
        &self.raw[self.head_len()..]
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// Whether the raw request (head or body) contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        contains_bytes(&self.raw, needle.as_bytes())
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<HttpRequest>>,
    arrived: Condvar,
    /// While false, handlers hold their answer.
    open: Mutex<bool>,
    opened: Condvar,
    stop: AtomicBool,
}

/// A listener on `127.0.0.1` with an ephemeral port that records each request and answers
/// it with a fixed response (by default `403 Forbidden`), then closes the connection.
///
/// Point ascp's HTTP fallback at it with `-y F -t <port> -T --host=127.0.0.1`. It can
/// also hold its answers ([`HttpCapture::holding`]) so that ascp stays alive, waiting,
/// while the test looks at the process; [`HttpCapture::release`] lets the answers go.
pub struct HttpCapture {
    port: u16,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for HttpCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCapture")
            .field("port", &self.port)
            .field("requests", &lock(&self.state.requests).len())
            .finish()
    }
}

impl HttpCapture {
    /// Start a capture that answers every request with [`FORBIDDEN`] at once.
    pub fn start() -> io::Result<Self> {
        Self::with_response(FORBIDDEN.to_vec(), true)
    }

    /// Start a capture that records requests but holds its [`FORBIDDEN`] answers until
    /// [`release`](Self::release) is called (or the capture is dropped).
    pub fn holding() -> io::Result<Self> {
        Self::with_response(FORBIDDEN.to_vec(), false)
    }

    /// Start a capture that answers with `response` (raw bytes: status line, headers,
    /// body), at once when `open`, else only after [`release`](Self::release).
    pub fn with_response(response: Vec<u8>, open: bool) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let state = Arc::new(State {
            open: Mutex::new(open),
            ..State::default()
        });
        let response: Arc<[u8]> = response.into();
        let thread = {
            let state = Arc::clone(&state);
            thread::Builder::new()
                .name(format!("http-capture-{port}"))
                .spawn(move || accept_loop(&listener, &state, &response))?
        };
        Ok(Self {
            port,
            state,
            thread: Some(thread),
        })
    }

    /// The port to give ascp with `-t`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        lock(&self.state.requests).clone()
    }

    /// Wait until at least `n` requests have been recorded or `timeout` passes, and return
    /// those recorded by then.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<HttpRequest> {
        let deadline = Instant::now() + timeout;
        let mut reqs = lock(&self.state.requests);
        while reqs.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            reqs = self
                .state
                .arrived
                .wait_timeout(reqs, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        reqs.clone()
    }

    /// Let held answers go, and answer later requests at once.
    pub fn release(&self) {
        *lock(&self.state.open) = true;
        self.state.opened.notify_all();
    }
}

impl Drop for HttpCapture {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.release();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>, response: &Arc<[u8]>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let state = Arc::clone(state);
                let response = Arc::clone(response);
                if let Ok(h) = thread::Builder::new()
                    .name("http-capture-conn".into())
                    .spawn(move || handle(conn, &state, &response))
                {
                    handlers.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
        handlers.retain(|h| !h.is_finished());
    }
    for h in handlers {
        let _ = h.join();
    }
}

fn handle(mut conn: TcpStream, state: &State, response: &[u8]) {
    if conn.set_nonblocking(false).is_err() || conn.set_read_timeout(Some(READ_TIMEOUT)).is_err() {
        return;
    }
    let raw = read_request(&mut conn);
    if raw.is_empty() {
        return;
    }
    lock(&state.requests).push(HttpRequest { raw });
    state.arrived.notify_all();

    let mut open = lock(&state.open);
    while !*open && !state.stop.load(Ordering::SeqCst) {
        open = state
            .opened
            .wait_timeout(open, Duration::from_millis(100))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(open);
    let _ = conn.write_all(response);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}

/// Read one request: the head (until `httparse` has all of it, or refuses it), then as much
/// body as `Content-Length` says, capped at [`MAX_REQUEST`].
fn read_request(conn: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match parse_head(&raw) {
            Ok(Some(head)) => {
                let want = head
                    .len
                    .saturating_add(head.content_length())
                    .min(MAX_REQUEST);
                if raw.len() >= want {
                    raw.truncate(want);
                    return raw;
                }
            }
            Ok(None) => {}
            Err(_) => return raw,
        }
        if raw.len() >= MAX_REQUEST {
            return raw;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}
