//! The memory alarm: how many bytes of messages the queues of all shards hold, against a limit.
//! Each shard counts its own queues and publishes the figure in its own cache line a few times a
//! second; each shard sums the slots to decide, so no lock and no per-message sharing is needed.
//! Above the limit, connections that publish are blocked (RabbitMQ's memory alarm).

use std::sync::atomic::{AtomicU64, Ordering};

#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

pub struct MemoryGauge {
    slots: Vec<Slot>,
    pub limit: u64,
}

impl MemoryGauge {
    pub fn new(shards: usize, limit: u64) -> Self {
        Self { slots: (0..shards).map(|_| Slot::default()).collect(), limit }
    }

    pub fn publish(&self, shard: usize, bytes: u64) {
        self.slots[shard].0.store(bytes, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// RabbitMQ's default high watermark: 40% of the machine's memory.
pub fn default_limit() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGE_SIZE)) };
    if pages <= 0 || page <= 0 { 1 << 30 } else { (pages as u64 * page as u64) / 10 * 4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_shard() {
        let g = MemoryGauge::new(3, 100);
        g.publish(0, 10);
        g.publish(2, 95);
        assert_eq!(g.total(), 105);
        assert!(default_limit() > 0);
    }
}
