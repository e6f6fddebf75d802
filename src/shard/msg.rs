//! What crosses the mesh between shards. Hot-path traffic has typed variants; rare control work
//! travels as a closure run on the destination shard.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::message::Message;

use super::Shard;

/// A connection's id: the shard that accepted it in the top 16 bits.
pub type ConnId = u64;
/// A queue's id: its owning shard in the top 16 bits.
pub type QueueId = u64;

pub fn shard_of_id(id: u64) -> usize {
    (id >> 48) as usize
}

pub fn make_id(shard: usize, serial: u64) -> u64 {
    ((shard as u64) << 48) | (serial & ((1 << 48) - 1))
}

/// The queues of one shard a publish goes to.
#[derive(Debug)]
pub enum Targets {
    /// The queue named by the message's routing key (the default exchange): no list to allocate.
    RoutingKey,
    Named(Vec<Arc<str>>),
}

impl Targets {
    pub fn names<'a>(&'a self, msg: &'a Message) -> impl Iterator<Item = &'a str> {
        let (key, named): (Option<&str>, &[Arc<str>]) = match self {
            // Queue names are text: a key that is not names no queue.
            Targets::RoutingKey => (msg.routing_key.as_str(), &[]),
            Targets::Named(v) => (None, v),
        };
        key.into_iter().chain(named.iter().map(|q| &**q))
    }
}

/// Where a publish came from, when it wants to hear what became of it (confirms, mandatory).
#[derive(Clone, Copy, Debug)]
pub struct PublishRef {
    pub conn: ConnId,
    pub channel: u16,
    pub seq: u64,
}

/// A message on its way from a queue to a consumer's connection.
#[derive(Debug)]
pub struct Delivery {
    pub conn: ConnId,
    pub channel: u16,
    pub consumer_tag: Arc<str>,
    pub queue: QueueId,
    pub msg_id: u64,
    pub redelivered: bool,
    pub no_ack: bool,
    pub msg: Arc<Message>,
}

/// What the consumer's side says became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Acked (or, for no-ack consumers, written to the socket).
    Ack,
    /// Rejected or nacked with requeue, or its channel closed: back to the queue, redelivered.
    Requeue,
    /// Never reached the client (its channel was gone): back to the queue as it was.
    Return,
    /// Rejected or nacked without requeue.
    Discard,
}

pub type Job = Box<dyn FnOnce(&Rc<Shard>) + Send>;

pub enum ShardMsg {
    /// Enqueue `msg` on these queues of the destination shard.
    Publish {
        vhost: Arc<str>,
        queues: Targets,
        msg: Arc<Message>,
        /// The publishing connection (flow control pauses it).
        from: ConnId,
        reply: Option<PublishRef>,
    },
    /// The destination shard took a publish into `enqueued` queues.
    Receipt {
        to: PublishRef,
        enqueued: u32,
    },
    Deliver(Delivery),
    /// What became of these deliveries of one queue (batched per queue).
    Settle {
        queue: QueueId,
        msg_ids: Vec<u64>,
        action: Settle,
    },
    Run(Job),
}
