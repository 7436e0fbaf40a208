//! Politeness towards registries that meter pulls (Docker Hub): read `RateLimit-Remaining`
//! from every answer and, when fewer than a reserve remain, pause before each manifest GET (the
//! requests Docker Hub counts; HEADs are free) so the budget spreads over its window instead of
//! running into 429s. A 429 that comes anyway is the retry engine's (it honours `Retry-After`).
//!
//! Header forms read: `RateLimit-Remaining: 76;w=21600` (Docker Hub: 76 left in a 21600 s
//! window), `RateLimit-Remaining: 76` with `RateLimit-Reset: 30` (the IETF draft: seconds until
//! the window resets). Empty values (`;w=21600`, seen on Hub) are ignored.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use reqwest::header::HeaderMap;

/// The longest pause before one request.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// What the registry last said about its budget.
#[derive(Default)]
pub struct RateGate {
    /// One more than the requests left (0: never said).
    remaining: AtomicU64,
    /// Seconds of the window (or until it resets).
    window: AtomicU64,
}

/// `(remaining, window seconds)` from an answer's headers, when it carries a usable count.
pub fn parse(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get("ratelimit-remaining")?.to_str().ok()?;
    let mut parts = v.split(';').map(str::trim);
    let remaining: u64 = parts.next()?.parse().ok()?;
    let mut window = parts
        .filter_map(|p| p.strip_prefix("w="))
        .find_map(|w| w.trim().parse().ok());
    if let Some(reset) = headers
        .get("ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
    {
        window = Some(reset);
    }
    Some((remaining, window))
}

/// The pause before a metered request when `remaining` are left of a `window`-second budget
/// and the caller keeps `reserve` in hand: none above the reserve, else the window shared out
/// over what is left (at most [`MAX_PAUSE`]).
pub fn pause(remaining: u64, window: Option<u64>, reserve: u64) -> Duration {
    if remaining >= reserve {
        return Duration::ZERO;
    }
    let window = Duration::from_secs(window.unwrap_or(60));
    (window / (remaining as u32).saturating_add(1)).min(MAX_PAUSE)
}

impl RateGate {
    /// Records what an answer said; returns the remaining count when it said one.
    pub fn observe(&self, headers: &HeaderMap) -> Option<u64> {
        let (remaining, window) = parse(headers)?;
        self.remaining.store(remaining.saturating_add(1), Relaxed);
        if let Some(w) = window {
            self.window.store(w, Relaxed);
        }
        Some(remaining)
    }

    /// The pause to take before the next metered request, keeping `reserve` in hand.
    pub fn before_metered(&self, reserve: u64) -> Duration {
        let Some(remaining) = self.remaining.load(Relaxed).checked_sub(1) else {
            return Duration::ZERO;
        };
        let window = Some(self.window.load(Relaxed)).filter(|w| *w > 0);
        pause(remaining, window, reserve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn headers_read_in_every_form() {
        let hub = headers(&[("ratelimit-remaining", "76;w=21600")]);
        assert_eq!(parse(&hub), Some((76, Some(21600))));
        let draft = headers(&[("RateLimit-Remaining", "3"), ("RateLimit-Reset", "30")]);
        assert_eq!(parse(&draft), Some((3, Some(30))));
        assert_eq!(
            parse(&headers(&[("ratelimit-remaining", ";w=21600")])),
            None
        );
        assert_eq!(parse(&HeaderMap::new()), None);
    }

    #[test]
    fn pauses_start_below_the_reserve() {
        assert_eq!(pause(50, Some(21600), 10), Duration::ZERO);
        assert_eq!(pause(9, Some(20), 10), Duration::from_secs(2));
        assert_eq!(pause(0, Some(21600), 10), MAX_PAUSE);
        assert_eq!(pause(5, Some(100), 0), Duration::ZERO);
        let gate = RateGate::default();
        assert_eq!(gate.before_metered(10), Duration::ZERO);
        gate.observe(&headers(&[("ratelimit-remaining", "1;w=4")]));
        assert_eq!(gate.before_metered(10), Duration::from_secs(2));
    }
}
