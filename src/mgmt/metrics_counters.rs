//! The Prometheus families read from the message-counter sampler: rabbitmq_prometheus's global
//! counters (`rabbitmq_global_*`, from rabbit_global_counters), churn counters
//! (`rabbitmq_connections_opened_total`...), the core channel, connection and queue counters,
//! aggregated or per object with rabbitmq_prometheus's labels, and Warren's per-shard deliveries
//! and CPU seconds.

use serde_json::{Map, Value};

use super::metrics::{Family, label};
use super::sampler::Samples;

type Counters = Map<String, Value>;

fn n(c: &Counters, k: &str) -> u64 {
    c.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>, k: &str) -> u64 {
    all.into_iter().map(|c| n(c, k)).sum()
}

const AMQP: &str = "{protocol=\"amqp091\"}";
const AMQP_CLASSIC: &str = "{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"}";

/// rabbitmq_global_*, the churn counters and Warren's per-shard counters.
pub fn global(out: &mut Vec<Family>, s: &Samples) {
    let vhosts = || s.last.vhosts.values();
    let shards = &s.last.shards;
    let total = |k: &str| sum(vhosts(), k);
    let routed = total("publish").saturating_sub(total("drop_unroutable") + total("return_unroutable"));
    let protocol: [(&str, &str, u64); 6] = [
        ("messages_received_total", "Total number of messages received from publishers", total("publish")),
        (
            "messages_received_confirm_total",
            "Total number of messages received from publishers expecting confirmations",
            total("publish_confirm"),
        ),
        ("messages_routed_total", "Total number of messages routed to queues or streams", routed),
        (
            "messages_unroutable_dropped_total",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            total("drop_unroutable"),
        ),
        (
            "messages_unroutable_returned_total",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            total("return_unroutable"),
        ),
        ("messages_confirmed_total", "Total number of messages confirmed to publishers", total("confirm")),
    ];
    for (name, help, v) in protocol {
        out.push(Family::one(&format!("rabbitmq_global_{name}"), "counter", help, AMQP, v));
    }
    let gauges = [
        ("publishers", "Current number of publishers", sum(shards, "publishers")),
        ("consumers", "Current number of consumers", sum(shards, "consumers")),
    ];
    for (name, help, v) in gauges {
        out.push(Family::one(&format!("rabbitmq_global_{name}"), "gauge", help, AMQP, v));
    }
    let delivered = total("deliver_get");
    let per_queue_type: [(&str, &str, u64); 8] = [
        ("messages_delivered_total", "Total number of messages delivered to consumers", delivered),
        (
            "messages_delivered_consume_manual_ack_total",
            "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
            total("deliver"),
        ),
        (
            "messages_delivered_consume_auto_ack_total",
            "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
            total("deliver_no_ack"),
        ),
        (
            "messages_delivered_get_manual_ack_total",
            "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
            total("get"),
        ),
        (
            "messages_delivered_get_auto_ack_total",
            "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
            total("get_no_ack"),
        ),
        (
            "messages_get_empty_total",
            "Total number of times basic.get operations fetched no message",
            total("get_empty"),
        ),
        ("messages_redelivered_total", "Total number of messages redelivered to consumers", total("redeliver")),
        ("messages_acknowledged_total", "Total number of messages acknowledged by consumers", total("ack")),
    ];
    for (name, help, v) in per_queue_type {
        out.push(Family::one(&format!("rabbitmq_global_{name}"), "counter", help, AMQP_CLASSIC, v));
    }
    let churn: [(&str, &str, u64); 7] = [
        ("connections_opened_total", "Total number of connections opened", sum(shards, "connections_opened")),
        (
            "connections_closed_total",
            "Total number of connections closed or terminated",
            sum(shards, "connections_closed"),
        ),
        ("channels_opened_total", "Total number of channels opened", total("channels_opened")),
        ("channels_closed_total", "Total number of channels closed", total("channels_closed")),
        ("queues_declared_total", "Total number of queues declared", sum(shards, "queues_declared")),
        ("queues_created_total", "Total number of queues created", sum(shards, "queues_created")),
        ("queues_deleted_total", "Total number of queues deleted", sum(shards, "queues_deleted")),
    ];
    for (name, help, v) in churn {
        out.push(Family::one(&format!("rabbitmq_{name}"), "counter", help, "", v));
    }
    let by_shard = |f: &dyn Fn(&Counters) -> u64| -> Vec<(String, u64)> {
        shards.iter().map(|c| (format!("{{shard=\"{}\"}}", n(c, "shard")), f(c))).collect()
    };
    out.push(Family::new(
        "warren_shard_deliveries_total",
        "counter",
        "Messages each shard's queues handed to consumers and basic.get",
        by_shard(&|c| n(c, "deliveries")),
    ));
    let cpu: Vec<(String, String)> = shards
        .iter()
        .map(|c| (format!("{{shard=\"{}\"}}", n(c, "shard")), format!("{:.2}", thread_cpu_seconds(n(c, "tid")))))
        .collect();
    out.push(Family::text(
        "warren_shard_cpu_seconds_total",
        "counter",
        "CPU time (user and system) of each shard's thread",
        cpu,
    ));
}

/// User plus system CPU seconds of this process's thread `tid` (0 if it cannot be read).
fn thread_cpu_seconds(tid: u64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else { return 0.0 };
    // Fields after the command (which may hold spaces) start at its closing parenthesis; utime
    // and stime are fields 14 and 15, so the 12th and 13th after it.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system setting.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// rabbitmq_prometheus's channel counters: (metric, counter key, help).
const CHANNEL_COUNTERS: [(&str, &str, &str); 11] = [
    ("channel_messages_published_total", "publish", "Total number of messages published into an exchange on a channel"),
    (
        "channel_messages_confirmed_total",
        "confirm",
        "Total number of messages published into an exchange and confirmed on the channel",
    ),
    (
        "channel_messages_unroutable_returned_total",
        "return_unroutable",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
    ),
    (
        "channel_messages_unroutable_dropped_total",
        "drop_unroutable",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
    ),
    ("channel_get_ack_total", "get", "Total number of messages fetched with basic.get in manual acknowledgement mode"),
    (
        "channel_get_total",
        "get_no_ack",
        "Total number of messages fetched with basic.get in automatic acknowledgement mode",
    ),
    (
        "channel_messages_delivered_ack_total",
        "deliver",
        "Total number of messages delivered to consumers in manual acknowledgement mode",
    ),
    (
        "channel_messages_delivered_total",
        "deliver_no_ack",
        "Total number of messages delivered to consumers in automatic acknowledgement mode",
    ),
    ("channel_messages_redelivered_total", "redeliver", "Total number of messages redelivered to consumers"),
    ("channel_messages_acked_total", "ack", "Total number of messages acknowledged by consumers"),
    ("channel_get_empty_total", "get_empty", "Total number of times basic.get operations fetched no message"),
];

/// Counter `key` of each object, labelled by `labels`, in label order.
fn labelled<'a, K: 'a>(
    objects: impl Iterator<Item = (K, &'a Counters)>,
    labels: impl Fn(K) -> String,
    key: &str,
) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = objects.map(|(o, c)| (labels(o), n(c, key))).collect();
    v.sort();
    v
}

/// The core counters: aggregated (one sample each, no labels) or per object (labelled as
/// rabbitmq_prometheus labels them: `channel` for channels and connections, `vhost` and `queue`).
pub fn core(out: &mut Vec<Family>, s: &Samples, per_object: bool) {
    for (metric, key, help) in CHANNEL_COUNTERS {
        let samples = if per_object {
            labelled(s.last.channels.iter(), |ch| format!("{{channel=\"{}\"}}", label(ch)), key)
        } else {
            // Closed channels' counts included: the aggregate never goes back.
            vec![(String::new(), sum(s.last.vhosts.values(), key))]
        };
        out.push(Family::new(&format!("rabbitmq_{metric}"), "counter", help, samples));
    }
    let conn = [
        ("connection_incoming_bytes_total", "recv_oct", "Total number of bytes received on a connection"),
        ("connection_outgoing_bytes_total", "send_oct", "Total number of bytes sent on a connection"),
    ];
    for (metric, key, help) in conn {
        let samples = if per_object {
            labelled(s.last.connections.iter(), |c| format!("{{channel=\"{}\"}}", label(c)), key)
        } else {
            vec![(String::new(), sum(s.last.connections.values(), key))]
        };
        out.push(Family::new(&format!("rabbitmq_{metric}"), "counter", help, samples));
    }
    let samples = if per_object {
        let queue = |(vh, q): &(String, String)| format!("{{vhost=\"{}\",queue=\"{}\"}}", label(vh), label(q));
        labelled(s.last.queues.iter(), queue, "publish")
    } else {
        vec![(String::new(), sum(s.last.queues.values(), "publish"))]
    };
    out.push(Family::new(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        samples,
    ));
}
