//! The process-wide clock: every payload's send time and every receive time is
//! measured in nanoseconds since one `Instant`, so publishers and subscribers in
//! this process agree on latency without any clock synchronisation.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// The instant all timestamps count from (fixed on first use).
pub fn start() -> Instant {
    *START.get_or_init(Instant::now)
}

/// Nanoseconds since [`start`].
#[inline]
pub fn now_ns() -> u64 {
    ns_of(Instant::now())
}

/// Nanoseconds from [`start`] to `t` (0 for instants before it).
#[inline]
pub fn ns_of(t: Instant) -> u64 {
    t.saturating_duration_since(start()).as_nanos() as u64
}

/// The instant `ns` nanoseconds after [`start`].
pub fn instant_of(ns: u64) -> Instant {
    start() + Duration::from_nanos(ns)
}
