//! What a queue's arguments (and the policy that applies to it) make it do beyond FIFO: message
//! expiry, length limits, dead-lettering, queue expiry (`x-expires`) and the delivery count of
//! quorum queues. The queue calls these from its operations; the shard reads `take_dead` and the
//! deadlines.

use std::sync::Arc;

use crate::clock;
use crate::protocol::properties;

use super::super::message::Message;
use super::lanes::{NEVER, Queued};
use super::{DeadLetter, DeathReason, Queue, QueueType, args};

impl Queue {
    /// When a message arriving now expires: the queue's TTL or its own expiration, the lower.
    pub(super) fn expiry_of(&mut self, msg: &Message, now: &mut Option<u64>) -> u64 {
        let own = properties::has_expiration(&msg.properties)
            .then(|| properties::expiration(&msg.properties).and_then(|e| args::parse_expiration(e).ok()))
            .flatten();
        let ttl = match (self.args.message_ttl, own) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return NEVER,
            },
        };
        self.expiring = true;
        now.get_or_insert_with(clock::now).saturating_add(ttl)
    }

    /// Whether one more message would take it past a length limit (RabbitMQ's will_overflow).
    pub(super) fn would_overflow(&self, msg: &Message) -> bool {
        self.args.max_length.is_some_and(|max| self.ready_count() + 1 > max)
            || self.args.max_length_bytes.is_some_and(|max| self.body_bytes + msg.body.len() as u64 > max)
    }

    pub(super) fn over_limit(&self) -> bool {
        self.args.max_length.is_some_and(|max| self.ready_count() > max)
            || self.args.max_length_bytes.is_some_and(|max| self.body_bytes > max)
    }

    /// Drops the oldest ready messages while over a limit (`x-overflow` drop-head). A head still
    /// on disk is dropped once it is read back.
    pub(super) fn drop_over_limit(&mut self) {
        // reject-publish(-dlx) refuse new messages instead; they never drop (RabbitMQ).
        if self.args.overflow != super::Overflow::DropHead {
            return;
        }
        while self.over_limit() {
            let Some(q) = self.pop_head() else { return };
            self.left(&q);
            self.dead_letter(q.msg, DeathReason::Maxlen);
        }
    }

    /// Drops expired messages from the heads of its lanes (RabbitMQ expires messages when they
    /// reach the head: O(expired)).
    pub(super) fn expire_heads(&mut self, now: u64) {
        if !self.expiring {
            return;
        }
        for i in 0..self.lanes.len() {
            while let Some(l) = self.lanes.get_mut(i)
                && l.ready.front().is_some_and(|q| q.expires < now)
                && let Some(q) = l.ready.pop_front()
            {
                self.body_bytes -= q.msg.body.len() as u64;
                self.left(&q);
                self.dead_letter(q.msg, DeathReason::Expired);
            }
        }
    }

    /// A message leaves for the dead-letter exchange, if the queue has one (else it is dropped).
    pub(super) fn dead_letter(&mut self, msg: Arc<Message>, reason: DeathReason) {
        if self.args.dead_letter_exchange.is_some() {
            self.dead.push(DeadLetter { msg, reason });
        }
    }

    /// A policy applies to it now (or none does): its settings combine with its own arguments
    /// (`policy::effective`). Messages already queued keep their expiry.
    pub fn set_policy(&mut self, policy: Option<&crate::broker::policy::Settings>) {
        self.args = crate::broker::policy::effective(&self.declared, policy);
        self.expiring |= self.args.message_ttl.is_some();
        // Its expiry counts from now (RabbitMQ restarts the timer on a policy change).
        if self.args.expires.is_some() {
            self.last_used = clock::now();
        }
        if self.args.has_limit() {
            self.drop_over_limit();
        }
    }

    /// Messages dropped for the dead-letter exchange since the last call.
    pub fn take_dead(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.dead)
    }

    /// Marks the queue used now (declare, basic.get, a consumer coming or going), for `x-expires`.
    pub fn touch(&mut self) {
        if self.args.expires.is_some() {
            self.last_used = clock::now();
        }
    }

    /// The next time something in it is due: its earliest head expiry, or its own expiry once
    /// unused. `None` if nothing is.
    pub fn next_deadline(&self) -> Option<u64> {
        let heads = self.expiring.then(|| self.lanes.iter().filter_map(|l| l.ready.front()).map(|q| q.expires).min());
        // A message expires once the clock is past its expiry.
        let heads = heads.flatten().filter(|&t| t != NEVER).map(|t| t + 1);
        let unused =
            self.args.expires.filter(|_| self.consumers.list.is_empty()).map(|e| self.last_used.saturating_add(e));
        heads.into_iter().chain(unused).min()
    }

    /// Its next deadline, if the shard's timer must hear of it (it is earlier than the one the
    /// timer holds for it).
    pub fn rearm(&mut self) -> Option<u64> {
        if !self.expiring && self.args.expires.is_none() {
            return None;
        }
        let at = self.next_deadline().filter(|&at| at < self.armed)?;
        self.armed = at;
        Some(at)
    }

    /// The shard's timer went off for it: expires what is due. True if the queue itself expired
    /// (`x-expires`) and is to be deleted.
    pub fn on_timer(&mut self, now: u64) -> bool {
        self.armed = NEVER;
        self.expire_heads(now);
        self.args.expires.is_some_and(|e| self.consumers.list.is_empty() && now >= self.last_used.saturating_add(e))
    }

    /// A quorum queue tells a consumer how often a message came back (`x-delivery-count`).
    pub(super) fn with_delivery_count(&self, mut q: Queued) -> Queued {
        if q.returns > 0 && self.args.kind == QueueType::Quorum {
            q.msg = Arc::new(crate::broker::dead_letter::with_header(
                &q.msg,
                "x-delivery-count",
                crate::protocol::types::FieldValue::I64(i64::from(q.returns)),
            ));
            q.own = true;
        }
        q
    }
}
