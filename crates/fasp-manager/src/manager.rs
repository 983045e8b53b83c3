//! [`Manager`]: starts transfers, optionally limits how many run at once, and stops them all
//! when it is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fasp_spec::TransferSpec;
use tokio::sync::{Semaphore, watch};

use crate::discovery::find_ascp;
use crate::error::TransferError;
use crate::options::TransferOptions;
use crate::transfer::{Plan, Transfer};

/// Starts and tracks transfers. Cheap to clone (clones share the limit and the shutdown).
///
/// When the last clone is dropped, every transfer it started is cancelled: ascp processes are
/// stopped (SIGTERM, then SIGKILL) and reaped, temporary files removed.
#[derive(Clone, Debug)]
pub struct Manager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ascp: Option<PathBuf>,
    limit: Option<Arc<Semaphore>>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Default for Manager {
    fn default() -> Self {
        Manager::new()
    }
}

impl Manager {
    /// A manager that finds ascp by itself (see [`crate::find_ascp`]) and runs any number of
    /// transfers at once.
    pub fn new() -> Manager {
        Manager::build(None, None)
    }

    /// Use this ascp binary.
    pub fn with_ascp(path: impl Into<PathBuf>) -> Manager {
        Manager::build(Some(path.into()), None)
    }

    /// Run at most `n` transfers at once; the others wait in line (state `Queued`).
    pub fn with_concurrency_limit(self, n: usize) -> Manager {
        Manager::build(
            self.inner.ascp.clone(),
            Some(Arc::new(Semaphore::new(n.max(1)))),
        )
    }

    fn build(ascp: Option<PathBuf>, limit: Option<Arc<Semaphore>>) -> Manager {
        let (shutdown, _) = watch::channel(false);
        Manager {
            inner: Arc::new(Inner {
                ascp,
                limit,
                next_id: AtomicU64::new(1),
                shutdown,
            }),
        }
    }

    /// Start a transfer (must be called within a tokio runtime). The spec is validated and
    /// ascp located before anything starts; everything after is reported through the
    /// returned [`Transfer`].
    pub fn start(
        &self,
        spec: &TransferSpec,
        options: TransferOptions,
    ) -> Result<Transfer, TransferError> {
        spec.validate()?;
        let program = find_ascp(self.inner.ascp.as_deref())?;
        let plan = Plan {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            spec: spec.clone(),
            program,
            options,
            limit: self.inner.limit.clone(),
            permit: std::sync::Mutex::new(
                self.inner
                    .limit
                    .clone()
                    .and_then(|l| l.try_acquire_owned().ok()),
            ),
            shutdown: self.inner.shutdown.subscribe(),
        };
        Ok(Transfer::launch(plan))
    }

    /// Cancel every transfer this manager started (they report [`TransferError::Cancelled`]).
    pub fn cancel_all(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}
