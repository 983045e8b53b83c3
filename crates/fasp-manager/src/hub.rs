//! Event delivery that never blocks the transfer.
//!
//! Every subscriber has its own queue. Pushing an event never waits: lifecycle events are
//! appended, and a progress sample ([`Event::is_progress`]) replaces the sample of the same
//! file that the subscriber has not read yet (the newest one moves to the back, with a count of
//! what it replaced in [`Event::coalesced`]). So a subscriber's queue holds at most one sample
//! per file plus the lifecycle events it has not read; those are capped by `limit`, and a
//! subscriber that reaches the cap gets [`EventKind::Lagged`] and its stream ends. A stream
//! ends when the transfer ends ([`Hub::close`]), whatever handles are alive.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::event::{Event, EventKind};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fan-out of one transfer.
#[derive(Debug)]
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
    limit: usize,
}

#[derive(Debug, Default)]
struct HubInner {
    subs: Vec<Arc<Queue>>,
    closed: bool,
}

/// One subscriber's queue.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    /// Events in order; `None` where a progress sample was moved to the back.
    items: VecDeque<Option<Event>>,
    /// Sequence number of `items[0]`.
    head: u64,
    /// Holes in `items`.
    holes: usize,
    /// Lifecycle events queued.
    lifecycle: usize,
    /// Progress samples queued, by a hash of (part, attempt, file): their sequence number.
    samples: HashMap<u64, u64>,
    hasher: std::collections::hash_map::RandomState,
    waker: Option<Waker>,
    /// No more events will come.
    closed: bool,
    /// The receiver was dropped.
    gone: bool,
    /// Cut off for lagging: how many events were not queued.
    lagged: Option<u64>,
}

impl QueueState {
    fn key(&self, ev: &Event) -> Option<u64> {
        let EventKind::FileProgress(f) = &ev.kind else {
            return None;
        };
        Some(self.hasher.hash_one((ev.part, ev.attempt, f.file.as_str())))
    }

    fn push(&mut self, mut ev: Event, limit: usize) {
        if let Some(missed) = &mut self.lagged {
            *missed += 1;
            return;
        }
        match self.key(&ev) {
            Some(key) => {
                if let Some(seq) = self.samples.get(&key).copied() {
                    let idx = (seq - self.head) as usize;
                    let same = matches!(
                        self.items.get(idx),
                        Some(Some(Event { kind: EventKind::FileProgress(old), part, attempt, .. }))
                            if *part == ev.part && *attempt == ev.attempt
                                && matches!(&ev.kind, EventKind::FileProgress(new) if new.file == old.file)
                    );
                    if same {
                        if let Some(old) = self.items[idx].take() {
                            ev.coalesced += old.coalesced + 1;
                        }
                        self.holes += 1;
                    }
                }
                let seq = self.head + self.items.len() as u64;
                self.items.push_back(Some(ev));
                self.samples.insert(key, seq);
                self.compact();
            }
            None => {
                if self.lifecycle >= limit {
                    self.lagged = Some(1);
                } else {
                    self.lifecycle += 1;
                    self.items.push_back(Some(ev));
                }
            }
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Drop the holes when they are most of the queue (each push can leave one).
    fn compact(&mut self) {
        if self.holes < 64 || self.holes * 2 < self.items.len() {
            return;
        }
        self.items.retain(Option::is_some);
        self.holes = 0;
        self.samples.clear();
        let head = self.head;
        for (i, ev) in self.items.iter().enumerate() {
            if let Some(ev) = ev {
                if let Some(key) = self.key(ev) {
                    self.samples.insert(key, head + i as u64);
                }
            }
        }
    }

    fn pop(&mut self) -> Option<Event> {
        while let Some(item) = self.items.pop_front() {
            let seq = self.head;
            self.head += 1;
            match item {
                None => self.holes -= 1,
                Some(ev) => {
                    match self.key(&ev) {
                        Some(key) => {
                            if self.samples.get(&key) == Some(&seq) {
                                self.samples.remove(&key);
                            }
                        }
                        None => self.lifecycle -= 1,
                    }
                    return Some(ev);
                }
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.items.len() - self.holes
    }
}

impl Hub {
    pub(crate) fn new(limit: usize) -> Hub {
        Hub {
            inner: Mutex::new(HubInner::default()),
            limit: limit.max(1),
        }
    }

    /// A new subscriber, from the next event on (already ended if the transfer has).
    pub(crate) fn subscribe(&self) -> Arc<Queue> {
        let q = Arc::new(Queue::default());
        let mut inner = lock(&self.inner);
        if inner.closed {
            lock(&q.state).closed = true;
        } else {
            inner.subs.push(q.clone());
        }
        q
    }

    /// Hand `ev` to every subscriber. Never waits for any of them.
    pub(crate) fn push(&self, ev: Event) {
        let mut inner = lock(&self.inner);
        let mut gone = false;
        let n = inner.subs.len();
        let mut ev = Some(ev);
        for (i, q) in inner.subs.iter().enumerate() {
            let mut st = lock(&q.state);
            if st.gone {
                gone = true;
                continue;
            }
            let e = if i + 1 == n { ev.take() } else { ev.clone() };
            if let Some(e) = e {
                st.push(e, self.limit);
            }
        }
        if gone {
            inner.subs.retain(|q| !lock(&q.state).gone);
        }
    }

    /// No more events: every stream ends once its queue is read.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        for q in inner.subs.drain(..) {
            let mut st = lock(&q.state);
            st.closed = true;
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        }
    }
}

impl Queue {
    /// The next event, `Ready(None)` at the end.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut st = lock(&self.state);
        if let Some(ev) = st.pop() {
            return Poll::Ready(Some(ev));
        }
        if let Some(missed) = st.lagged.take() {
            // Ends the stream: nothing more is queued for this subscriber.
            st.closed = true;
            st.gone = true;
            return Poll::Ready(Some(Event {
                part: 0,
                attempt: 0,
                session_id: None,
                kind: EventKind::Lagged { missed },
                frame: None,
                coalesced: 0,
            }));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Events waiting to be read.
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).len()
    }

    /// The receiver is gone: stop queueing for it.
    pub(crate) fn drop_receiver(&self) {
        let mut st = lock(&self.state);
        st.gone = true;
        st.items.clear();
        st.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileInfo;
    use futures::StreamExt;

    struct S(Arc<Queue>);
    impl futures::Stream for S {
        type Item = Event;
        fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
            self.0.poll_next(cx)
        }
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            part: 0,
            attempt: 1,
            session_id: None,
            kind,
            frame: None,
            coalesced: 0,
        }
    }

    fn progress(file: &str, written: u64) -> Event {
        ev(EventKind::FileProgress(FileInfo {
            file: file.into(),
            written,
            ..FileInfo::default()
        }))
    }

    fn drain(q: &Arc<Queue>) -> Vec<Event> {
        futures::executor::block_on(S(q.clone()).collect())
    }

    /// A subscriber that never reads holds one sample per file, every lifecycle event in
    /// order, and the newest sample of each file with the count of those it replaced.
    #[test]
    fn a_subscriber_behind_gets_lifecycle_in_order_and_the_newest_sample_per_file() {
        let hub = Hub::new(1000);
        let q = hub.subscribe();
        hub.push(ev(EventKind::Connected));
        for i in 0..10_000u64 {
            hub.push(progress("a", i));
            hub.push(progress("b", i * 2));
            if i == 5_000 {
                hub.push(ev(EventKind::FileDone(FileInfo::default())));
            }
        }
        assert!(q.len() <= 4, "queue grew to {}", q.len());
        hub.push(ev(EventKind::Finished {
            state: crate::TransferState::Done,
            code: None,
        }));
        hub.close();
        let got = drain(&q);
        let kinds: Vec<_> = got
            .iter()
            .map(|e| match &e.kind {
                EventKind::FileProgress(f) => format!("{}={}+{}", f.file, f.written, e.coalesced),
                EventKind::Connected => "connected".into(),
                EventKind::FileDone(_) => "done".into(),
                EventKind::Finished { .. } => "finished".into(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "connected",
                "done",
                "a=9999+9999",
                "b=19998+9999",
                "finished"
            ]
        );
    }

    #[test]
    fn a_reader_that_keeps_up_loses_nothing() {
        let hub = Hub::new(10);
        let q = hub.subscribe();
        let mut seen = Vec::new();
        for i in 0..1000u64 {
            hub.push(progress("a", i));
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            if let Poll::Ready(Some(e)) = q.poll_next(&mut cx) {
                assert_eq!(e.coalesced, 0);
                seen.push(e);
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn a_subscriber_over_the_cap_is_told_and_ended_others_are_not_affected() {
        let hub = Hub::new(5);
        let slow = hub.subscribe();
        let fast = hub.subscribe();
        let mut fast_got = 0;
        for _ in 0..20 {
            hub.push(ev(EventKind::Connected));
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            while let Poll::Ready(Some(_)) = fast.poll_next(&mut cx) {
                fast_got += 1;
            }
        }
        hub.close();
        assert_eq!(fast_got, 20);
        let got = drain(&slow);
        assert_eq!(got.len(), 6);
        assert!(matches!(got[5].kind, EventKind::Lagged { missed: 15 }));
    }

    #[test]
    fn streams_end_when_the_hub_closes_and_late_subscribers_end_at_once() {
        let hub = Hub::new(5);
        let q = hub.subscribe();
        hub.push(ev(EventKind::Connected));
        hub.close();
        assert_eq!(drain(&q).len(), 1);
        assert!(drain(&hub.subscribe()).is_empty());
    }

    #[test]
    fn compaction_keeps_order_and_samples() {
        let hub = Hub::new(100_000);
        let q = hub.subscribe();
        for i in 0..5_000u64 {
            hub.push(progress(&format!("f{}", i % 7), i));
            if i % 100 == 0 {
                hub.push(ev(EventKind::Connected));
            }
        }
        hub.close();
        let got = drain(&q);
        let samples: Vec<_> = got.iter().filter(|e| e.is_progress()).collect();
        assert_eq!(samples.len(), 7);
        let total: u64 = samples.iter().map(|e| e.coalesced + 1).sum();
        assert_eq!(total, 5_000);
        assert_eq!(got.len() - samples.len(), 50);
    }
}
