//! Dead-lettering on the queue's shard: a message a queue dropped is routed through this shard's
//! routing table copy from the queue's dead-letter exchange, like a publish, and crosses the mesh
//! to the shards of its target queues. A missing exchange drops it silently (RabbitMQ), and so
//! does a target that would close an automatic cycle.

use std::sync::Arc;

use crate::broker::dead_letter::dead_lettered;
use crate::broker::queue::{DeadLetter, Queue};
use crate::clock;
use crate::protocol::properties::BasicProperties;
use crate::protocol::shortstr::ShortStr;

use super::Shard;
use super::msg::{ShardMsg, Targets};
use super::placement::{by_shard, shard_of};

/// Where a queue's dead letters go: its name, vhost and dead-letter exchange and key.
pub(super) struct DeadLetterRoute {
    pub vhost: Arc<str>,
    pub queue: Arc<str>,
    pub exchange: String,
    pub routing_key: Option<ShortStr>,
}

/// What a queue dead-lettered, with where it goes (nothing if it dropped nothing).
pub(super) fn take_dead(q: &mut Queue) -> Option<(DeadLetterRoute, Vec<DeadLetter>)> {
    let dead = q.take_dead();
    if dead.is_empty() {
        return None;
    }
    let route = DeadLetterRoute {
        vhost: q.vhost.clone(),
        queue: q.name.clone(),
        exchange: q.args.dead_letter_exchange.clone()?,
        routing_key: q.args.dead_letter_routing_key.clone(),
    };
    Some((route, dead))
}

impl Shard {
    /// Publishes dead letters to their exchange's queues, on whichever shard each lives.
    pub(super) fn route_dead(&self, r: DeadLetterRoute, dead: Vec<DeadLetter>) {
        let now = clock::unix_secs();
        let n = self.shards();
        for d in dead {
            let Some(dl) = dead_lettered(&d.msg, &r.queue, d.reason, &r.exchange, r.routing_key.as_ref(), now) else {
                continue;
            };
            let mut targets = Vec::new();
            let props = dl.msg.properties.clone();
            let headers = move || BasicProperties::decode(&props).ok().and_then(|p| p.headers);
            let keys = dl.keys.iter().map(Vec::as_slice);
            if self.routes.borrow().route_keys(&r.vhost, &r.exchange, keys, &headers, &mut targets).is_err() {
                log::debug!("dead letter from queue '{}' dropped: no exchange '{}'", r.queue, r.exchange);
                continue;
            }
            targets.retain(|t| !dl.is_cycle(d.reason, t));
            let by_shard = by_shard(targets, |t| shard_of(&r.vhost, t, n));
            let msg = Arc::new(dl.msg);
            for (dest, queues) in by_shard {
                let publish = ShardMsg::Publish {
                    vhost: r.vhost.clone(),
                    queues: Targets::Named(queues),
                    msg: msg.clone(),
                    from: 0,
                    reply: None,
                };
                self.send(dest, publish);
            }
        }
    }
}
