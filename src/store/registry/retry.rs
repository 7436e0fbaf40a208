//! Retries: which failures are retried, exponential backoff with jitter, `Retry-After`, budgets.
//!
//! A request is retried when its error says so ([`Error::is_retryable`]: 408, 429, 5xx,
//! connection failures), at most `max_attempts` times in all and never past `max_total`. A
//! `Retry-After` from the server replaces the computed backoff (it is not clamped, but a wait that
//! would end past the time budget ends the retries instead). Every retry is logged with
//! `tracing::warn!`; the final error records how many attempts were made.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

use super::stats::Counters;
use crate::error::{Error, Op, Result};

/// How hard to try before giving up on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles on every retry (with jitter).
    pub base_delay: Duration,
    /// The longest computed backoff (a server's `Retry-After` may ask for more).
    pub max_delay: Duration,
    /// No retry starts (or waits) past this much time since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before retry number `retry` (1 for the first retry): `base * 2^(retry-1)`,
    /// capped at `max_delay`, then scaled by a random factor in [0.5, 1.0].
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// Why an attempt failed, and how long the server asked us to wait before the next.
pub(crate) struct Failure {
    pub error: Error,
    pub retry_after: Option<Duration>,
    /// Never retry, whatever the error says (e.g. it already went through someone's retries).
    pub fatal: bool,
}

impl Failure {
    pub fn fatal(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
            fatal: true,
        }
    }

    pub fn after(error: Error, retry_after: Option<Duration>) -> Self {
        Failure {
            error,
            retry_after,
            fatal: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::after(error, None)
    }
}

/// What a retry log line names.
pub(crate) struct Subject<'a> {
    pub registry: &'a str,
    pub op: Op,
    pub target: &'a str,
    /// Where to count retries, if anywhere.
    pub stats: Option<&'a Counters>,
}

/// Counts attempts and time against a policy.
pub(crate) struct Budget<'a> {
    policy: &'a RetryPolicy,
    started: Instant,
    attempts: u32,
}

impl<'a> Budget<'a> {
    pub fn new(policy: &'a RetryPolicy) -> Self {
        Budget {
            policy,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records the start of an attempt.
    pub fn start_attempt(&mut self) {
        self.attempts += 1;
    }

    /// The wait before the next attempt, or `None` when attempts or time are used up.
    pub fn next_delay(&self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts.max(1) {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| self.policy.backoff(self.attempts));
        let ends = self.started.elapsed().saturating_add(delay);
        (ends <= self.policy.max_total).then_some(delay)
    }
}

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or the budget is spent.
/// The final error carries the number of attempts.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    subject: Subject<'_>,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let mut budget = Budget::new(policy);
    loop {
        budget.start_attempt();
        let failure = match attempt().await {
            Ok(v) => return Ok(v),
            Err(f) => f,
        };
        let n = budget.attempts();
        if failure.fatal {
            // Someone else's final error (it may count its own attempts): pass it on as it is.
            return Err(failure.error);
        }
        if !failure.error.is_retryable() {
            return Err(failure.error.with_attempts(n));
        }
        let Some(delay) = budget.next_delay(failure.retry_after) else {
            return Err(failure.error.with_attempts(n));
        };
        subject.note_retry(n, delay, &failure.error);
        tokio::time::sleep(delay).await;
    }
}

impl Subject<'_> {
    /// Logs (and counts) that attempt number `attempt` failed with `reason` and another follows
    /// after `delay`.
    pub fn note_retry(&self, attempt: u32, delay: Duration, reason: &Error) {
        tracing::warn!(
            registry = self.registry,
            op = %self.op,
            target = self.target,
            attempt,
            delay_ms = delay.as_millis() as u64,
            reason = %reason,
            "retrying"
        );
        if let Some(s) = self.stats {
            s.add_retry();
        }
    }
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date (a date in the past means 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for (retry, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let d = p.backoff(retry).as_millis() as u64;
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d} not in [{}, {full}]",
                full / 2
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn budget_stops_on_attempts_and_time() {
        let p = RetryPolicy {
            max_attempts: 2,
            max_total: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        let mut b = Budget::new(&p);
        b.start_attempt();
        assert!(b.next_delay(None).is_some());
        // A Retry-After longer than the whole budget ends the retries instead of waiting.
        assert_eq!(b.next_delay(Some(Duration::from_secs(31))), None);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(20))),
            Some(Duration::from_secs(20))
        );
        b.start_attempt();
        assert_eq!(b.next_delay(None), None);
    }

    fn server_error(status: u16) -> Error {
        Error::Registry {
            op: Op::GetBlob,
            registry: "r".into(),
            repository: "x".into(),
            target: "t".into(),
            status,
            codes: vec![],
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn run_retries_retryable_errors_only() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let subject = || Subject {
            registry: "r",
            op: Op::GetBlob,
            target: "t",
            stats: None,
        };
        let mut calls = 0;
        let e = run(&p, subject(), || {
            calls += 1;
            async { Err::<(), _>(Failure::from(server_error(503))) }
        })
        .await
        .unwrap_err();
        assert_eq!(
            (calls, e.to_string().contains("after 3 attempts")),
            (3, true)
        );
        let mut calls = 0;
        let e = run(&p, subject(), || {
            calls += 1;
            async { Err::<(), _>(Failure::from(server_error(404))) }
        })
        .await
        .unwrap_err();
        assert_eq!((calls, e.status()), (1, Some(404)));
    }
}
