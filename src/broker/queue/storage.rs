//! What a queue has to do with storage: its paged runs (reading them back), the message log
//! segments its persisted messages live in (for compaction of the log), and copying kept
//! messages out of the read buffers they arrived in.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::message::Message;
use super::super::paging::{PagedMessage, RunFile};
use super::{OWN_BUFFER, PAGE_IN_BELOW, Queue};

impl Queue {
    /// The page file to read next from, if a lane is running short of ready messages in memory
    /// and has some on disk; the answer goes to `paged_in` with the serial.
    pub fn page_in_due(&mut self) -> Option<(RunFile, u64)> {
        self.lanes.iter_mut().rev().find_map(|l| {
            let run = l.run.as_mut()?;
            if run.reading || l.ready.len() >= PAGE_IN_BELOW || l.ready.bytes >= run.file.keep() / 2 {
                return None;
            }
            run.reading = true;
            Some((run.file.clone(), run.serial))
        })
    }

    /// The page file of a paged run, while more than `limit` bytes of it wait in memory to be
    /// written.
    pub fn page_backlog(&self, limit: u64) -> Option<RunFile> {
        self.lanes.iter().filter_map(|l| l.run.as_ref()).find(|r| r.file.in_memory() > limit).map(|r| r.file.clone())
    }

    /// Messages read back from run `serial` join the ready ones (unless the run was purged since).
    pub fn paged_in(&mut self, serial: u64, msgs: Vec<PagedMessage>) {
        let found = self.lanes.iter_mut().enumerate().find(|(_, l)| l.run.as_ref().is_some_and(|r| r.serial == serial));
        if let Some((i, lane)) = found {
            lane.paged_in(i as u8, msgs);
        }
        if self.args.has_limit() {
            self.drop_over_limit();
        }
    }

    /// The queue has ready messages, but none in memory yet (basic.get must wait for a page-in).
    pub fn paging_in(&self) -> bool {
        self.head_lane().is_some() && !self.head_ready()
    }

    /// The log segments of every persisted message the queue holds (ready, paged or unacked), with
    /// how many each holds.
    pub fn persisted_segments(&self) -> BTreeMap<u32, u64> {
        let mut segs = BTreeMap::new();
        for run in self.lanes.iter().filter_map(|l| l.run.as_ref()) {
            for (&s, &n) in &run.segs {
                *segs.entry(s).or_default() += n;
            }
        }
        for q in self.ready_iter().chain(self.unacked.values().map(|u| &u.queued)).filter(|q| q.seg != 0) {
            *segs.entry(q.seg).or_default() += 1;
        }
        segs
    }

    /// Whether messages of log segment `seg` are in this queue's page files (they cannot be moved).
    pub fn pages_segment(&self, seg: u32) -> bool {
        self.lanes.iter().filter_map(|l| l.run.as_ref()).any(|r| r.segs.contains_key(&seg))
    }

    /// Writes this queue's messages of log segment `seg` (ready or unacked) to the log again:
    /// `relog` is given each id and message and returns the segment it now lives in.
    pub fn relocate(&mut self, seg: u32, mut relog: impl FnMut(u64, &Message) -> u32) -> u64 {
        let mut n = 0;
        let ready = self.lanes.iter_mut().flat_map(|l| l.ready.list.iter_mut());
        for q in ready.chain(self.unacked.values_mut().map(|u| &mut u.queued)) {
            if q.seg == seg {
                q.seg = relog(q.id, &q.msg);
                n += 1;
            }
        }
        n
    }

    /// Copies the messages queued since the last call (and still ready) that hold a read buffer
    /// mostly for nothing out of it, so a kept message holds about its own bytes
    /// (`Message::compacted`); `copy` makes each copy, so the queues of a shard can share one.
    /// A message that arrived right next to its neighbour in the queue (a backlog: the buffer is
    /// mostly kept anyway) stays where it is: copying every message of a growing backlog cost 15%
    /// of a shard's CPU. One kept among many dropped or delivered (the buffer is mostly waste) is
    /// copied. Each message is looked at once: the walk covers the tail queued since the last call.
    pub fn compact_new(&mut self, mut copy: impl FnMut(&Arc<Message>) -> Arc<Message>) -> usize {
        let from = std::mem::replace(&mut self.compacted_from, self.next_msg_id);
        let mut n = 0;
        for lane in &mut self.lanes {
            let list = &mut lane.ready.list;
            let fresh = list.iter().rev().take_while(|q| q.id >= from).count();
            let start = list.len() - fresh;
            let at: Vec<usize> = list.range(start..).map(|q| q.msg.properties.as_ptr() as usize).collect();
            for (i, q) in list.range_mut(start..).enumerate() {
                if std::mem::replace(&mut q.own, true) || q.msg.body.len() >= OWN_BUFFER {
                    continue;
                }
                // Its frames (method, header, body) take about this much of the buffer; a
                // neighbour within twice that arrived right beside it.
                let reach = 2 * (q.msg.footprint() as usize);
                let mine = at.get(i).copied().unwrap_or_default();
                let near = |j: Option<usize>| j.and_then(|j| at.get(j)).is_some_and(|&a| a.abs_diff(mine) <= reach);
                if near(i.checked_sub(1)) || near(i.checked_add(1)) {
                    continue;
                }
                q.msg = copy(&q.msg);
                n += 1;
            }
        }
        n
    }
}
