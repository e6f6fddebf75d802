//! The basic class apart from publishing: qos, consume, cancel, get, ack / nack / reject, recover;
//! and the modes a channel can switch to: confirm.select, tx.select / commit / rollback.

use std::rc::Rc;

use crate::broker::access::{Perm, Resource};
use crate::broker::delivery::Settle;
use crate::broker::queue::Consumer;
use crate::broker::queue::args::consumer_priority;
use crate::ids::shard_of_id;
use crate::protocol::Method;
use crate::protocol::methods::{basic, confirm, tx};
use crate::protocol::reply::{AmqpError, Result};
use crate::shard::queue_ops::QueueOp;

use super::channel::Unacked;
use super::connection::Conn;

impl Conn {
    pub fn basic_qos(self: &Rc<Self>, ch: u16, q: basic::Qos) -> Result<()> {
        if q.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!("prefetch_size!=0 ({})", q.prefetch_size)));
        }
        self.with_channel(ch, |c| {
            if q.global {
                c.global_prefetch = q.prefetch_count;
            } else {
                c.prefetch = q.prefetch_count;
            }
            Ok(())
        })?;
        self.send_method(ch, &Method::BasicQosOk(basic::QosOk {}));
        self.release_parked(ch);
        Ok(())
    }

    pub async fn basic_consume(self: &Rc<Self>, ch: u16, m: basic::Consume) -> Result<()> {
        if m.queue == super::direct_reply::REPLY_TO {
            return self.consume_reply_to(ch, m);
        }
        let (name, prefetch) = self.with_channel(ch, |c| Ok((c.queue_name(&m.queue)?, c.consumer_prefetch())))?;
        self.permit(Perm::Read, Resource::Queue(&name))?;
        let tag = if m.consumer_tag.is_empty() { self.shard.random_name("amq.ctag-") } else { m.consumer_tag.clone() };
        let reused = self.with_channel(ch, |c| Ok(c.consumers.has_tag(&tag)))?;
        if reused {
            return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
        }
        let rs = || format!("queue '{name}' in vhost '{}'", self.st.borrow().vhost);
        let priority = consumer_priority(&m.arguments, rs)?;
        // Registered before the queue knows of it, so deliveries that beat consume-ok wait in `held`.
        let key = self.with_channel(ch, |c| Ok(c.consumers.add(tag.clone(), m.nowait)))?;
        let consumer = Consumer::new(key, tag.as_str().into(), self.id, ch, m.no_ack, m.exclusive, prefetch as u32)
            .with_priority(priority);
        let result = self.with_queue(ch, &name, |at, done| QueueOp::Consume { at, consumer, done }).await;
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                let _ = self.with_channel(ch, |c| Ok(c.consumers.remove_tag(&tag)));
                return Err(e);
            }
        };
        if !m.nowait {
            self.send_method(ch, &Method::BasicConsumeOk(basic::ConsumeOk { consumer_tag: tag.clone() }));
        }
        let held = self.with_channel(ch, |c| {
            Ok(c.consumers.get_mut(key).map(|e| {
                e.queue = id;
                e.ready = true;
                std::mem::take(&mut e.held)
            }))
        });
        for d in held.ok().flatten().unwrap_or_default() {
            self.deliver(d);
        }
        Ok(())
    }

    pub async fn basic_cancel(self: &Rc<Self>, ch: u16, m: basic::Cancel) -> Result<()> {
        let entry = self.with_channel(ch, |c| {
            if c.reply_consumer.as_ref().is_some_and(|r| r.tag == m.consumer_tag) {
                c.reply_consumer = None;
            }
            Ok(c.consumers.remove_tag(&m.consumer_tag))
        })?;
        // The reply consumer (queue 0) has no queue to leave.
        if let Some(entry) = entry.filter(|e| e.queue != 0) {
            let (queue, conn, tag) = (entry.queue, self.id, m.consumer_tag.clone());
            let cancel = |done| QueueOp::Cancel { queue, conn, channel: ch, tag, done };
            self.shard.ask_queue(shard_of_id(queue), cancel).await?;
            for d in entry.held {
                self.shard.settle([(d.queue, d.msg_id)], Settle::Return);
            }
        }
        if !m.nowait {
            self.send_method(ch, &Method::BasicCancelOk(basic::CancelOk { consumer_tag: m.consumer_tag }));
        }
        Ok(())
    }

    pub async fn basic_get(self: &Rc<Self>, ch: u16, m: basic::Get) -> Result<()> {
        let name = self.with_channel(ch, |c| c.queue_name(&m.queue))?;
        self.permit(Perm::Read, Resource::Queue(&name))?;
        let no_ack = m.no_ack;
        let (queue, got) = loop {
            let (queue, got) = self.with_queue(ch, &name, |at, done| QueueOp::Get { at, no_ack, done }).await?;
            match got {
                Some(got) => break (queue, got),
                // The head of the queue is on disk: wait until it is read back, then ask again.
                None => self.shard.paged_in(shard_of_id(queue), queue).await?,
            }
        };
        let Some((msg_id, msg, redelivered, message_count)) = got else {
            let _ = self.with_channel(ch, |c| {
                c.stats.msgs.get_empty += 1;
                Ok(())
            });
            self.send_method(ch, &Method::BasicGetEmpty(basic::GetEmpty::default()));
            return Ok(());
        };
        let tag = self.with_channel(ch, |c| {
            let tag = c.take_tag();
            c.stats.msgs.got(no_ack, redelivered);
            if !no_ack {
                c.unacked.insert(tag, Unacked { queue, msg_id });
            }
            Ok(tag)
        });
        let Ok(tag) = tag else {
            // The channel closed while we waited: the message goes back.
            if !no_ack {
                self.shard.settle([(queue, msg_id)], Settle::Return);
            }
            return Ok(());
        };
        let ok = Method::BasicGetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            message_count,
        });
        self.send_content(ch, &ok, &msg.properties, &msg.body);
        Ok(())
    }

    /// basic.ack, basic.nack and basic.reject (buffered until commit in tx mode).
    pub fn basic_settle(self: &Rc<Self>, ch: u16, m: Method) -> Result<()> {
        match self.with_channel(ch, |c| Ok(c.hold_settle_for_tx(m)))? {
            Some(m) => self.settle_now(ch, m),
            None => Ok(()),
        }
    }

    /// Applies an ack, nack or reject (at once, or at tx.commit).
    fn settle_now(self: &Rc<Self>, ch: u16, m: Method) -> Result<()> {
        let (tag, multiple, action) = match m {
            Method::BasicAck(a) => (a.delivery_tag, a.multiple, Settle::Ack),
            Method::BasicNack(n) => {
                (n.delivery_tag, n.multiple, if n.requeue { Settle::Requeue } else { Settle::Discard })
            }
            Method::BasicReject(r) => {
                (r.delivery_tag, false, if r.requeue { Settle::Requeue } else { Settle::Discard })
            }
            _ => return Ok(()),
        };
        let settled = self.with_channel(ch, |c| {
            let settled = c.take_acked(tag, multiple)?;
            if matches!(action, Settle::Ack) {
                c.stats.msgs.ack += settled.len() as u64;
            }
            Ok(settled)
        })?;
        self.shard.settle(settled.into_iter().map(|u| (u.queue, u.msg_id)), action);
        self.release_parked(ch);
        Ok(())
    }

    /// basic.recover: every unacked delivery of the channel goes back to its queue, redelivered.
    pub fn recover(self: &Rc<Self>, ch: u16) {
        let unacked = self.with_channel(ch, |c| Ok(std::mem::take(&mut c.unacked))).unwrap_or_default();
        self.shard.settle(unacked.into_values().map(|u| (u.queue, u.msg_id)), Settle::Requeue);
        self.release_parked(ch);
    }

    /// Hands parked deliveries to the client while the channel-wide limit allows.
    pub fn release_parked(self: &Rc<Self>, ch: u16) {
        loop {
            let next = self.with_channel(ch, |c| Ok(if c.over_global_limit() { None } else { c.parked.pop_front() }));
            match next {
                Ok(Some(d)) => self.deliver_or_park(d, false),
                _ => return,
            }
        }
    }

    pub fn confirm_select(self: &Rc<Self>, ch: u16, m: confirm::Select) -> Result<()> {
        self.with_channel(ch, |c| c.select_confirms())?;
        if !m.nowait {
            self.send_method(ch, &Method::ConfirmSelectOk(confirm::SelectOk {}));
        }
        Ok(())
    }

    pub fn tx_select(self: &Rc<Self>, ch: u16) -> Result<()> {
        self.with_channel(ch, |c| c.select_tx())?;
        self.send_method(ch, &Method::TxSelectOk(tx::SelectOk {}));
        Ok(())
    }

    pub fn tx_commit(self: &Rc<Self>, ch: u16) -> Result<()> {
        let work = self.with_channel(ch, |c| c.take_tx())?;
        for (p, header, body) in work.publishes {
            self.route_publish(ch, p, header, body)?;
        }
        for m in work.settles {
            self.settle_now(ch, m)?;
        }
        self.send_method(ch, &Method::TxCommitOk(tx::CommitOk {}));
        Ok(())
    }

    pub fn tx_rollback(self: &Rc<Self>, ch: u16) -> Result<()> {
        self.with_channel(ch, |c| c.take_tx().map(drop))?;
        self.send_method(ch, &Method::TxRollbackOk(tx::RollbackOk {}));
        Ok(())
    }
}
