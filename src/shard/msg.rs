//! What crosses the mesh between shards. Hot-path traffic has typed variants; rare control work
//! travels as a closure run on the destination shard.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::delivery::{Delivery, PublishRef, Settle};
use crate::broker::message::Message;
use crate::ids::{ConnId, QueueId};

use super::Shard;

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
