//! The management connection: one writer shared by the session and the reader thread, and
//! the reader thread that turns the manager's control frames into shared state.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use bytes::BytesMut;
use fasp_mgmt_proto::{Control, DoneOperation, Frame, FrameParser, QueryAnswer, StartFile};

use crate::frames::Out;
use crate::{CONTROL_READ_FIELD, SENT_FIELD};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The management socket could not be written (the manager went away, or a fault closed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost;

enum LinkState {
    /// No `-M`: frames go nowhere, successfully.
    Absent,
    Open(TcpStream),
    Closed,
}

/// The writing half of the management connection.
pub(crate) struct Link {
    state: Mutex<LinkState>,
    /// `ASCP_SIM_TIMESTAMPS`: stamp every frame with `SimSentUsec` as it is written.
    stamp: bool,
}

impl Link {
    /// No management connection (no `-M`).
    pub(crate) fn absent() -> Link {
        Link {
            state: Mutex::new(LinkState::Absent),
            stamp: false,
        }
    }

    /// Connect to `localhost:port` over IPv4, as ascp does. Returns the link and a handle
    /// for the reader. With `stamp`, every frame written carries [`SENT_FIELD`].
    pub(crate) fn connect(port: u16, stamp: bool) -> io::Result<(Link, TcpStream)> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        let _ = stream.set_nodelay(true);
        let reader = stream.try_clone()?;
        Ok((
            Link {
                state: Mutex::new(LinkState::Open(stream)),
                stamp,
            },
            reader,
        ))
    }

    /// Whether there is a management connection at all (`-M` given).
    pub(crate) fn present(&self) -> bool {
        !matches!(*lock(&self.state), LinkState::Absent)
    }

    /// Whether frames are stamped (`ASCP_SIM_TIMESTAMPS`).
    pub(crate) fn stamps(&self) -> bool {
        self.stamp
    }

    /// Write one frame (stamped with [`SENT_FIELD`] under `ASCP_SIM_TIMESTAMPS`).
    pub(crate) fn send(&self, frame: &Frame) -> Result<(), Lost> {
        self.write(frame.as_bytes(), self.stamp)
    }

    /// Write raw bytes (for the malformed-frame fault), never stamped.
    pub(crate) fn send_raw(&self, bytes: &[u8]) -> Result<(), Lost> {
        self.write(bytes, false)
    }

    fn write(&self, bytes: &[u8], stamp: bool) -> Result<(), Lost> {
        let mut state = lock(&self.state);
        match &mut *state {
            LinkState::Absent => Ok(()),
            LinkState::Closed => Err(Lost),
            LinkState::Open(stream) => {
                // The stamp is read under the lock, right before the write: it is the moment
                // the frame leaves, not the moment it was built.
                let written = match stamp.then(|| stamped(bytes)).flatten() {
                    Some(with_stamp) => stream.write_all(&with_stamp),
                    None => stream.write_all(bytes),
                };
                if written.is_ok() {
                    Ok(())
                } else {
                    let _ = stream.shutdown(Shutdown::Both);
                    *state = LinkState::Closed;
                    Err(Lost)
                }
            }
        }
    }

    /// Close the connection (both directions); later writes fail.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        if let LinkState::Open(stream) = &*state {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if !matches!(*state, LinkState::Absent) {
            *state = LinkState::Closed;
        }
    }
}

/// `frame` (a whole encoded frame, ending with its blank line) with a [`SENT_FIELD`] line
/// added as its last field; `None` if it does not end as a frame does.
fn stamped(frame: &[u8]) -> Option<Vec<u8>> {
    let (body, eol): (&[u8], &[u8]) = if let Some(b) = frame.strip_suffix(b"\r\n\r\n") {
        (b, b"\r\n")
    } else {
        (frame.strip_suffix(b"\n\n")?, b"\n")
    };
    let line = format!("{SENT_FIELD}: {}", crate::monotonic_usec());
    let mut out = Vec::with_capacity(frame.len() + line.len() + 2);
    out.extend_from_slice(body);
    out.extend_from_slice(eol);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(eol);
    Some(out)
}

/// Rates and policy as the manager last set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateState {
    pub(crate) target_kbps: u64,
    pub(crate) min_kbps: u64,
    pub(crate) adaptive: &'static str,
    pub(crate) priority: u8,
}

impl RateState {
    /// The pace to keep, kbit/s: the target, never below the minimum; 0 (paused) only when
    /// both are 0.
    pub(crate) fn effective_kbps(&self) -> u64 {
        self.target_kbps.max(self.min_kbps)
    }
}

/// What the manager has asked for so far.
#[derive(Debug)]
pub(crate) struct CtlState {
    pub(crate) rate: RateState,
    pub(crate) cancelled: bool,
    pub(crate) starts: VecDeque<StartFile>,
    pub(crate) stops: Vec<String>,
    pub(crate) done: Option<DoneOperation>,
    pub(crate) eof: bool,
    pub(crate) query_answer: Option<QueryAnswer>,
}

/// Shared between the reader thread and the session.
pub(crate) struct Ctl {
    state: Mutex<CtlState>,
    cv: Condvar,
}

impl Ctl {
    pub(crate) fn new(rate: RateState) -> Ctl {
        Ctl {
            state: Mutex::new(CtlState {
                rate,
                cancelled: false,
                starts: VecDeque::new(),
                stops: Vec::new(),
                done: None,
                eof: false,
                query_answer: None,
            }),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CtlState> {
        lock(&self.state)
    }

    /// Wait until `until` or a change, whichever first.
    pub(crate) fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a, CtlState>,
        until: Instant,
    ) -> MutexGuard<'a, CtlState> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return guard;
        }
        self.cv
            .wait_timeout(guard, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    fn changed(&self) {
        self.cv.notify_all();
    }
}

/// Who acknowledges rate changes: the session currently moving the files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ident {
    pub(crate) session_id: String,
    pub(crate) user_str: Option<String>,
}

/// Start the thread that reads the manager's frames until end-of-file.
pub(crate) fn spawn_reader(
    mut stream: TcpStream,
    ctl: Arc<Ctl>,
    link: Arc<Link>,
    ident: Arc<Mutex<Ident>>,
) {
    let ctl_fallback = Arc::clone(&ctl);
    let spawned = thread::Builder::new()
        .name("mgmt-reader".into())
        .spawn(move || {
            let mut parser = FrameParser::new();
            let mut buf = BytesMut::with_capacity(8192);
            let mut chunk = [0u8; 8192];
            loop {
                let n = match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let read_at = crate::monotonic_usec();
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match parser.parse(&mut buf) {
                        Ok(Some(frame)) => handle(&frame, read_at, &ctl, &link, &ident),
                        Ok(None) => break,
                        // Damage is skipped, as ascp ignores what it cannot read.
                        Err(_) => continue,
                    }
                }
            }
            ctl.lock().eof = true;
            ctl.changed();
        });
    if spawned.is_err() {
        // Without a reader the session still runs; the manager just cannot steer it.
        ctl_fallback.lock().eof = true;
    }
}

/// Act on one control frame; `read_at` is when the read that completed it returned.
fn handle(frame: &Frame, read_at: u64, ctl: &Ctl, link: &Link, ident: &Mutex<Ident>) {
    let Ok(control) = Control::from_frame(frame) else {
        return;
    };
    let mut st = ctl.lock();
    match control {
        Control::Rate(r) => {
            if let Some(v) = r.rate_kbps {
                st.rate.target_kbps = v;
            }
            if let Some(v) = r.min_rate_kbps {
                st.rate.min_kbps = v;
            }
            if let Some(p) = r.policy {
                st.rate.adaptive = p.as_str();
            }
            if let Some(p) = r.priority {
                st.rate.priority = match p {
                    fasp_mgmt_proto::Priority::High => 1,
                    _ => 2,
                };
            }
            let rate = st.rate;
            drop(st);
            ctl.changed();
            // ascp reports the rates it now uses with a NOTIFICATION.
            let id = lock(ident).clone();
            let mut out = Out::new("NOTIFICATION");
            out.num("Rate", rate.target_kbps)
                .num("MinRate", rate.min_kbps)
                .text("SessionId", &id.session_id)
                .text("Adaptive", rate.adaptive)
                .num("Priority", u64::from(rate.priority));
            if let Some(u) = &id.user_str {
                out.text("UserStr", u);
            }
            if link.stamps() {
                out.num(CONTROL_READ_FIELD, read_at);
            }
            let _ = link.send(&out.finish());
            return;
        }
        Control::Cancel => st.cancelled = true,
        Control::Start(s) => st.starts.push_back(s),
        Control::Stop(s) => st.stops.push(s.source),
        // Shutdown wins over Linger.
        Control::Done(op) if st.done != Some(DoneOperation::Shutdown) => st.done = Some(op),
        Control::QueryResponse(a) => st.query_answer = Some(a),
        _ => {}
    }
    drop(st);
    ctl.changed();
}
