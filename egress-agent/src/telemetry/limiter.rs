//! The log rate limit: a flood of spoofed sources must not become a flood of log lines.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// Sustained log lines per second about subscribers.
pub const LINES_PER_SECOND: f64 = 20.0;
/// Lines that may be written at once after a quiet period.
pub const BURST: f64 = 100.0;

/// Logging is process-wide, so is its limit.
static BUCKET: Mutex<Option<TokenBucket>> = Mutex::new(None);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Whether a subscriber log line may be written now; counts it as suppressed when not.
pub fn allow() -> bool {
    let mut bucket = BUCKET
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let allowed = bucket
        .get_or_insert_with(|| TokenBucket::new(LINES_PER_SECOND, BURST, Instant::now()))
        .try_take(Instant::now());
    if !allowed {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    allowed
}

/// Log lines suppressed by the limit since the agent started.
pub fn suppressed() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(per_second: f64, capacity: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            per_second,
            capacity,
            tokens: capacity,
            refilled: now,
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn telemetry_token_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 100.0, start);
        let burst = (0..1000).filter(|_| bucket.try_take(start)).count();
        assert_eq!(burst, 100);
        let later = start + Duration::from_millis(500);
        let refilled = (0..1000).filter(|_| bucket.try_take(later)).count();
        assert_eq!(refilled, 10);
        let much_later = later + Duration::from_secs(3600);
        let capped = (0..1000).filter(|_| bucket.try_take(much_later)).count();
        assert_eq!(capped, 100);
    }

    #[test]
    fn telemetry_suppressions_are_counted() {
        let before = suppressed();
        let denied = (0..1000).filter(|_| !allow()).count() as u64;
        assert!(denied >= 800, "only {denied} of 1000 lines were suppressed");
        assert!(suppressed() >= before + denied);
    }
}
