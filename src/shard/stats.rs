//! A shard's message counters as the control plane samples them (`AdminOp::Stats`): each queue's,
//! channel's and exchange copy's own counters, each connection's bytes, and per vhost the totals
//! that outlive closed channels. Everything is read from the objects the shard owns, on request;
//! the message path only increments plain integers in them.

use ahash::AHashMap as HashMap;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::stats::{ChannelStats, MessageStats, QueueChurn, VhostTotals};
use crate::ids::ConnId;

use super::Shard;

/// What a shard counts that belongs to no object it still has.
#[derive(Default)]
pub struct ShardCounters {
    /// Per vhost: counters of closed channels, channels opened and closed.
    vhosts: RefCell<HashMap<Arc<str>, Rc<RefCell<VhostTotals>>>>,
    pub conns_opened: Cell<u64>,
    pub conns_closed: Cell<u64>,
}

/// One vhost's counters on one shard.
pub struct VhostSample {
    pub vhost: Arc<str>,
    /// Closed channels plus open ones.
    pub stats: ChannelStats,
    pub channels_opened: u64,
    pub channels_closed: u64,
}

/// A shard's counters at one moment: plain values that cross to the admin.
pub struct ShardSample {
    /// The shard thread's id, for its CPU time in /proc/self/task/TID/stat.
    pub tid: i64,
    pub vhosts: Vec<VhostSample>,
    /// (connection, its name, channel number, counters)
    pub channels: Vec<(ConnId, u16, ChannelStats)>,
    /// (connection, its name, bytes received, bytes sent)
    pub connections: Vec<(ConnId, String, u64, u64)>,
    /// (vhost, queue, counters)
    pub queues: Vec<(Arc<str>, Arc<str>, MessageStats)>,
    /// (vhost, exchange, messages in, messages out) of exchanges that saw any.
    pub exchanges: Vec<(String, String, u64, u64)>,
    pub conns_opened: u64,
    pub conns_closed: u64,
    pub queue_churn: QueueChurn,
    /// Consumers of its queues, and its channels that published.
    pub consumers: u64,
    pub publishers: u64,
    /// Deliveries its queues made (live ones and deleted ones).
    pub deliveries: u64,
}

/// This thread's kernel id.
pub fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and only returns the caller's id.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

impl Shard {
    /// The totals of `vhost` on this shard, which a channel opened in it adds to when it closes.
    pub fn vhost_totals(&self, vhost: &Arc<str>) -> Rc<RefCell<VhostTotals>> {
        self.counters.vhosts.borrow_mut().entry(vhost.clone()).or_default().clone()
    }

    /// A publish that named no queue that exists here (the default exchange with a key naming
    /// no queue) and that nobody waits for: dropped as unroutable, counted for its vhost.
    pub(super) fn dropped_unroutable(&self, vhost: &str) {
        let found = self.counters.vhosts.borrow().get(vhost).cloned();
        let totals = found.unwrap_or_else(|| self.vhost_totals(&Arc::from(vhost)));
        totals.borrow_mut().retired.msgs.drop_unroutable += 1;
    }

    pub(super) fn stats_sample(&self) -> ShardSample {
        let mut vhosts: HashMap<Arc<str>, VhostSample> = self
            .counters
            .vhosts
            .borrow()
            .iter()
            .map(|(v, t)| {
                let t = t.borrow();
                let sample = VhostSample {
                    vhost: v.clone(),
                    stats: t.retired,
                    channels_opened: t.channels_opened,
                    channels_closed: t.channels_closed,
                };
                (v.clone(), sample)
            })
            .collect();
        let (mut channels, mut connections, mut publishers) = (Vec::new(), Vec::new(), 0);
        for c in self.conns.borrow().values() {
            let info = c.info();
            connections.push((info.id, info.name.clone(), info.recv_oct, info.send_oct));
            for ch in c.channels() {
                publishers += u64::from(ch.stats.msgs.publish > 0);
                if let Some(v) = vhosts.get_mut(&info.vhost) {
                    v.stats.add(&ch.stats);
                }
                channels.push((info.id, ch.number, ch.stats));
            }
        }
        let queues = self.queues.borrow();
        let consumers = queues.iter().map(|q| u64::from(q.consumer_count())).sum();
        let queue_stats = queues.iter().map(|q| (q.vhost.clone(), q.name.clone(), q.stats)).collect();
        let exchanges = self
            .routes
            .borrow()
            .vhosts()
            .flat_map(|(v, xs)| xs.values().map(move |x| (v, x)))
            .filter(|(_, x)| x.stats.publish_in.get() > 0)
            .map(|(v, x)| (v.clone(), x.name.clone(), x.stats.publish_in.get(), x.stats.publish_out.get()))
            .collect();
        ShardSample {
            tid: thread_id(),
            vhosts: vhosts.into_values().collect(),
            channels,
            connections,
            queues: queue_stats,
            exchanges,
            conns_opened: self.counters.conns_opened.get(),
            conns_closed: self.counters.conns_closed.get(),
            queue_churn: queues.churn,
            consumers,
            publishers,
            deliveries: queues.iter().map(|q| q.stats.deliver_get()).sum::<u64>() + queues.churn.deleted_deliveries,
        }
    }
}
