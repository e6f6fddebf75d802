//! The queues a shard owns, by id and by (vhost, name). This shard is the single authority for their
//! existence, arguments, exclusivity and consumers (queue.declare/delete/purge semantics of RabbitMQ).

use ahash::AHashMap as HashMap;
use std::sync::Arc;

use crate::ids::{ConnId, QueueId, make_id};
use crate::protocol::reply::ChannelError;
use crate::protocol::types::FieldValue;

use super::queue::{Queue, QueueArgs, QueueFlags};
use super::stats::QueueChurn;

/// A queue table fails only with channel errors (404, 405, 406).
type Result<T> = std::result::Result<T, ChannelError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareOk {
    pub id: QueueId,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// A queue that was removed from its shard: what the deleter still has to do.
pub struct RemovedQueue {
    pub vhost: String,
    pub name: String,
    pub message_count: u32,
    /// (channel, consumer tag) of the deleting connection's consumers, not yet told.
    pub own_cancels: Vec<(u16, Arc<str>)>,
}

impl RemovedQueue {
    /// The routing change that drops the queue's bindings on every shard.
    pub fn routes_op(&self) -> crate::broker::routing::MetaOp {
        crate::broker::routing::MetaOp::QueueDeleted { vhost: self.vhost.clone(), queue: self.name.clone() }
    }
}

pub struct QueueTable {
    shard: usize,
    next_serial: u64,
    /// vhost → name → id; nested so lookups borrow `&str` without allocating.
    by_name: HashMap<Arc<str>, HashMap<Arc<str>, QueueId>>,
    queues: HashMap<QueueId, Queue>,
    /// Queues declared, created and deleted here.
    pub churn: QueueChurn,
}

pub fn not_found(vhost: &str, name: &str) -> ChannelError {
    ChannelError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}

pub fn locked(vhost: &str, name: &str) -> ChannelError {
    ChannelError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be \
         originally declared on another connection or the exclusive property value does not match \
         that of the original declaration."
    ))
}

fn describe(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".into(),
        Some(FieldValue::LongStr(b)) => format!("'{}'", String::from_utf8_lossy(b)),
        Some(v) => match v.as_i128() {
            Some(n) => format!("'{n}'"),
            None => format!("'{v:?}'"),
        },
    }
}

impl QueueTable {
    pub fn new(shard: usize) -> Self {
        Self { shard, next_serial: 1, by_name: HashMap::new(), queues: HashMap::new(), churn: QueueChurn::default() }
    }

    pub fn lookup(&self, vhost: &str, name: &str) -> Option<QueueId> {
        self.by_name.get(vhost)?.get(name).copied()
    }

    fn named(&self, vhost: &str, name: &str) -> Option<(QueueId, &Queue)> {
        let id = self.lookup(vhost, name)?;
        Some((id, self.queues.get(&id)?))
    }

    pub fn get(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id)
    }

    pub fn get_mut(&mut self, id: QueueId) -> Option<&mut Queue> {
        self.queues.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Queue> {
        self.queues.values_mut()
    }

    /// Finds a queue a connection may use: 404 if missing, 405 if another connection's exclusive queue.
    pub fn find(&self, vhost: &str, name: &str, conn: ConnId) -> Result<QueueId> {
        let (id, q) = self.named(vhost, name).ok_or_else(|| not_found(vhost, name))?;
        if q.owner.is_some_and(|o| o != conn) {
            return Err(locked(vhost, name));
        }
        Ok(id)
    }

    pub fn declare(
        &mut self,
        vhost: &str,
        name: &str,
        flags: QueueFlags,
        passive: bool,
        conn: ConnId,
    ) -> Result<DeclareOk> {
        // Arguments are checked first, as RabbitMQ's channel does (a passive declare has none).
        let args = if passive || flags.arguments.is_empty() {
            QueueArgs::default()
        } else {
            QueueArgs::parse(&flags, &format!("queue '{name}' in vhost '{vhost}'"))?
        };
        if let Some((id, q)) = self.named(vhost, name) {
            // A passive declare only needs access; a declare must also match the exclusive flag,
            // even on the owning connection (RabbitMQ's strict check_exclusive_access: 405, not 406).
            let owner_ok =
                if passive { q.owner.is_none_or(|o| o == conn) } else { q.owner == flags.exclusive.then_some(conn) };
            if !owner_ok {
                return Err(locked(vhost, name));
            }
            if !passive {
                Self::check_equivalent(q, &flags)?;
            }
            let ok = DeclareOk { id, message_count: q.message_count(), consumer_count: q.consumer_count() };
            self.churn.declared += u64::from(!passive);
            // A declare counts as use (`x-expires`).
            if let Some(q) = self.queues.get_mut(&id) {
                q.touch();
            }
            return Ok(ok);
        }
        if passive {
            return Err(not_found(vhost, name));
        }
        let id = make_id(self.shard, self.next_serial);
        self.next_serial += 1;
        let owner = flags.exclusive.then_some(conn);
        log::debug!("queue '{name}' in vhost '{vhost}' created on shard {}", self.shard);
        let (vhost, name): (Arc<str>, Arc<str>) = (vhost.into(), name.into());
        self.by_name.entry(vhost.clone()).or_default().insert(name.clone(), id);
        self.queues.insert(id, Queue::new(id, vhost, name, flags, args, owner));
        self.churn.declared += 1;
        self.churn.created += 1;
        Ok(DeclareOk { id, message_count: 0, consumer_count: 0 })
    }

    fn check_equivalent(q: &Queue, flags: &QueueFlags) -> Result<()> {
        let (vhost, name) = (&q.vhost, &q.name);
        let inequivalent = |arg: &dyn std::fmt::Display, received: String, current: String| {
            ChannelError::precondition(format!(
                "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost}': received {received} but current is {current}"
            ))
        };
        let bools =
            [("durable", flags.durable, q.flags.durable), ("auto_delete", flags.auto_delete, q.flags.auto_delete)];
        for (arg, received, current) in bools {
            if received != current {
                return Err(inequivalent(&arg, format!("'{received}'"), format!("'{current}'")));
            }
        }
        let keys = flags.arguments.0.iter().chain(q.flags.arguments.0.iter()).map(|(k, _)| k);
        for key in keys.filter(|k| k.starts_with(b"x-")) {
            let (mut received, mut current) = (flags.arguments.get(key), q.flags.arguments.get(key));
            // No queue type is the classic type (RabbitMQ's equivalence check says the same).
            let classic = FieldValue::str("classic");
            if key.as_bytes() == b"x-queue-type" {
                received = received.or(Some(&classic));
                current = current.or(Some(&classic));
            }
            let same = match (received, current) {
                (Some(a), Some(b)) => a == b || (a.as_i128().is_some() && a.as_i128() == b.as_i128()),
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Err(inequivalent(key, describe(received), describe(current)));
            }
        }
        Ok(())
    }

    /// Removes a queue, returning it (its ready count answers queue.delete).
    pub fn remove(&mut self, id: QueueId) -> Option<Queue> {
        let q = self.queues.remove(&id)?;
        self.churn.deleted += 1;
        self.churn.deleted_deliveries += q.stats.deliver_get();
        if let Some(names) = self.by_name.get_mut(&q.vhost) {
            names.remove(&q.name);
        }
        Some(q)
    }

    /// queue.delete's checks: if-unused (no consumers) and if-empty (no ready messages).
    pub fn check_delete(&self, id: QueueId, if_unused: bool, if_empty: bool) -> Result<()> {
        // A queue that is gone has nothing to check: deleting it succeeds, as in RabbitMQ 3.x.
        let Some(q) = self.queues.get(&id) else { return Ok(()) };
        if if_unused && q.consumer_count() > 0 {
            return Err(ChannelError::precondition(format!("queue '{}' in vhost '{}' in use", q.name, q.vhost)));
        }
        if if_empty && q.message_count() > 0 {
            return Err(ChannelError::precondition(format!("queue '{}' in vhost '{}' is not empty", q.name, q.vhost)));
        }
        Ok(())
    }

    /// The exclusive queues of a connection, to delete when it closes.
    pub fn owned_by(&self, conn: ConnId) -> Vec<QueueId> {
        self.queues.values().filter(|q| q.owner == Some(conn)).map(|q| q.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::FieldTable;

    fn flags(durable: bool) -> QueueFlags {
        QueueFlags { durable, exclusive: false, auto_delete: false, arguments: FieldTable::default() }
    }

    #[test]
    fn redeclare_is_idempotent_and_inequivalent_is_406() {
        let mut t = QueueTable::new(0);
        let a = t.declare("/", "q", flags(true), false, 1).unwrap();
        assert_eq!(t.declare("/", "q", flags(true), false, 2).unwrap(), a);
        let e = t.declare("/", "q", flags(false), false, 1).unwrap_err();
        assert_eq!(e.reply_code(), 406);
        assert!(e.text().contains("inequivalent arg 'durable'"), "{e}");
        assert_eq!(t.declare("/", "q", flags(false), true, 1).unwrap(), a);
        assert_eq!(t.declare("/", "missing", flags(false), true, 1).unwrap_err().reply_code(), 404);
    }

    #[test]
    fn inequivalent_x_argument_is_406_and_integer_widths_compare_equal() {
        let mut t = QueueTable::new(0);
        let mut f = flags(false);
        f.arguments.insert("x-max-length", FieldValue::I32(10));
        t.declare("/", "q", f.clone(), false, 1).unwrap();
        let mut g = flags(false);
        g.arguments.insert("x-max-length", FieldValue::I64(10));
        assert!(t.declare("/", "q", g, false, 1).is_ok());
        assert_eq!(t.declare("/", "q", flags(false), false, 1).unwrap_err().reply_code(), 406);
        // No x-queue-type is x-queue-type classic.
        let mut c = flags(false);
        c.arguments.insert("x-queue-type", FieldValue::str("classic"));
        t.declare("/", "plain", flags(false), false, 1).unwrap();
        assert!(t.declare("/", "plain", c, false, 1).is_ok());
    }

    #[test]
    fn exclusive_queue_is_locked_to_its_connection() {
        let mut t = QueueTable::new(0);
        let mut f = flags(false);
        f.exclusive = true;
        t.declare("/", "x", f.clone(), false, 7).unwrap();
        assert_eq!(t.declare("/", "x", f, false, 8).unwrap_err().reply_code(), 405);
        assert_eq!(t.find("/", "x", 8).unwrap_err().reply_code(), 405);
        assert_eq!(t.owned_by(7).len(), 1);
    }

    // Regression: redeclaring with another exclusive flag was 406 (as an inequivalent arg); RabbitMQ
    // answers 405 RESOURCE_LOCKED, even on the owning connection, and aio-pika's tests expect it.
    #[test]
    fn exclusive_flag_mismatch_is_405_even_for_the_owner() {
        let mut t = QueueTable::new(0);
        let mut f = flags(false);
        f.exclusive = true;
        t.declare("/", "x", f.clone(), false, 7).unwrap();
        assert_eq!(t.declare("/", "x", flags(false), false, 7).unwrap_err().reply_code(), 405);
        assert!(t.declare("/", "x", flags(false), true, 7).is_ok(), "a passive declare by the owner is fine");
        t.declare("/", "shared", flags(false), false, 7).unwrap();
        assert_eq!(t.declare("/", "shared", f, false, 7).unwrap_err().reply_code(), 405);
    }
}
