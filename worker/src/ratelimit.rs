//! Token buckets: one per session (in its Durable Object) and one per client address (per
//! isolate). A bucket holds up to `capacity` requests and refills at `capacity / per_secs` a
//! second; an empty bucket answers how long until the next request would pass, for
//! `Retry-After`. Buckets live in memory only: an evicted Durable Object or a new isolate
//! starts full, which is the usual trade of a per-isolate limiter (it bounds bursts, it is not
//! a quota).

use std::collections::HashMap;

/// A limit: `capacity` requests per `per_secs` seconds (also the burst allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in a burst, and per period.
    pub capacity: u32,
    /// The period in seconds.
    pub per_secs: u32,
}

impl RateLimit {
    /// Parses `N/S` (N requests per S seconds, 1..=100000 and 1..=86400) or `off`.
    pub fn parse(raw: &str) -> Result<Option<Self>, &'static str> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (n, s) = raw
            .split_once('/')
            .ok_or("must be N/S (N requests per S seconds) or off")?;
        let capacity: u32 = n
            .trim()
            .parse()
            .map_err(|_| "must be N/S with whole numbers")?;
        let per_secs: u32 = s
            .trim()
            .parse()
            .map_err(|_| "must be N/S with whole numbers")?;
        if !(1..=100_000).contains(&capacity) || !(1..=86_400).contains(&per_secs) {
            return Err("must be N/S with N in 1..=100000 and S in 1..=86400");
        }
        Ok(Some(Self { capacity, per_secs }))
    }

    fn refill_per_ms(&self) -> f64 {
        f64::from(self.capacity) / (f64::from(self.per_secs) * 1000.0)
    }
}

/// One bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    updated_ms: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(limit: &RateLimit, now_ms: f64) -> Self {
        Self {
            tokens: f64::from(limit.capacity),
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, limit: &RateLimit, now_ms: f64) {
        let elapsed = (now_ms - self.updated_ms).max(0.0);
        self.tokens =
            (self.tokens + elapsed * limit.refill_per_ms()).min(f64::from(limit.capacity));
        self.updated_ms = now_ms.max(self.updated_ms);
    }

    /// Takes one request: `Ok` when it passes, else the whole seconds to wait (at least 1).
    pub fn take(&mut self, limit: &RateLimit, now_ms: f64) -> Result<(), u64> {
        self.refill(limit, now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = (1.0 - self.tokens) / limit.refill_per_ms();
        Err(((wait_ms / 1000.0).ceil() as u64).max(1))
    }

    /// True when the bucket has refilled completely (nothing to remember about this client).
    pub fn is_full(&self, limit: &RateLimit, now_ms: f64) -> bool {
        let mut b = *self;
        b.refill(limit, now_ms);
        b.tokens >= f64::from(limit.capacity)
    }
}

/// Buckets by key (the client address), with a bound on how many are remembered.
#[derive(Debug, Default)]
pub struct Buckets {
    map: HashMap<String, TokenBucket>,
}

/// How many client addresses one isolate remembers; past that, full buckets are forgotten,
/// and if none is full, all of them (failing open rather than growing without bound).
pub const MAX_TRACKED: usize = 10_000;

impl Buckets {
    /// No bucket yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one request for `key`.
    pub fn take(&mut self, key: &str, limit: &RateLimit, now_ms: f64) -> Result<(), u64> {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.map.retain(|_, b| !b.is_full(limit, now_ms));
            if self.map.len() >= MAX_TRACKED {
                self.map.clear();
            }
        }
        self.map
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::full(limit, now_ms))
            .take(limit, now_ms)
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(
            RateLimit::parse("120/60"),
            Ok(Some(RateLimit {
                capacity: 120,
                per_secs: 60
            }))
        );
        assert_eq!(RateLimit::parse(" off "), Ok(None));
        for bad in ["", "120", "0/60", "1/0", "a/b", "120/60/1", "-1/60"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bursts_then_refills_with_retry_after() {
        let limit = RateLimit {
            capacity: 3,
            per_secs: 6,
        };
        let mut b = TokenBucket::full(&limit, 0.0);
        for _ in 0..3 {
            assert_eq!(b.take(&limit, 0.0), Ok(()));
        }
        // One token every 2 s.
        assert_eq!(b.take(&limit, 0.0), Err(2));
        assert_eq!(b.take(&limit, 1_500.0), Err(1));
        assert_eq!(b.take(&limit, 2_000.0), Ok(()));
        assert_eq!(b.take(&limit, 2_000.0), Err(2));
        assert!(!b.is_full(&limit, 2_000.0));
        assert!(b.is_full(&limit, 60_000.0));
        // A clock that goes backwards refills nothing.
        let mut c = TokenBucket::full(&limit, 10_000.0);
        for _ in 0..3 {
            assert!(c.take(&limit, 10_000.0).is_ok());
        }
        assert!(c.take(&limit, 5_000.0).is_err());
    }

    #[test]
    fn per_key_and_bounded() {
        let limit = RateLimit {
            capacity: 1,
            per_secs: 60,
        };
        let mut buckets = Buckets::new();
        assert!(buckets.take("a", &limit, 0.0).is_ok());
        assert!(buckets.take("a", &limit, 0.0).is_err());
        assert!(buckets.take("b", &limit, 0.0).is_ok());
        for i in 0..MAX_TRACKED + 5 {
            let _ = buckets.take(&i.to_string(), &limit, 1.0);
        }
        assert!(buckets.len() <= MAX_TRACKED);
    }
}
