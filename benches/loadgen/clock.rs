//! One monotonic clock for the whole process.
//!
//! Every timestamp the load generator takes (intended send time, actual send time, receive
//! time) is nanoseconds since a single `Instant` captured at start-up, so a sender task and a
//! receiver task can subtract each other's readings directly: the payload of a message carries
//! its sender's timestamps and the receiver computes the latency against the same base.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// The shared base; the first call fixes it (call [`init`] early in `main`).
pub fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Fixes the clock base now.
pub fn init() {
    base();
}

/// Nanoseconds since the base.
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}
