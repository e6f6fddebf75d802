//! The queue class: declare, bind, unbind, purge, delete. Each runs on the queue's owning shard;
//! bindings then go through the coordinator so every shard's routing table has them.

use std::rc::Rc;
use std::sync::Arc;

use crate::broker::access::{Perm, Resource};
use crate::broker::definitions::{QueueDef, json_table};
use crate::broker::queue::QueueFlags;
use crate::broker::routing::{Dest, MetaOp};
use crate::protocol::Method;
use crate::protocol::methods::queue;
use crate::protocol::reply::{AmqpError, Result};
use crate::protocol::types::FieldTable;
use crate::shard::msg::Reply;
use crate::shard::placement::shard_of;
use crate::shard::queue_ops::{Declared, QueueOp, QueueRef};

use super::connection::Conn;

impl Conn {
    fn vhost(&self) -> Arc<str> {
        self.st.borrow().vhost.clone()
    }

    pub async fn queue_declare(self: &Rc<Self>, ch: u16, m: queue::Declare) -> Result<()> {
        let name = if m.queue.is_empty() && !m.passive { self.shard.random_name("amq.gen-") } else { m.queue.clone() };
        if !m.passive && !m.queue.is_empty() && m.queue.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!("queue name '{name}' contains reserved prefix 'amq.*'")));
        }
        if m.passive && name.is_empty() {
            let last = self.with_channel(ch, |c| c.queue_name(""))?;
            return Box::pin(self.queue_declare(ch, queue::Declare { queue: last, ..m })).await;
        }
        if !m.passive {
            self.permit(Perm::Configure, Resource::Queue(&name))?;
        }
        let vhost = self.vhost();
        let owner = shard_of(&vhost, &name, self.shard.shards());
        let flags = QueueFlags {
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments,
        };
        let durable = (m.durable && !m.exclusive && !m.passive).then(|| QueueDef {
            name: name.clone(),
            vhost: vhost.to_string(),
            durable: true,
            auto_delete: m.auto_delete,
            arguments: json_table(&flags.arguments),
        });
        let at = QueueRef { vhost, name: name.clone(), conn: self.id };
        let Declared { ok, created, unsaved } =
            self.shard.ask_queue(owner, |done| QueueOp::Declare { at, flags, passive: m.passive, done }).await??;
        // A new durable queue is in the definitions file before the client hears declare-ok; so is
        // one whose first save failed (the client then heard an error, and the queue stayed).
        if let Some(def) = durable
            && (created || unsaved)
        {
            let saved = self.shard.durable_queue_declared(def).await;
            let (queue, failed) = (ok.id, saved.is_err());
            if failed != unsaved {
                self.shard.ask_queue(owner, |done| QueueOp::DefinitionSaved { queue, failed, done }).await?;
            }
            saved?;
        }
        {
            let mut st = self.st.borrow_mut();
            if m.exclusive && !m.passive && !st.exclusive_queues.contains(&ok.id) {
                st.exclusive_queues.push(ok.id);
            }
            if let Some(c) = st.channels.get_mut(&ch) {
                c.last_queue = Some(name.clone());
            }
        }
        if !m.nowait {
            self.send_method(
                ch,
                &Method::QueueDeclareOk(queue::DeclareOk {
                    queue: name,
                    message_count: ok.message_count,
                    consumer_count: ok.consumer_count,
                }),
            );
        }
        Ok(())
    }

    /// Asks the shard that owns queue `given` (or the channel's last declared queue) the request
    /// `make` builds; the owner first makes the checks every queue method shares (404 if it is
    /// missing, 405 if it is another connection's exclusive queue).
    pub async fn with_queue<R: Send + 'static>(
        self: &Rc<Self>,
        ch: u16,
        given: &str,
        make: impl FnOnce(QueueRef, Reply<Result<R>>) -> QueueOp,
    ) -> Result<R> {
        let name = self.with_channel(ch, |c| c.queue_name(given))?;
        let vhost = self.vhost();
        let owner = shard_of(&vhost, &name, self.shard.shards());
        let at = QueueRef { vhost, name, conn: self.id };
        self.shard.ask_queue(owner, |done| make(at, done)).await?
    }

    async fn queue_binding(
        self: &Rc<Self>,
        ch: u16,
        queue: &str,
        exchange: String,
        key: String,
        args: FieldTable,
        bind: bool,
    ) -> Result<()> {
        let name = self.with_channel(ch, |c| c.queue_name(queue))?;
        self.permit(Perm::Write, Resource::Queue(&name))?;
        self.permit(Perm::Read, Resource::Exchange(&exchange))?;
        // The queue must exist and be usable by this connection (404, 405); unbinding from a
        // queue that is gone is ok, as in RabbitMQ 3.x.
        match self.with_queue(ch, &name, |at, done| QueueOp::Check { at, done }).await {
            Err(e) if !bind && e.reply_code() == 404 => return Ok(()),
            r => r?,
        };
        let vhost = self.vhost().to_string();
        let dest = Dest::Queue(name.as_str().into());
        let op = if bind {
            MetaOp::Bind { vhost, source: exchange, dest, key, args }
        } else {
            MetaOp::Unbind { vhost, source: exchange, dest, key, args }
        };
        self.shard.change_routes(op).await
    }

    pub async fn queue_bind(self: &Rc<Self>, ch: u16, m: queue::Bind) -> Result<()> {
        self.queue_binding(ch, &m.queue, m.exchange, m.routing_key, m.arguments, true).await?;
        if !m.nowait {
            self.send_method(ch, &Method::QueueBindOk(queue::BindOk {}));
        }
        Ok(())
    }

    pub async fn queue_unbind(self: &Rc<Self>, ch: u16, m: queue::Unbind) -> Result<()> {
        self.queue_binding(ch, &m.queue, m.exchange, m.routing_key, m.arguments, false).await?;
        self.send_method(ch, &Method::QueueUnbindOk(queue::UnbindOk {}));
        Ok(())
    }

    pub async fn queue_purge(self: &Rc<Self>, ch: u16, m: queue::Purge) -> Result<()> {
        let name = self.with_channel(ch, |c| c.queue_name(&m.queue))?;
        self.permit(Perm::Read, Resource::Queue(&name))?;
        let (_, count) = self.with_queue(ch, &name, |at, done| QueueOp::Purge { at, done }).await?;
        if !m.nowait {
            self.send_method(ch, &Method::QueuePurgeOk(queue::PurgeOk { message_count: count }));
        }
        Ok(())
    }

    pub async fn queue_delete(self: &Rc<Self>, ch: u16, m: queue::Delete) -> Result<()> {
        let name = self.with_channel(ch, |c| c.queue_name(&m.queue))?;
        self.permit(Perm::Configure, Resource::Queue(&name))?;
        let vhost = self.vhost();
        let owner = shard_of(&vhost, &name, self.shard.shards());
        let (if_unused, if_empty) = (m.if_unused, m.if_empty);
        let at = QueueRef { vhost, name, conn: self.id };
        let gone = self.shard.ask_queue(owner, |done| QueueOp::Delete { at, if_unused, if_empty, done }).await??;
        let Some(gone) = gone else {
            if !m.nowait {
                self.send_method(ch, &Method::QueueDeleteOk(queue::DeleteOk { message_count: 0 }));
            }
            return Ok(());
        };
        // Every shard has dropped the queue's bindings before delete-ok, so a redeclare and bind
        // that follow cannot lose their binding to a late drop.
        self.shard.change_routes(gone.routes_op()).await?;
        if !m.nowait {
            self.send_method(ch, &Method::QueueDeleteOk(queue::DeleteOk { message_count: gone.message_count }));
        }
        for (channel, tag) in gone.own_cancels {
            self.server_cancel(channel, &tag);
        }
        Ok(())
    }
}
