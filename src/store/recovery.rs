//! Reading a shard's message log back at start, in two passes over its segments, oldest first,
//! so that a backlog larger than memory comes back with memory bounded:
//!
//! 1. `recover` replays every record (messages, acks, queue drops) into which ids each queue
//!    still holds and the segment of each (`IdRuns`: runs of ids, not messages), plus the
//!    segment accounting the log continues from. Bodies are not kept, with one exception below.
//! 2. `Recovered::replay` reads the segments again and hands out each live message in queue
//!    order, one at a time, for the shard to put into its queue (which pages it to disk past what
//!    it keeps in memory).
//!
//! A queue's messages come back in id order, as the queue had them. In the log they are in id
//! order too, except for copies that compaction wrote forward (a live message written again to a
//! newer segment, after messages with higher ids): pass 1 sees such a record arrive while a higher
//! id is live and keeps that message ("early") to hand out before the first higher id in pass 2.
//! Compaction copies only messages held in memory, so these are few.
//!
//! Which record of an id is the live one: the one in the segment `IdRuns` names, after the queue's
//! last drop (a queue deleted and declared again starts its ids over, possibly in that segment).
//!
//! Only the newest segment can end in a torn write: the writer fsyncs a segment before it starts
//! the next one. So a bad record in the newest segment is a crash's torn tail, cut off with a
//! warning; a bad record in any older one is damage to data that was confirmed, and recovery stops
//! with an error naming the file and offset instead of dropping what follows it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use ahash::AHashMap as HashMap;

use crate::broker::message::Message;

use super::id_runs::IdRuns;
use super::log::{segment_number, segment_path};
use super::record::{RecordRef, ack_ids};
use super::replay::Replay;
use super::segment_reader::SegmentReader;

/// What pass 1 learnt of one queue's log.
pub(super) struct QueueLog {
    pub vhost: String,
    pub name: String,
    /// Live ids and the segment of each one's record.
    pub live: IdRuns,
    /// Live messages whose record came after a higher live id's (compaction copies), by id.
    pub early: BTreeMap<u64, (Message, u32)>,
    /// (segment, offset) of its last drop record: records before it are of a deleted queue.
    pub dropped_at: Option<(u32, u64)>,
    /// Not replayed (the queue no longer exists).
    pub skip: bool,
}

/// The queues a log names, found by (vhost, name) without allocating.
#[derive(Default)]
pub(super) struct Queues {
    index: HashMap<String, HashMap<String, usize>>,
    pub list: Vec<QueueLog>,
    /// The queue found last: records of one queue tend to follow each other.
    last: Option<usize>,
}

impl Queues {
    pub fn find(&mut self, vhost: &str, name: &str) -> Option<usize> {
        if let Some(i) = self.last
            && self.list.get(i).is_some_and(|q| q.name == name && q.vhost == vhost)
        {
            return Some(i);
        }
        let i = *self.index.get(vhost)?.get(name)?;
        self.last = Some(i);
        Some(i)
    }

    fn find_or_add(&mut self, vhost: &str, name: &str) -> usize {
        if let Some(i) = self.find(vhost, name) {
            return i;
        }
        let i = self.list.len();
        self.list.push(QueueLog {
            vhost: vhost.into(),
            name: name.into(),
            live: IdRuns::default(),
            early: BTreeMap::new(),
            dropped_at: None,
            skip: false,
        });
        self.index.entry(vhost.into()).or_default().insert(name.into(), i);
        self.last = Some(i);
        i
    }
}

/// A shard's log after pass 1: the accounting the log continues from, and what each queue holds.
pub struct Recovered {
    /// Every segment on disk → how many recovered messages it holds.
    pub live: BTreeMap<u32, u64>,
    /// Every segment on disk → how many message records it holds.
    pub written: BTreeMap<u32, u64>,
    /// Where appending continues: after every existing segment.
    pub next_seg: u32,
    dir: PathBuf,
    /// Every segment, oldest first, with the length of its readable part.
    segs: Vec<(u32, u64)>,
    queues: Queues,
}

/// A queue with messages to recover.
pub struct RecoveredQueue {
    /// Its number in `Restored::queue`.
    pub index: usize,
    pub vhost: String,
    pub name: String,
    pub messages: u64,
    /// Segment → how many of its messages that segment holds.
    pub segments: BTreeMap<u32, u64>,
}

/// Pass 1: replays the log in `dir` into which messages each queue holds, cutting a torn tail off
/// the newest segment (and refusing a corrupt record in any older one).
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut nums: Vec<u32> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_number)).collect();
    nums.sort_unstable();
    let mut queues = Queues::default();
    let mut written: BTreeMap<u32, u64> = nums.iter().map(|&s| (s, 0)).collect();
    let mut segs = Vec::with_capacity(nums.len());
    let newest = nums.last().copied();
    for &seg in &nums {
        let path = segment_path(dir, seg);
        let mut reader = SegmentReader::open(&path)?;
        let mut records = 0u64;
        while let Some((offset, rec)) = reader.next_record()? {
            records += 1;
            apply(&mut queues, &mut written, seg, offset, rec);
        }
        let (good, len) = (reader.offset(), reader.file_len());
        if good < len {
            if Some(seg) != newest {
                // Segments are checked oldest first, so nothing on disk has been changed yet.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: corrupt record at byte offset {good} of {len} in a segment older than the newest \
                         (it was fsynced before the next one began, so this is not a torn write); \
                         refusing to start rather than drop the {} bytes from there on",
                        path.display(),
                        len - good
                    ),
                ));
            }
            log::warn!(
                "{}: dropped a torn tail of {} bytes at byte offset {good} after {records} good records; keeping everything before it",
                path.display(),
                len - good,
            );
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(good)?;
            // The next run appends to a newer segment, after which this one must not end torn
            // again: the cut has to be on disk before that.
            file.sync_all()?;
        }
        segs.push((seg, good));
    }
    let mut live: BTreeMap<u32, u64> = nums.iter().map(|&s| (s, 0)).collect();
    for q in &queues.list {
        for (seg, n) in q.live.segments() {
            *live.entry(seg).or_default() += n;
        }
    }
    let runs: usize = queues.list.iter().map(|q| q.live.runs()).sum();
    let early: usize = queues.list.iter().map(|q| q.early.len()).sum();
    log::debug!(
        "{}: {} segments, {} live messages in {runs} id runs ({early} copied forward by compaction, kept)",
        dir.display(),
        segs.len(),
        live.values().sum::<u64>()
    );
    let next_seg = nums.last().map_or(1, |s| s + 1);
    Ok(Recovered { live, written, next_seg, dir: dir.to_path_buf(), segs, queues })
}

/// Replays one record of segment `seg` at `offset` into what the queues hold.
fn apply(queues: &mut Queues, written: &mut BTreeMap<u32, u64>, seg: u32, offset: u64, rec: RecordRef<'_>) {
    match rec {
        RecordRef::Message(m) => {
            *written.entry(seg).or_default() += 1;
            let i = queues.find_or_add(m.vhost, m.queue);
            let Some(q) = queues.list.get_mut(i) else { return };
            let early = q.live.last_id().is_some_and(|last| last > m.id);
            q.live.insert(m.id, seg);
            if early {
                q.early.insert(m.id, (m.to_message(), seg));
            } else {
                q.early.remove(&m.id);
            }
        }
        RecordRef::Ack { vhost, queue, ids } => {
            let Some(q) = queues.find(vhost, queue).and_then(|i| queues.list.get_mut(i)) else { return };
            // Acks name ids mostly in order: take them out run by run.
            let mut run: Option<(u64, u64)> = None;
            for id in ack_ids(ids) {
                run = match run {
                    Some((first, last)) if last.checked_add(1) == Some(id) => Some((first, id)),
                    Some((first, last)) => {
                        q.take_out(first, last);
                        Some((id, id))
                    }
                    None => Some((id, id)),
                };
            }
            if let Some((first, last)) = run {
                q.take_out(first, last);
            }
        }
        RecordRef::AckRange { vhost, queue, first, last } => {
            if let Some(q) = queues.find(vhost, queue).and_then(|i| queues.list.get_mut(i)) {
                q.take_out(first, last);
            }
        }
        RecordRef::Drop { vhost, queue } => {
            if let Some(q) = queues.find(vhost, queue).and_then(|i| queues.list.get_mut(i)) {
                q.live.clear();
                q.early.clear();
                q.dropped_at = Some((seg, offset));
            }
        }
    }
}

impl QueueLog {
    /// The messages with ids `first..=last` left the queue.
    fn take_out(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        self.live.remove_range(first, last);
        if !self.early.is_empty() {
            let mut after = self.early.split_off(&first);
            if let Some(past) = last.checked_add(1) {
                self.early.append(&mut after.split_off(&past));
            }
        }
    }
}

impl Recovered {
    /// The queues with messages to recover.
    pub fn queues(&self) -> Vec<RecoveredQueue> {
        let list = self.queues.list.iter().enumerate().filter(|(_, q)| !q.live.is_empty());
        list.map(|(index, q)| RecoveredQueue {
            index,
            vhost: q.vhost.clone(),
            name: q.name.clone(),
            messages: q.live.len(),
            segments: q.live.segments(),
        })
        .collect()
    }

    /// Leaves queue `index` out of the replay (it no longer exists).
    pub fn skip(&mut self, index: usize) {
        if let Some(q) = self.queues.list.get_mut(index) {
            q.skip = true;
            q.early.clear();
        }
    }

    /// Pass 2: the live messages, queue by queue in order, read from the segments again.
    pub fn replay(self) -> Replay {
        Replay::new(self.dir, self.segs, self.queues)
    }
}

#[cfg(test)]
mod tests;
