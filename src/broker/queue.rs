//! One queue, owned by one shard: ready messages in order, deliveries awaiting settlement, and its
//! consumers served round-robin within their prefetch (RabbitMQ's per-consumer `basic.qos`).

use std::collections::VecDeque;

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::protocol::types::FieldTable;
use crate::shard::msg::{ConnId, Delivery, QueueId, Settle};

use super::message::Message;

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

/// What a message costs a queue in memory, roughly: its body, properties, names and bookkeeping.
fn footprint(m: &Message) -> u64 {
    (m.body.len() + m.properties.len() + m.exchange.len() + m.routing_key.len() + 96) as u64
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
    ready: VecDeque<Queued>,
    unacked: HashMap<u64, Unacked>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_msg_id: u64,
    next_serial: u64,
    /// Set once a consumer has attached: auto-delete applies only after that (RabbitMQ).
    pub had_consumer: bool,
    /// Publishing connections told to pause while this queue's backlog drains (flow control).
    pub paused: Vec<ConnId>,
    /// Persisted messages that left the queue since the owner last asked: (id, segment).
    gone: Vec<(u64, u32)>,
    /// Bytes of the messages it holds (ready and unacked), for the memory alarm.
    bytes: u64,
}

impl Queue {
    pub fn new(id: QueueId, vhost: Arc<str>, name: Arc<str>, flags: QueueFlags, owner: Option<ConnId>) -> Self {
        Self {
            id,
            vhost,
            name,
            flags,
            owner,
            ready: VecDeque::new(),
            unacked: HashMap::new(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_msg_id: 1,
            next_serial: 1,
            had_consumer: false,
            paused: Vec::new(),
            gone: Vec::new(),
            bytes: 0,
        }
    }

    pub fn message_count(&self) -> u32 {
        self.ready.len() as u32
    }

    pub fn unacked_count(&self) -> u32 {
        self.unacked.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }

    /// Appends a message; `persist` is given its id and returns the log segment it was written
    /// to (0 if it was not).
    pub fn push(&mut self, msg: Arc<Message>, persist: impl FnOnce(u64) -> u32) {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        let seg = persist(id);
        self.bytes += footprint(&msg);
        self.ready.push_back(Queued { id, msg, redelivered: false, seg });
    }

    /// Puts back a message recovered from the log; called in id order. It may have been delivered
    /// before the restart, so it is marked redelivered (RabbitMQ marks what it cannot rule out).
    pub fn restore(&mut self, id: u64, msg: Arc<Message>, seg: u32) {
        self.next_msg_id = self.next_msg_id.max(id + 1);
        self.bytes += footprint(&msg);
        self.ready.push_back(Queued { id, msg, redelivered: true, seg });
    }

    pub fn purge(&mut self) -> u32 {
        let n = self.ready.len() as u32;
        for q in self.ready.drain(..) {
            self.bytes -= footprint(&q.msg);
            if q.seg != 0 {
                self.gone.push((q.id, q.seg));
            }
        }
        n
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A message left the queue for good.
    fn left(&mut self, q: &Queued) {
        self.bytes -= footprint(&q.msg);
        if q.seg != 0 {
            self.gone.push((q.id, q.seg));
        }
    }

    /// Persisted messages that left since the last call, for the log.
    pub fn take_gone(&mut self) -> Vec<(u64, u32)> {
        std::mem::take(&mut self.gone)
    }

    /// The log segments of every persisted message the queue holds (ready or unacked).
    pub fn persisted_segments(&self) -> impl Iterator<Item = u32> + '_ {
        self.ready.iter().chain(self.unacked.values().map(|u| &u.queued)).map(|q| q.seg).filter(|&s| s != 0)
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
            self.unacked.insert(q.id, Unacked { consumer: 0, queued: q });
        } else {
            self.left(&q);
        }
        Some(out)
    }

    /// Applies what a consumer's side said of a delivery. Unknown ids (already settled, or the
    /// queue was purged and refilled) are ignored.
    pub fn settle(&mut self, msg_id: u64, action: Settle) {
        let Some(u) = self.unacked.remove(&msg_id) else { return };
        if let Some(c) = self.consumers.iter_mut().find(|c| c.serial == u.consumer) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        match action {
            Settle::Ack | Settle::Discard => self.left(&u.queued),
            Settle::Requeue => self.requeue(Queued { redelivered: true, ..u.queued }),
            Settle::Return => self.requeue(u.queued),
        }
    }

    /// Puts a message back at its original place (RabbitMQ keeps requeued messages near the head,
    /// in their publish order).
    fn requeue(&mut self, q: Queued) {
        let at = self.ready.partition_point(|r| r.id < q.id);
        self.ready.insert(at, q);
    }

    /// Hands ready messages to consumers with credit, round-robin; `out` sends each delivery.
    pub fn dispatch(&mut self, no_ack_window: u32, mut out: impl FnMut(Delivery)) {
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let n = self.consumers.len();
            let Some(pick) = (0..n).map(|i| (self.next_consumer + i) % n).find(|&i| {
                let c = &self.consumers[i];
                if c.no_ack { c.in_flight < no_ack_window } else { c.has_credit() }
            }) else {
                return;
            };
            self.next_consumer = (pick + 1) % n;
            let Some(q) = self.ready.pop_front() else { return };
            let c = &mut self.consumers[pick];
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
            self.unacked.insert(q.id, Unacked { consumer: c.serial, queued: q });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from_static(body.as_bytes()),
        })
    }

    fn queue() -> Queue {
        let flags =
            QueueFlags { durable: false, exclusive: false, auto_delete: false, arguments: FieldTable::default() };
        Queue::new(1, "/".into(), "q".into(), flags, None)
    }

    fn drain(q: &mut Queue) -> Vec<Delivery> {
        let mut out = Vec::new();
        q.dispatch(100, |d| out.push(d));
        out
    }

    #[test]
    fn round_robin_within_prefetch() {
        let mut q = queue();
        q.add_consumer(Consumer::new("a".into(), 1, 1, false, false, 1));
        q.add_consumer(Consumer::new("b".into(), 1, 1, false, false, 1));
        for b in ["1", "2", "3"] {
            q.push(msg(b), |_| 0);
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
            q.push(msg(b), |_| 0);
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
