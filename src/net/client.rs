//! What the shard asks of a connection (`shard::clients::Client`), and the resource alarms and
//! flow control that pause its publishing.

use std::rc::Rc;

use crate::broker::delivery::Delivery;
use crate::ids::{ConnId, QueueId};
use crate::protocol::Method;
use crate::protocol::methods::connection as conn;
use crate::shard::clients::{ChannelInfo, Client, ConnInfo};

use super::connection::{Conn, Phase};

impl Conn {
    /// Under a resource alarm a connection that publishes is not read (RabbitMQ's rule).
    pub(super) async fn wait_out_alarm(&self) {
        while self.shard.alarm.get().is_some() && self.published.get() && self.phase.get() == Phase::Open {
            self.flow_resumed.wait().await;
        }
    }

    /// A resource alarm went on (with its reason) or off: a connection that publishes is told with
    /// connection.blocked / connection.unblocked (if it understands them), and its reader looks again.
    pub fn resource_alarm(&self, reason: Option<&str>) {
        let on = reason.is_some();
        if on && !self.published.get() {
            return;
        }
        if self.blocked.replace(on) != on && self.st.borrow().caps.connection_blocked {
            let m = match reason {
                Some(r) => Method::ConnectionBlocked(conn::Blocked { reason: r.into() }),
                None => Method::ConnectionUnblocked(conn::Unblocked {}),
            };
            self.send_method(0, &m);
        }
        self.flow_resumed.notify();
    }

    pub(super) fn has_consumers(&self) -> bool {
        self.st.borrow().channels.values().any(|c| !c.consumers.is_empty())
    }

    /// A queue asks this connection to pause (or lets it resume) publishing.
    pub fn flow_hold(&self, queue: QueueId, hold: bool) {
        let mut holds = self.flow_holds.borrow_mut();
        holds.retain(|&q| q != queue);
        if hold {
            holds.push(queue);
            log::debug!("connection {:#x}: paused by flow control (queue {queue:#x})", self.id);
        } else if holds.is_empty() {
            log::debug!("connection {:#x}: resumed by flow control", self.id);
            self.flow_resumed.notify();
        }
    }

    /// Message bytes this connection holds outside the queues: encoded output the client has not
    /// read yet, bodies being assembled and uncommitted transactions. For the memory gauge.
    pub fn held_bytes(&self) -> u64 {
        let out = self.out.try_borrow().map_or(0, |o| o.len() as u64);
        let channels = self.st.try_borrow().map_or(0, |st| st.channels.values().map(|c| c.held_bytes()).sum());
        out + channels
    }

    /// The state rabbitmqctl list_connections shows.
    pub fn state(&self) -> &'static str {
        match self.phase.get() {
            Phase::AwaitStartOk | Phase::AwaitTuneOk => "starting",
            Phase::AwaitOpen => "opening",
            Phase::Open if self.blocked.get() => "blocked",
            Phase::Open => "running",
            Phase::Closing | Phase::Done => "closing",
        }
    }

    /// Bytes of memory the output buffers hold (their capacity), for list_connections.
    pub(super) fn output_buffer_bytes(&self) -> usize {
        self.out.borrow().capacity() + self.spare.borrow().capacity()
    }

    /// Users or permissions changed: publish permissions are checked again.
    pub fn forget_permissions(&self) {
        self.may_publish.borrow_mut().clear();
    }
}

impl Client for Conn {
    fn id(&self) -> ConnId {
        self.id
    }
    fn deliver(self: Rc<Self>, d: Delivery) {
        Conn::deliver(&self, d)
    }
    fn direct_reply(self: Rc<Self>, channel: u16, key: u64, msg: std::sync::Arc<crate::broker::message::Message>) {
        Conn::direct_reply(&self, channel, key, msg)
    }

    fn on_receipt(self: Rc<Self>, channel: u16, seq: u64, enqueued: u32, rejected: bool) {
        Conn::on_receipt(&self, channel, seq, enqueued, rejected)
    }
    fn resource_alarm(&self, reason: Option<&'static str>) {
        Conn::resource_alarm(self, reason)
    }
    fn flow_hold(&self, queue: QueueId, hold: bool) {
        Conn::flow_hold(self, queue, hold)
    }
    fn forget_permissions(&self) {
        Conn::forget_permissions(self)
    }
    fn held_bytes(&self) -> u64 {
        Conn::held_bytes(self)
    }
    fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open
    }
    fn server_cancel(self: Rc<Self>, channel: u16, tag: &str) {
        Conn::server_cancel(&self, channel, tag)
    }
    fn force_close(self: Rc<Self>, text: &str) {
        Conn::force_close(&self, text)
    }
    fn info(&self) -> ConnInfo {
        let st = self.st.borrow();
        ConnInfo {
            id: self.id,
            name: self.name.clone(),
            user: st.user.clone(),
            vhost: st.vhost.clone(),
            channels: st.channels.len(),
            state: self.state(),
            buffer_bytes: self.output_buffer_bytes(),
            recv_oct: self.received.get(),
            send_oct: self.written.get(),
        }
    }
    fn channels(&self) -> Vec<ChannelInfo> {
        let st = self.st.borrow();
        st.channels
            .iter()
            .map(|(&number, ch)| ChannelInfo {
                number,
                consumers: ch.consumers.len(),
                unacked: ch.unacked.len(),
                prefetch: ch.prefetch,
                confirm: ch.confirms.is_some(),
                stats: ch.stats,
            })
            .collect()
    }
}
