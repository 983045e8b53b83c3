//! The `watch`-style progress snapshot, kept up to date from the events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::event::{Event, EventKind};

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TransferState {
    /// Waiting for a slot.
    #[default]
    Queued,
    /// ascp is starting, connecting, negotiating.
    Starting,
    /// Data is moving.
    Transferring,
    /// Paused by the caller (rates 0).
    Paused,
    /// Waiting before another attempt.
    Retrying,
    /// Finished well.
    Done,
    /// Finished badly.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A snapshot of a transfer's progress. Bytes count each file once across attempts and
/// sessions (the most written for it), so the figure never goes back on a retry.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// Where the transfer is.
    pub state: TransferState,
    /// Bytes written so far.
    pub bytes_done: u64,
    /// Bytes to write, when known (pre-calculation, or the sizes of the files seen so far).
    pub bytes_expected: Option<u64>,
    /// Files started.
    pub files_started: u64,
    /// Files done.
    pub files_done: u64,
    /// Files skipped.
    pub files_skipped: u64,
    /// Files failed.
    pub files_failed: u64,
    /// The file most recently reported.
    pub current_file: Option<String>,
    /// Target rate in force, Kbps.
    pub target_rate_kbps: Option<u64>,
    /// Minimum rate in force, Kbps.
    pub min_rate_kbps: Option<u64>,
    /// Time since the transfer started.
    pub elapsed: Duration,
    /// Recent throughput, bytes per second.
    pub throughput_bps: f64,
    /// Estimated time left, when the total is known and data is moving.
    pub eta: Option<Duration>,
    /// Attempts so far.
    pub attempts: u32,
}

#[derive(Debug, Default)]
struct FileSlot {
    written: u64,
    size: Option<u64>,
    started: bool,
}

/// Folds events into a [`Progress`].
#[derive(Debug)]
pub(crate) struct Tracker {
    start: Instant,
    files: HashMap<(u32, String), FileSlot>,
    /// Per part: job size from pre-calculation.
    job_bytes: HashMap<u32, u64>,
    /// Per part: rates in force.
    rates: HashMap<u32, (Option<u64>, Option<u64>)>,
    last_sample: Option<(Instant, u64)>,
    pub(crate) progress: Progress,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker {
            start: Instant::now(),
            files: HashMap::new(),
            job_bytes: HashMap::new(),
            rates: HashMap::new(),
            last_sample: None,
            progress: Progress::default(),
        }
    }

    pub(crate) fn set_state(&mut self, state: TransferState) {
        self.progress.state = state;
        self.touch();
    }

    /// Update from one event; returns whether the snapshot changed.
    pub(crate) fn apply(&mut self, event: &Event) {
        let p = &mut self.progress;
        p.attempts = p.attempts.max(event.attempt);
        match &event.kind {
            EventKind::Spawned { .. }
                if matches!(p.state, TransferState::Queued | TransferState::Retrying) =>
            {
                p.state = TransferState::Starting;
            }
            EventKind::SessionStarted(s) => {
                self.rates
                    .insert(event.part, (s.rates.target_kbps, s.rates.min_kbps));
            }
            EventKind::RateChanged(r) => {
                self.rates.insert(event.part, (r.target_kbps, r.min_kbps));
            }
            EventKind::JobSize { bytes: Some(b), .. } => {
                self.job_bytes.insert(event.part, *b);
            }
            EventKind::FileStarted(f) | EventKind::FileProgress(f) => {
                let slot = self.files.entry((event.part, f.file.clone())).or_default();
                if !slot.started {
                    slot.started = true;
                    p.files_started += 1;
                }
                slot.written = slot.written.max(f.written);
                slot.size = f.size.or(slot.size);
                p.current_file = Some(f.file.clone());
                if p.state == TransferState::Starting {
                    p.state = TransferState::Transferring;
                }
            }
            EventKind::FileDone(f) => {
                let slot = self.files.entry((event.part, f.file.clone())).or_default();
                slot.written = slot.written.max(f.written).max(f.size.unwrap_or(0));
                slot.size = f.size.or(slot.size);
                p.files_done += 1;
            }
            EventKind::FileSkipped(_) => p.files_skipped += 1,
            EventKind::FileFailed { .. } => p.files_failed += 1,
            _ => {}
        }
        self.touch();
    }

    /// Recompute the derived figures.
    fn touch(&mut self) {
        let now = Instant::now();
        let p = &mut self.progress;
        p.elapsed = now - self.start;
        p.bytes_done = self.files.values().map(|f| f.written).sum();
        let sizes: u64 = self
            .files
            .values()
            .map(|f| f.size.unwrap_or(f.written))
            .sum();
        let job: u64 = self.job_bytes.values().sum();
        p.bytes_expected = if job > 0 {
            Some(job.max(p.bytes_done))
        } else if !self.files.is_empty() {
            Some(sizes.max(p.bytes_done))
        } else {
            None
        };
        if !self.rates.is_empty() {
            // A total only when every part reported its rate.
            let total = |values: Vec<Option<u64>>| {
                values
                    .into_iter()
                    .try_fold(0u64, |acc, v| v.map(|v| acc + v))
            };
            p.target_rate_kbps = total(self.rates.values().map(|r| r.0).collect());
            p.min_rate_kbps = total(self.rates.values().map(|r| r.1).collect());
        }
        // Throughput: an average over the last second or more, smoothed.
        match self.last_sample {
            None => self.last_sample = Some((now, p.bytes_done)),
            Some((t, b)) => {
                let dt = (now - t).as_secs_f64();
                if dt >= 0.5 {
                    let rate = p.bytes_done.saturating_sub(b) as f64 / dt;
                    p.throughput_bps = if p.throughput_bps == 0.0 {
                        rate
                    } else {
                        0.5 * p.throughput_bps + 0.5 * rate
                    };
                    self.last_sample = Some((now, p.bytes_done));
                }
            }
        }
        p.eta = match p.bytes_expected {
            Some(total) if p.throughput_bps > 1.0 && total >= p.bytes_done => Some(
                Duration::from_secs_f64((total - p.bytes_done) as f64 / p.throughput_bps),
            ),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileInfo;

    fn ev(part: u32, attempt: u32, kind: EventKind) -> Event {
        Event {
            part,
            attempt,
            session_id: None,
            kind,
            frame: None,
        }
    }

    fn file(name: &str, written: u64, size: u64) -> FileInfo {
        FileInfo {
            file: name.into(),
            size: Some(size),
            written,
            ..FileInfo::default()
        }
    }

    #[test]
    fn bytes_stay_continuous_across_attempts_and_sum_across_parts() {
        let mut t = Tracker::new();
        t.apply(&ev(0, 1, EventKind::FileStarted(file("a", 100, 1000))));
        t.apply(&ev(0, 1, EventKind::FileProgress(file("a", 600, 1000))));
        t.apply(&ev(1, 1, EventKind::FileStarted(file("b", 50, 500))));
        assert_eq!(t.progress.bytes_done, 650);
        assert_eq!(t.progress.bytes_expected, Some(1500));
        // A retry resumes "a": its first STATS reports less than before; no going back.
        t.apply(&ev(0, 2, EventKind::FileStarted(file("a", 550, 1000))));
        assert_eq!(t.progress.bytes_done, 650);
        assert_eq!(t.progress.files_started, 2);
        t.apply(&ev(0, 2, EventKind::FileDone(file("a", 1000, 1000))));
        assert_eq!(t.progress.bytes_done, 1050);
        assert_eq!(t.progress.files_done, 1);
        assert_eq!(t.progress.attempts, 2);
    }
}
