//! What crosses the mesh between shards: one variant per kind of message, each with a name
//! (`kind`) that the shard counts and logs. Round trips (`Shard::ask`) carry a `Reply` that
//! answers on the asking shard.

use std::sync::Arc;

use crate::broker::definitions::QueueDef;
use crate::broker::delivery::{Delivery, PublishRef, Receipt, Settle};
use futures_channel::oneshot;

use crate::broker::message::Message;
use crate::broker::routing::MetaOp;
use crate::ids::{ConnId, QueueId};
use crate::protocol::reply::Result;

use super::admin_ops::AdminOp;
use super::queue_ops::QueueOp;

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
    /// To the coordinator: validate, order and apply a change of routes or access, send it to
    /// the other shards (`ApplyMeta`, answering `replies`), and answer the definitions file
    /// version to wait for, if the change touches it (`Shard::coordinate`).
    ChangeRoutes {
        op: Box<MetaOp>,
        replies: Vec<Reply<()>>,
        done: Reply<Result<Option<u64>>>,
    },
    /// To the coordinator: a new durable queue for the definitions file; answers the version
    /// that holds it.
    DefineQueue {
        def: Box<QueueDef>,
        done: Reply<u64>,
    },
    /// A request about a queue this shard owns (boxed: requests are rare, mesh messages many).
    Queue(Box<QueueOp>),
    /// A request of the admin endpoint.
    Admin(Box<AdminOp>),
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
    pub const KINDS: [&'static str; 31] = [
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
        "change_routes",
        "define_queue",
        "queue_declare",
        "queue_definition_saved",
        "queue_check",
        "queue_purge",
        "queue_consume",
        "queue_get",
        "queue_delete",
        "queue_cancel",
        "admin_purge_queue",
        "admin_delete_queue",
        "admin_queues",
        "admin_connections",
        "admin_channels",
        "admin_handled",
        "admin_close_connections",
        "answer",
        "direct_reply",
        "admin_stats",
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
            ShardMsg::ChangeRoutes { .. } => 11,
            ShardMsg::DefineQueue { .. } => 12,
            ShardMsg::Queue(op) => match **op {
                QueueOp::Declare { .. } => 13,
                QueueOp::DefinitionSaved { .. } => 14,
                QueueOp::Check { .. } => 15,
                QueueOp::Purge { .. } => 16,
                QueueOp::Consume { .. } => 17,
                QueueOp::Get { .. } => 18,
                QueueOp::Delete { .. } => 19,
                QueueOp::Cancel { .. } => 20,
                QueueOp::AdminPurge { .. } => 21,
                QueueOp::AdminDelete { .. } => 22,
            },
            ShardMsg::Admin(op) => match **op {
                AdminOp::Queues { .. } => 23,
                AdminOp::Connections { .. } => 24,
                AdminOp::Channels { .. } => 25,
                AdminOp::Handled { .. } => 26,
                AdminOp::CloseConnections { .. } => 27,
                AdminOp::Stats { .. } => 30,
            },
            ShardMsg::Answer(_) => 28,
            ShardMsg::DirectReply { .. } => 29,
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
