//! A shard: everything one pinned core owns (its connections, its queues, its copy of the routing
//! table) and the loop that moves work between it and the other shards over the mesh.

pub mod clients;
pub mod memory;
pub mod mesh;
pub mod msg;
pub mod placement;

use ahash::AHashMap as HashMap;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::access::{Access, AccessOp};
use crate::broker::definitions::Definitions;
use crate::broker::message::Message;
use crate::broker::paging::PageSpace;
use crate::broker::queue::Consumer;
use crate::broker::queues::{QueueTable, RemovedQueue};
use crate::broker::routing::Dest;
use crate::broker::routing::{MetaOp, RoutingTable};
use crate::config::Config;
use crate::protocol::reply::{AmqpError, Result};

use crate::broker::definitions::{BindingDef, ExchangeDef, PermissionDef, QueueDef, UserDef, VhostDef, json_table};
use crate::broker::routing::PREDECLARED;
use crate::store::definitions_file::DurableDefinitions;
use crate::store::log::MessageLog;
use crate::store::page::PageDir;
use crate::store::recovery::Recovered;

use crate::broker::delivery::{PublishRef, Settle};
use crate::ids::{ConnId, QueueId, make_id, shard_of_id};
use crate::notify::Notify;
use clients::{Client, ConnInfo};
use mesh::{MeshEnds, Outbox};
use msg::{Reply, ShardMsg};

pub const LOW_ON_MEMORY: &str = "low on memory";
pub const LOW_ON_DISK: &str = "low on disk";

/// While recovery pages a queue, how many bytes of its page file may wait in memory for the disk
/// before recovery waits for them to be written.
const RESTORE_PAGE_BACKLOG: u64 = 4 << 20;

/// Bytes available to unprivileged users on the filesystem holding `dir`.
fn disk_free(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The message bytes of the publishes in a mesh batch.
fn publish_bytes(batch: &[ShardMsg]) -> i64 {
    batch.iter().map(|m| if let ShardMsg::Publish { msg, .. } = m { msg.footprint() as i64 } else { 0 }).sum()
}

/// Wakes a task waiting on this shard for something to happen.
type Wake = Box<dyn FnOnce()>;

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
    next_conn: Cell<u64>,
    rng: Cell<u64>,
    pub stopping: Cell<bool>,
    pub stop: Notify,
    /// Persistent messages of durable queues; publishes that wrote to it wait for its fsync.
    pub log: MessageLog<(PublishRef, u32)>,
    /// Page files of queues whose newest messages are on disk.
    pages: PageDir,
    /// Queues hold more than half the memory limit: their newest messages go to page files.
    paging: Cell<bool>,
    /// Tasks waiting for a queue's next page-in (basic.get on a queue whose head is on disk).
    page_waiters: RefCell<HashMap<QueueId, Vec<Wake>>>,
    /// The durable definitions file; kept by the coordinator (shard 0) only.
    pub defs: DurableDefinitions,
    pub memory: Arc<memory::MemoryGauge>,
    /// A resource alarm (its reason, as connection.blocked gives it): publishing connections are
    /// not read while it lasts.
    pub alarm: Cell<Option<&'static str>>,
    /// Bytes of publishes this shard sent over the mesh less those it received: what is in
    /// flight between shards, counted in the memory gauge (only the sum over shards is exact).
    mesh_bytes: Cell<i64>,
    /// Mesh messages handled, by `ShardMsg::index`.
    handled: [Cell<u64>; ShardMsg::KINDS.len()],
}

impl Shard {
    pub fn new(
        config: Arc<Config>,
        mesh: MeshEnds,
        log: MessageLog<(PublishRef, u32)>,
        pages: PageDir,
        memory: Arc<memory::MemoryGauge>,
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
            alarm: Cell::new(None),
            mesh_bytes: Cell::new(0),
            handled: Default::default(),
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

    /// Applies definitions at start: every shard takes the users, vhosts, exchanges and bindings,
    /// and declares the queues it owns. Every shard reads the same file, so all agree.
    pub fn load_definitions(&self, d: &Definitions) -> std::result::Result<(), String> {
        *self.access.borrow_mut() = d.access(self.config.loopback_users.clone())?;
        let mut routes = self.routes.borrow_mut();
        let mut apply = |op: MetaOp| routes.apply(&op).map_err(|e| format!("definitions: {}", e.text));
        for op in d.routing_ops() {
            apply(op)?;
        }
        drop(routes);
        if self.id == 0 {
            let mut registry = self.defs.queues.borrow_mut();
            for q in d.queues.iter().filter(|q| q.durable) {
                registry.insert((q.vhost.clone(), q.name.clone()), q.clone());
            }
            drop(registry);
            self.defs.changed();
        }
        let n = self.shards();
        for q in d.queues.iter().filter(|q| placement::shard_of(&q.vhost, &q.name, n) == self.id) {
            let flags = q.flags();
            self.queues
                .borrow_mut()
                .declare(&q.vhost, &q.name, flags, false, 0)
                .map_err(|e| format!("definitions: {}", e.text))?;
        }
        Ok(())
    }

    /// Queues a message for `dest` (this shard included); it leaves at the end of this turn.
    pub fn send(&self, dest: usize, msg: ShardMsg) {
        if self.outbox.push(dest, msg) {
            self.flush.notify();
        }
    }

    /// Sends everything queued: batches to other shards, and handles this shard's own messages
    /// (which may queue more, hence the loop).
    fn flush_outbox(self: &Rc<Self>) {
        loop {
            let batches = self.outbox.take();
            if batches.is_empty() {
                return;
            }
            for (dest, batch) in batches {
                if dest == self.id {
                    for m in batch {
                        self.handle(m);
                    }
                } else {
                    self.mesh_bytes.set(self.mesh_bytes.get() + publish_bytes(&batch));
                    self.mesh.send(dest, batch);
                }
            }
        }
    }

    pub async fn run_flusher(self: Rc<Self>) {
        loop {
            self.flush.wait().await;
            self.flush_outbox();
        }
    }

    /// Receives batches from other shards until the broker stops.
    pub async fn run_mesh(self: Rc<Self>) {
        let mut batches = Vec::new();
        loop {
            self.mesh.park().await;
            if self.mesh.take_stop() {
                self.stopping.set(true);
                self.stop.notify();
            }
            self.mesh.drain(&mut batches);
            for batch in batches.drain(..) {
                self.mesh_bytes.set(self.mesh_bytes.get() - publish_bytes(&batch));
                for m in batch {
                    self.handle(m);
                }
            }
            self.flush_outbox();
            glommio::yield_if_needed().await;
        }
    }

    fn handle(self: &Rc<Self>, m: ShardMsg) {
        if let Some(n) = self.handled.get(m.index()) {
            n.set(n.get() + 1);
        }
        if !matches!(
            m,
            ShardMsg::Publish { .. } | ShardMsg::Deliver(_) | ShardMsg::Settle { .. } | ShardMsg::Receipt { .. }
        ) {
            log::trace!("shard {}: {}", self.id, m.kind());
        }
        match m {
            ShardMsg::Publish { vhost, queues, msg, from, reply } => {
                let (mut enqueued, mut persisted) = (0, false);
                let pages = (self.paging.get() && !self.pages.failed()).then_some(&self.pages as &dyn PageSpace);
                for name in queues.names(&msg) {
                    let id = self.queues.borrow().lookup(&vhost, name);
                    if let Some(id) = id {
                        if let Some(q) = self.queues.borrow_mut().get_mut(id) {
                            let persist = q.flags.durable && msg.is_persistent();
                            q.push(
                                msg.clone(),
                                |msg_id| if persist { self.log.message(&vhost, name, msg_id, &msg) } else { 0 },
                                pages,
                            );
                            persisted |= persist;
                            enqueued += 1;
                        }
                        self.dispatch(id);
                        self.check_flow(id, Some(from));
                    }
                }
                if let Some(to) = reply {
                    // Confirms of persisted messages wait for the log's fsync (group commit).
                    if persisted {
                        self.log.after_sync((to, enqueued));
                    } else {
                        self.send(shard_of_id(to.conn), ShardMsg::Receipt { to, enqueued });
                    }
                }
            }
            ShardMsg::Receipt { to, enqueued } => {
                let conn = self.conns.borrow().get(&to.conn).cloned();
                if let Some(c) = conn {
                    c.on_receipt(to.channel, to.seq, enqueued);
                }
            }
            ShardMsg::Deliver(d) => {
                let conn = self.conns.borrow().get(&d.conn).cloned();
                match conn {
                    Some(c) => c.deliver(d),
                    None => self.settle([(d.queue, d.msg_id)], Settle::Return),
                }
            }
            ShardMsg::Settle { queue, msg_ids, action } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(queue) {
                    for msg_id in msg_ids {
                        q.settle(msg_id, action);
                    }
                }
                self.dispatch(queue);
            }
            ShardMsg::RemoveConsumer { queue, conn, channel, tag } => {
                self.remove_consumers(queue, conn, Some(channel), Some(&tag));
            }
            ShardMsg::DeleteExclusive(queue) => {
                self.delete_queue(queue);
            }
            ShardMsg::FlowHold { conn, queue, hold } => {
                let c = self.conns.borrow().get(&conn).cloned();
                if let Some(c) = c {
                    c.flow_hold(queue, hold);
                }
            }
            ShardMsg::ServerCancel { conn, channel, tag } => {
                let c = self.conns.borrow().get(&conn).cloned();
                if let Some(c) = c {
                    c.server_cancel(channel, &tag);
                }
            }
            ShardMsg::ApplyMeta { op, done } => {
                // Same table, same order: this cannot fail where the coordinator succeeded.
                let _ = self.apply_meta(&op);
                done.send(self, ());
            }
            ShardMsg::PagedIn { queue, done } => {
                let me = self.clone();
                let wake: Wake = Box::new(move || done.send(&me, ()));
                if self.queues.borrow().get(queue).is_some_and(|q| q.paging_in()) {
                    self.page_waiters.borrow_mut().entry(queue).or_default().push(wake);
                    self.dispatch(queue);
                } else {
                    wake();
                }
            }
            ShardMsg::DefinitionsSaved { version, done } => {
                let me = self.clone();
                self.defs.when_saved(version, Box::new(move |r| done.send(&me, r)));
            }
            ShardMsg::Call(job) => job(self),
            ShardMsg::Answer(complete) => complete(),
        }
    }

    /// Mesh messages this shard has handled, by kind (`ShardMsg::KINDS`).
    pub fn handled(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ShardMsg::KINDS.iter().zip(&self.handled).map(|(k, n)| (*k, n.get()))
    }

    /// The one round trip: sends the message `make` builds around a `Reply` to shard `dest` and
    /// waits for its answer.
    pub async fn ask<R: Send + 'static>(&self, dest: usize, make: impl FnOnce(Reply<R>) -> ShardMsg) -> Result<R> {
        let (reply, rx) = Reply::new(self.id);
        self.send(dest, make(reply));
        rx.await.map_err(|_| AmqpError::internal("shard stopped"))
    }

    /// Tells the owning shards what became of deliveries: one message per run of the same queue.
    pub fn settle(&self, deliveries: impl IntoIterator<Item = (QueueId, u64)>, action: Settle) {
        let mut batch: Option<(QueueId, Vec<u64>)> = None;
        for (queue, msg_id) in deliveries {
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
        let page_in = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            let (gone, runs) = q.take_gone();
            self.log.gone(&q.vhost, &q.name, &gone);
            for r in runs {
                self.log.gone_range(&q.vhost, &q.name, r.first, r.last, &r.segs);
            }
            q.dispatch(window, |d| self.send(shard_of_id(d.conn), ShardMsg::Deliver(d)));
            q.page_in_due()
        };
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
    pub async fn paged_in(&self, owner: usize, id: QueueId) -> Result<()> {
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

    /// Puts the messages recovered from this shard's log back into their queues, in order, as
    /// pass 2 of recovery reads them. Past this shard's share of the paging threshold each queue
    /// keeps what it keeps when it pages and the rest goes to its page file; recovery waits for
    /// the page files' writes as it goes, so memory stays bounded whatever the backlog. Messages
    /// of queues that no longer exist are dropped from the log.
    pub async fn restore_messages(&self, mut recovered: Recovered) -> std::io::Result<()> {
        let mut target: Vec<Option<QueueId>> = Vec::new();
        for rq in recovered.queues() {
            let id = self.queues.borrow().lookup(&rq.vhost, &rq.name);
            let (vhost, name) = (&rq.vhost, &rq.name);
            match id {
                Some(_) => log::info!("queue '{name}' in vhost '{vhost}': {} messages to recover", rq.messages),
                None => {
                    log::warn!(
                        "dropping {} logged messages of queue '{name}' in vhost '{vhost}': it no longer exists",
                        rq.messages
                    );
                    self.log.dropped(vhost, name, rq.segments.into_iter());
                    recovered.skip(rq.index);
                }
            }
            target.resize(target.len().max(rq.index + 1), None);
            if let Some(t) = target.get_mut(rq.index) {
                *t = id;
            }
        }
        let (mut restored, share) = (0u64, self.memory.limit / 2 / self.shards() as u64);
        let mut replay = recovered.replay();
        while let Some(m) = replay.next_message()? {
            let Some(id) = target.get(m.queue).copied().flatten() else { continue };
            let backlog = {
                let mut queues = self.queues.borrow_mut();
                let Some(q) = queues.get_mut(id) else { continue };
                // What does not fit in this shard's share of the paging threshold goes to disk.
                let pages = (restored > share && !self.pages.failed()).then_some(&self.pages as &dyn PageSpace);
                restored += m.msg.body.len() as u64;
                q.restore(m.id, Arc::new(m.msg), m.seg, pages);
                q.page_backlog(RESTORE_PAGE_BACKLOG)
            };
            if let Some(file) = backlog {
                file.flushed().await;
            }
        }
        let queues = self.queues.borrow();
        for q in queues.iter().filter(|q| q.message_count() > 0) {
            log::info!(
                "queue '{}' in vhost '{}': {} messages recovered ({} paged to disk)",
                q.name,
                q.vhost,
                q.message_count(),
                q.paged_count()
            );
        }
        Ok(())
    }

    /// Watches the message bytes held by every shard's queues (each 100 ms) and, each second, the
    /// message log (compacting it when due) and the free space of the data dir's disk: pages past
    /// half the memory limit, and raises or clears the resource alarm that blocks publishers.
    pub async fn run_monitor(self: Rc<Self>) {
        let mut disk_low = false;
        let mut conns_before = 0;
        for tick in 0u64.. {
            if self.stopping.get() {
                return;
            }
            self.compact_queued();
            self.memory.publish(self.id, self.held_bytes());
            self.memory.set_log_stalled(self.id, self.log.stalled());
            self.memory.set_paging_failed(self.id, self.pages.failed());
            let (total, limit) = (self.memory.total(), self.memory.limit);
            // RabbitMQ's paging ratio: past half the limit, queues page their newest messages out
            // (unless a page file could not be written: then nothing new pages on this shard).
            let paging = total > limit / 2 && !self.pages.failed();
            // Where paging failed, memory is bounded by the alarm from where paging began.
            let high = if self.memory.any_paging_failed() { limit / 2 } else { limit };
            if paging != self.paging.replace(paging) {
                log::info!(
                    "shard {}: messages hold {total} bytes (limit {limit}): paging {}",
                    self.id,
                    if paging { "new messages to disk" } else { "stopped" }
                );
            }
            if tick % 10 == 0 {
                let conns = self.conns.borrow().len();
                if conns < std::mem::replace(&mut conns_before, conns) {
                    // Connections went away: what they freed sits in this thread's allocator
                    // caches, which a shard that then parks would never hand back to the OS.
                    // SAFETY: mi_collect only walks this thread's own mimalloc heap.
                    unsafe { libmimalloc_sys::mi_collect(true) };
                }
                if let Some(seg) = self.log.compaction_due() {
                    self.compact(seg);
                }
                // statvfs may block (a slow or remote filesystem): not on the shard's thread.
                let dir = self.config.data_dir.clone();
                let free = glommio::executor().spawn_blocking(move || disk_free(&dir)).await;
                let was = std::mem::replace(&mut disk_low, free.is_some_and(|f| f < self.config.disk_free_limit));
                if disk_low && !was {
                    log::warn!(
                        "disk alarm on shard {}: {} bytes free in {}, limit {}",
                        self.id,
                        free.unwrap_or(0),
                        self.config.data_dir.display(),
                        self.config.disk_free_limit
                    );
                }
            }
            let reason = if total > high {
                Some(LOW_ON_MEMORY)
            } else if disk_low || self.memory.any_log_stalled() {
                Some(LOW_ON_DISK)
            } else {
                None
            };
            if reason != self.alarm.replace(reason) {
                match reason {
                    Some(r) => log::warn!(
                        "resource alarm on shard {}: {r} (messages hold {total} bytes, limit {high}{}): publishers blocked",
                        self.id,
                        if high < limit { ", half the memory limit since paging failed" } else { "" }
                    ),
                    None => log::warn!("resource alarm cleared on shard {}: {total} bytes of messages held", self.id),
                }
                let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
                for c in conns {
                    c.resource_alarm(reason);
                }
            }
            glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Message bytes this shard holds: its queues' (in memory), its connections' outside the
    /// queues, its log's unwritten records, and its publishes in flight to other shards.
    fn held_bytes(&self) -> i64 {
        let queues: u64 = self.queues.borrow().iter().map(|q| q.bytes()).sum();
        let conns: u64 = self.conns.borrow().values().map(|c| c.held_bytes()).sum();
        (queues + conns + self.log.pending_bytes()) as i64 + self.mesh_bytes.get()
    }

    /// Copies the messages queues took since the last tick out of the read buffers they arrived
    /// in (`Queue::compact_new`), so the gauge sees what they really hold. A message routed to
    /// several queues of this shard gets one copy.
    fn compact_queued(&self) {
        let mut shared: HashMap<*const Message, (Arc<Message>, Arc<Message>)> = HashMap::new();
        for q in self.queues.borrow_mut().iter_mut() {
            q.compact_new(|m| {
                if Arc::strong_count(m) == 1 {
                    return Arc::new(m.compacted());
                }
                // The original stays in the map (alive) until the pass ends, so its address
                // cannot be reused by another message meanwhile.
                shared.entry(Arc::as_ptr(m)).or_insert_with(|| (m.clone(), Arc::new(m.compacted()))).1.clone()
            });
        }
    }

    /// Copies the live messages of the oldest log segment forward so it (and the newer segments it
    /// pins) can go; waits while some of them are paged out.
    fn compact(&self, seg: u32) {
        let mut queues = self.queues.borrow_mut();
        if queues.iter().any(|q| q.pages_segment(seg)) {
            return;
        }
        let mut moved = 0;
        for q in queues.iter_mut().filter(|q| q.flags.durable) {
            let (vhost, name) = (q.vhost.clone(), q.name.clone());
            moved += q.relocate(seg, |id, msg| self.log.message(&vhost, &name, id, msg));
        }
        self.log.moved(seg, moved);
        log::info!("shard {}: compacted log segment {seg}: {moved} live messages written forward", self.id);
    }

    /// The log writer: returns once the shard stops and everything is written.
    pub async fn run_log(self: Rc<Self>) {
        let me = self.clone();
        self.log
            .run(
                || me.stopping.get(),
                |done| {
                    for (to, enqueued) in done {
                        me.send(shard_of_id(to.conn), ShardMsg::Receipt { to, enqueued });
                    }
                },
            )
            .await
    }

    /// Publisher flow control: a queue with consumers whose backlog passes `flow_backlog` pauses
    /// the connection that just published to it; once it drains to half (or loses its consumers,
    /// or goes) every paused connection resumes.
    fn check_flow(&self, id: QueueId, from: Option<ConnId>) {
        let high = self.config.flow_backlog;
        if high == 0 {
            return;
        }
        let (pause, resume) = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            let backlog = q.message_count();
            let mut pause = None;
            if let Some(from) = from
                && backlog > high
                && q.consumer_count() > 0
                && !q.paused.contains(&from)
            {
                q.paused.push(from);
                pause = Some(from);
            }
            let drained = backlog <= high / 2 || q.consumer_count() == 0;
            let resume = if drained { std::mem::take(&mut q.paused) } else { Vec::new() };
            (pause, resume)
        };
        for (conn, hold) in pause.map(|c| (c, true)).into_iter().chain(resume.into_iter().map(|c| (c, false))) {
            self.send_flow(conn, id, hold);
        }
    }

    fn send_flow(&self, conn: ConnId, queue: QueueId, hold: bool) {
        self.send(shard_of_id(conn), ShardMsg::FlowHold { conn, queue, hold });
    }

    /// Runs `f` on shard `dest` and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        dest: usize,
        f: impl FnOnce(&Rc<Shard>) -> R + Send + 'static,
    ) -> Result<R> {
        self.ask(dest, |reply| {
            ShardMsg::Call(Box::new(move |s| {
                let r = f(s);
                reply.send(s, r);
            }))
        })
        .await
    }

    /// Changes the routing table everywhere: the coordinator (shard 0) validates and orders the
    /// change, every shard applies it, and this returns once all have (so a client that gets its
    /// -ok can rely on every shard routing by it).
    pub async fn change_routes(&self, op: MetaOp) -> Result<()> {
        // The other shards' answers come here; the coordinator sends them the change, so every
        // shard applies changes in the coordinator's order.
        let (replies, answers): (Vec<_>, Vec<_>) = (1..self.shards()).map(|_| Reply::new(self.id)).unzip();
        let saved = self
            .call(0, move |coordinator| {
                let durable = coordinator.touches_durable(&op);
                coordinator.apply_meta(&op)?;
                match &op {
                    MetaOp::QueueDeleted { vhost, queue } => {
                        coordinator.defs.queues.borrow_mut().remove(&(vhost.clone(), queue.clone()));
                    }
                    MetaOp::DeleteVhost { vhost } => {
                        coordinator.defs.queues.borrow_mut().retain(|(v, _), _| v != vhost)
                    }
                    _ => {}
                }
                for (k, done) in (1..).zip(replies) {
                    coordinator.send(k, ShardMsg::ApplyMeta { op: op.clone(), done });
                }
                Ok::<_, AmqpError>(durable.then(|| coordinator.defs.changed()))
            })
            .await??;
        for a in answers {
            a.await.map_err(|_| AmqpError::internal("shard stopped"))?;
        }
        match saved {
            Some(v) => self.definitions_saved(v).await,
            None => Ok(()),
        }
    }

    fn apply_meta(&self, op: &MetaOp) -> Result<()> {
        match op {
            MetaOp::Access(a) => {
                self.access.borrow_mut().apply(a)?;
                // Permissions may have narrowed: open connections check afresh.
                for c in self.conns.borrow().values() {
                    c.forget_permissions();
                }
                if let AccessOp::DeleteUser(user) = a {
                    // RabbitMQ (since 3.7) closes a deleted user's connections.
                    self.close_conns(|c| *c.user == **user, &format!("user '{user}' is deleted"));
                }
                Ok(())
            }
            MetaOp::DeleteVhost { vhost } => {
                self.routes.borrow_mut().apply(op)?;
                self.access.borrow_mut().apply(&AccessOp::DeleteVhost(vhost.clone()))?;
                self.vhost_deleted(vhost);
                Ok(())
            }
            _ => self.routes.borrow_mut().apply(op),
        }
    }

    /// A vhost was deleted: its connections on this shard are closed (320 CONNECTION_FORCED, as
    /// RabbitMQ does) and the queues this shard owns in it go, with their logged messages.
    fn vhost_deleted(&self, vhost: &str) {
        self.close_conns(|c| *c.vhost == *vhost, &format!("vhost '{vhost}' is deleted"));
        let ids: Vec<QueueId> = self.queues.borrow().iter().filter(|q| *q.vhost == *vhost).map(|q| q.id).collect();
        for id in ids {
            self.drop_queue(id);
        }
    }

    /// Closes this shard's open connections that `pick` selects with 320 CONNECTION_FORCED.
    fn close_conns(&self, pick: impl Fn(&ConnInfo) -> bool, text: &str) {
        let conns: Vec<Rc<dyn Client>> =
            self.conns.borrow().values().filter(|c| c.is_open() && pick(&c.info())).cloned().collect();
        for c in conns {
            c.force_close(text);
        }
    }

    /// Whether applying `op` changes what the definitions file holds (asked on the coordinator,
    /// before applying it).
    fn touches_durable(&self, op: &MetaOp) -> bool {
        let routes = self.routes.borrow();
        let durable_exchange = |vhost: &str, name: &str| routes.exchange(vhost, name).is_some_and(|e| e.durable);
        match op {
            MetaOp::AddVhost { vhost } => !routes.has_vhost(vhost),
            MetaOp::DeleteVhost { vhost } => routes.has_vhost(vhost),
            MetaOp::DeclareExchange { vhost, name, passive, durable, .. } => {
                !passive && *durable && routes.exchange(vhost, name).is_none()
            }
            MetaOp::DeleteExchange { vhost, name, .. } => durable_exchange(vhost, name),
            // Bindings are kept only between durable ends: binding a transient queue (an RPC reply
            // queue, say) to a durable exchange costs no save.
            MetaOp::Bind { vhost, source, dest, .. } | MetaOp::Unbind { vhost, source, dest, .. } => {
                let auto_delete = routes.exchange(vhost, source).is_some_and(|e| e.auto_delete);
                durable_exchange(vhost, source)
                    && (auto_delete
                        || match dest {
                            Dest::Queue(q) => self.defs.queues.borrow().contains_key(&(vhost.clone(), q.to_string())),
                            Dest::Exchange(x) => durable_exchange(vhost, x),
                        })
            }
            MetaOp::QueueDeleted { vhost, queue } => {
                self.defs.queues.borrow().contains_key(&(vhost.clone(), queue.clone()))
            }
            MetaOp::Access(_) => true,
        }
    }

    /// Tells the coordinator about a new durable queue and waits until the definitions file has it
    /// (541 INTERNAL_ERROR if the save failed: the queue stays, and the save is tried again).
    pub async fn durable_queue_declared(&self, def: QueueDef) -> Result<()> {
        let what = format!("queue '{}' in vhost '{}'", def.name, def.vhost);
        let v = self
            .call(0, move |c| {
                c.defs.queues.borrow_mut().insert((def.vhost.clone(), def.name.clone()), def);
                c.defs.changed()
            })
            .await?;
        self.definitions_saved_or(v)
            .await?
            .map_err(|e| AmqpError::internal(format!("cannot save the definition of {what}: {e}")))
    }

    /// Waits until the coordinator's definitions file covers version `v`; 541 INTERNAL_ERROR if a
    /// save that would have covered it failed (RabbitMQ's answer when it cannot store a change).
    pub async fn definitions_saved(&self, v: u64) -> Result<()> {
        self.definitions_saved_or(v)
            .await?
            .map_err(|e| AmqpError::internal(format!("cannot save the durable definitions: {e}")))
    }

    /// `definitions_saved`, with the save's own error.
    async fn definitions_saved_or(&self, v: u64) -> Result<std::result::Result<(), String>> {
        self.ask(0, |done| ShardMsg::DefinitionsSaved { version: v, done }).await
    }

    /// The durable definitions in RabbitMQ's export format (on the coordinator, which has them all).
    pub fn definitions(&self) -> Definitions {
        let access = self.access.borrow();
        let routes = self.routes.borrow();
        let queues = self.defs.queues.borrow();
        let mut d = Definitions {
            users: access
                .users()
                .map(|u| UserDef {
                    name: u.name.clone(),
                    password_hash: u.hash.to_base64(),
                    hashing_algorithm: u.hash.algorithm().into(),
                    tags: serde_json::Value::from(u.tags.clone()),
                })
                .collect(),
            permissions: access
                .permissions()
                .map(|((user, vhost), p)| PermissionDef {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: p.configure.as_str().into(),
                    write: p.write.as_str().into(),
                    read: p.read.as_str().into(),
                })
                .collect(),
            queues: queues.values().cloned().collect(),
            ..Default::default()
        };
        let predeclared = |name: &str| PREDECLARED.iter().any(|(p, _)| *p == name);
        for (vhost, exchanges) in routes.vhosts() {
            d.vhosts.push(VhostDef { name: vhost.clone() });
            for e in exchanges.values().filter(|e| e.durable) {
                if !predeclared(&e.name) {
                    d.exchanges.push(ExchangeDef {
                        name: e.name.clone(),
                        vhost: vhost.clone(),
                        kind: e.kind.as_str().into(),
                        durable: true,
                        auto_delete: e.auto_delete,
                        internal: e.internal,
                        arguments: json_table(&e.arguments),
                    });
                }
                for b in &e.bindings {
                    let (destination, destination_type, durable) = match &b.dest {
                        Dest::Queue(q) => (q, "queue", queues.contains_key(&(vhost.clone(), q.to_string()))),
                        Dest::Exchange(x) => (x, "exchange", exchanges.get(&**x).is_some_and(|x| x.durable)),
                    };
                    if durable {
                        d.bindings.push(BindingDef {
                            source: e.name.clone(),
                            vhost: vhost.clone(),
                            destination: destination.to_string(),
                            destination_type: destination_type.into(),
                            routing_key: b.key.clone(),
                            arguments: json_table(&b.args),
                        });
                    }
                }
            }
        }
        // A stable order, so the file only changes when the definitions do.
        d.users.sort_by(|a, b| a.name.cmp(&b.name));
        d.permissions.sort_by(|a, b| (&a.user, &a.vhost).cmp(&(&b.user, &b.vhost)));
        d.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        d.exchanges.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        d
    }

    /// The coordinator's saver of the definitions file: returns once the shard stops and all is saved.
    pub async fn run_definitions_saver(self: Rc<Self>) {
        self.defs.run(|| self.definitions().to_json(), || self.stopping.get()).await
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

    /// Removes a queue from this shard (not its bindings): its logged messages are dropped, the
    /// publishers it paused resume, its consumers are told. Returns how many messages it held.
    fn drop_queue(&self, id: QueueId) -> Option<u32> {
        self.drop_queue_keeping(id, |_| true)
    }

    /// `drop_queue`, telling only the consumers `tell` picks.
    fn drop_queue_keeping(&self, id: QueueId, mut tell: impl FnMut(&Consumer) -> bool) -> Option<u32> {
        let q = self.queues.borrow_mut().remove(id)?;
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
