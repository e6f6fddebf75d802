//! rabbitmqctl's limit verbs: set_vhost_limits, clear_vhost_limits, list_vhost_limits,
//! set_user_limits, clear_user_limits, list_user_limits. Changes go through the coordinator like
//! every definition (a vhost's limits as a routing-table change, a user's inside the user), so
//! every shard enforces them before the command returns; they are saved in the definitions file.

use serde_json::{Value, json};

use super::{change, table};
use crate::broker::access::AccessOp;
use crate::broker::limits::{Limits, USER_LIMITS, VHOST_LIMITS};
use crate::broker::routing::MetaOp;
use crate::shard::Shard;

pub async fn set_vhost_limits(shard: &Shard, vhost: String, definition: &str) -> Result<Value, String> {
    let limits = Limits::parse(definition, &VHOST_LIMITS)?;
    if !shard.routes.borrow().has_vhost(&vhost) {
        return Err(format!("no such vhost '{vhost}'"));
    }
    // As RabbitMQ's "vhost-limits" parameter, the object replaces the vhost's limits.
    change(shard, MetaOp::SetVhostLimits { vhost, limits }).await
}

pub async fn clear_vhost_limits(shard: &Shard, vhost: String) -> Result<Value, String> {
    if !shard.routes.borrow().has_vhost(&vhost) {
        return Err(format!("no such vhost '{vhost}'"));
    }
    change(shard, MetaOp::SetVhostLimits { vhost, limits: Limits::default() }).await
}

/// Every vhost that has limits (rabbitmqctl list_vhost_limits --global).
pub fn list_vhost_limits(shard: &Shard) -> Value {
    let routes = shard.routes.borrow();
    let mut rows: Vec<[Value; 2]> =
        routes.vhost_limits().map(|(v, l)| [json!(v), Value::Object(l.to_json())]).collect();
    rows.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    table(&["vhost", "limits"], rows)
}

/// Merges `definition` into the user's limits (the others are kept, as rabbitmqctl does).
pub async fn set_user_limits(shard: &Shard, user: &str, definition: &str) -> Result<Value, String> {
    let limits = Limits::parse(definition, &USER_LIMITS)?;
    let mut u = shard.access.borrow().user(user).cloned().ok_or_else(|| format!("no such user '{user}'"))?;
    u.limits.merge(limits);
    change(shard, MetaOp::Access(AccessOp::PutUser(u))).await
}

/// Clears one of the user's limits by name, or all of them ("all").
pub async fn clear_user_limits(shard: &Shard, user: &str, limit: &str) -> Result<Value, String> {
    let mut u = shard.access.borrow().user(user).cloned().ok_or_else(|| format!("no such user '{user}'"))?;
    if limit == "all" {
        u.limits = Limits::default();
    } else if !USER_LIMITS.contains(&limit) {
        return Err(format!("unknown limit '{limit}' (max-connections, max-channels or all)"));
    } else {
        u.limits.clear(limit);
    }
    change(shard, MetaOp::Access(AccessOp::PutUser(u))).await
}

/// The users that have limits, or `user`'s (an error if there is no such user).
pub fn list_user_limits(shard: &Shard, user: Option<&str>) -> Result<Value, String> {
    let access = shard.access.borrow();
    if let Some(name) = user
        && access.user(name).is_none()
    {
        return Err(format!("no such user '{name}'"));
    }
    let mut rows: Vec<[Value; 2]> = access
        .users()
        .filter(|u| user.is_none_or(|name| u.name == name) && !u.limits.is_empty())
        .map(|u| [json!(u.name), Value::Object(u.limits.to_json())])
        .collect();
    rows.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    Ok(table(&["user", "limits"], rows))
}
