//! What the admin endpoint (warrenctl, the management API) asks of every shard
//! (`ShardMsg::Admin`): snapshots of its queues, connections, channels and mesh counters, and
//! connections closed by id or name. Plain values cross back, so the admin formats them without
//! reaching into a shard's state.

use std::rc::Rc;
use std::sync::Arc;

use crate::ids::ConnId;
use crate::protocol::types::FieldTable;

use super::Shard;
use super::clients::{ChannelInfo, ConnInfo};
use super::msg::Reply;

pub enum AdminOp {
    /// Every queue this shard owns.
    Queues { done: Reply<Vec<QueueInfo>> },
    /// Every connection this shard serves.
    Connections { done: Reply<Vec<ConnInfo>> },
    /// Every connection this shard serves, with its channels.
    Channels { done: Reply<Vec<(ConnInfo, Vec<ChannelInfo>)>> },
    /// Mesh messages this shard has handled, by kind.
    Handled { done: Reply<Vec<(&'static str, u64)>> },
    /// Its message counters (the management API's sampler).
    Stats { done: Reply<super::stats::ShardSample> },
    /// Closes (320 CONNECTION_FORCED with `why`) the connections whose id or name is `which`;
    /// answers their ids.
    CloseConnections { which: String, why: String, done: Reply<Vec<ConnId>> },
}

/// What the admin shows of a queue.
pub struct QueueInfo {
    pub vhost: Arc<str>,
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: FieldTable,
    pub messages_ready: u32,
    pub messages_unacknowledged: u32,
    pub consumer_count: u32,
    pub consumers: Vec<ConsumerInfo>,
}

/// What the admin shows of a consumer.
pub struct ConsumerInfo {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: Arc<str>,
    pub no_ack: bool,
    pub prefetch: u32,
    pub exclusive: bool,
}

impl Shard {
    /// Answers an admin request.
    pub(super) fn admin_op(self: &Rc<Self>, op: AdminOp) {
        match op {
            AdminOp::Queues { done } => done.send(self, self.queue_infos()),
            AdminOp::Connections { done } => {
                let infos = self.conns.borrow().values().map(|c| c.info()).collect();
                done.send(self, infos);
            }
            AdminOp::Channels { done } => {
                let infos = self.conns.borrow().values().map(|c| (c.info(), c.channels())).collect();
                done.send(self, infos);
            }
            AdminOp::Handled { done } => done.send(self, self.handled().collect()),
            AdminOp::Stats { done } => done.send(self, self.stats_sample()),
            AdminOp::CloseConnections { which, why, done } => {
                let found: Vec<_> = self
                    .conns
                    .borrow()
                    .values()
                    .filter(|c| {
                        let i = c.info();
                        i.id.to_string() == which || i.name == which
                    })
                    .cloned()
                    .collect();
                let ids = found.iter().map(|c| c.id()).collect();
                for c in found {
                    c.force_close(&why);
                }
                done.send(self, ids);
            }
        }
    }

    fn queue_infos(&self) -> Vec<QueueInfo> {
        let queues = self.queues.borrow();
        queues
            .iter()
            .map(|q| QueueInfo {
                vhost: q.vhost.clone(),
                name: q.name.clone(),
                durable: q.flags.durable,
                auto_delete: q.flags.auto_delete,
                exclusive: q.flags.exclusive,
                arguments: q.flags.arguments.clone(),
                messages_ready: q.message_count(),
                messages_unacknowledged: q.unacked_count(),
                consumer_count: q.consumer_count(),
                consumers: q
                    .consumers()
                    .iter()
                    .map(|c| ConsumerInfo {
                        conn: c.conn,
                        channel: c.channel,
                        tag: c.tag.clone(),
                        no_ack: c.no_ack,
                        prefetch: c.prefetch,
                        exclusive: c.exclusive,
                    })
                    .collect(),
            })
            .collect()
    }
}
