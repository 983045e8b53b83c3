//! Per-transfer options.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fasp_mgmt_proto::QueryAnswer;

use crate::event::TransferListener;

/// How failed attempts are retried: [`fasp_spec::RetryPolicy`], the workspace's one retry
/// type. Only transient failures are retried (see [`crate::TransferError::is_retryable`]); each
/// retry resumes (`-k 2` unless the spec asks for another resume policy). A transfer's default
/// is [`TransferOptions::default`]'s: no retry.
pub use fasp_spec::RetryPolicy;

/// Options of one transfer. `TransferOptions::default()` suits most uses.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// From spawning ascp to its management connection. Default 30 s.
    pub connect_timeout: Duration,
    /// Longest silence on the management connection before ascp is considered hung and
    /// stopped. Default 120 s (ascp reports every second while transferring, but can be
    /// silent for a while during SSH negotiation). `None` disables the watchdog.
    pub inactivity_timeout: Option<Duration>,
    /// After `CANCEL`, how long ascp gets to end before SIGTERM. Default 2 s.
    pub cancel_grace: Duration,
    /// After SIGTERM, how long before SIGKILL. Default 2 s.
    pub term_grace: Duration,
    /// After the management connection ends, how long ascp gets to exit (and after it
    /// exits, how long to read what it wrote last). Default 5 s.
    pub exit_grace: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Run the transfer as this many ascp processes (`-C i:N`), the rates split between
    /// them. Default 1.
    pub sessions: u32,
    /// Where file lists go; a private temporary folder (removed at the end) when `None`.
    pub workdir: Option<PathBuf>,
    /// Callbacks, called for every event in order.
    pub listeners: Vec<Arc<dyn TransferListener>>,
    /// Lifecycle events queued at most for one subscriber that does not read (progress
    /// samples are coalesced and do not count). A subscriber that reaches it gets
    /// [`EventKind::Lagged`](crate::EventKind::Lagged) and its stream ends; the transfer and
    /// the other subscribers go on. Default 100,000.
    pub event_buffer: usize,
    /// How to answer a `QUERY` from ascp. Default `Allowed`.
    pub query_answer: QueryAnswer,
    /// Extra environment for ascp (not secrets: those come from the spec). ascp starts with
    /// a minimal environment: `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `LC_CTYPE`,
    /// `LC_MESSAGES`, `TZ`, `TMPDIR` from ours, the spec's secrets, its cookie, then these.
    pub env: Vec<(String, String)>,
    /// Names of variables of our own environment to pass on to ascp when set (a name ending
    /// in `*` passes every variable with that prefix). Nothing else is inherited.
    pub inherit_env: Vec<String>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            connect_timeout: Duration::from_secs(30),
            inactivity_timeout: Some(Duration::from_secs(120)),
            cancel_grace: Duration::from_secs(2),
            term_grace: Duration::from_secs(2),
            exit_grace: Duration::from_secs(5),
            // One try, and when retries are asked for, waits from 1 s to 30 s.
            retry: RetryPolicy::none()
                .with_backoff(Duration::from_secs(1), Duration::from_secs(30)),
            sessions: 1,
            workdir: None,
            listeners: Vec::new(),
            event_buffer: 100_000,
            query_answer: QueryAnswer::Allowed,
            env: Vec::new(),
            inherit_env: Vec::new(),
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("inactivity_timeout", &self.inactivity_timeout)
            .field("cancel_grace", &self.cancel_grace)
            .field("term_grace", &self.term_grace)
            .field("exit_grace", &self.exit_grace)
            .field("retry", &self.retry)
            .field("sessions", &self.sessions)
            .field("workdir", &self.workdir)
            .field("listeners", &self.listeners.len())
            .field("event_buffer", &self.event_buffer)
            .field("query_answer", &self.query_answer)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("inherit_env", &self.inherit_env)
            .finish()
    }
}

impl TransferOptions {
    /// Set the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Run as `n` ascp processes.
    pub fn with_sessions(mut self, n: u32) -> Self {
        self.sessions = n.max(1);
        self
    }

    /// Add a listener.
    pub fn with_listener(mut self, listener: Arc<dyn TransferListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Add an environment variable for ascp.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Pass this variable of our environment on to ascp when set (`NAME*`: every variable
    /// starting with `NAME`).
    pub fn with_inherited_env(mut self, name: impl Into<String>) -> Self {
        self.inherit_env.push(name.into());
        self
    }

    /// The variables of our environment that [`TransferOptions::inherit_env`] selects.
    pub(crate) fn inherited(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        std::env::vars_os()
            .filter(|(k, _)| {
                let Some(k) = k.to_str() else { return false };
                self.inherit_env
                    .iter()
                    .any(|want| match want.strip_suffix('*') {
                        Some(prefix) => k.starts_with(prefix),
                        None => k == want,
                    })
            })
            .collect()
    }

    /// Set the inactivity watchdog.
    pub fn with_inactivity_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.inactivity_timeout = timeout;
        self
    }

    /// Set the connection timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the cancel escalation waits (CANCEL → SIGTERM → SIGKILL).
    pub fn with_cancel_graces(mut self, cancel: Duration, term: Duration) -> Self {
        self.cancel_grace = cancel;
        self.term_grace = term;
        self
    }

    /// Put file lists in `dir`.
    pub fn with_workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_tried_once_by_default() {
        let o = TransferOptions::default();
        assert_eq!(o.retry.max_retries, 0);
        assert_eq!(o.retry.backoff(1), Duration::from_secs(1));
        assert_eq!(o.retry.backoff(10), Duration::from_secs(30));
    }
}
