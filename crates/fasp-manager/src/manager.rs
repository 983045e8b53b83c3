//! [`Manager`]: starts transfers, optionally limits how many run at once, and stops them all
//! when asked or when it is dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use fasp_spec::TransferSpec;
use tokio::sync::Semaphore;

use crate::core::{Core, CoreConfig, Request};
use crate::discovery::find_ascp;
use crate::driver::{self, Plan, Shared};
use crate::error::TransferError;
use crate::options::TransferOptions;
use crate::transfer::Transfer;

/// Starts and tracks transfers. Cheap to clone: clones share the concurrency limit, the
/// transfer numbering and [`Manager::cancel_all`].
///
/// When the last clone is dropped, every transfer it started is cancelled as by
/// [`Manager::cancel_all`]; their ascp processes are stopped and reaped in the background.
#[derive(Clone, Debug)]
pub struct Manager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ascp: Option<PathBuf>,
    limit: Option<Arc<Semaphore>>,
    next_id: AtomicU64,
    live: Arc<Mutex<HashMap<u64, Weak<Shared>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        cancel_all(&self.live);
    }
}

fn cancel_all(live: &Mutex<HashMap<u64, Weak<Shared>>>) {
    let live: Vec<Arc<Shared>> = live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for shared in live {
        let _ = shared.with(|c, now| c.core.control(now, Request::Cancel));
    }
}

/// Settings of a [`Manager`].
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct ManagerBuilder {
    ascp: Option<PathBuf>,
    limit: Option<usize>,
}

impl ManagerBuilder {
    /// Use this ascp binary (otherwise [`crate::find_ascp`] finds one at each start).
    pub fn ascp(mut self, path: impl Into<PathBuf>) -> Self {
        self.ascp = Some(path.into());
        self
    }

    /// Run at most `n` transfers at once (at least 1); the others wait in line, in the order
    /// they were started (state `Queued`), and never spawn ascp if cancelled meanwhile.
    pub fn concurrency_limit(mut self, n: usize) -> Self {
        self.limit = Some(n.max(1));
        self
    }

    /// The manager.
    pub fn build(self) -> Manager {
        Manager {
            inner: Arc::new(Inner {
                ascp: self.ascp,
                limit: self.limit.map(|n| Arc::new(Semaphore::new(n))),
                next_id: AtomicU64::new(1),
                live: Arc::default(),
            }),
        }
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
        Manager::builder().build()
    }

    /// Use this ascp binary; same as `Manager::builder().ascp(path).build()`.
    pub fn with_ascp(path: impl Into<PathBuf>) -> Manager {
        Manager::builder().ascp(path).build()
    }

    /// Settings: ascp binary, concurrency limit.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Start a transfer (must be called within a tokio runtime). The spec is validated and
    /// ascp located before anything starts; everything after is reported through the
    /// returned [`Transfer`].
    ///
    /// The transfer belongs to this manager: dropping the last clone of the manager cancels
    /// every transfer it started, handles kept or not (so nothing outlives it). Keep the
    /// manager in a variable: `Manager::new().start(..)` drops it at the end of the
    /// statement, and the transfer ends [`TransferError::Cancelled`] at once.
    pub fn start(
        &self,
        spec: &TransferSpec,
        options: TransferOptions,
    ) -> Result<Transfer, TransferError> {
        spec.validate()?;
        let program = find_ascp(self.inner.ascp.as_deref())?;
        let cookie = match &spec.cookie {
            Some(c) => c.expose().to_owned(),
            None => crate::process::cookie().map_err(|source| TransferError::Io {
                what: "draw a random cookie",
                source,
            })?,
        };
        let parts = options.sessions.max(1);
        let core = Core::new(CoreConfig {
            parts,
            retry: options.retry.clone(),
            connect_timeout: options.connect_timeout,
            inactivity_timeout: options.inactivity_timeout,
            cancel_grace: options.cancel_grace,
            term_grace: options.term_grace,
            exit_grace: options.exit_grace,
            query_answer: options.query_answer,
            persistent: spec.keepalive == Some(true),
            spec_rates: (spec.target_rate_kbps, spec.min_rate_kbps),
            cookie: cookie.clone(),
        });
        let (shared, progress, todo) = driver::shared(core, parts as usize, options.event_buffer);
        let first = Transfer::subscribe_queue(&shared);
        // Each listener on a thread of its own, fed like a subscriber: a slow one delays only
        // itself. `wait` returns once each has seen the last event.
        let mut listeners_done = Vec::new();
        for listener in &options.listeners {
            let stream = Transfer::subscribe_queue(&shared);
            let listener = listener.clone();
            let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name("fasp-listener".into())
                .spawn(move || {
                    futures::executor::block_on(futures::StreamExt::for_each(stream, |ev| {
                        listener.on_event(&ev);
                        futures::future::ready(())
                    }));
                    let _ = done.send(());
                });
            if let Err(source) = spawned {
                // The threads already started end with the hub.
                shared.hub.close();
                return Err(TransferError::Io {
                    what: "start a listener thread",
                    source,
                });
            }
            listeners_done.push(done_rx);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let permit = self
            .inner
            .limit
            .clone()
            .and_then(|l| l.try_acquire_owned().ok());
        let plan = Plan {
            spec: spec.clone(),
            program,
            options,
            cookie,
            limit: self.inner.limit.clone(),
            permit,
            listeners_done,
        };
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::downgrade(&shared));
        let live = self.inner.live.clone();
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                let result = driver::run(shared, plan, todo).await;
                live.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                result
            }
        });
        Ok(Transfer::new(id, shared, progress, task, first))
    }

    /// Cancel every transfer this manager (or a clone) started, exactly as
    /// [`Controller::cancel`](crate::Controller::cancel) does for one: queued ones end without
    /// spawning, running ones get `CANCEL`, then SIGTERM, then SIGKILL. Returns at once.
    pub fn cancel_all(&self) {
        cancel_all(&self.inner.live);
    }
}
