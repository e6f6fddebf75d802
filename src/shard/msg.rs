//! What crosses the mesh between shards: one variant per kind of message, each with a name
//! (`kind`) that the shard counts and logs. Round trips (`Shard::ask`) carry a `Reply` that
//! answers on the asking shard; a generic request (`Call`) still carries a closure.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::delivery::{Delivery, PublishRef, Receipt, Settle};
use futures_channel::oneshot;

use crate::broker::message::Message;
use crate::broker::routing::MetaOp;
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

/// Where a round trip's answer goes: the asking shard and the oneshot its task waits on. The
/// answer crosses back over the mesh and completes the oneshot on that shard, so the waiting task
/// is woken locally (the doorbell is the only cross-thread wake-up).
pub struct Reply<T> {
    origin: usize,
    tx: oneshot::Sender<T>,
}

impl<T: Send + 'static> Reply<T> {
    pub fn new(origin: usize) -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Self { origin, tx }, rx)
    }

    /// Sends `value` back to the asking shard (from the shard that answers).
    pub fn send(self, from: &Shard, value: T) {
        let tx = self.tx;
        from.send(
            self.origin,
            ShardMsg::Answer(Box::new(move || {
                let _ = tx.send(value);
            })),
        );
    }
}

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
    Receipt(Receipt),
    Deliver(Delivery),
    /// What became of these deliveries of one queue (batched per queue).
    Settle {
        queue: QueueId,
        msg_ids: Vec<u64>,
        action: Settle,
    },
    /// Consumer `tag` of a connection's channel leaves its queue (cancelled, or its channel closed).
    RemoveConsumer {
        queue: QueueId,
        conn: ConnId,
        channel: u16,
        tag: String,
    },
    /// The connection that owned this exclusive queue is gone: the queue goes too.
    DeleteExclusive(QueueId),
    /// Queue `queue` pauses (or lets resume) the publishing connection `conn` (flow control).
    FlowHold {
        conn: ConnId,
        queue: QueueId,
        hold: bool,
    },
    /// A consumer's queue is gone: its connection tells the client (basic.cancel).
    ServerCancel {
        conn: ConnId,
        channel: u16,
        tag: Arc<str>,
    },
    /// A change of routes or access the coordinator validated and ordered: apply it, then answer.
    ApplyMeta {
        /// Boxed: a MetaOp is 128 bytes, and every mesh message is as large as the largest variant.
        op: Box<MetaOp>,
        done: Reply<()>,
    },
    /// Answer once queue `queue` has read its next messages back from disk (a basic.get waits).
    PagedIn {
        queue: QueueId,
        done: Reply<()>,
    },
    /// To the coordinator: answer once the definitions file holds version `version`.
    DefinitionsSaved {
        version: u64,
        done: Reply<std::result::Result<(), String>>,
    },
    /// A request with its own code, run on the destination shard (`Shard::call`).
    Call(Job),
    /// A reply to a direct reply-to requester: for connection `conn`'s channel, if its reply
    /// consumer still has `key`.
    DirectReply {
        conn: ConnId,
        channel: u16,
        key: u64,
        msg: Arc<Message>,
    },
    /// A round trip's answer, completing the asking task's oneshot on its own shard.
    Answer(Box<dyn FnOnce() + Send>),
}

impl ShardMsg {
    /// Every kind, in `index` order.
    pub const KINDS: [&'static str; 14] = [
        "publish",
        "receipt",
        "deliver",
        "settle",
        "remove_consumer",
        "delete_exclusive",
        "flow_hold",
        "server_cancel",
        "apply_meta",
        "paged_in",
        "definitions_saved",
        "call",
        "answer",
        "direct_reply",
    ];

    /// Its position in `KINDS`, for counting.
    pub fn index(&self) -> usize {
        match self {
            ShardMsg::Publish { .. } => 0,
            ShardMsg::Receipt(_) => 1,
            ShardMsg::Deliver(_) => 2,
            ShardMsg::Settle { .. } => 3,
            ShardMsg::RemoveConsumer { .. } => 4,
            ShardMsg::DeleteExclusive(_) => 5,
            ShardMsg::FlowHold { .. } => 6,
            ShardMsg::ServerCancel { .. } => 7,
            ShardMsg::ApplyMeta { .. } => 8,
            ShardMsg::PagedIn { .. } => 9,
            ShardMsg::DefinitionsSaved { .. } => 10,
            ShardMsg::Call(_) => 11,
            ShardMsg::Answer(_) => 12,
            ShardMsg::DirectReply { .. } => 13,
        }
    }

    pub fn kind(&self) -> &'static str {
        Self::KINDS.get(self.index()).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    /// Every message crossing the mesh (a publish, a delivery) is moved at the size of the largest
    /// variant: a 128-byte MetaOp inline made them all 144 bytes, ~6% of a shard's publish path.
    #[test]
    fn mesh_messages_stay_small() {
        assert!(std::mem::size_of::<super::ShardMsg>() <= 96, "{}", std::mem::size_of::<super::ShardMsg>());
    }
}
