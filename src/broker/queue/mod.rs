//! One queue, owned by one shard: ready messages in order (one lane per priority), deliveries
//! awaiting settlement, and its consumers (`consumers`). Its arguments (`args`) add RabbitMQ's
//! extensions: message TTL and queue expiry against the shard's clock (`crate::clock`), length
//! limits, priorities, single active consumer, a delivery limit, and dead-lettering: messages it
//! drops for one of those reasons wait in `dead` for the shard to route them to its dead-letter
//! exchange.

pub mod args;
mod consumers;
mod lanes;
mod rules;
mod storage;

use std::collections::BTreeMap;

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::broker::delivery::{Delivery, Settle};
use crate::clock;
use crate::ids::{ConnId, QueueId};
use crate::protocol::properties;
use crate::protocol::types::FieldTable;

use super::message::Message;
use super::paging::PageSpace;
use super::stats::MessageStats;
pub use args::{Overflow, QueueArgs, QueueType};
pub use consumers::Consumer;
use consumers::Consumers;
use lanes::{Lane, NEVER, Queued};

#[derive(Clone, Debug)]
pub struct QueueFlags {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

struct Unacked {
    /// The consumer whose credit it holds; 0 for basic.get.
    consumer: u64,
    queued: Queued,
}

/// Why a message left its queue for the dead-letter exchange (x-death's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    Maxlen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message the queue dropped, on its way to the dead-letter exchange.
pub struct DeadLetter {
    pub msg: Arc<Message>,
    pub reason: DeathReason,
}

/// What became of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Enqueued,
    /// Refused by `x-overflow` reject-publish(-dlx): the publisher's confirm is a nack.
    Rejected,
}

/// A body this large had a read buffer grown for it: it is most of what it pins, never copied.
const OWN_BUFFER: usize = 16 << 10;

/// A paged queue reads more back once fewer ready messages than this are in memory.
const PAGE_IN_BELOW: usize = 512;

/// A paged run that was purged: what the message log must hear about it. Its id ranges leave
/// out the messages still held (unacked ones of other lanes).
pub struct PurgedRun {
    pub ranges: Vec<(u64, u64)>,
    pub segs: BTreeMap<u32, u64>,
}

pub struct Queue {
    pub id: QueueId,
    pub vhost: Arc<str>,
    pub name: Arc<str>,
    pub flags: QueueFlags,
    /// What it does: its arguments combined with the policy that applies to it.
    pub args: QueueArgs,
    /// What its own arguments say.
    declared: QueueArgs,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<ConnId>,
    /// Ready messages by priority (index 0 the lowest); one lane without `x-max-priority`.
    lanes: Vec<Lane>,
    /// Body bytes of the ready messages, paged ones included (`x-max-length-bytes`).
    body_bytes: u64,
    unacked: HashMap<u64, Unacked>,
    consumers: Consumers,
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
    /// Messages dropped for its dead-letter exchange since the owner last asked.
    dead: Vec<DeadLetter>,
    /// Bytes of its unacked deliveries (ready ones are counted in their lanes), for the memory alarm.
    unacked_bytes: u64,
    next_run_serial: u64,
    /// Ready messages from this id on have not been looked at by `compact_new` yet.
    compacted_from: u64,
    /// Some message it took has an expiry: the heads of its lanes are checked against the clock.
    expiring: bool,
    /// When it was last used (declared, consumed from, got from), for `x-expires`.
    last_used: u64,
    /// The deadline its shard's timer holds for it (`NEVER`: none).
    pub armed: u64,
    /// Messages in, out and acknowledged (`message_stats`).
    pub stats: MessageStats,
}

impl Queue {
    pub fn new(
        id: QueueId,
        vhost: Arc<str>,
        name: Arc<str>,
        flags: QueueFlags,
        args: QueueArgs,
        owner: Option<ConnId>,
    ) -> Self {
        let lanes = (0..=args.max_priority.unwrap_or(0)).map(|_| Lane::default()).collect();
        Self {
            id,
            vhost,
            name,
            flags,
            owner,
            lanes,
            body_bytes: 0,
            unacked: HashMap::new(),
            consumers: Consumers::default(),
            next_msg_id: 1,
            next_serial: 1,
            had_consumer: false,
            definition_unsaved: false,
            paused: Vec::new(),
            gone: Vec::new(),
            gone_runs: Vec::new(),
            dead: Vec::new(),
            unacked_bytes: 0,
            next_run_serial: 0,
            compacted_from: 0,
            expiring: args.message_ttl.is_some(),
            last_used: clock::now(),
            armed: NEVER,
            stats: MessageStats::default(),
            declared: args.clone(),
            args,
        }
    }

    pub fn message_count(&self) -> u32 {
        self.ready_count() as u32
    }

    fn ready_count(&self) -> u64 {
        self.lanes.iter().map(Lane::count).sum()
    }

    /// Ready messages paged out to disk.
    pub fn paged_count(&self) -> u64 {
        self.lanes.iter().filter_map(|l| l.run.as_ref()).map(|r| r.count).sum()
    }

    pub fn unacked_count(&self) -> u32 {
        self.unacked.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.consumers.list.len() as u32
    }

    /// Bytes of ready messages in memory.
    pub fn ready_bytes(&self) -> u64 {
        self.lanes.iter().map(|l| l.ready.bytes).sum()
    }

    /// Bytes of messages held in memory: ready, unacked, and paged ones not yet on disk.
    pub fn bytes(&self) -> u64 {
        let paged: u64 = self.lanes.iter().filter_map(|l| l.run.as_ref()).map(|r| r.file.in_memory()).sum();
        self.ready_bytes() + self.unacked_bytes + paged
    }

    /// The lane of a message: its priority, capped at the queue's maximum.
    fn lane_of(&self, msg: &Message) -> u8 {
        match self.args.max_priority {
            None | Some(0) => 0,
            Some(max) => properties::priority(&msg.properties).unwrap_or(0).min(max),
        }
    }

    /// Appends a message; `persist` is given its id and returns the log segment it was written
    /// to (0 if it was not). `pages` is given while the shard pages. A queue over its length
    /// limit drops its head (or refuses the message, as `x-overflow` says); a message with a
    /// TTL of 0 that no consumer can take at once expires at once.
    pub fn push(
        &mut self,
        msg: Arc<Message>,
        persist: impl FnOnce(u64) -> u32,
        pages: Option<&dyn PageSpace>,
    ) -> Pushed {
        let mut now = None;
        let expires = self.expiry_of(&msg, &mut now);
        if self.args.has_limit() && self.args.overflow != Overflow::DropHead && self.would_overflow(&msg) {
            if self.args.overflow == Overflow::RejectPublishDlx {
                self.dead_letter(msg, DeathReason::Maxlen);
            }
            return Pushed::Rejected;
        }
        if expires != NEVER
            && now.is_some_and(|t| expires <= t)
            && !(self.ready_count() == 0 && self.consumers.any_can_take(self.args.single_active_consumer, u32::MAX))
        {
            self.dead_letter(msg, DeathReason::Expired);
            return Pushed::Enqueued;
        }
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        self.stats.publish += 1;
        let seg = persist(id);
        let lane = self.lane_of(&msg);
        self.enqueue(Queued { id, msg, redelivered: false, seg, own: false, lane, expires, returns: 0 }, pages);
        // A consumer that can take it gets it first (`dispatch` drops what is still over).
        if self.args.has_limit() && !self.consumers.any_can_take(self.args.single_active_consumer, u32::MAX) {
            self.drop_over_limit();
        }
        Pushed::Enqueued
    }

    /// Puts back a message recovered from the log; called in id order. It may have been delivered
    /// before the restart, so it is marked redelivered (RabbitMQ marks what it cannot rule out).
    /// Its TTL starts again from the restart: the log does not keep when it arrived.
    pub fn restore(&mut self, id: u64, msg: Arc<Message>, seg: u32, pages: Option<&dyn PageSpace>) {
        self.next_msg_id = self.next_msg_id.max(id + 1);
        let expires = self.expiry_of(&msg, &mut None);
        let lane = self.lane_of(&msg);
        self.enqueue(Queued { id, msg, redelivered: true, seg, own: false, lane, expires, returns: 0 }, pages);
    }

    fn enqueue(&mut self, q: Queued, pages: Option<&dyn PageSpace>) {
        self.body_bytes += q.msg.body.len() as u64;
        let held = self.ready_bytes() + self.unacked_bytes;
        let lane = usize::from(q.lane);
        if let Some(l) = self.lanes.get_mut(lane) {
            l.enqueue(q, pages, held, &mut self.next_run_serial, (&self.name, &self.vhost));
        }
    }

    /// The lane the next message comes from: the highest that holds any, in memory or on disk.
    pub(super) fn head_lane(&self) -> Option<usize> {
        self.lanes.iter().rposition(|l| !l.ready.is_empty() || l.run.is_some())
    }

    /// Whether the next message is in memory (else it waits for its lane's page-in: a lower
    /// priority does not go first).
    pub(super) fn head_ready(&self) -> bool {
        self.head_lane().and_then(|i| self.lanes.get(i)).is_some_and(|l| !l.ready.is_empty())
    }

    /// The next ready message, if it is in memory.
    fn pop_head(&mut self) -> Option<Queued> {
        let i = self.head_lane()?;
        let q = self.lanes.get_mut(i)?.ready.pop_front()?;
        self.body_bytes -= q.msg.body.len() as u64;
        Some(q)
    }

    pub fn purge(&mut self) -> u32 {
        let n = self.message_count();
        self.body_bytes = 0;
        let mut held: Vec<u64> = self.unacked.keys().copied().collect();
        held.sort_unstable();
        for i in 0..self.lanes.len() {
            let Some(lane) = self.lanes.get_mut(i) else { continue };
            let ready = lane.ready.take_all();
            let run = lane.run.take();
            for q in ready {
                self.left(&q);
            }
            if let Some(run) = run
                && !run.segs.is_empty()
            {
                self.gone_runs.push(PurgedRun { ranges: ranges_without(run.first, run.last, &held), segs: run.segs });
            }
        }
        n
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

    fn ready_iter(&self) -> impl Iterator<Item = &Queued> {
        self.lanes.iter().flat_map(|l| l.ready.list.iter())
    }

    pub fn has_consumer_tag(&self, conn: ConnId, channel: u16, tag: &str) -> bool {
        self.consumers.list.iter().any(|c| c.conn == conn && c.channel == channel && &*c.tag == tag)
    }

    pub fn has_exclusive_consumer(&self) -> bool {
        self.consumers.list.iter().any(|c| c.exclusive)
    }

    pub fn add_consumer(&mut self, mut c: Consumer) {
        c.serial = self.next_serial;
        self.next_serial += 1;
        self.consumers.add(c);
        self.had_consumer = true;
        self.touch();
    }

    /// Removes the consumers matching `pred`; returns them. Their unsettled deliveries stay
    /// unsettled until acked or their channel closes, as in RabbitMQ.
    pub fn remove_consumers(&mut self, pred: impl Fn(&Consumer) -> bool) -> Vec<Consumer> {
        let gone = self.consumers.remove(pred);
        if !gone.is_empty() {
            self.touch();
        }
        gone
    }

    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers.list
    }

    /// Takes the head for basic.get; with `no_ack` it is settled at once.
    pub fn get(&mut self, no_ack: bool) -> Option<(u64, Arc<Message>, bool)> {
        self.touch();
        self.expire_heads(clock::now());
        let Some(q) = self.pop_head() else {
            self.stats.get_empty += u64::from(self.ready_count() == 0);
            return None;
        };
        let q = self.with_delivery_count(q);
        self.stats.got(no_ack, q.redelivered);
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
        self.unacked_bytes -= u.queued.msg.footprint();
        // An auto-ack consumer's deliveries are held only until written: not acks of a client.
        let mut auto_ack = false;
        if let Some(c) = self.consumers.by_serial(u.consumer) {
            c.in_flight = c.in_flight.saturating_sub(1);
            auto_ack = c.no_ack;
        }
        match action {
            Settle::Ack => {
                self.stats.ack += u64::from(!auto_ack);
                self.left(&u.queued)
            }
            Settle::Discard => {
                self.left(&u.queued);
                self.dead_letter(u.queued.msg, DeathReason::Rejected);
            }
            Settle::Requeue => {
                let mut q = Queued { redelivered: true, ..u.queued };
                q.returns += 1;
                if self.args.delivery_limit.is_some_and(|limit| u64::from(q.returns) > limit) {
                    self.left(&q);
                    self.dead_letter(q.msg, DeathReason::DeliveryLimit);
                } else {
                    self.requeue(q);
                }
            }
            Settle::Return => self.requeue(u.queued),
        }
    }

    /// A delivery awaits settlement; `consumer` is the serial whose credit it holds (0: basic.get).
    fn hold(&mut self, consumer: u64, q: Queued) {
        self.unacked_bytes += q.msg.footprint();
        self.unacked.insert(q.id, Unacked { consumer, queued: q });
    }

    /// Puts a message back at its original place (RabbitMQ keeps requeued messages near the head,
    /// in their publish order), with its expiry as it was.
    fn requeue(&mut self, mut q: Queued) {
        if !q.own {
            q.msg = Arc::new(q.msg.compacted());
            q.own = true;
        }
        self.body_bytes += q.msg.body.len() as u64;
        if let Some(l) = self.lanes.get_mut(usize::from(q.lane)) {
            l.ready.insert_in_order(q);
        }
    }

    /// Hands ready messages to consumers that can take them; `out` sends each delivery.
    pub fn dispatch(&mut self, no_ack_window: u32, mut out: impl FnMut(Delivery)) {
        if self.expiring {
            self.expire_heads(clock::now());
        }
        while !self.consumers.list.is_empty() && self.head_ready() {
            let Some(c) = self.consumers.pick(self.args.single_active_consumer, no_ack_window) else { break };
            let (serial, conn, channel, consumer, no_ack) = (c.serial, c.conn, c.channel, c.key, c.no_ack);
            c.in_flight += 1;
            let Some(q) = self.pop_head() else { return };
            let q = self.with_delivery_count(q);
            self.stats.delivered(no_ack, q.redelivered);
            out(Delivery {
                conn,
                channel,
                consumer,
                queue: self.id,
                msg_id: q.id,
                redelivered: q.redelivered,
                no_ack,
                msg: q.msg.clone(),
            });
            self.hold(serial, q);
        }
        if self.args.has_limit() {
            self.drop_over_limit();
        }
    }
}

/// `first..=last` without the ids in `held` (sorted).
fn ranges_without(first: u64, last: u64, held: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut from = first;
    for &h in held.iter().filter(|&&h| h >= first && h <= last) {
        if h > from {
            out.push((from, h - 1));
        }
        from = h + 1;
    }
    if from <= last {
        out.push((from, last));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
