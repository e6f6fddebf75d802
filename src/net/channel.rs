//! A channel's state (spec 2.2.5): open or closing, the publish being assembled, delivery tags
//! awaiting acks, its consumers, its confirm and tx modes. And the per-channel method dispatch.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ahash::AHashMap as HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::broker::delivery::Delivery;
use crate::broker::message::Message;
use crate::broker::stats::{ChannelStats, VhostTotals};
use crate::ids::QueueId;
use crate::protocol::Method;
use crate::protocol::methods::{basic, channel as chan};
use crate::protocol::properties::ContentHeader;
use crate::protocol::reply::{AmqpError, ChannelError, ConnectionError, Result};

use super::connection::Conn;
use super::consumers::ChannelConsumers;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and wait for close-ok; everything else on it is dropped.
    Closing,
}

/// Assembly of a published message: method, then header, then body frames (spec 4.2.6).
pub enum Content {
    Idle,
    AwaitHeader(basic::Publish),
    AwaitBody { publish: basic::Publish, header: ContentHeader, body: Body },
}

/// Body frames received so far: the first kept as is, later ones joined (a copy only then).
#[derive(Default)]
pub struct Body {
    first: Option<Bytes>,
    joined: BytesMut,
    pub received: u64,
}

impl Body {
    pub fn push(&mut self, part: Bytes) {
        self.received += part.len() as u64;
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(part),
            None => self.joined.extend_from_slice(&part),
            Some(first) => {
                self.joined.extend_from_slice(&first);
                self.joined.extend_from_slice(&part);
            }
        }
    }

    pub fn finish(self) -> Bytes {
        match self.first {
            Some(b) => b,
            None => self.joined.freeze(),
        }
    }
}

/// A delivery tag awaiting ack: which queue (and message there) it settles.
#[derive(Clone, Copy, Debug)]
pub struct Unacked {
    pub queue: QueueId,
    pub msg_id: u64,
}

/// A publish waiting to hear from every shard it went to (for confirms and mandatory).
pub struct PendingPublish {
    pub shards_left: u32,
    pub enqueued: u32,
    pub mandatory: bool,
    pub confirm_seq: Option<u64>,
    /// A queue refused it (`x-overflow` reject-publish): its confirm is a nack.
    pub rejected: bool,
    pub msg: Arc<Message>,
}

#[derive(Default)]
pub struct Confirms {
    pub next_seq: u64,
    /// Every publish up to here is confirmed...
    pub acked_upto: u64,
    /// ...and the client has been told up to here.
    pub announced: u64,
    pub done: BTreeSet<u64>,
    /// Confirmed publishes a queue refused, not yet told: basic.nack instead of ack.
    pub nacked: BTreeSet<u64>,
}

#[derive(Default)]
pub struct Tx {
    pub publishes: Vec<(basic::Publish, ContentHeader, Bytes)>,
    pub settles: Vec<Method>,
}

impl Tx {
    fn bytes(&self) -> u64 {
        self.publishes.iter().map(|(p, _, body)| (body.len() + p.routing_key.len() + 96) as u64).sum()
    }
}

pub struct Channel {
    pub state: ChannelState,
    content: Content,
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub consumers: ChannelConsumers,
    /// basic.qos global=false: the limit given to consumers created from now on.
    pub prefetch: u16,
    /// basic.qos global=true: most unacked deliveries on the whole channel, across queues and
    /// shards. Deliveries beyond it wait in `parked` (unseen by the client) until acks make room.
    pub global_prefetch: u16,
    pub parked: VecDeque<Delivery>,
    pub last_queue: Option<String>,
    pub next_publish: u64,
    pub pending: HashMap<u64, PendingPublish>,
    pub confirms: Option<Confirms>,
    tx: Option<Tx>,
    /// Its consumer of `amq.rabbitmq.reply-to` (direct reply-to).
    pub reply_consumer: Option<super::direct_reply::ReplyConsumer>,
    /// Its message counters (`message_stats`), plain integers on its connection's shard.
    pub stats: ChannelStats,
    /// Its vhost's totals on this shard, which get its counters when it closes.
    totals: Rc<RefCell<VhostTotals>>,
}

/// Where a message being published stands after a frame of it arrived.
pub enum Assembly {
    /// More frames are due.
    Partial,
    /// The whole message: its method, header and body.
    Complete(basic::Publish, ContentHeader, Bytes),
}

impl Confirms {
    /// What the client has not been told yet of its confirmed prefix: one basic.ack covering it
    /// (`multiple`), split around any publish a queue refused, which gets a basic.nack.
    pub fn announce(&mut self, mut put: impl FnMut(Method)) {
        let upto = self.acked_upto;
        let ack = |from: u64, to: u64, put: &mut dyn FnMut(Method)| {
            if to > from {
                put(Method::BasicAck(basic::Ack { delivery_tag: to, multiple: to - from > 1 }));
            }
        };
        while let Some(&n) = self.nacked.first().filter(|&&n| n <= upto) {
            self.nacked.remove(&n);
            ack(self.announced, n - 1, &mut put);
            put(Method::BasicNack(basic::Nack { delivery_tag: n, multiple: false, requeue: false }));
            self.announced = n;
        }
        ack(self.announced, upto, &mut put);
        self.announced = self.announced.max(upto);
    }
}

impl Channel {
    /// basic.publish arrived: its content header comes next.
    pub fn start_publish(&mut self, p: basic::Publish) {
        self.content = Content::AwaitHeader(p);
    }

    /// Whether no message is half received (a method frame may come).
    pub fn between_messages(&self) -> bool {
        matches!(self.content, Content::Idle)
    }

    /// Drops a message half received (its channel closes).
    pub fn abandon_content(&mut self) {
        self.content = Content::Idle;
    }

    /// A content header on channel `ch` (spec 4.2.6); `max` is the largest body accepted.
    pub fn on_header(&mut self, ch: u16, header: ContentHeader, max: u64) -> Result<Assembly> {
        let Content::AwaitHeader(publish) = std::mem::replace(&mut self.content, Content::Idle) else {
            return Err(AmqpError::unexpected_frame(format!("unexpected content header frame on channel {ch}")));
        };
        if header.class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "content header for class {} on channel {ch}",
                header.class_id
            )));
        }
        if header.body_size > max {
            return Err(AmqpError::precondition(format!(
                "message size {} is larger than configured max size {max}",
                header.body_size
            ))
            .on((60, 40)));
        }
        if header.body_size == 0 {
            return Ok(Assembly::Complete(publish, header, Bytes::new()));
        }
        self.content = Content::AwaitBody { publish, header, body: Body::default() };
        Ok(Assembly::Partial)
    }

    /// A content body frame on channel `ch`.
    pub fn on_body(&mut self, ch: u16, part: Bytes) -> Result<Assembly, ConnectionError> {
        let Content::AwaitBody { body, header, .. } = &mut self.content else {
            return Err(ConnectionError::unexpected_frame(format!("unexpected content body frame on channel {ch}")));
        };
        body.push(part);
        if body.received > header.body_size {
            return Err(ConnectionError::frame(format!(
                "content body of {} bytes exceeds the {} bytes its header declared",
                body.received, header.body_size
            )));
        }
        if body.received < header.body_size {
            return Ok(Assembly::Partial);
        }
        match std::mem::replace(&mut self.content, Content::Idle) {
            Content::AwaitBody { publish, header, body } => Ok(Assembly::Complete(publish, header, body.finish())),
            _ => Ok(Assembly::Partial),
        }
    }

    /// confirm.select: 406 on a transactional channel.
    pub fn select_confirms(&mut self) -> Result<(), ChannelError> {
        if self.tx.is_some() {
            return Err(ChannelError::precondition("cannot switch from tx to confirm mode"));
        }
        self.confirms.get_or_insert_with(Default::default);
        Ok(())
    }

    /// tx.select: 406 on a channel in confirm mode.
    pub fn select_tx(&mut self) -> Result<(), ChannelError> {
        if self.confirms.is_some() {
            return Err(ChannelError::precondition("cannot switch from confirm to tx mode"));
        }
        self.tx.get_or_insert_with(Default::default);
        Ok(())
    }

    /// In tx mode, keeps a complete publish for the commit and gives it back as `None`;
    /// otherwise gives it back to be routed now.
    pub fn hold_for_tx(
        &mut self,
        publish: (basic::Publish, ContentHeader, Bytes),
    ) -> Option<(basic::Publish, ContentHeader, Bytes)> {
        match &mut self.tx {
            Some(tx) => {
                tx.publishes.push(publish);
                None
            }
            None => Some(publish),
        }
    }

    /// In tx mode, keeps an ack, nack or reject for the commit and gives back `None`; otherwise
    /// gives it back to be applied now.
    pub fn hold_settle_for_tx(&mut self, m: Method) -> Option<Method> {
        match &mut self.tx {
            Some(tx) => {
                tx.settles.push(m);
                None
            }
            None => Some(m),
        }
    }

    /// The channel closes: no transaction, no publishes awaiting receipts.
    pub fn end_tx_and_pending(&mut self) {
        self.tx = None;
        self.pending.clear();
    }

    /// tx.commit or tx.rollback: what the transaction holds, and a fresh one in its place; 406 on
    /// a channel not in tx mode.
    pub fn take_tx(&mut self) -> Result<Tx, ChannelError> {
        match &mut self.tx {
            Some(tx) => Ok(std::mem::take(tx)),
            None => Err(ChannelError::precondition("channel is not transactional")),
        }
    }

    /// Message bytes this channel holds outside any queue: the body being assembled and the
    /// publishes of an uncommitted transaction (both count toward the memory alarm).
    pub fn held_bytes(&self) -> u64 {
        let assembling = match &self.content {
            Content::AwaitBody { body, .. } => body.received,
            _ => 0,
        };
        assembling + self.tx.as_ref().map_or(0, Tx::bytes)
    }

    /// A channel whose counters go to `totals` when it closes.
    pub fn new(totals: Rc<RefCell<VhostTotals>>) -> Self {
        totals.borrow_mut().channels_opened += 1;
        Self {
            state: ChannelState::Open,
            content: Content::Idle,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: ChannelConsumers::default(),
            prefetch: 0,
            global_prefetch: 0,
            parked: VecDeque::new(),
            last_queue: None,
            next_publish: 1,
            pending: HashMap::new(),
            confirms: None,
            tx: None,
            reply_consumer: None,
            stats: ChannelStats::default(),
            totals,
        }
    }

    /// The limit a new consumer gets at its queue: the tighter of the two qos settings.
    pub fn consumer_prefetch(&self) -> u16 {
        match (self.prefetch, self.global_prefetch) {
            (0, g) => g,
            (p, 0) => p,
            (p, g) => p.min(g),
        }
    }

    /// Whether the channel-wide limit keeps a manual-ack delivery from the client for now.
    pub fn over_global_limit(&self) -> bool {
        self.global_prefetch != 0 && self.unacked.len() >= self.global_prefetch as usize
    }

    /// Counts a complete publish: `targets` is how many shards it goes to.
    #[inline]
    pub fn count_publish(&mut self, confirm: bool, default_exchange: bool, targets: u32) {
        let s = &mut self.stats;
        s.msgs.publish += 1;
        s.msgs.publish_confirm += u64::from(confirm);
        if default_exchange {
            s.default_in += 1;
            s.default_out += u64::from(targets > 0);
        }
    }

    /// Counts what became of a publish the channel waited for: a confirm, and a return or drop
    /// if it reached no queue.
    pub fn count_receipt(&mut self, confirm: bool, mandatory: bool, unroutable: bool) {
        let s = &mut self.stats.msgs;
        s.confirm += u64::from(confirm);
        if unroutable {
            if mandatory {
                s.return_unroutable += 1;
            } else {
                s.drop_unroutable += 1;
            }
        }
    }

    pub fn take_tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag += 1;
        t
    }

    /// The queue name to use: the one given, or (when empty) the last one declared on this channel.
    pub fn queue_name(&self, given: &str) -> Result<String, ChannelError> {
        if !given.is_empty() {
            return Ok(given.to_string());
        }
        self.last_queue.clone().ok_or_else(|| ChannelError::not_found("no previously declared queue"))
    }

    /// The tags an ack/nack/reject covers: 406 PRECONDITION_FAILED for an unknown tag.
    pub fn take_acked(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, ChannelError> {
        if multiple {
            if tag != 0 && !self.unacked.contains_key(&tag) {
                return Err(ChannelError::precondition(format!("unknown delivery tag {tag}")));
            }
            let upto = if tag == 0 { u64::MAX } else { tag };
            let rest = self.unacked.split_off(&upto.saturating_add(1));
            let taken = std::mem::replace(&mut self.unacked, rest);
            Ok(taken.into_values().collect())
        } else {
            self.unacked
                .remove(&tag)
                .map(|u| vec![u])
                .ok_or_else(|| ChannelError::precondition(format!("unknown delivery tag {tag}")))
        }
    }
}

impl Default for Channel {
    fn default() -> Self {
        Self::new(Rc::default())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut t = self.totals.borrow_mut();
        t.retired.add(&self.stats);
        t.channels_closed += 1;
    }
}

impl Conn {
    /// Handles a method on an open channel (not channel.open, which the connection handles).
    pub async fn on_channel_method(self: &Rc<Self>, ch: u16, m: Method) -> Result<()> {
        let id = m.id();
        let r = match m {
            Method::ChannelClose(_) => {
                self.release_channel(ch);
                self.st.borrow_mut().channels.remove(&ch);
                self.channels_removed();
                self.send_method(ch, &Method::ChannelCloseOk(chan::CloseOk {}));
                Ok(())
            }
            Method::ChannelFlow(f) => {
                if !f.active {
                    return Err(AmqpError::not_implemented("active=false").on(id));
                }
                self.send_method(ch, &Method::ChannelFlowOk(chan::FlowOk { active: true }));
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::ChannelCloseOk(_) => Ok(()),
            Method::AccessRequest(_) => {
                self.send_method(
                    ch,
                    &Method::AccessRequestOk(crate::protocol::methods::access::RequestOk { ticket: 1 }),
                );
                Ok(())
            }
            Method::ExchangeDeclare(x) => self.exchange_declare(ch, x).await,
            Method::ExchangeDelete(x) => self.exchange_delete(ch, x).await,
            Method::ExchangeBind(x) => self.exchange_bind(ch, x).await,
            Method::ExchangeUnbind(x) => self.exchange_unbind(ch, x).await,
            Method::QueueDeclare(x) => self.queue_declare(ch, x).await,
            Method::QueueBind(x) => self.queue_bind(ch, x).await,
            Method::QueueUnbind(x) => self.queue_unbind(ch, x).await,
            Method::QueuePurge(x) => self.queue_purge(ch, x).await,
            Method::QueueDelete(x) => self.queue_delete(ch, x).await,
            Method::BasicQos(x) => self.basic_qos(ch, x),
            Method::BasicConsume(x) => self.basic_consume(ch, x).await,
            Method::BasicCancel(x) => self.basic_cancel(ch, x).await,
            Method::BasicPublish(x) => self.basic_publish(ch, x),
            Method::BasicGet(x) => self.basic_get(ch, x).await,
            Method::BasicAck(_) | Method::BasicNack(_) | Method::BasicReject(_) => self.basic_settle(ch, m),
            // requeue=false is treated as requeue=true: every unacked delivery goes back.
            Method::BasicRecover(_) => {
                self.recover(ch);
                self.send_method(ch, &Method::BasicRecoverOk(basic::RecoverOk {}));
                Ok(())
            }
            Method::BasicRecoverAsync(_) => {
                self.recover(ch);
                Ok(())
            }
            Method::ConfirmSelect(x) => self.confirm_select(ch, x),
            Method::TxSelect(_) => self.tx_select(ch),
            Method::TxCommit(_) => self.tx_commit(ch),
            Method::TxRollback(_) => self.tx_rollback(ch),
            other => Err(AmqpError::command_invalid(format!(
                "method {:?} is not valid on a channel from a client",
                other.id()
            ))),
        };
        r.map_err(|e| e.on(id))
    }
}
