//! Typed events of a transfer, and the listener trait for callers who prefer callbacks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::process::ExitStatus;

use fasp_mgmt_proto::{Control, DecodeError, FieldError, Frame};
use fasp_spec::{Direction, RatePolicy};

use crate::progress::TransferState;

/// One thing that happened in a transfer.
///
/// `frame` is the management frame the event came from, when there is one (cheap to clone:
/// it shares the bytes read from the socket). Its `Debug` redacts secrets.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Event {
    /// Which ascp process of a multi-session transfer (0-based; always 0 otherwise).
    pub part: u32,
    /// Which attempt (1-based; more than 1 after retries).
    pub attempt: u32,
    /// The session the event belongs to, when it belongs to one.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::opt_str"))]
    pub session_id: Option<Arc<str>>,
    /// What happened.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: EventKind,
    /// The frame it came from.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub frame: Option<Frame>,
    /// For [`EventKind::FileProgress`]: how many earlier progress samples of the same file
    /// this subscriber did not get because it was behind (this one is the newest). Always 0
    /// for every other kind: those are never dropped.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "crate::ser::is_zero"))]
    pub coalesced: u64,
}

impl Event {
    /// An event of `kind` outside any session: part 0, attempt 0, no frame. The manager makes
    /// its own; this is for listeners' tests and tools that show events.
    pub fn new(kind: EventKind) -> Event {
        Event {
            part: 0,
            attempt: 0,
            session_id: None,
            kind,
            frame: None,
            coalesced: 0,
        }
    }

    /// Whether this is a progress sample, which a subscriber that is behind may get
    /// coalesced (only [`EventKind::FileProgress`]); every other event is delivered.
    pub fn is_progress(&self) -> bool {
        matches!(self.kind, EventKind::FileProgress(_))
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "type", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum EventKind {
    /// Waiting for a free slot (the manager's concurrency limit).
    Queued,
    /// ascp was started.
    Spawned {
        /// Its process ID.
        pid: u32,
    },
    /// ascp connected to the management port.
    Connected,
    /// A connection to the management port that was not our ascp was refused.
    ForeignConnectionRejected {
        /// Where it came from.
        peer: SocketAddr,
    },
    /// `INIT`: a session begins.
    SessionInit {
        /// Which way this ascp moves files (ascp's `Send` / `Receive`), in the spec's words.
        direction: Option<Direction>,
        /// `Transfer`, `BWMeasurement`...
        operation: Option<String>,
    },
    /// `SESSION`: the session is negotiated.
    SessionStarted(Box<SessionInfo>),
    /// `NOTIFICATION` with rates: the rates now in force.
    RateChanged(Rates),
    /// `NOTIFICATION` with the pre-calculated job size.
    JobSize {
        /// Files to transfer.
        files: Option<u64>,
        /// Bytes to transfer.
        bytes: Option<u64>,
    },
    /// The first `STATS` of a file: it started.
    FileStarted(FileInfo),
    /// A later `STATS` of a file.
    FileProgress(FileInfo),
    /// `STOP`: the file is done.
    FileDone(FileInfo),
    /// `SKIP`: the file was left alone.
    FileSkipped(FileInfo),
    /// `FILEERROR`: the file failed.
    FileFailed {
        /// The file.
        file: FileInfo,
        /// The FASP code.
        code: Option<u64>,
        /// ascp's description.
        description: String,
    },
    /// `ARGSTOP`: every file of one source argument was handled.
    ArgDone {
        /// The source argument.
        source: String,
        /// Files attempted.
        attempted: u64,
        /// Files transferred or skipped.
        passed: u64,
        /// Files skipped.
        skipped: u64,
        /// Files failed.
        failed: u64,
    },
    /// `DONE`: the session ended well.
    SessionDone(SessionTotals),
    /// `ERROR`: the session failed.
    SessionFailed {
        /// The FASP code.
        code: u64,
        /// ascp's description.
        description: String,
        /// Whether the code is transient.
        retryable: bool,
    },
    /// `QUERY`: ascp asked something, and was answered.
    Query {
        /// The question.
        query: String,
        /// Whether it was allowed.
        allowed: bool,
    },
    /// A frame of a type this manager does not interpret (kept in `frame`).
    Unknown,
    /// A frame whose fields do not parse (kept in `frame`). For STATS, STOP and SKIP only the
    /// figures the manager reads (file, sizes, bytes written, start byte, session bytes,
    /// argument index) are checked: a bad number in a field it does not read (`Loss`,
    /// `Delay`, ...) does not make the frame invalid.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::field_error"))]
    InvalidFrame(FieldError),
    /// Bytes on the management socket that were not a frame; decoding went on.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::decode_error"))]
    Malformed(DecodeError),
    /// The attempt failed and another will start after `after`.
    Retrying {
        /// The attempt about to start.
        next_attempt: u32,
        /// The wait before it.
        #[cfg_attr(
            feature = "serde",
            serde(rename = "after_ms", serialize_with = "crate::ser::millis")
        )]
        after: Duration,
        /// Why the last one failed.
        reason: String,
    },
    /// The transfer was paused (by [`Controller::pause`](crate::Controller::pause) or a
    /// rate of 0): from here on it stays paused until resumed, whatever rates are set
    /// meanwhile. Emitted once per pause, when asked, even before ascp is connected (the
    /// pause is then written on connection).
    Paused,
    /// The transfer was resumed: the rates in force before the pause (or set during it) are
    /// back.
    Resumed,
    /// A control message was written to ascp's management connection.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::control"))]
    ControlSent(Control),
    /// ascp exited (and was reaped).
    Exited {
        /// Its exit status.
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::exit_status"))]
        status: ExitStatus,
    },
    /// The transfer ended: always the last event of a stream that kept up.
    Finished {
        /// `Done`, `Failed` or `Cancelled`.
        state: TransferState,
        /// The FASP code of the failure, if it has one.
        code: Option<u64>,
    },
    /// This subscriber fell so far behind that its queue of lifecycle events reached
    /// [`TransferOptions::event_buffer`](crate::TransferOptions::event_buffer): it was cut
    /// off here, and its stream ends after this event. The transfer and the other subscribers
    /// are not affected.
    Lagged {
        /// Events this subscriber will not get.
        missed: u64,
    },
}

/// The negotiated session (`SESSION`).
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SessionInfo {
    /// Which way this ascp moves files (ascp's `Send` / `Receive`), in the spec's words.
    pub direction: Option<Direction>,
    /// Remote host.
    pub host: Option<String>,
    /// Remote user.
    pub user: Option<String>,
    /// SSH port.
    pub tcp_port: Option<u64>,
    /// FASP UDP port.
    pub udp_port: Option<u64>,
    /// The rates and policy.
    pub rates: Rates,
    /// Whether the data is encrypted in transit.
    pub encryption: Option<bool>,
    /// The cipher.
    pub cipher: Option<String>,
    /// Source arguments.
    pub sources: Vec<String>,
    /// Destination.
    pub destination: Option<String>,
    /// A persistent session.
    pub keepalive: Option<bool>,
    /// The server forbids target rate changes.
    pub rate_lock: Option<bool>,
    /// The server forbids minimum rate changes.
    pub min_rate_lock: Option<bool>,
    /// The server forbids policy changes.
    pub policy_lock: Option<bool>,
    /// Highest target rate the server allows, Kbps.
    pub rate_cap_kbps: Option<u64>,
    /// `FallbackProtocol` (`http`) when HTTP fallback is on.
    pub fallback_protocol: Option<String>,
}

/// Rates and policy as ascp reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Rates {
    /// Target rate, Kbps.
    pub target_kbps: Option<u64>,
    /// Minimum rate, Kbps.
    pub min_kbps: Option<u64>,
    /// The policy in the words of specs and controls: ascp's `Adaptive: Fixed` is
    /// [`RatePolicy::Fixed`], `Adaptive` with priority 1 [`RatePolicy::High`] and with
    /// priority 2 [`RatePolicy::Fair`], `Trickle` [`RatePolicy::Low`]. `None` when ascp did
    /// not say (or said a word this crate does not know).
    pub policy: Option<RatePolicy>,
}

/// Per-file figures of `STATS`/`STOP`/`SKIP`/`FILEERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FileInfo {
    /// The file.
    pub file: String,
    /// Its size.
    pub size: Option<u64>,
    /// Bytes of it written so far (resumed bytes included).
    pub written: u64,
    /// Where this transfer of it started (resume offset).
    pub start_byte: Option<u64>,
    /// Bytes the session transferred so far.
    pub session_bytes: Option<u64>,
    /// The source argument it came from.
    pub arg_index: Option<u64>,
    /// `(type, hex)` of its checksum, on `STOP` with `--file-checksum`.
    pub checksum: Option<(String, String)>,
}

/// Final figures of a session (`DONE`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SessionTotals {
    /// Bytes written.
    pub file_bytes: Option<u64>,
    /// Bytes transferred.
    pub transfer_bytes: Option<u64>,
    /// Time elapsed.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "elapsed_ms", serialize_with = "crate::ser::opt_millis")
    )]
    pub elapsed: Option<Duration>,
    /// Files transferred or skipped.
    pub transfers_passed: Option<u64>,
    /// Files failed.
    pub transfers_failed: Option<u64>,
    /// Files skipped.
    pub transfers_skipped: Option<u64>,
}

/// Callbacks for callers who prefer them to streams (parity with IBM's `ITransferListener`).
///
/// Each listener is called on a thread of its own, in order, with the same delivery contract
/// as an event stream (lifecycle events always, progress samples coalesced when it is
/// behind): a slow listener delays only itself, never the transfer or other subscribers.
/// [`Transfer::wait`](crate::Transfer::wait) returns once every listener has handled the
/// last event (so a listener that never returns keeps `wait` from returning, and nothing
/// else).
pub trait TransferListener: Send + Sync {
    /// Every event.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> TransferListener for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}
