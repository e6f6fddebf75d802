//! Requests about one queue, sent to the shard that owns it (`ShardMsg::Queue`): the queue class's
//! declare, purge and delete, basic.consume, basic.get and basic.cancel, and the checks every
//! queue method shares. Each carries the `Reply` its asker waits for; `Shard::queue_op` answers.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::message::Message;
use crate::broker::queue::{Consumer, Queue, QueueFlags};
use crate::broker::queues::{DeclareOk, RemovedQueue, not_found};
use crate::ids::{ConnId, QueueId};
use crate::protocol::reply::{AmqpError, Result};

use super::Shard;
use super::msg::{Reply, ShardMsg};

/// The queue a request names, and the connection asking (0: the admin, which owns no queue).
pub struct QueueRef {
    pub vhost: Arc<str>,
    pub name: String,
    pub conn: ConnId,
}

/// What queue.declare found or made.
pub struct Declared {
    pub ok: DeclareOk,
    /// The queue did not exist before.
    pub created: bool,
    /// Its durable definition is not in the definitions file yet (an earlier save failed).
    pub unsaved: bool,
}

/// What basic.get took: the message's id, the message, whether it is redelivered, and how many
/// messages the queue still holds; `None` if the queue is empty.
pub type Got = Option<(u64, Arc<Message>, bool, u32)>;

pub enum QueueOp {
    /// queue.declare, passive or not.
    Declare { at: QueueRef, flags: QueueFlags, passive: bool, done: Reply<Result<Declared>> },
    /// Whether the definitions file now holds the durable queue `queue` (its save failed, or not).
    DefinitionSaved { queue: QueueId, failed: bool, done: Reply<()> },
    /// Only the checks every queue method shares: 404 if it is missing, 405 if it is another
    /// connection's exclusive queue.
    Check { at: QueueRef, done: Reply<Result<QueueId>> },
    /// queue.purge: answers how many messages went.
    Purge { at: QueueRef, done: Reply<Result<(QueueId, u32)>> },
    /// basic.consume (403 if the queue is in exclusive use).
    Consume { at: QueueRef, consumer: Consumer, done: Reply<Result<QueueId>> },
    /// basic.get; `None` while the queue's head is being read back from disk (ask again after
    /// `ShardMsg::PagedIn`).
    Get { at: QueueRef, no_ack: bool, done: Reply<Result<(QueueId, Option<Got>)>> },
    /// queue.delete: `None` if there is no such queue (which succeeds, as in RabbitMQ 3.x).
    Delete { at: QueueRef, if_unused: bool, if_empty: bool, done: Reply<Result<Option<RemovedQueue>>> },
    /// basic.cancel: consumer `tag` of the connection's channel leaves queue `queue`.
    Cancel { queue: QueueId, conn: ConnId, channel: u16, tag: String, done: Reply<()> },
    /// warrenctl purge_queue, with no exclusivity check: `None` if there is no such queue.
    AdminPurge { vhost: String, name: String, done: Reply<Option<u32>> },
    /// warrenctl delete_queue, with no exclusivity check: `None` if there is no such queue.
    AdminDelete { vhost: String, name: String, done: Reply<Option<u32>> },
}

impl Shard {
    /// Sends shard `owner` the request about one of its queues that `make` builds, and waits for
    /// the answer.
    pub async fn ask_queue<R: Send + 'static>(
        &self,
        owner: usize,
        make: impl FnOnce(Reply<R>) -> QueueOp,
    ) -> std::result::Result<R, crate::protocol::reply::ConnectionError> {
        self.ask(owner, |done| ShardMsg::Queue(Box::new(make(done)))).await
    }

    /// Carries out a request about a queue this shard owns and answers it.
    pub(super) fn queue_op(self: &Rc<Self>, op: QueueOp) {
        match op {
            QueueOp::Declare { at, flags, passive, done } => {
                let r = self
                    .declare_queue(&at.vhost, &at.name, flags, passive, at.conn)
                    .map(|(ok, created)| {
                        let unsaved = self.queues.borrow().get(ok.id).is_some_and(|q| q.definition_unsaved);
                        Declared { ok, created, unsaved }
                    })
                    .map_err(AmqpError::from);
                done.send(self, r);
            }
            QueueOp::DefinitionSaved { queue, failed, done } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(queue) {
                    q.definition_unsaved = failed;
                }
                done.send(self, ());
            }
            QueueOp::Check { at, done } => {
                let r = self.use_queue(&at, |_| Ok(())).map(|(id, ())| id);
                done.send(self, r);
            }
            QueueOp::Purge { at, done } => {
                let r = self.use_queue(&at, |q| Ok(q.purge()));
                done.send(self, r);
            }
            QueueOp::Consume { at, consumer, done } => {
                let r = self.use_queue(&at, |q| {
                    if q.has_exclusive_consumer() || (consumer.exclusive && q.consumer_count() > 0) {
                        return Err(AmqpError::access_refused(format!(
                            "queue '{}' in vhost '{}' in exclusive use",
                            q.name, q.vhost
                        )));
                    }
                    q.add_consumer(consumer);
                    Ok(())
                });
                done.send(self, r.map(|(id, ())| id));
            }
            QueueOp::Get { at, no_ack, done } => {
                let r = self.use_queue(&at, |q| {
                    if q.paging_in() {
                        return Ok(None);
                    }
                    Ok(Some(q.get(no_ack).map(|(id, msg, redelivered)| (id, msg, redelivered, q.message_count()))))
                });
                done.send(self, r);
            }
            QueueOp::Delete { at, if_unused, if_empty, done } => {
                let r = self.delete_for(&at, if_unused, if_empty);
                done.send(self, r);
            }
            QueueOp::Cancel { queue, conn, channel, tag, done } => {
                self.remove_consumers(queue, conn, Some(channel), Some(&tag));
                done.send(self, ());
            }
            QueueOp::AdminPurge { vhost, name, done } => {
                let id = self.queues.borrow().lookup(&vhost, &name);
                let count = id.and_then(|id| {
                    let c = self.queues.borrow_mut().get_mut(id).map(|q| q.purge());
                    self.dispatch(id);
                    c
                });
                done.send(self, count);
            }
            QueueOp::AdminDelete { vhost, name, done } => {
                let id = self.queues.borrow().lookup(&vhost, &name);
                let count = id.and_then(|id| self.delete_queue(id));
                done.send(self, count);
            }
        }
    }

    /// Runs `f` on the queue `at` names after the checks every queue method shares (404, 405);
    /// the queue then dispatches, in case `f` gave it work.
    fn use_queue<R>(self: &Rc<Self>, at: &QueueRef, f: impl FnOnce(&mut Queue) -> Result<R>) -> Result<(QueueId, R)> {
        let id = self.queues.borrow().find(&at.vhost, &at.name, at.conn)?;
        let r = {
            let mut queues = self.queues.borrow_mut();
            let q = queues.get_mut(id).ok_or_else(|| not_found(&at.vhost, &at.name))?;
            f(q)?
        };
        self.dispatch(id);
        Ok((id, r))
    }

    /// queue.delete of the queue `at` names, if it exists.
    fn delete_for(&self, at: &QueueRef, if_unused: bool, if_empty: bool) -> Result<Option<RemovedQueue>> {
        let Some(_) = self.queues.borrow().lookup(&at.vhost, &at.name) else { return Ok(None) };
        let id = self.queues.borrow().find(&at.vhost, &at.name, at.conn)?;
        self.queues.borrow().check_delete(id, if_unused, if_empty)?;
        Ok(self.remove_queue(id, Some(at.conn)))
    }
}
