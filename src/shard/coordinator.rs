//! Metadata: routes, users, vhosts and permissions change through the coordinator (shard 0), which
//! orders every change and keeps the durable definitions file; every shard applies each change in
//! that order.

use std::rc::Rc;

use crate::broker::access::AccessOp;
use crate::broker::definitions::{
    BindingDef, Definitions, ExchangeDef, ParameterDef, PermissionDef, QueueDef, UserDef, VhostDef, json_table,
};
use crate::broker::limits::MAX_QUEUES;
use crate::broker::routing::{Dest, MetaOp, PREDECLARED};
use crate::ids::QueueId;
use crate::protocol::reply::{ChannelError, ConnectionError, Result};

use super::Shard;
use super::clients::{Client, ConnInfo};
use super::msg::{Reply, ShardMsg};
use super::placement;

impl Shard {
    /// Applies definitions at start: every shard takes the users, vhosts, exchanges and bindings,
    /// and declares the queues it owns. Every shard reads the same file, so all agree.
    pub fn load_definitions(&self, d: &Definitions) -> std::result::Result<(), String> {
        *self.access.borrow_mut() = d.access(self.config.loopback_users.clone())?;
        let mut routes = self.routes.borrow_mut();
        let mut apply = |op: MetaOp| routes.apply(&op).map_err(|e| format!("definitions: {}", e.text()));
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
            self.restore_queue(&q.vhost, &q.name, flags).map_err(|e| format!("definitions: {}", e.text()))?;
        }
        Ok(())
    }

    /// Changes the routing table everywhere: the coordinator (shard 0) validates and orders the
    /// change, every shard applies it, and this returns once all have (so a client that gets its
    /// -ok can rely on every shard routing by it).
    pub async fn change_routes(&self, op: MetaOp) -> Result<()> {
        // The other shards' answers come here; the coordinator sends them the change, so every
        // shard applies changes in the coordinator's order.
        let (replies, answers): (Vec<_>, Vec<_>) = (1..self.shards()).map(|_| Reply::new(self.id)).unzip();
        let saved = self.ask(0, |done| ShardMsg::ChangeRoutes { op: Box::new(op), replies, done }).await??;
        for a in answers {
            a.await.map_err(|_| ConnectionError::internal("shard stopped"))?;
        }
        match saved {
            Some(v) => Ok(self.definitions_saved(v).await?),
            None => Ok(()),
        }
    }

    /// On the coordinator: validates, orders and applies `op`, then sends it to the other shards
    /// (each answers one of `replies` once it applied it). Returns the definitions file version
    /// to wait for, if the change touches it.
    pub(super) fn coordinate(&self, op: MetaOp, replies: Vec<Reply<()>>) -> Result<Option<u64>> {
        let durable = self.touches_durable(&op);
        self.apply_meta(&op)?;
        match &op {
            MetaOp::QueueDeleted { vhost, queue } => {
                self.defs.queues.borrow_mut().remove(&(vhost.clone(), queue.clone()));
            }
            MetaOp::DeleteVhost { vhost } => self.defs.queues.borrow_mut().retain(|(v, _), _| v != vhost),
            _ => {}
        }
        for (k, done) in (1..).zip(replies) {
            self.send(k, ShardMsg::ApplyMeta { op: Box::new(op.clone()), done });
        }
        Ok(durable.then(|| self.defs.changed()))
    }

    /// On the coordinator: a new durable queue goes into the definitions file; returns the
    /// version that will hold it.
    pub(super) fn define_queue(&self, def: QueueDef) -> u64 {
        self.defs.queues.borrow_mut().insert((def.vhost.clone(), def.name.clone()), def);
        self.defs.changed()
    }

    pub(super) fn apply_meta(&self, op: &MetaOp) -> Result<()> {
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
            MetaOp::SetPolicy(def) => {
                self.routes.borrow_mut().apply(op)?;
                self.reapply_policies(&def.vhost);
                Ok(())
            }
            MetaOp::ClearPolicy { vhost, .. } => {
                self.routes.borrow_mut().apply(op)?;
                self.reapply_policies(vhost);
                Ok(())
            }
            _ => self.routes.borrow_mut().apply(op),
        }
    }

    /// Policies of `vhost` changed: each queue of it this shard owns takes the one that applies
    /// now, at once (limits are enforced, timers armed).
    fn reapply_policies(&self, vhost: &str) {
        let ids: Vec<QueueId> = self.queues.borrow().iter().filter(|q| *q.vhost == *vhost).map(|q| q.id).collect();
        for id in ids {
            self.apply_policy(id);
            self.settle_books(id);
            self.arm(id);
            self.check_flow(id, None);
        }
    }

    /// Declares a queue this shard owns (`QueueTable::declare`) for a client or the admin: a new
    /// one counts against its vhost's `max-queues` (406, RabbitMQ's text, once it is reached),
    /// takes the policy that applies to it, and any queue's expiry (`x-expires`) starts again.
    /// True if it was created.
    pub fn declare_queue(
        &self,
        vhost: &str,
        name: &str,
        flags: crate::broker::queue::QueueFlags,
        passive: bool,
        conn: crate::ids::ConnId,
    ) -> std::result::Result<(crate::broker::queues::DeclareOk, bool), crate::protocol::reply::ChannelError> {
        let limit = self.routes.borrow().vhost_limit(vhost, MAX_QUEUES);
        self.declare_counted(vhost, name, flags, passive, conn, limit)
    }

    /// `declare_queue` of a queue the definitions hold: counted, never refused.
    fn restore_queue(
        &self,
        vhost: &str,
        name: &str,
        flags: crate::broker::queue::QueueFlags,
    ) -> std::result::Result<(crate::broker::queues::DeclareOk, bool), crate::protocol::reply::ChannelError> {
        self.declare_counted(vhost, name, flags, false, 0, None)
    }

    fn declare_counted(
        &self,
        vhost: &str,
        name: &str,
        flags: crate::broker::queue::QueueFlags,
        passive: bool,
        conn: crate::ids::ConnId,
        limit: Option<u32>,
    ) -> std::result::Result<(crate::broker::queues::DeclareOk, bool), crate::protocol::reply::ChannelError> {
        let existed = self.queues.borrow().lookup(vhost, name).is_some();
        let counted = !existed && !passive;
        if counted {
            self.tally.try_queue(vhost, limit).map_err(|max| {
                ChannelError::precondition(format!(
                    "cannot declare queue '{name}': queue limit in vhost '{vhost}' ({max}) is reached"
                ))
            })?;
        }
        let ok = match self.queues.borrow_mut().declare(vhost, name, flags, passive, conn) {
            Ok(ok) => ok,
            Err(e) => {
                if counted {
                    self.tally.queue_gone(vhost);
                }
                return Err(e);
            }
        };
        if !existed {
            self.apply_policy(ok.id);
        }
        self.arm(ok.id);
        Ok((ok, !existed))
    }

    /// Gives queue `id` the policy that applies to it (a new queue, or policies changed).
    pub fn apply_policy(&self, id: QueueId) {
        let routes = self.routes.borrow();
        let mut queues = self.queues.borrow_mut();
        if let Some(q) = queues.get_mut(id) {
            let policy = routes.policies.find(&q.vhost, &q.name, true).map(|p| p.settings());
            q.set_policy(policy);
        }
    }

    /// A vhost was deleted: its connections on this shard are closed (320 CONNECTION_FORCED, as
    /// RabbitMQ does) and the queues this shard owns in it go, with their logged messages.
    pub(super) fn vhost_deleted(&self, vhost: &str) {
        self.close_conns(|c| *c.vhost == *vhost, &format!("vhost '{vhost}' is deleted"));
        let ids: Vec<QueueId> = self.queues.borrow().iter().filter(|q| *q.vhost == *vhost).map(|q| q.id).collect();
        for id in ids {
            self.drop_queue(id);
        }
    }

    /// Closes this shard's open connections that `pick` selects with 320 CONNECTION_FORCED.
    pub(super) fn close_conns(&self, pick: impl Fn(&ConnInfo) -> bool, text: &str) {
        let conns: Vec<Rc<dyn Client>> =
            self.conns.borrow().values().filter(|c| c.is_open() && pick(&c.info())).cloned().collect();
        for c in conns {
            c.force_close(text);
        }
    }

    /// Whether applying `op` changes what the definitions file holds (asked on the coordinator,
    /// before applying it).
    pub(super) fn touches_durable(&self, op: &MetaOp) -> bool {
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
            MetaOp::Access(_) | MetaOp::SetPolicy(_) | MetaOp::ClearPolicy { .. } | MetaOp::SetVhostLimits { .. } => {
                true
            }
        }
    }

    /// Tells the coordinator about a new durable queue and waits until the definitions file has it
    /// (541 INTERNAL_ERROR if the save failed: the queue stays, and the save is tried again).
    pub async fn durable_queue_declared(&self, def: QueueDef) -> Result<(), ConnectionError> {
        let what = format!("queue '{}' in vhost '{}'", def.name, def.vhost);
        let v = self.ask(0, |done| ShardMsg::DefineQueue { def: Box::new(def), done }).await?;
        self.definitions_saved_or(v)
            .await?
            .map_err(|e| ConnectionError::internal(format!("cannot save the definition of {what}: {e}")))
    }

    /// Waits until the coordinator's definitions file covers version `v`; 541 INTERNAL_ERROR if a
    /// save that would have covered it failed (RabbitMQ's answer when it cannot store a change).
    pub async fn definitions_saved(&self, v: u64) -> Result<(), ConnectionError> {
        self.definitions_saved_or(v)
            .await?
            .map_err(|e| ConnectionError::internal(format!("cannot save the durable definitions: {e}")))
    }

    /// `definitions_saved`, with the save's own error.
    pub(super) async fn definitions_saved_or(&self, v: u64) -> Result<Result<(), String>, ConnectionError> {
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
                    limits: Some(serde_json::Value::Object(u.limits.to_json())),
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
            policies: routes.policies.iter().map(|p| p.def.clone()).collect(),
            parameters: routes.vhost_limits().map(|(v, l)| ParameterDef::vhost_limits(v, l)).collect(),
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
        d.parameters.sort_by(|a, b| a.vhost.cmp(&b.vhost));
        d
    }

    /// The coordinator's saver of the definitions file: returns once the shard stops and all is saved.
    pub async fn run_definitions_saver(self: Rc<Self>) {
        self.defs.run(|| self.definitions().to_json(), || self.stopping.get()).await
    }
}
