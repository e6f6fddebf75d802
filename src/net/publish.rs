//! basic.publish: assembling method + header + body, routing on this shard's table copy, sending
//! one envelope per destination shard, and what comes back (publisher confirms, mandatory returns).

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::broker::delivery::PublishRef;
use crate::broker::message::Message;
use crate::broker::queue::args::parse_expiration;
use crate::protocol::Method;
use crate::protocol::frame;
use crate::protocol::methods::basic;
use crate::protocol::properties::{self, BasicProperties, ContentHeader};
use crate::protocol::reply::{AmqpError, ChannelError, NO_ROUTE, Result};
use crate::protocol::types::FieldValue;
use crate::shard::msg::{ShardMsg, Targets};
use crate::shard::placement::{by_shard, shard_of};

use super::channel::{Assembly, Channel, ChannelState, PendingPublish};
use super::connection::Conn;

impl Conn {
    pub fn basic_publish(self: &Rc<Self>, ch: u16, p: basic::Publish) -> Result<()> {
        if !self.published.replace(true) && self.shard.alarm.get().is_some() {
            // A first publish during an alarm: blocked like the others.
            self.resource_alarm(self.shard.alarm.get());
        }
        if p.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        self.with_channel(ch, |c| {
            c.start_publish(p);
            Ok(())
        })
    }

    pub fn on_header(self: &Rc<Self>, ch: u16, header: ContentHeader) -> Result<()> {
        let max = self.shard.config.max_message_size;
        self.on_content(ch, |c| c.on_header(ch, header, max))
    }

    pub fn on_body(self: &Rc<Self>, ch: u16, part: Bytes) -> Result<()> {
        self.on_content(ch, |c| c.on_body(ch, part))
    }

    /// A frame of a message being published; once it is whole it is published. Frames on a
    /// channel that is closing are dropped.
    fn on_content<E>(self: &Rc<Self>, ch: u16, frame: impl FnOnce(&mut Channel) -> Result<Assembly, E>) -> Result<()>
    where
        AmqpError: From<E>,
    {
        let assembled = {
            let mut st = self.st.borrow_mut();
            let Some(c) = st.channels.get_mut(&ch) else {
                return Err(AmqpError::channel_error(format!("expected 'channel.open' on channel {ch}")));
            };
            if c.state != ChannelState::Open {
                return Ok(());
            }
            frame(c)?
        };
        match assembled {
            Assembly::Partial => Ok(()),
            Assembly::Complete(p, header, body) => self.publish_complete(ch, p, header, body),
        }
    }

    fn publish_complete(self: &Rc<Self>, ch: u16, p: basic::Publish, header: ContentHeader, body: Bytes) -> Result<()> {
        let Some((p, header, body)) = self.with_channel(ch, |c| Ok(c.hold_for_tx((p, header, body))))? else {
            return Ok(());
        };
        self.route_publish(ch, p, header, body).map_err(|e| e.on((60, 40)))
    }

    /// Routes a complete message and sends it to the shards owning its queues.
    pub fn route_publish(
        self: &Rc<Self>,
        ch: u16,
        p: basic::Publish,
        header: ContentHeader,
        body: Bytes,
    ) -> Result<()> {
        let vhost = self.st.borrow().vhost.clone();
        // Exchange names are text. RabbitMQ checks no UTF-8 in a publish: other bytes name no
        // exchange, and the answer is its 404.
        let Some(exchange) = p.exchange.as_str() else {
            return Err(AmqpError::not_found(format!("no exchange '{}' in vhost '{vhost}'", p.exchange)));
        };
        self.permit_publish(exchange)?;
        self.check_properties(&header.properties)?;
        let properties = self.rewrite_reply_to(ch, header.properties)?;
        let (properties, cc) = sender_selected(properties);
        // A reply to a direct reply-to requester goes to its connection, not to a queue.
        let direct = if exchange.is_empty() { super::direct_reply::parse_reply_name(&p.routing_key) } else { None };
        let n = self.shard.shards();
        // One envelope per destination shard. The default exchange names its one queue by the
        // routing key; otherwise the routed list goes as it is when every queue shares a shard.
        let groups = if direct.is_some() {
            Groups::Many(Vec::new())
        } else if !cc.is_empty() {
            // CC and BCC keys route like the routing key, on the same exchange, each queue once.
            let mut queues = Vec::new();
            let props = properties.clone();
            let headers = move || BasicProperties::decode(&props).ok().and_then(|p| p.headers);
            let routes = self.shard.routes.borrow();
            routes.check_publishable(&vhost, exchange)?;
            let keys = std::iter::once(p.routing_key.as_bytes()).chain(cc.iter().map(Vec::as_slice));
            routes.route_keys(&vhost, exchange, keys, &headers, &mut queues)?;
            group_by_shard(queues, |q| shard_of(&vhost, q, n))
        } else if exchange.is_empty() {
            match p.routing_key.as_str() {
                Some(queue) => Groups::One(shard_of(&vhost, queue, n), Targets::RoutingKey),
                // Queue names are text: a key that is not names no queue.
                None => Groups::Many(Vec::new()),
            }
        } else {
            let mut queues = Vec::new();
            let props = properties.clone();
            let headers = move || BasicProperties::decode(&props).ok().and_then(|p| p.headers);
            self.shard.routes.borrow().route(&vhost, exchange, &p.routing_key, &headers, &mut queues)?;
            group_by_shard(queues, |q| shard_of(&vhost, q, n))
        };
        let default_exchange = exchange.is_empty();
        let msg = Arc::new(Message { exchange: p.exchange, routing_key: p.routing_key, properties, body });
        let targets = groups.len() as u32;
        let reply = self.with_channel(ch, |c| {
            let confirm_seq = c.confirms.as_mut().map(|cf| {
                cf.next_seq += 1;
                cf.next_seq
            });
            c.count_publish(confirm_seq.is_some(), default_exchange, targets);
            if confirm_seq.is_none() && !p.mandatory {
                // Dropped here unless it goes to a queue's shard (which counts a queue it lacks).
                c.stats.msgs.drop_unroutable += u64::from(targets == 0 && direct.is_none());
                return Ok(None);
            }
            let serial = c.next_publish;
            c.next_publish += 1;
            c.pending.insert(
                serial,
                PendingPublish {
                    shards_left: targets,
                    enqueued: 0,
                    mandatory: p.mandatory,
                    confirm_seq,
                    rejected: false,
                    msg: msg.clone(),
                },
            );
            Ok(Some(PublishRef { conn: self.id, channel: ch, seq: serial }))
        })?;
        if targets == 0 {
            if let Some(to) = direct {
                self.send_direct_reply(to, msg);
            }
            if let Some(r) = reply {
                self.on_receipt(ch, r.seq, direct.is_some() as u32, false);
            }
            return Ok(());
        }
        let send = |dest, queues| {
            self.shard
                .send(dest, ShardMsg::Publish { vhost: vhost.clone(), queues, msg: msg.clone(), from: self.id, reply })
        };
        match groups {
            Groups::One(dest, queues) => send(dest, queues),
            Groups::Many(groups) => groups.into_iter().for_each(|(dest, named)| send(dest, Targets::Named(named))),
        }
        Ok(())
    }

    /// The properties RabbitMQ checks on publish: a valid `expiration` (406 otherwise), and a
    /// `user_id` that names the connection's user (validated user-id: 406 otherwise).
    fn check_properties(&self, raw: &[u8]) -> Result<()> {
        if properties::has_expiration(raw)
            && let Some(e) = properties::expiration(raw)
        {
            parse_expiration(e)?;
        }
        if let Some(user_id) = properties::user_id(raw) {
            let st = self.st.borrow();
            // Users tagged impersonator may publish as anyone (RabbitMQ).
            let impersonator = || {
                self.shard.access.borrow().user(&st.user).is_some_and(|u| u.tags.iter().any(|t| t == "impersonator"))
            };
            if user_id != st.user.as_bytes() && !impersonator() {
                return Err(AmqpError::precondition(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    String::from_utf8_lossy(user_id),
                    st.user
                )));
            }
        }
        Ok(())
    }

    /// One destination shard took (or could not place) a publish; once all have, the publisher
    /// hears: basic.return for an unroutable mandatory message, then basic.ack when confirming.
    pub fn on_receipt(self: &Rc<Self>, ch: u16, serial: u64, enqueued: u32, rejected: bool) {
        let mut st = self.st.borrow_mut();
        let Some(c) = st.channels.get_mut(&ch) else { return };
        let Some(p) = c.pending.get_mut(&serial) else { return };
        p.enqueued += enqueued;
        p.rejected |= rejected;
        p.shards_left = p.shards_left.saturating_sub(1);
        if p.shards_left > 0 {
            return;
        }
        let Some(p) = c.pending.remove(&serial) else { return };
        c.count_receipt(p.confirm_seq.is_some(), p.mandatory, p.enqueued == 0 && !p.rejected);
        let advanced = p.confirm_seq.is_some_and(|seq| {
            let Some(cf) = c.confirms.as_mut() else { return false };
            cf.done.insert(seq);
            if p.rejected {
                cf.nacked.insert(seq);
            }
            let before = cf.acked_upto;
            while cf.done.remove(&(cf.acked_upto + 1)) {
                cf.acked_upto += 1;
            }
            cf.acked_upto > before
        });
        drop(st);
        if p.mandatory && p.enqueued == 0 && !p.rejected {
            let m = Method::BasicReturn(basic::Return {
                reply_code: NO_ROUTE,
                reply_text: "NO_ROUTE".into(),
                exchange: p.msg.exchange.clone(),
                routing_key: p.msg.routing_key.clone(),
            });
            self.send_content(ch, &m, &p.msg.properties, &p.msg.body);
        }
        if advanced {
            // The ack itself is written once per socket write, covering every confirm since the
            // last one with `multiple` (see `flush_confirms`).
            self.confirms_due(ch);
        }
    }

    /// Writes one basic.ack per channel whose confirmed prefix grew since the last one.
    pub fn flush_confirms(&self, channels: &mut Vec<u16>) {
        if self.closed() {
            channels.clear();
            return;
        }
        for ch in channels.drain(..) {
            let _ = self.with_channel(ch, |c| {
                // A channel the broker closed says nothing more (its client counts them failed).
                if c.state != super::channel::ChannelState::Open {
                    return Ok(());
                }
                if let Some(cf) = c.confirms.as_mut() {
                    cf.announce(|m| frame::put_method(&mut self.out_mut(), ch, &m));
                }
                Ok(())
            });
        }
    }

    /// Runs `f` on an open channel's state.
    pub fn with_channel<R>(
        &self,
        ch: u16,
        f: impl FnOnce(&mut super::channel::Channel) -> Result<R, ChannelError>,
    ) -> Result<R> {
        let mut st = self.st.borrow_mut();
        let c = st
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::channel_error(format!("expected 'channel.open' on channel {ch}")))?;
        Ok(f(c)?)
    }
}

/// Sender-selected distribution (RabbitMQ's CC and BCC headers): the extra routing keys a publish
/// names, and its properties without BCC, which no consumer sees. Most publishes have neither,
/// found by a look at the raw headers' keys.
fn sender_selected(raw: Bytes) -> (Bytes, Vec<Vec<u8>>) {
    if !properties::headers_have(&raw, &[b"CC", b"BCC"]) {
        return (raw, Vec::new());
    }
    let Ok(mut p) = BasicProperties::decode(&raw) else { return (raw, Vec::new()) };
    let Some(h) = p.headers.as_mut() else { return (raw, Vec::new()) };
    let keys = |v: Option<&FieldValue>| -> Vec<Vec<u8>> {
        match v {
            Some(FieldValue::Array(a)) => a
                .iter()
                .filter_map(|k| match k {
                    FieldValue::LongStr(b) => Some(b.to_vec()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut extra = keys(h.get("CC"));
    extra.extend(keys(h.get("BCC")));
    if h.get("BCC").is_none() {
        return (raw, extra);
    }
    h.0.retain(|(k, _)| k.as_bytes() != b"BCC");
    (p.encode(), extra)
}

/// Where a publish goes: one shard (the common case, without a list to allocate) or several.
enum Groups {
    One(usize, Targets),
    Many(Vec<(usize, Vec<Arc<str>>)>),
}

impl Groups {
    fn len(&self) -> usize {
        match self {
            Groups::One(..) => 1,
            Groups::Many(g) => g.len(),
        }
    }
}

/// Splits routed queues by owning shard; a list whose queues share one shard is kept whole.
fn group_by_shard(queues: Vec<Arc<str>>, shard: impl Fn(&Arc<str>) -> usize) -> Groups {
    let Some(first) = queues.first().map(&shard) else { return Groups::Many(Vec::new()) };
    if queues.iter().all(|q| shard(q) == first) {
        return Groups::One(first, Targets::Named(queues));
    }
    Groups::Many(by_shard(queues, shard))
}
