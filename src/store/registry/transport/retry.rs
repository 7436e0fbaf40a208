//! The one retry engine: status tables, budgets, and the explicit decision after every failure.
//!
//! Every layer above the transport sends single attempts and asks [`Budget::decide`] what a
//! failure means: wait and send again, resume an upload where the registry stands, restart it
//! in a new session, fall back to another upload strategy, or give up. Nothing else loops.
//!
//! - **Retryable**: 408, 429, 5xx and requests that got no answer (connection refused or dropped,
//!   timeout, a body that broke off); a 401 that taught a new challenge (expired token).
//! - **Refusals** of a way of uploading: 400, 405, 411, 413, 415, 416, 422, 501 (a strategy or a
//!   size the registry does not take; 413 shrinks the request, 416 at the right offset too).
//! - **Lost session**: 404 on an upload URL (distribution forgets a session after a partial
//!   write).
//!
//! A budget counts attempts (`max_attempts`) and time (`max_total`) since the last progress:
//! a transfer that moves forward (a chunk acknowledged, download bytes received) starts a fresh
//! count, one that stalls ends. A server's `Retry-After` replaces the computed backoff (it is
//! not clamped, but a wait that would end past the time budget gives up instead). Every retry
//! is logged with `tracing::warn!` and counted; the final error records the attempts made.

use std::time::{Duration, Instant};

use rand::Rng;

use super::stats::Counters;
use crate::error::{Error, Op};

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

/// Statuses worth sending again unchanged.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Statuses that refuse the way of uploading rather than the attempt.
pub fn refusal_status(status: u16) -> bool {
    matches!(status, 400 | 405 | 411 | 413 | 415 | 416 | 422 | 501)
}

/// Whether the same request could succeed if sent again.
pub fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Registry { status, .. } => retryable_status(*status),
        // A TLS refusal over a certificate gets the same answer every time.
        Error::Transport { message, .. } => !super::tls::is_refusal(message),
        _ => false,
    }
}

/// Why an attempt failed, and how long the server asked us to wait before the next.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub retry_after: Option<Duration>,
    /// A failure that is not the request's (the source's bytes, a digest mismatch, a token
    /// server that refused): no decision can mend it.
    pub settled: bool,
    /// A 401 that taught how to authenticate again: worth one more attempt.
    pub reauthenticate: bool,
}

impl Failure {
    /// A failure of something other than the request itself: final.
    pub fn settled(error: Error) -> Self {
        Failure {
            error,
            retry_after: None,
            settled: true,
            reauthenticate: false,
        }
    }

    pub fn after(error: Error, retry_after: Option<Duration>) -> Self {
        Failure {
            error,
            retry_after,
            settled: false,
            reauthenticate: false,
        }
    }

    pub fn reauthenticate(error: Error) -> Self {
        Failure {
            reauthenticate: true,
            ..Failure::after(error, None)
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.error.status()
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::after(error, None)
    }
}

/// What the failed attempt was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A request that can be sent again as it was.
    Request,
    /// A piece of a resumable upload (`PATCH`, or the closing `PUT` with a chunk).
    Piece,
    /// A monolithic upload's body request.
    Monolithic,
}

/// The engine's answer to a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait, then send the same request again.
    Retry(Duration),
    /// Wait, then ask the registry where the upload stands and go on from there.
    Resume(Duration),
    /// Wait, then start again in a new upload session.
    Restart(Duration),
    /// The registry refuses this way of uploading (or this size): change the way.
    Refused,
    /// Final: the failure goes to the caller.
    GiveUp,
}

/// What a retry log line names.
pub struct Subject<'a> {
    pub registry: &'a str,
    pub op: Op,
    pub target: &'a str,
    /// Where to count retries, if anywhere.
    pub stats: Option<&'a Counters>,
}

/// Counts attempts and time against a policy, from the last progress.
#[derive(Clone, Debug)]
pub struct Budget {
    policy: RetryPolicy,
    started: Instant,
    /// Attempts since the last progress.
    attempts: u32,
}

impl Budget {
    pub fn new(policy: &RetryPolicy) -> Self {
        Budget {
            policy: policy.clone(),
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Attempts made since the last progress (what a final error reports).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records the start of an attempt.
    pub fn start_attempt(&mut self) {
        self.attempts += 1;
    }

    /// The transfer moved forward: a fresh count of attempts and time.
    pub fn progress(&mut self) {
        self.attempts = 0;
        self.started = Instant::now();
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

    /// What to do after `f` failed an attempt of kind `what`. Waiting is the caller's (so it can
    /// log with its own context): see [`Budget::wait`].
    pub fn decide(&self, what: Attempt, f: &Failure) -> Decision {
        // Bytes the registry found not to hash to their digest: sending them again (or another
        // way) cannot mend it.
        if f.settled || f.error.has_code(crate::error::DIGEST_INVALID) {
            return Decision::GiveUp;
        }
        let status = f.status();
        if what != Attempt::Request {
            if let Some(s) = status.filter(|s| refusal_status(*s)) {
                // A 416 on a piece may mean the registry holds other bytes than we think:
                // the caller asks where it stands before taking it as a size refusal.
                if !(s == 416 && what == Attempt::Piece) {
                    return Decision::Refused;
                }
            }
        }
        let Some(delay) = self.next_delay(f.retry_after) else {
            return Decision::GiveUp;
        };
        match (what, status) {
            (Attempt::Request, _) if f.reauthenticate || is_retryable(&f.error) => {
                Decision::Retry(delay)
            }
            (Attempt::Request, _) => Decision::GiveUp,
            (_, Some(404)) => Decision::Restart(delay),
            (_, Some(416)) => Decision::Resume(delay),
            _ if f.reauthenticate || is_retryable(&f.error) => Decision::Resume(delay),
            _ => Decision::GiveUp,
        }
    }

    /// The final error for `f`: its attempts recorded.
    pub fn give_up(&self, f: Failure) -> Error {
        if f.settled {
            return f.error;
        }
        f.error.with_attempts(self.attempts().max(1))
    }
}

impl Subject<'_> {
    /// Logs (and counts) that attempt number `attempt` failed with `reason` and another follows
    /// after `delay`, then waits.
    pub async fn wait(&self, attempt: u32, delay: Duration, reason: &Error) {
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
        tokio::time::sleep(delay).await;
    }
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
        // Progress starts a fresh count.
        b.progress();
        b.start_attempt();
        assert!(b.next_delay(None).is_some());
        assert_eq!(b.attempts(), 1);
    }

    fn server_error(status: u16) -> Error {
        Error::Registry {
            op: Op::GetBlob,
            registry: "r".into(),
            repository: "x".into(),
            target: "t".into(),
            status,
            codes: vec![],
            body: None,
            attempts: 1,
        }
    }

    fn transport() -> Error {
        Error::Transport {
            op: Op::UploadBlob,
            registry: "r".into(),
            repository: "x".into(),
            target: "t".into(),
            message: "connection closed".into(),
            attempts: 1,
            cause: None,
        }
    }

    #[test]
    fn decisions_follow_the_tables() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let mut b = Budget::new(&p);
        b.start_attempt();
        let d = |what, e: Error| b.decide(what, &Failure::from(e));
        assert!(matches!(
            d(Attempt::Request, server_error(503)),
            Decision::Retry(_)
        ));
        assert_eq!(d(Attempt::Request, server_error(404)), Decision::GiveUp);
        assert_eq!(d(Attempt::Request, server_error(400)), Decision::GiveUp);
        assert!(matches!(
            d(Attempt::Piece, transport()),
            Decision::Resume(_)
        ));
        assert!(matches!(
            d(Attempt::Monolithic, transport()),
            Decision::Resume(_)
        ));
        assert!(matches!(
            d(Attempt::Piece, server_error(404)),
            Decision::Restart(_)
        ));
        assert!(matches!(
            d(Attempt::Piece, server_error(416)),
            Decision::Resume(_)
        ));
        assert_eq!(d(Attempt::Monolithic, server_error(416)), Decision::Refused);
        assert_eq!(d(Attempt::Piece, server_error(413)), Decision::Refused);
        assert_eq!(d(Attempt::Piece, server_error(403)), Decision::GiveUp);
        let settled = Failure::settled(server_error(503));
        assert_eq!(b.decide(Attempt::Request, &settled), Decision::GiveUp);
        // A Retry-After past the time budget gives up instead of waiting.
        let long = Failure::after(server_error(429), Some(Duration::from_secs(3600)));
        assert_eq!(b.decide(Attempt::Request, &long), Decision::GiveUp);
    }
}
