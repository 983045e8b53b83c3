//! [`RetryPolicy`]: how often and how patiently something is tried again. One type for every
//! crate of the workspace: fasp-token retries node API requests with it, fasp-manager retries
//! transfers (resuming) with it.

use std::time::Duration;

/// Retries after a first try, with waits doubling from `initial_backoff` up to
/// `max_backoff`. What is retryable is the user's business (a node answering 503, a transfer
/// failing with a retryable FASP code); this only says how many times and how long to wait.
///
/// The default is 3 retries from 500 ms to 8 s; [`RetryPolicy::none`] tries once.
///
/// ```
/// use std::time::Duration;
/// use fasp_spec::RetryPolicy;
///
/// let policy = RetryPolicy::retries(2).with_backoff(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(policy.max_retries, 2);
/// assert_eq!(policy.attempts_in_all(), 3);
/// assert_eq!(policy.backoff(1), Duration::from_millis(100));
/// assert_eq!(policy.backoff(2), Duration::from_millis(200));
/// assert_eq!(RetryPolicy::none().attempts_in_all(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first try (0: try once). Default 3.
    pub max_retries: u32,
    /// Wait before the first retry. Default 500 ms.
    pub initial_backoff: Duration,
    /// Longest wait between two tries. Default 8 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries: one try.
    pub fn none() -> Self {
        RetryPolicy::retries(0)
    }

    /// Up to `n` retries after the first try, with the default waits.
    pub fn retries(n: u32) -> Self {
        RetryPolicy {
            max_retries: n,
            ..RetryPolicy::default()
        }
    }

    /// Up to `n` tries in all, the first included (`attempts(1)` is [`RetryPolicy::none`]; 0
    /// is read as 1).
    pub fn attempts(n: u32) -> Self {
        RetryPolicy::retries(n.max(1) - 1)
    }

    /// Sets [`RetryPolicy::max_retries`].
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets [`RetryPolicy::initial_backoff`].
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets [`RetryPolicy::max_backoff`].
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets both waits (`max` is raised to `initial` if below it).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Tries in all, the first included.
    pub fn attempts_in_all(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The wait before retry number `retry` (1 for the first retry): doubling from
    /// [`RetryPolicy::initial_backoff`], never above [`RetryPolicy::max_backoff`].
    pub fn backoff(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let r = RetryPolicy::retries(6)
            .with_backoff(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (1..=6).map(|n| r.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500, 500]);
        assert_eq!(r.backoff(u32::MAX), Duration::from_millis(500));
        assert_eq!(r.backoff(0), Duration::from_millis(100));
    }

    #[test]
    fn attempts_and_retries_agree() {
        assert_eq!(RetryPolicy::attempts(0), RetryPolicy::none());
        assert_eq!(RetryPolicy::attempts(1).max_retries, 0);
        assert_eq!(RetryPolicy::attempts(4).max_retries, 3);
        assert_eq!(RetryPolicy::retries(2).attempts_in_all(), 3);
        assert_eq!(RetryPolicy::retries(u32::MAX).attempts_in_all(), u32::MAX);
        let r = RetryPolicy::none().with_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(r.max_backoff, Duration::from_secs(2));
    }
}
