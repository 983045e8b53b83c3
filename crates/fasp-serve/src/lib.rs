//! # fasp-serve
//!
//! The gRPC API of [`fasp_jobs`]: the service behind `fasp serve`, its client, and the
//! protocol (`proto/fasp/jobs/v1/jobs.proto`, package `fasp.jobs.v1`, service `Jobs`):
//! Submit, Get, List (by state, by tag), Modify (rates, pause, resume), AddPaths and Finish
//! (persistent jobs: paths added while the job lives, kept until done), Cancel,
//! a server-streamed Watch of a job's state and progress (from the store, so for every
//! worker), and Events, the live typed events of the transfers run by the worker in the
//! server's process ([`Daemon::with_events`]). Server reflection (v1 and
//! v1alpha) is on, so `grpcurl` needs no `.proto` file.
//!
//! The `.proto` is compiled at build time by protox, in Rust: the build never runs, nor
//! downloads, `protoc`.
//!
//! Security: the server listens on a loopback address or a Unix socket (mode 0600) unless
//! told otherwise, and then needs no token; any other address is refused
//! ([`ServeError::TokenRequired`]) unless a [`Token`] is set, which every call must then send
//! as `authorization: Bearer <token>` metadata (compared in constant time). Tokens come from
//! files, never from command lines, and are never shown (their `Debug` is redacted).
//!
//! Watch reads the job store at a bounded rate ([`WATCH_MIN_INTERVAL`] to
//! [`WATCH_MAX_INTERVAL`]) and sends the job each time it changed: the worker persists
//! progress at its heartbeat's pace, so this is as fresh as the store is.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fasp_jobs::JobStore;
//! use fasp_serve::{Daemon, Listen, ServeConfig};
//!
//! let store = JobStore::open("jobs.db").await?;
//! let daemon = Daemon::bind(store, ServeConfig::new(Listen::parse("127.0.0.1:50071")?)).await?;
//! daemon.serve(std::future::pending()).await?; // until the process is stopped
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

// The README's example, compiled as a doctest (not shown in these docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod auth;
mod client;
mod error;
mod server;
mod service;
mod tls;

/// The messages, client and server generated from `jobs.proto` (package `fasp.jobs.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("fasp.jobs.v1");
}

/// The encoded `FileDescriptorSet` of `jobs.proto`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fasp_jobs_v1_descriptor.bin"));

/// The service's full name, as reflection lists it.
pub const SERVICE_NAME: &str = "fasp.jobs.v1.Jobs";

pub use auth::{AUTHORIZATION, RequireToken, SendToken, Token};
pub use client::{Client, connect, connect_with_tls};
pub use error::ServeError;
pub use server::{DEFAULT_LISTEN, Daemon, Listen, ServeConfig};
pub use service::{
    DEFAULT_MAX_STREAMS, JobsService, WATCH_DEFAULT_INTERVAL, WATCH_MAX_INTERVAL,
    WATCH_MIN_INTERVAL, job_to_pb, state_from_pb, state_to_pb, status,
};
pub use tls::{ClientTls, TlsIdentity};
