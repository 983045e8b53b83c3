//! Pacing: a token bucket that lets bytes through at the target rate.

use std::time::{Duration, Instant};

/// How much a pause or a slow disk may be made up for at once: 50 ms worth of bytes.
const BURST: f64 = 0.05;

/// A token bucket in bytes, refilled at the current rate (kbit/s, 1 kbit = 1000 bits, as
/// ascp counts).
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Bytes per second at `kbps` kbit/s.
pub fn bytes_per_sec(kbps: u64) -> f64 {
    kbps as f64 * 125.0
}

impl Bucket {
    /// An empty bucket.
    pub fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: 0.0,
            last: now,
        }
    }

    /// The chunk to move at once at this rate: 20 ms worth, between 4 KiB and 1 MiB.
    pub fn chunk_for(kbps: u64) -> u64 {
        ((bytes_per_sec(kbps) / 50.0) as u64).clamp(4096, 1 << 20)
    }

    fn refill(&mut self, kbps: u64, now: Instant) {
        let rate = bytes_per_sec(kbps);
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        let cap = (rate * BURST).max(Bucket::chunk_for(kbps) as f64);
        self.tokens = (self.tokens + rate * dt).min(cap);
        self.last = now;
    }

    /// Paused or stalled: time passes, no tokens come.
    pub fn idle(&mut self, now: Instant) {
        self.tokens = 0.0;
        self.last = now;
    }

    /// `None` when `n` bytes may go now; otherwise how long to wait for them.
    pub fn wait_for(&mut self, n: u64, kbps: u64, now: Instant) -> Option<Duration> {
        self.refill(kbps, now);
        let missing = n as f64 - self.tokens;
        if missing <= 0.0 {
            return None;
        }
        Some(Duration::from_secs_f64(
            missing / bytes_per_sec(kbps).max(1.0),
        ))
    }

    /// `n` bytes went.
    pub fn take(&mut self, n: u64) {
        self.tokens -= n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated time: the bucket lets exactly the rate through, whatever the chunking.
    #[test]
    fn paces_to_the_rate() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut b = Bucket::new(t0);
        let kbps = 200_000;
        let mut sent = 0u64;
        while now.duration_since(t0) < Duration::from_secs(10) {
            let chunk = Bucket::chunk_for(kbps);
            match b.wait_for(chunk, kbps, now) {
                None => {
                    b.take(chunk);
                    sent += chunk;
                }
                Some(w) => now += w,
            }
        }
        let rate = sent as f64 / 10.0;
        assert!((rate / bytes_per_sec(kbps) - 1.0).abs() < 0.01, "{rate}");
    }

    #[test]
    fn idle_time_is_not_made_up() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        b.idle(t0 + Duration::from_secs(5));
        // After a 5 s pause at most a burst is available, not 5 s worth.
        let big = bytes_per_sec(8_000) as u64;
        assert!(
            b.wait_for(big, 8_000, t0 + Duration::from_secs(5))
                .is_some()
        );
    }
}
