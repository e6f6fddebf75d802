//! One queue, owned by one shard: ready messages in order (one lane per priority), deliveries
//! awaiting settlement, and its consumers (`consumers`). Its arguments (`args`) add RabbitMQ's
//! extensions: message TTL and queue expiry against the shard's clock (`crate::clock`), length
//! limits, priorities, single active consumer, a delivery limit, and dead-lettering: messages it
//! drops for one of those reasons wait in `dead` for the shard to route them to its dead-letter
//! exchange.

pub mod args;
mod consumers;
mod lanes;

use std::collections::BTreeMap;

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::broker::delivery::{Delivery, Settle};
use crate::clock;
use crate::ids::{ConnId, QueueId};
use crate::protocol::properties;
use crate::protocol::types::FieldTable;

use super::message::Message;
use super::paging::{PageSpace, PagedMessage, RunFile};
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

    /// When a message arriving now expires: the queue's TTL or its own expiration, the lower.
    fn expiry_of(&mut self, msg: &Message, now: &mut Option<u64>) -> u64 {
        let own = properties::has_expiration(&msg.properties)
            .then(|| properties::expiration(&msg.properties).and_then(|e| args::parse_expiration(e).ok()))
            .flatten();
        let ttl = match (self.args.message_ttl, own) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return NEVER,
            },
        };
        self.expiring = true;
        now.get_or_insert_with(clock::now).saturating_add(ttl)
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

    /// Whether one more message would take it past a length limit (RabbitMQ's will_overflow).
    fn would_overflow(&self, msg: &Message) -> bool {
        self.args.max_length.is_some_and(|max| self.ready_count() + 1 > max)
            || self.args.max_length_bytes.is_some_and(|max| self.body_bytes + msg.body.len() as u64 > max)
    }

    fn over_limit(&self) -> bool {
        self.args.max_length.is_some_and(|max| self.ready_count() > max)
            || self.args.max_length_bytes.is_some_and(|max| self.body_bytes > max)
    }

    /// Drops the oldest ready messages while over a limit (`x-overflow` drop-head). A head still
    /// on disk is dropped once it is read back.
    fn drop_over_limit(&mut self) {
        while self.over_limit() {
            let Some(q) = self.pop_head() else { return };
            self.left(&q);
            self.dead_letter(q.msg, DeathReason::Maxlen);
        }
    }

    /// The next ready message in memory: from the highest lane that has one.
    fn pop_head(&mut self) -> Option<Queued> {
        let q = self.lanes.iter_mut().rev().find_map(|l| l.ready.pop_front())?;
        self.body_bytes -= q.msg.body.len() as u64;
        Some(q)
    }

    /// Drops expired messages from the heads of its lanes (RabbitMQ expires messages when they
    /// reach the head: O(expired)).
    fn expire_heads(&mut self, now: u64) {
        if !self.expiring {
            return;
        }
        for i in 0..self.lanes.len() {
            while let Some(l) = self.lanes.get_mut(i)
                && l.ready.front().is_some_and(|q| q.expires < now)
                && let Some(q) = l.ready.pop_front()
            {
                self.body_bytes -= q.msg.body.len() as u64;
                self.left(&q);
                self.dead_letter(q.msg, DeathReason::Expired);
            }
        }
    }

    /// A message leaves for the dead-letter exchange, if the queue has one (else it is dropped).
    fn dead_letter(&mut self, msg: Arc<Message>, reason: DeathReason) {
        if self.args.dead_letter_exchange.is_some() {
            self.dead.push(DeadLetter { msg, reason });
        }
    }

    /// A policy applies to it now (or none does): its settings combine with its own arguments
    /// (`policy::effective`). Messages already queued keep their expiry.
    pub fn set_policy(&mut self, policy: Option<&super::policy::Settings>) {
        self.args = super::policy::effective(&self.declared, policy);
        self.expiring |= self.args.message_ttl.is_some();
        if self.args.has_limit() {
            self.drop_over_limit();
        }
    }

    /// Messages dropped for the dead-letter exchange since the last call.
    pub fn take_dead(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.dead)
    }

    /// Marks the queue used now (declare, basic.get, a consumer coming or going), for `x-expires`.
    pub fn touch(&mut self) {
        if self.args.expires.is_some() {
            self.last_used = clock::now();
        }
    }

    /// The next time something in it is due: its earliest head expiry, or its own expiry once
    /// unused. `None` if nothing is.
    pub fn next_deadline(&self) -> Option<u64> {
        let heads = self.expiring.then(|| self.lanes.iter().filter_map(|l| l.ready.front()).map(|q| q.expires).min());
        // A message expires once the clock is past its expiry.
        let heads = heads.flatten().filter(|&t| t != NEVER).map(|t| t + 1);
        let unused = self.args.expires.filter(|_| self.consumers.list.is_empty()).map(|e| self.last_used + e);
        heads.into_iter().chain(unused).min()
    }

    /// Its next deadline, if the shard's timer must hear of it (it is earlier than the one the
    /// timer holds for it).
    pub fn rearm(&mut self) -> Option<u64> {
        if !self.expiring && self.args.expires.is_none() {
            return None;
        }
        let at = self.next_deadline().filter(|&at| at < self.armed)?;
        self.armed = at;
        Some(at)
    }

    /// The shard's timer went off for it: expires what is due. True if the queue itself expired
    /// (`x-expires`) and is to be deleted.
    pub fn on_timer(&mut self, now: u64) -> bool {
        self.armed = NEVER;
        self.expire_heads(now);
        self.args.expires.is_some_and(|e| self.consumers.list.is_empty() && now >= self.last_used + e)
    }

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
        self.lanes.iter().all(|l| l.ready.is_empty()) && self.lanes.iter().any(|l| l.run.is_some())
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
        let q = self.pop_head()?;
        let q = self.with_delivery_count(q);
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
        if let Some(c) = self.consumers.by_serial(u.consumer) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        match action {
            Settle::Ack => self.left(&u.queued),
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

    /// A quorum queue tells a consumer how often a message came back (`x-delivery-count`).
    fn with_delivery_count(&self, mut q: Queued) -> Queued {
        if q.returns > 0 && self.args.kind == QueueType::Quorum {
            q.msg = Arc::new(super::dead_letter::with_header(
                &q.msg,
                "x-delivery-count",
                crate::protocol::types::FieldValue::I64(i64::from(q.returns)),
            ));
            q.own = true;
        }
        q
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

    /// Hands ready messages to consumers that can take them; `out` sends each delivery.
    pub fn dispatch(&mut self, no_ack_window: u32, mut out: impl FnMut(Delivery)) {
        if self.expiring {
            self.expire_heads(clock::now());
        }
        while !self.consumers.list.is_empty() && self.lanes.iter().any(|l| !l.ready.is_empty()) {
            let Some(c) = self.consumers.pick(self.args.single_active_consumer, no_ack_window) else { break };
            let (serial, conn, channel, tag, no_ack) = (c.serial, c.conn, c.channel, c.tag.clone(), c.no_ack);
            c.in_flight += 1;
            let Some(q) = self.pop_head() else { return };
            let q = self.with_delivery_count(q);
            out(Delivery {
                conn,
                channel,
                consumer_tag: tag,
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
