//! `message_stats`: every shard's message counters at once (`AdminOp::Stats`), as one JSON
//! document the management API's sampler keeps: per vhost and per exchange summed over shards
//! (each shard counts its own channels and its own routing table copy), per queue, channel and
//! connection as their owning shard counts them, and each shard's own figures.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::every_shard;
use crate::broker::stats::{ChannelStats, MessageStats};
use crate::shard::Shard;
use crate::shard::admin_ops::AdminOp;

fn named(s: &MessageStats) -> Value {
    Value::Object(s.named().iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>())
}

pub async fn message_stats(shard: &Shard) -> Result<Value, String> {
    let all = every_shard(shard, |done| AdminOp::Stats { done }).await?;
    let mut vhosts: BTreeMap<String, (ChannelStats, u64, u64)> = BTreeMap::new();
    let mut exchanges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let (mut shards, mut channels, mut connections, mut queues) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, s) in all {
        for v in s.vhosts {
            let e = vhosts.entry(v.vhost.to_string()).or_default();
            e.0.add(&v.stats);
            e.1 += v.channels_opened;
            e.2 += v.channels_closed;
        }
        for (vhost, name, i, o) in s.exchanges {
            let e = exchanges.entry((vhost, name)).or_default();
            e.0 += i;
            e.1 += o;
        }
        for (conn, number, stats) in s.channels {
            channels.push(json!({ "connection": conn, "number": number, "stats": named(&stats.msgs) }));
        }
        for (pid, name, recv, send) in s.connections {
            connections.push(json!({ "pid": pid, "name": name, "recv_oct": recv, "send_oct": send }));
        }
        for (vhost, name, stats) in s.queues {
            queues.push(json!({ "vhost": &*vhost, "name": &*name, "stats": named(&stats) }));
        }
        shards.push(json!({
            "shard": k,
            "tid": s.tid,
            "connections_opened": s.conns_opened,
            "connections_closed": s.conns_closed,
            "queues_declared": s.queue_churn.declared,
            "queues_created": s.queue_churn.created,
            "queues_deleted": s.queue_churn.deleted,
            "consumers": s.consumers,
            "publishers": s.publishers,
            "deliveries": s.deliveries,
        }));
    }
    // The default exchange's counts are its channels' (the publish path does not look it up).
    for (v, (stats, _, _)) in &vhosts {
        if stats.default_in > 0 {
            let e = exchanges.entry((v.clone(), String::new())).or_default();
            e.0 += stats.default_in;
            e.1 += stats.default_out;
        }
    }
    let vhosts: Vec<Value> = vhosts
        .into_iter()
        .map(|(v, (stats, opened, closed))| {
            json!({ "vhost": v, "stats": named(&stats.msgs), "channels_opened": opened, "channels_closed": closed })
        })
        .collect();
    let exchanges: Vec<Value> = exchanges
        .into_iter()
        .map(|((vhost, name), (i, o))| json!({ "vhost": vhost, "name": name, "publish_in": i, "publish_out": o }))
        .collect();
    Ok(json!({
        "shards": shards,
        "vhosts": vhosts,
        "exchanges": exchanges,
        "queues": queues,
        "channels": channels,
        "connections": connections,
    }))
}
