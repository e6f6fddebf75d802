//! A shard's coarse clock: milliseconds since the process started, read from a per-thread cache
//! that the shard's loop refreshes once per turn. Message TTLs and queue expiry need the time of
//! many messages a turn; one `Instant::now()` per turn covers them all.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
}

fn elapsed_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Reads the clock anew (a shard calls this when it wakes up).
pub fn refresh() -> u64 {
    let now = elapsed_ms();
    NOW.with(|c| c.set(now));
    now
}

/// The time of this turn, in ms since start.
pub fn now() -> u64 {
    match NOW.with(Cell::get) {
        0 => refresh(),
        t => t,
    }
}

/// Sets this thread's clock (unit tests drive time by hand).
#[cfg(test)]
pub fn set(ms: u64) {
    NOW.with(|c| c.set(ms));
}

/// Seconds since the Unix epoch (the `time` of an x-death entry).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
