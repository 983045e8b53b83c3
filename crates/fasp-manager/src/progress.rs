//! The `watch`-style progress snapshot, kept up to date from the events.

use std::collections::HashMap;
use std::time::Duration;

use crate::event::{Event, EventKind};

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Progress {
    /// Where the transfer is.
    pub state: TransferState,
    /// Bytes written so far.
    pub bytes_done: u64,
    /// Bytes to write, when known (pre-calculation, or the sizes of the files seen so far:
    /// see [`Progress::total_known`]).
    pub bytes_expected: Option<u64>,
    /// Whether [`Progress::bytes_expected`] is the whole job's size: every part reported its
    /// pre-calculated job size (`precalculate_job_size`). Otherwise it only sums the files
    /// seen so far and may still grow; [`Progress::eta`] is then `None`.
    pub total_known: bool,
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
    #[cfg_attr(
        feature = "serde",
        serde(rename = "elapsed_ms", serialize_with = "crate::ser::millis")
    )]
    pub elapsed: Duration,
    /// Recent throughput, bytes per second.
    pub throughput_bps: f64,
    /// Estimated time left, when the total is known and data is moving.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "eta_ms", serialize_with = "crate::ser::opt_millis")
    )]
    pub eta: Option<Duration>,
    /// Attempts so far.
    pub attempts: u32,
}

/// Where a file stands across every attempt of its part.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FileStatus {
    /// Not seen yet.
    #[default]
    New,
    /// Seen in a STATS, not finished.
    InFlight,
    Done,
    Skipped,
    Failed,
}

#[derive(Debug, Default)]
struct FileSlot {
    written: u64,
    size: Option<u64>,
    status: FileStatus,
}

impl FileSlot {
    /// What the file adds to the expected total: its size, or what was written if unknown.
    fn expected(&self) -> u64 {
        self.size.unwrap_or(self.written)
    }
}

/// Target and minimum rate of one part (either unknown until ascp reports it).
type PartRates = (Option<u64>, Option<u64>);

/// Folds events into a [`Progress`]. Every figure is kept up to date as events come (sums
/// included), so one event costs the same with one file or a hundred thousand.
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Per part, per file path.
    files: HashMap<u32, HashMap<String, FileSlot>>,
    /// Number of files in `files`.
    file_count: usize,
    /// Sum of `written` over `files`.
    written_sum: u64,
    /// Sum of [`FileSlot::expected`] over `files`.
    expected_sum: u64,
    /// Per part: job size from pre-calculation.
    job_bytes: HashMap<u32, u64>,
    /// Per part: rates in force.
    rates: HashMap<u32, PartRates>,
    last_sample: Option<(Duration, u64)>,
    /// Parts of the transfer: the total is known once each reported its job size.
    parts: usize,
}

impl Tracker {
    pub(crate) fn new(parts: usize) -> Tracker {
        Tracker {
            parts: parts.max(1),
            files: HashMap::new(),
            file_count: 0,
            written_sum: 0,
            expected_sum: 0,
            job_bytes: HashMap::new(),
            rates: HashMap::new(),
            last_sample: None,
        }
    }

    pub(crate) fn set_state(&mut self, p: &mut Progress, state: TransferState, now: Duration) {
        p.state = state;
        self.touch(p, now);
    }

    /// A part ended: its rates no longer count in the snapshot.
    pub(crate) fn part_ended(&mut self, part: u32) {
        self.rates.remove(&part);
    }

    /// Move a file to `to`, keeping the counters right (each file counted once, in the
    /// state it is in now).
    fn move_file(p: &mut Progress, slot: &mut FileSlot, to: FileStatus) {
        fn count(p: &mut Progress, s: FileStatus) -> Option<&mut u64> {
            match s {
                FileStatus::Done => Some(&mut p.files_done),
                FileStatus::Skipped => Some(&mut p.files_skipped),
                FileStatus::Failed => Some(&mut p.files_failed),
                _ => None,
            }
        }
        if slot.status == to {
            return;
        }
        if let Some(c) = count(p, slot.status) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = count(p, to) {
            *c += 1;
        }
        if slot.status == FileStatus::New {
            p.files_started += u64::from(to == FileStatus::InFlight);
        }
        slot.status = to;
    }

    /// Update the file's slot with `update`, keeping the sums right. The path is copied only
    /// the first time the file is seen.
    fn update_file(&mut self, part: u32, file: &str, update: impl FnOnce(&mut FileSlot)) {
        let files = self.files.entry(part).or_default();
        let slot = match files.get_mut(file) {
            Some(slot) => slot,
            None => {
                self.file_count += 1;
                files.entry(file.to_owned()).or_default()
            }
        };
        let (written, expected) = (slot.written, slot.expected());
        update(slot);
        self.written_sum = self.written_sum - written + slot.written;
        self.expected_sum = self.expected_sum - expected + slot.expected();
    }

    /// Update `p` from one event.
    pub(crate) fn apply(&mut self, p: &mut Progress, event: &Event, now: Duration) {
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
                self.update_file(event.part, &f.file, |slot| {
                    if slot.status == FileStatus::New {
                        Self::move_file(p, slot, FileStatus::InFlight);
                    }
                    slot.written = slot.written.max(f.written);
                    slot.size = f.size.or(slot.size);
                });
                if p.current_file.as_deref() != Some(f.file.as_str()) {
                    p.current_file = Some(f.file.clone());
                }
                if p.state == TransferState::Starting {
                    p.state = TransferState::Transferring;
                }
            }
            EventKind::FileDone(f) => {
                self.update_file(event.part, &f.file, |slot| {
                    slot.written = slot.written.max(f.written).max(f.size.unwrap_or(0));
                    slot.size = f.size.or(slot.size);
                    Self::move_file(p, slot, FileStatus::Done);
                });
            }
            EventKind::FileSkipped(f) => {
                self.update_file(event.part, &f.file, |slot| {
                    slot.size = f.size.or(slot.size);
                    match slot.status {
                        // Sent before (a retry's resume found it complete): it is done.
                        FileStatus::Done => {}
                        FileStatus::InFlight | FileStatus::Failed if event.attempt > 1 => {
                            slot.written = slot.written.max(slot.size.unwrap_or(0));
                            Self::move_file(p, slot, FileStatus::Done);
                        }
                        _ => Self::move_file(p, slot, FileStatus::Skipped),
                    }
                });
            }
            EventKind::FileFailed { file: f, .. } => {
                self.update_file(event.part, &f.file, |slot| {
                    if slot.status != FileStatus::Done {
                        Self::move_file(p, slot, FileStatus::Failed);
                    }
                });
            }
            _ => {}
        }
        self.touch(p, now);
    }

    /// Recompute the derived figures.
    fn touch(&mut self, p: &mut Progress, now: Duration) {
        p.elapsed = now;
        p.bytes_done = self.written_sum;
        let job: u64 = self.job_bytes.values().sum();
        p.total_known = self.job_bytes.len() >= self.parts;
        p.bytes_expected = if job > 0 {
            Some(job.max(p.bytes_done))
        } else if self.file_count > 0 {
            Some(self.expected_sum.max(p.bytes_done))
        } else {
            None
        };
        if !self.rates.is_empty() {
            // A total only when every part reported its rate.
            let total = |pick: fn(&PartRates) -> Option<u64>| {
                self.rates
                    .values()
                    .try_fold(0u64, |acc, r| pick(r).map(|v| acc + v))
            };
            p.target_rate_kbps = total(|r| r.0);
            p.min_rate_kbps = total(|r| r.1);
        }
        // Throughput: an average over the last second or more, smoothed.
        match self.last_sample {
            None => self.last_sample = Some((now, p.bytes_done)),
            Some((t, b)) => {
                let dt = now.saturating_sub(t).as_secs_f64();
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
            // No estimate from a total that may still grow.
            Some(total) if p.total_known && p.throughput_bps > 1.0 && total >= p.bytes_done => {
                Some(Duration::from_secs_f64(
                    (total - p.bytes_done) as f64 / p.throughput_bps,
                ))
            }
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
            coalesced: 0,
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
    fn no_eta_until_every_part_reported_its_job_size() {
        let mut t = Tracker::new(2);
        let mut p = Progress::default();
        let job = |bytes| EventKind::JobSize {
            files: Some(1),
            bytes: Some(bytes),
        };
        // Files seen without pre-calculation: a total that may grow, no estimate.
        t.apply(
            &mut p,
            &ev(0, 1, EventKind::FileStarted(file("a", 0, 1000))),
            Duration::ZERO,
        );
        t.apply(
            &mut p,
            &ev(0, 1, EventKind::FileProgress(file("a", 400, 1000))),
            Duration::from_secs(1),
        );
        assert_eq!(p.bytes_expected, Some(1000));
        assert!(!p.total_known);
        assert!(p.throughput_bps > 1.0);
        assert_eq!(p.eta, None);
        // One part of two counted its job: still not the whole total.
        t.apply(&mut p, &ev(0, 1, job(1000)), Duration::from_secs(1));
        assert!(!p.total_known && p.eta.is_none());
        // Both: the total is the job's and the estimate shows.
        t.apply(&mut p, &ev(1, 1, job(3000)), Duration::from_secs(1));
        assert!(p.total_known);
        assert_eq!(p.bytes_expected, Some(4000));
        assert!(p.eta.is_some());
    }

    #[test]
    fn bytes_stay_continuous_across_attempts_and_sum_across_parts() {
        let mut t = Tracker::new(2);
        let mut p = Progress::default();
        t.apply(
            &mut p,
            &ev(0, 1, EventKind::FileStarted(file("a", 100, 1000))),
            Duration::ZERO,
        );
        t.apply(
            &mut p,
            &ev(0, 1, EventKind::FileProgress(file("a", 600, 1000))),
            Duration::ZERO,
        );
        t.apply(
            &mut p,
            &ev(1, 1, EventKind::FileStarted(file("b", 50, 500))),
            Duration::ZERO,
        );
        assert_eq!(p.bytes_done, 650);
        assert_eq!(p.bytes_expected, Some(1500));
        assert_eq!(p.current_file.as_deref(), Some("b"));
        // A retry resumes "a": its first STATS reports less than before; no going back.
        t.apply(
            &mut p,
            &ev(0, 2, EventKind::FileStarted(file("a", 550, 1000))),
            Duration::ZERO,
        );
        assert_eq!(p.bytes_done, 650);
        assert_eq!(p.files_started, 2);
        t.apply(
            &mut p,
            &ev(0, 2, EventKind::FileDone(file("a", 1000, 1000))),
            Duration::ZERO,
        );
        assert_eq!(p.bytes_done, 1050);
        assert_eq!(p.files_done, 1);
        assert_eq!(p.attempts, 2);
        assert_eq!(p.current_file.as_deref(), Some("a"));
    }

    /// The running sums equal a recount from scratch, whatever the order of events, with
    /// sizes known, unknown, and learnt late, across parts.
    #[test]
    fn running_sums_match_a_recount() {
        let mut t = Tracker::new(2);
        let mut p = Progress::default();
        let mut truth: HashMap<(u32, String), (u64, Option<u64>)> = HashMap::new();
        let mut seed = 7u64;
        for i in 0..5_000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let part = (seed >> 60) as u32 % 3;
            let name = format!("f{}", (seed >> 40) % 200);
            let written = (seed >> 20) % 10_000;
            let size = ((seed >> 10) % 4 != 0).then_some(10_000 + (seed >> 50) % 100);
            let info = FileInfo {
                file: name.clone(),
                size,
                written,
                ..FileInfo::default()
            };
            let done = i % 11 == 0;
            let kind = if done {
                EventKind::FileDone(info)
            } else {
                EventKind::FileProgress(info)
            };
            t.apply(&mut p, &ev(part, 1, kind), Duration::ZERO);
            let e = truth.entry((part, name)).or_insert((0, None));
            e.0 = e.0.max(written);
            if done {
                e.0 = e.0.max(size.unwrap_or(0));
            }
            e.1 = size.or(e.1);
            let bytes: u64 = truth.values().map(|v| v.0).sum();
            let expected: u64 = truth.values().map(|v| v.1.unwrap_or(v.0)).sum();
            assert_eq!(p.bytes_done, bytes, "event {i}");
            assert_eq!(p.bytes_expected, Some(expected.max(bytes)), "event {i}");
        }
    }
}
