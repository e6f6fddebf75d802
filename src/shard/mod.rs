//! A shard: everything one pinned core owns (its connections, its queues, its copy of the routing
//! table) and the loop that moves work between it and the other shards over the mesh.

pub mod admin_ops;
pub mod clients;
mod coordinator;
mod dead_letters;
mod flow;
pub mod memory;
pub mod mesh;
mod mesh_loop;
mod monitor;
pub mod msg;
pub mod placement;
pub mod queue_ops;
mod restore;
pub mod stats;
mod timers;

use ahash::AHashMap as HashMap;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::access::Access;
use crate::broker::limits::Tally;
use crate::broker::queue::Consumer;
use crate::broker::queues::{QueueTable, RemovedQueue};
use crate::broker::routing::RoutingTable;
use crate::config::Config;
use crate::protocol::reply::ConnectionError;

use crate::store::definitions_file::DurableDefinitions;
use crate::store::log::MessageLog;
use crate::store::page::PageDir;

use crate::broker::delivery::{Receipt, Settle};
use crate::ids::{ConnId, QueueId, make_id, shard_of_id};
use crate::notify::Notify;
use clients::Client;
use mesh::{MeshEnds, Outbox};
use msg::{Reply, ShardMsg};

pub const LOW_ON_MEMORY: &str = "low on memory";
pub const LOW_ON_DISK: &str = "low on disk";

/// Wakes a task waiting on this shard for something to happen.
pub(super) type Wake = Box<dyn FnOnce()>;

pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    mesh: MeshEnds,
    outbox: Outbox,
    flush: Notify,
    pub queues: RefCell<QueueTable>,
    pub routes: RefCell<RoutingTable>,
    pub access: RefCell<Access>,
    pub conns: RefCell<HashMap<ConnId, Rc<dyn Client>>>,
    /// Client sockets this shard holds: connections, and those still in their handshake or
    /// lingering after close (a connection's memory is freed when its socket goes, after it left
    /// `conns`).
    pub sockets: Cell<usize>,
    next_conn: Cell<u64>,
    rng: Cell<u64>,
    pub stopping: Cell<bool>,
    pub stop: Notify,
    /// Persistent messages of durable queues; publishes that wrote to it wait for its fsync.
    pub log: MessageLog<Receipt>,
    /// Page files of queues whose newest messages are on disk.
    pages: PageDir,
    /// Queues hold more than half the memory limit: their newest messages go to page files.
    paging: Cell<bool>,
    /// Tasks waiting for a queue's next page-in (basic.get on a queue whose head is on disk).
    page_waiters: RefCell<HashMap<QueueId, Vec<Wake>>>,
    /// The durable definitions file; kept by the coordinator (shard 0) only.
    pub defs: DurableDefinitions,
    pub memory: Arc<memory::MemoryGauge>,
    /// Connections, channels and queues counted over every shard, for the limits.
    pub tally: Arc<Tally>,
    /// A resource alarm (its reason, as connection.blocked gives it): publishing connections are
    /// not read while it lasts.
    pub alarm: Cell<Option<&'static str>>,
    /// Bytes of publishes this shard sent over the mesh less those it received: what is in
    /// flight between shards, counted in the memory gauge (only the sum over shards is exact).
    mesh_bytes: Cell<i64>,
    /// Mesh messages handled, by `ShardMsg::index`.
    handled: [Cell<u64>; ShardMsg::KINDS.len()],
    /// Deadlines of its queues (message TTL, queue expiry).
    timers: timers::Timers,
    /// The TLS configurations (AMQPS, HTTPS) when configured: shard 0 reloads them for warrenctl.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Message counters that outlive the objects which counted them.
    pub counters: stats::ShardCounters,
}

impl Shard {
    pub fn new(
        config: Arc<Config>,
        mesh: MeshEnds,
        log: MessageLog<Receipt>,
        pages: PageDir,
        memory: Arc<memory::MemoryGauge>,
        tls: Option<Arc<crate::tls::Tls>>,
        tally: Arc<Tally>,
    ) -> Rc<Self> {
        let id = mesh.me;
        let n = mesh.shards();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rc::new(Self {
            id,
            outbox: Outbox::new(n),
            mesh,
            flush: Notify::default(),
            queues: RefCell::new(QueueTable::new(id)),
            routes: RefCell::new(RoutingTable::default()),
            access: RefCell::new(Access::default()),
            conns: RefCell::new(HashMap::new()),
            sockets: Cell::new(0),
            next_conn: Cell::new(1),
            rng: Cell::new((seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1),
            stopping: Cell::new(false),
            stop: Notify::default(),
            log,
            pages,
            paging: Cell::new(false),
            page_waiters: RefCell::new(HashMap::new()),
            defs: DurableDefinitions::new(&config.data_dir),
            memory,
            tally,
            alarm: Cell::new(None),
            mesh_bytes: Cell::new(0),
            handled: Default::default(),
            timers: Default::default(),
            tls,
            counters: Default::default(),
            config,
        })
    }

    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    pub fn next_conn_id(&self) -> ConnId {
        let serial = self.next_conn.get();
        self.next_conn.set(serial + 1);
        make_id(self.id, serial)
    }

    /// xorshift64: names for server-named queues and consumer tags, not security.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// A random name such as `amq.gen-Xy3…` (RabbitMQ's form: prefix plus 22 URL-safe characters).
    pub fn random_name(&self, prefix: &str) -> String {
        // The URL-safe base64 alphabet, A-Z a-z 0-9 - _, from a 6-bit value.
        let url_safe = |six: u8| match six {
            0..26 => b'A' + six,
            26..52 => b'a' + six - 26,
            52..62 => b'0' + six - 52,
            62 => b'-',
            _ => b'_',
        };
        let mut s = String::with_capacity(prefix.len() + 22);
        s.push_str(prefix);
        let (mut bits, mut left) = (self.random(), 10);
        for _ in 0..22 {
            if left == 0 {
                bits = self.random();
                left = 10;
            }
            s.push(url_safe((bits & 63) as u8) as char);
            bits >>= 6;
            left -= 1;
        }
        s
    }

    /// The one round trip: sends the message `make` builds around a `Reply` to shard `dest` and
    /// waits for its answer; 541 INTERNAL_ERROR if that shard stopped.
    pub async fn ask<R: Send + 'static>(
        &self,
        dest: usize,
        make: impl FnOnce(Reply<R>) -> ShardMsg,
    ) -> Result<R, ConnectionError> {
        let (reply, rx) = Reply::new(self.id);
        self.send(dest, make(reply));
        rx.await.map_err(|_| ConnectionError::internal("shard stopped"))
    }

    /// Sends every shard (this one included) the message `make` builds around a `Reply`, all at
    /// once, and waits for their answers, in shard order.
    pub async fn ask_every<R: Send + 'static>(
        &self,
        make: impl Fn(Reply<R>) -> ShardMsg,
    ) -> std::result::Result<Vec<R>, ConnectionError> {
        let answers: Vec<_> = (0..self.shards())
            .map(|k| {
                let (reply, rx) = Reply::new(self.id);
                self.send(k, make(reply));
                rx
            })
            .collect();
        let mut all = Vec::with_capacity(answers.len());
        for rx in answers {
            all.push(rx.await.map_err(|_| ConnectionError::internal("shard stopped"))?);
        }
        Ok(all)
    }

    /// Tells the owning shards what became of deliveries: one message per run of the same queue.
    pub fn settle(&self, deliveries: impl IntoIterator<Item = (QueueId, u64)>, action: Settle) {
        let mut batch: Option<(QueueId, Vec<u64>)> = None;
        // Queue 0 is none: direct reply-to deliveries come from no queue.
        for (queue, msg_id) in deliveries.into_iter().filter(|(q, _)| *q != 0) {
            match &mut batch {
                Some((q, ids)) if *q == queue => ids.push(msg_id),
                _ => {
                    if let Some((q, ids)) = batch.replace((queue, vec![msg_id])) {
                        self.send(shard_of_id(q), ShardMsg::Settle { queue: q, msg_ids: ids, action });
                    }
                }
            }
        }
        if let Some((q, ids)) = batch {
            self.send(shard_of_id(q), ShardMsg::Settle { queue: q, msg_ids: ids, action });
        }
    }

    /// After a queue changed: logs which persisted messages left it, lets it hand ready messages
    /// to its consumers, and applies flow control.
    pub fn dispatch(self: &Rc<Self>, id: QueueId) {
        let window = self.config.no_ack_window;
        let (page_in, dead, arm) = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            q.dispatch(window, |d| self.send(shard_of_id(d.conn), ShardMsg::Deliver(d)));
            // After dispatch: expiry and length limits there make gone records too.
            self.log_gone(q);
            (q.page_in_due(), dead_letters::take_dead(q), q.rearm())
        };
        if let Some((route, dead)) = dead {
            self.route_dead(route, dead);
        }
        if let Some(at) = arm {
            self.timers.push(at, id);
        }
        if let Some((file, serial)) = page_in {
            let me = self.clone();
            glommio::spawn_local(async move {
                let msgs = file.read().await;
                if let Some(q) = me.queues.borrow_mut().get_mut(id) {
                    q.paged_in(serial, msgs);
                }
                me.dispatch(id);
                me.wake_page_waiters(id);
            })
            .detach();
        }
        self.check_flow(id, None);
    }

    /// Waits (on shard `owner`) until queue `id` has read its next messages back from disk.
    pub async fn paged_in(&self, owner: usize, id: QueueId) -> Result<(), ConnectionError> {
        self.ask(owner, |done| ShardMsg::PagedIn { queue: id, done }).await
    }

    /// Wakes the basic.gets waiting for queue `id`'s page-in (it happened, or the queue is gone).
    /// The waiters are taken out before any runs, so none runs while the map is borrowed.
    fn wake_page_waiters(&self, id: QueueId) {
        let waiters = self.page_waiters.borrow_mut().remove(&id).unwrap_or_default();
        for wake in waiters {
            wake();
        }
    }

    /// The log writer: returns once the shard stops and everything is written.
    pub async fn run_log(self: Rc<Self>) {
        let me = self.clone();
        self.log
            .run(
                || me.stopping.get(),
                |done| {
                    for r in done {
                        me.send(shard_of_id(r.to.conn), ShardMsg::Receipt(r));
                    }
                },
            )
            .await
    }

    /// Deletes a queue this shard owns (auto-delete, its exclusive owner gone, warrenctl): its
    /// consumers are told (basic.cancel), its bindings go on every shard soon after.
    pub fn delete_queue(self: &Rc<Self>, id: QueueId) -> Option<u32> {
        let gone = self.remove_queue(id, None)?;
        let (me, op) = (self.clone(), gone.routes_op());
        glommio::spawn_local(async move {
            let _ = me.change_routes(op).await;
        })
        .detach();
        Some(gone.message_count)
    }

    /// Removes a queue from this shard for a client's queue.delete: the caller drops its bindings
    /// everywhere before answering delete-ok, then tells its own connection's consumers (RabbitMQ
    /// sends delete-ok before their basic.cancel; kombu fails on the other order).
    pub fn remove_queue(&self, id: QueueId, deleter: Option<ConnId>) -> Option<RemovedQueue> {
        let (vhost, name) = self.queues.borrow().get(id).map(|q| (q.vhost.to_string(), q.name.to_string()))?;
        let mut own_cancels = Vec::new();
        let message_count = self.drop_queue_keeping(id, |c| {
            let own = Some(c.conn) == deleter;
            if own {
                own_cancels.push((c.channel, c.tag.clone()));
            }
            !own
        })?;
        Some(RemovedQueue { vhost, name, message_count, own_cancels })
    }

    /// Logs which persisted messages left a queue since it was last asked.
    fn log_gone(&self, q: &mut crate::broker::queue::Queue) {
        let (gone, runs) = q.take_gone();
        self.log.gone(&q.vhost, &q.name, &gone);
        for r in runs {
            let mut segs = Some(r.segs);
            for (first, last) in r.ranges {
                let segs = segs.take().unwrap_or_default();
                self.log.gone_range(&q.vhost, &q.name, first, last, &segs);
            }
        }
    }

    /// A queue changed without a client's operation (a policy, its deletion): what left it is
    /// logged and its dead letters go.
    fn settle_books(&self, id: QueueId) {
        let dead = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            self.log_gone(q);
            dead_letters::take_dead(q)
        };
        if let Some((route, dead)) = dead {
            self.route_dead(route, dead);
        }
    }

    /// Removes a queue from this shard (not its bindings): its logged messages are dropped, the
    /// publishers it paused resume, its consumers are told. Returns how many messages it held.
    fn drop_queue(&self, id: QueueId) -> Option<u32> {
        self.drop_queue_keeping(id, |_| true)
    }

    /// `drop_queue`, telling only the consumers `tell` picks.
    fn drop_queue_keeping(&self, id: QueueId, mut tell: impl FnMut(&Consumer) -> bool) -> Option<u32> {
        // What left it before it went is logged (and dead-lettered) first.
        self.settle_books(id);
        let q = self.queues.borrow_mut().remove(id)?;
        self.tally.queue_gone(&q.vhost);
        // A basic.get waiting for a page-in finds the queue gone.
        self.wake_page_waiters(id);
        if q.flags.durable {
            self.log.dropped(&q.vhost, &q.name, q.persisted_segments().into_iter());
        }
        for &conn in &q.paused {
            self.send_flow(conn, id, false);
        }
        for c in q.consumers().iter().filter(|c| tell(c)) {
            let (conn, channel, tag) = (c.conn, c.channel, c.tag.clone());
            self.send(shard_of_id(conn), ShardMsg::ServerCancel { conn, channel, tag });
        }
        Some(q.message_count())
    }

    /// Removes consumers of a connection's channel (all channels if `channel` is None) from a
    /// queue this shard owns, deleting the queue if it is auto-delete and lost its last consumer.
    pub fn remove_consumers(self: &Rc<Self>, id: QueueId, conn: ConnId, channel: Option<u16>, tag: Option<&str>) {
        let auto_delete = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            q.remove_consumers(|c| {
                c.conn == conn && channel.is_none_or(|ch| c.channel == ch) && tag.is_none_or(|t| &*c.tag == t)
            });
            q.flags.auto_delete && q.had_consumer && q.consumer_count() == 0
        };
        if auto_delete {
            self.delete_queue(id);
        } else {
            self.dispatch(id);
        }
    }
}
