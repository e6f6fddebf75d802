//! The routing table every shard keeps a full copy of: vhosts → exchanges → bindings. It changes
//! only through `MetaOp`s, which the coordinator (shard 0) validates and orders, then every shard
//! applies in that order, so all copies agree. Publishes read the local copy without locks.

pub mod headers;
pub mod topic;

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::protocol::reply::{AmqpError, ChannelError, Result};
use crate::protocol::types::FieldTable;

use super::access::AccessOp;
use super::exchange::{Binding, Exchange, ExchangeKind};
use super::limits::Limits;
use super::policy::{Policies, Policy, PolicyDef};

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    Queue(Arc<str>),
    Exchange(Arc<str>),
}

/// A change to the routing table. Applying one is deterministic, so every shard reaches the same table.
#[derive(Clone, Debug)]
pub enum MetaOp {
    AddVhost {
        vhost: String,
    },
    /// A vhost goes with its exchanges and bindings (each shard drops its queues and connections).
    DeleteVhost {
        vhost: String,
    },
    DeclareExchange {
        vhost: String,
        name: String,
        kind: String,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    },
    DeleteExchange {
        vhost: String,
        name: String,
        if_unused: bool,
    },
    Bind {
        vhost: String,
        source: String,
        dest: Dest,
        key: String,
        args: FieldTable,
    },
    Unbind {
        vhost: String,
        source: String,
        dest: Dest,
        key: String,
        args: FieldTable,
    },
    /// A queue is gone: drop every binding to it.
    QueueDeleted {
        vhost: String,
        queue: String,
    },
    /// Users and permissions (the routing table itself is not touched).
    Access(AccessOp),
    /// Adds or replaces a policy (boxed: it is larger than the other changes).
    SetPolicy(Box<PolicyDef>),
    ClearPolicy {
        vhost: String,
        name: String,
    },
    /// Replaces a vhost's limits (rabbitmqctl set_vhost_limits; empty clears them).
    SetVhostLimits {
        vhost: String,
        limits: Limits,
    },
}

pub const PREDECLARED: [(&str, ExchangeKind); 6] = [
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

#[derive(Default)]
pub struct RoutingTable {
    vhosts: HashMap<String, HashMap<String, Exchange>>,
    pub policies: Policies,
    /// Vhosts that have limits (max-connections, max-queues).
    vhost_limits: HashMap<String, Limits>,
}

fn no_exchange(vhost: &str, name: &str) -> ChannelError {
    ChannelError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
}

fn default_exchange_refused() -> ChannelError {
    ChannelError::access_refused("operation not permitted on the default exchange")
}

impl RoutingTable {
    /// Every vhost with its exchanges.
    pub fn vhosts(&self) -> impl Iterator<Item = (&String, &HashMap<String, Exchange>)> {
        self.vhosts.iter()
    }

    pub fn has_vhost(&self, vhost: &str) -> bool {
        self.vhosts.contains_key(vhost)
    }

    /// The vhost's limit `name` (limits::MAX_CONNECTIONS, MAX_QUEUES), if it limits anything.
    pub fn vhost_limit(&self, vhost: &str, name: &str) -> Option<u32> {
        self.vhost_limits.get(vhost)?.get(name)
    }

    /// Every vhost that has limits, with them.
    pub fn vhost_limits(&self) -> impl Iterator<Item = (&String, &Limits)> {
        self.vhost_limits.iter()
    }

    pub fn exchange(&self, vhost: &str, name: &str) -> Option<&Exchange> {
        self.vhosts.get(vhost)?.get(name)
    }

    fn exchanges_mut(&mut self, vhost: &str) -> Result<&mut HashMap<String, Exchange>, ChannelError> {
        self.vhosts.get_mut(vhost).ok_or_else(|| ChannelError::not_found(format!("no vhost '{vhost}'")))
    }

    /// Applies a change, or says why it cannot be (then nothing changed).
    pub fn apply(&mut self, op: &MetaOp) -> Result<()> {
        match op {
            MetaOp::AddVhost { vhost } => {
                let exchanges = self.vhosts.entry(vhost.clone()).or_default();
                for (name, kind) in PREDECLARED {
                    exchanges
                        .entry(name.to_string())
                        .or_insert_with(|| Exchange::new(name, kind, true, false, false, FieldTable::default()));
                }
                Ok(())
            }
            MetaOp::DeleteVhost { vhost } => {
                self.policies.drop_vhost(vhost);
                self.vhost_limits.remove(vhost);
                self.vhosts.remove(vhost).map(|_| ()).ok_or_else(|| AmqpError::not_found(format!("no vhost '{vhost}'")))
            }
            MetaOp::SetPolicy(def) => {
                if !self.has_vhost(&def.vhost) {
                    return Err(AmqpError::not_found(format!("no vhost '{}'", def.vhost)));
                }
                let p = Policy::new((**def).clone()).map_err(AmqpError::precondition)?;
                self.policies.set(p);
                Ok(())
            }
            MetaOp::SetVhostLimits { vhost, limits } => {
                if !self.has_vhost(vhost) {
                    return Err(AmqpError::not_found(format!("no vhost '{vhost}'")));
                }
                if limits.is_empty() {
                    self.vhost_limits.remove(vhost);
                } else {
                    self.vhost_limits.insert(vhost.clone(), limits.clone());
                }
                Ok(())
            }
            MetaOp::ClearPolicy { vhost, name } => {
                if self.policies.clear(vhost, name) {
                    Ok(())
                } else {
                    Err(AmqpError::not_found(format!("policy '{name}' in vhost '{vhost}' not found")))
                }
            }
            MetaOp::DeclareExchange { vhost, name, kind, passive, durable, auto_delete, internal, arguments } => {
                let exchanges = self.exchanges_mut(vhost)?;
                // Even a passive declare of the default exchange is refused (RabbitMQ's
                // check_not_default_exchange comes first).
                if name.is_empty() {
                    return Err(default_exchange_refused().into());
                }
                if *passive {
                    return exchanges.get(name).map(|_| ()).ok_or_else(|| no_exchange(vhost, name).into());
                }
                if name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "exchange name '{name}' contains reserved prefix 'amq.*'"
                    )));
                }
                let Some(k) = ExchangeKind::parse(kind) else {
                    return Err(AmqpError::command_invalid(format!("invalid exchange type '{kind}'")));
                };
                if let Some(e) = exchanges.get(name) {
                    let inequivalent = |arg: &str, got: &dyn std::fmt::Display, cur: &dyn std::fmt::Display| {
                        AmqpError::precondition(format!(
                            "inequivalent arg '{arg}' for exchange '{name}' in vhost '{vhost}': received '{got}' but current is '{cur}'"
                        ))
                    };
                    if e.kind != k {
                        return Err(inequivalent("type", &kind, &e.kind.as_str()));
                    }
                    if e.durable != *durable {
                        return Err(inequivalent("durable", durable, &e.durable));
                    }
                    if e.auto_delete != *auto_delete {
                        return Err(inequivalent("auto_delete", auto_delete, &e.auto_delete));
                    }
                    if e.internal != *internal {
                        return Err(inequivalent("internal", internal, &e.internal));
                    }
                    return Ok(());
                }
                exchanges
                    .insert(name.clone(), Exchange::new(name, k, *durable, *auto_delete, *internal, arguments.clone()));
                Ok(())
            }
            MetaOp::DeleteExchange { vhost, name, if_unused } => {
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(AmqpError::access_refused(format!(
                        "operation not permitted on exchange '{name}' in vhost '{vhost}'"
                    )));
                }
                let exchanges = self.exchanges_mut(vhost)?;
                let Some(e) = exchanges.get(name) else { return Ok(()) };
                if *if_unused && !e.bindings.is_empty() {
                    return Err(AmqpError::precondition(format!("exchange '{name}' in vhost '{vhost}' in use")));
                }
                exchanges.remove(name);
                self.drop_dest(vhost, &Dest::Exchange(name.as_str().into()));
                Ok(())
            }
            MetaOp::Bind { vhost, source, dest, key, args } => {
                let exchanges = self.exchanges_mut(vhost)?;
                if source.is_empty() || matches!(dest, Dest::Exchange(d) if d.is_empty()) {
                    return Err(default_exchange_refused().into());
                }
                if let Dest::Exchange(d) = dest
                    && !exchanges.contains_key(&**d)
                {
                    return Err(no_exchange(vhost, d).into());
                }
                let e = exchanges.get_mut(source).ok_or_else(|| no_exchange(vhost, source))?;
                e.bind(Binding { dest: dest.clone(), key: key.clone(), args: args.clone() });
                Ok(())
            }
            MetaOp::Unbind { vhost, source, dest, key, args } => {
                let exchanges = self.exchanges_mut(vhost)?;
                if source.is_empty() || matches!(dest, Dest::Exchange(d) if d.is_empty()) {
                    return Err(default_exchange_refused().into());
                }
                // Unbinding what is not there is ok, as in RabbitMQ 3.x (clients unbind in
                // teardown after auto-delete exchanges are gone).
                let Some(e) = exchanges.get_mut(source) else { return Ok(()) };
                e.unbind(&Binding { dest: dest.clone(), key: key.clone(), args: args.clone() });
                let gone = e.auto_delete && e.bindings.is_empty();
                if gone {
                    self.remove_auto_deleted(vhost, source);
                }
                Ok(())
            }
            MetaOp::QueueDeleted { vhost, queue } => {
                self.drop_dest(vhost, &Dest::Queue(queue.as_str().into()));
                Ok(())
            }
            MetaOp::Access(_) => Ok(()),
        }
    }

    /// Drops every binding to `dest`, then any auto-delete exchange that lost its last binding.
    fn drop_dest(&mut self, vhost: &str, dest: &Dest) {
        let Some(exchanges) = self.vhosts.get_mut(vhost) else { return };
        let mut emptied = Vec::new();
        for e in exchanges.values_mut() {
            if e.unbind_dest(dest) > 0 && e.auto_delete && e.bindings.is_empty() {
                emptied.push(e.name.clone());
            }
        }
        for name in emptied {
            self.remove_auto_deleted(vhost, &name);
        }
    }

    fn remove_auto_deleted(&mut self, vhost: &str, name: &str) {
        if let Some(exchanges) = self.vhosts.get_mut(vhost) {
            exchanges.remove(name);
        }
        self.drop_dest(vhost, &Dest::Exchange(name.into()));
    }

    /// The queues a publish reaches, each once, following exchange-to-exchange bindings and
    /// alternate exchanges. 404 if the exchange does not exist; 403 if it is internal. The key is
    /// the publisher's bytes: it matches binding keys byte for byte.
    pub fn route(
        &self,
        vhost: &str,
        exchange: &str,
        key: &[u8],
        headers: &dyn Fn() -> Option<FieldTable>,
        out: &mut Vec<Arc<str>>,
    ) -> Result<()> {
        self.check_publishable(vhost, exchange)?;
        self.route_from(vhost, exchange, key, headers, out)
    }

    /// 403 if a client may not publish to `exchange` (it is internal).
    pub fn check_publishable(&self, vhost: &str, exchange: &str) -> Result<()> {
        let internal = self.vhosts.get(vhost).and_then(|x| x.get(exchange)).is_some_and(|e| e.internal);
        if internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{vhost}'"
            )));
        }
        Ok(())
    }

    /// `route_from` by several routing keys (a message's CC and BCC keys, or the keys a
    /// dead-lettered message was published with): each queue once.
    pub fn route_keys<'k>(
        &self,
        vhost: &str,
        exchange: &str,
        keys: impl IntoIterator<Item = &'k [u8]>,
        headers: &dyn Fn() -> Option<FieldTable>,
        out: &mut Vec<Arc<str>>,
    ) -> Result<()> {
        let mut routed = Vec::new();
        for key in keys {
            self.route_from(vhost, exchange, key, headers, &mut routed)?;
            for q in routed.drain(..) {
                if !out.contains(&q) {
                    out.push(q);
                }
            }
        }
        Ok(())
    }

    /// `route` from any exchange, internal ones included: the broker's own publishes
    /// (dead-lettering) may use them, clients may not.
    pub fn route_from(
        &self,
        vhost: &str,
        exchange: &str,
        key: &[u8],
        headers: &dyn Fn() -> Option<FieldTable>,
        out: &mut Vec<Arc<str>>,
    ) -> Result<()> {
        let exchanges = self.vhosts.get(vhost).ok_or_else(|| no_exchange(vhost, exchange))?;
        let e = exchanges.get(exchange).ok_or_else(|| no_exchange(vhost, exchange))?;
        if exchange.is_empty() {
            // Queue names are text: a key that is not names no queue.
            if let Ok(queue) = std::str::from_utf8(key) {
                out.push(queue.into());
            }
            return Ok(());
        }
        // Nothing here allocates unless exchange-to-exchange bindings are followed.
        let mut decoded: Option<Option<FieldTable>> = None;
        let mut pending: Vec<&Exchange> = Vec::new();
        let mut visited: Vec<&str> = Vec::new();
        let mut next = Some(e);
        while let Some(e) = next.take().or_else(|| pending.pop()) {
            if e.name != exchange {
                if visited.contains(&e.name.as_str()) {
                    continue;
                }
                visited.push(&e.name);
            }
            let h = if e.kind == ExchangeKind::Headers { decoded.get_or_insert_with(headers).as_ref() } else { None };
            let mut routed = false;
            e.route(key, h, &mut |d| match d {
                Dest::Queue(q) => {
                    out.push(q.clone());
                    routed = true;
                }
                Dest::Exchange(x) => {
                    if let Some(to) = exchanges.get(&**x)
                        && to.name != exchange
                    {
                        pending.push(to);
                        routed = true;
                    }
                }
            });
            if !routed
                && let Some(ae) = e.arguments.get_str("alternate-exchange").or_else(|| {
                    let policy = self.policies.find(vhost, &e.name, false)?;
                    policy.settings().alternate_exchange.clone()
                })
                && let Some(to) = exchanges.get(&ae)
                && to.name != exchange
            {
                pending.push(to);
            }
        }
        // A queue reached through several bindings or exchanges gets the message once.
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        e.stats.routed(out.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RoutingTable {
        let mut t = RoutingTable::default();
        t.apply(&MetaOp::AddVhost { vhost: "/".into() }).unwrap();
        t
    }

    fn declare(t: &mut RoutingTable, name: &str, kind: &str, ae: Option<&str>) {
        let mut arguments = FieldTable::default();
        if let Some(ae) = ae {
            arguments.insert("alternate-exchange", crate::protocol::types::FieldValue::str(ae));
        }
        let op = MetaOp::DeclareExchange {
            vhost: "/".into(),
            name: name.into(),
            kind: kind.into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments,
        };
        t.apply(&op).unwrap();
    }

    fn bind(t: &mut RoutingTable, source: &str, dest: Dest, key: &str) {
        let op = MetaOp::Bind {
            vhost: "/".into(),
            source: source.into(),
            dest,
            key: key.into(),
            args: FieldTable::default(),
        };
        t.apply(&op).unwrap();
    }

    fn route(t: &RoutingTable, exchange: &str, key: &str) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        t.route("/", exchange, key.as_bytes(), &|| None, &mut out).unwrap();
        out
    }

    #[test]
    fn cycles_deliver_once_and_terminate() {
        let mut t = table();
        declare(&mut t, "a", "fanout", Some("a"));
        declare(&mut t, "b", "fanout", Some("a"));
        // Routes nowhere, and its alternate exchange is itself: must terminate.
        assert!(route(&t, "a", "k").is_empty());
        bind(&mut t, "a", Dest::Exchange("b".into()), "");
        bind(&mut t, "b", Dest::Exchange("a".into()), "");
        bind(&mut t, "a", Dest::Queue("q".into()), "");
        bind(&mut t, "b", Dest::Queue("q".into()), "");
        assert_eq!(route(&t, "a", "k"), vec![Arc::<str>::from("q")]);
        assert_eq!(route(&t, "b", "k"), vec![Arc::<str>::from("q")]);
    }

    #[test]
    fn alternate_exchange_takes_what_routes_nowhere() {
        let mut t = table();
        declare(&mut t, "ae", "fanout", None);
        declare(&mut t, "main", "direct", Some("ae"));
        bind(&mut t, "ae", Dest::Queue("unrouted".into()), "");
        bind(&mut t, "main", Dest::Queue("routed".into()), "good");
        assert_eq!(route(&t, "main", "good"), vec![Arc::<str>::from("routed")]);
        assert_eq!(route(&t, "main", "bad"), vec![Arc::<str>::from("unrouted")]);
    }
}
