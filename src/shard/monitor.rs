//! The shard's monitor: every 100 ms the bytes of messages it holds (published to the memory
//! gauge, compacting what queues keep), paging past half the limit and the resource alarms; each
//! second the message log's compaction and the disk's free space.

use ahash::AHashMap as HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::message::Message;

use super::{LOW_ON_DISK, LOW_ON_MEMORY, Shard};

/// Bytes available to unprivileged users on the filesystem holding `dir`.
fn disk_free(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

impl Shard {
    /// Watches the message bytes held by every shard's queues (each 100 ms) and, each second, the
    /// message log (compacting it when due) and the free space of the data dir's disk: pages past
    /// half the memory limit, and raises or clears the resource alarm that blocks publishers.
    pub async fn run_monitor(self: Rc<Self>) {
        let mut disk_low = false;
        let mut conns_before = 0;
        for tick in 0u64.. {
            if self.stopping.get() {
                return;
            }
            self.compact_queued();
            self.memory.publish(self.id, self.held_bytes());
            self.memory.set_log_stalled(self.id, self.log.stalled());
            self.memory.set_paging_failed(self.id, self.pages.failed());
            let (total, limit) = (self.memory.total(), self.memory.limit);
            // RabbitMQ's paging ratio: past half the limit, queues page their newest messages out
            // (unless a page file could not be written: then nothing new pages on this shard).
            let paging = total > limit / 2 && !self.pages.failed();
            // Where paging failed, memory is bounded by the alarm from where paging began.
            let high = if self.memory.any_paging_failed() { limit / 2 } else { limit };
            if paging != self.paging.replace(paging) {
                log::info!(
                    "shard {}: messages hold {total} bytes (limit {limit}): paging {}",
                    self.id,
                    if paging { "new messages to disk" } else { "stopped" }
                );
            }
            if tick % 10 == 0 {
                let conns = self.sockets.get();
                if conns < std::mem::replace(&mut conns_before, conns) {
                    // Sockets went away (with them the last of their connections' memory, once
                    // they stopped lingering): what they freed sits in this thread's allocator
                    // caches, which a shard that then parks would never hand back to the OS.
                    // SAFETY: mi_collect only walks this thread's own mimalloc heap.
                    unsafe { libmimalloc_sys::mi_collect(true) };
                }
                if let Some(seg) = self.log.compaction_due() {
                    self.compact(seg);
                }
                // statvfs may block (a slow or remote filesystem): not on the shard's thread.
                let dir = self.config.data_dir.clone();
                let free = glommio::executor().spawn_blocking(move || disk_free(&dir)).await;
                let was = std::mem::replace(&mut disk_low, free.is_some_and(|f| f < self.config.disk_free_limit));
                if disk_low && !was {
                    log::warn!(
                        "disk alarm on shard {}: {} bytes free in {}, limit {}",
                        self.id,
                        free.unwrap_or(0),
                        self.config.data_dir.display(),
                        self.config.disk_free_limit
                    );
                }
            }
            let reason = if total > high {
                Some(LOW_ON_MEMORY)
            } else if disk_low || self.memory.any_log_stalled() {
                Some(LOW_ON_DISK)
            } else {
                None
            };
            if reason != self.alarm.replace(reason) {
                match reason {
                    Some(r) => log::warn!(
                        "resource alarm on shard {}: {r} (messages hold {total} bytes, limit {high}{}): publishers blocked",
                        self.id,
                        if high < limit { ", half the memory limit since paging failed" } else { "" }
                    ),
                    None => log::warn!("resource alarm cleared on shard {}: {total} bytes of messages held", self.id),
                }
                let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
                for c in conns {
                    c.resource_alarm(reason);
                }
            }
            glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Message bytes this shard holds: its queues' (in memory), its connections' outside the
    /// queues, its log's unwritten records, and its publishes in flight to other shards.
    pub(super) fn held_bytes(&self) -> i64 {
        let queues: u64 = self.queues.borrow().iter().map(|q| q.bytes()).sum();
        let conns: u64 = self.conns.borrow().values().map(|c| c.held_bytes()).sum();
        (queues + conns + self.log.pending_bytes()) as i64 + self.mesh_bytes.get()
    }

    /// Copies the messages queues took since the last tick out of the read buffers they arrived
    /// in (`Queue::compact_new`), so the gauge sees what they really hold. A message routed to
    /// several queues of this shard gets one copy.
    pub(super) fn compact_queued(&self) {
        let mut shared: HashMap<*const Message, (Arc<Message>, Arc<Message>)> = HashMap::new();
        for q in self.queues.borrow_mut().iter_mut() {
            q.compact_new(|m| {
                if Arc::strong_count(m) == 1 {
                    return Arc::new(m.compacted());
                }
                // The original stays in the map (alive) until the pass ends, so its address
                // cannot be reused by another message meanwhile.
                shared.entry(Arc::as_ptr(m)).or_insert_with(|| (m.clone(), Arc::new(m.compacted()))).1.clone()
            });
        }
    }

    /// Copies the live messages of the oldest log segment forward so it (and the newer segments it
    /// pins) can go; waits while some of them are paged out.
    pub(super) fn compact(&self, seg: u32) {
        let mut queues = self.queues.borrow_mut();
        if queues.iter().any(|q| q.pages_segment(seg)) {
            return;
        }
        let mut moved = 0;
        for q in queues.iter_mut().filter(|q| q.flags.durable) {
            let (vhost, name) = (q.vhost.clone(), q.name.clone());
            moved += q.relocate(seg, |id, msg| self.log.message(&vhost, &name, id, msg));
        }
        self.log.moved(seg, moved);
        log::info!("shard {}: compacted log segment {seg}: {moved} live messages written forward", self.id);
    }
}
