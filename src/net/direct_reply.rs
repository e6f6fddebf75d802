//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): a requester consumes the pseudo-queue
//! (no-ack only) and publishes with `reply_to: amq.rabbitmq.reply-to`; the broker rewrites that to
//! a name that leads back to its channel, and a reply published to that name on the default
//! exchange goes straight to the requester's connection, on whichever shard it lives, with no
//! queue in between. The name carries the connection id, the channel and a key drawn per
//! consumer, so a late reply never reaches a later consumer on the same channel.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::delivery::Delivery;
use crate::broker::message::Message;
use crate::ids::{ConnId, shard_of_id};
use crate::protocol::Method;
use crate::protocol::methods::basic;
use crate::protocol::properties::{self, BasicProperties};
use crate::protocol::reply::{AmqpError, ChannelError, Result};
use crate::protocol::shortstr::ShortStr;
use crate::shard::msg::ShardMsg;

use super::connection::Conn;

pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The reply consumer of a channel: its tag and the key its reply names carry.
pub struct ReplyConsumer {
    pub tag: String,
    pub key: u64,
}

/// (connection, channel, key) of a reply name, if it is one.
pub fn parse_reply_name(name: &[u8]) -> Option<(ConnId, u16, u64)> {
    let rest = std::str::from_utf8(name.strip_prefix(PREFIX.as_bytes())?).ok()?;
    let mut parts = rest.split('.');
    let conn = u64::from_str_radix(parts.next()?, 16).ok()?;
    let channel = parts.next()?.parse().ok()?;
    let key = u64::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((conn, channel, key))
}

impl Conn {
    /// basic.consume of `amq.rabbitmq.reply-to`: no queue, just the channel's reply consumer.
    pub fn consume_reply_to(self: &Rc<Self>, ch: u16, m: basic::Consume) -> Result<()> {
        if !m.no_ack {
            return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
        }
        let tag = if m.consumer_tag.is_empty() { self.shard.random_name("amq.ctag-") } else { m.consumer_tag.clone() };
        let key = self.shard.random();
        if self.with_channel(ch, |c| Ok(c.consumers.has_tag(&tag)))? {
            return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
        }
        self.with_channel(ch, |c| {
            if c.reply_consumer.is_some() {
                return Err(ChannelError::precondition("reply consumer already set"));
            }
            c.consumers.add(tag.clone(), true);
            c.reply_consumer = Some(ReplyConsumer { tag: tag.clone(), key });
            Ok(())
        })?;
        if !m.nowait {
            self.send_method(ch, &Method::BasicConsumeOk(basic::ConsumeOk { consumer_tag: tag }));
        }
        Ok(())
    }

    /// A publish whose `reply_to` is `amq.rabbitmq.reply-to` gets the channel's reply name
    /// instead (406 if the channel does not consume replies). Other properties pass untouched.
    pub fn rewrite_reply_to(&self, ch: u16, raw: bytes::Bytes) -> Result<bytes::Bytes> {
        // One look at the raw properties: most publishes have no such reply_to.
        if properties::reply_to(&raw) != Some(REPLY_TO.as_bytes()) {
            return Ok(raw);
        }
        let Ok(mut p) = BasicProperties::decode(&raw) else { return Ok(raw) };
        let key = self.with_channel(ch, |c| {
            c.reply_consumer
                .as_ref()
                .map(|r| r.key)
                .ok_or_else(|| ChannelError::precondition("fast reply consumer does not exist"))
        })?;
        let name = format!("{PREFIX}{:x}.{ch}.{key:x}", self.id);
        p.reply_to = ShortStr::copy_from_slice(name.as_bytes()).ok();
        Ok(p.encode())
    }

    /// Sends a reply published to a reply name to the requester's connection.
    pub fn send_direct_reply(&self, (conn, channel, key): (ConnId, u16, u64), msg: Arc<Message>) {
        self.shard.send(shard_of_id(conn), ShardMsg::DirectReply { conn, channel, key, msg });
    }

    /// A reply for this connection's channel `ch`: delivered to its reply consumer if it still
    /// has the one the name was made for, else dropped (as RabbitMQ does).
    pub fn direct_reply(self: &Rc<Self>, ch: u16, key: u64, msg: Arc<Message>) {
        let consumer = self.with_channel(ch, |c| {
            Ok(c.reply_consumer.as_ref().filter(|r| r.key == key).and_then(|r| c.consumers.key_of(&r.tag)))
        });
        let Ok(Some(consumer)) = consumer else { return };
        let d = Delivery {
            conn: self.id,
            channel: ch,
            consumer,
            queue: 0,
            msg_id: 0,
            redelivered: false,
            no_ack: true,
            msg,
        };
        self.deliver(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_names_round_trip_and_others_are_not_reply_names() {
        let name = format!("{PREFIX}{:x}.{}.{:x}", 0x1_0000_0000_0005u64, 7, 0xdead_beefu64);
        assert_eq!(parse_reply_name(name.as_bytes()), Some((0x1_0000_0000_0005, 7, 0xdead_beef)));
        for other in
            [&b"amq.rabbitmq.reply-to"[..], b"amq.rabbitmq.reply-to.x.1.2", b"q", b"amq.rabbitmq.reply-to.1.2.3.4"]
        {
            assert_eq!(parse_reply_name(other), None);
        }
    }
}
