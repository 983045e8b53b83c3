//! The writing side of a management connection, shared by the attempt that owns the
//! connection and by the [`Controller`](crate::Controller)s of its transfer.
//!
//! A rate change is written to the socket by the task that asked for it, when nothing is
//! waiting ahead of it: it does not wait for the attempt's task to be scheduled, which on a
//! busy host (a thousand ascp processes on two cores) is where most of a control's delay went.
//! Everything written goes through one buffer under one lock, so frames never interleave and
//! leave in the order they were handed over; what the socket does not take at once stays in
//! that buffer and the attempt writes it when the socket is writable again.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, BytesMut};
use fasp_mgmt_proto::{Control, EncodeError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a frame was not handed to the socket.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The message cannot be encoded (a path with a line break, say).
    Encode(EncodeError),
    /// The connection is broken, or (for controls) the attempt no longer takes controls.
    Closed,
}

#[derive(Debug, Default)]
struct WireState {
    /// Encoded bytes not yet taken by the socket, oldest first.
    pending: BytesMut,
    /// A write failed: nothing more is written.
    broken: bool,
    /// The attempt is stopping (or has stopped reading): controllers must go through its
    /// queue, which ignores them from then on.
    controls_closed: bool,
}

/// The writing half of one management connection.
#[derive(Debug)]
pub(crate) struct Wire {
    half: OwnedWriteHalf,
    state: Mutex<WireState>,
    /// Woken when bytes are left in `pending` for the attempt to write.
    backlog: Notify,
}

impl Wire {
    pub(crate) fn new(half: OwnedWriteHalf) -> Arc<Wire> {
        Arc::new(Wire {
            half,
            state: Mutex::new(WireState::default()),
            backlog: Notify::new(),
        })
    }

    /// Hand over one frame from the attempt itself (CANCEL, a QUERY answer, queued controls):
    /// encoded behind whatever is pending, and written now as far as the socket takes it.
    pub(crate) fn send(&self, msg: &Control) -> Result<(), WireError> {
        let mut st = lock(&self.state);
        self.push(&mut st, msg)
    }

    /// Hand over one frame from a controller; refused once the attempt stopped taking
    /// controls.
    pub(crate) fn send_control(&self, msg: &Control) -> Result<(), WireError> {
        let mut st = lock(&self.state);
        if st.controls_closed {
            return Err(WireError::Closed);
        }
        self.push(&mut st, msg)
    }

    /// From now on controllers go through the attempt's queue.
    pub(crate) fn close_controls(&self) {
        lock(&self.state).controls_closed = true;
    }

    fn push(&self, st: &mut WireState, msg: &Control) -> Result<(), WireError> {
        if st.broken {
            return Err(WireError::Closed);
        }
        let had_backlog = !st.pending.is_empty();
        msg.encode(&mut st.pending).map_err(WireError::Encode)?;
        if had_backlog {
            // The attempt is already waiting for the socket; it writes this too, in order.
            return Ok(());
        }
        match self.write_pending(st) {
            Ok(()) => Ok(()),
            Err(_) => Err(WireError::Closed),
        }
    }

    /// Write from `pending` until it is empty or the socket would block (then the attempt
    /// is told to finish the job).
    fn write_pending(&self, st: &mut WireState) -> io::Result<()> {
        while !st.pending.is_empty() {
            match self.half.try_write(&st.pending) {
                Ok(0) => {
                    st.broken = true;
                    self.backlog.notify_one();
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => st.pending.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.backlog.notify_one();
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    st.broken = true;
                    st.pending.clear();
                    // Wake `drain`, so the attempt learns the connection is broken.
                    self.backlog.notify_one();
                    return Err(e);
                }
            }
        }
        // Keep a small buffer for the next frames, not one that grew for a burst.
        if st.pending.capacity() > 4096 {
            st.pending = BytesMut::new();
        }
        Ok(())
    }

    /// Write the backlog whenever there is one and the socket takes it. Returns only when a
    /// write failed (cancel-safe: it holds no lock across an await and loses nothing).
    pub(crate) async fn drain(&self) -> io::Error {
        loop {
            let wake = self.backlog.notified();
            let backlog = {
                let st = lock(&self.state);
                if st.broken {
                    return io::ErrorKind::BrokenPipe.into();
                }
                !st.pending.is_empty()
            };
            if !backlog {
                wake.await;
                continue;
            }
            if let Err(e) = self.half.writable().await {
                lock(&self.state).broken = true;
                return e;
            }
            let mut st = lock(&self.state);
            if let Err(e) = self.write_pending(&mut st) {
                return e;
            }
        }
    }
}

/// The link between a part's controllers and the attempt currently running it.
#[derive(Debug, Default)]
pub(crate) struct PartLink {
    /// The connection of the running attempt, once it is connected.
    wire: Mutex<Option<Arc<Wire>>>,
    /// Requests sent through the part's queue and not yet written (or dropped) by the
    /// attempt. While there are any, controllers queue too, so nothing overtakes them.
    queued: AtomicUsize,
}

impl PartLink {
    /// Install (or, with `None`, remove) the running attempt's connection.
    pub(crate) fn set_wire(&self, wire: Option<Arc<Wire>>) {
        *lock(&self.wire) = wire;
    }

    /// Write `msg` at once if nothing is queued ahead of it and an attempt is connected and
    /// takes controls. `Ok(false)`: it must go through the queue.
    pub(crate) fn try_direct(&self, msg: &Control) -> Result<bool, EncodeError> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return Ok(false);
        }
        let Some(wire) = lock(&self.wire).clone() else {
            return Ok(false);
        };
        match wire.send_control(msg) {
            Ok(()) => Ok(true),
            Err(WireError::Encode(e)) => Err(e),
            Err(WireError::Closed) => Ok(false),
        }
    }

    /// A request is about to go through the queue.
    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A queued request was written, dropped, or could not be queued after all.
    pub(crate) fn dequeued(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fasp_mgmt_proto::{FrameParser, RateChange};
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (Arc<Wire>, TcpStream) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        let (_read, write) = ours.unwrap().0.into_split();
        // The read half is dropped: only the write half matters here.
        (Wire::new(write), theirs.unwrap())
    }

    fn rates(bytes: &[u8]) -> Vec<u64> {
        let mut parser = FrameParser::new();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Ok(Some(frame)) = parser.parse(&mut buf) {
            if let Ok(Control::Rate(r)) = Control::from_frame(&frame) {
                out.push(r.rate_kbps.unwrap_or(0));
            }
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    /// A peer that does not read fills the socket: what it does not take waits in the
    /// backlog, in order, later frames queue behind it (never written ahead of it), and
    /// `drain` writes it all once the peer reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backlog_keeps_order_and_drains_when_the_peer_reads() {
        let (wire, mut peer) = pair().await;
        let mut sent = 0u64;
        while lock(&wire.state).pending.is_empty() {
            wire.send_control(&Control::Rate(RateChange::rates(sent + 1, 0)))
                .unwrap();
            sent += 1;
            assert!(sent < 10_000_000, "the socket never filled");
        }
        for _ in 0..100 {
            wire.send(&Control::Rate(RateChange::rates(sent + 1, 0)))
                .unwrap();
            sent += 1;
        }
        let drain = tokio::spawn({
            let wire = wire.clone();
            async move { wire.drain().await }
        });
        let expected_len: usize = (1..=sent)
            .map(|k| Control::Rate(RateChange::rates(k, 0)).encoded_len())
            .sum();
        let mut got = vec![0u8; expected_len];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(rates(&got), (1..=sent).collect::<Vec<_>>());
        assert!(lock(&wire.state).pending.is_empty());
        // The connection closing ends `drain` with an error, and nothing more is taken.
        drop(peer);
        let mut refused = false;
        for _ in 0..1000 {
            if wire.send(&Control::Rate(RateChange::rates(1, 0))).is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(refused, "a write to a closed peer kept succeeding");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain)
            .await
            .expect("drain ended");
    }

    #[tokio::test]
    async fn controls_are_refused_once_closed_and_bad_messages_never_reach_the_socket() {
        let (wire, _peer) = pair().await;
        let link = PartLink::default();
        let rate = Control::Rate(RateChange::rates(5, 0));
        assert!(!link.try_direct(&rate).unwrap(), "no wire yet: queue");
        link.set_wire(Some(wire.clone()));
        assert!(link.try_direct(&rate).unwrap());
        link.queued();
        assert!(!link.try_direct(&rate).unwrap(), "something queued ahead");
        link.dequeued();
        link.dequeued(); // never below zero
        assert!(link.try_direct(&rate).unwrap());
        wire.close_controls();
        assert!(!link.try_direct(&rate).unwrap(), "controls closed: queue");
        assert!(
            wire.send(&Control::Cancel).is_ok(),
            "the attempt still writes"
        );
        let bad = Control::Rate(RateChange::default());
        assert!(matches!(wire.send(&bad), Err(WireError::Encode(_))));
    }
}
