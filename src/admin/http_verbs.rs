//! Admin verbs the management HTTP API (src/mgmt/) asks for beyond warrenctl's: a login check,
//! queues and exchanges with every field RabbitMQ's API shows (all vhosts at once), a queue declare
//! from a definition, an exchange delete, an unbind, the resource alarm in force, and all of a
//! request's snapshot in one answer.

use std::rc::Rc;

use serde_json::{Value, json};

use super::{change, every_shard, table};
use crate::broker::definitions::{BindingDef, Definitions, QueueDef, json_table};
use crate::broker::routing::MetaOp;
use crate::shard::Shard;
use crate::shard::admin_ops::AdminOp;

/// `authenticate USER PASSWORD LOOPBACK`: the user's tags, the vhosts it may use (with its
/// configure, write and read expressions in each), or an error,
/// checked as the AMQP login checks (password hash, loopback-only users).
pub fn authenticate(shard: &Shard, user: &str, password: &str, loopback: bool) -> Result<Value, String> {
    let access = shard.access.borrow();
    let u = access.login(user, password, "PLAIN", loopback).map_err(|e| e.into_text())?;
    let mut perms: Vec<_> = access.permissions().filter(|((name, _), _)| *name == u.name).collect();
    perms.sort_by(|a, b| a.0.1.cmp(&b.0.1));
    let vhosts: Vec<&str> = perms.iter().map(|((_, v), _)| v.as_str()).collect();
    // Each vhost's configure, write and read expressions, for the API's own checks of writes.
    let regexes: Vec<Value> =
        perms.iter().map(|((_, v), p)| json!([v, p.configure.as_str(), p.write.as_str(), p.read.as_str()])).collect();
    Ok(table(
        &["user", "tags", "vhosts", "permissions"],
        vec![[json!(u.name), json!(u.tags), json!(vhosts), json!(regexes)]],
    ))
}

/// `queue_details`: every queue of every vhost, with its flags and counts.
pub async fn queue_details(shard: &Shard) -> Result<Value, String> {
    let all = every_shard(shard, |done| AdminOp::Queues { done }).await?;
    let mut rows: Vec<[Value; 10]> = all
        .into_iter()
        .flat_map(|(k, qs)| {
            qs.into_iter().map(move |q| {
                [
                    json!(&*q.vhost),
                    json!(&*q.name),
                    json!(q.durable),
                    json!(q.auto_delete),
                    json!(q.exclusive),
                    Value::Object(json_table(&q.arguments)),
                    json!(q.messages_ready),
                    json!(q.messages_unacknowledged),
                    json!(q.consumer_count),
                    json!(k),
                ]
            })
        })
        .collect();
    rows.sort_by_key(|r| format!("{}\u{0}{}", r[0], r[1]));
    let cols = [
        "vhost",
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "shard",
    ];
    Ok(table(&cols, rows))
}

/// `exchange_details`: every exchange of every vhost, with its flags.
pub fn exchange_details(shard: &Shard) -> Value {
    let routes = shard.routes.borrow();
    let mut rows: Vec<[Value; 7]> = routes
        .vhosts()
        .flat_map(|(v, xs)| xs.values().map(move |e| (v, e)))
        .map(|(v, e)| {
            [
                json!(v),
                json!(e.name),
                json!(e.kind.as_str()),
                json!(e.durable),
                json!(e.auto_delete),
                json!(e.internal),
                Value::Object(json_table(&e.arguments)),
            ]
        })
        .collect();
    rows.sort_by_key(|r| format!("{}\u{0}{}", r[0], r[1]));
    table(&["vhost", "name", "type", "durable", "auto_delete", "internal", "arguments"], rows)
}

/// `declare_queue DEFINITION`: declares a queue from a RabbitMQ queue definition (JSON), as a
/// client's queue.declare would; answers whether it was created. An inequivalent existing queue
/// is an error (PRECONDITION_FAILED).
pub async fn declare_queue(shard: &Rc<Shard>, definition: &str) -> Result<Value, String> {
    let def: QueueDef = serde_json::from_str(definition).map_err(|e| format!("bad queue: {e}"))?;
    if !shard.routes.borrow().has_vhost(&def.vhost) {
        return Err(format!("no such vhost '{}'", def.vhost));
    }
    let created = super::declare(shard, &def).await?;
    if created && def.durable {
        shard.durable_queue_declared(def).await.map_err(|e| e.into_text())?;
    }
    Ok(table(&["created"], vec![[json!(created)]]))
}

/// `alarms`: the resource alarm in force (every shard sees the same totals), if any.
pub fn alarms(shard: &Shard) -> Value {
    let rows = shard.alarm.get().map(|reason| [json!(reason)]).into_iter().collect();
    table(&["alarm"], rows)
}

/// `delete_exchange NAME`: as exchange.delete without if-unused.
pub async fn delete_exchange(shard: &Shard, vhost: String, name: String) -> Result<Value, String> {
    if name.is_empty() || name.starts_with("amq.") {
        return Err(format!("ACCESS_REFUSED - operation not permitted on the default exchange or '{name}'"));
    }
    let op = MetaOp::DeleteExchange { vhost, name, if_unused: false };
    change(shard, op).await
}

/// `unbind DEFINITION`: removes the binding a RabbitMQ binding definition (JSON) names.
pub async fn unbind(shard: &Shard, binding: &str) -> Result<Value, String> {
    let def: BindingDef = serde_json::from_str(binding).map_err(|e| format!("bad binding: {e}"))?;
    let defs = Definitions { bindings: vec![def], ..Default::default() };
    for op in defs.routing_ops() {
        if let MetaOp::Bind { vhost, source, dest, key, args } = op {
            change(shard, MetaOp::Unbind { vhost, source, dest, key, args }).await?;
        }
    }
    Ok(super::done())
}

/// `snapshot`: in one answer what most management requests need (vhosts, queue details,
/// connections, channels, mesh counts), so a request costs one admin round trip, not five.
pub async fn snapshot(shard: &Shard) -> Result<Value, String> {
    Ok(json!({
        "vhosts": super::lists::vhosts(shard),
        "queues": queue_details(shard).await?,
        "connections": super::lists::connections(shard).await?,
        "channels": super::lists::channels(shard).await?,
        "mesh": super::lists::shard_messages(shard).await?,
    }))
}
