//! Where events go: listeners, the progress snapshot, and every subscribed stream.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::event::{Event, TransferListener};
use crate::progress::{Progress, Tracker, TransferState};

/// Fan-out of one transfer's events. Subscribers get every event from the moment they
/// subscribe, in order; a subscriber that does not keep up slows the transfer's reporting
/// down (its queue is bounded) rather than losing events.
pub(crate) struct Sink {
    listeners: Vec<Arc<dyn TransferListener>>,
    subscribers: Mutex<Vec<mpsc::Sender<Event>>>,
    tracker: Mutex<Tracker>,
    progress: watch::Sender<Progress>,
    capacity: usize,
}

impl Sink {
    pub(crate) fn new(
        listeners: Vec<Arc<dyn TransferListener>>,
        capacity: usize,
    ) -> (Arc<Sink>, watch::Receiver<Progress>) {
        let (progress, rx) = watch::channel(Progress::default());
        let sink = Sink {
            listeners,
            subscribers: Mutex::new(Vec::new()),
            tracker: Mutex::new(Tracker::new()),
            progress,
            capacity: capacity.max(1),
        };
        (Arc::new(sink), rx)
    }

    /// A new stream of events from now on.
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    pub(crate) fn set_state(&self, state: TransferState) {
        let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        self.progress.send_modify(|p| t.set_state(p, state));
    }

    pub(crate) fn snapshot(&self) -> Progress {
        self.progress.borrow().clone()
    }

    pub(crate) async fn emit(&self, event: Event) {
        for l in &self.listeners {
            l.on_event(&event);
        }
        {
            // Updated in place: no copy of the snapshot per event.
            let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            self.progress.send_modify(|p| t.apply(p, &event));
        }
        // Hand the event to every subscriber with room for it without leaving the lock (no
        // copy of the list, and the last one gets the event itself); only a subscriber that
        // is behind is waited for, outside the lock, in order.
        let (behind, event, mut gone) = {
            let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            let mut behind: Vec<mpsc::Sender<Event>> = Vec::new();
            let mut gone = false;
            let mut event = Some(event);
            for (i, tx) in subs.iter().enumerate() {
                if !behind.is_empty() {
                    // Someone ahead is waited for: keep the order, wait for this one too.
                    behind.push(tx.clone());
                    continue;
                }
                let ev = if i + 1 == subs.len() {
                    event.take()
                } else {
                    event.clone()
                };
                let Some(ev) = ev else { break };
                match tx.try_send(ev) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
                    Err(mpsc::error::TrySendError::Full(ev)) => {
                        behind.push(tx.clone());
                        event = Some(ev);
                    }
                }
            }
            (behind, event, gone)
        };
        if let Some(event) = event {
            for tx in &behind {
                if tx.send(event.clone()).await.is_err() {
                    gone = true;
                }
            }
        }
        if gone {
            self.subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|tx| !tx.is_closed());
        }
    }
}
