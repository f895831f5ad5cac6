//! Queued jobs: how long one delivery owns its job, how failed jobs are
//! retried, and what a queue needs to know about a failure. The local queue
//! runner and the SQS batch handler apply the same rules.

/// One delivery of a queued job to a consumer.
///
/// The queue hides the job from other consumers until `until_ms` (its
/// visibility timeout, or on Lambda the invocation's deadline if sooner).
/// Claims taken while handling the job must run out at the same moment: a
/// claim that outlives the delivery would make the next delivery of a crashed
/// attempt find the work still "in progress" and fail for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLease {
    /// 1 on the first delivery.
    pub attempt: u32,
    /// When this delivery started (unix ms).
    pub started_at_ms: i64,
    /// When the queue may hand the job to someone else (unix ms).
    pub until_ms: i64,
}

/// The most of a lease kept in reserve for sending a reply: an HTTP call to a
/// provider or an SMTP exchange. A send is not started with less left, so it
/// cannot still be under way when the job goes to another consumer.
const SEND_RESERVE_MS: i64 = 10_000;

impl JobLease {
    /// A lease of `duration_ms` starting now, for a first delivery.
    pub fn new(attempt: u32, now_ms: i64, duration_ms: i64) -> Self {
        Self {
            attempt,
            started_at_ms: now_ms,
            until_ms: now_ms.saturating_add(duration_ms.max(1)),
        }
    }

    /// How long a claim taken at `now_ms` may be held: until the lease ends
    /// (at least 1 ms, so that a claim is never born expired).
    pub fn claim_ms(&self, now_ms: i64) -> i64 {
        self.until_ms.saturating_sub(now_ms).max(1)
    }

    pub fn remaining_ms(&self, now_ms: i64) -> i64 {
        self.until_ms.saturating_sub(now_ms).max(0)
    }

    /// Whether enough of the lease is left to start sending something that
    /// must not go out twice: 10 s, or half the lease when it is shorter.
    pub fn can_start_send(&self, now_ms: i64) -> bool {
        let length = self.until_ms.saturating_sub(self.started_at_ms);
        self.remaining_ms(now_ms) >= SEND_RESERVE_MS.min(length / 2)
    }
}

/// When a failing job is tried again, and when it is given up (dead-lettered).
///
/// The default rides out an outage of a provider or the SMTP server of about
/// an hour and a half: 14 attempts, 5 s after the first failure, doubling up
/// to 15 minutes between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: i64,
    pub max_backoff_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 14,
            initial_backoff_ms: 5_000,
            max_backoff_ms: 15 * 60 * 1000,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based) before the next.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let doublings = attempt.saturating_sub(1).min(40);
        let initial = self.initial_backoff_ms.max(0);
        initial
            .checked_mul(1i64 << doublings)
            .unwrap_or(i64::MAX)
            .min(self.max_backoff_ms.max(initial))
    }

    /// Whether a job whose attempt number `attempt` failed transiently is tried again.
    pub fn retries_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// How long a dependency may stay down before a job that needs it is
    /// dead-lettered: the sum of the waits between all attempts.
    pub fn patience_ms(&self) -> i64 {
        (1..self.max_attempts.max(1))
            .map(|attempt| self.backoff_ms(attempt))
            .fold(0i64, i64::saturating_add)
    }
}

/// What a queue needs to know about a failed attempt to settle the job.
pub trait JobFailure: std::error::Error + Send + Sync + 'static {
    /// Retrying cannot help (unreadable job, an address the mail server
    /// refuses): dead-letter the job at once.
    fn is_permanent(&self) -> bool;

    /// What failed, e.g. `send:telegram` or `store`. Dead letters with the
    /// same cause are redriven together once a retry of one of them succeeds.
    fn cause_key(&self) -> String;

    /// How long the failed dependency asked us to wait (a provider's
    /// `Retry-After`), when it said: the next attempt waits at least that.
    fn retry_after_ms(&self) -> Option<i64> {
        None
    }
}

impl RetryPolicy {
    /// The wait before the attempt after failed attempt `attempt`: the
    /// backoff, or longer when the failure asked for longer.
    pub fn delay_ms(&self, attempt: u32, failure: &dyn JobFailure) -> i64 {
        let backoff = self.backoff_ms(attempt);
        failure
            .retry_after_ms()
            .map_or(backoff, |asked| backoff.max(asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 6,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 5_000,
        };
        let waits: Vec<i64> = (1..=6).map(|a| policy.backoff_ms(a)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(policy.patience_ms(), 1_000 + 2_000 + 4_000 + 5_000 + 5_000);
        assert!(policy.retries_after(5));
        assert!(!policy.retries_after(6));
        assert_eq!(policy.backoff_ms(u32::MAX), 5_000, "no overflow");
    }

    #[test]
    fn the_default_rides_out_an_hour_long_outage() {
        let policy = RetryPolicy::default();
        assert!(
            policy.patience_ms() >= 60 * 60 * 1000,
            "{}",
            policy.patience_ms()
        );
        assert!(policy.patience_ms() <= 3 * 60 * 60 * 1000);
    }

    #[test]
    fn claims_end_with_the_lease_and_sends_keep_a_reserve() {
        let lease = JobLease::new(1, 1_000, 60_000);
        assert_eq!(lease.until_ms, 61_000);
        assert_eq!(lease.claim_ms(1_000), 60_000);
        assert_eq!(lease.claim_ms(70_000), 1, "never expired at birth");
        assert!(lease.can_start_send(51_000));
        assert!(!lease.can_start_send(51_001));
        // A short lease keeps half of itself in reserve.
        let short = JobLease::new(1, 0, 4_000);
        assert!(short.can_start_send(2_000));
        assert!(!short.can_start_send(2_001));
    }
}
