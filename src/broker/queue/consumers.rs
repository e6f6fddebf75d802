//! A queue's consumers and which one gets the next message: round-robin among those with credit
//! (their prefetch), the highest `x-priority` first, or only the first registered one for a
//! single-active-consumer queue (the next takes over when it leaves).

use std::sync::Arc;

use crate::ids::ConnId;

pub struct Consumer {
    pub serial: u64,
    /// Its key on its channel, which each delivery carries.
    pub key: u64,
    pub tag: Arc<str>,
    pub conn: ConnId,
    pub channel: u16,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Most unsettled deliveries; 0 is unlimited.
    pub prefetch: u32,
    /// `x-priority` of basic.consume (0 by default; higher goes first while it has credit).
    pub priority: i32,
    pub(super) in_flight: u32,
}

impl Consumer {
    pub fn new(
        key: u64,
        tag: Arc<str>,
        conn: ConnId,
        channel: u16,
        no_ack: bool,
        exclusive: bool,
        prefetch: u32,
    ) -> Self {
        Self { serial: 0, key, tag, conn, channel, no_ack, exclusive, prefetch, priority: 0, in_flight: 0 }
    }

    pub fn with_priority(self, priority: i32) -> Self {
        Self { priority, ..self }
    }

    /// Whether it may take one more delivery (no-ack consumers: up to the shard's window).
    fn can_take(&self, no_ack_window: u32) -> bool {
        if self.no_ack { self.in_flight < no_ack_window } else { self.prefetch == 0 || self.in_flight < self.prefetch }
    }
}

/// Consumers in registration order.
#[derive(Default)]
pub(super) struct Consumers {
    pub list: Vec<Consumer>,
    next: usize,
    /// Some consumer has a non-zero priority: picking looks at priorities.
    prioritized: bool,
}

impl Consumers {
    pub fn add(&mut self, c: Consumer) {
        self.prioritized |= c.priority != 0;
        self.list.push(c);
    }

    pub fn remove(&mut self, pred: impl Fn(&Consumer) -> bool) -> Vec<Consumer> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.list).into_iter().partition(|c| pred(c));
        self.list = kept;
        if self.next >= self.list.len() {
            self.next = 0;
        }
        self.prioritized = self.list.iter().any(|c| c.priority != 0);
        gone
    }

    /// The consumer the next message goes to, if any can take it now.
    pub fn pick(&mut self, single_active: bool, no_ack_window: u32) -> Option<&mut Consumer> {
        let n = self.list.len();
        let at = if single_active {
            // Only the oldest consumer is active.
            self.list.first().filter(|c| c.can_take(no_ack_window)).map(|_| 0)
        } else {
            let ready = |i: &usize| self.list.get(*i).is_some_and(|c| c.can_take(no_ack_window));
            let order = (0..n).map(|i| (self.next + i) % n);
            if self.prioritized {
                // Round-robin within the highest priority that has credit.
                let top = order.clone().filter(ready).filter_map(|i| self.list.get(i)).map(|c| c.priority).max();
                order.filter(ready).find(|&i| self.list.get(i).map(|c| c.priority) == top)
            } else {
                order.clone().find(|i| ready(i))
            }
        }?;
        self.next = (at + 1) % n.max(1);
        self.list.get_mut(at)
    }

    /// Whether a message could go to some consumer at once.
    pub fn any_can_take(&self, single_active: bool, no_ack_window: u32) -> bool {
        if single_active {
            return self.list.first().is_some_and(|c| c.can_take(no_ack_window));
        }
        self.list.iter().any(|c| c.can_take(no_ack_window))
    }

    pub fn by_serial(&mut self, serial: u64) -> Option<&mut Consumer> {
        self.list.iter_mut().find(|c| c.serial == serial)
    }
}
