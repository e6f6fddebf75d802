//! One queue, owned by one shard: ready messages in order, deliveries awaiting settlement, and its
//! consumers served round-robin within their prefetch (RabbitMQ's per-consumer `basic.qos`).

use std::collections::{BTreeMap, VecDeque};

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::broker::delivery::{Delivery, Settle};
use crate::ids::{ConnId, QueueId};
use crate::protocol::types::FieldTable;

use super::message::Message;
use super::paging::{PageSpace, PagedMessage, RunFile};

#[derive(Clone, Debug)]
pub struct QueueFlags {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

struct Queued {
    id: u64,
    msg: Arc<Message>,
    redelivered: bool,
    /// The message log segment holding it; 0 if it is not persisted.
    seg: u32,
    /// Its bytes are an allocation of its own, not slices of a read buffer (`Message::compacted`).
    own: bool,
}

/// Ready messages in memory, in queue order, and their bytes.
#[derive(Default)]
struct Ready {
    list: VecDeque<Queued>,
    bytes: u64,
}

impl Ready {
    fn len(&self) -> usize {
        self.list.len()
    }
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.list.iter()
    }
    fn push_back(&mut self, q: Queued) {
        self.bytes += footprint(&q.msg);
        self.list.push_back(q);
    }
    fn pop_front(&mut self) -> Option<Queued> {
        let q = self.list.pop_front()?;
        self.bytes -= footprint(&q.msg);
        Some(q)
    }
    /// Puts a message back by id (requeued messages return near the head, in publish order).
    fn insert_in_order(&mut self, q: Queued) {
        self.bytes += footprint(&q.msg);
        let at = self.list.partition_point(|r| r.id < q.id);
        self.list.insert(at, q);
    }
    fn take_all(&mut self) -> VecDeque<Queued> {
        self.bytes = 0;
        std::mem::take(&mut self.list)
    }
}

struct Unacked {
    /// The consumer whose credit it holds; 0 for basic.get.
    consumer: u64,
    queued: Queued,
}

pub struct Consumer {
    pub serial: u64,
    pub tag: Arc<str>,
    pub conn: ConnId,
    pub channel: u16,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Most unsettled deliveries; 0 is unlimited.
    pub prefetch: u32,
    in_flight: u32,
}

/// A body this large had a read buffer grown for it: it is most of what it pins, never copied.
const OWN_BUFFER: usize = 16 << 10;

/// A paged queue reads more back once fewer ready messages than this are in memory.
const PAGE_IN_BELOW: usize = 512;

/// Messages paged out to disk. They follow `ready` in queue order and have the consecutive ids
/// `first..=last` (ids in that range the run does not hold left the queue already).
struct Run {
    file: RunFile,
    serial: u64,
    first: u64,
    last: u64,
    count: u64,
    /// Message log segment → persisted messages of the run in it.
    segs: BTreeMap<u32, u64>,
    reading: bool,
}

/// A paged run that was purged: what the message log must hear about it.
pub struct PurgedRun {
    pub first: u64,
    pub last: u64,
    pub segs: BTreeMap<u32, u64>,
}

fn footprint(m: &Message) -> u64 {
    m.footprint()
}

impl Consumer {
    pub fn new(tag: Arc<str>, conn: ConnId, channel: u16, no_ack: bool, exclusive: bool, prefetch: u32) -> Self {
        Self { serial: 0, tag, conn, channel, no_ack, exclusive, prefetch, in_flight: 0 }
    }

    fn has_credit(&self) -> bool {
        self.prefetch == 0 || self.in_flight < self.prefetch
    }
}

pub struct Queue {
    pub id: QueueId,
    pub vhost: Arc<str>,
    pub name: Arc<str>,
    pub flags: QueueFlags,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<ConnId>,
    ready: Ready,
    unacked: HashMap<u64, Unacked>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_msg_id: u64,
    next_serial: u64,
    /// Set once a consumer has attached: auto-delete applies only after that (RabbitMQ).
    pub had_consumer: bool,
    /// A durable queue whose definition could not be saved when it was declared: the next
    /// declare saves it again before its declare-ok.
    pub definition_unsaved: bool,
    /// Publishing connections told to pause while this queue's backlog drains (flow control).
    pub paused: Vec<ConnId>,
    /// Persisted messages that left the queue since the owner last asked: (id, segment).
    gone: Vec<(u64, u32)>,
    /// Persisted messages of purged runs, for the log.
    gone_runs: Vec<PurgedRun>,
    /// Bytes of its unacked deliveries (ready ones are counted in `ready`), for the memory alarm.
    unacked_bytes: u64,
    run: Option<Run>,
    next_run_serial: u64,
    /// Ready messages from this id on have not been looked at by `compact_new` yet.
    compacted_from: u64,
}

impl Queue {
    pub fn new(id: QueueId, vhost: Arc<str>, name: Arc<str>, flags: QueueFlags, owner: Option<ConnId>) -> Self {
        Self {
            id,
            vhost,
            name,
            flags,
            owner,
            ready: Ready::default(),
            unacked: HashMap::new(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_msg_id: 1,
            next_serial: 1,
            had_consumer: false,
            definition_unsaved: false,
            paused: Vec::new(),
            gone: Vec::new(),
            gone_runs: Vec::new(),
            unacked_bytes: 0,
            run: None,
            next_run_serial: 1,
            compacted_from: 0,
        }
    }

    pub fn message_count(&self) -> u32 {
        (self.ready.len() as u64 + self.paged_count()) as u32
    }

    /// Ready messages paged out to disk.
    pub fn paged_count(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.count)
    }

    pub fn unacked_count(&self) -> u32 {
        self.unacked.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }

    /// Appends a message; `persist` is given its id and returns the log segment it was written
    /// to (0 if it was not). `pages` is given while the shard pages.
    pub fn push(&mut self, msg: Arc<Message>, persist: impl FnOnce(u64) -> u32, pages: Option<&dyn PageSpace>) {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        let seg = persist(id);
        self.enqueue(Queued { id, msg, redelivered: false, seg, own: false }, pages);
    }

    /// Puts back a message recovered from the log; called in id order. It may have been delivered
    /// before the restart, so it is marked redelivered (RabbitMQ marks what it cannot rule out).
    pub fn restore(&mut self, id: u64, msg: Arc<Message>, seg: u32, pages: Option<&dyn PageSpace>) {
        self.next_msg_id = self.next_msg_id.max(id + 1);
        self.enqueue(Queued { id, msg, redelivered: true, seg, own: false }, pages);
    }

    /// Adds a message at the tail: in memory, or in the paged run once there is one (queue order).
    fn enqueue(&mut self, q: Queued, pages: Option<&dyn PageSpace>) {
        if self.run.is_none()
            && let Some(pages) = pages
            && self.ready.bytes + self.unacked_bytes > pages.keep()
        {
            let serial = self.next_run_serial;
            self.next_run_serial += 1;
            log::info!(
                "queue '{}' in vhost '{}': paging messages to disk from id {} on ({} bytes stay in memory)",
                self.name,
                self.vhost,
                q.id,
                self.ready.bytes + self.unacked_bytes
            );
            let run = Run {
                file: pages.run_file(),
                serial,
                first: q.id,
                last: q.id,
                count: 0,
                segs: BTreeMap::new(),
                reading: false,
            };
            self.run = Some(run);
        }
        match &mut self.run {
            Some(run) => {
                run.file.append(q.id, q.seg, q.redelivered, &q.msg);
                run.last = q.id;
                run.count += 1;
                if q.seg != 0 {
                    *run.segs.entry(q.seg).or_default() += 1;
                }
            }
            None => self.ready.push_back(q),
        }
    }

    /// The page file to read next from, if the queue is running short of ready messages in
    /// memory and has some on disk; the answer goes to `paged_in` with the serial.
    pub fn page_in_due(&mut self) -> Option<(RunFile, u64)> {
        let run = self.run.as_mut()?;
        if run.reading || self.ready.len() >= PAGE_IN_BELOW || self.ready.bytes >= run.file.keep() / 2 {
            return None;
        }
        run.reading = true;
        Some((run.file.clone(), run.serial))
    }

    /// The page file of its paged run, while more than `limit` bytes of it wait in memory to be
    /// written.
    pub fn page_backlog(&self, limit: u64) -> Option<RunFile> {
        self.run.as_ref().filter(|r| r.file.in_memory() > limit).map(|r| r.file.clone())
    }

    /// Messages read back from run `serial` join the ready ones (unless the run was purged since).
    pub fn paged_in(&mut self, serial: u64, msgs: Vec<PagedMessage>) {
        let Some(run) = self.run.as_mut().filter(|r| r.serial == serial) else { return };
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
            // Read back from the page file into buffers of their own.
            self.ready.push_back(Queued {
                id: p.id,
                msg: Arc::new(p.msg),
                redelivered: p.redelivered,
                seg: p.seg,
                own: true,
            });
        }
        if run.count == 0 {
            self.run = None;
        }
    }

    /// The queue has ready messages, but none in memory yet (basic.get must wait for a page-in).
    pub fn paging_in(&self) -> bool {
        self.ready.is_empty() && self.run.is_some()
    }

    pub fn purge(&mut self) -> u32 {
        let n = self.message_count();
        for q in self.ready.take_all() {
            if q.seg != 0 {
                self.gone.push((q.id, q.seg));
            }
        }
        if let Some(run) = self.run.take()
            && !run.segs.is_empty()
        {
            self.gone_runs.push(PurgedRun { first: run.first, last: run.last, segs: run.segs });
        }
        n
    }

    /// Bytes of ready messages in memory.
    pub fn ready_bytes(&self) -> u64 {
        self.ready.bytes
    }

    /// Bytes of messages held in memory: ready, unacked, and paged ones not yet on disk.
    pub fn bytes(&self) -> u64 {
        self.ready.bytes + self.unacked_bytes + self.run.as_ref().map_or(0, |r| r.file.in_memory())
    }

    /// A message left the queue for good.
    fn left(&mut self, q: &Queued) {
        if q.seg != 0 {
            self.gone.push((q.id, q.seg));
        }
    }

    /// Persisted messages that left since the last call, for the log: one by one, and purged runs.
    pub fn take_gone(&mut self) -> (Vec<(u64, u32)>, Vec<PurgedRun>) {
        (std::mem::take(&mut self.gone), std::mem::take(&mut self.gone_runs))
    }

    /// The log segments of every persisted message the queue holds (ready, paged or unacked), with
    /// how many each holds.
    pub fn persisted_segments(&self) -> BTreeMap<u32, u64> {
        let mut segs = self.run.as_ref().map(|r| r.segs.clone()).unwrap_or_default();
        for q in self.ready.iter().chain(self.unacked.values().map(|u| &u.queued)).filter(|q| q.seg != 0) {
            *segs.entry(q.seg).or_default() += 1;
        }
        segs
    }

    /// Whether messages of log segment `seg` are in this queue's page file (they cannot be moved).
    pub fn pages_segment(&self, seg: u32) -> bool {
        self.run.as_ref().is_some_and(|r| r.segs.contains_key(&seg))
    }

    /// Writes this queue's messages of log segment `seg` (ready or unacked) to the log again:
    /// `relog` is given each id and message and returns the segment it now lives in.
    pub fn relocate(&mut self, seg: u32, mut relog: impl FnMut(u64, &Message) -> u32) -> u64 {
        let mut n = 0;
        for q in self.ready.list.iter_mut().chain(self.unacked.values_mut().map(|u| &mut u.queued)) {
            if q.seg == seg {
                q.seg = relog(q.id, &q.msg);
                n += 1;
            }
        }
        n
    }

    pub fn has_consumer_tag(&self, conn: ConnId, channel: u16, tag: &str) -> bool {
        self.consumers.iter().any(|c| c.conn == conn && c.channel == channel && &*c.tag == tag)
    }

    pub fn has_exclusive_consumer(&self) -> bool {
        self.consumers.iter().any(|c| c.exclusive)
    }

    pub fn add_consumer(&mut self, mut c: Consumer) {
        c.serial = self.next_serial;
        self.next_serial += 1;
        self.consumers.push(c);
        self.had_consumer = true;
    }

    /// Removes the consumers matching `pred`; returns how many went. Their unsettled deliveries stay
    /// unsettled until acked or their channel closes, as in RabbitMQ.
    pub fn remove_consumers(&mut self, pred: impl Fn(&Consumer) -> bool) -> Vec<Consumer> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.consumers).into_iter().partition(|c| pred(c));
        self.consumers = kept;
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        gone
    }

    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    /// Takes the head for basic.get; with `no_ack` it is settled at once.
    pub fn get(&mut self, no_ack: bool) -> Option<(u64, Arc<Message>, bool)> {
        let q = self.ready.pop_front()?;
        let out = (q.id, q.msg.clone(), q.redelivered);
        if !no_ack {
            self.hold(0, q);
        } else {
            self.left(&q);
        }
        Some(out)
    }

    /// Applies what a consumer's side said of a delivery. Unknown ids (already settled, or the
    /// queue was purged and refilled) are ignored.
    pub fn settle(&mut self, msg_id: u64, action: Settle) {
        let Some(u) = self.unacked.remove(&msg_id) else { return };
        self.unacked_bytes -= footprint(&u.queued.msg);
        if let Some(c) = self.consumers.iter_mut().find(|c| c.serial == u.consumer) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        match action {
            Settle::Ack | Settle::Discard => self.left(&u.queued),
            Settle::Requeue => self.requeue(Queued { redelivered: true, ..u.queued }),
            Settle::Return => self.requeue(u.queued),
        }
    }

    /// A delivery awaits settlement; `consumer` is the serial whose credit it holds (0: basic.get).
    fn hold(&mut self, consumer: u64, q: Queued) {
        self.unacked_bytes += footprint(&q.msg);
        self.unacked.insert(q.id, Unacked { consumer, queued: q });
    }

    /// Puts a message back at its original place (RabbitMQ keeps requeued messages near the head,
    /// in their publish order).
    fn requeue(&mut self, mut q: Queued) {
        if !q.own {
            q.msg = Arc::new(q.msg.compacted());
            q.own = true;
        }
        self.ready.insert_in_order(q);
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
        let fresh = self.ready.list.iter().rev().take_while(|q| q.id >= from).count();
        let start = self.ready.list.len() - fresh;
        let at: Vec<usize> = self.ready.list.range(start..).map(|q| q.msg.properties.as_ptr() as usize).collect();
        let mut n = 0;
        for (i, q) in self.ready.list.range_mut(start..).enumerate() {
            if std::mem::replace(&mut q.own, true) || q.msg.body.len() >= OWN_BUFFER {
                continue;
            }
            // Its frames (method, header, body) take about this much of the buffer; a neighbour
            // within twice that arrived right beside it.
            let reach = 2 * (q.msg.footprint() as usize);
            let mine = at.get(i).copied().unwrap_or_default();
            let near = |j: Option<usize>| j.and_then(|j| at.get(j)).is_some_and(|&a| a.abs_diff(mine) <= reach);
            if near(i.checked_sub(1)) || near(i.checked_add(1)) {
                continue;
            }
            q.msg = copy(&q.msg);
            n += 1;
        }
        n
    }

    /// Hands ready messages to consumers with credit, round-robin; `out` sends each delivery.
    pub fn dispatch(&mut self, no_ack_window: u32, mut out: impl FnMut(Delivery)) {
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let n = self.consumers.len();
            let Some(pick) = (0..n).map(|i| (self.next_consumer + i) % n).find(|&i| {
                self.consumers
                    .get(i)
                    .is_some_and(|c| if c.no_ack { c.in_flight < no_ack_window } else { c.has_credit() })
            }) else {
                return;
            };
            self.next_consumer = (pick + 1) % n;
            let Some(c) = self.consumers.get_mut(pick) else { return };
            let Some(q) = self.ready.pop_front() else { return };
            c.in_flight += 1;
            out(Delivery {
                conn: c.conn,
                channel: c.channel,
                consumer_tag: c.tag.clone(),
                queue: self.id,
                msg_id: q.id,
                redelivered: q.redelivered,
                no_ack: c.no_ack,
                msg: q.msg.clone(),
            });
            let serial = c.serial;
            self.hold(serial, q);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from_static(body.as_bytes()),
        })
    }

    /// A plain queue (not durable, exclusive or auto-delete), for tests here and in store/.
    pub(crate) fn queue() -> Queue {
        let flags =
            QueueFlags { durable: false, exclusive: false, auto_delete: false, arguments: FieldTable::default() };
        Queue::new(1, "/".into(), "q".into(), flags, None)
    }

    fn drain(q: &mut Queue) -> Vec<Delivery> {
        let mut out = Vec::new();
        q.dispatch(100, |d| out.push(d));
        out
    }

    /// Message `i`: 1 KiB of its number.
    pub(crate) fn big(i: u64) -> Arc<Message> {
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from(i.to_le_bytes().repeat(128)),
        })
    }

    /// A run file that keeps what it is given in memory and hands it back at once: queue logic
    /// with paging, tested without files or an executor (store/page.rs tests the real one).
    struct MemRun {
        keep: u64,
        msgs: std::cell::RefCell<std::collections::VecDeque<PagedMessage>>,
    }

    struct MemSpace(u64);

    impl PageSpace for MemSpace {
        fn keep(&self) -> u64 {
            self.0
        }
        fn run_file(&self) -> RunFile {
            std::rc::Rc::new(MemRun { keep: self.0, msgs: Default::default() })
        }
    }

    impl super::super::paging::PagedRun for MemRun {
        fn append(&self, id: u64, seg: u32, redelivered: bool, msg: &Message) {
            self.msgs.borrow_mut().push_back(PagedMessage { id, seg, redelivered, msg: msg.compacted() });
        }
        fn keep(&self) -> u64 {
            self.keep
        }
        fn in_memory(&self) -> u64 {
            self.msgs.borrow().iter().map(|p| p.msg.footprint()).sum()
        }
        fn read(&self) -> super::super::paging::LocalFuture<Vec<PagedMessage>> {
            let batch: Vec<_> = {
                let mut msgs = self.msgs.borrow_mut();
                let n = msgs.len().min(100);
                msgs.drain(..n).collect()
            };
            Box::pin(std::future::ready(batch))
        }
        fn flushed(&self) -> super::super::paging::LocalFuture<()> {
            Box::pin(std::future::ready(()))
        }
    }

    #[test]
    fn a_paged_queue_keeps_order_through_page_ins_and_requeues() {
        let pages = MemSpace(1 << 20);
        let mut q = queue();
        for i in 1..=3000u64 {
            q.push(big(i), |id| (id % 2) as u32 * 7, Some(&pages));
        }
        assert_eq!(q.message_count(), 3000);
        assert!(q.paged_count() > 1500 && q.ready_bytes() < 2 << 20, "{} {}", q.paged_count(), q.ready_bytes());
        // What the run holds in memory counts (here: all of it, the fake never writes).
        assert!(q.bytes() > 3 << 20, "{}", q.bytes());
        q.push(big(3001), |_| 0, None);
        let (mut seen, mut requeued) = (Vec::new(), false);
        while seen.len() < 3001 {
            if let Some((file, serial)) = q.page_in_due() {
                q.paged_in(serial, futures_lite::future::block_on(file.read()));
            }
            let (id, m, _) = q.get(false).unwrap();
            seen.push((id, m.body[..8].to_vec()));
            if id == 1990 && !requeued {
                q.settle(id, Settle::Requeue);
                (requeued, _) = (true, seen.pop());
            }
        }
        let expect: Vec<_> = (1..=3001u64).map(|i| (i, i.to_le_bytes().to_vec())).collect();
        assert_eq!(seen, expect);
        assert_eq!((q.message_count(), q.paged_count()), (0, 0));
    }

    #[test]
    fn sparse_kept_messages_are_copied_once_dense_ones_and_requeued_ones_as_due() {
        // One received buffer: messages cut from it 40 bytes apart arrived side by side; 4000
        // apart, with what lay between dropped or delivered.
        let buffer = Bytes::from(vec![7u8; 64 << 10]);
        let at = |offset: usize| {
            Arc::new(Message {
                exchange: "".into(),
                routing_key: "q".into(),
                properties: buffer.slice(offset..offset + 2),
                body: buffer.slice(offset + 10..offset + 26),
            })
        };
        let mut q = queue();
        let copies = std::cell::Cell::new(0);
        let copy = |m: &Arc<Message>| {
            copies.set(copies.get() + 1);
            Arc::new(m.compacted())
        };
        for i in 0..3 {
            q.push(at(i * 40), |_| 0, None);
        }
        assert_eq!(q.compact_new(copy), 0, "a backlog of neighbours stays in its buffer");
        let sparse = [at(8000), at(12000)];
        for m in &sparse {
            q.push(m.clone(), |_| 0, None);
        }
        assert_eq!(q.compact_new(copy), 2);
        // Nothing new: nothing looked at or copied again.
        assert_eq!(q.compact_new(copy), 0);
        assert_eq!(copies.get(), 2);
        let got: Vec<_> = (0..5).map(|_| q.get(false).unwrap().1).collect();
        for (m, kept) in got[3..].iter().zip(&sparse) {
            assert!(!Arc::ptr_eq(m, kept) && m.body == kept.body);
        }
        // Taken before any look and requeued: copied on its way back.
        let fresh = at(20000);
        q.push(fresh.clone(), |_| 0, None);
        let (id, got, _) = q.get(false).unwrap();
        assert!(Arc::ptr_eq(&got, &fresh));
        q.settle(id, Settle::Requeue);
        let (_, again, redelivered) = q.get(false).unwrap();
        assert!(redelivered && !Arc::ptr_eq(&again, &fresh) && again.body == fresh.body);
    }

    #[test]
    fn round_robin_within_prefetch() {
        let mut q = queue();
        q.add_consumer(Consumer::new("a".into(), 1, 1, false, false, 1));
        q.add_consumer(Consumer::new("b".into(), 1, 1, false, false, 1));
        for b in ["1", "2", "3"] {
            q.push(msg(b), |_| 0, None);
        }
        let d = drain(&mut q);
        assert_eq!(d.iter().map(|d| &*d.consumer_tag).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.message_count(), 1);
        q.settle(d[1].msg_id, Settle::Ack);
        let d2 = drain(&mut q);
        assert_eq!(&*d2[0].consumer_tag, "b");
    }

    #[test]
    fn requeued_messages_return_to_their_place_marked_redelivered() {
        let mut q = queue();
        for b in ["1", "2", "3"] {
            q.push(msg(b), |_| 0, None);
        }
        let (id1, _, _) = q.get(false).unwrap();
        let (id2, _, _) = q.get(false).unwrap();
        q.settle(id2, Settle::Requeue);
        q.settle(id1, Settle::Return);
        let order: Vec<_> = std::iter::from_fn(|| q.get(true)).map(|(_, m, r)| (m.body.clone(), r)).collect();
        assert_eq!(
            order,
            [(Bytes::from_static(b"1"), false), (Bytes::from_static(b"2"), true), (Bytes::from_static(b"3"), false)]
        );
    }
}
