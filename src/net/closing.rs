//! How a connection or one of its channels closes: channel.close or connection.close for an error
//! (by its scope), a forced close (320), and what is released when the connection is over
//! (unacked deliveries requeued, consumers cancelled, exclusive queues deleted).

use std::rc::Rc;
use std::time::Instant;

use crate::broker::delivery::Settle;
use crate::ids::shard_of_id;
use crate::protocol::Method;
use crate::protocol::methods::connection as conn;
use crate::protocol::reply::{AmqpError, ChannelError, ConnectionError};
use crate::shard::msg::ShardMsg;

use super::channel::ChannelState;
use super::connection::{Conn, Phase};

impl Conn {
    /// A channel error closes the channel; a connection error closes the connection. A channel
    /// error on channel 0 closes the connection with its own code: channel 0 is the connection's
    /// (RabbitMQ's `map_exception` does the same; no handler raises one there today).
    pub fn fail(self: &Rc<Self>, ch: u16, e: AmqpError) {
        match e {
            AmqpError::Connection(e) => self.close_connection(e),
            AmqpError::Channel(e) if ch == 0 => self.send_connection_close(e.into_connection_close()),
            AmqpError::Channel(e) => self.close_channel(ch, e),
        }
    }

    /// Sends channel.close and releases what the channel held; it waits for close-ok.
    pub fn close_channel(self: &Rc<Self>, ch: u16, e: ChannelError) {
        log::debug!("connection {}: closing channel {ch}: {}", self.id, e.text());
        self.release_channel(ch);
        let mut st = self.st.borrow_mut();
        let c = st.channels.entry(ch).or_default();
        c.state = ChannelState::Closing;
        c.abandon_content();
        drop(st);
        self.send_method(ch, &Method::ChannelClose(e.into_close()));
    }

    /// Sends connection.close and waits (bounded) for close-ok.
    pub fn close_connection(self: &Rc<Self>, e: ConnectionError) {
        self.send_connection_close(e.into_close());
    }

    fn send_connection_close(self: &Rc<Self>, close: conn::Close) {
        if matches!(self.phase.get(), Phase::Closing | Phase::Done) {
            return;
        }
        log::debug!("connection {}: closing: {}", self.id, close.reply_text);
        self.send_method(0, &Method::ConnectionClose(close));
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
        self.close_connection(ConnectionError::connection_forced(text));
    }

    /// The connection is over: every channel released, exclusive queues deleted.
    pub(super) fn cleanup(self: &Rc<Self>) {
        self.phase.set(Phase::Done);
        let channels: Vec<u16> = self.st.borrow().channels.keys().copied().collect();
        for ch in channels {
            self.release_channel(ch);
        }
        self.st.borrow_mut().channels.clear();
        self.uncount();
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
