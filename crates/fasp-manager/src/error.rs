//! What can go wrong with a transfer, each case its own variant.

use std::process::ExitStatus;
use std::time::Duration;

use fasp_spec::SpecError;

use crate::discovery::AscpNotFound;

/// A file that failed (`FILEERROR`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FileFailure {
    /// The file, as ascp reported it.
    pub file: String,
    /// The FASP code, if ascp sent one.
    pub code: Option<u64>,
    /// ascp's description.
    pub description: String,
}

/// Why a transfer did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No ascp binary could be found.
    #[error(transparent)]
    AscpNotFound(#[from] AscpNotFound),
    /// The transfer spec is invalid (nothing was started).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A local resource (listener, work folder...) could not be set up.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// ascp could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// ascp exited before connecting to the management port (usually a bad option).
    #[error("ascp exited ({status}) before connecting to the management port: {}", stderr_or_none(.stderr))]
    ExitedBeforeConnecting {
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote on stderr.
        stderr: String,
    },
    /// ascp did not connect to the management port in time (it was killed).
    #[error("ascp did not connect to the management port within {after:?}: {}", stderr_or_none(.stderr))]
    ConnectTimeout {
        /// The timeout.
        after: Duration,
        /// What it wrote on stderr.
        stderr: String,
    },
    /// The session ended with an `ERROR` frame.
    #[error("ascp failed with code {code} ({}): {description}", .meaning.unwrap_or("unknown code"))]
    Fasp {
        /// The FASP error code.
        code: u64,
        /// What the code means.
        meaning: Option<&'static str>,
        /// ascp's description.
        description: String,
        /// Whether ascp's own table calls the code transient.
        retryable: bool,
        /// The session that failed.
        session_id: Option<String>,
        /// The last lines ascp wrote on stderr.
        stderr_tail: String,
        /// Files that failed on the way.
        failed_files: Vec<FileFailure>,
    },
    /// ascp connected, then the management connection ended without `DONE` or `ERROR`
    /// (ascp stops when it cannot write to it). Retryable.
    #[error("the management connection ended without DONE or ERROR (ascp {status:?}{}): {}", .connection_error.as_deref().map(|e| format!(", connection: {e}")).unwrap_or_default(), stderr_or_none(.stderr_tail))]
    NoOutcome {
        /// ascp's exit status, if it was collected.
        status: Option<ExitStatus>,
        /// How the connection broke, when it was not an orderly end.
        connection_error: Option<String>,
        /// The last lines ascp wrote on stderr.
        stderr_tail: String,
    },
    /// ascp was killed by a signal this manager did not send (a crash).
    #[error("ascp crashed (signal {signal}): {}", stderr_or_none(.stderr_tail))]
    Crashed {
        /// The signal number.
        signal: i32,
        /// The last lines ascp wrote on stderr.
        stderr_tail: String,
    },
    /// ascp sent nothing for longer than the inactivity timeout (it was killed).
    #[error("ascp sent nothing for {idle:?} and was stopped")]
    Hung {
        /// How long it was silent.
        idle: Duration,
    },
    /// Our ascp's connection did not follow the agreement (its `INIT` echoed another cookie).
    #[error("management protocol violation: {0}")]
    Protocol(String),
    /// The transfer was cancelled.
    #[error("transfer cancelled{}", if *.forced { " (ascp had to be killed)" } else { "" })]
    Cancelled {
        /// ascp did not end on the `CANCEL` message and had to be signalled.
        forced: bool,
    },
}

fn stderr_or_none(s: &str) -> &str {
    if s.trim().is_empty() {
        "(nothing on stderr)"
    } else {
        s.trim()
    }
}

impl TransferError {
    /// The FASP error code, when the failure carries one.
    pub fn code(&self) -> Option<u64> {
        match self {
            TransferError::Fasp { code, .. } => Some(*code),
            TransferError::Cancelled { .. } => Some(fasp_mgmt_proto::codes::CANCELLED),
            _ => None,
        }
    }

    /// Whether another attempt (with resume) may succeed: retryable FASP codes, crashes,
    /// hangs and management connections lost without an outcome.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransferError::Fasp { retryable, .. } => *retryable,
            TransferError::Crashed { .. }
            | TransferError::Hung { .. }
            | TransferError::NoOutcome { .. } => true,
            _ => false,
        }
    }
}
