//! # fasp-manager
//!
//! Start IBM Aspera `ascp` transfers, watch them, steer them, cancel them, and know that
//! nothing is left behind.
//!
//! [`Manager::start`] takes a [`TransferSpec`], renders it into an ascp command line (secrets
//! only in the environment), binds a management port on `127.0.0.1` *before* spawning ascp
//! with `-M <port>`, and adopts exactly one connection: one that the kernel shows held by the
//! child's process group, or whose first `INIT` echoes the secret cookie the child was given in
//! `ASPERA_SCP_COOKIE` (never on a command line). A connection from anyone else is refused and
//! reported; nothing it sends reaches the caller. The child runs in its own process group with a
//! minimal environment, and dies with the process that runs the manager (Linux parent-death
//! signal).
//!
//! The returned [`Transfer`] gives:
//! * a [`Stream`](futures::Stream) of typed [`Event`]s (session, per-file, rate, control, exit,
//!   outcome, each with its raw frame), to as many subscribers as you like, plus callbacks
//!   through [`TransferListener`]. Delivery never slows the transfer: lifecycle events are never
//!   lost, progress samples are coalesced per file for a subscriber that is behind (see
//!   [`Event::coalesced`]), and every stream ends when the transfer ends;
//! * a `watch` receiver of [`Progress`] (bytes, files, rate, elapsed, ETA, state);
//! * control (methods of [`Controller`], which a `Transfer` derefs to):
//!   [`set_rate`](Controller::set_rate), [`set_policy`](Controller::set_policy),
//!   [`pause`](Controller::pause) / [`resume`](Controller::resume),
//!   [`add_file`](Controller::add_file) and [`finish`](Controller::finish) for persistent
//!   sessions, [`cancel`](Controller::cancel) (`CANCEL`, then SIGTERM, then SIGKILL: a real
//!   ascp does not read its socket during session initiation). A control is decided and
//!   written by the calling task, never waits, and reaches ascp in the order it was issued;
//!   one that makes no sense for the transfer is a [`ControlError`];
//! * [`Transfer::wait`]: a [`Summary`] or a [`TransferError`] with the FASP code, its meaning,
//!   whether it is retryable, ascp's stderr tail and the files that failed.
//!
//! Inside, every decision is taken by a sans-IO state machine (`core.rs`: no sockets, no
//! processes, no clock), proven by a seeded simulation; small tasks only move bytes, signals
//! and timers (docs/architecture.md). Retryable failures are retried with resume
//! ([`RetryPolicy`]); [`TransferOptions::sessions`] splits a transfer over several ascp
//! processes (`-C i:N`). Dropping a `Transfer` (and its controllers) or the last `Manager`
//! clone stops and reaps its processes and removes its temporary files.
//!
//! ## Logging
//!
//! The crate emits [`tracing`](https://docs.rs/tracing) events (install any subscriber to see
//! them; without one they cost nothing): `info` for the lifecycle (ascp started with its pid,
//! program and argv, connection adopted, session started and done, signals, exit, retries,
//! the outcome), `warn` for what went wrong (a refused connection, a failed file or session, a
//! failed transfer), `debug` for controls requested and sent, rates, files and the names of
//! the child's environment variables, `trace` for every management frame and progress sample.
//! No secret is ever logged: the token, cookie and passwords travel only in the child's
//! environment, of which only the variables' names are logged, and frames are logged with
//! their secret fields (the `INIT` cookie) shown as `<redacted>`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fasp_manager::{Manager, TransferOptions};
//! use fasp_spec::TransferSpec;
//! use futures::StreamExt;
//!
//! let spec = TransferSpec::builder()
//!     .upload()
//!     .host("ats.example.com")
//!     .user("xfer")
//!     .token("ATM3_...")
//!     .source("/data/report.pdf")
//!     .destination_root("/incoming")
//!     .build()?;
//! let manager = Manager::new();
//! let mut transfer = manager.start(&spec, TransferOptions::default())?;
//! let mut events = transfer.events();
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         println!("{:?}", event.kind);
//!     }
//! });
//! transfer.control().set_rate(50_000, 0).await?;
//! let summary = transfer.wait().await?;
//! println!("{} bytes", summary.bytes);
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]

// The README's example, compiled as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod core;
mod discovery;
mod driver;
mod error;
mod event;
mod hub;
mod manager;
mod options;
mod process;
mod progress;
#[cfg(feature = "serde")]
mod ser;
#[cfg(test)]
mod sim_tests;
mod transfer;
mod wire;

pub use discovery::{ASCP_ENV, AscpNotFound, find_ascp};
pub use error::{FileFailure, TransferError};
pub use event::{Event, EventKind, FileInfo, Rates, SessionInfo, SessionTotals, TransferListener};
// The lower-layer types this crate's API shows, so that a user needs no other dependency.
pub use fasp_mgmt_proto::{
    ByteRange, Control, DecodeError, DecodeErrorKind, DoneOperation, FieldError, Frame,
    QueryAnswer, RateChange, StartFile, StopFile,
};
pub use fasp_spec::{Direction, RatePolicy, SpecError, TransferSpec, TransferSpecBuilder};
pub use manager::{Manager, ManagerBuilder};
pub use options::{RetryPolicy, TransferOptions};
pub use process::INHERITED_ENV;
pub use progress::{Progress, TransferState};
pub use transfer::{ControlError, Controller, EventStream, SessionSummary, Summary, Transfer};

/// The variable ascp reads its cookie from. Every child gets one: the spec's cookie, or a
/// fresh random one; ascp echoes it in `INIT`, which is how a connection the kernel can no
/// longer attribute (a fast ascp that already exited) proves it comes from our child.
pub const COOKIE_ENV: &str = fasp_spec::ASPERA_SCP_COOKIE;
