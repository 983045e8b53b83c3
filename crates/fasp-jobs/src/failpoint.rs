//! Named kill points for the crash tests (cargo feature `failpoints`, off by default).
//!
//! Without the feature, [`hit`] is an empty inline function: the points cost nothing. With
//! it, two environment variables, read once, drive them:
//!
//! * `FASP_JOBS_FAILPOINT=NAME:N` — the process kills itself with SIGKILL the `N`th time it
//!   reaches the point `NAME` (`NAME` alone: the first time). No destructor, no flush: the
//!   same death as a `kill -9` from outside, but at a known place.
//! * `FASP_JOBS_FAILPOINT_LOG=PATH` — every point reached appends `hit NAME PID` to `PATH`,
//!   and the kill `kill NAME PID` just before it happens (one `write` each, on a file
//!   opened in append mode, so the lines of several processes never mix).
//!
//! The points, in the order a job meets them: `before_spawn`, `after_spawn`, `mid_file`,
//! `in_files_tx`, `before_complete`, `in_complete_tx`, `after_complete` (where each is, and
//! what a death there leaves: docs/jobs.md, "What happens when").
//!
//! The feature also lets `FASP_JOBS_TEST_TIMING=LEASE_MS,HEARTBEAT_MS,POLL_MS,STAGGER_MS`
//! override a worker's timings (see [`timing`]): a daemon killed in a test is restarted
//! without waiting 30 s for its jobs' leases to expire.

/// The point `name` is reached (nothing without the feature).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str) {}

/// The point `name` is reached if `cond` holds (nothing without the feature).
#[inline(always)]
pub(crate) fn hit_when(cond: bool, name: &'static str) {
    if cond {
        hit(name);
    }
}

/// A worker's settings, as they are (nothing changes without the feature).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn timing(config: crate::WorkerConfig) -> crate::WorkerConfig {
    config
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    /// The point to die at and on which of its hits.
    struct Plan {
        point: Option<(String, u64)>,
        log: Option<std::path::PathBuf>,
    }

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| {
            let point = std::env::var("FASP_JOBS_FAILPOINT")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| match v.split_once(':') {
                    Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1).max(1)),
                    None => (v, 1),
                });
            let log = std::env::var_os("FASP_JOBS_FAILPOINT_LOG")
                .filter(|v| !v.is_empty())
                .map(Into::into);
            Plan { point, log }
        })
    }

    fn log(plan: &Plan, what: &str, name: &str) {
        if let Some(path) = &plan.log {
            let line = format!("{what} {name} {}\n", std::process::id());
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    /// The point `name` is reached: log it, and die if this is the planned hit.
    pub(crate) fn hit(name: &'static str) {
        let plan = plan();
        if plan.point.is_none() && plan.log.is_none() {
            return;
        }
        static HITS: Mutex<Option<HashMap<&'static str, u64>>> = Mutex::new(None);
        let n = {
            let mut hits = HITS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = hits
                .get_or_insert_with(HashMap::new)
                .entry(name)
                .or_default();
            *count += 1;
            *count
        };
        log(plan, "hit", name);
        if plan
            .point
            .as_ref()
            .is_some_and(|(p, at)| p == name && *at == n)
        {
            log(plan, "kill", name);
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            // SIGKILL cannot be caught: nothing runs past this point.
            std::process::abort();
        }
    }

    /// `config` with the timings of `FASP_JOBS_TEST_TIMING`, if set.
    pub(crate) fn timing(mut config: crate::WorkerConfig) -> crate::WorkerConfig {
        let Ok(v) = std::env::var("FASP_JOBS_TEST_TIMING") else {
            return config;
        };
        let ms: Vec<u64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if let [lease, heartbeat, poll, stagger] = ms[..] {
            config = config
                .lease(
                    Duration::from_millis(lease),
                    Duration::from_millis(heartbeat),
                )
                .poll(Duration::from_millis(poll))
                .stagger(Duration::from_millis(stagger));
        }
        config
    }
}

#[cfg(feature = "failpoints")]
pub(crate) use armed::{hit, timing};
