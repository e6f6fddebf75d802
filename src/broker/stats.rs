//! Message counters as RabbitMQ's management plugin names them (`message_stats` in its HTTP API).
//! Each object keeps its own plain integers on the shard that owns it (a queue, a channel, an
//! exchange's copy in each shard's routing table): no atomics and no locks on the message path.
//! The control plane asks the shards for them now and then and computes rates from the samples.

use std::cell::Cell;

/// Counters of one queue, channel or vhost. A queue uses the delivery side only; a channel all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Messages received from publishers (a queue: messages enqueued).
    pub publish: u64,
    /// Of those, received on a channel in confirm mode.
    pub publish_confirm: u64,
    /// Publisher confirms sent (basic.ack or basic.nack).
    pub confirm: u64,
    /// Mandatory messages returned as unroutable.
    pub return_unroutable: u64,
    /// Messages that reached no queue and were dropped.
    pub drop_unroutable: u64,
    /// Deliveries to consumers in manual-ack mode.
    pub deliver: u64,
    /// Deliveries to consumers in auto-ack mode.
    pub deliver_no_ack: u64,
    /// basic.get answers in manual-ack mode.
    pub get: u64,
    /// basic.get answers in auto-ack mode.
    pub get_no_ack: u64,
    /// basic.get on an empty queue.
    pub get_empty: u64,
    /// Deliveries and gets with the redelivered flag set.
    pub redeliver: u64,
    /// Messages acknowledged by consumers.
    pub ack: u64,
}

impl MessageStats {
    /// A delivery to a consumer.
    #[inline]
    pub fn delivered(&mut self, no_ack: bool, redelivered: bool) {
        if no_ack {
            self.deliver_no_ack += 1;
        } else {
            self.deliver += 1;
        }
        self.redeliver += u64::from(redelivered);
    }

    /// A basic.get answered with a message.
    #[inline]
    pub fn got(&mut self, no_ack: bool, redelivered: bool) {
        if no_ack {
            self.get_no_ack += 1;
        } else {
            self.get += 1;
        }
        self.redeliver += u64::from(redelivered);
    }

    /// RabbitMQ's `deliver_get`: every message handed out, consumed or fetched.
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }

    pub fn add(&mut self, o: &Self) {
        self.publish += o.publish;
        self.publish_confirm += o.publish_confirm;
        self.confirm += o.confirm;
        self.return_unroutable += o.return_unroutable;
        self.drop_unroutable += o.drop_unroutable;
        self.deliver += o.deliver;
        self.deliver_no_ack += o.deliver_no_ack;
        self.get += o.get;
        self.get_no_ack += o.get_no_ack;
        self.get_empty += o.get_empty;
        self.redeliver += o.redeliver;
        self.ack += o.ack;
    }

    /// Every counter by RabbitMQ's name (`publish_confirm` is Warren's, for
    /// rabbitmq_global_messages_received_confirm_total), `deliver_get` included.
    pub fn named(&self) -> [(&'static str, u64); 13] {
        [
            ("publish", self.publish),
            ("publish_confirm", self.publish_confirm),
            ("confirm", self.confirm),
            ("return_unroutable", self.return_unroutable),
            ("drop_unroutable", self.drop_unroutable),
            ("deliver", self.deliver),
            ("deliver_no_ack", self.deliver_no_ack),
            ("get", self.get),
            ("get_no_ack", self.get_no_ack),
            ("get_empty", self.get_empty),
            ("redeliver", self.redeliver),
            ("ack", self.ack),
            ("deliver_get", self.deliver_get()),
        ]
    }
}

/// An exchange's counters in one shard's routing table copy: messages published into it, and
/// messages it routed to queues (one per queue reached). `Cell`s, as routing reads the table
/// through a shared borrow.
#[derive(Debug, Default)]
pub struct ExchangeStats {
    pub publish_in: Cell<u64>,
    pub publish_out: Cell<u64>,
}

impl ExchangeStats {
    #[inline]
    pub fn routed(&self, queues: usize) {
        self.publish_in.set(self.publish_in.get() + 1);
        self.publish_out.set(self.publish_out.get() + queues as u64);
    }
}

/// A channel's counters: its messages, and its publishes to the default exchange (which the
/// publish path does not look up, so its exchange copy cannot count them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub msgs: MessageStats,
    pub default_in: u64,
    pub default_out: u64,
}

impl ChannelStats {
    pub fn add(&mut self, o: &Self) {
        self.msgs.add(&o.msgs);
        self.default_in += o.default_in;
        self.default_out += o.default_out;
    }
}

/// One vhost's totals on one shard that outlive the channels which counted them: a channel adds
/// its counters here when it closes, so the vhost's (and the node's) counters never go back.
#[derive(Debug, Default)]
pub struct VhostTotals {
    /// What closed channels counted, plus messages dropped at a queue's shard for naming no queue.
    pub retired: ChannelStats,
    pub channels_opened: u64,
    pub channels_closed: u64,
}

/// Queue churn on one shard (rabbitmq_queues_declared_total and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueChurn {
    pub declared: u64,
    pub created: u64,
    pub deleted: u64,
    /// Deliveries made by queues since deleted (Warren's per-shard delivery series).
    pub deleted_deliveries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_and_gets_count_by_ack_mode_and_sum_into_deliver_get() {
        let mut s = MessageStats::default();
        s.delivered(false, false);
        s.delivered(true, true);
        s.got(false, true);
        s.got(true, false);
        s.got(true, false);
        assert_eq!((s.deliver, s.deliver_no_ack, s.get, s.get_no_ack, s.redeliver), (1, 1, 1, 2, 2));
        assert_eq!(s.deliver_get(), 5);
        let mut total = MessageStats { publish: 3, ..Default::default() };
        total.add(&s);
        assert_eq!(total.named().iter().find(|(k, _)| *k == "deliver_get"), Some(&("deliver_get", 5)));
        assert_eq!(total.publish, 3);
    }

    #[test]
    fn an_exchange_counts_messages_in_and_queue_copies_out() {
        let x = ExchangeStats::default();
        x.routed(3);
        x.routed(0);
        assert_eq!((x.publish_in.get(), x.publish_out.get()), (2, 3));
    }
}
