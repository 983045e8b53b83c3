//! In-process workers for the tests that run jobs with ascp-sim as the engine
//! (`tests/worker.rs`, `tests/persistent.rs`, `tests/wake.rs`): their transfer options and
//! quick timings, a worker task stopped or dropped as a crash.

use std::path::PathBuf;
use std::time::Duration;

use fasp_jobs::{JobError, JobEvent, JobStore, Worker, WorkerConfig};
use fasp_manager::{Manager, TransferOptions};
use fasp_testkit::sim::Work;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// How long a stopped worker may take to end.
const STOP_WITHIN: Duration = Duration::from_secs(60);

/// Transfer options for ascp-sim serving `work`'s remote root, reporting every 50 ms.
pub(crate) fn sim_options(work: &Work) -> TransferOptions {
    TransferOptions::default()
        .with_env("ASCP_SIM_ROOT", work.root())
        .with_env("ASCP_SIM_STATS_INTERVAL_MS", "50")
}

/// [`sim_options`] with cancel graces of 500 ms.
pub(crate) fn quick_options(work: &Work) -> TransferOptions {
    sim_options(work).with_cancel_graces(Duration::from_millis(500), Duration::from_millis(500))
}

/// Worker `id` with [`quick_options`], a 900 ms lease renewed every 100 ms, a 20 ms poll and
/// no stagger: a dead worker's jobs are rescued within a second.
pub(crate) fn quick_config(id: &str, work: &Work) -> WorkerConfig {
    WorkerConfig::default()
        .id(id)
        .lease(Duration::from_millis(900), Duration::from_millis(100))
        .poll(Duration::from_millis(20))
        .stagger(Duration::ZERO)
        .transfer_options(quick_options(work))
}

/// A worker task on `store` with ascp-sim as ascp: stopped (its jobs given back) by `stop`,
/// or dropped as a crash by `crash`.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), JobError>>,
    /// Its events, subscribed before it ran.
    pub(crate) events: Option<broadcast::Receiver<JobEvent>>,
}

impl Running {
    /// Starts the worker.
    pub(crate) fn start(store: &JobStore, sim: &PathBuf, config: WorkerConfig) -> Running {
        let worker = Worker::new(store.clone(), Manager::builder().ascp(sim).build(), config);
        let events = Some(worker.subscribe());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            task,
            events,
        }
    }

    /// Asks it to stop; panics unless it ends well within 60 s.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(STOP_WITHIN, &mut self.task)
            .await
            .expect("the worker stops")
            .expect("the worker task")
            .expect("the worker ends well");
    }

    /// Drops the worker as a crash would: nothing more is recorded (dropping the manager
    /// stops its ascp).
    pub(crate) async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
