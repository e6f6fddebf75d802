//! The verbs that change things: connections closed, queues purged or deleted, vhosts, users and
//! permissions added, changed or removed. Changes of users, vhosts and permissions go through
//! the coordinator like a client's (`Shard::change_routes`).

use std::rc::Rc;

use serde_json::{Value, json};

use super::{change, done, every_shard, table};
use crate::broker::access::{AccessOp, PasswordHash, User};
use crate::broker::policy::{Policy, PolicyDef};
use crate::broker::routing::MetaOp;
use crate::shard::Shard;
use crate::shard::admin_ops::AdminOp;
use crate::shard::placement::shard_of;
use crate::shard::queue_ops::QueueOp;

pub async fn close_connection(shard: &Shard, which: String, why: String) -> Result<Value, String> {
    let wanted = which.clone();
    let closed =
        every_shard(shard, |done| AdminOp::CloseConnections { which: wanted.clone(), why: why.clone(), done }).await?;
    let closed: Vec<_> = closed.into_iter().flat_map(|(_, ids)| ids).collect();
    if closed.is_empty() {
        return Err(format!("no connection '{which}'"));
    }
    Ok(done())
}

/// purge_queue (`purge`) or delete_queue: answers how many messages it held.
pub async fn purge_or_delete_queue(shard: &Shard, vhost: String, name: String, purge: bool) -> Result<Value, String> {
    let owner = shard_of(&vhost, &name, shard.shards());
    let (v, n) = (vhost.clone(), name.clone());
    let op = |done| {
        if purge {
            QueueOp::AdminPurge { vhost: v, name: n, done }
        } else {
            QueueOp::AdminDelete { vhost: v, name: n, done }
        }
    };
    let count = shard
        .ask_queue(owner, op)
        .await
        .map_err(|e| e.into_text())?
        .ok_or_else(|| format!("no queue '{name}' in vhost '{vhost}'"))?;
    Ok(table(&["messages"], vec![[json!(count)]]))
}

pub async fn add_vhost(shard: &Shard, vhost: String) -> Result<Value, String> {
    if shard.routes.borrow().has_vhost(&vhost) {
        return Err(format!("vhost '{vhost}' already exists"));
    }
    change(shard, MetaOp::AddVhost { vhost }).await
}

pub async fn delete_vhost(shard: &Shard, vhost: String) -> Result<Value, String> {
    if !shard.routes.borrow().has_vhost(&vhost) {
        return Err(format!("no such vhost '{vhost}'"));
    }
    change(shard, MetaOp::DeleteVhost { vhost }).await
}

/// add_user (`adding`) or change_password: a user gets a new salted hash, keeping its tags.
pub async fn put_user(shard: &Rc<Shard>, name: String, password: String, adding: bool) -> Result<Value, String> {
    let existing = shard.access.borrow().user(&name).cloned();
    let (tags, limits) = match (existing, adding) {
        (Some(_), true) => return Err(format!("user '{name}' already exists")),
        (None, false) => return Err(format!("no such user '{name}'")),
        (u, _) => u.map(|u| (u.tags, u.limits)).unwrap_or_default(),
    };
    let salt = (shard.random() as u32).to_be_bytes();
    let user = User { name, hash: PasswordHash::sha256(salt, &password), tags, limits };
    change(shard, MetaOp::Access(AccessOp::PutUser(user))).await
}

pub async fn set_user_tags(shard: &Shard, name: String, tags: Vec<String>) -> Result<Value, String> {
    let mut user = shard.access.borrow().user(&name).cloned().ok_or_else(|| format!("no such user '{name}'"))?;
    user.tags = tags;
    change(shard, MetaOp::Access(AccessOp::PutUser(user))).await
}

pub async fn delete_user(shard: &Shard, user: String) -> Result<Value, String> {
    change(shard, MetaOp::Access(AccessOp::DeleteUser(user))).await
}

pub async fn set_permissions(
    shard: &Shard,
    vhost: String,
    user: String,
    configure: String,
    write: String,
    read: String,
) -> Result<Value, String> {
    if !shard.routes.borrow().has_vhost(&vhost) {
        return Err(format!("no such vhost '{vhost}'"));
    }
    change(shard, MetaOp::Access(AccessOp::SetPermissions { user, vhost, configure, write, read })).await
}

/// rabbitmqctl set_policy: checked where it is made (the coordinator), then on every shard.
pub async fn set_policy(
    shard: &Shard,
    vhost: String,
    name: String,
    pattern: String,
    definition: String,
    priority: i64,
    apply_to: String,
) -> Result<Value, String> {
    let definition = match serde_json::from_str(&definition) {
        Ok(Value::Object(map)) => map,
        _ => return Err(format!("Validation failed\n\n'{definition}' is not a JSON object")),
    };
    let def = PolicyDef { vhost, name, pattern, apply_to, definition, priority };
    // Checked here first, for the message; the coordinator checks again as it applies it.
    Policy::new(def.clone())?;
    change(shard, MetaOp::SetPolicy(Box::new(def))).await
}

pub async fn clear_policy(shard: &Shard, vhost: String, name: String) -> Result<Value, String> {
    change(shard, MetaOp::ClearPolicy { vhost, name }).await
}

pub async fn clear_permissions(shard: &Shard, vhost: String, user: String) -> Result<Value, String> {
    change(shard, MetaOp::Access(AccessOp::ClearPermissions { user, vhost })).await
}
