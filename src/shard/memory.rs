//! The memory alarm: how many bytes of messages all shards hold, against a limit. Each shard
//! counts what it holds (its queues, its connections' unsent output, bodies being assembled and
//! uncommitted transactions, its log's unwritten records, and its publishes in flight to other
//! shards) and publishes the figure in its own cache line a few times a second; each shard sums
//! the slots to decide, so no lock and no per-message sharing is needed.
//! Above the limit, connections that publish are blocked (RabbitMQ's memory alarm). Beside it, one
//! bit per shard says that shard's message log cannot write (a full disk): the disk alarm; and
//! one bit per shard that its page files could not be written, so it no longer pages: then the
//! memory alarm holds from half the limit, where paging would have begun.

use std::sync::atomic::{AtomicU64, Ordering};

#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

pub struct MemoryGauge {
    slots: Vec<Slot>,
    pub limit: u64,
    log_stalled: Slot,
    paging_failed: Slot,
}

fn set_bit(slot: &Slot, shard: usize, on: bool) {
    let bit = 1u64 << (shard % 64);
    if on {
        slot.0.fetch_or(bit, Ordering::Relaxed);
    } else {
        slot.0.fetch_and(!bit, Ordering::Relaxed);
    }
}

impl MemoryGauge {
    pub fn new(shards: usize, limit: u64) -> Self {
        Self {
            slots: (0..shards).map(|_| Slot::default()).collect(),
            limit,
            log_stalled: Slot::default(),
            paging_failed: Slot::default(),
        }
    }

    /// Shard `shard`'s message log is (or is no longer) waiting to write after a failed write.
    pub fn set_log_stalled(&self, shard: usize, stalled: bool) {
        set_bit(&self.log_stalled, shard, stalled);
    }

    /// Shard `shard` stopped paging because a page file could not be written.
    pub fn set_paging_failed(&self, shard: usize, failed: bool) {
        set_bit(&self.paging_failed, shard, failed);
    }

    /// Whether any shard stopped paging after a failed page file write.
    pub fn any_paging_failed(&self) -> bool {
        self.paging_failed.0.load(Ordering::Relaxed) != 0
    }

    /// Whether any shard's message log cannot write.
    pub fn any_log_stalled(&self) -> bool {
        self.log_stalled.0.load(Ordering::Relaxed) != 0
    }

    /// A shard's figure. It may be negative: a publish crossing the mesh is counted by the shard
    /// that sent it and taken off by the one that received it, so only the sum is meaningful.
    pub fn publish(&self, shard: usize, bytes: i64) {
        if let Some(slot) = self.slots.get(shard) {
            slot.0.store(bytes as u64, Ordering::Relaxed);
        }
    }

    pub fn total(&self) -> u64 {
        let sum: i64 = self.slots.iter().map(|s| s.0.load(Ordering::Relaxed) as i64).sum();
        sum.max(0) as u64
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
        // Shard 1 received 30 bytes shard 2 counted as sent.
        g.publish(1, -30);
        assert_eq!(g.total(), 75);
        g.set_log_stalled(2, true);
        g.set_log_stalled(1, true);
        g.set_log_stalled(2, false);
        assert!(g.any_log_stalled());
        g.set_log_stalled(1, false);
        assert!(!g.any_log_stalled());
        g.set_paging_failed(1, true);
        assert!(g.any_paging_failed() && !g.any_log_stalled());
        assert!(default_limit() > 0);
    }
}
