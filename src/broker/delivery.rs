//! What passes between a queue and the connections around it: a delivery on its way to a
//! consumer, what the consumer's side says became of it, and where a publish came from.

use std::sync::Arc;

use crate::ids::{ConnId, QueueId};

use super::message::Message;

/// Where a publish came from, when it wants to hear what became of it (confirms, mandatory).
#[derive(Clone, Copy, Debug)]
pub struct PublishRef {
    pub conn: ConnId,
    pub channel: u16,
    pub seq: u64,
}

/// What one destination shard did with a publish: how many of its queues took it, and whether
/// one refused it (`x-overflow` reject-publish: the publisher's confirm is a nack).
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub to: PublishRef,
    pub enqueued: u32,
    pub rejected: bool,
}

/// A message on its way from a queue to a consumer's connection.
#[derive(Debug)]
pub struct Delivery {
    pub conn: ConnId,
    pub channel: u16,
    /// The consumer's key on its channel (see net::consumers).
    pub consumer: u64,
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
