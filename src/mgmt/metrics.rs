//! The Prometheus scrape endpoint: GET /metrics in the text exposition format (0.0.4), with
//! rabbitmq_prometheus's metric names, types and labels, so RabbitMQ's dashboards and alert rules
//! find them: aggregated on /metrics, per object on /metrics/per-object; Warren's per-shard series
//! under `warren_`. Counters come from the sampler (`metrics_counters`), gauges from the shards.

use std::fmt::Write;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use super::admin_client::Object;
use super::sampler::Samples;
use super::server::{Node, Resp, admin_failed, with_body};
use super::shapes::{COMPAT_VERSION, Snapshot};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the process uses, read from /proc as rabbitmq_prometheus reports the Erlang VM's.
pub struct Process {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

impl Process {
    pub fn sample() -> Self {
        // SAFETY: sysconf and getrlimit only read process-wide settings into local values.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above; `limit` is a valid rlimit to write into.
        let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 { limit.rlim_cur } else { 0 };
        Self { resident_bytes: resident_pages * page, open_fds, max_fds }
    }
}

pub async fn handle(node: &Node, req: Request<Incoming>) -> Resp {
    let per_object = match req.uri().path() {
        "/metrics" => false,
        "/metrics/per-object" => true,
        _ => return with_body(StatusCode::NOT_FOUND, "text/plain", "Not Found\n"),
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return with_body(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "Method Not Allowed\n");
    }
    match Snapshot::fetch(&node.admin).await {
        Ok(snap) => {
            let text = node.sampler.read(|s| render(&snap, &Process::sample(), &node.name, s, per_object));
            with_body(StatusCode::OK, CONTENT_TYPE, text)
        }
        Err(e) => admin_failed(e),
    }
}

/// One metric family: its HELP and TYPE lines, then its samples (`labels` in braces, or none).
pub struct Family {
    name: String,
    kind: &'static str,
    help: String,
    samples: Vec<(String, String)>,
}

impl Family {
    pub fn new(name: &str, kind: &'static str, help: &str, samples: Vec<(String, u64)>) -> Self {
        Self::text(name, kind, help, samples.into_iter().map(|(l, v)| (l, v.to_string())).collect())
    }

    pub fn text(name: &str, kind: &'static str, help: &str, samples: Vec<(String, String)>) -> Self {
        Self { name: name.into(), kind, help: help.into(), samples }
    }

    /// A family of one sample.
    pub fn one(name: &str, kind: &'static str, help: &str, labels: &str, v: u64) -> Self {
        Self::new(name, kind, help, vec![(labels.to_string(), v)])
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE {} {}\n# HELP {} {}", self.name, self.kind, self.name, self.help);
        for (labels, v) in &self.samples {
            let _ = writeln!(out, "{}{labels} {v}", self.name);
        }
    }
}

/// A label value escaped as the exposition format requires.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn num(o: &Object, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn text_of<'a>(o: &'a Object, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The exposition: aggregated (`/metrics`) or per object (`/metrics/per-object`, the same names
/// with each object's labels).
pub fn render(snap: &Snapshot, p: &Process, node: &str, samples: &Samples, per_object: bool) -> String {
    let mut fams = Vec::new();
    let (messages, ready, unacked) = snap.messages(None);
    let node = label(node);
    let identity =
        format!("{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_cluster_permanent_id=\"{node}\"}}");
    fams.push(Family::one("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info", &identity, 1));
    let build = format!(
        "{{rabbitmq_version=\"{COMPAT_VERSION}\",prometheus_plugin_version=\"{COMPAT_VERSION}\",product_name=\"Warren\",product_version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    fams.push(Family::one("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info", &build, 1));
    let totals: [(&str, &str, u64); 7] = [
        ("rabbitmq_connections", "Connections currently open", snap.connections.len() as u64),
        ("rabbitmq_channels", "Channels currently open", snap.channels.len() as u64),
        ("rabbitmq_consumers", "Consumers currently connected", snap.consumers()),
        ("rabbitmq_queues", "Queues available", snap.queues.len() as u64),
        ("rabbitmq_process_resident_memory_bytes", "Memory used in bytes", p.resident_bytes),
        ("rabbitmq_process_open_fds", "Open file descriptors", p.open_fds),
        ("rabbitmq_process_max_fds", "Open file descriptors limit", p.max_fds),
    ];
    for (name, help, v) in totals {
        fams.push(Family::one(name, "gauge", help, "", v));
    }
    type Pick = fn(&Object) -> u64;
    let queue_gauges: [(&str, &str, Pick, u64); 4] = [
        (
            "rabbitmq_queue_messages_ready",
            "Messages ready to be delivered to consumers",
            |q| num(q, "messages_ready"),
            ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            |q| num(q, "messages_unacknowledged"),
            unacked,
        ),
        (
            "rabbitmq_queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
            |q| num(q, "messages_ready") + num(q, "messages_unacknowledged"),
            messages,
        ),
        ("rabbitmq_queue_consumers", "Consumers on a queue", |q| num(q, "consumers"), snap.consumers()),
    ];
    for (name, help, pick, total) in queue_gauges {
        let s = if per_object {
            let labels = |q: &Object| {
                format!("{{vhost=\"{}\",queue=\"{}\"}}", label(text_of(q, "vhost")), label(text_of(q, "name")))
            };
            snap.queues.iter().map(|q| (labels(q), pick(q))).collect()
        } else {
            vec![(String::new(), total)]
        };
        fams.push(Family::new(name, "gauge", help, s));
    }
    let conn_name = |ch: &Object| {
        snap.connections
            .iter()
            .find(|c| c.get("pid") == ch.get("connection"))
            .map(|c| text_of(c, "name"))
            .unwrap_or_default()
    };
    let channel_gauges: [(&str, &str, &str); 2] = [
        ("rabbitmq_channel_consumers", "Consumers on a channel", "consumer_count"),
        ("rabbitmq_channel_messages_unacked", "Delivered but not yet acknowledged messages", "messages_unacknowledged"),
    ];
    for (name, help, key) in channel_gauges {
        let s = if per_object {
            let labels = |ch: &Object| {
                format!("{{channel=\"{}\"}}", label(&format!("{} ({})", conn_name(ch), num(ch, "number"))))
            };
            snap.channels.iter().map(|ch| (labels(ch), num(ch, key))).collect()
        } else {
            vec![(String::new(), snap.channels.iter().map(|ch| num(ch, key)).sum())]
        };
        fams.push(Family::new(name, "gauge", help, s));
    }
    let s = if per_object {
        snap.connections
            .iter()
            .map(|c| (format!("{{channel=\"{}\"}}", label(text_of(c, "name"))), num(c, "channels")))
            .collect()
    } else {
        vec![(String::new(), snap.connections.iter().map(|c| num(c, "channels")).sum())]
    };
    fams.push(Family::new("rabbitmq_connection_channels", "gauge", "Channels on a connection", s));
    super::metrics_counters::global(&mut fams, samples);
    super::metrics_counters::core(&mut fams, samples, per_object);
    shard_families(&mut fams, snap);
    let mut out = String::new();
    for f in &fams {
        f.write(&mut out);
    }
    out
}

/// Warren's per-shard gauges and mesh counters.
fn shard_families(fams: &mut Vec<Family>, snap: &Snapshot) {
    let mut per_shard: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for q in &snap.queues {
        let e = per_shard.entry(num(q, "shard")).or_default();
        e.0 += 1;
        e.1 += num(q, "messages_ready") + num(q, "messages_unacknowledged");
    }
    let by_shard = |pick: fn(&(u64, u64)) -> u64| -> Vec<(String, u64)> {
        per_shard.iter().map(|(s, v)| (format!("{{shard=\"{s}\"}}"), pick(v))).collect()
    };
    fams.push(Family::new("warren_shard_queues", "gauge", "Queues owned by each shard", by_shard(|v| v.0)));
    fams.push(Family::new(
        "warren_shard_messages",
        "gauge",
        "Messages (ready and unacknowledged) in each shard's queues",
        by_shard(|v| v.1),
    ));
    let mesh: Vec<(String, u64)> = snap
        .mesh
        .iter()
        .map(|m| {
            (format!("{{shard=\"{}\",kind=\"{}\"}}", num(m, "shard"), label(text_of(m, "kind"))), num(m, "handled"))
        })
        .collect();
    fams.push(Family::new(
        "warren_shard_mesh_messages_total",
        "counter",
        "Messages each shard handled from the mesh (and from itself), by kind",
        mesh,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let snap =
            Snapshot { vhosts: vec!["/".into()], queues: vec![], connections: vec![], channels: vec![], mesh: vec![] };
        let text = render(
            &snap,
            &Process { resident_bytes: 1, open_fds: 2, max_fds: 3 },
            "warren@h\"x",
            &Samples::default(),
            false,
        );
        assert!(
            text.contains("# TYPE rabbitmq_queues gauge\n# HELP rabbitmq_queues Queues available\nrabbitmq_queues 0\n")
        );
        assert!(text.contains("rabbitmq_node=\"warren@h\\\"x\""));
        assert!(text.contains("rabbitmq_process_open_fds 2\n"));
    }
}
