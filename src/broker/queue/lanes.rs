//! A queue's ready messages: one lane per priority (one lane for a queue without
//! `x-max-priority`). Each lane holds its oldest messages in memory, in queue order, and, while
//! the shard pages, its newest ones in a run on disk.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::super::message::Message;
use super::super::paging::{PageSpace, PagedMessage, RunFile};

/// Expiry of a message that never expires.
pub const NEVER: u64 = u64::MAX;

pub(super) struct Queued {
    pub id: u64,
    pub msg: Arc<Message>,
    pub redelivered: bool,
    /// The message log segment holding it; 0 if it is not persisted.
    pub seg: u32,
    /// Its bytes are an allocation of its own, not slices of a read buffer (`Message::compacted`).
    pub own: bool,
    /// Its lane (its priority, capped at the queue's maximum).
    pub lane: u8,
    /// When it expires (`clock` ms), `NEVER` without a TTL.
    pub expires: u64,
    /// Times it was delivered and returned (quorum queues' `x-delivery-count`).
    pub returns: u32,
}

/// Ready messages in memory, in queue order, and their bytes.
#[derive(Default)]
pub(super) struct Ready {
    pub list: VecDeque<Queued>,
    pub bytes: u64,
}

impl Ready {
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn front(&self) -> Option<&Queued> {
        self.list.front()
    }
    pub fn push_back(&mut self, q: Queued) {
        self.bytes += q.msg.footprint();
        self.list.push_back(q);
    }
    pub fn pop_front(&mut self) -> Option<Queued> {
        let q = self.list.pop_front()?;
        self.bytes -= q.msg.footprint();
        Some(q)
    }
    /// Puts a message back by id (requeued messages return near the head, in publish order).
    pub fn insert_in_order(&mut self, q: Queued) {
        self.bytes += q.msg.footprint();
        let at = self.list.partition_point(|r| r.id < q.id);
        self.list.insert(at, q);
    }
    pub fn take_all(&mut self) -> VecDeque<Queued> {
        self.bytes = 0;
        std::mem::take(&mut self.list)
    }
}

/// Messages paged out to disk. They follow their lane's ready ones in queue order; their ids lie
/// in `first..=last` (other ids in that range belong to other lanes or left the queue already).
pub(super) struct Run {
    pub file: RunFile,
    pub serial: u64,
    pub first: u64,
    pub last: u64,
    pub count: u64,
    /// Message log segment → persisted messages of the run in it.
    pub segs: BTreeMap<u32, u64>,
    /// (id, expiry) of its messages that expire: the page file keeps messages, the queue their
    /// deadlines.
    pub expiries: VecDeque<(u64, u64)>,
    pub reading: bool,
}

#[derive(Default)]
pub(super) struct Lane {
    pub ready: Ready,
    pub run: Option<Run>,
}

impl Lane {
    pub fn count(&self) -> u64 {
        self.ready.len() as u64 + self.run.as_ref().map_or(0, |r| r.count)
    }

    /// Adds a message at the tail: in memory, or in the paged run once there is one (queue
    /// order). A run starts when the queue holds more than `pages` keeps in memory (`held`).
    pub fn enqueue(
        &mut self,
        q: Queued,
        pages: Option<&dyn PageSpace>,
        held: u64,
        serial: &mut u64,
        (name, vhost): (&str, &str),
    ) {
        if self.run.is_none()
            && let Some(pages) = pages
            && held > pages.keep()
        {
            log::info!(
                "queue '{name}' in vhost '{vhost}': paging messages to disk from id {} on ({held} bytes stay in memory)",
                q.id
            );
            *serial += 1;
            self.run = Some(Run {
                file: pages.run_file(),
                serial: *serial,
                first: q.id,
                last: q.id,
                count: 0,
                segs: BTreeMap::new(),
                expiries: VecDeque::new(),
                reading: false,
            });
        }
        match &mut self.run {
            Some(run) => {
                run.file.append(q.id, q.seg, q.redelivered, &q.msg);
                run.last = q.id;
                run.count += 1;
                if q.seg != 0 {
                    *run.segs.entry(q.seg).or_default() += 1;
                }
                if q.expires != NEVER {
                    run.expiries.push_back((q.id, q.expires));
                }
            }
            None => self.ready.push_back(q),
        }
    }

    /// Messages read back from the run join the ready ones in memory; the run ends when empty.
    pub fn paged_in(&mut self, lane: u8, msgs: Vec<PagedMessage>) {
        let Some(run) = self.run.as_mut() else { return };
        run.reading = false;
        for p in msgs {
            run.count -= 1;
            run.first = p.id + 1;
            if p.seg != 0
                && let Some(n) = run.segs.get_mut(&p.seg)
            {
                *n -= 1;
                if *n == 0 {
                    run.segs.remove(&p.seg);
                }
            }
            while run.expiries.front().is_some_and(|&(id, _)| id < p.id) {
                run.expiries.pop_front();
            }
            let expires = match run.expiries.front() {
                Some(&(id, at)) if id == p.id => {
                    run.expiries.pop_front();
                    at
                }
                _ => NEVER,
            };
            // Read back from the page file into buffers of their own.
            self.ready.push_back(Queued {
                id: p.id,
                msg: Arc::new(p.msg),
                redelivered: p.redelivered,
                seg: p.seg,
                own: true,
                lane,
                expires,
                returns: 0,
            });
        }
        if run.count == 0 {
            self.run = None;
        }
    }
}
