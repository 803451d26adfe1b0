//! Time and randomness for the core, from the JS runtime.
//!
//! Randomness: the core's [`OsRandom`] already is the right source here. On `wasm32` it goes
//! through getrandom's `wasm_js` backend, which calls `globalThis.crypto.getRandomValues` in
//! chunks of at most 65,536 bytes and reports a missing or throwing `crypto` as an error, not
//! a panic: exactly what a `CryptoRandom` over `getRandomValues` would do, in a window, a
//! worker and Node 22 alike, without a second binding in the build.

use edge_oauth_core::env::Clock;

pub use edge_oauth_core::env::OsRandom;

/// The core's [`Clock`] over `Date.now()`, in whole seconds since the Unix epoch
/// (`std::time::SystemTime::now()` panics on `wasm32-unknown-unknown`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DateClock;

impl Clock for DateClock {
    fn now(&self) -> u64 {
        // Float-to-int `as` saturates; NaN or a clock before 1970 becomes 0.
        (js_sys::Date::now() / 1000.0) as u64
    }
}
