//! Injected time and randomness: the core never reads a clock or an entropy source itself,
//! so the same code runs natively, in a browser and in a worker, and tests are exact.

use crate::error::Error;

/// A source of cryptographically secure random bytes.
pub trait RandomSource {
    /// Fills `dest` with random bytes, or reports why it cannot ("random source failed"
    /// is an error, never a panic).
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), Error>;
}

/// The operating system's generator through `getrandom` (`crypto.getRandomValues` on wasm32).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(dest).map_err(|e| Error::Random {
            message: e.to_string(),
        })
    }
}

/// Wall-clock time in whole seconds since the Unix epoch.
pub trait Clock {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// `std::time::SystemTime`. Not available on `wasm32-unknown-unknown`, where `SystemTime::now()`
/// panics: supply a clock over `Date.now()` there.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that says what it is told; for tests and for replaying recorded flows.
#[derive(Debug, Default)]
pub struct ManualClock(core::cell::Cell<u64>);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: u64) -> Self {
        Self(core::cell::Cell::new(now))
    }
    /// Moves the clock forward.
    pub fn advance(&self, secs: u64) {
        self.0.set(self.0.get().saturating_add(secs));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

impl<T: RandomSource + ?Sized> RandomSource for &T {
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), Error> {
        (**self).fill_bytes(dest)
    }
}
