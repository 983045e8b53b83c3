//! # fasp-manager
//!
//! Start IBM Aspera `ascp` transfers, watch them, steer them, cancel them, and know that
//! nothing is left behind.
//!
//! [`Manager::start`] takes a [`fasp_spec::TransferSpec`], renders it into an ascp command
//! line (secrets only in the environment), binds a management port on `127.0.0.1` *before*
//! spawning ascp with `-M <port> -u <nonce>`, and accepts exactly one connection: on Linux it
//! checks that the connecting socket belongs to the child it spawned, and everywhere that the
//! first `INIT` echoes the nonce. While waiting it watches the child too, so a bad option is
//! an error carrying ascp's exit status and stderr at once, not after a timeout.
//!
//! The returned [`Transfer`] gives:
//! * a [`Stream`](futures::Stream) of typed [`Event`]s (session, per-file, rate, outcome,
//!   each with its raw frame), to as many subscribers as you like, plus callbacks through
//!   [`TransferListener`];
//! * a `watch` receiver of [`Progress`] (bytes, files, rate, elapsed, ETA);
//! * control (methods of [`Controller`], which a `Transfer` derefs to):
//!   [`set_rate`](Controller::set_rate), [`set_policy`](Controller::set_policy),
//!   [`pause`](Controller::pause) / [`resume`](Controller::resume),
//!   [`add_file`](Controller::add_file) and [`finish`](Controller::finish) for persistent
//!   sessions, [`cancel`](Controller::cancel) (`CANCEL`, then SIGTERM, then SIGKILL: a real
//!   ascp does not read its socket during session initiation). Rate, policy and file
//!   messages are written to ascp's socket by the calling task itself when nothing is queued
//!   ahead of them, and always reach ascp in the order they were issued;
//! * [`Transfer::wait`]: a [`Summary`] or a [`TransferError`] with the FASP code, its meaning,
//!   whether it is retryable, ascp's stderr tail and the files that failed.
//!
//! State is keyed by `SessionId` (one connection carries two sessions with HTTP fallback).
//! Retryable failures are retried with resume ([`RetryPolicy`]); [`TransferOptions::sessions`]
//! splits a transfer over several ascp processes (`-C i:N`). Dropping a `Transfer` or the
//! `Manager` stops and reaps its processes and removes its temporary files.
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
//! transfer.set_rate(50_000, 0).await?;
//! let summary = transfer.wait().await?;
//! println!("{} bytes", summary.bytes);
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]

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
#[cfg(test)]
mod sim_tests;
mod transfer;
mod wire;

pub use discovery::{ASCP_ENV, AscpNotFound, find_ascp};
pub use error::{FileFailure, TransferError};
pub use event::{Event, EventKind, FileInfo, Rates, SessionInfo, SessionTotals, TransferListener};
pub use fasp_mgmt_proto::{ByteRange, Control, DoneOperation, QueryAnswer};
pub use fasp_spec::TransferSpec;
pub use manager::{Manager, ManagerBuilder};
pub use options::{RetryPolicy, TransferOptions};
pub use progress::{Progress, TransferState};
pub use transfer::{
    ControlError, Controller, EventStream, Policy, SessionSummary, Summary, Transfer,
};

/// The variable ascp reads its cookie from. Every child gets one: the spec's cookie, or a
/// fresh random one; ascp echoes it in `INIT`, which is how a connection the kernel can no
/// longer attribute (a fast ascp that already exited) proves it comes from our child.
pub const COOKIE_ENV: &str = "ASPERA_SCP_COOKIE";
