//! The shard's loop: what it sends leaves at the end of a turn (batched per destination shard),
//! what arrives over the mesh is drained a batch at a time, and each message is counted by kind
//! and handled (`Shard::handle`).

use std::rc::Rc;

use crate::broker::delivery::{Receipt, Settle};
use crate::broker::paging::PageSpace;
use crate::broker::queue::{Pushed, QueueType};
use crate::ids::shard_of_id;

use super::msg::ShardMsg;
use super::{Shard, Wake};

/// The message bytes of the publishes in a mesh batch.
fn publish_bytes(batch: &[ShardMsg]) -> i64 {
    batch.iter().map(|m| if let ShardMsg::Publish { msg, .. } = m { msg.footprint() as i64 } else { 0 }).sum()
}

impl Shard {
    /// Queues a message for `dest` (this shard included); it leaves at the end of this turn.
    pub fn send(&self, dest: usize, msg: ShardMsg) {
        if self.outbox.push(dest, msg) {
            self.flush.notify();
        }
    }

    /// Sends everything queued: batches to other shards, and handles this shard's own messages
    /// (which may queue more, hence the loop).
    pub(super) fn flush_outbox(self: &Rc<Self>) {
        crate::clock::refresh();
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
            crate::clock::refresh();
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
            ShardMsg::Publish { .. } | ShardMsg::Deliver(_) | ShardMsg::Settle { .. } | ShardMsg::Receipt(_)
        ) {
            log::trace!("shard {}: {}", self.id, m.kind());
        }
        match m {
            ShardMsg::Publish { vhost, queues, msg, from, reply } => {
                let (mut enqueued, mut persisted, mut rejected) = (0, false, false);
                let pages = (self.paging.get() && !self.pages.failed()).then_some(&self.pages as &dyn PageSpace);
                for name in queues.names(&msg) {
                    let id = self.queues.borrow().lookup(&vhost, name);
                    if let Some(id) = id {
                        if let Some(q) = self.queues.borrow_mut().get_mut(id) {
                            // A quorum queue persists every message.
                            let persist = q.flags.durable && (msg.is_persistent() || q.args.kind == QueueType::Quorum);
                            let pushed = q.push(
                                msg.clone(),
                                |msg_id| if persist { self.log.message(&vhost, name, msg_id, &msg) } else { 0 },
                                pages,
                            );
                            if pushed == Pushed::Rejected {
                                rejected = true;
                            } else {
                                persisted |= persist;
                                enqueued += 1;
                            }
                        }
                        self.dispatch(id);
                        // Dead letters come from no connection (0).
                        self.check_flow(id, (from != 0).then_some(from));
                    }
                }
                if reply.is_none() && enqueued == 0 && !rejected && from != 0 {
                    self.dropped_unroutable(&vhost);
                }
                if let Some(to) = reply {
                    let r = Receipt { to, enqueued, rejected };
                    // Confirms of persisted messages wait for the log's fsync (group commit).
                    if persisted {
                        self.log.after_sync(r);
                    } else {
                        self.send(shard_of_id(to.conn), ShardMsg::Receipt(r));
                    }
                }
            }
            ShardMsg::Receipt(r) => {
                if let Some(c) = self.client(r.to.conn) {
                    c.on_receipt(r.to.channel, r.to.seq, r.enqueued, r.rejected);
                }
            }
            ShardMsg::Deliver(d) => match self.client(d.conn) {
                Some(c) => c.deliver(d),
                None => self.settle([(d.queue, d.msg_id)], Settle::Return),
            },
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
                if let Some(c) = self.client(conn) {
                    c.flow_hold(queue, hold);
                }
            }
            ShardMsg::ServerCancel { conn, channel, tag } => {
                if let Some(c) = self.client(conn) {
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
            ShardMsg::ChangeRoutes { op, replies, done } => {
                let r = self.coordinate(*op, replies);
                done.send(self, r);
            }
            ShardMsg::DefineQueue { def, done } => {
                let v = self.define_queue(*def);
                done.send(self, v);
            }
            ShardMsg::Queue(op) => self.queue_op(*op),
            ShardMsg::Admin(op) => self.admin_op(*op),
            ShardMsg::DirectReply { conn, channel, key, msg } => {
                if let Some(c) = self.client(conn) {
                    c.direct_reply(channel, key, msg);
                }
            }
            ShardMsg::Answer(complete) => complete(),
        }
    }

    /// Mesh messages this shard has handled, by kind (`ShardMsg::KINDS`).
    pub fn handled(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ShardMsg::KINDS.iter().zip(&self.handled).map(|(k, n)| (*k, n.get()))
    }
}
