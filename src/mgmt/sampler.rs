//! The message-rate sampler: every `collect_statistics_interval` it asks the shards for their
//! counters (`message_stats` on the admin socket) and keeps the last two samples. Requests read
//! them here, so a busy API costs the shards one sample per interval, however many requests come;
//! a rate is the change between the two samples over the time between them (RabbitMQ's
//! `*_details.rate`, per second).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::admin_client::Admin;

type Counters = Map<String, Value>;

/// One sample, indexed for lookups by object.
#[derive(Default)]
pub struct Sample {
    pub at: Option<Instant>,
    pub vhosts: HashMap<String, Counters>,
    pub queues: HashMap<(String, String), Counters>,
    pub exchanges: HashMap<(String, String), Counters>,
    /// By channel name (`CONNECTION (NUMBER)`, as /api/channels names them).
    pub channels: HashMap<String, Counters>,
    /// By connection name.
    pub connections: HashMap<String, Counters>,
    /// Each shard's own figures, in shard order.
    pub shards: Vec<Counters>,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn obj(v: &Value) -> Counters {
    v.as_object().cloned().unwrap_or_default()
}

fn list<'a>(doc: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    doc.get(k).and_then(Value::as_array).into_iter().flatten()
}

impl Sample {
    /// Indexes the admin endpoint's `message_stats` document.
    pub fn from_doc(doc: &Value, at: Instant) -> Self {
        let mut out = Sample { at: Some(at), ..Default::default() };
        for v in list(doc, "vhosts") {
            let mut c = obj(&v["stats"]);
            c.insert("channels_opened".into(), json!(u(v, "channels_opened")));
            c.insert("channels_closed".into(), json!(u(v, "channels_closed")));
            out.vhosts.insert(s(v, "vhost"), c);
        }
        for q in list(doc, "queues") {
            out.queues.insert((s(q, "vhost"), s(q, "name")), obj(&q["stats"]));
        }
        for x in list(doc, "exchanges") {
            out.exchanges.insert((s(x, "vhost"), s(x, "name")), obj(x));
        }
        let mut conn_names = HashMap::new();
        for c in list(doc, "connections") {
            conn_names.insert(u(c, "pid"), s(c, "name"));
            out.connections.insert(s(c, "name"), obj(c));
        }
        for c in list(doc, "channels") {
            let conn = conn_names.get(&u(c, "connection")).map(String::as_str).unwrap_or_default();
            out.channels.insert(format!("{conn} ({})", u(c, "number")), obj(&c["stats"]));
        }
        out.shards = list(doc, "shards").map(obj).collect();
        out
    }
}

/// The last two samples.
#[derive(Default)]
pub struct Samples {
    pub last: Sample,
    pub prev: Sample,
}

impl Samples {
    /// Seconds between the two samples, if there are two.
    fn span(&self) -> Option<f64> {
        let secs = self.last.at?.checked_duration_since(self.prev.at?)?.as_secs_f64();
        (secs > 0.0).then_some(secs)
    }

    /// `{key: N, key_details: {rate: R}}` for `keys` of an object's counters now and before
    /// (None: the object is new since the previous sample, its rates are 0).
    pub fn render(&self, keys: &[&str], now: Option<&Counters>, before: Option<&Counters>) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(now) = now else { return out };
        let span = self.span();
        for k in keys {
            let n = now.get(*k).and_then(Value::as_u64).unwrap_or(0);
            let was = before.and_then(|b| b.get(*k)).and_then(Value::as_u64);
            let rate = match (span, was) {
                (Some(secs), Some(was)) => n.saturating_sub(was) as f64 / secs,
                _ => 0.0,
            };
            out.insert(k.to_string(), json!(n));
            out.insert(format!("{k}_details"), json!({ "rate": (rate * 10.0).round() / 10.0 }));
        }
        out
    }

    /// Counters summed over the vhosts `pick` accepts, now and before.
    pub fn vhost_sum(&self, pick: impl Fn(&str) -> bool) -> (Counters, Counters) {
        let sum = |s: &Sample| {
            let mut total = Counters::new();
            for (_, c) in s.vhosts.iter().filter(|(v, _)| pick(v)) {
                for (k, v) in c {
                    let n = total.get(k).and_then(Value::as_u64).unwrap_or(0) + v.as_u64().unwrap_or(0);
                    total.insert(k.clone(), json!(n));
                }
            }
            total
        };
        (sum(&self.last), sum(&self.prev))
    }
}

/// Counter names of a channel's, a vhost's and the overview's `message_stats` (RabbitMQ's).
pub const CHANNEL_KEYS: [&str; 12] = [
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "deliver_get",
    "redeliver",
    "ack",
];
/// A queue's.
pub const QUEUE_KEYS: [&str; 9] =
    ["publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "deliver_get", "redeliver", "ack"];
/// An exchange's.
pub const EXCHANGE_KEYS: [&str; 2] = ["publish_in", "publish_out"];
/// A connection's (beside, not in, `message_stats`).
pub const CONNECTION_KEYS: [&str; 2] = ["recv_oct", "send_oct"];

/// The samples, shared by the sampling task and the requests.
#[derive(Clone, Default)]
pub struct Sampler {
    samples: Arc<RwLock<Samples>>,
}

impl Sampler {
    /// Runs `f` on the samples.
    pub fn read<R>(&self, f: impl FnOnce(&Samples) -> R) -> R {
        match self.samples.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Takes one sample now.
    pub async fn sample(&self, admin: &Admin) {
        match admin.ask("message_stats", vec![], "/").await {
            Ok(doc) => {
                let next = Sample::from_doc(&doc, Instant::now());
                let mut s = match self.samples.write() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                s.prev = std::mem::replace(&mut s.last, next);
            }
            Err(e) => log::debug!("message stats sample: {e:?}"),
        }
    }

    /// Samples every `interval` until the process exits.
    pub async fn run(self, admin: Admin, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sample(&admin).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_change_over_the_span_between_samples() {
        let t0 = Instant::now();
        let doc = |n: u64| json!({ "queues": [{ "vhost": "/", "name": "q", "stats": { "publish": n } }] });
        let samples = Samples {
            prev: Sample::from_doc(&doc(100), t0),
            last: Sample::from_doc(&doc(600), t0 + Duration::from_secs(5)),
        };
        let key = ("/".to_string(), "q".to_string());
        let r = samples.render(&["publish"], samples.last.queues.get(&key), samples.prev.queues.get(&key));
        assert_eq!(r["publish"], json!(600));
        assert_eq!(r["publish_details"], json!({ "rate": 100.0 }));
        // A queue new since the previous sample has its count and a rate of 0.
        let r = samples.render(&["publish"], samples.last.queues.get(&key), None);
        assert_eq!(r["publish_details"], json!({ "rate": 0.0 }));
    }
}
