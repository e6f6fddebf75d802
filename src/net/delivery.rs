//! A connection's deliveries: basic.deliver for its consumers (tagged, held back while consume-ok
//! is unwritten or the channel's global prefetch is full), encoded into the output buffer while
//! that stays under OUT_WINDOW and waiting as messages past it; what goes back to the queues when
//! a consumer or channel is gone.

use std::rc::Rc;

use crate::broker::delivery::{Delivery, Settle};
use crate::ids::shard_of_id;
use crate::protocol::Method;
use crate::protocol::frame;
use crate::protocol::methods::basic;
use crate::shard::msg::ShardMsg;

use super::channel::ChannelState;
use super::connection::{Conn, OUT_WINDOW, Phase};

/// Bodies this large or larger are written from the message itself, not copied (see put_delivery).
const SHARED_BODY: usize = 4096;

impl Conn {
    /// A delivery from a queue: written as basic.deliver, or sent back if its consumer is gone.
    pub fn deliver(self: &Rc<Self>, d: Delivery) {
        self.deliver_or_park(d, true)
    }

    /// `may_park` is false when the delivery leaves the channel's parking (global qos) itself.
    pub fn deliver_or_park(self: &Rc<Self>, d: Delivery, may_park: bool) {
        let mut st = self.st.borrow_mut();
        let frame_max = st.frame_max;
        let open = self.phase.get() == Phase::Open;
        let ch = st.channels.get_mut(&d.channel).filter(|c| c.state == ChannelState::Open && open);
        let Some(ch) = ch else {
            drop(st);
            return self.bounce(d);
        };
        let Some(consumer) = ch.consumers.get_mut(d.consumer) else {
            drop(st);
            return self.bounce(d);
        };
        if !consumer.ready {
            consumer.held.push(d);
            return;
        }
        if may_park && !d.no_ack && (ch.over_global_limit() || !ch.parked.is_empty()) {
            ch.parked.push_back(d);
            return;
        }
        let tag = ch.take_tag();
        ch.stats.msgs.delivered(d.no_ack, d.redelivered);
        if !d.no_ack {
            ch.unacked.insert(tag, super::channel::Unacked { queue: d.queue, msg_id: d.msg_id });
        }
        if self.out_len() >= OUT_WINDOW || !self.backlog.borrow().is_empty() {
            drop(st);
            self.backlog.borrow_mut().push_back((tag, d));
            return;
        }
        if let Some(consumer) = ch.consumers.get(d.consumer) {
            self.put_delivery(&consumer.tag, tag, &d, frame_max);
        }
        drop(st);
        self.delivery_written(d);
    }

    /// basic.deliver, then the message's header and body frames; a body of SHARED_BODY bytes or
    /// more is not copied but spliced in when written.
    fn put_delivery(&self, consumer_tag: &str, tag: u64, d: &Delivery, frame_max: u32) {
        let mut out = self.out.borrow_mut();
        frame::put_method_with(&mut out, d.channel, |buf| {
            basic::encode_deliver(buf, consumer_tag, tag, d.redelivered, &d.msg.exchange, &d.msg.routing_key)
        });
        let body = &d.msg.body;
        if body.len() < SHARED_BODY {
            frame::put_content(&mut out, d.channel, &d.msg.properties, body, frame_max);
        } else {
            frame::put_content_shared(
                &mut out,
                d.channel,
                &d.msg.properties,
                body,
                frame_max,
                &mut self.shared.borrow_mut(),
            );
            self.shared_bytes.set(self.shared_bytes.get() + body.len());
        }
    }

    /// A delivery went into the output buffer.
    fn delivery_written(&self, d: Delivery) {
        self.writer.notify();
        if d.no_ack {
            self.written_no_ack.borrow_mut().push((d.queue, d.msg_id));
        }
    }

    /// Encodes waiting deliveries while the output buffer has room. One whose channel closed
    /// meanwhile is not written: its queue got it back with the channel's unacked deliveries, or
    /// (no-ack) gets it back here. One whose consumer was cancelled meanwhile goes back to its
    /// queue unseen.
    pub(super) fn drain_backlog(&self) {
        while self.out_len() < OUT_WINDOW {
            let Some((tag, d)) = self.backlog.borrow_mut().pop_front() else { return };
            let mut st = self.st.borrow_mut();
            let frame_max = st.frame_max;
            let open = self.phase.get() == Phase::Open;
            let Some(c) = st.channels.get_mut(&d.channel).filter(|c| open && c.state == ChannelState::Open) else {
                drop(st);
                if d.no_ack {
                    self.bounce(d);
                }
                continue;
            };
            if !d.no_ack && !c.unacked.contains_key(&tag) {
                continue;
            }
            let Some(consumer) = c.consumers.get(d.consumer) else {
                if !d.no_ack {
                    c.unacked.remove(&tag);
                }
                drop(st);
                self.bounce(d);
                continue;
            };
            self.put_delivery(&consumer.tag, tag, &d, frame_max);
            drop(st);
            self.delivery_written(d);
        }
    }

    pub(super) fn bounce(&self, d: Delivery) {
        self.shard.settle([(d.queue, d.msg_id)], Settle::Return);
    }

    /// The queue cancelled a consumer (it was deleted): tell the client if it understands.
    pub fn server_cancel(self: &Rc<Self>, ch: u16, tag: &str) {
        let notify = {
            let mut st = self.st.borrow_mut();
            let notify = st.caps.consumer_cancel_notify;
            let Some(c) = st.channels.get_mut(&ch) else { return };
            let Some(entry) = c.consumers.remove_tag(tag) else { return };
            drop(st);
            for d in entry.held {
                self.bounce(d);
            }
            notify
        };
        // Nothing may follow our connection.close.
        if notify && self.phase.get() == Phase::Open {
            self.send_method(ch, &Method::BasicCancel(basic::Cancel { consumer_tag: tag.to_string(), nowait: true }));
        }
    }

    /// Releases a channel's holds: its consumers leave their queues, then its unacked deliveries
    /// are requeued (in that order over the FIFO mesh, so none comes back to this channel).
    pub fn release_channel(self: &Rc<Self>, ch: u16) {
        let mut st = self.st.borrow_mut();
        let Some(c) = st.channels.get_mut(&ch) else { return };
        let consumers: Vec<_> = c.consumers.take_all().collect();
        let unacked = std::mem::take(&mut c.unacked);
        let parked = std::mem::take(&mut c.parked);
        c.end_tx_and_pending();
        drop(st);
        let id = self.id;
        for entry in consumers.into_iter().filter(|e| e.queue != 0) {
            let (queue, tag) = (entry.queue, entry.tag);
            self.shard.send(shard_of_id(queue), ShardMsg::RemoveConsumer { queue, conn: id, channel: ch, tag });
            for d in entry.held {
                self.bounce(d);
            }
        }
        for d in parked {
            self.bounce(d);
        }
        self.shard.settle(unacked.into_values().map(|u| (u.queue, u.msg_id)), Settle::Requeue);
    }
}
