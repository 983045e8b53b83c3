//! The named kill points of fasp-jobs (feature `failpoints`, src/failpoint.rs) as the crash
//! tests see them: their names, the environment that arms them, and the counts of the log
//! the points write (`hit NAME PID`, `kill NAME PID`).
//!
//! Also included by fasp-cli's daemon crash test (`#[path]`): keep it free of other modules.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Every point, in the order a job meets them.
pub(crate) const POINTS: [&str; 7] = [
    "before_spawn",
    "after_spawn",
    "mid_file",
    "in_files_tx",
    "before_complete",
    "in_complete_tx",
    "after_complete",
];

/// `NAME:N`: kill the process the `N`th time it reaches the point `NAME`.
pub(crate) const FAILPOINT_ENV: &str = "FASP_JOBS_FAILPOINT";
/// Where every point reached is logged.
pub(crate) const LOG_ENV: &str = "FASP_JOBS_FAILPOINT_LOG";
/// `LEASE_MS,HEARTBEAT_MS,POLL_MS,STAGGER_MS`: a worker's timings (for `fasp serve`, which
/// has no options for them).
pub(crate) const TIMING_ENV: &str = "FASP_JOBS_TEST_TIMING";

/// How often each point was reached, and how many processes died at each, per a log.
#[derive(Debug, Default, Clone)]
pub(crate) struct PointCounts {
    pub(crate) hits: BTreeMap<String, u64>,
    pub(crate) kills: BTreeMap<String, u64>,
}

impl PointCounts {
    /// The counts of the log at `path` (none if it does not exist).
    pub(crate) fn read(path: &Path) -> PointCounts {
        let mut counts = PointCounts::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(what), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let map = match what {
                "hit" => &mut counts.hits,
                "kill" => &mut counts.kills,
                _ => continue,
            };
            *map.entry(name.to_owned()).or_default() += 1;
        }
        counts
    }

    /// Times `point` was reached.
    pub(crate) fn hits(&self, point: &str) -> u64 {
        self.hits.get(point).copied().unwrap_or(0)
    }

    /// Processes killed at `point`.
    pub(crate) fn kills(&self, point: &str) -> u64 {
        self.kills.get(point).copied().unwrap_or(0)
    }

    /// Kills at every point.
    pub(crate) fn total_kills(&self) -> u64 {
        self.kills.values().sum()
    }
}

impl fmt::Display for PointCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in POINTS {
            writeln!(
                f,
                "  {p:<16} hits {:>6}  kills {:>4}",
                self.hits(p),
                self.kills(p)
            )?;
        }
        Ok(())
    }
}
