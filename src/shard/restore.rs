//! Putting what recovery read back from the shard's message log into its queues.

use std::sync::Arc;

use crate::broker::paging::PageSpace;
use crate::ids::QueueId;
use crate::store::recovery::Recovered;

use super::Shard;

/// While recovery pages a queue, how many bytes of its page file may wait in memory for the disk
/// before recovery waits for them to be written.
const RESTORE_PAGE_BACKLOG: u64 = 4 << 20;

impl Shard {
    /// Puts the messages recovered from this shard's log back into their queues, in order, as
    /// pass 2 of recovery reads them. Past this shard's share of the paging threshold each queue
    /// keeps what it keeps when it pages and the rest goes to its page file; recovery waits for
    /// the page files' writes as it goes, so memory stays bounded whatever the backlog. Messages
    /// of queues that no longer exist are dropped from the log.
    pub async fn restore_messages(&self, mut recovered: Recovered) -> std::io::Result<()> {
        let mut target: Vec<Option<QueueId>> = Vec::new();
        for rq in recovered.queues() {
            let id = self.queues.borrow().lookup(&rq.vhost, &rq.name);
            let (vhost, name) = (&rq.vhost, &rq.name);
            match id {
                Some(_) => log::info!("queue '{name}' in vhost '{vhost}': {} messages to recover", rq.messages),
                None => {
                    log::warn!(
                        "dropping {} logged messages of queue '{name}' in vhost '{vhost}': it no longer exists",
                        rq.messages
                    );
                    self.log.dropped(vhost, name, rq.segments.into_iter());
                    recovered.skip(rq.index);
                }
            }
            target.resize(target.len().max(rq.index + 1), None);
            if let Some(t) = target.get_mut(rq.index) {
                *t = id;
            }
        }
        let (mut restored, share) = (0u64, self.memory.limit / 2 / self.shards() as u64);
        let mut replay = recovered.replay();
        while let Some(m) = replay.next_message()? {
            let Some(id) = target.get(m.queue).copied().flatten() else { continue };
            let backlog = {
                let mut queues = self.queues.borrow_mut();
                let Some(q) = queues.get_mut(id) else { continue };
                // What does not fit in this shard's share of the paging threshold goes to disk.
                let pages = (restored > share && !self.pages.failed()).then_some(&self.pages as &dyn PageSpace);
                restored += m.msg.body.len() as u64;
                q.restore(m.id, Arc::new(m.msg), m.seg, pages);
                q.page_backlog(RESTORE_PAGE_BACKLOG)
            };
            if let Some(file) = backlog {
                file.flushed().await;
            }
        }
        let queues = self.queues.borrow();
        for q in queues.iter().filter(|q| q.message_count() > 0) {
            log::info!(
                "queue '{}' in vhost '{}': {} messages recovered ({} paged to disk)",
                q.name,
                q.vhost,
                q.message_count(),
                q.paged_count()
            );
        }
        // Recovered queues' TTLs and expiry start from now.
        let ids: Vec<QueueId> = queues.iter().map(|q| q.id).collect();
        drop(queues);
        for id in ids {
            self.arm(id);
        }
        Ok(())
    }
}
