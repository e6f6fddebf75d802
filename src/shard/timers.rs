//! The shard's timers: one heap of (deadline, queue) for message TTLs and queue expiry, and one
//! task that sleeps until the earliest deadline. Nothing wakes an idle shard whose queues have
//! no deadline. A queue arms the heap only when its next deadline comes earlier than the one it
//! holds; a stale entry just makes the queue look again, so expiry costs O(expired).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Duration;

use crate::clock;
use crate::ids::QueueId;
use crate::notify::Notify;

use super::Shard;

#[derive(Default)]
pub struct Timers {
    heap: RefCell<BinaryHeap<Reverse<(u64, QueueId)>>>,
    /// A deadline earlier than the one the task sleeps for came in.
    earlier: Notify,
}

impl Timers {
    pub(super) fn push(&self, at: u64, id: QueueId) {
        let mut heap = self.heap.borrow_mut();
        let first = heap.peek().is_none_or(|Reverse((t, _))| at < *t);
        heap.push(Reverse((at, id)));
        drop(heap);
        if first {
            self.earlier.notify();
        }
    }

    fn next(&self) -> Option<u64> {
        self.heap.borrow().peek().map(|Reverse((t, _))| *t)
    }

    fn pop_due(&self, now: u64) -> Option<(u64, QueueId)> {
        let mut heap = self.heap.borrow_mut();
        if heap.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            return heap.pop().map(|Reverse(due)| due);
        }
        None
    }
}

impl Shard {
    /// Puts queue `id`'s next deadline on the timer, if it has one earlier than it holds.
    pub(super) fn arm(&self, id: QueueId) {
        let at = self.queues.borrow_mut().get_mut(id).and_then(|q| q.rearm());
        if let Some(at) = at {
            self.timers.push(at, id);
        }
    }

    /// Runs due timers until the broker stops.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            let now = clock::refresh();
            while let Some((at, id)) = self.timers.pop_due(now) {
                self.queue_timer(id, at, now);
            }
            match self.timers.next() {
                None => self.timers.earlier.wait().await,
                Some(at) => {
                    let sleep = glommio::timer::sleep(Duration::from_millis(at.saturating_sub(now)));
                    futures_lite::future::or(sleep, self.timers.earlier.wait()).await;
                }
            }
        }
    }

    /// A queue's deadline `at` passed: it expires messages, or itself (`x-expires`). An entry
    /// the queue no longer holds (it was armed for an earlier deadline since) is dropped.
    fn queue_timer(self: &Rc<Self>, id: QueueId, at: u64, now: u64) {
        let expired = match self.queues.borrow_mut().get_mut(id) {
            Some(q) if q.armed == at => q.on_timer(now),
            _ => return,
        };
        if expired {
            log::debug!("queue {id:x} expired (x-expires)");
            self.delete_queue(id);
        } else {
            self.dispatch(id);
        }
    }
}
