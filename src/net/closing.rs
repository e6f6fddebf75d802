//! How a connection or one of its channels closes: channel.close or connection.close for an error
//! (by its scope), a forced close (320), and what is released when the connection is over
//! (unacked deliveries requeued, consumers cancelled, exclusive queues deleted).

use std::rc::Rc;
use std::time::Instant;

use crate::broker::delivery::Settle;
use crate::ids::shard_of_id;
use crate::protocol::Method;
use crate::protocol::methods::{channel as chan, connection as conn};
use crate::protocol::reply::{AmqpError, ReplyCode};
use crate::shard::msg::ShardMsg;

use super::channel::ChannelState;
use super::connection::{Conn, Phase};

impl Conn {
    /// A channel error closes the channel; a connection error closes the connection.
    pub fn fail(self: &Rc<Self>, ch: u16, e: AmqpError) {
        if e.is_hard() || ch == 0 {
            self.close_connection(e);
        } else {
            self.close_channel(ch, e);
        }
    }

    /// Sends channel.close and releases what the channel held; it waits for close-ok.
    pub fn close_channel(self: &Rc<Self>, ch: u16, e: AmqpError) {
        log::debug!("connection {}: closing channel {ch}: {}", self.id, e.text);
        self.release_channel(ch);
        let mut st = self.st.borrow_mut();
        let c = st.channels.entry(ch).or_default();
        c.state = ChannelState::Closing;
        c.abandon_content();
        drop(st);
        self.send_method(
            ch,
            &Method::ChannelClose(chan::Close {
                reply_code: e.code.code(),
                reply_text: e.text,
                class_id: e.class_id,
                method_id: e.method_id,
            }),
        );
    }

    /// Sends connection.close and waits (bounded) for close-ok.
    pub fn close_connection(self: &Rc<Self>, e: AmqpError) {
        if matches!(self.phase.get(), Phase::Closing | Phase::Done) {
            return;
        }
        log::debug!("connection {}: closing: {}", self.id, e.text);
        self.send_method(
            0,
            &Method::ConnectionClose(conn::Close {
                reply_code: e.code.code(),
                reply_text: e.text,
                class_id: e.class_id,
                method_id: e.method_id,
            }),
        );
        self.phase.set(Phase::Closing);
        // Its consumers leave their queues now, not when the socket ends: a delivery to a closing
        // connection comes straight back, and a queue on this shard would dispatch it to the same
        // consumer again, in a loop that never gives the shard back.
        let channels: Vec<u16> = self.st.borrow().channels.keys().copied().collect();
        for ch in channels {
            self.release_channel(ch);
        }
        self.closing_since.set(Some(Instant::now()));
        self.watchdog_wake.notify();
        // A reader paused by flow control must wake to read the close-ok.
        self.flow_resumed.notify();
    }

    /// Shutdown: connection.close 320 CONNECTION_FORCED.
    pub fn force_close(self: &Rc<Self>, text: &str) {
        self.close_connection(AmqpError::new(ReplyCode::ConnectionForced, text));
    }

    /// The connection is over: every channel released, exclusive queues deleted.
    pub(super) fn cleanup(self: &Rc<Self>) {
        self.phase.set(Phase::Done);
        let channels: Vec<u16> = self.st.borrow().channels.keys().copied().collect();
        for ch in channels {
            self.release_channel(ch);
        }
        self.st.borrow_mut().channels.clear();
        let exclusive = std::mem::take(&mut self.st.borrow_mut().exclusive_queues);
        for q in exclusive {
            self.shard.send(shard_of_id(q), ShardMsg::DeleteExclusive(q));
        }
        let written = std::mem::take(&mut *self.written_no_ack.borrow_mut());
        self.shard.settle(written, Settle::Ack);
        // The channels' unacked deliveries were requeued above; no-ack ones never written go back.
        let waiting = std::mem::take(&mut *self.backlog.borrow_mut());
        for (_, d) in waiting.into_iter().filter(|(_, d)| d.no_ack) {
            self.bounce(d);
        }
        self.shard.unregister(self.id);
        self.writer.notify();
    }
}
