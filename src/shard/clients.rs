//! The connections a shard serves, as the shard sees them: it hands them deliveries, publish
//! receipts, alarms and flow control, asks them what they hold, and closes them. What a
//! connection is (net/) stays behind this trait, so the shard does not depend on it; the admin
//! socket reads `ConnInfo` snapshots instead of connection internals. The shard's registry of
//! them (`Shard::client`, `register`, `unregister`) is here too.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::delivery::Delivery;
use crate::ids::{ConnId, QueueId};

use super::Shard;

pub trait Client {
    fn id(&self) -> ConnId;
    /// A delivery from a queue for one of its consumers (sent back if the consumer is gone).
    fn deliver(self: Rc<Self>, d: Delivery);
    /// One destination shard took (`enqueued` queues, or a queue `rejected` it) a publish it made
    /// on `channel`.
    fn on_receipt(self: Rc<Self>, channel: u16, seq: u64, enqueued: u32, rejected: bool);
    /// A direct reply-to reply for its channel's reply consumer (made with `key`).
    fn direct_reply(self: Rc<Self>, channel: u16, key: u64, msg: Arc<crate::broker::message::Message>);
    /// A resource alarm went on (with RabbitMQ's reason text) or off.
    fn resource_alarm(&self, reason: Option<&'static str>);
    /// Queue `queue` asks it to pause publishing (flow control), or lets it resume.
    fn flow_hold(&self, queue: QueueId, hold: bool);
    /// Users or permissions changed: permissions it cached are checked again.
    fn forget_permissions(&self);
    /// Message bytes it holds outside the queues, for the memory gauge.
    fn held_bytes(&self) -> u64;
    /// Whether it is open (past the handshake, not closing).
    fn is_open(&self) -> bool;
    /// Its consumer `tag` on `channel` is gone with its queue: basic.cancel, if it understands it.
    fn server_cancel(self: Rc<Self>, channel: u16, tag: &str);
    /// connection.close 320 CONNECTION_FORCED with `text`.
    fn force_close(self: Rc<Self>, text: &str);
    fn info(&self) -> ConnInfo;
    fn channels(&self) -> Vec<ChannelInfo>;
}

/// What rabbitmqctl list_connections shows of a connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub id: ConnId,
    pub name: String,
    pub user: String,
    pub vhost: Arc<str>,
    pub channels: usize,
    /// "starting", "opening", "running", "blocked" or "closing".
    pub state: &'static str,
    /// Memory its output buffers hold (their capacity).
    pub buffer_bytes: usize,
    /// Bytes received and sent (RabbitMQ's `recv_oct`, `send_oct`).
    pub recv_oct: u64,
    pub send_oct: u64,
}

/// What rabbitmqctl list_channels shows of a channel.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub number: u16,
    pub consumers: usize,
    pub unacked: usize,
    pub prefetch: u16,
    pub confirm: bool,
    pub stats: crate::broker::stats::ChannelStats,
}

impl Shard {
    /// The connection `id` on this shard, if it is still there.
    #[inline]
    pub fn client(&self, id: ConnId) -> Option<Rc<dyn Client>> {
        self.conns.borrow().get(&id).cloned()
    }

    /// A connection this shard accepted: it gets deliveries, receipts and alarms from now on.
    pub fn register(&self, c: Rc<dyn Client>) {
        self.counters.conns_opened.set(self.counters.conns_opened.get() + 1);
        self.conns.borrow_mut().insert(c.id(), c);
    }

    /// A connection that is over: nothing reaches it any more.
    pub fn unregister(&self, id: ConnId) {
        if self.conns.borrow_mut().remove(&id).is_some() {
            self.counters.conns_closed.set(self.counters.conns_closed.get() + 1);
        }
    }
}
