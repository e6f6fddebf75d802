//! The `message_stats` (and a connection's byte counters) each object of the management API
//! carries, read from the sampler's last two samples, with RabbitMQ's field names.

use serde_json::{Map, Value};

use super::sampler::{CHANNEL_KEYS, CONNECTION_KEYS, EXCHANGE_KEYS, QUEUE_KEYS, Sampler, Samples};

fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn key_of(v: &Value) -> (String, String) {
    (str_at(v, "vhost").to_string(), str_at(v, "name").to_string())
}

fn insert(v: &mut Value, k: &str, stats: Map<String, Value>) {
    if let Some(o) = v.as_object_mut() {
        o.insert(k.into(), Value::Object(stats));
    }
}

/// Which objects a list holds.
#[derive(Clone, Copy)]
pub enum Kind {
    Queue,
    Exchange,
    Channel,
    Connection,
    Vhost,
}

impl Sampler {
    /// Adds each object's counters and rates to a list of objects of one kind.
    pub fn attach(&self, kind: Kind, items: &mut [Value]) {
        self.read(|s| {
            for v in items.iter_mut() {
                attach_one(s, kind, v);
            }
        })
    }

    /// The overview's `message_stats`: the vhosts `sees` accepts, summed.
    pub fn overview(&self, sees: impl Fn(&str) -> bool) -> Value {
        self.read(|s| {
            let (now, before) = s.vhost_sum(sees);
            Value::Object(s.render(&CHANNEL_KEYS, Some(&now), Some(&before)))
        })
    }
}

fn attach_one(s: &Samples, kind: Kind, v: &mut Value) {
    match kind {
        Kind::Queue => {
            let k = key_of(v);
            insert(v, "message_stats", s.render(&QUEUE_KEYS, s.last.queues.get(&k), s.prev.queues.get(&k)));
        }
        Kind::Exchange => {
            let k = key_of(v);
            let stats = s.render(&EXCHANGE_KEYS, s.last.exchanges.get(&k), s.prev.exchanges.get(&k));
            insert(v, "message_stats", stats);
        }
        Kind::Channel => {
            let k = str_at(v, "name").to_string();
            insert(v, "message_stats", s.render(&CHANNEL_KEYS, s.last.channels.get(&k), s.prev.channels.get(&k)));
        }
        Kind::Vhost => {
            let k = str_at(v, "name").to_string();
            insert(v, "message_stats", s.render(&CHANNEL_KEYS, s.last.vhosts.get(&k), s.prev.vhosts.get(&k)));
        }
        Kind::Connection => {
            let k = str_at(v, "name").to_string();
            let fields = s.render(&CONNECTION_KEYS, s.last.connections.get(&k), s.prev.connections.get(&k));
            if let Some(o) = v.as_object_mut() {
                o.extend(fields);
            }
        }
    }
}
