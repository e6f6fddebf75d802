//! The verbs that list: vhosts, users, permissions, exchanges, bindings, queues, consumers,
//! connections, channels and mesh message counts, each a table sorted as rabbitmqctl sorts it.

use serde_json::{Value, json};

use super::{every_shard, table, vhost_queues};
use crate::broker::definitions::json_table;
use crate::broker::routing::Dest;
use crate::shard::Shard;
use crate::shard::admin_ops::{AdminOp, ConsumerInfo};

pub fn vhosts(shard: &Shard) -> Value {
    let mut names: Vec<String> = shard.routes.borrow().vhosts().map(|(v, _)| v.clone()).collect();
    names.sort();
    table(&["name"], names.into_iter().map(|n| [json!(n)]).collect())
}

pub fn users(shard: &Shard) -> Value {
    let mut rows: Vec<[Value; 2]> = shard.access.borrow().users().map(|u| [json!(u.name), json!(u.tags)]).collect();
    rows.sort_by_key(|r| r[0].to_string());
    table(&["user", "tags"], rows)
}

pub fn permissions(shard: &Shard, vhost: &str) -> Value {
    let mut rows: Vec<[Value; 4]> = shard
        .access
        .borrow()
        .permissions()
        .filter(|((_, v), _)| *v == vhost)
        .map(|((u, _), p)| [json!(u), json!(p.configure.as_str()), json!(p.write.as_str()), json!(p.read.as_str())])
        .collect();
    rows.sort_by_key(|r| r[0].to_string());
    table(&["user", "configure", "write", "read"], rows)
}

pub fn exchanges(shard: &Shard, vhost: &str) -> Value {
    let routes = shard.routes.borrow();
    let mut rows: Vec<[Value; 3]> = routes
        .vhosts()
        .filter(|(v, _)| **v == vhost)
        .flat_map(|(_, xs)| xs.values())
        .map(|e| [json!(e.name), json!(e.kind.as_str()), json!(e.durable)])
        .collect();
    rows.sort_by_key(|r| r[0].to_string());
    table(&["name", "type", "durable"], rows)
}

/// rabbitmqctl list_policies' columns.
pub fn policies(shard: &Shard, vhost: &str) -> Value {
    let routes = shard.routes.borrow();
    let mut rows: Vec<[Value; 6]> = routes
        .policies
        .iter()
        .filter(|p| p.def.vhost == vhost)
        .map(|p| {
            let d = &p.def;
            [
                json!(d.vhost),
                json!(d.name),
                json!(d.pattern),
                json!(d.apply_to),
                Value::Object(d.definition.clone()),
                json!(d.priority),
            ]
        })
        .collect();
    rows.sort_by_key(|r| r[1].to_string());
    table(&["vhost", "name", "pattern", "apply-to", "definition", "priority"], rows)
}

pub fn bindings(shard: &Shard, vhost: &str) -> Value {
    let routes = shard.routes.borrow();
    let mut rows = Vec::new();
    for (_, xs) in routes.vhosts().filter(|(v, _)| **v == vhost) {
        for e in xs.values() {
            for b in &e.bindings {
                let (dest, kind) = match &b.dest {
                    Dest::Queue(q) => (q, "queue"),
                    Dest::Exchange(x) => (x, "exchange"),
                };
                rows.push([
                    json!(e.name),
                    json!("exchange"),
                    json!(&**dest),
                    json!(kind),
                    json!(b.key),
                    Value::Object(json_table(&b.args)),
                ]);
            }
        }
    }
    rows.sort_by_key(|r| format!("{}\u{0}{}\u{0}{}", r[0], r[2], r[4]));
    let cols = ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"];
    table(&cols, rows)
}

pub async fn queues(shard: &Shard, vhost: String) -> Result<Value, String> {
    let mut rows = vhost_queues(shard, vhost, |q, shard| {
        vec![[
            json!(&*q.name),
            json!(q.messages_ready),
            json!(q.messages_unacknowledged),
            json!(q.consumer_count),
            json!(q.durable),
            json!(shard),
        ]]
    })
    .await?;
    rows.sort_by_key(|r| r[0].to_string());
    let cols = ["name", "messages_ready", "messages_unacknowledged", "consumers", "durable", "shard"];
    Ok(table(&cols, rows))
}

pub async fn consumers(shard: &Shard, vhost: String) -> Result<Value, String> {
    let mut rows = vhost_queues(shard, vhost, |q, _| {
        let row = |c: &ConsumerInfo| {
            [
                json!(&*q.name),
                json!(c.conn),
                json!(c.channel),
                json!(&*c.tag),
                json!(!c.no_ack),
                json!(c.prefetch),
                json!(c.exclusive),
            ]
        };
        q.consumers.iter().map(row).collect()
    })
    .await?;
    rows.sort_by_key(|r| format!("{}\u{0}{}", r[0], r[3]));
    let cols = ["queue_name", "connection", "channel", "consumer_tag", "ack_required", "prefetch_count", "exclusive"];
    Ok(table(&cols, rows))
}

pub async fn connections(shard: &Shard) -> Result<Value, String> {
    let all = every_shard(shard, |done| AdminOp::Connections { done }).await?;
    let mut rows: Vec<[Value; 8]> = all
        .into_iter()
        .flat_map(|(k, conns)| {
            conns.into_iter().map(move |i| {
                [
                    json!(i.id),
                    json!(i.name),
                    json!(i.user),
                    json!(&*i.vhost),
                    json!(k),
                    json!(i.channels),
                    json!(i.state),
                    json!(i.buffer_bytes),
                ]
            })
        })
        .collect();
    rows.sort_by_key(|r| r[0].as_u64());
    Ok(table(&["pid", "name", "user", "vhost", "shard", "channels", "state", "buffer_bytes"], rows))
}

pub async fn channels(shard: &Shard) -> Result<Value, String> {
    let all = every_shard(shard, |done| AdminOp::Channels { done }).await?;
    let mut rows = Vec::new();
    for (i, channels) in all.into_iter().flat_map(|(_, conns)| conns) {
        for ch in channels {
            rows.push([
                json!(i.id),
                json!(format!("{} ({})", i.name, ch.number)),
                json!(ch.number),
                json!(i.user),
                json!(&*i.vhost),
                json!(ch.consumers),
                json!(ch.unacked),
                json!(ch.prefetch),
                json!(ch.confirm),
            ]);
        }
    }
    rows.sort_by_key(|r| (r[0].as_u64(), r[2].as_u64()));
    let cols = [
        "connection",
        "name",
        "number",
        "user",
        "vhost",
        "consumer_count",
        "messages_unacknowledged",
        "prefetch_count",
        "confirm",
    ];
    Ok(table(&cols, rows))
}

pub async fn shard_messages(shard: &Shard) -> Result<Value, String> {
    let all = every_shard(shard, |done| AdminOp::Handled { done }).await?;
    let rows: Vec<[Value; 3]> = all
        .into_iter()
        .flat_map(|(k, kinds)| kinds.into_iter().map(move |(kind, n)| [json!(k), json!(kind), json!(n)]))
        .collect();
    Ok(table(&["shard", "kind", "handled"], rows))
}
