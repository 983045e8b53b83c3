//! The writing side of a management connection.
//!
//! Controls are written by whichever task fed the core the input that produced them (a
//! controller's task for a rate change, the reader for a QUERY answer): it does not wait for
//! another task to be scheduled, which on a busy host (a thousand ascp processes on two cores)
//! is where most of a control's delay went. Everything written goes through one buffer under
//! one lock, so frames never interleave and leave in the order they were handed over; what the
//! socket does not take at once stays in that buffer and the connection's reader task writes
//! it when the socket is writable again. Nothing here ever waits on the socket.

use std::io;
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
    Encode(#[allow(dead_code)] EncodeError),
    /// The connection is broken.
    Closed,
}

#[derive(Debug, Default)]
struct WireState {
    /// Encoded bytes not yet taken by the socket, oldest first.
    pending: BytesMut,
    /// A write failed: nothing more is written.
    broken: bool,
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

    /// Hand over one frame: encoded behind whatever is pending, and written now as far as the
    /// socket takes it.
    pub(crate) fn send(&self, msg: &Control) -> Result<(), WireError> {
        let mut st = lock(&self.state);
        self.push(&mut st, msg)
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
            wire.send(&Control::Rate(RateChange::rates(sent + 1, 0)))
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
}
