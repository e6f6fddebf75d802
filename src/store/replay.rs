//! Pass 2 of recovery (see `recovery`): the segments read again, oldest first, handing out each
//! live message as its record comes by, so only one record is in memory at a time (and the few
//! messages pass 1 kept because compaction had copied them forward).

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;

use crate::broker::message::Message;

use super::log::segment_path;
use super::record::{MessageRef, RecordRef};
use super::recovery::Queues;
use super::segment_reader::SegmentReader;

/// A recovered message, for queue `queue` (`RecoveredQueue::index`).
pub struct Restored {
    pub queue: usize,
    pub id: u64,
    pub msg: Message,
    /// The log segment holding it.
    pub seg: u32,
}

pub struct Replay {
    dir: PathBuf,
    /// Segments left to read, with the length of the readable part pass 1 found.
    segs: std::vec::IntoIter<(u32, u64)>,
    reading: Option<(u32, u64, SegmentReader)>,
    queues: Queues,
    /// Messages ready to hand out, in order.
    out: VecDeque<Restored>,
    done: bool,
}

impl Replay {
    pub(super) fn new(dir: PathBuf, segs: Vec<(u32, u64)>, queues: Queues) -> Self {
        Self { dir, segs: segs.into_iter(), reading: None, queues, out: VecDeque::new(), done: false }
    }

    /// The (vhost, name) of queue `index`.
    pub fn queue(&self, index: usize) -> (&str, &str) {
        self.queues.list.get(index).map_or(("", ""), |q| (&q.vhost, &q.name))
    }

    /// The next live message; each queue's come in the order the queue had them.
    pub fn next_message(&mut self) -> io::Result<Option<Restored>> {
        loop {
            if let Some(r) = self.out.pop_front() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            let Some((seg, good, reader)) = &mut self.reading else {
                match self.segs.next() {
                    Some((seg, good)) => {
                        let reader = SegmentReader::open(&segment_path(&self.dir, seg))?;
                        self.reading = Some((seg, good, reader));
                    }
                    None => self.finish()?,
                }
                continue;
            };
            match reader.next_record()? {
                Some((offset, RecordRef::Message(m))) => take(&mut self.queues, &mut self.out, *seg, offset, m),
                Some(_) => {}
                None => {
                    if reader.offset() != *good {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{}: the segment changed during recovery: its readable part ended at byte {good} \
                                 when first read, at {} when read again",
                                segment_path(&self.dir, *seg).display(),
                                reader.offset()
                            ),
                        ));
                    }
                    self.reading = None;
                }
            }
        }
    }

    /// After the last segment: what is left of the kept messages, and a check that every live
    /// message was found again.
    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        for (i, q) in self.queues.list.iter_mut().enumerate().filter(|(_, q)| !q.skip) {
            for (id, (msg, seg)) in std::mem::take(&mut q.early) {
                q.live.remove(id);
                self.out.push_back(Restored { queue: i, id, msg, seg });
            }
            if !q.live.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {} live messages of queue '{}' in vhost '{}' were not found when the log was read again",
                        self.dir.display(),
                        q.live.len(),
                        q.name,
                        q.vhost
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A message record at `offset` of segment `seg`: handed out (after any kept messages with lower
/// ids of its queue) if it is the live copy of a live message.
fn take(queues: &mut Queues, out: &mut VecDeque<Restored>, seg: u32, offset: u64, m: MessageRef<'_>) {
    let Some(i) = queues.find(m.vhost, m.queue) else { return };
    let Some(q) = queues.list.get_mut(i) else { return };
    if q.skip
        || q.dropped_at.is_some_and(|at| (seg, offset) < at)
        || q.early.contains_key(&m.id)
        || q.live.get(m.id) != Some(seg)
    {
        return;
    }
    while let Some(first) = q.early.first_entry()
        && *first.key() < m.id
    {
        let (id, (msg, seg)) = first.remove_entry();
        q.live.remove(id);
        out.push_back(Restored { queue: i, id, msg, seg });
    }
    // Taken out, so that no other record of it is handed out again.
    q.live.remove(m.id);
    out.push_back(Restored { queue: i, id: m.id, msg: m.to_message(), seg });
}
